"""A slow Salesforce (the emulator's latency fault): screens still answer within the budget, and
the screens that ran out of it are one SCREEN_LATE incident in the error log, counting them,
mailed (real SMTP) once it reaches the slow_alert_threshold setting and again when screens are
answered in time again."""

import sqlite3
import time

import pytest

from core.alerts import Alerts
from core.errors import entry_for
from core.runtime import IN_TIME_TO_RECOVER
from core.settings import save_settings, validate_settings
from helpers import error_rows, fresh, ring, runtime

BUDGET = 0.8          # the default screen_budget_ms
MARGIN = 0.15         # what a screen may take past its budget on a busy test machine
LATENCY = 2.0
STARTED = "[sfcti] 障害発生 / Failure: salesforce SCREEN_LATE"
RECOVERED = "[sfcti] 復旧 / Recovered: salesforce SCREEN_LATE"


def late_rows(store):
    return error_rows(store, code="SCREEN_LATE")


def wait_for_late_count(store, count, timeout=5.0):
    """The SCREEN_LATE rows once the open one counts ``count`` (written off the host's thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = late_rows(store)
        if rows and rows[0]["count"] >= count:
            return rows
        time.sleep(0.02)
    return late_rows(store)


def ring_late(host, number):
    """Ring an uncached number while Salesforce is slow: the screen says "unavailable" in time."""
    _, display, took = ring(host, number)
    assert display["status"] == "unavailable" and display["number"]
    assert took < BUDGET + MARGIN, took
    return display


def ring_in_time(host):
    _, display, took = ring(host, fresh()[0])
    assert display["status"] == "not_registered" and took < BUDGET, (display, took)


@pytest.fixture
def slow(connected, host, emulator, smtp_server):
    """Alert mail to the SMTP server, logged in to Salesforce while healthy, then 2 s latency."""
    save_settings(connected, smtp_server.settings(slow_alert_threshold=3))
    ring_in_time(host)
    emulator.faults.latency = LATENCY
    return connected


def test_late_screens_are_one_incident_mailed_after_the_threshold(slow, host, emulator, smtp_server):
    alerts = Alerts(slow)
    for late in range(1, 4):
        ring_late(host, fresh()[0])
        [row] = wait_for_late_count(slow, late)
        assert (row["integration"], row["operation"], row["count"], row["open"]) == (
            "salesforce", "lookup", late, 1)
        alerts.tick()
        if late < 3:   # under the threshold of 3 late screens: no mail yet
            assert smtp_server.messages == []
    [mail] = smtp_server.wait_for(1)
    assert str(mail["Subject"]) == STARTED
    body = mail.get_content()
    entry = entry_for("SCREEN_LATE")
    for text in (entry.message_ja, entry.message_en, entry.remedy_ja, entry.remedy_en,
                 "発生回数: 3", "Occurrences: 3"):
        assert text in body

    # the late answers come in later: they close nothing, and count nothing more
    assert runtime().wait_idle(LATENCY * 3)
    [row] = late_rows(slow)
    assert (row["count"], row["open"]) == (3, 1)
    assert row["message_en"] == entry.message_en and "800 ms" in row["detail"]
    assert [r for r in error_rows(slow) if r["code"] != "SCREEN_LATE"] == []
    alerts.tick()
    assert len(smtp_server.messages) == 1

    # latency removed: screens answered in time again close the incident, and a mail says so
    emulator.faults.latency = 0
    for _ in range(IN_TIME_TO_RECOVER):
        alerts.tick()
        assert len(smtp_server.messages) == 1     # not recovered before the last of them
        ring_in_time(host)
        assert runtime().wait_idle(5)
    assert late_rows(slow)[0]["open"] == 0
    alerts.tick()
    assert [str(m["Subject"]) for m in smtp_server.wait_for(2)] == [STARTED, RECOVERED]


def test_a_slow_moment_under_the_threshold_sends_no_mail(slow, host, emulator, smtp_server):
    alerts = Alerts(slow)
    for _ in range(2):
        ring_late(host, fresh()[0])
    assert [r["count"] for r in wait_for_late_count(slow, 2)] == [2]
    alerts.tick()
    assert runtime().wait_idle(LATENCY * 3)
    emulator.faults.latency = 0
    for _ in range(IN_TIME_TO_RECOVER):
        ring_in_time(host)
        assert runtime().wait_idle(5)
    assert late_rows(slow)[0]["open"] == 0
    alerts.tick()
    assert smtp_server.messages == []


def test_one_quick_answer_between_slow_ones_does_not_close_the_incident(slow, host, emulator):
    ring_late(host, fresh()[0])
    assert runtime().wait_idle(LATENCY * 3)
    emulator.faults.latency = 0
    ring_in_time(host)
    assert runtime().wait_idle(5)
    emulator.faults.latency = LATENCY
    ring_late(host, fresh()[0])
    [row] = wait_for_late_count(slow, 2)
    assert (row["count"], row["open"]) == (2, 1)
    assert runtime().wait_idle(LATENCY * 3)


def test_a_nightly_run_that_succeeds_leaves_late_screens_open(slow, host, emulator):
    from core import jobs
    from helpers import end

    call = ring(host, "06-1111-2222")[0]
    end(host, call)
    assert runtime().wait_idle(LATENCY * 3)
    emulator.faults.latency = 0
    report = jobs.register_contacts_for_day(slow, force=True)
    assert report.registered == 1
    [row] = late_rows(slow)
    assert (row["count"], row["open"]) == (1, 1)   # the nightly run's speed says nothing of screens


def test_a_late_screen_never_waits_for_a_locked_database(slow, host, home):
    other = sqlite3.connect(home / "sfcti.db", isolation_level=None)   # another process's writer
    other.execute("BEGIN IMMEDIATE")
    try:
        ring_late(host, fresh()[0])
        time.sleep(0.3)
        assert late_rows(slow) == []        # the write waits for the lock, the screen did not
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert [r["count"] for r in wait_for_late_count(slow, 1)] == [1]
    assert runtime().wait_idle(LATENCY * 3)


@pytest.mark.parametrize("value, valid", [
    (1, True), (10_000, True), ("25", True), (0, False), (10_001, False), ("５", False),
    ("many", False), ("", False), (None, False), (2.5, False),
])
def test_the_threshold_setting_is_validated(value, valid):
    errors = validate_settings({"slow_alert_threshold": value}, "ja")
    assert (errors == {}) is valid, errors
    if not valid:
        assert errors["slow_alert_threshold"]
