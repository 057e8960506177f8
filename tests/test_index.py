"""core/index.py: the local phone index of the org, against the emulator over real HTTPS and a real
SQLite file. Built in 2,000-row pages, answered with zero API calls by the DESIGN §3 rules, kept
right through edits, deletions and conversions (between rounds and during a sync), resumable
after kill -9, still naming callers while Salesforce is down, off when turned off, gone on
disconnect."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest

from core import index, jobs
from core.resolver import Resolver
from core.salesforce import forget_connection
from core.settings import save_settings
from core.store import Store
from helpers import (ROOT, error_rows, fresh, post_form, rest_calls, run_cli, save_emu_settings)

OLD, NEW = "2024-01-01T00:00:00.000+0000", "2025-06-01T00:00:00.000+0000"


def _lmd(day: int) -> str:
    return f"2024-03-{day:02d}T00:00:00.000+0000"


def _snapshot(store) -> tuple[list, list]:
    """Everything the index holds, in a stable order."""
    records = store.conn.execute(
        "SELECT record_id, object, company, person, account_id, is_person_account, last_modified, "
        "system_modstamp FROM index_records ORDER BY record_id").fetchall()
    phones = store.conn.execute(
        "SELECT record_id, field, e164, raw FROM index_phones ORDER BY record_id, field, e164"
    ).fetchall()
    return records, phones


def _new_store(tmp_path, emu, name="instance"):
    store = Store(tmp_path / name)
    save_emu_settings(store, emu)
    return store


# ---------------------------------------------------------------------------------------------
# an org big enough for several pages
# ---------------------------------------------------------------------------------------------

PAGED_CONTACTS = 4500      # three keyset pages: 2,000 + 2,000 + 500


def _minutes_after_old(minutes: int) -> str:
    at = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=minutes)
    return at.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _paged_national(i: int) -> str:
    return f"03-55{i // 10000:02d}-{i % 10000:04d}"


def _paged_e164(i: int) -> str:
    return "+81" + _paged_national(i)[1:].replace("-", "")


def _paged_org():
    from emulator import Org

    # changed long ago, a minute apart: a round right after the pages re-reads only the few
    # changed within index.OVERLAP of the newest
    org = Org(person_accounts=True, name="paged org")
    account = org.add_record("Account", {"Name": "ページ商事", "Phone": "03-5400-0000",
                                         "LastModifiedDate": OLD})
    for i in range(PAGED_CONTACTS):
        # a few stored forms, every one a valid Tokyo number of its own
        national = _paged_national(i)
        stored = (national, national.replace("-", "‐"), f"TEL {national}")[i % 3]
        org.add_record("Contact", {"LastName": f"頁{i:04d}", "Phone": stored, "AccountId": account,
                                   "LastModifiedDate": _minutes_after_old(i)})
    org.add_record("Lead", {"LastName": "見込", "Company": "見込商店", "Phone": "06-5400-0001",
                            "LastModifiedDate": OLD})
    org.add_record("Contact", {"LastName": "番号なし", "LastModifiedDate": OLD})   # not indexed
    return org


@pytest.fixture(scope="module")
def paged_emu():
    from emulator import Emulator

    with Emulator(_paged_org()) as emu:
        yield emu


@pytest.fixture
def paged(paged_emu):
    paged_emu.reset()
    yield paged_emu
    paged_emu.reset()


def test_the_initial_sync_reads_2000_row_pages_and_names_every_record(tmp_path, paged):
    store = _new_store(tmp_path, paged)
    paged.reset_counters()
    report = jobs.sync_index(store)
    contact_pages = PAGED_CONTACTS // 2000 + 1
    # a composite for the high-water marks, one for the counts (keyset or Bulk?), the pages
    # (Contact, Account, Lead), one composite for the round
    assert paged.api_calls["query"] == contact_pages + 1 + 1
    assert paged.api_calls["composite"] == 3
    assert rest_calls(paged) == report.api_calls == contact_pages + 5
    assert report.records == PAGED_CONTACTS + 2
    status = index.status(store)
    assert (status.state, status.records) == ("ready", PAGED_CONTACTS + 2)
    assert status.api_calls == report.api_calls
    assert store.api_usage()["own_calls"] >= report.api_calls   # counted like other API usage
    pages = [c["soql"] for c in paged.calls("query")]
    assert all("ORDER BY Id LIMIT 2000" in soql for soql in pages)

    paged.reset_counters()
    resolver = Resolver(store)
    for i in (0, 1, 2, 4499):
        display = resolver.resolve(_paged_e164(i))
        assert (display["status"], display["person"], display["company"]) == \
            ("matched", f"頁{i:04d}", "ページ商事")
    assert resolver.resolve("+81654000001")["company"] == "見込商店"
    assert rest_calls(paged) == 0


def _kill_mid_sync(store, emu) -> int:
    """Start `sfcti index sync` in a child process, kill -9 it once it has committed a page of
    Contacts and before it finished them; returns how many pages it had committed."""
    emu.faults.latency = 0.4
    env = dict(os.environ, PYTHONPATH=str(ROOT), SFCTI_JOBS="off")
    child = subprocess.Popen([sys.executable, "-c", "from cli import main; main()",
                              "--home", str(store.home), "index", "sync"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            row = store.conn.execute("SELECT resume_after, api_calls FROM index_sync "
                                     "WHERE scope = 'Contact'").fetchone()
            if row and row[0]:
                os.kill(child.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        else:
            pytest.fail("the child never committed a page")
    finally:
        child.wait(timeout=30)
        emu.faults.latency = 0.0
    assert child.returncode == -signal.SIGKILL
    return row[1]


def test_kill_9_mid_initial_sync_then_restart_gives_the_same_index(tmp_path, paged):
    whole = _new_store(tmp_path, paged, "whole")
    jobs.sync_index(whole)

    killed = _new_store(tmp_path, paged, "killed")
    committed = _kill_mid_sync(killed, paged)
    assert 1 <= committed < PAGED_CONTACTS // 2000 + 1
    assert index.status(killed).state == "building"
    resumed = jobs.sync_index(killed)          # the dead holder's lease is taken over at once
    assert resumed.skipped is None and not resumed.full
    assert resumed.pages == (PAGED_CONTACTS // 2000 + 1) - committed + 2   # + Account, Lead
    assert _snapshot(killed) == _snapshot(whole)


# ---------------------------------------------------------------------------------------------
# the DESIGN §3 winner, through the index, with zero API calls
# ---------------------------------------------------------------------------------------------

def _winner_case(emu, case: str, national: str):
    """Records holding ``national`` in odd stored forms; returns (company, person, object) the
    screen must show."""
    dash, tel, bracket = national.replace("-", "‐"), f"TEL:{national}", f"+81 (0){national[1:]}"
    wide = national.translate(str.maketrans("0123456789-", "０１２３４５６７８９ー"))
    add = emu.add_record
    if case == "contact_beats_account_and_lead":
        account = add("Account", {"Name": "優先商事", "Phone": tel, "LastModifiedDate": NEW})
        add("Lead", {"LastName": "新しい", "Company": "見込", "Phone": dash, "LastModifiedDate": NEW})
        add("Contact", {"LastName": "古い", "FirstName": "連絡", "Phone": f"{wide}（代表）",
                        "AccountId": account, "LastModifiedDate": OLD})
        return "優先商事", "古い 連絡", "Contact"
    if case == "account_beats_lead":
        add("Lead", {"LastName": "見込", "Company": "見込商店", "MobilePhone": dash,
                     "LastModifiedDate": NEW})
        add("Account", {"Name": "取引先商事", "Phone": bracket, "LastModifiedDate": OLD})
        return "取引先商事", None, "Account"
    if case == "newest_contact_wins":
        add("Contact", {"LastName": "古株", "Phone": tel, "LastModifiedDate": _lmd(1)})
        add("Contact", {"LastName": "新顔", "MobilePhone": wide, "LastModifiedDate": _lmd(9)})
        add("Contact", {"LastName": "中堅", "Phone": dash, "LastModifiedDate": _lmd(5)})
        return None, "新顔", "Contact"
    if case == "tie_goes_to_the_smallest_id":
        first = add("Contact", {"LastName": "先", "Phone": dash, "LastModifiedDate": _lmd(3)})
        second = add("Contact", {"LastName": "後", "Phone": bracket, "LastModifiedDate": _lmd(3)})
        return None, ("先" if first < second else "後"), "Contact"
    if case == "converted_lead_is_left_out":
        add("Lead", {"LastName": "転換済", "Company": "旧社", "Phone": national, "IsConverted": True,
                     "LastModifiedDate": NEW})
        add("Lead", {"LastName": "未転換", "Company": "現社", "Phone": tel, "LastModifiedDate": OLD})
        return "現社", "未転換", "Lead"
    if case == "person_account_mobile":
        add("Account", {"IsPersonAccount": True, "LastName": "個人", "FirstName": "花子",
                        "PersonMobilePhone": wide, "LastModifiedDate": OLD})
        return None, "個人 花子", "Account"
    raise AssertionError(case)


WINNER_CASES = ["contact_beats_account_and_lead", "account_beats_lead", "newest_contact_wins",
                "tie_goes_to_the_smallest_id", "converted_lead_is_left_out",
                "person_account_mobile"]


@pytest.mark.parametrize("case", WINNER_CASES)
def test_an_index_hit_is_the_design_winner_with_zero_api_calls(tmp_path, sf_emu, case):
    national, e164 = fresh()
    expected = _winner_case(sf_emu, case, national)
    store = _new_store(tmp_path, sf_emu)
    assert jobs.sync_index(store).failed is None
    sf_emu.reset_counters()
    display = Resolver(store).resolve(e164)
    assert (display["company"], display["person"], display["object"]) == expected
    assert display["status"] == "matched"
    assert rest_calls(sf_emu) == 0


def test_the_nightly_batch_answers_from_the_index_with_zero_calls(tmp_path, sf_emu):
    cases = {}
    for case in ("contact_beats_account_and_lead", "account_beats_lead", "newest_contact_wins"):
        national, e164 = fresh()
        cases[e164] = _winner_case(sf_emu, case, national)
    unknown = fresh()[1]
    store = _new_store(tmp_path, sf_emu)
    jobs.sync_index(store)
    sf_emu.reset_counters()
    displays = Resolver(store).resolve_many(list(cases) + [unknown])
    assert {e164: (d["company"], d["person"], d["object"]) for e164, d in displays.items()
            if e164 in cases} == cases
    assert displays[unknown]["status"] == "not_registered"
    assert rest_calls(sf_emu) == 0


def test_an_index_miss_asks_salesforce_once_and_writes_the_match_back(tmp_path, sf_emu):
    store = _new_store(tmp_path, sf_emu)
    jobs.sync_index(store)
    national, e164 = fresh()
    sf_emu.add_record("Contact", {"LastName": "新規", "Phone": national})   # after the sync
    sf_emu.reset_counters()
    resolver = Resolver(store)
    assert resolver.resolve(e164)["person"] == "新規"
    assert rest_calls(sf_emu) == 1 and sf_emu.api_calls["composite"] == 1
    assert index.find(store, e164).person == "新規"
    assert Resolver(store).resolve(e164)["person"] == "新規"
    assert rest_calls(sf_emu) == 1


# ---------------------------------------------------------------------------------------------
# changes between rounds and during a sync
# ---------------------------------------------------------------------------------------------

def _person(store, e164):
    contact = index.find(store, e164)
    return contact and (contact.object, contact.company, contact.person)


def test_edits_deletions_conversions_and_renames_are_right_after_the_next_round(tmp_path, sf_emu):
    (old_n, old_e), (new_n, new_e), (gone_n, gone_e), (lead_n, lead_e), (acc_n, acc_e) = \
        [fresh() for _ in range(5)]
    edited = sf_emu.add_record("Contact", {"LastName": "編集", "Phone": old_n})
    deleted = sf_emu.add_record("Contact", {"LastName": "削除", "Phone": gone_n})
    lead = sf_emu.add_record("Lead", {"LastName": "転換", "Company": "転換商事", "Phone": lead_n})
    account = sf_emu.add_record("Account", {"Name": "旧名", "Phone": "03-0000-0000"})
    sf_emu.add_record("Contact", {"LastName": "所属", "Phone": acc_n, "AccountId": account})
    store = _new_store(tmp_path, sf_emu)
    jobs.sync_index(store)
    assert _person(store, lead_e) == ("Lead", "転換商事", "転換")
    assert _person(store, acc_e) == ("Contact", "旧名", "所属")

    sf_emu.edit_record(edited, Phone=f"TEL {new_n}")
    sf_emu.delete_record(deleted)
    sf_emu.convert_lead(lead)
    sf_emu.edit_record(account, Name="新名")
    sf_emu.reset_counters()
    report = jobs.sync_index(store)
    assert report.api_calls == 1 and sf_emu.api_calls["composite"] == 1   # one round, one call
    assert _person(store, old_e) is None
    assert _person(store, new_e) == ("Contact", None, "編集")
    assert _person(store, gone_e) is None
    assert _person(store, lead_e) == ("Contact", "転換商事", "転換")   # the converted Contact
    assert _person(store, acc_e) == ("Contact", "新名", "所属")

    sf_emu.undelete_record(deleted)
    jobs.sync_index(store)
    assert _person(store, gone_e) == ("Contact", None, "削除")


def test_changes_made_while_the_initial_sync_pages_are_read_are_in_the_index(tmp_path):
    from emulator import Emulator

    with Emulator(_paged_org()) as emu:
        # the contacts by Id, the order of the keyset pages: one early, one late
        contacts = sorted((r["Id"], int(r["LastName"][1:])) for r in emu.org.records["Contact"]
                          if r.get("Phone"))
        (first_page, early), (later, late) = contacts[10], contacts[-10]
        lead = next(r["Id"] for r in emu.org.records["Lead"])
        new_n, new_e = fresh()
        changed = []

        def while_syncing():   # called after each committed page
            if not changed:
                emu.edit_record(first_page, Phone=new_n)       # a page already read
                emu.delete_record(later)                        # a page not read yet
                emu.convert_lead(lead)                          # its object not read yet
                changed.append(True)

        store = _new_store(tmp_path, emu)
        report = index.sync(store, keep_alive=while_syncing)
        assert report.failed is None and changed
        assert _person(store, new_e) == ("Contact", "ページ商事", f"頁{early:04d}")
        assert _person(store, _paged_e164(early)) is None
        assert _person(store, _paged_e164(late)) is None
        assert _person(store, "+81654000001") == ("Contact", "見込商店", "見込")


# ---------------------------------------------------------------------------------------------
# Salesforce down, index off, lease, disconnect, CLI
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("outage", ["down", "daily_limit"])
def test_with_salesforce_down_known_callers_are_named_and_the_log_says_stale(tmp_path, sf_emu,
                                                                            outage):
    national, e164 = fresh()
    sf_emu.add_record("Contact", {"LastName": "既知", "Phone": national})
    store = _new_store(tmp_path, sf_emu)
    jobs.sync_index(store)
    if outage == "down":
        sf_emu.faults.http_status = 503
    else:
        sf_emu.exhaust_daily_limit()
    first, second = jobs.sync_index(store), jobs.sync_index(store)
    assert first.failed and second.failed
    stale = error_rows(store, "INDEX_STALE")
    assert len(stale) == 1 and stale[0]["count"] == 2 and stale[0]["open"]
    assert "up to date" in stale[0]["message"]
    assert first.failed in stale[0]["detail"]
    assert index.status(store).state == "stale"
    result = run_cli(store.home, "index", "sync")
    assert result.exit_code == 1 and f"Error: {first.failed}" in result.output
    display = Resolver(store).resolve(e164)
    assert (display["status"], display["person"]) == ("matched", "既知")

    sf_emu.reset()
    assert jobs.sync_index(store).failed is None
    assert not error_rows(store, "INDEX_STALE")[0]["open"]
    assert index.status(store).state == "ready"


def test_index_off_uses_the_live_lookup_as_before(tmp_path, sf_emu):
    national, e164 = fresh()
    sf_emu.add_record("Contact", {"LastName": "生", "Phone": national})
    store = _new_store(tmp_path, sf_emu)
    jobs.sync_index(store)
    save_settings(store, {"phone_index": False})
    sf_emu.reset_counters()
    assert Resolver(store).resolve(e164)["person"] == "生"
    assert sf_emu.api_calls["composite"] == 1
    assert jobs.sync_index(store).skipped == "off"
    assert index.status(store).state == "off"


def test_a_sync_is_skipped_while_another_live_process_holds_the_lease(tmp_path, sf_emu):
    store = _new_store(tmp_path, sf_emu)
    holder = jobs.new_holder()
    assert jobs.acquire_lease(store, jobs.INDEX, holder) is not None
    try:
        sf_emu.reset_counters()
        assert jobs.sync_index(store).skipped == "lease held"
        assert rest_calls(sf_emu) == 0
    finally:
        jobs.release_lease(store, jobs.INDEX, holder)


def test_disconnecting_in_the_admin_removes_the_index(admin_client, store, sf_emu):
    national, e164 = fresh()
    sf_emu.add_record("Contact", {"LastName": "切断", "Phone": national})
    save_emu_settings(store, sf_emu)
    jobs.sync_index(store)
    assert index.find(store, e164) is not None
    post_form(admin_client, "/settings/disconnect", {"disconnect": "1"}, follow_redirects=True)
    assert index.find(store, e164) is None
    assert index.status(store).records == 0
    forget_connection(store)


def test_the_cli_syncs_shows_and_clears_the_index(tmp_path, sf_emu):
    national, e164 = fresh()
    sf_emu.add_record("Lead", {"LastName": "端末", "Company": "CLI商会", "Phone": national})
    store = _new_store(tmp_path, sf_emu)
    result = run_cli(store.home, "index", "sync", "--full")
    assert result.exit_code == 0 and "Synced (full)" in result.output
    result = run_cli(store.home, "index", "status")
    assert "Phone index: ready" in result.output and "API calls spent:" in result.output
    assert index.find(store, e164).company == "CLI商会"
    assert run_cli(store.home, "index", "clear").exit_code == 0
    assert index.find(store, e164) is None
    assert "Phone index: empty" in run_cli(store.home, "index", "status").output


def test_objects_above_the_bulk_threshold_are_read_by_a_bulk_query_job(tmp_path, paged,
                                                                       monkeypatch):
    keyset = _new_store(tmp_path, paged, "keyset")
    save_settings(keyset, {"index_bulk_threshold": 0})
    jobs.sync_index(keyset)

    bulk = _new_store(tmp_path, paged, "bulk")
    save_settings(bulk, {"index_bulk_threshold": 1000})     # Contact (4,500) only
    monkeypatch.setattr(index, "BULK_PAGE_ROWS", 2000)      # results in three pages
    paged.reset_counters()
    report = jobs.sync_index(bulk)
    assert report.failed is None
    bulk_requests = [c for c in paged.calls("bulk_query")]
    assert [c["method"] for c in bulk_requests][0] == "POST"
    assert sum("/results" in c["path"] for c in bulk_requests) == 3
    contact_pages = [c for c in paged.calls("query") if "FROM Contact" in c["soql"]]
    assert contact_pages == []
    assert rest_calls(paged) == report.api_calls
    assert _snapshot(bulk) == _snapshot(keyset)


def test_the_host_scheduler_syncs_the_index_every_n_minutes_while_it_is_on(tmp_path, sf_emu):
    national, e164 = fresh()
    sf_emu.add_record("Contact", {"LastName": "定期", "Phone": national})
    store = _new_store(tmp_path, sf_emu)
    save_settings(store, {"contact_fetch": "never", "index_minutes": 7})
    from core.settings import load_settings

    scheduler = jobs.JobScheduler(store, lambda: Resolver(store))
    try:
        scheduler.configure(load_settings(store))
        assert scheduler.scheduled("index")[1] == "interval[0:07:00]"
        deadline = time.monotonic() + 20
        while index.status(store).state != "ready":     # the first round runs at once
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert index.find(store, e164).person == "定期"
        save_settings(store, {"phone_index": False})
        scheduler.configure(load_settings(store))
        assert scheduler.scheduled("index") is None
    finally:
        scheduler.stop()
        while store.conn.execute("SELECT holder FROM job_runs WHERE job = 'index'").fetchone()[0]:
            time.sleep(0.05)     # a sync still running finishes before the next test counts calls


def test_a_full_resync_drops_records_gone_without_a_trace(tmp_path, sf_emu):
    national, e164 = fresh()
    record = sf_emu.add_record("Contact", {"LastName": "消滅", "Phone": national})
    store = _new_store(tmp_path, sf_emu)
    jobs.sync_index(store)
    sf_emu.org.delete_record("Contact", record)    # a hard delete: no recycle bin, no stamp
    jobs.sync_index(store)
    assert index.find(store, e164).person == "消滅"    # a round cannot see it
    report = jobs.sync_index(store, full=True)
    assert report.full and index.find(store, e164) is None


def test_the_cli_explains_a_missing_instance_and_a_missing_connection(tmp_path):
    result = run_cli(tmp_path / "nothing", "index", "status")
    assert result.exit_code != 0 and "No sfcti instance" in result.output
    store = Store(tmp_path / "unconnected")
    result = run_cli(store.home, "index", "sync")
    assert result.exit_code == 1 and "not connected" in result.output
    assert "Phone index: not connected" in run_cli(store.home, "index", "status").output


def test_every_generated_stored_form_is_indexed_and_answers_the_design_winner(tmp_path):
    """The generator records the numbers it wrote into each phone value (every form people type,
    odd ones included): each is found in the index, and a lookup of each gives the DESIGN §3
    winner among the records the generator put it in, with zero API calls."""
    from emulator import Emulator
    from emulator.datagen import generate_org

    org = generate_org(size=1000, seed=11, person_accounts=True)
    holders: dict[str, list[tuple[int, str, str]]] = {}
    priority = {"Contact": 0, "Account": 1, "Lead": 2}
    for (record_id, field), numbers in org.phone_truth.items():
        object_name, record = org.get(record_id)
        hidden = object_name == "Contact" and record.get("IsPersonAccount")
        if record.get("IsConverted") or hidden:
            continue
        for number in numbers:
            holders.setdefault(number.e164, []).append(
                (priority[object_name], record["LastModifiedDate"], record_id))
    with Emulator(org) as emu:
        store = _new_store(tmp_path, emu)
        assert jobs.sync_index(store).failed is None
        emu.reset_counters()
        resolver = Resolver(store)
        wrong = []
        for e164, found in holders.items():
            best = min(found, key=lambda h: (h[0], _negated(h[1]), h[2]))
            if resolver.resolve(e164)["record_id"] != best[2]:
                wrong.append(e164)
        assert wrong == [] and len(holders) > 900
        assert rest_calls(emu) == 0


def _negated(stamp: str) -> tuple:
    """A sort key putting newer Salesforce datetimes first."""
    return tuple(-ord(ch) for ch in stamp)


@pytest.mark.parametrize("days_ago, full", [(6, False), (8, True)])
def test_a_full_resync_runs_weekly(tmp_path, sf_emu, days_ago, full):
    store = _new_store(tmp_path, sf_emu)
    assert jobs.sync_index(store).full
    then = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days_ago)).isoformat()
    with store.transaction() as db:     # as if the last full sync had run ``days_ago`` days ago
        db.execute("UPDATE index_sync SET last_full_at = ? WHERE scope != '_index'", [then])
    assert jobs.sync_index(store).full is full


def test_an_account_turned_person_account_is_shown_as_a_person_after_the_next_round(tmp_path,
                                                                                     sf_emu):
    national, e164 = fresh()
    account = sf_emu.add_record("Account", {"Name": "法人化前", "Phone": national})
    store = _new_store(tmp_path, sf_emu)
    jobs.sync_index(store)
    assert _person(store, e164) == ("Account", "法人化前", None)
    sf_emu.edit_record(account, IsPersonAccount=True, LastName="個人化")
    jobs.sync_index(store)
    assert _person(store, e164) == ("Account", None, "個人化")


def test_a_written_back_contact_keeps_its_account_and_follows_a_rename(tmp_path, sf_emu):
    (old_n, _), (new_n, new_e) = fresh(), fresh()
    account = sf_emu.add_record("Account", {"Name": "書戻商事", "Phone": "03-0000-0001"})
    contact = sf_emu.add_record("Contact", {"LastName": "書戻", "Phone": old_n,
                                            "AccountId": account})
    store = _new_store(tmp_path, sf_emu)
    jobs.sync_index(store)
    # a number changed since the last round: the live lookup finds it and writes it back
    sf_emu.org.update_record("Contact", contact, {"Phone": new_n})
    assert Resolver(store).resolve(new_e)["company"] == "書戻商事"
    stored = store.conn.execute("SELECT account_id, system_modstamp FROM index_records "
                                "WHERE record_id = ?", [contact]).fetchone()
    assert stored[0] == account and stored[1]     # kept: the lookup does not read them
    sf_emu.edit_record(account, Name="書戻商事（新）")
    jobs.sync_index(store)
    assert _person(store, new_e) == ("Contact", "書戻商事（新）", "書戻")


def test_the_nightly_run_registers_callers_from_the_index_with_zero_calls(store, host, sf_emu):
    from plugin.call import Call

    national, e164 = fresh()
    sf_emu.add_record("Contact", {"LastName": "夜間", "FirstName": "登録",
                                  "Phone": f"TEL {national}（代表）"})
    save_emu_settings(store, sf_emu)
    jobs.sync_index(store)
    sf_emu.reset_counters()
    host.hook.on_call_ended(call=Call(remote_number=national).end(duration=10))
    report = jobs.register_contacts_for_day(store)
    assert (report.registered, report.failed) == (1, None)
    assert store.get_contact(e164)["person"] == "夜間 登録"
    assert rest_calls(sf_emu) == 0
    forget_connection(store)


def test_connected_as_someone_else_the_index_waits_for_a_sync(tmp_path, sf_emu):
    national, e164 = fresh()
    sf_emu.add_record("Contact", {"LastName": "別接続", "Phone": national})
    store = _new_store(tmp_path, sf_emu)
    jobs.sync_index(store)
    save_settings(store, {"username": "someone.else@example.com"})
    assert not index.usable(store)      # perhaps another org: lookups go live meanwhile
    save_settings(store, {"username": sf_emu.username})
    assert index.usable(store) and index.find(store, e164).person == "別接続"
