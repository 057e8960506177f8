"""The password change in a real browser (Playwright driving Debian's Chromium against the admin
served by a real HTTP server thread): the browser that changes it stays in, another browser
logged in as the same admin is sent to the login page."""

from __future__ import annotations

import os

import pytest

from helpers import ADMIN_PASSWORD, ADMIN_USER, browser_login

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                                reason="Debian's chromium is not installed (make test installs it)")


NEW_PASSWORD = "ブラウザーで決めた new password"


def test_changing_the_password_in_the_browser_logs_the_other_browsers_out(page, browser,
                                                                          admin_server):
    other = browser.new_context(locale="ja-JP", extra_http_headers={"Accept-Language": "ja"})
    other_page = other.new_page()
    try:
        browser_login(page, admin_server.url)
        browser_login(other_page, admin_server.url)
        other_page.goto(admin_server.url + "/settings/")
        assert "/settings/" in other_page.url

        page.click("#change-password")
        assert page.locator("h1").inner_text() == "パスワードの変更"
        page.fill("#current_password", ADMIN_PASSWORD)
        page.fill("#new_password", "短すぎる")
        page.fill("#confirm_password", "短すぎる")
        page.click("#submit")
        assert page.locator(".error").inner_text() == "12 文字以上にしてください。"

        page.fill("#current_password", ADMIN_PASSWORD)
        page.fill("#new_password", NEW_PASSWORD)
        page.fill("#confirm_password", NEW_PASSWORD)
        page.click("#submit")
        assert page.locator(".flash.info").inner_text() == \
            "パスワードを変更しました。このアカウントの他のセッションは終了しました。"
        page.goto(admin_server.url + "/settings/")
        assert "/settings/" in page.url                      # this browser stays in

        other_page.reload()
        assert "/auth/login" in other_page.url               # the other one is out
        other_page.fill("#username", ADMIN_USER)
        other_page.fill("#password", NEW_PASSWORD)
        other_page.click("#submit")
        assert "/auth/login" not in other_page.url           # and comes back with the new one
        assert page.dialogs == []
    finally:
        other.close()
