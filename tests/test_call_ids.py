"""The host's call id is the call's key, exactly (issue 13): ids that differ only in a control
character, surrounding spaces or past the 200th character are distinct calls, each with its own
history row, its own Task and its own admin buttons; an id that cannot be stored (not text, a
lone surrogate, bytes that are not UTF-8, a NUL character, longer than 1,000 characters) is
refused with an error-log row on both databases, while its screen still answers and nothing is
raised into the host.

Calls go through the plugin as a host loads it, Tasks to the local Salesforce emulator over
HTTPS, admin pages through Flask's test client and Chromium."""

from __future__ import annotations

import re

import pytest

from core import activity, history
from helpers import DISPLAY_KEYS, browser_login, csrf_token, end, error_rows, ring

CONTACT_NUMBER = "03-1234-5678"        # 山田 太郎 (Contact) of the sample org
LONG = "x" * 250                       # fits the history, not a Task's 255-character CallObject

PAIRS = {
    "control character": ("id\x01A", "idA"),
    "spaces": ("  idB", "idB"),
    "201 characters": ("y" * 200 + "1", "y" * 200 + "2"),
    "past 255": (LONG + "-call-1", LONG + "-call-2"),
}
UNSTORABLE = {
    "NUL": "call-\x00A",     # PostgreSQL's text cannot hold NUL: refused on SQLite too
    "1,001 characters": "z" * 1001,
    "lone surrogate": "call-\ud800",
    "bytes not UTF-8": b"\xff\xfe-call",
    "a list": ["call"],
    "a bool": True,
}


@pytest.fixture(scope="module")
def emu_server(tmp_path_factory):
    from emulator import Emulator

    from helpers import build_org

    with Emulator(build_org(), cert_dir=str(tmp_path_factory.mktemp("call-ids-ca"))) as emu:
        yield emu


def place(host, call_id, agent="agent-1"):
    """Ring and end an answered call with this exact ``call_id``; the screen shown."""
    placed, display, _ = ring(host, CONTACT_NUMBER, agent_id=agent)
    placed.call_id = call_id
    assert end(host, placed, answered=True, duration=30.0) == []
    return display


def stored_ids(store) -> list[str]:
    return sorted(row["call_id"] for row in history.list_calls(store, limit=100))


def tasks(emu) -> list[dict]:
    return list(emu.org.records["Task"])


# -- distinct ids are distinct calls --------------------------------------------------------

@pytest.mark.parametrize("pair", PAIRS.values(), ids=list(PAIRS))
def test_ids_that_differ_anywhere_are_two_calls_and_two_tasks(logging_store, emu, host, pair):
    before = len(tasks(emu))
    for call_id in pair:
        place(host, call_id)
    assert stored_ids(logging_store) == sorted(pair)
    for call_id in pair:
        assert history.get_call(logging_store, call_id)["call_id"] == call_id

    report = activity.send(logging_store)
    assert report.logged == 2
    new = tasks(emu)[before:]
    objects = [t["CallObject"] for t in new]
    assert len(new) == 2 and len(set(objects)) == 2 and all(len(o) <= 255 for o in objects)
    for call_id in pair:
        assert activity.get_state(logging_store, call_id)["state"] == "logged"


def test_a_printable_id_that_fits_is_sent_as_it_is(logging_store, emu, host):
    place(host, "pbx-42/7 é")
    activity.send(logging_store)
    assert tasks(emu)[-1]["CallObject"] == "pbx-42/7 é"


def test_the_same_id_ending_twice_is_still_one_call(logging_store, emu, host):
    place(host, "  idB")
    place(host, "  idB")
    assert stored_ids(logging_store) == ["  idB"]


@pytest.mark.parametrize("pair", [("unc\x01A", "uncA"), (LONG + "-unc-1", LONG + "-unc-2")],
                         ids=["control character", "past 255"])
def test_an_uncertain_send_finds_each_calls_own_task(logging_store, emu, host, pair, backend):
    """The answer is lost after Salesforce created the Tasks: the next send asks for them by
    CallObject and must find each call's own Task, created once. (The module's org keeps its
    Tasks: each backend's run has ids of its own.)"""
    pair = tuple(f"{call_id}-{backend}" for call_id in pair)
    before = len(tasks(emu))
    for call_id in pair:
        place(host, call_id)
    emu.faults.set(kinds={"collections"}, times=1, drop_after=True)
    first = activity.send(logging_store)
    assert first.logged == 0 and first.deferred == 2
    emu.faults.clear()
    again = activity.send(logging_store, force=True)
    assert again.found == 2 and again.logged == 0
    new = tasks(emu)[before:]
    assert len(new) == 2
    task_ids = {activity.get_state(logging_store, c)["task_id"] for c in pair}
    assert task_ids == {t["Id"] for t in new}


# -- ids that cannot be stored ----------------------------------------------------------------

@pytest.mark.parametrize("call_id", UNSTORABLE.values(), ids=list(UNSTORABLE))
def test_an_unstorable_id_is_refused_with_an_error_row(logging_store, emu, host, call_id):
    display = place(host, call_id)
    assert set(display) == DISPLAY_KEYS and display["person"] == "山田 太郎"  # screen answered
    placed, _, _ = ring(host, CONTACT_NUMBER)
    placed.call_id = call_id
    assert end(host, placed) == []
    assert history.count_calls(logging_store) == 0
    rows = [(r["integration"], r["operation"], r["code"], r["count"])
            for r in error_rows(logging_store)]
    assert rows == [("plugin", "on_call_ended", "CALL_ID_UNSTORABLE", 2)]
    row = error_rows(logging_store)[0]
    assert "1,000" in row["message_en"] and "1,000" in row["message_ja"] and row["detail"]


def test_an_id_of_1000_characters_is_kept_and_one_more_is_refused(logging_store, host):
    place(host, "k" * 1000)
    place(host, "k" * 1001)
    assert stored_ids(logging_store) == ["k" * 1000]
    assert [r["code"] for r in error_rows(logging_store)] == ["CALL_ID_UNSTORABLE"]
    assert "longer than 1,000 characters" in error_rows(logging_store)[0]["detail"]


# -- the admin addresses each call by its own id ---------------------------------------------

ADMIN_IDS = ["id\x01A", "idA", "  idB", "idB", "a/b", "a/b/refetch", "50%", "%2F", "..", ".",
             "~x", "番号 #1?", "\u202eevil"]


def log_again_actions(html: str) -> list[str]:
    return re.findall(r'<form method="post" action="([^"]+/log-again)"', html)


def test_log_again_acts_on_the_exact_call_for_every_id(admin_client, logging_store, host):
    from core.settings import save_settings

    save_settings(logging_store, {"activity_logging": False})   # never queued: "Log again" offered
    for i, call_id in enumerate(ADMIN_IDS):
        place(host, call_id, agent=f"agent-{i}")
    save_settings(logging_store, {"activity_logging": True})
    html = admin_client.get("/calls/").get_data(as_text=True)
    actions = log_again_actions(html)
    assert len(actions) == len(ADMIN_IDS)
    token = csrf_token(admin_client, "/calls/")
    for action in actions:
        response = admin_client.post(action, data={"csrf_token": token})
        assert response.status_code == 302
    states = {c: (activity.get_state(logging_store, c) or {}).get("state") for c in ADMIN_IDS}
    assert states == dict.fromkeys(ADMIN_IDS, "waiting")


def test_a_garbled_encoded_key_is_not_in_the_history(admin_client, logging_store, host):
    token = csrf_token(admin_client, "/calls/")
    for key in ("~!!!", "~_w", "~"):
        response = admin_client.post(f"/calls/{key}/log-again", data={"csrf_token": token},
                                     follow_redirects=True)
        assert response.status_code == 200
        assert "この通話は応対履歴にありません。" in response.get_data(as_text=True)


def test_call_keys_round_trip_every_id():
    from admin.calls.views import call_id_of, call_key

    for call_id in ADMIN_IDS + ["c1", "x" * 1000, "é" * 1000, "a b", "a\\b", "\x7f"]:
        key = call_key(call_id)
        assert re.fullmatch(r"[A-Za-z0-9._~-]+", key) and key not in (".", "..")
        assert call_id_of(key) == call_id
    assert call_key("c-refetch_1.2") == "c-refetch_1.2"   # a plain id is its own key
    # an id holding NUL is never in the history (refused on both engines): its key names no call
    assert call_id_of(call_key("id\x00A")) is None


def test_the_browser_reaches_the_exact_call(page, admin_server, served_store):
    """Chromium resolves "." and ".." in a path and may re-encode it: each call's button must
    still act on that call and no other."""
    from core import registration
    from core.settings import Settings
    from plugin.call import Call

    ids = ["..", ".", "a/b", "%2F", "id\x01A", "idA", "  idB", "idB", "番号 #1?"]
    for call_id in ids:
        facts = history.call_facts(Call(call_id=call_id, remote_number=CONTACT_NUMBER).end())
        registration.record_ended_call(served_store, facts, {}, None, Settings())
    browser_login(page, admin_server.url)
    for i in range(len(ids)):
        page.goto(admin_server.url + "/calls/")
        buttons = page.locator("button.log-again")
        assert buttons.count() == len(ids) - i
        buttons.first.click()
        page.wait_for_load_state()
        assert page.url == admin_server.url + "/calls/"
    states = {c: (activity.get_state(served_store, c) or {}).get("state") for c in ids}
    assert states == dict.fromkeys(ids, "waiting")
