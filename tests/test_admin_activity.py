"""Calls logged as Salesforce Tasks, as the admin shows them, through Flask's test client against
the local Salesforce emulator: each call's logging state in the call history (waiting with its
next attempt, sending, logged with a link to the Task, failed with Salesforce's reason and the
catalogue's, skipped, not logged), "log again", the activity settings and the overview's counts.
Calls are placed and ended through the plugin as a host loads it; Tasks go out when a test calls
core.activity.send, as the scheduler would."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import zoneinfo

import pytest
from markupsafe import escape

from core import activity
from core.errors import entry_for
from core.settings import load_settings, save_settings
from helpers import csrf_token, end, field_has_error, page_html, post_form, rest_calls, ring

CONTACT_NUMBER = "03-1234-5678"        # 山田 太郎 (Contact) of the sample org
UNKNOWN_NUMBER = "03-9876-0000"        # no record has it
RULE_MESSAGE = "通話の件名にテスト用の禁止語があります"
TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")


@pytest.fixture(scope="module")
def emu_server(tmp_path_factory):
    from emulator import Emulator

    from helpers import build_org

    with Emulator(build_org(), cert_dir=str(tmp_path_factory.mktemp("admin-activity-ca"))) as emu:
        yield emu


def place_call(host, number, agent):
    """Ring and end an answered inbound call through the host; its call id."""
    placed, _, _ = ring(host, number, agent_id=agent)
    end(host, placed, answered=True, duration=65.0)
    return placed.call_id


def tasks_of(emu, call_id):
    return [t for t in emu.org.records["Task"] if t.get("CallObject") == call_id]


def history_page(client, lang="ja") -> str:
    return page_html(client, "/calls/", lang)


def row_of(html: str, agent: str) -> str:
    """The call history row of the call taken by ``agent``."""
    for row in html.split("<tr>")[1:]:
        if f"<td>{agent}</td>" in row:
            return row.split("</tr>")[0]
    raise AssertionError(f"no row for agent {agent}")


def state_cell(row: str) -> str:
    return re.search(r'<td class="task">(.*?)</td>', row, re.S).group(1)


def flashes(client) -> str:
    html = history_page(client)
    return " ".join(re.findall(r'<div class="flash [a-z]+" role="status">(.*?)</div>', html, re.S))


def log_again(client, call_id, with_token=True):
    data = {"csrf_token": csrf_token(client, "/calls/")} if with_token else {}
    return client.post(f"/calls/{call_id}/log-again", data=data)


@pytest.fixture
def calls(logging_store, emu, host):
    """One call in each state, each taken by its own agent: {state: call id}."""
    found = {"logged": place_call(host, CONTACT_NUMBER, "agent-logged"),
             "failed": place_call(host, CONTACT_NUMBER, "agent-failed"),
             "skipped": place_call(host, UNKNOWN_NUMBER, "agent-skipped")}
    emu.add_validation_rule("Task", RULE_MESSAGE, lambda fields: fields.get("CallObject") == found["failed"])
    emu.reset_counters()
    activity.send(logging_store)
    found["spent"] = rest_calls(emu)
    save_settings(logging_store, {"activity_logging": False})
    found["not logged"] = place_call(host, CONTACT_NUMBER, "agent-none")
    save_settings(logging_store, {"activity_logging": True})
    found["before"] = dt.datetime.now(TOKYO).replace(microsecond=0)
    found["waiting"] = place_call(host, CONTACT_NUMBER, "agent-waiting")
    found["after"] = dt.datetime.now(TOKYO)
    return found


# -- the states in the call history ------------------------------------------------------------

def test_a_logged_call_links_its_task(admin_client, calls, emu):
    task = tasks_of(emu, calls["logged"])
    assert len(task) == 1
    cell = state_cell(row_of(history_page(admin_client), "agent-logged"))
    link = re.search(r'<a href="([^"]+)" target="_blank" rel="noopener noreferrer">登録済み</a>', cell)
    assert link and link.group(1).startswith("https://") and f"/Task/{task[0]['Id']}/" in link.group(1)
    assert "再登録" not in cell
    assert "Logged</a>" in state_cell(row_of(history_page(admin_client, "en"), "agent-logged"))


def test_a_failed_call_shows_salesforces_reason_and_what_to_do(admin_client, calls, emu):
    assert tasks_of(emu, calls["failed"]) == []
    entry = entry_for("FIELD_CUSTOM_VALIDATION_EXCEPTION")
    cell = state_cell(row_of(history_page(admin_client), "agent-failed"))
    assert "登録失敗" in cell and RULE_MESSAGE in cell
    assert str(escape(entry.message_ja)) in cell and str(escape(entry.remedy_ja)) in cell
    assert "再登録" in cell
    english = state_cell(row_of(history_page(admin_client, "en"), "agent-failed"))
    assert "Failed" in english and str(escape(entry.message_en)) in english and "Log again" in english


def test_a_skipped_call_says_no_record_matched(admin_client, calls, emu):
    assert tasks_of(emu, calls["skipped"]) == []
    cell = state_cell(row_of(history_page(admin_client), "agent-skipped"))
    assert "対象外" in cell and "該当する Salesforce レコードがありません。" in cell and "再登録" in cell
    assert "Skipped" in state_cell(row_of(history_page(admin_client, "en"), "agent-skipped"))


def test_a_call_never_queued_says_not_logged(admin_client, calls):
    cell = state_cell(row_of(history_page(admin_client), "agent-none"))
    assert "登録なし" in cell and "再登録" in cell
    assert "Not logged" in state_cell(row_of(history_page(admin_client, "en"), "agent-none"))


def test_a_waiting_call_shows_its_next_attempt(admin_client, calls):
    cell = state_cell(row_of(history_page(admin_client), "agent-waiting"))
    assert "登録待ち" in cell and "再登録" not in cell
    shown = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", cell).group(1)
    assert calls["before"].strftime("%Y-%m-%d %H:%M:%S") <= shown <= calls["after"].strftime("%Y-%m-%d %H:%M:%S")


def test_a_call_being_sent_says_sending_and_offers_no_button(admin_client, logging_store, emu, host):
    call_id = place_call(host, CONTACT_NUMBER, "agent-sending")
    emu.faults.set(hang=True, kinds={"collections"})
    sender = threading.Thread(target=activity.send, args=(logging_store,))
    sender.start()
    try:
        deadline = time.monotonic() + 10
        while (activity.get_state(logging_store, call_id) or {}).get("state") != "sending":
            assert time.monotonic() < deadline, "the call was never claimed"
            time.sleep(0.05)
        cell = state_cell(row_of(history_page(admin_client), "agent-sending"))
        assert "送信中" in cell and "再登録" not in cell
    finally:
        emu.faults.clear()
        sender.join(30)
    assert len(tasks_of(emu, call_id)) == 1


# -- log again ---------------------------------------------------------------------------------

def test_log_again_queues_a_failed_call_and_the_next_send_logs_it(admin_client, calls, logging_store, emu):
    response = log_again(admin_client, calls["failed"])
    assert response.status_code == 302
    assert "再登録を受け付けました。" in flashes(admin_client)
    cell = state_cell(row_of(history_page(admin_client), "agent-failed"))
    assert "登録待ち" in cell and RULE_MESSAGE not in cell
    emu.clear_validation_rules()
    activity.send(logging_store)
    assert len(tasks_of(emu, calls["failed"])) == 1
    assert ">登録済み</a>" in state_cell(row_of(history_page(admin_client), "agent-failed"))


def test_log_again_logs_a_skipped_call_once_unmatched_calls_are_logged(admin_client, calls, logging_store, emu):
    save_settings(logging_store, {"activity_unmatched": "log"})
    log_again(admin_client, calls["skipped"])
    activity.send(logging_store)
    task = tasks_of(emu, calls["skipped"])
    assert len(task) == 1 and not task[0].get("WhoId")


def test_log_again_logs_a_call_never_queued(admin_client, calls, logging_store, emu):
    log_again(admin_client, calls["not logged"])
    assert "登録待ち" in state_cell(row_of(history_page(admin_client), "agent-none"))
    activity.send(logging_store)
    assert len(tasks_of(emu, calls["not logged"])) == 1


def test_log_again_on_a_logged_call_says_so_and_logs_nothing_twice(admin_client, calls, logging_store, emu):
    log_again(admin_client, calls["logged"])
    assert "この通話は登録済みか、Salesforce へ送信中です。" in flashes(admin_client)
    activity.send(logging_store, force=True)
    assert len(tasks_of(emu, calls["logged"])) == 1


def test_log_again_without_the_csrf_token_is_refused(admin_client, calls, logging_store):
    response = log_again(admin_client, calls["failed"], with_token=False)
    assert response.status_code == 400
    assert activity.get_state(logging_store, calls["failed"])["state"] == "failed"


def test_log_again_for_a_call_not_in_the_history(admin_client, logging_store):
    for call_id in ("no-such-call", "<script>alert(1)</script>", "' OR 1=1 --", "x" * 3000):
        response = log_again(admin_client, call_id)
        assert response.status_code == 302
        assert "この通話は応対履歴にありません。" in flashes(admin_client)
        assert activity.get_state(logging_store, call_id) is None


def test_log_again_while_logging_is_off_says_nothing_is_sent(admin_client, calls, logging_store):
    save_settings(logging_store, {"activity_logging": False})
    log_again(admin_client, calls["failed"])
    assert "活動の登録がオフか Salesforce が未接続のため送信されません" in flashes(admin_client)


# -- the overview ------------------------------------------------------------------------------

def cell(html: str, element_id: str) -> str:
    return re.search(rf'id="{element_id}"[^>]*>(.*?)</td>', html, re.S).group(1)


def test_the_overview_counts_the_calls_of_each_state_and_todays_spending(admin_client, calls, emu):
    admin_client.get("/lang/ja")
    html = admin_client.get("/").get_data(as_text=True)
    assert "通話の活動登録（Salesforce）" in html
    assert cell(html, "activity-waiting") == "1"
    assert '<span class="badge bad">1</span>' in cell(html, "activity-failed")
    assert cell(html, "activity-logged") == "1"
    assert cell(html, "activity-skipped") == "1"
    allowed = emu.default_daily_limit * load_settings_share(admin_client) // 100
    assert cell(html, "activity-spent") == f"{calls['spent']} / {allowed}"


def load_settings_share(client) -> int:
    from admin import get_store

    with client.application.app_context():
        return load_settings(get_store()).activity_api_share


# -- the activity settings ---------------------------------------------------------------------

ACTIVITY_FORM = {"activity_logging": "y", "activity_unmatched": "skip", "activity_language": "ja",
                 "activity_subject": "", "call_url_template": "", "activity_api_share": "20",
                 "save_activity": "1"}


def test_the_settings_page_shows_and_saves_the_activity_settings(admin_client, store):
    admin_client.get("/lang/ja")
    html = admin_client.get("/settings/").get_data(as_text=True)
    form = html.split('id="activity"')[1].split("</form>")[0]
    assert "件名のテンプレート" in form and "{direction} 通話の種別" in form
    assert 'id="activity_logging" name="activity_logging" type="checkbox" value="y"' in form and "checked" in form
    assert 'value="20"' in form
    response = post_form(admin_client, "/settings/activity", {
        "activity_unmatched": "log", "activity_language": "en",
        "activity_subject": "{direction}: {company} / {person} ({agent}, {duration})",
        "call_url_template": "https://pbx.example.jp/cdr?id={call_id}&agent={agent}",
        "activity_api_share": "35", "save_activity": "1"})
    assert response.status_code == 302 and response.location.endswith("/settings/#activity")
    saved = load_settings(store)
    assert (saved.activity_logging, saved.activity_unmatched, saved.activity_language,
            saved.activity_subject, saved.call_url_template, saved.activity_api_share) == \
        (False, "log", "en", "{direction}: {company} / {person} ({agent}, {duration})",
         "https://pbx.example.jp/cdr?id={call_id}&agent={agent}", 35)
    assert "活動の登録の設定を保存しました。" in admin_client.get("/settings/").get_data(as_text=True)
    admin_client.get("/lang/en")
    english = admin_client.get("/settings/").get_data(as_text=True)
    assert "Subject template" in english and "Share of the daily API limit (percent)" in english


def test_saving_the_activity_settings_keeps_the_other_settings(admin_client, store):
    save_settings(store, {"username": "kept@example.com", "password": "pw", "index_minutes": 30})
    post_form(admin_client, "/settings/activity", {**ACTIVITY_FORM, "activity_api_share": "50"})
    saved = load_settings(store)
    assert (saved.username, saved.password, saved.index_minutes, saved.activity_api_share) == \
        ("kept@example.com", "pw", 30, 50)


HOSTILE_ACTIVITY_SETTINGS = [
    ("activity_subject", "{name.__class__}"),
    ("activity_subject", "{unknown}"),
    ("activity_subject", "{"),
    ("activity_subject", "{name!r}"),
    ("activity_subject", "{name:>999999}"),
    ("activity_subject", "{0}"),
    ("activity_subject", "x" * 256),
    ("activity_subject", "件名\r\nBcc: x@example.com"),
    ("activity_subject", "<script>alert(1)</script>{secret}"),
    ("call_url_template", "javascript:alert(1)//{call_id}"),
    ("call_url_template", "ftp://pbx.example.jp/{call_id}"),
    ("call_url_template", "https://pbx.example.jp/{password}"),
    ("call_url_template", "https://{call_id.__dict__}"),
    ("call_url_template", "https:///{call_id}"),
    ("call_url_template", "https://pbx.example.jp/" + "a" * 1100),
    ("activity_api_share", ""),
    ("activity_api_share", "0"),
    ("activity_api_share", "101"),
    ("activity_api_share", "２０"),
    ("activity_api_share", "20.5"),
    ("activity_api_share", "-5"),
    ("activity_api_share", '"><img src=x onerror=alert(1)>'),
    ("activity_unmatched", "maybe"),
    ("activity_language", "fr"),
]


@pytest.mark.parametrize("name,value", HOSTILE_ACTIVITY_SETTINGS)
def test_hostile_activity_settings_give_a_field_error_and_save_nothing(admin_client, store, name, value):
    before = load_settings(store)
    response = post_form(admin_client, "/settings/activity", {**ACTIVITY_FORM, name: value})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert field_has_error(html, name)
    assert load_settings(store) == before
    assert "<script>alert" not in html and "<img src=x" not in html
    assert 'id="screen_budget_ms"' in html and 'id="index_minutes"' in html


def test_activity_settings_without_their_csrf_token_are_refused(admin_client, store):
    response = admin_client.post("/settings/activity", data={**ACTIVITY_FORM, "activity_api_share": "90"})
    assert response.status_code == 400
    assert load_settings(store).activity_api_share == 20
