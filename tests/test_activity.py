"""core/activity.py against the emulator over real HTTPS: every ended call becomes one Task with
the fields Salesforce users expect, exactly once across timeouts, lost answers, kill -9 and
restarts, in sObject Collections batches within the share of the daily limit; refusals end in
the error log with their remedy."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from helpers import ROOT, connect, end, error_rows, ring, runtime

CONTACT_NUMBER = "03-1234-5678"        # 山田 太郎 (Contact) of 株式会社サンプル
LEAD_NUMBER = "06-1111-2222"           # 田中 次郎 (Lead)
UNKNOWN_NUMBER = "03-9876-0000"


@pytest.fixture(scope="module")
def emu_server(tmp_path_factory):
    """The sample org plus two agents' users (one to be deactivated by a test)."""
    from emulator import Emulator

    from helpers import build_org

    with Emulator(build_org(), cert_dir=str(tmp_path_factory.mktemp("activity-ca"))) as emu:
        emu.users = {
            name: emu.add_record("User", {"Username": f"{name}@agents.example", "Email": f"{name}@agents.example",
                                          "LastName": last, "FirstName": first, "IsActive": True})
            for name, last, first in (("hanako", "鈴木", "花子"), ("jiro", "佐藤", "次郎"))}
        yield emu



def tasks_of(emu, call_id):
    """The emulator's Tasks whose CallObject is ``call_id``."""
    return [t for t in emu.org.records["Task"] if t.get("CallObject") == call_id]


def one_task(emu, call_id):
    found = tasks_of(emu, call_id)
    assert len(found) == 1, f"{len(found)} Tasks for {call_id}"
    return found[0]


def record_id(emu, obj, **fields):
    for record in emu.org.records[obj]:
        if all(record.get(k) == v for k, v in fields.items()):
            return record["Id"]
    raise AssertionError(f"no {obj} with {fields}")


def map_agent(store, emu, agent_id, username):
    from core import agents
    from core.salesforce import connection_for

    user = agents.find_users(connection_for(store), [username])[username]
    agents.map_agent(store, agent_id, user)
    return user


def call(host, number, agent="101", answered=True, duration=65.0, direction="inbound", call_id=None):
    fields = {"agent_id": agent}
    if call_id is not None:
        fields["call_id"] = call_id
    placed, _, _ = ring(host, number, direction=direction, **fields)
    end(host, placed, answered=answered, duration=duration)
    return placed


def send(store, **options):
    from core import activity

    return activity.send(store, **options)


def state(store, call_id):
    from core import activity

    return activity.get_state(store, call_id)


# -- the Task of a call ----------------------------------------------------------------------

def test_answered_call_becomes_a_task_with_the_call_fields(logging_store, emu, host):
    user = map_agent(logging_store, emu, "101", "hanako@agents.example")
    placed = call(host, CONTACT_NUMBER, agent="101", duration=125.4)
    report = send(logging_store)
    # the Contact's account is asked for (the phone index is not built): one composite query
    assert report.logged == 1 and report.api_calls == 2
    task = one_task(emu, placed.call_id)
    contact = record_id(emu, "Contact", LastName="山田")
    account = record_id(emu, "Account", Name="株式会社サンプル")
    assert task["TaskSubtype"] == "Call" and task["Status"] == "Completed"
    assert task["CallType"] == "Inbound" and task["CallDurationInSeconds"] == 125
    assert task["WhoId"] == contact and task["WhatId"] == account
    assert task["OwnerId"] == user.user_id
    assert task["ActivityDate"] == placed.started_at.astimezone(
        dt.timezone(dt.timedelta(hours=9))).date().isoformat()
    assert task["Subject"] == "着信 株式会社サンプル / 山田 太郎"
    assert "101 (鈴木 花子)" in task["Description"] and "2:05" in task["Description"]
    row = state(logging_store, placed.call_id)
    assert row["state"] == "logged" and row["task_id"] == task["Id"]
    assert row["task_url"].endswith(f"/lightning/r/Task/{task['Id']}/view")


def test_with_the_phone_index_a_batch_costs_one_api_call(logging_store, emu, host):
    from core.jobs import sync_index

    assert sync_index(logging_store).failed is None
    placed = [call(host, number) for number in (CONTACT_NUMBER, LEAD_NUMBER, "090-1111-2222")]
    emu.reset_counters()
    report = send(logging_store)
    assert report.logged == 3 and report.api_calls == 1 and emu.api_calls == {"collections": 1}
    account = record_id(emu, "Account", Name="株式会社サンプル")
    assert [one_task(emu, p.call_id).get("WhatId") for p in placed] == [account, None, account]


def test_missed_call_is_owned_by_the_connection_user(logging_store, emu, host):
    map_agent(logging_store, emu, "102", "jiro@agents.example")
    placed = call(host, CONTACT_NUMBER, agent="102", answered=False)
    send(logging_store)
    task = one_task(emu, placed.call_id)
    assert task["OwnerId"] == emu.org.login_user()["Id"]
    assert task["CallDurationInSeconds"] == 0 and task["Subject"].startswith("不在着信")


def test_unmapped_agent_goes_to_the_connection_user(logging_store, emu, host):
    placed = call(host, CONTACT_NUMBER, agent="no-such-agent")
    send(logging_store)
    assert one_task(emu, placed.call_id)["OwnerId"] == emu.org.login_user()["Id"]


def test_lead_task_has_no_what_id(logging_store, emu, host):
    placed = call(host, LEAD_NUMBER)
    send(logging_store)
    task = one_task(emu, placed.call_id)
    assert task["WhoId"] == record_id(emu, "Lead", LastName="田中") and not task.get("WhatId")


def test_outbound_call_and_english_template_with_link(logging_store, emu, host):
    from core.settings import save_settings

    save_settings(logging_store, {"activity_language": "en",
                                  "activity_subject": "{direction} - {person} ({duration})",
                                  "call_url_template": "https://pbx.example.com/cdr?id={call_id}"})
    placed = call(host, CONTACT_NUMBER, direction="outbound", duration=61, call_id="a b&c=d")
    send(logging_store)
    task = one_task(emu, "a b&c=d")
    assert task["CallType"] == "Outbound"
    assert task["Subject"] == "Outbound call - 山田 太郎 (1:01)"
    assert "https://pbx.example.com/cdr?id=a%20b%26c%3Dd" in task["Description"]
    assert placed.call_id == "a b&c=d"


@pytest.mark.parametrize("mode,tasks", [("skip", 0), ("log", 1)])
def test_call_with_no_matched_record(logging_store, emu, host, mode, tasks):
    from core.settings import save_settings

    save_settings(logging_store, {"activity_unmatched": mode})
    placed = call(host, UNKNOWN_NUMBER)
    report = send(logging_store)
    assert len(tasks_of(emu, placed.call_id)) == tasks
    assert state(logging_store, placed.call_id)["state"] == ("skipped" if mode == "skip" else "logged")
    if tasks:
        task = one_task(emu, placed.call_id)
        assert not task.get("WhoId") and not task.get("WhatId")
    assert report.skipped == (1 - tasks)


def test_logging_off_queues_nothing(logging_store, emu, host):
    from core.settings import save_settings

    save_settings(logging_store, {"activity_logging": False})
    placed = call(host, CONTACT_NUMBER)
    assert send(logging_store).stopped == "off"
    assert state(logging_store, placed.call_id) is None and not tasks_of(emu, placed.call_id)


def test_the_runtime_sends_after_the_call_by_itself(logging_store, emu, host, monkeypatch):
    from core.runtime import shutdown_all

    shutdown_all()
    monkeypatch.setenv("SFCTI_SEND_TASKS", "on")
    placed = call(host, CONTACT_NUMBER)
    assert runtime().wait_idle(10)
    assert one_task(emu, placed.call_id)["CallObject"] == placed.call_id


# -- exactly once ----------------------------------------------------------------------------

@pytest.mark.parametrize("fault", [{"late": 3.0}, {"drop_after": True}])
def test_answer_lost_after_salesforce_created_the_task_is_not_sent_twice(logging_store, emu, host, fault):
    placed = [call(host, CONTACT_NUMBER) for _ in range(3)]
    emu.faults.set(kinds={"collections"}, times=1, **fault)
    first = send(logging_store)
    assert first.logged == 0 and first.deferred == 3
    assert all(len(tasks_of(emu, p.call_id)) == 1 for p in placed)   # Salesforce did create them
    assert all(state(logging_store, p.call_id)["uncertain"] for p in placed)
    emu.faults.clear()
    again = send(logging_store, force=True)
    assert again.found == 3 and again.logged == 0
    for p in placed:
        assert len(tasks_of(emu, p.call_id)) == 1
        assert state(logging_store, p.call_id)["task_id"] == tasks_of(emu, p.call_id)[0]["Id"]


def test_salesforce_down_then_back_logs_each_call_once(logging_store, emu, host):
    placed = [call(host, CONTACT_NUMBER) for _ in range(5)]
    emu.faults.set(http_status=503)
    report = send(logging_store)
    assert report.stopped and report.deferred == 5
    assert [r["code"] for r in error_rows(logging_store) if r["operation"] == "activity"]
    emu.faults.clear()
    send(logging_store, force=True)
    assert all(len(tasks_of(emu, p.call_id)) == 1 for p in placed)
    assert not [r for r in error_rows(logging_store) if r["operation"] == "activity" and r["open"]]


KILLED_SENDER = textwrap.dedent("""
    import sys
    from core import activity
    from core.store import open_store
    activity.send(open_store(sys.argv[1]))
""")


def test_kill_9_mid_batch_then_restart_logs_every_call_exactly_once(logging_store, emu, host):
    placed = [call(host, CONTACT_NUMBER, call_id=f"kill9-{i}") for i in range(250)]
    emu.faults.set(kinds={"collections"}, late=30.0)     # the first batch is created, then hangs
    child = subprocess.Popen([sys.executable, "-c", KILLED_SENDER, str(logging_store.home)],
                             cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sum(
            1 for t in emu.org.records["Task"] if str(t.get("CallObject")).startswith("kill9-")) < 200:
        time.sleep(0.05)
    created_before_kill = sum(1 for p in placed if tasks_of(emu, p.call_id))
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    emu.faults.clear()
    assert created_before_kill == 200
    report = send(logging_store, force=True)
    assert report.found == 200 and report.logged == 50
    for p in placed:
        assert len(tasks_of(emu, p.call_id)) == 1
        assert state(logging_store, p.call_id)["state"] == "logged"


def test_repeated_end_of_call_and_second_sender_create_nothing_more(logging_store, emu, host):
    placed = call(host, CONTACT_NUMBER)
    end(host, placed)
    send(logging_store)
    send(logging_store, force=True)
    assert len(tasks_of(emu, placed.call_id)) == 1


# -- batches and the share of the daily limit ------------------------------------------------

def test_backlog_goes_out_two_hundred_per_request(logging_store, emu, host):
    placed = [call(host, CONTACT_NUMBER, call_id=f"batch-{i}") for i in range(450)]
    emu.reset_counters()
    report = send(logging_store)
    assert report.logged == 450
    assert emu.api_calls.get("collections") == 3
    assert all(len(tasks_of(emu, p.call_id)) == 1 for p in placed)


def test_limit_exhausted_then_restored_drains_within_its_share(logging_store, emu, host):
    from core.jobs import sync_index
    from core.settings import save_settings

    assert sync_index(logging_store).failed is None    # one request per batch: no account query
    save_settings(logging_store, {"activity_api_share": 10})
    placed = [call(host, CONTACT_NUMBER, call_id=f"limit-{i}") for i in range(1000)]
    emu.exhaust_daily_limit()
    report = send(logging_store)
    assert report.stopped == "REQUEST_LIMIT_EXCEEDED" and report.logged == 0
    assert [r for r in error_rows(logging_store, "REQUEST_LIMIT_EXCEEDED") if r["operation"] == "activity"]
    assert all(state(logging_store, p.call_id)["state"] == "waiting" for p in placed)
    # the limit is back: 50 requests a day, 10 % of them (5) for Tasks, one spent on the refusal
    emu.set_daily_limit(50, used=0)
    report = send(logging_store, force=True)
    assert report.logged == 800 and report.stopped == "share spent"
    assert logging_store.api_usage()["by_kind"]["activity"] == 5
    waiting = [p for p in placed if state(logging_store, p.call_id)["state"] == "waiting"]
    assert len(waiting) == 200 and not any(tasks_of(emu, p.call_id) for p in waiting)
    assert send(logging_store, force=True).stopped == "share spent"     # nothing left of it today
    save_settings(logging_store, {"activity_api_share": 20})
    assert send(logging_store, force=True).logged == 200
    assert all(len(tasks_of(emu, p.call_id)) == 1 for p in placed)
    assert logging_store.api_usage()["by_kind"]["activity"] <= 10


# -- refusals and their remedies -------------------------------------------------------------

def test_validation_rule_refusal_is_shown_and_retry_logs_it(logging_store, emu, host):
    from core import activity

    emu.add_validation_rule("Task", "通話メモを入力してください", lambda r: "sfcti" in (r.get("Description") or ""))
    placed = call(host, CONTACT_NUMBER)
    report = send(logging_store)
    assert report.failed == 1 and not tasks_of(emu, placed.call_id)
    row = state(logging_store, placed.call_id)
    assert row["state"] == "failed" and row["error_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert row["error_message"] == "通話メモを入力してください"
    logged = error_rows(logging_store, "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    assert logged and "通話メモを入力してください" in logged[0]["detail"] and logged[0]["remedy_en"]
    emu.clear_validation_rules()
    assert activity.retry(logging_store, placed.call_id) is True
    send(logging_store)
    assert len(tasks_of(emu, placed.call_id)) == 1
    assert not [r for r in error_rows(logging_store, "FIELD_CUSTOM_VALIDATION_EXCEPTION") if r["open"]]


def test_no_task_permission_waits_with_the_remedy_until_granted(logging_store, emu, host):
    emu.deny_create("Task")
    placed = call(host, CONTACT_NUMBER)
    report = send(logging_store)
    assert report.deferred == 1 and state(logging_store, placed.call_id)["state"] == "waiting"
    row = error_rows(logging_store, "TASK_CREATE_DENIED")[0]
    assert "Edit Tasks" in row["remedy_en"] and "ToDo" in row["remedy_ja"]
    emu.allow_create("Task")
    send(logging_store, force=True)
    assert len(tasks_of(emu, placed.call_id)) == 1


def test_inactive_owner_falls_back_to_the_connection_user_and_says_so(logging_store, emu, host):
    user = map_agent(logging_store, emu, "103", "jiro@agents.example")
    emu.edit_record(user.user_id, IsActive=False)
    try:
        placed = call(host, CONTACT_NUMBER, agent="103")
        send(logging_store)
        assert one_task(emu, placed.call_id)["OwnerId"] == emu.org.login_user()["Id"]
        row = error_rows(logging_store, "INACTIVE_OWNER_OR_USER")[0]
        assert "103" in row["detail"]
    finally:
        emu.edit_record(user.user_id, IsActive=True)


@pytest.mark.parametrize("call_id", ["x' OR CallObject != '", "id\\' OR Id != null --",
                                     "<script>alert(1)</script>", "電話-１２３", "a" * 200])
def test_hostile_call_ids_stay_values_in_the_lookup_by_call_object(logging_store, emu, host, call_id):
    call(host, CONTACT_NUMBER, call_id=call_id)
    emu.faults.set(kinds={"collections"}, times=1, drop_after=True)
    send(logging_store)
    emu.faults.clear()
    assert send(logging_store, force=True).found == 1
    assert len(tasks_of(emu, call_id)) == 1


def test_connection_test_refuses_a_user_who_cannot_create_tasks(logging_store, emu):
    from core.salesforce import ConnectionTestFailed, connect_and_save

    emu.deny_create("Task")
    with pytest.raises(ConnectionTestFailed) as caught:
        connect_and_save(logging_store, {})
    assert caught.value.catalogue_entry.code == "TASK_CREATE_DENIED"
    assert caught.value.problems == ["Task: cannot be created"]
    assert "Edit Tasks" in caught.value.catalogue_entry.remedy_en


def test_person_account_task_names_its_person_and_the_account(store, pa_emulator, host):
    from core.salesforce import forget_connection

    connect(store, pa_emulator, connect_timeout=2.0, read_timeout=2.0)
    try:
        placed = call(host, "045-111-2222")
        assert send(store).logged == 1
        account = next(a for a in pa_emulator.org.records["Account"] if a.get("LastName") == "伊藤")
        task = one_task(pa_emulator, placed.call_id)
        assert (task["WhoId"], task["WhatId"]) == (account["PersonContactId"], account["Id"])
        assert task["Subject"] == "着信 伊藤 健"
    finally:
        forget_connection(store)


def test_unanswered_outbound_call_is_still_the_agents(logging_store, emu, host):
    user = map_agent(logging_store, emu, "104", "hanako@agents.example")
    placed = call(host, CONTACT_NUMBER, agent="104", direction="outbound", answered=False)
    send(logging_store)
    task = one_task(emu, placed.call_id)
    assert task["OwnerId"] == user.user_id and task["Subject"].startswith("発信（不通）")


def test_with_the_index_a_person_account_task_needs_no_query(store, pa_emulator, host):
    from core.jobs import sync_index
    from core.salesforce import forget_connection

    connect(store, pa_emulator, connect_timeout=2.0, read_timeout=2.0)
    try:
        assert sync_index(store).failed is None
        placed = call(host, "080-5555-6666")
        pa_emulator.reset_counters()
        assert send(store).api_calls == 1 and pa_emulator.api_calls == {"collections": 1}
        account = next(a for a in pa_emulator.org.records["Account"] if a.get("LastName") == "伊藤")
        task = one_task(pa_emulator, placed.call_id)
        assert (task["WhoId"], task["WhatId"]) == (account["PersonContactId"], account["Id"])
    finally:
        forget_connection(store)
