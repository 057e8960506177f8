"""Fault matrix, Salesforce rows (issue 13): one test per way Salesforce can fail, each asserting
what the agent's screen shows (within the budget), the history row of the call, the error-log
rows and the alert mails a real SMTP server on loopback receives, then the recovery once
Salesforce is healthy again.

The session emulator with its sample org; short timeouts (connect 0.5 s, read 1 s) keep a hang
short; the screen budget is the default 800 ms.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import pytest

from core.salesforce import forget_connection
from core.settings import save_settings
from faultmatrix import FAILURE, LATE, RECOVERED, history_of, incidents, mailbox_after_tick
from helpers import connect, end, free_port, ring, runtime

BUDGET = 0.8
SLACK = 0.1                       # thread hand-over on a 2-core machine shared by the suite
WARM = "090-3333-4444"            # 鈴木 一郎: rung while healthy, so the plugin is logged in
FAULTY = "03-1234-5678"           # 株式会社サンプル 山田 太郎: rung during the fault
FAULTY_E164 = "+81312345678"
AFTER = "06-1111-2222"            # 田中工業 田中 次郎 (a Lead): rung once healthy again


@dataclasses.dataclass
class Row:
    """One Salesforce fault: how to cause it and the error code the log and the mail must name."""

    name: str
    cause: Callable
    code: str
    warm: bool = True             # log in while healthy first (False: the fault is there from the start)


def _refuse(emu, store):
    save_settings(store, {"login_url": f"https://127.0.0.1:{free_port()}"})   # nobody listens


def _untrusted(emu, store):
    emu.faults.untrusted_cert = True


def _faults(**changes):
    return lambda emu, store: emu.faults.set(**changes)


def _expired_password(emu, store):
    emu.faults.password_expired = True
    emu.expire_sessions()          # the next request logs in again, into an expired password


def _limit(emu, store):
    emu.exhaust_daily_limit()


ROWS = [
    Row("refusing connections", _refuse, "CONNECTION_ERROR", warm=False),
    Row("hanging", _faults(hang=True), "TIMEOUT"),
    Row("500", _faults(http_status=500), "SERVER_ERROR"),
    Row("503", _faults(http_status=503), "SERVER_ERROR"),
    Row("connection reset", _faults(reset=True), "CONNECTION_ERROR"),
    Row("expired password", _expired_password, "INVALID_OPERATION_WITH_EXPIRED_PASSWORD"),
    Row("request limit exhausted", _limit, "REQUEST_LIMIT_EXCEEDED"),
    Row("TLS certificate not trusted", _untrusted, "TLS_ERROR", warm=False),
    Row("malformed JSON", _faults(body="malformed"), "BAD_RESPONSE"),
    Row("truncated JSON", _faults(body="truncated"), "BAD_RESPONSE"),
    Row("answer cut short by the connection", _faults(body="short"), "BAD_RESPONSE"),
    Row("wrong content type (an HTML page)", _faults(content_type="text/html"), "BAD_RESPONSE"),
]


@pytest.fixture
def instance(store, emulator, smtp_server):
    """The instance connected to the session emulator with short timeouts, alert mail to the
    loopback SMTP server."""
    connect(store, emulator, connect_timeout=0.5, read_timeout=1.0, **smtp_server.settings())
    yield store
    forget_connection(store)


def _heal(emu, store):
    emu.reset()
    emu.faults.clear()
    connect(store, emu, connect_timeout=0.5, read_timeout=1.0)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_salesforce_fault_row(row, instance, host, emulator, smtp_server):
    if row.warm:
        assert ring(host, WARM)[1]["status"] == "matched"
    row.cause(emulator, instance)

    call, display, took = ring(host, FAULTY, call_id=f"fault-{row.name}")
    assert (display["status"], display["number"], display["person"]) == ("unavailable", FAULTY_E164, None)
    assert took < BUDGET + SLACK
    end(host, call)
    assert runtime().wait_idle(15)
    assert (call.call_id, "unavailable", None) in history_of(instance)
    # (a hang also makes the screen late: that incident is the slow row's subject)
    assert incidents(instance, left_out=(LATE,)) == [("salesforce", "lookup", row.code, 1, 1)]
    assert mailbox_after_tick(instance, smtp_server, 1) == [f"{FAILURE}: salesforce {row.code}"]

    _heal(emulator, instance)
    again, display, took = ring(host, AFTER)
    assert (display["status"], display["company"], display["person"]) == ("matched", "田中工業", "田中 次郎")
    end(host, again)
    assert runtime().wait_idle(15)
    assert incidents(instance, open_only=True, left_out=(LATE,)) == []
    assert mailbox_after_tick(instance, smtp_server, 2)[1:] == [f"{RECOVERED}: salesforce {row.code}"]
    # every call once in the history, the faulty one still shown as it was on the screen
    rows = history_of(instance)
    assert [r[0] for r in rows].count(call.call_id) == 1 and len(rows) == len({r[0] for r in rows})


def test_expired_session_is_renewed_without_an_error_or_a_mail(instance, host, emulator, smtp_server):
    assert ring(host, WARM)[1]["status"] == "matched"
    emulator.expire_sessions()
    call, display, took = ring(host, FAULTY)
    assert (display["status"], display["person"]) == ("matched", "山田 太郎") and took < BUDGET + SLACK
    end(host, call)
    assert runtime().wait_idle(15)
    assert display["record_id"] and (call.call_id, "matched", display["record_id"]) in history_of(instance)
    assert incidents(instance) == []
    assert emulator.api_calls["login"] == 2          # INVALID_SESSION_ID → one re-login
    assert mailbox_after_tick(instance, smtp_server, 0, timeout=0) == []


def test_slow_salesforce_screens_on_time_and_logs_the_late_answer(instance, host, emulator, smtp_server):
    assert ring(host, WARM)[1]["status"] == "matched"
    emulator.faults.latency = 2.0
    call, display, took = ring(host, FAULTY)
    assert (display["status"], display["number"]) == ("unavailable", FAULTY_E164)
    assert took < BUDGET + SLACK
    end(host, call)
    assert runtime().wait_idle(15)
    assert (call.call_id, "unavailable", None) in history_of(instance)
    # a screen past its budget is an incident, not silence (the fix of issue 13's "slow" row)
    late = [r for r in incidents(instance) if r[2] == LATE]
    assert len(late) == 1 and late[0][3] == 1 and late[0][4] == 1
    # the late answer is not wasted: the next ring of that number is named at once
    emulator.faults.clear()
    again, display, took = ring(host, FAULTY)
    assert (display["status"], display["person"]) == ("matched", "山田 太郎") and took < BUDGET + SLACK


def test_huge_answer_is_named_or_unavailable_within_the_budget(instance, host, emulator, smtp_server):
    assert ring(host, WARM)[1]["status"] == "matched"
    emulator.faults.huge = 20_000_000                # 20 MB for a phone lookup (read in ~0.15 s here)
    call, display, took = ring(host, FAULTY)
    assert took < BUDGET + SLACK
    end(host, call)
    assert runtime().wait_idle(15)
    assert display["status"] in ("matched", "unavailable") and display["number"] == FAULTY_E164
    assert history_of(instance).count((call.call_id, display["status"], display["record_id"])) == 1
    # read and parsed, no Salesforce error (a loaded machine may miss the budget: the slow row's)
    assert incidents(instance, left_out=(LATE,)) == []
    assert [s for s in mailbox_after_tick(instance, smtp_server, 0, timeout=0) if LATE not in s] == []
