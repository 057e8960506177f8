"""Salesforce failing during calls, and call objects hostile to the plugin: calls are still
recorded, each failure is one error-log row with a counter, names come once Salesforce is back,
and nothing ever raises into the host."""

import datetime as dt

import pytest

from core import registration
from helpers import DISPLAY_KEYS, connect, end, error_rows, ring, runtime
from plugin.call import Call


def _fail(emu, kind):
    if kind == "down":
        emu.faults.http_status = 503
    elif kind == "reset":
        emu.faults.reset = True
    elif kind == "hanging":
        emu.faults.hang = True
    elif kind == "limit":
        emu.exhaust_daily_limit()


@pytest.mark.parametrize("kind, code", [
    ("down", "SERVER_ERROR"), ("reset", "CONNECTION_ERROR"), ("limit", "REQUEST_LIMIT_EXCEEDED"),
])
def test_hook_on_call_ended_records_calls_while_salesforce_fails(connected, host, emulator, kind, code):
    from core import history, jobs

    ring(host, "03-9999-1111")  # logged in while healthy
    _fail(emulator, kind)
    numbers = ["03-1234-5678", "06-1111-2222", "090-3333-4444"]
    for number in numbers:
        call, display, took = ring(host, number)
        assert display["status"] == "unavailable" and took < 0.85
        end(host, call)
    runtime().wait_idle(10)
    assert history.count_calls(connected) == len(numbers)
    rows = [r for r in error_rows(connected) if r["operation"] == "lookup"]
    assert len(rows) == 1, rows
    assert rows[0]["code"] == code and rows[0]["count"] == len(numbers) and rows[0]["open"] == 1

    emulator.reset()
    report = jobs.register_contacts_for_day(connected, force=True)
    assert report.registered == 3 and report.failed is None
    names = {r["remote_number"]: (r["company"], r["person"]) for r in history.list_calls(connected)}
    assert names["06-1111-2222"] == ("田中工業", "田中 次郎")
    assert not [r for r in error_rows(connected) if r["open"]]  # recovery closed the incident


def test_hanging_salesforce_in_after_call_mode_registers_once_it_is_back(connected, host, emulator):
    from core import history
    from core.settings import save_settings

    save_settings(connected, {"contact_fetch": "after_call", "screen_budget_ms": 200})
    ring(host, "03-9999-1111")
    emulator.faults.hang = True
    call, display, took = ring(host, "06-1111-2222")
    assert display["status"] == "unavailable" and took < 0.25
    end(host, call)
    assert history.get_call(connected, call.call_id)["status"] == "unavailable"
    emulator.faults.hang = False
    assert runtime().wait_idle(15)
    row = history.get_call(connected, call.call_id)
    assert (row["company"], row["person"]) == ("田中工業", "田中 次郎")
    assert registration.queue_size(connected) == 0


def test_an_expired_session_is_renewed_without_an_error(connected, host, emulator):
    ring(host, "03-9999-1111")
    emulator.expire_sessions()
    _, display, _ = ring(host, "06-1111-2222")
    assert display["status"] == "matched"
    assert error_rows(connected) == []
    assert emulator.api_calls["login"] == 2


def test_a_failure_in_after_call_registration_stays_queued_and_is_retried(connected, host, emulator):
    from core import history
    from core.settings import save_settings

    save_settings(connected, {"contact_fetch": "after_call"})
    ring(host, "03-9999-1111")
    emulator.faults.http_status = 503
    calls = [ring(host, n)[0] for n in ("03-1234-5678", "06-1111-2222")]
    for call in calls:
        end(host, call)
    runtime().wait_idle(10)
    assert registration.queue_size(connected) == 2
    [lookup] = [r for r in error_rows(connected) if r["operation"] == "lookup"]
    [register] = [r for r in error_rows(connected) if r["operation"] == "register"]
    assert lookup["count"] == 2 and register["count"] == 2
    emulator.reset()
    assert registration.drain_queue(connected, runtime().resolver, "register").registered == 2  # the scheduler's retry
    assert all(r["person"] for r in history.list_calls(connected) if r["e164"] != "+81399991111")


def test_not_configured_is_unavailable_and_logged_once(store, host):
    for _ in range(3):
        call, display, _ = ring(host, "03-1234-5678")
        assert display["status"] == "unavailable"
        end(host, call)
    [row] = error_rows(store)
    assert (row["code"], row["count"]) == ("NOT_CONFIGURED", 3)


def test_a_wrong_password_is_logged_with_its_remedy(store, host, emulator):
    connect(store, emulator)
    from core.settings import save_settings
    save_settings(store, {"password": "wrong"})
    _, display, _ = ring(host, "03-1234-5678")
    assert display["status"] == "unavailable"
    [row] = error_rows(store)
    assert row["code"] == "INVALID_LOGIN" and row["remedy_en"]


# ---------------------------------------------------------------------------------------------
# hostile call objects
# ---------------------------------------------------------------------------------------------

class Exploding:
    """Every attribute raises."""

    def __getattr__(self, name):
        raise RuntimeError(f"no {name} for you")


class Weird:
    def __init__(self, **fields):
        self.__dict__.update(fields)


HOSTILE = [
    None, object(), Exploding(), 42, "03-1234-5678", {"remote_number": "03-1234-5678"},
    Weird(call_id=None, remote_number=None, started_at=None),
    Weird(call_id="x" * 100_000, remote_number="0" * 1_000_000),
    Weird(call_id="c\x00\x1b[31m", remote_number="03\x00-1234\u2028-5678\x1b"),
    Weird(call_id="fw", remote_number="０３－１２３４－５６７８"),
    Weird(call_id="'; DROP TABLE calls; --", remote_number="' OR Phone LIKE '%"),
    Weird(call_id="soql", remote_number="03-1234-5678' OR Name != '"),
    Weird(call_id="html", remote_number="<script>alert(1)</script>", agent_id="<b>x</b>"),
    Weird(call_id=b"\xff\xfe bytes", remote_number=b"0312345678", direction=b"inbound"),
    Weird(call_id=["list"], remote_number=3.14, direction="sideways", answered="yes"),
    Weird(call_id="dates", remote_number="0312345678", started_at="yesterday", ended_at=12),
    Weird(call_id="naive", remote_number="0312345678", started_at=dt.datetime(2024, 1, 1),
          ended_at=dt.datetime(2023, 1, 1), answered=True),
    Weird(call_id="\ud800surrogate", remote_number="\udfff03-1234-5678", agent_id="\ud800"),
    Weird(call_id="emoji", remote_number="📞03-1234-5678", local_number="🙂" * 10_000),
]


# the history refuses these call ids (too long, a NUL, bytes not UTF-8, a list, a lone surrogate)
UNSTORABLE_IDS = {7, 8, 13, 14, 17}


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_hook_on_incoming_call_survives_hostile_call_objects(connected, host, emulator, index):
    call = HOSTILE[index]
    for hook in (host.hook.on_incoming_call, host.hook.on_outgoing_call):
        display = hook(call=call)
        assert set(display) == DISPLAY_KEYS and display["status"] in (
            "matched", "not_registered", "withheld", "unavailable")
        assert len(display["label"] or "") <= 120
    assert host.hook.on_call_ended(call=call) == []
    assert host.hook.on_call_ended(call=call) == []
    refused = [("on_call_ended", "CALL_ID_UNSTORABLE", 2)] if index in UNSTORABLE_IDS else []
    assert [(r["operation"], r["code"], r["count"]) for r in error_rows(connected)
            if r["integration"] == "plugin"] == refused


def test_injection_strings_never_reach_salesforce(connected, host, emulator):
    for call in HOSTILE[10:13]:
        host.hook.on_incoming_call(call=call)
    assert emulator.api_calls["composite"] == 0


def test_hostile_calls_are_recorded_once_each(connected, host):
    from core import history

    for call in HOSTILE:
        host.hook.on_call_ended(call=call)
        host.hook.on_call_ended(call=call)
    rows = history.list_calls(connected, limit=1000)
    assert len(rows) == len({r["call_id"] for r in rows})
    assert all(len(r["call_id"]) <= 1000 and len(r["remote_number"]) <= 200 for r in rows)


def test_hook_on_outgoing_call_survives_a_broken_instance_folder(tmp_path, monkeypatch, host):
    from core.runtime import shutdown_all

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the instance folder should be")
    monkeypatch.setenv("SFCTI_HOME", str(blocker))
    try:
        call = Call(direction="outbound", remote_number="03-1234-5678")
        display = host.hook.on_outgoing_call(call=call)
        assert display["status"] == "unavailable" and display["number"] == "+81312345678"
        assert host.hook.on_call_ended(call=call.end()) == []
        withheld = host.hook.on_incoming_call(call=Call(remote_number="anonymous"))
        assert withheld["status"] == "withheld"
    finally:
        shutdown_all()
