"""The phone index page and the index settings through Flask's test client, against the local
Salesforce emulator: what the page shows in each state, "sync now" in the background, the last
error with its remedy, login and CSRF, hostile settings."""

from __future__ import annotations

import datetime as dt
import re
import time
import zoneinfo

import pytest
from markupsafe import escape

from core import jobs
from core.errors import entry_for
from core.settings import load_settings, save_settings
from helpers import connect, csrf_token, field_has_error, page_html, post_form

# stored the way people type them; the E.164 number each holds, as the test knows it
ODD_RECORDS = {
    "Account": [{"Name": "株式会社索引テスト", "Phone": "+81-(0)3-5555-0404",
                 "LastModifiedDate": "2024-05-01T09:00:00.000+0000"}],
    "Contact": [{"LastName": "表記", "FirstName": "揺子", "Phone": "TEL 03‐5555‐0303（代表）",
                 "LastModifiedDate": "2024-05-02T09:00:00.000+0000"}],
    "Lead": [{"LastName": "見込", "Company": "リード商事", "Phone": "０６ー６６６６ー０５０５",
              "LastModifiedDate": "2024-05-03T09:00:00.000+0000"}],
}
RECORDS, NUMBERS = 3, 3


@pytest.fixture(scope="module")
def emu():
    from emulator import Emulator, Org

    with Emulator(Org(records=ODD_RECORDS, name="索引テスト組織")) as emu:
        yield emu


@pytest.fixture
def connected_store(store, emu, app):
    """The instance connected to this module's emulator; no sync left running afterwards."""
    from admin.phone_index.runner import background_sync
    from core.salesforce import forget_connection

    emu.reset()
    connect(store, emu)
    yield store
    emu.faults.clear()
    assert background_sync(app, store).wait(30), "a sync started by the test never ended"
    forget_connection(store)


def page(client, lang="ja") -> str:
    """The index page's HTML in ``lang``."""
    return page_html(client, "/index/", lang)


def cell(html: str, element_id: str) -> str:
    """The text of the element with ``element_id``."""
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.S)
    assert found, f"#{element_id} not on the page"
    return found.group(1).strip()


def wait_for_page(client, done, timeout=30.0, lang="ja") -> str:
    """Reload the page (as an admin would) until ``done(html)``; the last HTML."""
    deadline = time.monotonic() + timeout
    while True:
        html = page(client, lang)
        if done(html) or time.monotonic() > deadline:
            return html
        time.sleep(0.2)


def click(client, button="sync_now"):
    """Press "sync now" (or ``button``) on the index page, with the page's CSRF token."""
    return client.post("/index/sync", data={"csrf_token": csrf_token(client, "/index/"), button: "1"})


# -- access and CSRF ---------------------------------------------------------------------------

@pytest.mark.parametrize("method,url", [("get", "/index/"), ("post", "/index/sync"),
                                        ("post", "/settings/index")])
def test_the_index_page_and_its_forms_need_the_admin(client, method, url):
    data = {"csrf_token": csrf_token(client, "/auth/login")} if method == "post" else None
    response = getattr(client, method)(url, data=data)
    assert response.status_code == 302 and "/auth/login" in response.location


def test_sync_without_its_csrf_token_is_refused_and_starts_nothing(admin_client, connected_store, emu):
    response = admin_client.post("/index/sync", data={"sync_now": "1"})
    assert response.status_code == 400
    time.sleep(0.5)
    assert emu.api_calls.get("query", 0) == 0 and emu.api_calls.get("composite", 0) == 0
    assert cell(page(admin_client), "index-records") == "0"


def test_index_settings_without_their_csrf_token_are_refused(admin_client, store):
    response = admin_client.post("/settings/index", data={"index_minutes": "30", "index_full_days": "7",
                                                          "index_bulk_threshold": "0"})
    assert response.status_code == 400
    assert load_settings(store).index_minutes == 15


def test_the_navigation_links_the_index_page(admin_client):
    admin_client.get("/lang/ja")
    html = admin_client.get("/").get_data(as_text=True)
    assert '<a href="/index/" class="">電話番号インデックス</a>' in html


# -- states ------------------------------------------------------------------------------------

def test_not_connected_says_so_and_how_to_connect(admin_client):
    html = page(admin_client, "ja")
    assert cell(html, "index-state") == "Salesforce 未接続"
    assert "Salesforce に接続されていないため" in html and 'href="/settings/"' in html
    html = page(admin_client, "en")
    assert cell(html, "index-state") == "Salesforce not connected"
    assert "Salesforce is not connected: there is nothing to index." in html


def test_off_says_so_and_links_the_setting(admin_client, connected_store):
    save_settings(connected_store, {"phone_index": False})
    html = page(admin_client, "ja")
    assert cell(html, "index-state") == "オフ"
    assert "電話番号インデックスはオフです" in html
    assert '<a href="/settings/#phone-index">設定でオンにする</a>' in html
    assert cell(page(admin_client, "en"), "index-state") == "Off"


def test_sync_when_off_starts_nothing_and_says_why(admin_client, connected_store, emu):
    save_settings(connected_store, {"phone_index": False})
    response = click(admin_client)
    assert response.status_code == 302
    html = page(admin_client)
    assert "同期するものがありません" in html
    assert emu.api_calls.get("composite", 0) == 0 and cell(html, "index-records") == "0"


# -- sync now ----------------------------------------------------------------------------------

def test_sync_now_builds_the_index_in_the_background(admin_client, connected_store, emu):
    save_settings(connected_store, {"time_zone": "Asia/Tokyo"})
    assert cell(page(admin_client), "index-state") == "未作成"
    before = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Tokyo"))
    response = click(admin_client)
    assert response.status_code == 302 and response.location.endswith("/index/")
    assert "同期を開始しました" in admin_client.get("/index/").get_data(as_text=True)
    html = wait_for_page(admin_client, lambda h: cell(h, "index-state") == "使用中")
    after = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert cell(html, "index-records") == str(RECORDS)
    assert cell(html, "index-numbers") == str(NUMBERS)
    spent = sum(n for kind, n in emu.api_calls.items() if kind != "login")
    assert int(cell(html, "index-api-calls")) == spent > 0
    # shown in the configured zone (Tokyo), to the second
    shown = cell(html, "index-last-sync")
    assert before.strftime("%Y-%m-%d %H:%M") <= shown[:16] <= after.strftime("%Y-%m-%d %H:%M")
    assert re.fullmatch(r"\d+ 秒", cell(html, "index-age"))       # seconds old
    for name in ("Contact", "Account", "Lead"):
        row = re.search(rf'id="index-object-{name}">(.*?)</tr>', html, re.S).group(1)
        assert "最新" in row and '<td class="num">1</td>' in row
    assert f"{RECORDS} 件" in cell(html, "index-last-run")
    english = page(admin_client, "en")
    assert cell(english, "index-state") == "Ready"
    assert f"{RECORDS} records" in english


def test_a_second_click_while_a_sync_runs_says_it_is_running(admin_client, connected_store, emu, app):
    emu.faults.set(hang=True)
    click(admin_client)
    html = wait_for_page(admin_client, lambda h: 'id="index-running"' in h, timeout=5)
    assert "同期を実行中です" in html
    click(admin_client, "full_sync")
    assert "同期はすでに実行中です" in page(admin_client)
    emu.faults.clear()
    html = wait_for_page(admin_client, lambda h: cell(h, "index-state") == "使用中")
    assert 'id="index-running"' not in html and cell(html, "index-records") == str(RECORDS)


def test_full_resync_reads_every_record_again(admin_client, connected_store, emu):
    click(admin_client)
    wait_for_page(admin_client, lambda h: cell(h, "index-state") == "使用中")
    emu.reset_counters()
    click(admin_client, "full_sync")
    assert "全件の再同期を開始しました" in admin_client.get("/index/").get_data(as_text=True)
    html = wait_for_page(admin_client, lambda h: 'id="index-running"' not in h and "index-last-run" in h)
    assert cell(html, "index-records") == str(RECORDS)
    assert emu.api_calls.get("query", 0) >= 3      # each object's records read again


def test_a_sync_held_by_another_process_is_reported(admin_client, connected_store, emu):
    holder = jobs.new_holder()
    assert jobs.acquire_lease(connected_store, jobs.INDEX, holder) is not None
    try:
        click(admin_client)
        html = wait_for_page(admin_client, lambda h: "index-last-run" in h, timeout=10)
    finally:
        jobs.release_lease(connected_store, jobs.INDEX, holder)
    assert "別のプロセスが同期中のため、実行しませんでした。" in html
    assert cell(html, "index-records") == "0"


def test_a_failed_sync_shows_the_catalogue_message_and_remedy(admin_client, connected_store, emu):
    emu.faults.set(http_status=503)
    click(admin_client)
    html = wait_for_page(admin_client, lambda h: 'id="index-error"' in h)
    stale, cause = entry_for("INDEX_STALE"), entry_for("SERVER_UNAVAILABLE")   # what a 503 means
    assert cell(html, "index-state") == "更新できていません"
    box = html.split('id="index-error"')[1].split("</div>")[0]
    for text in (stale.message_ja, cause.message_ja, cause.remedy_ja):
        assert str(escape(text)) in box
    english = page(admin_client, "en")
    box = english.split('id="index-error"')[1].split("</div>")[0]
    for text in (stale.message_en, cause.message_en, cause.remedy_en):
        assert str(escape(text)) in box
    assert cell(english, "index-state") == "Stale"
    emu.faults.clear()
    click(admin_client)
    html = wait_for_page(admin_client, lambda h: cell(h, "index-state") == "使用中")
    assert 'id="index-error"' not in html


# -- the index settings ------------------------------------------------------------------------

INDEX_FORM = {"phone_index": "y", "index_minutes": "15", "index_full_days": "7",
              "index_bulk_threshold": "200000", "save_index": "1"}


def test_the_settings_page_shows_and_saves_the_index_settings(admin_client, store):
    html = admin_client.get("/settings/").get_data(as_text=True)
    assert 'id="phone_index"' in html and 'value="15"' in html and 'value="200000"' in html
    response = post_form(admin_client, "/settings/index", {
        "index_minutes": "30", "index_full_days": "14", "index_bulk_threshold": "0", "save_index": "1"})
    assert response.status_code == 302 and response.location.endswith("/settings/#phone-index")
    saved = load_settings(store)
    # the box was left unchecked: the index is turned off
    assert (saved.phone_index, saved.index_minutes, saved.index_full_days,
            saved.index_bulk_threshold) == (False, 30, 14, 0)
    admin_client.get("/lang/ja")
    assert "電話番号インデックスの設定を保存しました。" in admin_client.get("/settings/").get_data(as_text=True)
    post_form(admin_client, "/settings/index", INDEX_FORM)
    assert load_settings(store).phone_index is True


def test_saving_the_index_settings_keeps_the_salesforce_settings(admin_client, store):
    save_settings(store, {"username": "kept@example.com", "password": "pw", "nightly_time": "21:30"})
    post_form(admin_client, "/settings/index", {**INDEX_FORM, "index_minutes": "5"})
    saved = load_settings(store)
    assert (saved.username, saved.password, saved.nightly_time, saved.index_minutes) == \
        ("kept@example.com", "pw", "21:30", 5)


HOSTILE_INDEX_SETTINGS = [
    ("index_minutes", ""),
    ("index_minutes", "0"),
    ("index_minutes", "1441"),
    ("index_minutes", "-5"),
    ("index_minutes", "１５"),
    ("index_minutes", "9" * 5000),
    ("index_minutes", "15\x00"),
    ("index_minutes", "15\r\nX: 1"),
    ("index_minutes", "<script>alert(1)</script>"),
    ("index_full_days", ""),
    ("index_full_days", "31"),
    ("index_full_days", "７"),
    ("index_full_days", "7.5"),
    ("index_full_days", "\x1b[31m7"),
    ("index_bulk_threshold", ""),
    ("index_bulk_threshold", "-1"),
    ("index_bulk_threshold", "２００"),
    ("index_bulk_threshold", "1e6"),
    ("index_bulk_threshold", "1" * 400),
    ("index_bulk_threshold", '"><img src=x onerror=alert(1)>'),
]


@pytest.mark.parametrize("name,value", HOSTILE_INDEX_SETTINGS)
def test_hostile_index_settings_give_a_field_error_and_save_nothing(admin_client, store, name, value):
    before = load_settings(store)
    response = post_form(admin_client, "/settings/index", {**INDEX_FORM, name: value})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert field_has_error(html, name)
    assert load_settings(store) == before
    assert "<script>alert" not in html and "<img src=x" not in html
    # the other form of the page still shows the stored values, not the posted ones
    assert 'id="screen_budget_ms"' in html


def test_a_hostile_value_gets_an_error_in_the_pages_language(admin_client, store):
    admin_client.get("/lang/en")
    html = post_form(admin_client, "/settings/index", {**INDEX_FORM, "index_minutes": "１５"}) \
        .get_data(as_text=True)
    english_error = re.search(r'name="index_minutes".*?<div class="error" role="alert">(.*?)</div>',
                              html, re.S).group(1)
    admin_client.get("/lang/ja")
    html = post_form(admin_client, "/settings/index", {**INDEX_FORM, "index_minutes": "１５"}) \
        .get_data(as_text=True)
    japanese_error = re.search(r'name="index_minutes".*?<div class="error" role="alert">(.*?)</div>',
                               html, re.S).group(1)
    assert english_error != japanese_error
    assert re.search(r"[0-9]", english_error) or "digit" in english_error.lower() \
        or "number" in english_error.lower()
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", japanese_error)
