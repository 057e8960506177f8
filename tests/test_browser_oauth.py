"""Connect with Salesforce in a real browser: Playwright driving Debian's Chromium through the admin
(a real HTTP server thread) and the emulator's login and consent pages over HTTPS, back to the
callback; then a lookup through the plugin, disconnect (revoke), tampered state and client
credentials; and an org that allows OAuth only."""

from __future__ import annotations

import os

import pytest

from helpers import browser_login, make_host, ring

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                                reason="Debian's chromium is not installed (make test installs it)")


@pytest.fixture
def emu(emulator, admin_server, served_store):
    """The session emulator with the demo app's callback pointing at this admin."""
    from core.salesforce import forget_connection
    from core.settings import clear_credentials

    emulator.register_oauth_app(callback_url=admin_server.url + "/settings/oauth/callback")
    clear_credentials(served_store)
    yield emulator
    forget_connection(served_store)


@pytest.fixture
def page(browser, admin_server):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US",
                                  extra_http_headers={"Accept-Language": "en"},
                                  ignore_https_errors=True)  # the emulator's CA is not the system's
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def start_connect(page, admin_server, emu, method="oauth_web", secret=True):
    """Log in to the admin, fill the OAuth part of the settings and press the method's button."""
    browser_login(page, admin_server.url)
    page.goto(admin_server.url + "/settings/")
    page.check(f"input[name=auth_method][value={method}]")
    page.fill("#oauth_client_id", emu.oauth_client_id)
    if secret:
        page.fill("#oauth_client_secret", emu.oauth_client_secret)
    page.click("summary")
    page.fill("#login_url", emu.login_url)
    page.fill("#ca_bundle", str(emu.ca_path))
    page.click("#connect" if method == "oauth_web" else "#submit")


def consent_on_salesforce(page, emu, password=None):
    """The emulator's login and consent pages, as the admin sees them."""
    page.wait_for_url(emu.login_url + "/services/oauth2/authorize*")
    page.fill("#username", emu.username)
    page.fill("#password", password or emu.password)
    page.click("#Login")
    page.click("#oaapprove")


def test_connect_with_salesforce_then_lookup_then_disconnect(page, admin_server, emu, served_store,
                                                             monkeypatch):
    from core.runtime import shutdown_all
    from core.settings import load_settings

    start_connect(page, admin_server, emu)
    consent_on_salesforce(page, emu)
    page.wait_for_url(admin_server.url + "/settings/")
    assert "Connected to Salesforce" in page.locator(".flash, .flashes, body").first.inner_text()
    assert page.locator("#oauth-connected").is_visible()
    assert page.locator("#oauth_client_secret").input_value() == ""        # never rendered back
    assert emu.oauth_client_secret not in page.content()
    settings = load_settings(served_store)
    assert settings.auth_method == "oauth_web" and settings.oauth_refresh_token
    raw = served_store.conn.execute(
        "SELECT value, encrypted FROM settings WHERE name = 'oauth_refresh_token'").fetchone()
    assert raw[1] == 1 and raw[0] != settings.oauth_refresh_token          # encrypted at rest
    assert emu.username in page.content()                                   # "Connected as ..."

    monkeypatch.setenv("SFCTI_HOME", str(served_store.home))
    monkeypatch.setenv("SFCTI_JOBS", "off")
    try:
        _, display, _ = ring(make_host(), "+81312345678")
        assert display["status"] == "matched" and display["company"] == "株式会社サンプル"
    finally:
        shutdown_all()

    token = settings.oauth_refresh_token
    page.click("#disconnect")
    assert "revoked" in page.content()
    assert load_settings(served_store).oauth_refresh_token == ""
    assert token not in emu.oauth.refresh_tokens()                         # revoked at Salesforce


def test_tampered_state_is_rejected_and_nothing_stored(page, admin_server, emu, served_store):
    from core.errors import entry_for
    from core.settings import load_settings

    start_connect(page, admin_server, emu)
    page.wait_for_url(emu.login_url + "/services/oauth2/authorize*")
    # the state travels through Salesforce and comes back altered
    page.goto(page.url.replace("state=", "state=tampered"))
    consent_on_salesforce(page, emu)
    page.wait_for_url(admin_server.url + "/settings/")
    failure = page.locator(".failure")
    assert "OAUTH_STATE_MISMATCH" in failure.inner_text()
    assert entry_for("OAUTH_STATE_MISMATCH").remedy_en in failure.inner_text()
    assert load_settings(served_store).oauth_refresh_token == ""


def test_denied_consent_shows_the_remedy(page, admin_server, emu, served_store):
    start_connect(page, admin_server, emu)
    page.wait_for_url(emu.login_url + "/services/oauth2/authorize*")
    page.fill("#username", emu.username)
    page.fill("#password", emu.password)
    page.click("#Login")
    page.click("#oadeny")
    page.wait_for_url(admin_server.url + "/settings/")
    assert "OAUTH_ACCESS_DENIED" in page.locator(".failure").inner_text()


def test_oauth_only_org_connects_and_password_login_is_refused(page, admin_server, emu, served_store):
    from core.settings import load_settings

    emu.soap_login_disabled = True
    start_connect(page, admin_server, emu)
    consent_on_salesforce(page, emu)
    page.wait_for_url(admin_server.url + "/settings/")
    assert page.locator("#oauth-connected").is_visible()
    assert load_settings(served_store).auth_method == "oauth_web"
    # the legacy method on the same org: refused with the catalogue's advice to use OAuth
    page.check("input[name=auth_method][value=password]")
    page.fill("#username", emu.username)
    page.fill("#password", emu.password)
    page.fill("#security_token", emu.security_token)
    page.click("#submit")
    assert "INVALID_OPERATION" in page.locator(".failure").inner_text()
    assert load_settings(served_store).auth_method == "oauth_web"                 # nothing saved
    page.click("#disconnect")
    assert load_settings(served_store).oauth_refresh_token == ""


def test_client_credentials_test_and_save(page, admin_server, emu, served_store):
    from core.settings import load_settings

    start_connect(page, admin_server, emu, method="oauth_client_credentials")
    assert "Connected to Salesforce" in page.content()
    assert load_settings(served_store).auth_method == "oauth_client_credentials"
    page.click("#disconnect")
    assert not load_settings(served_store).is_configured()
