"""The phone index page in a real browser (Playwright driving Debian's Chromium) against the admin
served by a real HTTP server thread, connected to the local Salesforce emulator."""

from __future__ import annotations

import os
import time

import pytest

from helpers import browser_login, connect

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                                reason="Debian's chromium is not installed (make test installs it)")

RECORDS = {
    "Account": [{"Name": "株式会社ブラウザ索引", "Phone": "+81-(0)3-5555-0707",
                 "LastModifiedDate": "2024-05-01T09:00:00.000+0000"}],
    "Contact": [{"LastName": "表記", "FirstName": "花", "Phone": "TEL 03‐5555‐0808（代表）",
                 "LastModifiedDate": "2024-05-02T09:00:00.000+0000"},
                {"LastName": "全角", "FirstName": "次郎", "MobilePhone": "０９０－５５５５－０９０９",
                 "LastModifiedDate": "2024-05-02T09:00:00.000+0000"}],
}


@pytest.fixture(scope="module")
def emu():
    from emulator import Emulator, Org

    with Emulator(Org(records=RECORDS, name="ブラウザ索引組織")) as emu:
        yield emu


def reload_until(page, selector: str, text: str, timeout: float = 30.0) -> str:
    """Reload the page as an admin would until ``selector`` shows ``text``; what it shows last."""
    deadline = time.monotonic() + timeout
    while True:
        shown = page.locator(selector).inner_text().strip()
        if shown == text or time.monotonic() > deadline:
            return shown
        time.sleep(0.3)
        page.reload()


def test_sync_now_fills_the_index_and_the_page_shows_it(page, admin_server, served_store, emu):
    connect(served_store, emu)
    browser_login(page, admin_server.url)
    page.click("nav >> text=電話番号インデックス")
    assert page.url == admin_server.url + "/index/"
    assert page.locator("h1").inner_text() == "電話番号インデックス"
    assert page.locator("#index-state").inner_text() == "未作成"
    assert page.locator("#index-records").inner_text() == "0"
    page.click("#sync_now")
    assert "同期を開始しました" in page.locator(".flash.success").inner_text()
    assert reload_until(page, "#index-state", "使用中") == "使用中"
    assert page.locator("#index-records").inner_text() == str(sum(map(len, RECORDS.values())))
    assert page.locator("#index-numbers").inner_text() == "3"
    assert page.locator("#index-object-Contact td").nth(2).inner_text() == "2"
    assert page.evaluate("document.scripts.length") == 0
    page.click("#lang-en")
    assert page.locator("h1").inner_text() == "Phone index"
    assert page.locator("#index-state").inner_text() == "Ready"
    assert page.locator("#sync_now").input_value() == "Sync now"


def test_the_index_settings_show_a_clear_error_for_full_width_digits(page, admin_server, served_store):
    from core.settings import load_settings

    browser_login(page, admin_server.url)
    page.goto(admin_server.url + "/index/")
    page.click("text=インデックスの設定")
    before = load_settings(served_store)
    page.fill("#index_minutes", "１５")
    page.fill("#index_bulk_threshold", "<script>alert(1)</script>")
    page.click("#save_index")
    page.wait_for_load_state()
    assert page.locator(".field.has-error #index_minutes").is_visible()
    assert page.locator(".field.has-error #index_bulk_threshold").is_visible()
    assert "半角数字" in page.locator(".field.has-error").first.inner_text()
    assert page.input_value("#index_bulk_threshold") == "<script>alert(1)</script>"
    assert page.evaluate("document.scripts.length") == 0
    assert load_settings(served_store) == before
    page.fill("#index_minutes", "30")
    page.fill("#index_bulk_threshold", "0")
    page.click("#save_index")
    assert page.locator(".flash.success").inner_text() == "電話番号インデックスの設定を保存しました。"
    saved = load_settings(served_store)
    assert (saved.index_minutes, saved.index_bulk_threshold, saved.phone_index) == (30, 0, True)
