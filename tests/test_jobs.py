"""Contact registration in each mode (after call, nightly, never), the nightly lease, catch-up,
the scheduler, and a nightly run killed with SIGKILL half-way and restarted."""

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import zoneinfo

import pytest

from core import registration
from core.settings import Settings
from helpers import ROOT, end, ring, runtime, sample_records
from plugin.call import Call

BULK = 200
TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")


def bulk_number(i):
    """The number of bulk contact ``i`` (stored "03-5000-0001"...), dialled as E.164."""
    return f"+8135000{i:04d}"


@pytest.fixture(scope="module")
def jobs_emulator(tmp_path_factory):
    """The sample org (helpers.sample_records) plus BULK contacts with real Tokyo numbers."""
    from emulator import Emulator, Org

    records = sample_records()
    records["Contact"] += [{"LastName": f"大量{i:03d}", "Phone": f"03-5000-{i:04d}",
                            "LastModifiedDate": "2024-01-01T00:00:00.000+0000"}
                           for i in range(1, BULK + 1)]
    with Emulator(Org(records=records), cert_dir=str(tmp_path_factory.mktemp("jobs-ca"))) as emu:
        yield emu


@pytest.fixture
def emulator(jobs_emulator):
    """This module's emulator, healthy; it stands in for conftest's, so ``connected`` uses it."""
    jobs_emulator.reset()
    yield jobs_emulator
    jobs_emulator.reset()


def end_unscreened(host, numbers):
    """End calls this process never screened: recorded and queued at no API cost."""
    calls = [Call(remote_number=n).end(duration=10) for n in numbers]
    for call in calls:
        host.hook.on_call_ended(call=call)
    return calls


def set_mode(store, mode, **more):
    from core.settings import save_settings

    save_settings(store, dict(contact_fetch=mode, **more))


# ---------------------------------------------------------------------------------------------
# after call
# ---------------------------------------------------------------------------------------------

def test_after_call_registers_the_shown_match_without_another_api_call(connected, host, emulator):
    from core import history

    set_mode(connected, "after_call")
    call, display, _ = ring(host, "06-1111-2222")
    end(host, call)
    assert runtime().wait_idle(5)
    contact = connected.get_contact("+81611112222")
    assert (contact["company"], contact["person"]) == ("田中工業", "田中 次郎")
    assert contact["last_modified"] == "2024-02-02T10:00:00.000+0000"
    assert history.get_call(connected, call.call_id)["person"] == "田中 次郎"
    assert registration.queue_size(connected) == 0 and emulator.api_calls["composite"] == 1


def test_after_call_registration_runs_off_the_hosts_thread(connected, host, emulator):
    from core import history

    set_mode(connected, "after_call", screen_budget_ms=100)
    ring(host, "03-9999-1111")
    emulator.faults.latency = 0.6
    call, display, _ = ring(host, "03-1234-5678")
    assert display["status"] == "unavailable"
    started = time.perf_counter()
    end(host, call)
    assert time.perf_counter() - started < 0.1
    assert history.get_call(connected, call.call_id)["person"] is None
    deadline = time.monotonic() + 5
    while history.get_call(connected, call.call_id)["person"] is None:
        assert time.monotonic() < deadline, "not registered within seconds"
        time.sleep(0.05)
    assert history.get_call(connected, call.call_id)["company"] == "株式会社サンプル"


def test_registration_names_every_earlier_call_of_the_number(connected, host):
    from core import history, jobs

    earlier = end_unscreened(host, ["03-1234-5678", "+81312345678", "０３１２３４５６７８"])
    assert all(history.get_call(connected, c.call_id)["person"] is None for c in earlier)
    jobs.register_contacts_for_day(connected)
    rows = [history.get_call(connected, c.call_id) for c in earlier]
    assert {(r["company"], r["person"]) for r in rows} == {("株式会社サンプル", "山田 太郎")}
    later = end_unscreened(host, ["03-1234-5678"])[0]  # already registered: named at once
    assert history.get_call(connected, later.call_id)["person"] == "山田 太郎"


# ---------------------------------------------------------------------------------------------
# never
# ---------------------------------------------------------------------------------------------

def test_never_writes_no_contacts_but_screens_still_look_up(connected, host, emulator):
    from core import history, jobs

    set_mode(connected, "never")
    call, display, _ = ring(host, "06-1111-2222")
    assert display["status"] == "matched"
    end(host, call)
    end_unscreened(host, ["03-1234-5678"])
    runtime().wait_idle(5)
    assert connected.count_contacts() == 0 and registration.queue_size(connected) == 0
    assert jobs.register_contacts_for_day(connected, force=True).skipped == "never"
    assert connected.count_contacts() == 0
    assert history.get_call(connected, call.call_id)["label"] == "田中工業 / 田中 次郎"


# ---------------------------------------------------------------------------------------------
# nightly
# ---------------------------------------------------------------------------------------------

def test_nightly_registers_the_days_numbers_in_few_api_calls(connected, host, emulator):
    from core import history, jobs

    numbers = [bulk_number(i) for i in range(1, 121)] + ["03-9876-0000"]
    end_unscreened(host, numbers)
    assert registration.queue_size(connected) == len(numbers)
    report = jobs.register_contacts_for_day(connected)
    assert (report.registered, report.unmatched, report.failed) == (120, 1, None)
    assert emulator.api_calls["composite"] <= 2
    assert registration.queue_size(connected) == 0 and connected.count_contacts() == 120
    assert all(r["person"] for r in history.list_calls(connected, limit=500) if r["e164"] != "+81398760000")
    again = jobs.register_contacts_for_day(connected)
    assert again.skipped == "already done"


def test_nightly_queues_calls_of_the_day_even_when_not_queued_at_the_time(connected, host):
    from core import jobs

    set_mode(connected, "never")
    end_unscreened(host, ["06-1111-2222"])
    set_mode(connected, "nightly")
    report = jobs.register_contacts_for_day(connected)
    assert report.registered == 1


def test_only_one_process_runs_the_nightly_job(connected, host):
    from core import jobs

    end_unscreened(host, [bulk_number(1)])
    other = f"{socket.gethostname()}:{os.getppid()}:elsewhere"   # a live process
    assert jobs.acquire_lease(connected, jobs.NIGHTLY, other) == {}
    assert jobs.register_contacts_for_day(connected).skipped == "lease held"
    jobs.release_lease(connected, jobs.NIGHTLY, other)
    assert jobs.register_contacts_for_day(connected).registered == 1


def test_a_dead_holders_lease_is_taken_over(connected, host):
    from core import jobs

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert jobs.acquire_lease(connected, jobs.NIGHTLY, f"{socket.gethostname()}:{dead.pid}:x") == {}
    end_unscreened(host, [bulk_number(2)])
    assert jobs.register_contacts_for_day(connected).registered == 1


def test_a_salesforce_failure_stops_the_run_and_keeps_the_rest(connected, host, emulator):
    from core import jobs

    day = dt.datetime.now(TOKYO).date().isoformat()     # the default time zone's today
    tonight = dt.datetime.fromisoformat(f"{day}T23:00:00+09:00")   # after the 22:00 run
    end_unscreened(host, [bulk_number(i) for i in range(1, 6)])
    emulator.faults.http_status = 503
    report = jobs.register_contacts_for_day(connected, day)
    assert report.failed == "SERVER_ERROR" and registration.queue_size(connected) == 5
    # the run stays unfinished, so the catch-up still sees the day as missed
    assert jobs.missed_day(connected, _settings(connected), tonight) == day
    emulator.reset()
    resumed = jobs.register_contacts_for_day(connected, day)
    assert resumed.resumed and resumed.registered == 5
    assert jobs.missed_day(connected, _settings(connected), tonight) is None


def _settings(store):
    from core.settings import load_settings

    return load_settings(store)


@pytest.mark.parametrize("now, day", [
    ("2024-05-20T13:30:00+00:00", "2024-05-20"),   # 22:30 in Tokyo: tonight's run is due
    ("2024-05-20T12:30:00+00:00", "2024-05-19"),   # 21:30 in Tokyo: last night's
])
def test_last_scheduled_day_is_in_the_configured_time_zone(store, now, day):
    from core import jobs

    assert jobs.last_scheduled_day(_settings(store), dt.datetime.fromisoformat(now)) == day


def test_a_missed_run_is_caught_up(connected, host):
    from core import jobs

    with connected.transaction() as db:
        db.execute("INSERT INTO job_runs (job, day, started_at, finished_at) VALUES "
                   "('nightly', '2000-01-01', '2000-01-01T13:00:00', '2000-01-01T13:01:00')")
    end_unscreened(host, [bulk_number(3)])
    report = jobs.catch_up(connected)
    assert report.registered == 1 and not report.resumed
    assert jobs.catch_up(connected) is None


def test_the_scheduler_runs_nightly_at_22_tokyo_and_catches_up_at_start(connected, host, monkeypatch):
    from core import jobs

    set_mode(connected, "nightly", phone_index=False)   # the nightly's live path (no index job)
    end_unscreened(host, [bulk_number(4)])
    scheduler = jobs.JobScheduler(connected, lambda: runtime().resolver)
    scheduler.configure(_settings(connected))
    try:
        next_run, trigger = scheduler.scheduled("nightly")
        assert str(next_run.tzinfo) == "Asia/Tokyo"
        assert (next_run.hour, next_run.minute, next_run.second) == (22, 0, 0)
        assert next_run > dt.datetime.now(TOKYO)
        assert trigger == "cron[hour='22', minute='0']"
        deadline = time.monotonic() + 10
        while connected.count_contacts() == 0:  # the catch-up at start
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        scheduler.stop(wait_seconds=10)


def test_the_scheduler_follows_the_settings(connected):
    from core import jobs

    scheduler = jobs.JobScheduler(connected, lambda: runtime().resolver)
    try:
        # the index job has its own test (test_index.py); off, nothing syncs in the background
        set_mode(connected, "nightly", nightly_time="03:15", time_zone="America/New_York",
                 phone_index=False)
        scheduler.configure(_settings(connected))
        next_run, trigger = scheduler.scheduled("nightly")
        assert str(next_run.tzinfo) == "America/New_York"
        assert (next_run.hour, next_run.minute, trigger) == (3, 15, "cron[hour='3', minute='15']")
        set_mode(connected, "after_call")
        scheduler.configure(_settings(connected))
        assert scheduler.scheduled("nightly") is None
        assert scheduler.scheduled("retry") is not None
        set_mode(connected, "never")
        scheduler.configure(_settings(connected))
        assert [scheduler.scheduled(job) for job in ("nightly", "catch_up", "retry")] == [None] * 3
    finally:
        scheduler.stop(wait_seconds=10)


def test_stopping_the_scheduler_with_wait_lets_the_running_job_finish_first(connected, host,
                                                                          emulator):
    """What a runtime's shutdown relies on: no job still uses the store once stop returns (on
    PostgreSQL it would meet a closed pool, or a database dropped meanwhile)."""
    from core import jobs

    set_mode(connected, "nightly", phone_index=False)
    end_unscreened(host, [bulk_number(5)])
    emulator.faults.set(latency=1.0)     # the catch-up's Salesforce query takes a second
    scheduler = jobs.JobScheduler(connected, lambda: runtime().resolver)
    scheduler.configure(_settings(connected))
    try:
        deadline = time.monotonic() + 10
        while not connected.conn.execute(   # the catch-up has taken the nightly lease
                "SELECT count(*) FROM job_runs WHERE holder IS NOT NULL").fetchone()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        scheduler.stop(wait_seconds=10)
    assert connected.count_contacts() == 1     # the run was done when stop returned
    assert connected.conn.execute(
        "SELECT count(*) FROM job_runs WHERE holder IS NOT NULL").fetchone()[0] == 0


KILLABLE_RUN = textwrap.dedent("""
    import sys, time
    from core import jobs
    from core.store import open_store

    def pause(report):
        print("batch", report.registered, flush=True)
        time.sleep(120)   # killed here, half-way

    jobs.register_contacts_for_day(open_store(sys.argv[1]), sys.argv[2], batch_size=20, progress=pause)
""")


def test_a_nightly_run_killed_half_way_loses_nothing_and_repeats_nothing(connected, host, emulator, home):
    from core import history, jobs

    numbers = [bulk_number(i) for i in range(1, 61)]
    end_unscreened(host, numbers)
    day = Settings().local_day(dt.datetime.now(dt.timezone.utc))
    child = subprocess.Popen([sys.executable, "-c", KILLABLE_RUN, str(home), day], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT), SFCTI_JOBS="off"))
    try:
        assert child.stdout.readline().strip() == "batch 20"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    first = {c["e164"]: c["fetched_at"] for c in connected.list_contacts(limit=1000)}
    assert len(first) == 20 and registration.queue_size(connected) == 40
    emulator.reset_counters()

    report = jobs.register_contacts_for_day(connected, day)   # the restart
    assert report.resumed and report.queued == 40 and report.registered == 40
    after = {c["e164"]: c["fetched_at"] for c in connected.list_contacts(limit=1000)}
    assert len(after) == 60 and all(after[e] == t for e, t in first.items())
    asked = json.dumps(emulator.request_log, ensure_ascii=False, default=str)
    assert not any(f"03-5000-{i:04d}" in asked for i in range(1, 21))
    assert "03-5000-0021" in asked
    rows = history.list_calls(connected, limit=1000)
    assert len(rows) == 60 and all(r["person"] for r in rows)
    assert registration.queue_size(connected) == 0
