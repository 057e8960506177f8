"""SOAP login and sessions, driven through the real simple-salesforce: each outcome raises (or not)
what simple-salesforce raises against real Salesforce, with the right code."""
import re
import time

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceExpiredSession

from helpers import client_for, login, trusting_session


def test_login_returns_a_session_and_the_emulator_as_instance(emulator):
    session_id, instance = login(emulator)
    assert instance == f"127.0.0.1:{emulator.port}"
    assert session_id.startswith(emulator.org.org_id[:15] + "!")


def test_login_is_logged_but_not_counted_against_the_daily_allowance(emulator):
    login(emulator)
    assert emulator.api_calls["login"] == 1
    assert emulator.api_usage()[0] == 0
    assert emulator.request_log[-1]["status"] == 200


def _raw_login(emu, password):
    body = ('<?xml version="1.0" encoding="utf-8" ?><env:Envelope xmlns:env="http://schemas.xmlsoap.org/'
            'soap/envelope/"><env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com">'
            f'<n1:username>{emu.username}</n1:username><n1:password>{password}</n1:password>'
            '</n1:login></env:Body></env:Envelope>')
    return trusting_session(emu).post(f"{emu.login_url}/services/Soap/u/59.0", body,
                                      headers={"content-type": "text/xml", "SOAPAction": "login"})


@pytest.mark.parametrize("emu_name, has_pa", [("emulator", "false"), ("pa_emulator", "true")])
def test_login_result_carries_user_info(request, emu_name, has_pa):
    emu = request.getfixturevalue(emu_name)
    response = _raw_login(emu, emu.password + emu.security_token)
    xml = response.content.decode()
    assert response.headers["Content-Type"] == "text/xml;charset=UTF-8"
    assert f"<serverUrl>{emu.login_url}/services/Soap/u/59.0/{emu.org.org_id[:15]}</serverUrl>" in xml
    assert f"<orgHasPersonAccounts>{has_pa}</orgHasPersonAccounts>" in xml
    assert f"<organizationName>{emu.org.name}</organizationName>" in xml
    assert "<passwordExpired>false</passwordExpired>" in xml
    assert f"<userName>{emu.username}</userName>" in xml


@pytest.mark.parametrize("password, token, code", [
    ("wrong", None, "INVALID_LOGIN"),
    (None, "WRONGTOKEN", "INVALID_LOGIN"),
    (None, "", "LOGIN_MUST_USE_SECURITY_TOKEN"),
])
def test_bad_credentials_fail_with_salesforce_codes(emulator, password, token, code):
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        login(emulator, password=password, token=token)
    assert info.value.code == code
    assert str(info.value).startswith(f"Authentication failed (code: {code}): Invalid username, password")


def test_invalid_login_message_is_salesforces(emulator):
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        login(emulator, password="nope")
    assert str(info.value) == ("Authentication failed (code: INVALID_LOGIN): Invalid username, password, "
                               "security token; or user locked out.")


def test_unknown_user_is_invalid_login(emulator):
    from simple_salesforce import SalesforceLogin

    with pytest.raises(SalesforceAuthenticationFailed) as info:
        SalesforceLogin(username="nobody@example.com", password=emulator.password,
                        security_token=emulator.security_token, session=trusting_session(emulator),
                        scratch_url=emulator.login_url)
    assert info.value.code == "INVALID_LOGIN"


def test_trusted_network_needs_no_token(emulator):
    emulator.require_token = False
    session_id, _ = login(emulator, token="")
    assert session_id


@pytest.mark.parametrize("code", ["API_DISABLED_FOR_ORG", "API_CURRENTLY_DISABLED", "INVALID_LOGIN"])
def test_forced_login_faults(emulator, code):
    emulator.faults.login_fault = code
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        login(emulator)
    assert info.value.code == code


def test_api_disabled_fault_message(emulator):
    emulator.faults.set(login_fault="API_DISABLED_FOR_ORG")
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        login(emulator)
    assert info.value.auth_message == "API is not enabled for this Organization or Partner"


def test_expired_password_logs_in_but_rest_refuses(emulator):
    emulator.faults.password_expired = True
    session = trusting_session(emulator)
    session_id, instance = login(emulator, session)
    sf = Salesforce(session_id=session_id, instance=instance, session=session)
    with pytest.raises(SalesforceExpiredSession) as info:
        sf.query("SELECT Id FROM Contact")
    assert info.value.status == 401
    assert info.value.content[0]["errorCode"] == "INVALID_OPERATION_WITH_EXPIRED_PASSWORD"
    assert "<passwordExpired>true</passwordExpired>" in _raw_login(
        emulator, emulator.password + emulator.security_token).text


def test_unknown_session_is_invalid_session_id_as_a_json_list(emulator):
    sf = Salesforce(session_id="00Dbogus!AQ", instance=emulator.instance, session=trusting_session(emulator))
    with pytest.raises(SalesforceExpiredSession) as info:
        sf.query("SELECT Id FROM Contact")
    assert info.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_expire_sessions_invalidates_existing_clients(emulator):
    sf = client_for(emulator)
    sf.query("SELECT Id FROM Lead")
    emulator.expire_sessions()
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Lead")


def test_sessions_expire_after_their_lifetime_of_inactivity(emulator):
    emulator.session_seconds = 0.3
    sf = client_for(emulator)
    sf.query("SELECT Id FROM Lead")
    time.sleep(0.5)
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Lead")


def test_password_client_logs_in_again_after_expiry(emulator):
    # simple-salesforce only builds https://{domain}.salesforce.com/...; a fragment swallows the rest.
    domain = f"127.0.0.1:{emulator.port}/services/Soap/u/59.0#"
    sf = Salesforce(username=emulator.username, password=emulator.password,
                    security_token=emulator.security_token, domain=domain,
                    session=trusting_session(emulator))
    emulator.expire_sessions()
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 2
    assert [e["kind"] for e in emulator.request_log] == ["login", "query", "login", "query"]
    assert [e["status"] for e in emulator.request_log] == [200, 401, 200, 200]


def test_the_ca_setting_wins_over_requests_ca_bundle(emulator, monkeypatch, tmp_path):
    bogus = tmp_path / "other-ca.pem"
    bogus.write_text("not a certificate\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bogus))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bogus))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert client_for(emulator).query("SELECT Id FROM Lead")["totalSize"] == 2


def test_clients_without_the_ca_refuse_the_certificate(emulator):
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        login(emulator, session)


def test_certificate_names_the_loopback_address(emulator):
    pem = open(emulator.ca_path).read()
    assert re.search(r"-----BEGIN CERTIFICATE-----", pem)
    assert emulator.login_url == f"https://127.0.0.1:{emulator.port}"
