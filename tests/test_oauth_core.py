"""core/oauth.py and the OAuth login of core/salesforce.Connection against the emulator over real
HTTPS; then the plugin through a real PluginManager: access-token expiry mid-day refreshes with no
error row, a revoked refresh token gives an error row with the remedy and an alert mail (real SMTP
on loopback), client credentials, and an org whose SOAP login() is disabled."""
import pytest

from core import errors, oauth
from core.resolver import Resolver
from core.salesforce import Connection, LoginFailed, connection_for, forget_connection
from core.settings import Settings, load_settings, save_settings
from emulator.oauth import DEMO_CALLBACK
from helpers import authorize, end, error_rows, ring, trusting_session

NUMBER = "+81312345678"


def web_settings(emu, refresh_token="", **extra):
    return Settings(auth_method="oauth_web", oauth_client_id=emu.oauth_client_id,
                    oauth_client_secret=emu.oauth_client_secret, oauth_refresh_token=refresh_token,
                    login_url=emu.login_url, ca_bundle=emu.ca_path, **extra)


def connect_web(emu, http=None):
    """Run the web-server flow through core.oauth; returns (settings with refresh token, token)."""
    http = http or trusting_session(emu)
    pkce = oauth.new_pkce()
    settings = web_settings(emu)
    url = oauth.authorize_url(settings, DEMO_CALLBACK, "state-1", pkce.challenge)
    assert url.startswith(emu.login_url + "/services/oauth2/authorize?response_type=code&")
    answer = authorize(emu, http, verifier=pkce.verifier, state="state-1")
    token = oauth.exchange_code(settings, oauth.plain_session(emu.ca_path), answer["code"],
                                DEMO_CALLBACK, pkce.verifier)
    return web_settings(emu, token.refresh_token), token


def test_pkce_pair_follows_rfc_7636():
    pkce = oauth.new_pkce()
    assert 43 <= len(pkce.verifier) <= 128
    # RFC 7636 appendix B
    assert oauth.code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") \
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert oauth.new_state() != oauth.new_state()


def test_authorize_url_is_sandbox_aware():
    settings = Settings(oauth_client_id="key", sandbox=True)
    url = oauth.authorize_url(settings, "http://a/cb", "st", "ch")
    assert url.startswith("https://test.salesforce.com/services/oauth2/authorize?")
    for part in ("response_type=code", "client_id=key", "redirect_uri=http%3A%2F%2Fa%2Fcb", "state=st",
                 "scope=api+refresh_token", "code_challenge=ch", "code_challenge_method=S256"):
        assert part in url
    assert oauth.authorize_url(Settings(login_url="https://acme.my.salesforce.com"), "x", "s", "c") \
        .startswith("https://acme.my.salesforce.com/services/oauth2/authorize?")


def test_exchange_gives_a_token_with_org_and_user(emulator):
    settings, token = connect_web(emulator)
    assert token.refresh_token and token.access_token
    assert token.org_id == emulator.org.org_id
    assert token.user_id == emulator.org.login_user()["Id"]
    assert "access_token" not in repr(token) and token.access_token not in repr(token)


def test_errors_are_named_with_catalogue_codes(emulator):
    session = oauth.plain_session(emulator.ca_path)
    with pytest.raises(oauth.InvalidGrant) as caught:
        oauth.refresh(web_settings(emulator, "not-a-token"), session)
    assert caught.value.code == "OAUTH_INVALID_GRANT" and caught.value.error == "invalid_grant"
    wrong_secret = Settings(auth_method="oauth_client_credentials", oauth_client_id=emulator.oauth_client_id,
                            oauth_client_secret="wrong", login_url=emulator.login_url)
    with pytest.raises(oauth.InvalidClient):
        oauth.client_credentials(wrong_secret, session)
    pkce = oauth.new_pkce()
    answer = authorize(emulator, trusting_session(emulator), verifier=pkce.verifier)
    with pytest.raises(oauth.OAuthError) as caught:
        oauth.exchange_code(web_settings(emulator), session, answer["code"], DEMO_CALLBACK, "x" * 50)
    assert caught.value.code == "OAUTH_INVALID_REQUEST"
    with pytest.raises(oauth.InvalidGrant):   # the failed attempt used the code up
        oauth.exchange_code(web_settings(emulator), session, answer["code"], DEMO_CALLBACK, pkce.verifier)


def test_client_credentials_errors_have_their_own_remedy(emulator):
    emulator.oauth.my_domain = False
    settings = Settings(auth_method="oauth_client_credentials", oauth_client_id=emulator.oauth_client_id,
                        oauth_client_secret=emulator.oauth_client_secret, login_url=emulator.login_url,
                        ca_bundle=emulator.ca_path)
    with pytest.raises(LoginFailed) as caught:
        Connection(settings)
    assert caught.value.code == "OAUTH_CLIENT_CREDENTIALS"
    assert "My Domain" in errors.entry_for(caught.value.code).remedy_en


def test_connection_over_oauth_web_queries_and_refreshes_once_on_expiry(emulator):
    settings, _ = connect_web(emulator)
    connection = Connection(settings)
    assert connection.org.instance_url == emulator.login_url
    assert connection.org.org_id == emulator.org.org_id
    assert connection.check_permissions() == []
    emulator.oauth.expire_access_tokens()
    emulator.reset_counters()
    assert connection.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1
    assert emulator.api_calls["oauth_token"] == 1      # one refresh, then the retry
    assert emulator.api_calls["login"] == 0            # never SOAP


def test_revoke_then_connection_fails_with_reconnect_remedy(emulator):
    settings, token = connect_web(emulator)
    oauth.revoke(settings, oauth.plain_session(emulator.ca_path), token.refresh_token)
    with pytest.raises(LoginFailed) as caught:
        Connection(settings)
    assert caught.value.code == "OAUTH_INVALID_GRANT"
    assert "Reconnect with Salesforce" in caught.value.entry().remedy_en
    assert token.refresh_token not in str(caught.value)


def test_client_credentials_connection(emulator):
    settings = Settings(auth_method="oauth_client_credentials", oauth_client_id=emulator.oauth_client_id,
                        oauth_client_secret=emulator.oauth_client_secret, login_url=emulator.login_url,
                        ca_bundle=emulator.ca_path)
    connection = Connection(settings)
    assert connection.query("SELECT Id FROM Lead LIMIT 1")["done"]
    emulator.oauth.expire_access_tokens()
    assert connection.query("SELECT Id FROM Lead LIMIT 1")["done"]


def test_soap_disabled_org_refuses_password_but_takes_oauth(emulator):
    emulator.soap_login_disabled = True
    password = Settings(username=emulator.username, password=emulator.password,
                        security_token=emulator.security_token, login_url=emulator.login_url,
                        ca_bundle=emulator.ca_path)
    with pytest.raises(LoginFailed) as caught:
        Connection(password)
    assert caught.value.code == "INVALID_OPERATION"
    assert "OAuth" in caught.value.entry().remedy_en
    settings, _ = connect_web(emulator)
    assert Connection(settings).query("SELECT Id FROM Contact LIMIT 1")["done"]


# ---------------------------------------------------------------------------------------------
# through the plugin, as a host calls it
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def oauth_connected(store, emulator):
    settings, _ = connect_web(emulator)
    save_settings(store, {k: getattr(settings, k) for k in (
        "auth_method", "oauth_client_id", "oauth_client_secret", "oauth_refresh_token", "login_url",
        "ca_bundle")})
    yield store
    forget_connection(store)


def test_rotated_refresh_token_is_stored_and_used(oauth_connected, emulator):
    emulator.oauth.rotate_refresh_tokens = True   # the connected app rotates on every refresh
    first = load_settings(oauth_connected).oauth_refresh_token
    resolver = Resolver(oauth_connected)
    emulator.reset_counters()
    assert resolver.lookup(NUMBER)["status"] == "matched"
    assert resolver.lookup("+81611112222")["object"] == "Lead"
    assert emulator.api_calls["oauth_token"] == 1          # one login, not one per lookup
    connection = connection_for(oauth_connected)
    assert connection_for(oauth_connected) is connection
    second = load_settings(oauth_connected).oauth_refresh_token
    valid = emulator.oauth.refresh_tokens()                # other tests' tokens live on too
    assert second != first and second in valid and first not in valid
    emulator.oauth.expire_access_tokens()                  # a refresh mid-day rotates again
    assert resolver.lookup(NUMBER)["status"] == "matched"
    assert connection_for(oauth_connected) is connection
    third = load_settings(oauth_connected).oauth_refresh_token
    valid = emulator.oauth.refresh_tokens()
    assert third not in (first, second) and third in valid and second not in valid
    assert emulator.api_calls["oauth_token"] == 2
    forget_connection(oauth_connected)                     # as a new process would start
    assert resolver.lookup(NUMBER)["status"] == "matched"
    assert connection_for(oauth_connected) is not connection
    assert load_settings(oauth_connected).oauth_refresh_token not in (first, second, third)


def test_lookup_through_the_plugin_survives_access_token_expiry(oauth_connected, emulator, host):
    call, display, _ = ring(host, NUMBER)
    assert display["status"] == "matched" and display["company"] == "株式会社サンプル"
    end(host, call)
    emulator.oauth.expire_access_tokens()         # mid-day: the org's session timeout passed
    emulator.reset_counters()
    call, display, _ = ring(host, "03-1234-5678", call_id="after-expiry-2")
    assert display["status"] in ("matched",), display
    _, display, _ = ring(host, "+81611112222")    # not cached yet: a real lookup on a refreshed token
    assert display["status"] == "matched" and display["object"] == "Lead"
    assert emulator.api_calls["oauth_token"] == 1
    assert error_rows(oauth_connected) == []


def test_revoked_refresh_token_gives_error_row_remedy_and_mail(oauth_connected, emulator, host,
                                                                 smtp_server):
    from core.alerts import Alerts

    save_settings(oauth_connected, smtp_server.settings())
    emulator.oauth.revoke_refresh_tokens()        # an admin revoked the app in Salesforce Setup
    forget_connection(oauth_connected)
    _, display, _ = ring(host, "+81611112222")
    assert display["status"] == "unavailable" and display["number"] == "+81611112222"
    from core.runtime import runtime_for
    runtime_for().wait_idle(10)
    (row,) = error_rows(oauth_connected, code="OAUTH_INVALID_GRANT")
    assert row["integration"] == "salesforce"
    entry = errors.entry_for("OAUTH_INVALID_GRANT")
    Alerts(oauth_connected).tick()
    (mail,) = smtp_server.wait_for(1)
    body = mail.get_content()
    assert "OAUTH_INVALID_GRANT" in str(mail["Subject"])
    assert entry.remedy_en in body and entry.remedy_ja in body
    assert load_settings(oauth_connected).oauth_refresh_token not in body
