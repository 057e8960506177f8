"""The emulator's OAuth 2.0 endpoints over real HTTPS: authorize (login + consent pages), token
(authorization_code with PKCE, refresh_token, client_credentials), revoke, Salesforce's error
answers, access tokens as Bearer tokens on REST, and an org whose SOAP login() is disabled."""
import re
import secrets

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceExpiredSession

from emulator.oauth import DEMO_CALLBACK
from helpers import authorize, login, trusting_session

CALLBACK = DEMO_CALLBACK


def token(emu, session, **form):
    """POST /services/oauth2/token; returns (status, json)."""
    response = session.post(emu.login_url + "/services/oauth2/token", data=form)
    return response.status_code, response.json()


def code_grant(emu, session, code, verifier="v" * 50, redirect_uri=CALLBACK):
    return token(emu, session, grant_type="authorization_code", code=code, client_id=emu.oauth_client_id,
                 client_secret=emu.oauth_client_secret, redirect_uri=redirect_uri, code_verifier=verifier)


@pytest.fixture
def http(emulator):
    return trusting_session(emulator)


@pytest.fixture
def tokens(emulator, http):
    answer = authorize(emulator, http)
    status, body = code_grant(emulator, http, answer["code"])
    assert status == 200, body
    return body


def client(emu, access_token, session):
    return Salesforce(session_id=access_token, instance_url=emu.login_url, session=session)


def test_web_server_flow_gives_salesforce_shaped_tokens(emulator, http):
    answer = authorize(emulator, http, state="xyz 123")
    assert answer["state"] == "xyz 123"
    status, body = code_grant(emulator, http, answer["code"])
    assert status == 200
    assert set(body) == {"access_token", "refresh_token", "signature", "scope", "instance_url", "id",
                         "token_type", "issued_at"}
    assert body["token_type"] == "Bearer" and body["instance_url"] == emulator.login_url
    assert body["id"].endswith(f"/id/{emulator.org.org_id}/{emulator.org.login_user()['Id']}")
    assert body["issued_at"].isdigit() and len(body["issued_at"]) == 13     # milliseconds


def test_access_token_is_a_bearer_token_on_rest(emulator, http, tokens):
    sf = client(emulator, tokens["access_token"], http)
    assert sf.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1


def test_code_is_single_use(emulator, http, tokens):
    answer = authorize(emulator, http)
    assert code_grant(emulator, http, answer["code"])[0] == 200
    assert code_grant(emulator, http, answer["code"]) == (
        400, {"error": "invalid_grant", "error_description": "invalid authorization code"})


def test_wrong_or_missing_pkce_verifier_is_refused_and_burns_the_code(emulator, http):
    answer = authorize(emulator, http)
    assert code_grant(emulator, http, answer["code"], verifier="w" * 50) == (
        400, {"error": "invalid_request", "error_description": "invalid code verifier"})
    assert code_grant(emulator, http, answer["code"])[1]["error"] == "invalid_grant"
    answer = authorize(emulator, http)
    assert code_grant(emulator, http, answer["code"], verifier="")[1]["error"] == "invalid_grant"


def test_redirect_uri_must_match_the_registered_callback(emulator, http):
    params = {"response_type": "code", "client_id": emulator.oauth_client_id,
              "redirect_uri": "https://evil.example/cb", "state": "s"}
    page = http.get(emulator.login_url + "/services/oauth2/authorize", params=params, allow_redirects=False)
    assert page.status_code == 400 and "redirect_uri_mismatch" in page.text
    answer = authorize(emulator, http)
    status, body = code_grant(emulator, http, answer["code"], redirect_uri="http://other/cb")
    assert (status, body["error"]) == (400, "redirect_uri_mismatch")


def test_unknown_client_and_wrong_secret(emulator, http):
    page = http.get(emulator.login_url + "/services/oauth2/authorize",
                    params={"response_type": "code", "client_id": "nope", "redirect_uri": CALLBACK})
    assert page.status_code == 400 and "invalid_client_id" in page.text
    assert token(emulator, http, grant_type="refresh_token", client_id="nope", refresh_token="x") == (
        400, {"error": "invalid_client_id", "error_description": "client identifier invalid"})
    assert token(emulator, http, grant_type="client_credentials", client_id=emulator.oauth_client_id,
                 client_secret="wrong") == (
        400, {"error": "invalid_client", "error_description": "invalid client credentials"})


def test_unsupported_grant_type(emulator, http):
    assert token(emulator, http, grant_type="password", client_id=emulator.oauth_client_id) == (
        400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"})


def test_denied_consent_redirects_with_access_denied(emulator, http):
    answer = authorize(emulator, http, decision="deny", state="s9")
    assert answer == {"error": "access_denied", "error_description": "end-user denied authorization",
                      "state": "s9"}


def test_wrong_password_stays_on_the_login_page(emulator, http):
    page = http.get(emulator.login_url + "/services/oauth2/authorize",
                    params={"response_type": "code", "client_id": emulator.oauth_client_id,
                            "redirect_uri": CALLBACK, "state": "s"})
    ticket = re.search(r"name='ticket' value='([^']+)'", page.text).group(1)
    again = http.post(emulator.login_url + "/services/oauth2/authorize",
                      data={"step": "login", "ticket": ticket, "username": emulator.username,
                            "password": "wrong"})
    assert "check your username and password" in again.text and "oaapprove" not in again.text


def test_refresh_after_expiry_gives_a_working_token(emulator, http, tokens):
    emulator.oauth.expire_access_tokens()
    with pytest.raises(SalesforceExpiredSession):
        client(emulator, tokens["access_token"], http).query("SELECT Id FROM Account LIMIT 1")
    status, body = token(emulator, http, grant_type="refresh_token", client_id=emulator.oauth_client_id,
                         client_secret=emulator.oauth_client_secret, refresh_token=tokens["refresh_token"])
    assert status == 200 and "refresh_token" not in body
    assert client(emulator, body["access_token"], http).query("SELECT Id FROM Account LIMIT 1")["done"]


def test_revoke_kills_the_refresh_token_and_its_access_tokens(emulator, http, tokens):
    response = http.post(emulator.login_url + "/services/oauth2/revoke", data={"token": tokens["refresh_token"]})
    assert response.status_code == 200
    with pytest.raises(SalesforceExpiredSession):
        client(emulator, tokens["access_token"], http).query("SELECT Id FROM Account LIMIT 1")
    assert token(emulator, http, grant_type="refresh_token", client_id=emulator.oauth_client_id,
                 refresh_token=tokens["refresh_token"]) == (
        400, {"error": "invalid_grant", "error_description": "expired access/refresh token"})
    again = http.post(emulator.login_url + "/services/oauth2/revoke", data={"token": tokens["refresh_token"]})
    assert again.status_code == 400 and again.json()["error"] == "unsupported_token_type"


def test_client_credentials_on_my_domain_only(emulator, http):
    form = dict(grant_type="client_credentials", client_id=emulator.oauth_client_id,
                client_secret=emulator.oauth_client_secret)
    status, body = token(emulator, http, **form)
    assert status == 200 and "refresh_token" not in body
    assert client(emulator, body["access_token"], http).query("SELECT Id FROM Lead LIMIT 1")["done"]
    emulator.oauth.my_domain = False
    assert token(emulator, http, **form) == (
        400, {"error": "invalid_grant", "error_description": "request not supported on this domain"})


def test_client_credentials_needs_a_run_as_user(emulator, http):
    key = "cc-app-" + secrets.token_hex(4)
    app = emulator.register_oauth_app(key, "sec", CALLBACK)
    app.run_as = None
    assert token(emulator, http, grant_type="client_credentials", client_id=key, client_secret="sec")[1] == {
        "error": "invalid_grant", "error_description": "no client credentials user enabled"}


def test_soap_login_disabled_org(emulator, http):
    emulator.soap_login_disabled = True
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        login(emulator)
    assert caught.value.code == "INVALID_OPERATION"
    emulator.reset()
    assert not emulator.soap_login_disabled
    assert login(emulator)[0]


def test_requests_are_logged_by_kind(emulator, http, tokens):
    kinds = {entry["kind"] for entry in emulator.request_log}
    assert {"oauth_authorize", "oauth_token"} <= kinds
