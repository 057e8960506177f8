"""The admin in a real browser: Playwright driving Debian's Chromium against the app served by a
real HTTP server thread, connected to the local Salesforce emulator. One browser per session."""

from __future__ import annotations

import os

import pytest

from helpers import ADMIN_PASSWORD, ADMIN_USER, browser_login

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                                reason="Debian's chromium is not installed (make test installs it)")



@pytest.fixture(scope="module")
def emu():
    from emulator import Emulator, Org

    with Emulator(Org()) as emu:
        yield emu


def fill_salesforce(page, emu, password: str) -> None:
    page.goto(page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2] + "/settings/")
    page.fill("#username", emu.username)
    page.fill("#password", password)
    page.fill("#security_token", emu.security_token)
    page.click("summary")
    page.fill("#login_url", emu.login_url)
    page.fill("#ca_bundle", str(emu.ca_path))
    page.check("#contact_fetch-1")
    page.click("#submit")


def test_a_page_opened_without_login_redirects_to_login(page, admin_server):
    page.goto(admin_server.url + "/settings/")
    assert "/auth/login" in page.url
    log_in_form = page.locator("form #username")
    assert log_in_form.is_visible()


def test_log_in_and_out(page, admin_server):
    page.goto(admin_server.url + "/errors/")
    page.fill("#username", ADMIN_USER)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#submit")
    assert page.url == admin_server.url + "/errors/"
    assert page.locator("h1").inner_text() == "外部連携エラーログ"
    page.click("text=ログアウト")
    assert "/auth/login" in page.url
    page.goto(admin_server.url + "/")
    assert "/auth/login" in page.url


def test_wrong_password_shows_the_remedy_and_saves_nothing(page, admin_server, emu, served_store):
    from core.errors import entry_for
    from core.settings import load_settings

    browser_login(page, admin_server.url)
    before = load_settings(served_store)
    fill_salesforce(page, emu, "wrong-password")
    failure = page.locator(".failure")
    assert failure.is_visible()
    assert entry_for("INVALID_LOGIN").remedy_ja in failure.inner_text()
    assert "設定は保存されていません" in failure.inner_text()
    assert load_settings(served_store) == before


def test_settings_against_the_emulator_show_the_success_message(page, admin_server, emu, served_store):
    from core.settings import load_settings

    browser_login(page, admin_server.url)
    fill_salesforce(page, emu, emu.password)
    assert page.locator(".flash.success").inner_text() == \
        "Salesforce との接続に成功しました。設定を保存しました。"
    saved = load_settings(served_store)
    assert (saved.username, saved.password, saved.security_token, saved.login_url,
            saved.contact_fetch) == (emu.username, emu.password, emu.security_token,
                                     emu.login_url, "after_call")
    # the secrets are not rendered back: the page says they are stored
    assert page.input_value("#password") == "" and page.input_value("#security_token") == ""
    assert page.locator(".badge.ok", has_text="保存済みです").count() == 2


def test_stored_secrets_never_appear_in_any_page_html(page, admin_server, emu, served_store):
    from core.settings import save_settings

    save_settings(served_store, {"username": emu.username, "password": emu.password,
                          "security_token": emu.security_token, "smtp_password": "smtp-secret-XYZ",
                          "smtp_host": "smtp.example.com"})
    browser_login(page, admin_server.url)
    for path in ("/", "/settings/", "/alerts/", "/errors/", "/errors/common", "/calls/", "/contacts/"):
        page.goto(admin_server.url + path)
        html = page.content()
        for secret in (emu.password, emu.security_token, "smtp-secret-XYZ"):
            assert secret not in html, path


def test_error_log_shows_script_text_escaped(page, admin_server, served_store):
    with served_store.transaction() as db:
        db.execute("INSERT INTO error_log (first_at, last_at, integration, operation, code, "
                   "message, detail, count, open) VALUES ('2999-01-01T00:00:00+00:00', "
                   "'2999-01-01T00:00:00+00:00', 'salesforce', 'lookup', 'UNKNOWN', "
                   "'<script>alert(\"xss\")</script>', '<script>alert(\"detail\")</script>', 1, 1)")
    browser_login(page, admin_server.url)
    page.goto(admin_server.url + "/errors/")
    assert page.locator("text=<script>alert(\"xss\")</script>").count() == 1
    assert page.evaluate("document.scripts.length") == 0
    assert page.dialogs == []


def test_a_form_posted_without_its_csrf_token_is_rejected(page, admin_server, served_store):
    from core.settings import load_settings

    browser_login(page, admin_server.url)
    page.goto(admin_server.url + "/alerts/")
    page.evaluate("document.querySelector('#smtp_host').form.querySelector('[name=csrf_token]').remove()")
    page.fill("#smtp_host", "attacker.example.com")
    page.click("#save")
    assert "フォームを受け付けられませんでした" in page.content()
    assert load_settings(served_store).smtp_host != "attacker.example.com"


def test_the_language_switch(page, admin_server):
    browser_login(page, admin_server.url)
    page.goto(admin_server.url + "/settings/")
    assert page.locator("#submit").input_value() == "接続をテストして保存"
    page.click("#lang-en")
    assert page.url == admin_server.url + "/settings/"
    assert page.locator("#submit").input_value() == "Test connection and save"
    assert page.locator("html").get_attribute("lang") == "en"
    page.goto(admin_server.url + "/calls/")
    assert page.locator("h1").inner_text() == "Call history"
    page.click("#lang-ja")
    assert page.locator("h1").inner_text() == "応対履歴一覧"


OAUTH_FIELDS = ("#oauth_client_id", "#oauth_client_secret")
OAUTH_WEB_ONLY = ("#callback_url", "#connect")
LEGACY_FIELDS = ("#username", "#password", "#security_token")


def shown(page, selectors) -> list[str]:
    """The selectors whose element the admin can see."""
    return [s for s in selectors if page.locator(s).is_visible()]


def choose_method(page, method: str) -> None:
    page.check(f"input[name=auth_method][value={method}]")


def test_settings_show_only_the_chosen_authentication_methods_fields(page, admin_server):
    browser_login(page, admin_server.url)
    page.goto(admin_server.url + "/settings/")
    choose_method(page, "password")
    assert shown(page, OAUTH_FIELDS + OAUTH_WEB_ONLY) == []
    assert shown(page, LEGACY_FIELDS) == list(LEGACY_FIELDS)
    connect = page.get_by_role("button", name="Salesforce ID で認証", include_hidden=True)
    assert connect.count() == 1 and not connect.is_visible()       # in the page, not shown
    choose_method(page, "oauth_web")
    assert shown(page, LEGACY_FIELDS) == []
    assert shown(page, OAUTH_FIELDS + OAUTH_WEB_ONLY) == list(OAUTH_FIELDS + OAUTH_WEB_ONLY)
    choose_method(page, "oauth_client_credentials")
    assert shown(page, LEGACY_FIELDS + OAUTH_WEB_ONLY) == []
    assert shown(page, OAUTH_FIELDS) == list(OAUTH_FIELDS)
    # the common options stay, numbered on from the method: 1 method, 2 its fields, 3, 4
    common = ("#sandbox", "#contact_fetch-0", "#submit")
    assert shown(page, common) == list(common)
    assert page.locator("form.settings ol.items > li").count() == 4
    assert page.locator("form.settings ol").count() == 1


def test_after_a_validation_error_the_chosen_method_still_decides(page, admin_server, served_store):
    from core.settings import load_settings

    browser_login(page, admin_server.url)
    page.goto(admin_server.url + "/settings/")
    before = load_settings(served_store)
    choose_method(page, "oauth_web")
    page.fill("#oauth_client_id", "")
    page.click("#submit")
    page.wait_for_load_state()
    assert page.locator("input[name=auth_method][value=oauth_web]").is_checked()
    assert page.locator(".field.has-error #oauth_client_id").is_visible()
    assert "コンシューマー鍵" in page.locator(".field.has-error").inner_text()
    assert shown(page, LEGACY_FIELDS) == []
    assert load_settings(served_store) == before


def test_an_error_in_the_other_methods_fields_is_not_hidden(page, admin_server, served_store):
    from core.settings import load_settings

    browser_login(page, admin_server.url)
    page.goto(admin_server.url + "/settings/")
    before = load_settings(served_store)
    choose_method(page, "oauth_web")
    page.fill("#oauth_client_id", "k" * 1100)        # over the 1,024 characters a key may have
    choose_method(page, "password")
    page.click("#submit")
    page.wait_for_load_state()
    assert page.locator("input[name=auth_method][value=password]").is_checked()
    assert shown(page, LEGACY_FIELDS) == list(LEGACY_FIELDS)
    assert page.locator(".field.has-error #oauth_client_id").is_visible()
    assert shown(page, OAUTH_WEB_ONLY) == []
    assert load_settings(served_store) == before
