"""The admin's OAuth routes through Flask's test client against the emulator: the Japanese page,
a replayed callback (the code and state are single use), and the callback's error answers."""
import html
import re
from urllib.parse import quote, urlsplit

import pytest

from core.settings import load_settings, save_settings
from helpers import trusting_session

CALLBACK = "http://localhost/settings/oauth/callback"


@pytest.fixture
def emu(emulator, store):
    from core.salesforce import forget_connection

    emulator.register_oauth_app(callback_url=CALLBACK)
    save_settings(store, {"oauth_client_id": emulator.oauth_client_id,
                          "oauth_client_secret": emulator.oauth_client_secret,
                          "login_url": emulator.login_url, "ca_bundle": emulator.ca_path})
    yield emulator
    forget_connection(store)


def consent(emu, authorize_url):
    """The emulator's login and consent pages; returns the callback path with its query."""
    http = trusting_session(emu)
    page = http.get(authorize_url)
    ticket = re.search(r"name='ticket' value='([^']+)'", page.text).group(1)
    url = emu.login_url + "/services/oauth2/authorize"
    http.post(url, data={"step": "login", "ticket": ticket, "username": emu.username, "password": emu.password})
    answer = http.post(url, data={"step": "consent", "ticket": ticket, "decision": "allow"},
                       allow_redirects=False)
    parts = urlsplit(answer.headers["Location"])
    return f"{parts.path}?{parts.query}"


def start(admin_client):
    page = admin_client.get("/settings/oauth/start").get_data(as_text=True)
    return html.unescape(re.search(r'id="continue" href="([^"]+)"', page).group(1))


def test_settings_page_in_japanese_labels_legacy_login(admin_client):
    page = admin_client.get("/settings/", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "Salesforce ID で認証" in page
    assert "旧方式: Summer &#39;27 で廃止" in page or "旧方式: Summer '27 で廃止" in page
    assert "/settings/oauth/callback" in page


def test_start_sends_pkce_and_state(admin_client, emu):
    url = start(admin_client)
    assert url.startswith(emu.login_url + "/services/oauth2/authorize?")
    for part in ("response_type=code", "code_challenge_method=S256", "code_challenge=", "state=",
                 "scope=api+refresh_token", "redirect_uri=http%3A%2F%2Flocalhost%2Fsettings%2Foauth%2Fcallback"):
        assert part in url


def test_callback_connects_once_and_a_replay_is_rejected(admin_client, emu, store):
    callback = consent(emu, start(admin_client))
    assert admin_client.get(callback).status_code == 302
    token = load_settings(store).oauth_refresh_token
    assert token
    admin_client.get(callback)                        # the same code and state again
    page = admin_client.get("/settings/").get_data(as_text=True)
    assert "OAUTH_STATE_MISMATCH" in page
    assert load_settings(store).oauth_refresh_token == token


def test_callback_without_a_started_sign_in_is_rejected(admin_client, emu, store):
    admin_client.get("/settings/oauth/callback?code=abc&state=forged")
    assert "OAUTH_STATE_MISMATCH" in admin_client.get("/settings/").get_data(as_text=True)
    assert load_settings(store).oauth_refresh_token == ""


def test_callback_error_answer_is_shown_with_its_remedy(admin_client, emu):
    start(admin_client)
    admin_client.get("/settings/oauth/callback?error=access_denied&error_description=end-user+denied")
    assert "OAUTH_ACCESS_DENIED" in admin_client.get("/settings/").get_data(as_text=True)


def test_callback_requires_the_admin(client, emu):
    response = client.get("/settings/oauth/callback?code=x&state=y")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_callback_url_comes_from_the_admin_url_once_set(admin_client, emu, store):
    save_settings(store, {"admin_base_url": "https://pbx.example.jp:8443/"})  # behind a proxy
    expected = "https://pbx.example.jp:8443/settings/oauth/callback"
    assert "redirect_uri=" + quote(expected, safe="") in start(admin_client)
    assert f'value="{expected}"' in admin_client.get("/settings/").get_data(as_text=True)
