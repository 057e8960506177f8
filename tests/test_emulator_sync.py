"""What an index sync needs from the emulator, over real HTTPS: SystemModstamp and datetime SOQL,
queryAll and the recycle bin, query locators, getUpdated/getDeleted, Bulk API 2.0 query jobs, and
changing the org (edits, deletes, undeletes, lead conversions) while a sync reads it."""
import csv
import io
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from helpers import client_for, trusting_session

PAGE_CONTACTS = 2300                # more than one 2,000-row page
OLD = "2025-12-31T23:30:00.000+0000"


def _records(now):
    """A small org: two accounts, contacts with known stamps, a few hundred filler contacts, leads."""
    recent = (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    accounts = [{"Id": "001000000000001", "Name": "株式会社同期", "Phone": "03-1111-0000",
                 "LastModifiedDate": recent},
                {"Id": "001000000000002", "Name": "Quote \"Co\", Ltd", "LastModifiedDate": recent}]
    contacts = [
        {"LastName": "早朝", "Phone": "03-0000-0001", "AccountId": "001000000000001",
         "LastModifiedDate": OLD, "Department": "stamps"},
        {"LastName": "深夜", "Phone": "03-0000-0002", "LastModifiedDate": "2026-01-01T00:30:00.000+0000",
         "Department": "stamps"},
        {"LastName": "昼", "Phone": "03-0000-0003", "LastModifiedDate": "2026-01-01T09:30:00.000+0000",
         "Department": "stamps", "AccountId": "001000000000002"},
        {"LastName": "同時", "Phone": "03-0000-0004", "LastModifiedDate": "2026-01-01T00:30:00.000+0000",
         "Department": "stamps"},
    ]
    contacts += [{"LastName": f"頁{i:04d}", "Phone": f"050-1000-{i:04d}", "Department": "page",
                  "LastModifiedDate": recent} for i in range(PAGE_CONTACTS)]
    leads = [{"LastName": "見込", "FirstName": "一", "Company": "見込商事", "Phone": "06-2222-0001",
              "Email": "ichi@example.jp", "LastModifiedDate": recent}]
    return {"Account": accounts, "Contact": contacts, "Lead": leads}


@pytest.fixture
def emu():
    """A fresh emulator per test: these tests delete, convert and move the org's clock."""
    from emulator import Emulator, Org

    org = Org(records=_records(datetime.now(timezone.utc)), name="同期テスト組織")
    with Emulator(org) as server:
        server.bulk_job_seconds = 0.3
        yield server


@pytest.fixture
def sf(emu):
    client = client_for(emu)
    emu.reset_counters()
    return client


def _http(emu, sf):
    session = trusting_session(emu)
    session.headers["Authorization"] = f"Bearer {sf.session_id}"
    return session


def _url(emu, path):
    return f"{emu.login_url}/services/data/v59.0/{path}"


def _one(sf, soql):
    records = sf.query(soql)["records"]
    assert len(records) == 1, records
    return records[0]


# ---- SystemModstamp and datetimes in SOQL ----------------------------------------------------

def test_every_object_has_system_modstamp(sf):
    for obj in ("Account", "Contact", "Lead", "User"):
        record = sf.query(f"SELECT Id, CreatedDate, LastModifiedDate, SystemModstamp FROM {obj} LIMIT 1")
        row = record["records"][0]
        assert row["SystemModstamp"] and row["SystemModstamp"].endswith(".000+0000"), obj


def test_modstamp_is_set_at_creation_and_moves_on_every_edit(sf, emu):
    new_id = sf.Contact.create({"LastName": "編集", "Phone": "03-5555-0000"})["id"]
    created = sf.Contact.get(new_id)
    assert created["SystemModstamp"] == created["LastModifiedDate"] == created["CreatedDate"]

    emu.advance_clock(61)
    sf.Contact.update(new_id, {"Phone": "03-5555-0001"})
    edited = sf.Contact.get(new_id)
    assert edited["SystemModstamp"] > created["SystemModstamp"]
    assert edited["LastModifiedDate"] == edited["SystemModstamp"]
    assert edited["CreatedDate"] == created["CreatedDate"]

    emu.advance_clock(61)
    emu.edit_record(new_id, MobilePhone="090-5555-0002")           # the Python control
    again = sf.Contact.get(new_id)
    assert again["SystemModstamp"] > edited["SystemModstamp"] and again["MobilePhone"] == "090-5555-0002"

    emu.advance_clock(61)
    emu.org.touch(new_id)                                            # a system-only change
    touched = sf.Contact.get(new_id)
    assert touched["SystemModstamp"] > again["SystemModstamp"]
    assert touched["LastModifiedDate"] == again["LastModifiedDate"]

    found = sf.query(f"SELECT Id FROM Contact WHERE SystemModstamp > {again['SystemModstamp'][:19]}Z")
    assert [r["Id"] for r in found["records"]] == [new_id]


def test_datetime_filters_compare_instants_not_text(sf):
    # 2026-01-01T09:00:00+09:00 is 2026-01-01T00:00:00Z: the two records stamped after it match,
    # although "00:30" sorts before "09:00" as text.
    found = sf.query("SELECT LastName FROM Contact WHERE Department = 'stamps' "
                     "AND SystemModstamp > 2026-01-01T09:00:00+09:00 ORDER BY SystemModstamp, LastName")
    assert [r["LastName"] for r in found["records"]] == ["同時", "深夜", "昼"]
    same = sf.query("SELECT LastName FROM Contact WHERE SystemModstamp = 2026-01-01T00:30:00.000Z "
                    "ORDER BY LastName DESC")
    assert [r["LastName"] for r in same["records"]] == ["深夜", "同時"]
    before = sf.query("SELECT LastName FROM Contact WHERE Department = 'stamps' "
                      "AND LastModifiedDate < 2026-01-01T00:00:00Z")
    assert [r["LastName"] for r in before["records"]] == ["早朝"]
    newest_first = sf.query("SELECT LastName FROM Contact WHERE Department = 'stamps' "
                            "ORDER BY SystemModstamp DESC, Id LIMIT 1")
    assert newest_first["records"][0]["LastName"] == "昼"


@pytest.mark.parametrize("where, code", [
    ("SystemModstamp > '2026-01-01T00:00:00Z'", "INVALID_FIELD"),      # quoted: a string
    ("SystemModstamp > 2026-01-01", "INVALID_FIELD"),                  # a date for a datetime
    ("SystemModstamp > 2026-13-01T00:00:00Z", "MALFORMED_QUERY"),      # no 13th month
])
def test_bad_datetime_literals(sf, where, code):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query(f"SELECT Id FROM Contact WHERE {where}")
    assert info.value.content[0]["errorCode"] == code


# ---- delete, queryAll, the recycle bin -------------------------------------------------------

def test_deleted_records_leave_query_and_stay_in_query_all(sf, emu):
    gone = _one(sf, "SELECT Id, SystemModstamp FROM Contact WHERE Phone = '03-0000-0002'")
    emu.advance_clock(61)
    assert sf.Contact.delete(gone["Id"]) == 204

    assert sf.query("SELECT Id FROM Contact WHERE Phone = '03-0000-0002'")["totalSize"] == 0
    everything = sf.query("SELECT Id, IsDeleted, SystemModstamp FROM Contact WHERE Phone = '03-0000-0002'",
                          include_deleted=True)
    row = everything["records"][0]
    assert (row["Id"], row["IsDeleted"]) == (gone["Id"], True)
    assert row["SystemModstamp"] > gone["SystemModstamp"]
    only_deleted = sf.query("SELECT Id FROM Contact WHERE IsDeleted = true", include_deleted=True)
    assert [r["Id"] for r in only_deleted["records"]] == [gone["Id"]]
    assert sf.query("SELECT Id FROM Contact WHERE IsDeleted = true")["totalSize"] == 0

    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(gone["Id"])
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Contact.delete(gone["Id"])
    assert info.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_deleting_an_account_takes_its_contacts_and_undelete_brings_them_back(sf, emu):
    account_id = _one(sf, "SELECT Id FROM Account WHERE Phone = '03-1111-0000'")["Id"]
    contact_id = _one(sf, "SELECT Id FROM Contact WHERE AccountId = '001000000000001'")["Id"]
    assert set(emu.delete_record(account_id)) == {account_id, contact_id}
    assert sf.query("SELECT Id FROM Contact WHERE Phone = '03-0000-0001'")["totalSize"] == 0

    emu.advance_clock(61)
    assert set(emu.undelete_record(account_id)) == {account_id, contact_id}
    back = _one(sf, "SELECT Id, IsDeleted, Account.Name FROM Contact WHERE Phone = '03-0000-0001'")
    assert (back["Id"], back["IsDeleted"], back["Account"]["Name"]) == (contact_id, False, "株式会社同期")
    assert sf.query("SELECT Id FROM Contact WHERE IsDeleted = true", include_deleted=True)["totalSize"] == 0


def test_query_locators_page_query_and_query_all(sf, emu):
    soql = "SELECT Id FROM Contact WHERE Department = 'page'"
    ids = [r["Id"] for r in sf.query_all_iter(soql)]
    assert len(ids) == len(set(ids)) == PAGE_CONTACTS
    assert emu.api_calls["query"] == 1 and emu.api_calls["query_more"] == 1

    emu.delete_record(ids[0])
    first = sf.query(soql, include_deleted=True, headers={"Sforce-Query-Options": "batchSize=500"})
    assert first["totalSize"] == PAGE_CONTACTS and len(first["records"]) == 500
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/queryAll/01g")
    assert first["nextRecordsUrl"].endswith("-500")
    pages, result = 1, first
    seen = [r["Id"] for r in first["records"]]
    while not result["done"]:
        result = sf.query_more(result["nextRecordsUrl"], identifier_is_url=True)
        seen += [r["Id"] for r in result["records"]]
        pages += 1
    assert pages == 5 and sorted(seen) == sorted(ids)


# ---- getUpdated / getDeleted ------------------------------------------------------------------

def test_get_updated_lists_changes_within_whole_minutes(sf, emu):
    start = emu.org.now().replace(second=0)
    emu.advance_clock(60)
    contact_id = _one(sf, "SELECT Id FROM Contact WHERE Phone = '050-1000-0007'")["Id"]
    emu.edit_record(contact_id, Phone="050-1000-9999")
    new_id = emu.add_record("Contact", {"LastName": "新顔", "Phone": "03-7777-0000"})

    edited_at = sf.Contact.get(contact_id)["SystemModstamp"]
    same_minute = sf.Contact.updated(start, datetime.fromisoformat(edited_at[:19] + "+00:00"))
    assert same_minute["ids"] == []             # the seconds of `end` are ignored: not covered yet
    emu.advance_clock(60)
    end = emu.org.now()
    result = sf.Contact.updated(start, end)
    assert sorted(result["ids"]) == sorted([contact_id, new_id])
    assert result["latestDateCovered"] == end.replace(second=0).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    assert sf.Lead.updated(start, end)["ids"] == []


def test_get_deleted_lists_the_recycle_bin(sf, emu):
    start = emu.org.now().replace(second=0)
    emu.advance_clock(60)
    contact_id = _one(sf, "SELECT Id FROM Contact WHERE Phone = '050-1000-0008'")["Id"]
    sf.Contact.delete(contact_id)
    deleted_at = sf.query(f"SELECT SystemModstamp FROM Contact WHERE Id = '{contact_id}'",
                          include_deleted=True)["records"][0]["SystemModstamp"]
    emu.advance_clock(120)
    result = sf.Contact.deleted(start, emu.org.now())
    assert result["deletedRecords"] == [{"id": contact_id, "deletedDate": deleted_at}]
    assert result["earliestDateAvailable"] <= start.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    assert sf.Contact.updated(start, emu.org.now())["ids"] == []      # deleted: not an update

    emu.advance_clock(16 * 86400)                # past the recycle bin's 15 days: purged
    later = sf.Contact.deleted(emu.org.now() - timedelta(days=29), emu.org.now())
    assert later["deletedRecords"] == []
    assert later["earliestDateAvailable"] >= deleted_at[:17]
    assert sf.query("SELECT Id FROM Contact WHERE IsDeleted = true", include_deleted=True)["totalSize"] == 0


@pytest.mark.parametrize("query, code", [
    ("start=2026-01-01T00:00:00%2B00:00", "MISSING_ARGUMENT"),
    ("end=2026-01-01T00:00:00%2B00:00", "MISSING_ARGUMENT"),
    ("start=yesterday&end=today", "INVALID_INPUT"),
    ("start=2026-01-01T00:00:00+00:00&end=2026-01-02T00:00:00+00:00", "INVALID_INPUT"),  # + unencoded
    ("start=2026-01-01T00:00:00%2B00:00&end=2026-01-02T00:00:00%2B00:00", "INVALID_REPLICATION_DATE"),
])
def test_replication_errors(sf, emu, query, code):
    for resource in ("updated", "deleted"):
        answer = _http(emu, sf).get(_url(emu, f"sobjects/Contact/{resource}/?{query}"))
        assert answer.status_code == 400
        assert answer.json()[0]["errorCode"] == code, (resource, answer.json())


def test_replication_window_rules(sf, emu):
    now = emu.org.now()
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Contact.updated(now - timedelta(days=31), now)           # beyond 30 days
    assert info.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Contact.deleted(now, now - timedelta(minutes=5))         # start after end
    assert info.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    with pytest.raises(SalesforceMalformedRequest):
        sf.Contact.deleted(now.replace(second=1), now.replace(second=50))   # the same minute
    assert emu.api_calls["replication"] == 3


# ---- lead conversion --------------------------------------------------------------------------

def test_converting_a_lead(sf, emu):
    lead = _one(sf, "SELECT Id, SystemModstamp FROM Lead WHERE Phone = '06-2222-0001'")
    start = emu.org.now().replace(second=0)
    emu.advance_clock(60)
    account_id, contact_id = emu.convert_lead(lead["Id"])
    emu.advance_clock(60)

    converted = _one(sf, "SELECT IsConverted, Status, ConvertedDate, ConvertedContactId, "
                         "ConvertedAccountId, ConvertedContact.Phone, SystemModstamp FROM Lead "
                         f"WHERE Id = '{lead['Id']}'")
    assert converted["IsConverted"] is True and converted["Status"] == "Closed - Converted"
    assert (converted["ConvertedContactId"], converted["ConvertedAccountId"]) == (contact_id, account_id)
    assert converted["ConvertedContact"]["Phone"] == "06-2222-0001"
    assert converted["SystemModstamp"] > lead["SystemModstamp"]
    contact = _one(sf, f"SELECT Name, Email, Account.Name FROM Contact WHERE Id = '{contact_id}'")
    assert (contact["Name"], contact["Email"], contact["Account"]["Name"]) == ("見込 一", "ichi@example.jp",
                                                                             "見込商事")
    assert sf.Lead.updated(start, emu.org.now())["ids"] == [lead["Id"]]
    assert sf.Contact.updated(start, emu.org.now())["ids"] == [contact_id]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Lead.update(lead["Id"], {"Phone": "06-0000-0000"})
    assert info.value.content[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    with pytest.raises(ValueError):
        emu.convert_lead(lead["Id"])


# ---- Bulk API 2.0 query jobs ------------------------------------------------------------------

def _csv_rows(page):
    return list(csv.reader(io.StringIO(page)))


def test_bulk2_query_through_simple_salesforce(sf, emu):
    pages = list(sf.bulk2.Contact.query(
        "SELECT Id, LastName, Phone, Account.Name, IsDeleted FROM Contact WHERE Department = 'stamps' "
        "ORDER BY Phone", max_records=3, wait=0.1))
    assert len(pages) == 2
    first, second = _csv_rows(pages[0]), _csv_rows(pages[1])
    assert first[0] == second[0] == ["Id", "LastName", "Phone", "Account.Name", "IsDeleted"]
    rows = first[1:] + second[1:]
    assert [r[1:] for r in rows] == [["早朝", "03-0000-0001", "株式会社同期", "false"],
                                     ["深夜", "03-0000-0002", "", "false"],
                                     ["昼", "03-0000-0003", 'Quote "Co", Ltd', "false"],
                                     ["同時", "03-0000-0004", "", "false"]]
    assert pages[0].splitlines()[3].endswith('"Quote ""Co"", Ltd","false"')     # quotes doubled
    assert pages[0].splitlines()[2].count(',,') == 1                          # null: nothing at all
    assert emu.api_calls["bulk_query"] >= 4          # create, at least one poll, two result pages


def test_bulk2_job_lifecycle_over_http(sf, emu):
    http = _http(emu, sf)
    emu.bulk_job_seconds = 0.6
    created = http.post(_url(emu, "jobs/query"), json={
        "operation": "query", "query": "SELECT Id, SystemModstamp FROM Contact WHERE Department = 'page'"})
    assert created.status_code == 200
    job = created.json()
    assert job["state"] == "UploadComplete" and job["object"] == "Contact" and job["id"].startswith("750")
    assert (job["contentType"], job["lineEnding"], job["columnDelimiter"]) == ("CSV", "LF", "COMMA")

    early = http.get(_url(emu, f"jobs/query/{job['id']}/results"))
    assert early.status_code == 400 and early.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    states = []
    while not states or states[-1] != "JobComplete":
        states.append(http.get(_url(emu, f"jobs/query/{job['id']}")).json()["state"])
        time.sleep(0.05)
    assert "InProgress" in states
    info = http.get(_url(emu, f"jobs/query/{job['id']}")).json()
    assert info["numberRecordsProcessed"] == PAGE_CONTACTS and info["jobType"] == "V2Query"

    locator, total = None, 0
    while locator != "null":
        params = {"maxRecords": 1000, **({"locator": locator} if locator else {})}
        page = http.get(_url(emu, f"jobs/query/{job['id']}/results"), params=params)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/csv")
        rows = _csv_rows(page.text)
        assert rows[0] == ["Id", "SystemModstamp"] and rows[1][1].endswith(".000Z")
        assert int(page.headers["Sforce-NumberOfRecords"]) == len(rows) - 1
        total += len(rows) - 1
        locator = page.headers["Sforce-Locator"]
    assert total == PAGE_CONTACTS

    refused = http.patch(_url(emu, f"jobs/query/{job['id']}"), json={"state": "Aborted"})
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    assert http.delete(_url(emu, f"jobs/query/{job['id']}")).status_code == 204
    assert http.get(_url(emu, f"jobs/query/{job['id']}")).status_code == 404


def test_bulk2_abort_query_all_and_errors(sf, emu):
    http = _http(emu, sf)
    emu.bulk_job_seconds = 30
    slow = http.post(_url(emu, "jobs/query"), json={"operation": "query", "query": "SELECT Id FROM Lead"})
    aborted = http.patch(_url(emu, f"jobs/query/{slow.json()['id']}"), json={"state": "Aborted"})
    assert aborted.status_code == 200 and aborted.json()["state"] == "Aborted"
    assert http.get(_url(emu, f"jobs/query/{slow.json()['id']}/results")).status_code == 400

    emu.bulk_job_seconds = 0
    gone = _one(sf, "SELECT Id FROM Contact WHERE Phone = '03-0000-0003'")["Id"]
    emu.delete_record(gone)
    job = http.post(_url(emu, "jobs/query"), json={
        "operation": "queryAll", "query": "SELECT Id, IsDeleted FROM Contact WHERE IsDeleted = true",
        "columnDelimiter": "PIPE", "lineEnding": "CRLF"}).json()
    page = http.get(_url(emu, f"jobs/query/{job['id']}/results"))
    assert page.content.decode() == f'"Id"|"IsDeleted"\r\n"{gone}"|"true"\r\n'
    assert page.headers["Sforce-Locator"] == "null" and page.headers["Sforce-NumberOfRecords"] == "1"

    bad = [({"operation": "query", "query": "SELECT Nope FROM Contact"}, "INVALID_FIELD"),
           ({"operation": "query", "query": "SELECT Id FROM Nope"}, "INVALID_TYPE"),
           ({"operation": "query", "query": "SELECT COUNT() FROM Contact"}, "INVALIDJOB"),
           ({"operation": "insert", "query": "SELECT Id FROM Contact"}, "INVALIDJOB"),
           ({"operation": "query"}, "INVALIDJOB")]
    for body, code in bad:
        answer = http.post(_url(emu, "jobs/query"), json=body)
        assert answer.status_code == 400 and answer.json()[0]["errorCode"] == code, body
    unknown = http.get(_url(emu, "jobs/query/750000000000000AAA"))
    assert unknown.status_code == 404 and unknown.json()[0]["errorCode"] == "NOT_FOUND"
    bad_locator = http.get(_url(emu, f"jobs/query/{job['id']}/results"), params={"locator": "!!"})
    assert bad_locator.status_code == 400
    assert "api-usage=" in bad_locator.headers["Sforce-Limit-Info"]


# ---- changing the org while a sync reads it ----------------------------------------------------

def test_changes_during_a_paged_sync_are_caught_by_the_incremental_pass(sf, emu):
    start = emu.org.now().replace(second=0)
    emu.advance_clock(60)
    pages = sf.query("SELECT Id, Phone FROM Contact WHERE Department = 'page' ORDER BY Id")
    first_ids = [r["Id"] for r in pages["records"]]
    emu.edit_record(first_ids[0], Phone="050-9999-0000")           # already read
    emu.delete_record(first_ids[1])                               # already read
    rest = sf.query_more(pages["nextRecordsUrl"], identifier_is_url=True)
    assert len(first_ids) + len(rest["records"]) == PAGE_CONTACTS   # the cursor's rows stay put

    emu.advance_clock(60)
    end = emu.org.now()
    assert sf.Contact.updated(start, end)["ids"] == [first_ids[0]]
    assert [d["id"] for d in sf.Contact.deleted(start, end)["deletedRecords"]] == [first_ids[1]]
    assert _one(sf, f"SELECT Phone FROM Contact WHERE Id = '{first_ids[0]}'")["Phone"] == "050-9999-0000"


def test_controls_are_thread_safe_while_queries_and_jobs_run(emu, sf):
    emu.bulk_job_seconds = 0.05
    ids = [r["Id"] for r in sf.query_all("SELECT Id FROM Contact WHERE Department = 'page'")["records"]]
    errors, stop = [], threading.Event()

    def churn():
        try:
            for i, record_id in enumerate(ids[:300]):
                emu.edit_record(record_id, Phone=f"070-0000-{i:04d}")
                emu.delete_record(record_id)
                if i % 2:
                    emu.undelete_record(record_id)
        except Exception as exc:                    # reported below, with the failing call
            errors.append(exc)
        finally:
            stop.set()

    worker = threading.Thread(target=churn)
    worker.start()
    reader = client_for(emu)
    rounds = 0
    while not stop.is_set() or rounds < 2:
        rows = list(reader.query_all_iter("SELECT Id, Phone FROM Contact WHERE Department = 'page'",
                                          include_deleted=True))
        assert len(rows) == PAGE_CONTACTS
        pages = list(reader.bulk2.Contact.query("SELECT Id FROM Contact WHERE Department = 'page'",
                                                wait=0.05))
        assert sum(len(_csv_rows(p)) - 1 for p in pages) <= PAGE_CONTACTS
        rounds += 1
    worker.join()
    assert errors == []
    assert not [e for e in emu.request_log if e["status"] == 500]
    live = sf.query("SELECT COUNT() FROM Contact WHERE Department = 'page'")["totalSize"]
    assert live == PAGE_CONTACTS - 150
    assert sf.query("SELECT COUNT() FROM Contact WHERE Phone LIKE '070-0000-%'")["totalSize"] == 150


# ---- hostile input ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["２０２６-01-01T00:00:00Z", "\x00\x1b[2J", "x" * 5000, "2026-01-01",
                                   "'; DELETE FROM Contact; --", "0001-01-01T00:00:00+01:00"])
def test_hostile_replication_dates_get_a_clear_400(sf, emu, value):
    for resource in ("updated", "deleted"):
        answer = _http(emu, sf).get(_url(emu, f"sobjects/Lead/{resource}/"),
                                    params={"start": value, "end": "2026-01-02T00:00:00Z"})
        assert answer.status_code == 400
        assert answer.json()[0]["errorCode"] in ("INVALID_INPUT", "INVALID_REPLICATION_DATE")


@pytest.mark.parametrize("literal", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00",
                                     "2026-02-30T00:00:00Z"])
def test_out_of_range_datetime_literals_are_malformed_queries(sf, literal):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query(f"SELECT Id FROM Contact WHERE SystemModstamp > {literal}")
    assert info.value.content[0]["errorCode"] == "MALFORMED_QUERY"


@pytest.mark.parametrize("body", [b"", b"[]", b"{not json", b'{"operation": "query", "query": 5}',
                                  '{"operation": "query", "query": "SELECT Id FROM Contact WHERE '
                                  'Phone = \'\\u0000\'", "columnDelimiter": "TAB\\u0000"}'.encode()])
def test_hostile_bulk_job_bodies_get_a_clear_400(sf, emu, body):
    answer = _http(emu, sf).post(_url(emu, "jobs/query"), data=body,
                                 headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()[0]["errorCode"]


def test_deleting_a_person_account_deletes_its_hidden_contact():
    from emulator import Emulator, Org

    org = Org(records={"Account": [{"IsPersonAccount": True, "FirstName": "健", "LastName": "伊藤",
                                    "PersonMobilePhone": "080-5555-6666"}]},
              person_accounts=True, name="個人取引先の削除")
    with Emulator(org) as server:
        client = client_for(server)
        account_id = client.query("SELECT Id FROM Account")["records"][0]["Id"]
        contact_id = _one(client, "SELECT Id FROM Contact WHERE MobilePhone = '080-5555-6666'")["Id"]
        client.Account.delete(account_id)
        assert client.query("SELECT Id FROM Contact")["totalSize"] == 0
        deleted = client.query("SELECT Id, IsPersonAccount FROM Contact", include_deleted=True)
        assert [(r["Id"], r["IsPersonAccount"]) for r in deleted["records"]] == [(contact_id, True)]
