"""The phone index: every phone field of the org's Contacts, Accounts and Leads, normalised here.

Salesforce stores phone numbers as typed and SOQL compares strings exactly, so a live lookup finds
only the stored forms it thought of. The index keeps, per record, each phone field's raw value and
the E.164 key of every number it holds (``core.phone.index_keys``), so a lookup is one indexed read
whatever the stored form. docs/index.md explains the whole of it; in short:

- **Tables** (this module's): ``index_records`` (one row per record: what the screen shows and
  what picks the winner), ``index_phones`` (record, field, E.164 key, raw value, the record's
  priority and LastModifiedDate; indexed so a number's first row is its winner) and ``index_sync`` (one row per object: phase, resume point, high-water SystemModstamp,
  counts, calls; and the row ``_index`` for the whole index).
- **Initial (and weekly full) sync**, object by object, in keyset pages of 2,000 rows
  (``WHERE Id > :last ORDER BY Id``); each page and its resume point are committed together, so a
  crash or kill -9 anywhere resumes at the next page and memory stays flat. An object with more
  records than ``index_bulk_threshold`` is read by a Bulk API 2.0 query job instead (fewer
  calls), its job id and results locator being the resume point. Its high-water mark
  (the newest SystemModstamp when it started) is taken first, so a record changed while the pages
  run is picked up by the next round.
- **Incremental rounds**: ONE composite request holding a ``queryAll`` per object for the rows
  with ``SystemModstamp >= high water - OVERLAP``; deleted rows (IsDeleted), converted leads and
  the hidden Contacts of person accounts leave the index, a row older than the one stored is
  ignored (dedupe on Id), and an Account's new name reaches its Contacts.
- **Lookups** (:func:`find`): the DESIGN §3 winner among all candidates (Contact > Account > Lead,
  newest LastModifiedDate, smallest Id), with no API call.

The lease that keeps one process syncing at a time is core/jobs.py's (``jobs.sync_index``).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import time
from typing import Callable, Iterable, Iterator

from simple_salesforce.format import format_soql

from core import errors
from core.display import Contact
from core.phone import index_keys
from core.salesforce import (Connection, LimitExceeded, LoginFailed, SalesforceError, Unavailable,
                             connection_for, lightning_url, raise_for_subresponse)
from core.settings import Settings, load_settings
from core.store import now_iso, select_in

OBJECTS = ("Contact", "Account", "Lead")   # priority order (DESIGN §3.1)
PHONE_FIELDS = {"Contact": ("Phone", "MobilePhone"), "Account": ("Phone", "PersonMobilePhone"),
                "Lead": ("Phone", "MobilePhone")}
PAGE_ROWS = 2000                      # rows per keyset page: one API call each
BULK_PAGE_ROWS = 50_000               # rows per page of a Bulk API 2.0 job's results
BULK_POLLS = (0.5, 1.0, 2.0, 5.0, 10.0)   # waits between polls of a job (the last repeats)
BULK_WAIT_SECONDS = 3600.0            # a job not done by then: read the object in keyset pages
BULK_FAILED = ("Failed", "Aborted")
BOOLEAN_FIELDS = ("IsPersonAccount", "IsConverted", "IsDeleted")
OVERLAP = dt.timedelta(minutes=5)     # how far back each round looks past its high-water mark
PURGE_DAYS = 14                       # the recycle bin keeps deletions 15 days: a gap longer
                                      # than this needs a full re-sync to see them
EPOCH = "2000-01-01T00:00:00.000+0000"    # the high-water mark of an object with no records
INDEX = "_index"                      # the index_sync row of the whole index
OPERATION = "index_sync"              # the error log's operation for the sync
STALE = "INDEX_STALE"                 # catalogue code: the index could not be updated
SF_TIME = "%Y-%m-%dT%H:%M:%S.%f%z"    # Salesforce's datetime format ("...000+0000")


# ---------------------------------------------------------------------------------------------
# the queries: constant statements (object and field names from the tables below, never from
# input), every one through format_soql, which alone fills in values
# ---------------------------------------------------------------------------------------------

_COMMON = "LastModifiedDate, SystemModstamp"
_FIELDS = {
    ("Contact", False): f"Id, Name, Phone, MobilePhone, AccountId, Account.Name, {_COMMON}",
    ("Contact", True):
        f"Id, Name, Phone, MobilePhone, AccountId, Account.Name, IsPersonAccount, {_COMMON}",
    ("Account", False): f"Id, Name, Phone, {_COMMON}",
    ("Account", True):
        f"Id, Name, Phone, PersonMobilePhone, IsPersonAccount, PersonContactId, {_COMMON}",
    ("Lead", False): f"Id, Name, Company, Phone, MobilePhone, IsConverted, {_COMMON}",
    ("Lead", True): f"Id, Name, Company, Phone, MobilePhone, IsConverted, {_COMMON}",
}
# what the initial sync reads: live records with a phone (rounds read every change: a phone
# cleared, a lead converted must leave the index)
_INITIAL_WHERE = {
    ("Contact", False): "(Phone != null OR MobilePhone != null)",
    ("Contact", True): "(Phone != null OR MobilePhone != null) AND IsPersonAccount = false",
    ("Account", False): "Phone != null",
    ("Account", True): "(Phone != null OR PersonMobilePhone != null)",
    ("Lead", False): "(Phone != null OR MobilePhone != null) AND IsConverted = false",
    ("Lead", True): "(Phone != null OR MobilePhone != null) AND IsConverted = false",
}


def initial_soql(object_name: str, person_accounts: bool, after: str | None) -> str:
    """One keyset page of the initial sync: the records after Id ``after`` (None: the first)."""
    key = (object_name, person_accounts)
    where = _INITIAL_WHERE[key] + (" AND Id > {after}" if after else "")
    template = f"SELECT {_FIELDS[key]} FROM {object_name} WHERE {where} ORDER BY Id LIMIT {{limit}}"
    return format_soql(template, after=after, limit=PAGE_ROWS)


def round_soql(object_name: str, person_accounts: bool, since: dt.datetime) -> str:
    """A round's query (run through queryAll): every row changed at or after ``since``."""
    template = (f"SELECT {_FIELDS[object_name, person_accounts]}, IsDeleted FROM {object_name}"
                " WHERE SystemModstamp >= {since} ORDER BY SystemModstamp, Id")
    return format_soql(template, since=since)


def bulk_soql(object_name: str, person_accounts: bool) -> str:
    """A Bulk API 2.0 query job's statement: every record the initial sync reads."""
    key = (object_name, person_accounts)
    return format_soql(f"SELECT {_FIELDS[key]} FROM {object_name} WHERE {_INITIAL_WHERE[key]}")


def count_soql(object_name: str, person_accounts: bool) -> str:
    """How many records the initial sync of ``object_name`` reads (keyset or Bulk?)."""
    key = (object_name, person_accounts)
    return format_soql(f"SELECT COUNT() FROM {object_name} WHERE {_INITIAL_WHERE[key]}")


def csv_records(text: str) -> Iterator[dict]:
    """Bulk API 2.0 CSV results as records shaped like the REST API's (``Account.Name`` nested,
    booleans as bool, an empty value as None), one at a time (a page holds 50,000)."""
    for row in csv.DictReader(io.StringIO(text)):
        record: dict = {}
        for name, value in row.items():
            value = None if value == "" else value
            if name in BOOLEAN_FIELDS:
                value = value == "true"
            parent, _, child = name.partition(".")
            if child:
                record.setdefault(parent, {})[child] = value
            else:
                record[name] = value
        yield record


def high_water_soql(object_name: str) -> str:
    """The newest SystemModstamp of ``object_name`` (where a full sync's first round starts)."""
    return format_soql(f"SELECT SystemModstamp FROM {object_name} "
                       "ORDER BY SystemModstamp DESC LIMIT {limit}", limit=1)


# ---------------------------------------------------------------------------------------------
# records as rows
# ---------------------------------------------------------------------------------------------

NAME_MAX = 255      # characters of a company or person name kept for the screen


def names_of(object_name: str, record: dict) -> tuple[str | None, str | None]:
    """(company, person) the screen shows for a record (DESIGN §3.4)."""
    if object_name == "Contact":
        account = record.get("Account")
        return _name(account.get("Name") if isinstance(account, dict) else None), _name(record.get("Name"))
    if object_name == "Account":
        if record.get("IsPersonAccount"):
            return None, _name(record.get("Name"))
        return _name(record.get("Name")), None
    return _name(record.get("Company")), _name(record.get("Name"))


def _name(value) -> str | None:
    """A name from Salesforce's answer as a screen may show it: text only (a number, list or
    object in a broken answer counts as no name), without control characters or lone
    surrogates (SQLite cannot store them), bounded."""
    if not isinstance(value, str):
        return None
    return errors.clean_text(value.encode("utf-8", "replace").decode("utf-8"), NAME_MAX) or None


def phones_of(object_name: str, record: dict, region: str) -> list[tuple[str, str, str]]:
    """(field, E.164 key, raw value) for every number the record's phone fields hold."""
    found = []
    for field in PHONE_FIELDS[object_name]:
        raw = record.get(field)
        for key in dict.fromkeys(index_keys(raw, region)):
            found.append((field, key, raw))
    return found


def _belongs(object_name: str, record: dict) -> bool:
    """False for rows the index never holds: deleted, converted, a person account's Contact."""
    if record.get("IsDeleted"):
        return False
    if object_name == "Lead" and record.get("IsConverted"):
        return False
    return not (object_name == "Contact" and record.get("IsPersonAccount"))


def _parse_time(value: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(value or "", SF_TIME)
    except ValueError:
        return None


def _sf_time(value: str | None) -> str | None:
    """A Salesforce datetime in the REST API's form ("...000+0000"; Bulk writes "...000Z"), so
    stored LastModifiedDates compare as strings."""
    parsed = _parse_time(value)
    if parsed is None:
        return value
    return parsed.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _stamp_key(value: str | None) -> str:
    """A SystemModstamp as a sortable UTC string ("" when missing)."""
    parsed = _parse_time(value)
    return now_iso(parsed) if parsed else ""


class _Writer:
    """Writes records into the index inside the caller's transaction."""

    def __init__(self, db, region: str, generation: int):
        self.db, self.region, self.generation = db, region, generation

    def apply(self, object_name: str, records: Iterable[dict], only_newer: bool) -> int:
        """Put ``records`` into the index (or take them out); returns how many were seen."""
        seen = 0
        for record in records:
            seen += 1
            if object_name == "Account" and _belongs(object_name, record) \
                    and not record.get("IsPersonAccount"):
                self._rename_contacts(record)
            if only_newer and self._stored_is_newer(record):
                continue
            self._write(object_name, record)
        return seen

    def _rename_contacts(self, account: dict) -> None:
        # a Contact's SystemModstamp does not move when its Account is renamed
        self.db.execute("UPDATE index_records SET company = ? WHERE account_id = ? "
                        "AND object = 'Contact'", [account.get("Name"), account.get("Id")])

    def _stored_is_newer(self, record: dict) -> bool:
        found = self.db.execute("SELECT system_modstamp FROM index_records WHERE record_id = ?",
                                [record.get("Id")]).fetchone()
        return bool(found and found[0] and found[0] > _stamp_key(record.get("SystemModstamp")))

    def _write(self, object_name: str, record: dict) -> None:
        record_id = record.get("Id")
        self.db.execute("DELETE FROM index_phones WHERE record_id = ?", [record_id])
        belongs = _belongs(object_name, record)
        phones = phones_of(object_name, record, self.region) if belongs else []
        if not phones:
            self.db.execute("DELETE FROM index_records WHERE record_id = ?", [record_id])
            return
        company, person = names_of(object_name, record)
        # account_id relates the record for its Task: a Contact's AccountId, a person account's
        # PersonContactId (core/activity.py). A live lookup's record lacks it and SystemModstamp:
        # the stored ones are kept.
        related = "PersonContactId" if record.get("IsPersonAccount") else "AccountId"
        self.db.execute(
            "INSERT INTO index_records (record_id, object, company, person, account_id, "
            "is_person_account, last_modified, system_modstamp, generation) "
            "VALUES (:id, :object, :company, :person, :account, :person_account, :modified, "
            ":stamp, :generation) ON CONFLICT (record_id) DO UPDATE SET object = excluded.object, "
            "company = excluded.company, person = excluded.person, "
            "account_id = CASE WHEN :has_account = 1 THEN excluded.account_id ELSE index_records.account_id END, "
            "is_person_account = excluded.is_person_account, "
            "last_modified = excluded.last_modified, "
            "system_modstamp = coalesce(excluded.system_modstamp, index_records.system_modstamp), "
            "generation = excluded.generation",
            {"id": record_id, "object": object_name, "company": company, "person": person,
             "account": record.get(related), "has_account": int(related in record),
             "person_account": int(bool(record.get("IsPersonAccount"))),
             "modified": _sf_time(record.get("LastModifiedDate")),
             "stamp": _stamp_key(record.get("SystemModstamp")) or None,
             "generation": self.generation})
        priority, modified = OBJECTS.index(object_name), _sf_time(record.get("LastModifiedDate"))
        self.db.conn.executemany(
            "INSERT INTO index_phones (record_id, field, e164, raw, priority, last_modified) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (record_id, field, e164) DO NOTHING",
            [[record_id, field, key, raw, priority, modified] for field, key, raw in phones])


# ---------------------------------------------------------------------------------------------
# the sync state
# ---------------------------------------------------------------------------------------------

def _state(db, scope: str) -> dict:
    cursor = db.execute("SELECT * FROM index_sync WHERE scope = ?", [scope])
    found = cursor.fetchone()
    return dict(zip([d[0] for d in cursor.description], found)) if found else {"scope": scope}


def _save_state(db, scope: str, **values) -> None:
    columns = ["scope"] + list(values)
    updates = ", ".join(f"{c} = excluded.{c}" for c in values)
    db.execute(f"INSERT INTO index_sync ({', '.join(columns)}) VALUES "
               f"({', '.join('?' for _ in columns)}) ON CONFLICT (scope) DO UPDATE SET {updates}",
               [scope] + list(values.values()))


def _add_calls(db, scope: str, calls: int) -> None:
    db.execute("UPDATE index_sync SET api_calls = api_calls + ? WHERE scope = ?", [calls, scope])


# ---------------------------------------------------------------------------------------------
# the sync
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class SyncReport:
    """What one :func:`sync` did."""

    skipped: str | None = None      # why nothing ran: "off", "not connected", "lease held"
    full: bool = False              # a full sync was started by this run
    pages: int = 0                  # pages of the full sync read (keyset or Bulk results)
    changes: int = 0                # rows the incremental round read
    api_calls: int = 0
    failed: str | None = None       # the catalogue code that stopped it
    records: int = 0                # records in the index afterwards

    def as_dict(self) -> dict:
        """The report as a plain dict (for --json output)."""
        return dataclasses.asdict(self)


class _Sync:
    """One run of the sync for a store and a connection."""

    def __init__(self, store, connection: Connection, settings: Settings,
                 keep_alive: Callable[[], None]):
        self.store, self.connection, self.settings = store, connection, settings
        self.person_accounts = connection.org.person_accounts
        self.keep_alive = keep_alive
        self.report = SyncReport()

    def run(self, full: bool) -> SyncReport:
        self._check_org()
        if full or self._full_due():
            self._start_full()
        for object_name in OBJECTS:
            self._initial(object_name)
        self._round()
        return self.report

    # -- the org and the full sync -------------------------------------------------------------

    def _check_org(self) -> None:
        """A different org behind the settings: what the index holds is not this org's."""
        org = self.connection.org
        if _state(self.store.db, INDEX).get("org_id") not in (None, org.org_id):
            clear(self.store)
        with self.store.transaction() as db:
            _save_state(db, INDEX, org_id=org.org_id, instance_url=org.instance_url,
                        connected_as=connected_as(self.settings))

    def _full_due(self) -> bool:
        """Never synced in full, the last full sync older than ``index_full_days``, or no news
        from the org for longer than the recycle bin keeps deletions."""
        db = self.store.db
        states = [_state(db, name) for name in OBJECTS]
        if any(s.get("phase") is None for s in states):
            return True
        if any(s.get("phase") == "initial" for s in states):
            return False    # one is running: resume it
        now = dt.datetime.now(dt.timezone.utc)
        last_full = min(s.get("last_full_at") or "" for s in states)
        # the last time the index was known to match the org (a round, or the full sync itself)
        last_seen = max(_state(db, INDEX).get("last_round_at") or "", last_full)
        return (last_full < now_iso(now - dt.timedelta(days=self.settings.index_full_days))
                or last_seen < now_iso(now - dt.timedelta(days=PURGE_DAYS)))

    def _start_full(self) -> None:
        """Take every object's high-water mark (one composite call) and start its pages."""
        subrequests = [self.connection.query_subrequest(name, high_water_soql(name))
                       for name in OBJECTS]
        responses = self._composite(subrequests)
        methods = self._methods()
        with self.store.transaction() as db:
            _add_calls(db, INDEX, 1 + bool(self.settings.index_bulk_threshold))
            for name, response in zip(OBJECTS, responses):
                rows = response["body"].get("records", [])
                generation = (_state(db, name).get("generation") or 0) + 1
                _save_state(db, name, phase="initial", resume_after=None, generation=generation,
                            high_water=rows[0]["SystemModstamp"] if rows else EPOCH,
                            full_started_at=now_iso(), method=methods[name], bulk_job=None,
                            bulk_locator=None)
        self.report.full = True

    def _methods(self) -> dict[str, str]:
        """How each object is read: "bulk" above the threshold (one composite of counts), else
        "keyset"."""
        threshold = self.settings.index_bulk_threshold
        if not threshold:
            return dict.fromkeys(OBJECTS, "keyset")
        subrequests = [
            self.connection.query_subrequest(name, count_soql(name, self.person_accounts))
            for name in OBJECTS]
        responses = self._composite(subrequests)
        return {name: "bulk" if response["body"].get("totalSize", 0) > threshold else "keyset"
                for name, response in zip(OBJECTS, responses)}

    def _composite(self, subrequests: list[dict]) -> list[dict]:
        self.report.api_calls += 1
        responses = self.connection.composite(subrequests)
        for response in responses:
            raise_for_subresponse(response)
        return responses

    # -- pages -----------------------------------------------------------------------------

    def _initial(self, object_name: str) -> None:
        """Read what is left of ``object_name``'s full sync, page by page."""
        state = _state(self.store.db, object_name)
        if state.get("phase") == "initial" and state.get("method") == "bulk":
            self._bulk(object_name, state)
        self._keyset(object_name)

    def _keyset(self, object_name: str) -> None:
        """Read ``object_name``'s remaining keyset pages, committing each with its resume point."""
        while True:
            state = _state(self.store.db, object_name)
            if state.get("phase") != "initial":
                return
            soql = initial_soql(object_name, self.person_accounts, state.get("resume_after"))
            self.report.api_calls += 1
            records = self.connection.query(soql).get("records", [])
            more = len(records) == PAGE_ROWS
            self._commit_page(object_name, state, records,
                              {"resume_after": records[-1]["Id"]} if more else None)

    # -- Bulk API 2.0 ------------------------------------------------------------------------

    def _bulk(self, object_name: str, state: dict) -> None:
        """Read ``object_name`` through a Bulk API 2.0 query job (the one an interrupted run
        started, when it still exists); a job that fails falls back to keyset pages."""
        job = state.get("bulk_job") or self._bulk_create(object_name, state)
        if not self._bulk_wait(object_name, job):
            with self.store.transaction() as db:
                _save_state(db, object_name, method="keyset", bulk_job=None, bulk_locator=None)
            return
        while True:
            state = _state(self.store.db, object_name)
            if state.get("phase") != "initial" or state.get("bulk_job") != job:
                return
            params = {"maxRecords": BULK_PAGE_ROWS}
            if state.get("bulk_locator"):
                params["locator"] = state["bulk_locator"]
            self.report.api_calls += 1
            response = self.connection.rest_response("GET", f"jobs/query/{job}/results",
                                                     params=params)
            locator = response.headers.get("Sforce-Locator") or "null"
            # UTF-8 whatever the Content-Type says (requests would guess ISO-8859-1 for text/csv)
            text = response.content.decode("utf-8")
            del response    # one copy of the page in memory, read row by row
            self._commit_page(object_name, state, csv_records(text),
                              None if locator == "null" else {"bulk_locator": locator})

    def _bulk_create(self, object_name: str, state: dict) -> str:
        payload = {"operation": "query", "query": bulk_soql(object_name, self.person_accounts)}
        self.report.api_calls += 1
        job = self.connection.rest_response("POST", "jobs/query", json=payload).json()["id"]
        with self.store.transaction() as db:
            if _state(db, object_name).get("generation") == state.get("generation"):
                _add_calls(db, object_name, 1)
                _save_state(db, object_name, bulk_job=job, bulk_locator=None)
        return job

    def _bulk_wait(self, object_name: str, job: str) -> bool:
        """Poll the job until it is complete (True) or failed, gone or too slow (False)."""
        started = time.monotonic()
        for attempt in range(10_000):
            self.report.api_calls += 1
            with self.store.transaction() as db:
                _add_calls(db, object_name, 1)
            try:
                info = self.connection.rest_response("GET", f"jobs/query/{job}").json()
            except (Unavailable, LimitExceeded, LoginFailed):
                raise
            except SalesforceError:
                return False    # the job is gone (an old run's: jobs are deleted after 7 days)
            if info.get("state") == "JobComplete":
                return True
            if info.get("state") in BULK_FAILED or time.monotonic() - started > BULK_WAIT_SECONDS:
                return False
            time.sleep(BULK_POLLS[min(attempt, len(BULK_POLLS) - 1)])
            self.keep_alive()
        return False

    def _commit_page(self, object_name: str, state: dict, records: Iterable[dict],
                     resume: dict | None) -> None:
        """Commit a page of the full sync with where to resume (None: the object is done)."""
        generation = state["generation"]
        with self.store.transaction() as db:
            if _state(db, object_name).get("generation") != generation:
                return      # cleared or restarted meanwhile
            _Writer(db, self.settings.default_region, generation).apply(
                object_name, records, only_newer=False)
            _add_calls(db, object_name, 1)
            self.report.pages += 1
            if resume is not None:
                _save_state(db, object_name, **resume)
            else:
                self._finish_full(db, object_name, generation)
        self.keep_alive()

    def _finish_full(self, db, object_name: str, generation: int) -> None:
        """The object's last page: drop what the full sync did not see, mark it ready (and the
        index built once every object is)."""
        self._drop_older_generations(db, object_name, generation)
        _save_state(db, object_name, phase="ready", resume_after=None, last_full_at=now_iso(),
                    bulk_job=None, bulk_locator=None)
        if all(_state(db, name).get("phase") == "ready" for name in OBJECTS):
            _save_state(db, INDEX, built_at=_state(db, INDEX).get("built_at") or now_iso())

    @staticmethod
    def _drop_older_generations(db, object_name: str, generation: int) -> None:
        """A full sync's end: records it did not see are gone from the org."""
        old = "SELECT record_id FROM index_records WHERE object = ? AND generation < ?"
        db.execute(f"DELETE FROM index_phones WHERE record_id IN ({old})",
                   [object_name, generation])
        db.execute("DELETE FROM index_records WHERE object = ? AND generation < ?",
                   [object_name, generation])

    # -- the incremental round --------------------------------------------------------------

    def _round(self) -> None:
        """One composite request: each object's changes since its high-water mark (queryAll)."""
        db = self.store.db
        states = {name: _state(db, name) for name in OBJECTS}
        subrequests = [self.connection.query_subrequest(
            name, round_soql(name, self.person_accounts, self._since(states[name])), all_rows=True)
            for name in OBJECTS]
        responses = self._composite(subrequests)
        with self.store.transaction() as db:
            _add_calls(db, INDEX, 1)
        for name, response in zip(OBJECTS, responses):
            body = response["body"]
            self._commit_changes(name, states[name], body.get("records", []))
            while not body.get("done", True) and body.get("nextRecordsUrl"):
                self.report.api_calls += 1
                body = self.connection.query_more(body["nextRecordsUrl"])
                self._commit_changes(name, states[name], body.get("records", []), calls=1)
                self.keep_alive()
        with self.store.transaction() as db:
            _save_state(db, INDEX, last_round_at=now_iso(), last_error=None, last_error_at=None)

    @staticmethod
    def _since(state: dict) -> dt.datetime:
        high_water = _parse_time(state.get("high_water")) or _parse_time(EPOCH)
        return (high_water - OVERLAP).astimezone(dt.timezone.utc)

    def _commit_changes(self, object_name: str, state: dict, records: list[dict],
                        calls: int = 0) -> None:
        newest = max((r.get("SystemModstamp") or "" for r in records), key=_stamp_key, default=None)
        with self.store.transaction() as db:
            if _state(db, object_name).get("generation") != state.get("generation"):
                return
            self.report.changes += _Writer(db, self.settings.default_region,
                                           state["generation"]).apply(object_name, records, True)
            _add_calls(db, object_name, calls)
            stored = _state(db, object_name).get("high_water")
            if newest and _stamp_key(newest) > _stamp_key(stored):
                _save_state(db, object_name, high_water=newest)


def connected_as(settings: Settings) -> str:
    """Who the settings connect as (login host, auth method, user or client): an index built
    under other settings may be another org's, so it is not used until a sync checks."""
    who = settings.username if settings.auth_method == "password" else settings.oauth_client_id
    return f"{settings.login_host()} {settings.auth_method} {who}"


def wanted(settings: Settings) -> bool:
    """Whether the index is on and Salesforce is connected (so there is something to sync)."""
    return bool(settings.phone_index and settings.is_configured())


def sync(store, full: bool = False, connection_factory: Callable[..., Connection] = connection_for,
         keep_alive: Callable[[], None] = lambda: None) -> SyncReport:
    """Bring the index up to date: resume or start a full sync when one is due (or ``full``),
    then one incremental round. Never raises for a failure of Salesforce or of an answer: it
    is logged (one INDEX_STALE row: callers are still named from the index as it is) and
    reported in ``failed``.

    Callers other than core/jobs.py use ``jobs.sync_index``, which holds the lease that keeps
    one process syncing at a time; ``keep_alive`` is called after each page to renew it.
    """
    settings = load_settings(store)
    if not settings.phone_index:
        return SyncReport(skipped="off")
    if not settings.is_configured():
        return SyncReport(skipped="not connected")
    report = SyncReport()
    try:
        work = _Sync(store, connection_factory(store), settings, keep_alive)
        report = work.report
        work.run(full)
    except SalesforceError as exc:
        report.failed = exc.code
        _stale(store, exc.code, exc.detail)
    except Exception as exc:  # an answer we did not expect: logged, never a traceback
        report.failed = errors.report_failure(store, OPERATION, exc).code
        _stale(store, report.failed, errors.describe_failure(exc)[1])
    else:
        errors.record_recovery(store, "salesforce", OPERATION)
    report.records = count_records(store)
    return report


def _stale(store, code: str, detail: str) -> None:
    """Log the failed sync: one open INDEX_STALE incident, its detail naming the cause."""
    state = _state(store.db, INDEX)
    last = state.get("last_round_at") or "never"
    detail = f"{code}: {detail}".strip() + f" (last synced: {last})"
    with store.transaction() as db:
        _save_state(db, INDEX, last_error=code, last_error_at=now_iso())
    errors.report_failure(store, OPERATION, STALE, detail=detail)


# ---------------------------------------------------------------------------------------------
# lookups
# ---------------------------------------------------------------------------------------------

def usable(store, settings: Settings | None = None) -> bool:
    """Whether lookups answer from the index: on, connected as when it was last synced, and
    built once (one small read)."""
    settings = settings or load_settings(store)
    if not wanted(settings):
        return False
    found = store.conn.execute("SELECT built_at, connected_as FROM index_sync WHERE scope = ?",
                               [INDEX]).fetchone()
    return bool(found and found[0] and found[1] == connected_as(settings))


def find(store, e164: str) -> Contact | None:
    """The DESIGN §3 winner for ``e164`` among every indexed record holding it (Contact, then
    Account, then Lead; newest LastModifiedDate; smallest Id), or None. No API call."""
    # the first row of the index (e164, priority, last_modified DESC, record_id) is the winner:
    # one index seek, however many records hold the number (a company's main line)
    found = store.conn.execute(
        "SELECT r.object, r.record_id, r.company, r.person, r.last_modified, s.instance_url "
        "FROM (SELECT record_id FROM index_phones WHERE e164 = ? "
        "      ORDER BY priority, last_modified DESC, record_id LIMIT 1) AS winner "
        "JOIN index_records r ON r.record_id = winner.record_id "
        "LEFT JOIN index_sync s ON s.scope = ?", [e164, INDEX]).fetchone()
    if found is None:
        return None
    object_name, record_id, company, person, last_modified, instance_url = found
    return Contact(object=object_name, record_id=record_id, company=company, person=person,
                   record_url=lightning_url(instance_url or "", object_name, record_id),
                   last_modified=last_modified)


def accounts_of(store, record_ids: list[str]) -> dict[str, tuple[str | None, bool]]:
    """``{record_id: (related Id, whether it is a person account)}`` for those of ``record_ids``
    in the index: a Contact's AccountId, a person account's PersonContactId. No API call."""
    rows = select_in(store.conn, "SELECT record_id, account_id, is_person_account FROM index_records "
                                 "WHERE record_id IN ({marks})", record_ids)
    return {record_id: (account, bool(person)) for record_id, account, person in rows}


def write_back(store, object_name: str, records: Iterable[dict]) -> None:
    """Records a live lookup just found, into the index: they are as current as anything the
    index holds (their next sync round adds what a lookup does not read, SystemModstamp)."""
    settings = load_settings(store)
    with store.transaction() as db:
        generation = _state(db, object_name).get("generation") or 0
        writer = _Writer(db, settings.default_region, generation)
        writer.apply(object_name, records, only_newer=False)


# ---------------------------------------------------------------------------------------------
# status and clearing (the admin and `sfcti index`)
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class IndexStatus:
    """The index as the admin and `sfcti index status` show it."""

    state: str                      # "off", "not connected", "empty", "building", "ready", "stale"
    records: int
    numbers: int
    last_sync: str | None           # the last successful round (UTC ISO)
    age_seconds: float | None
    next_run: str | None            # when the next round is due (UTC ISO, estimated)
    api_calls: int                  # every call the sync has spent since the index was cleared
    last_error: str | None          # catalogue code of the last failed sync
    last_error_at: str | None
    objects: dict                   # object -> {phase, records, last_full_at, api_calls}

    def as_dict(self) -> dict:
        """The status as a plain dict (for --json output)."""
        return dataclasses.asdict(self)


def count_records(store) -> int:
    """Records in the index."""
    return store.conn.execute("SELECT count(*) FROM index_records").fetchone()[0]


def status(store) -> IndexStatus:
    """What the index holds, how fresh it is and what it has cost."""
    settings = load_settings(store)
    db = store.db
    index = _state(db, INDEX)
    per_object = {}
    for name in OBJECTS:
        state = _state(db, name)
        records = db.execute("SELECT count(*) FROM index_records WHERE object = ?",
                             [name]).fetchone()[0]
        per_object[name] = {"phase": state.get("phase"), "records": records,
                            "last_full_at": state.get("last_full_at"),
                            "api_calls": state.get("api_calls") or 0}
    last = index.get("last_round_at")
    now = dt.datetime.now(dt.timezone.utc)
    age = (now - dt.datetime.fromisoformat(last)).total_seconds() if last else None
    next_run = None
    if wanted(settings):
        every = dt.timedelta(minutes=settings.index_minutes)
        next_run = now_iso(dt.datetime.fromisoformat(last) + every if last else now)
    return IndexStatus(
        state=_state_name(settings, index, per_object), records=count_records(store),
        numbers=db.execute("SELECT count(DISTINCT e164) FROM index_phones").fetchone()[0],
        last_sync=last, age_seconds=age, next_run=next_run,
        api_calls=(index.get("api_calls") or 0) + sum(o["api_calls"] for o in per_object.values()),
        last_error=index.get("last_error"), last_error_at=index.get("last_error_at"),
        objects=per_object)


def _state_name(settings: Settings, index: dict, per_object: dict) -> str:
    if not settings.phone_index:
        return "off"
    if not settings.is_configured():
        return "not connected"
    if index.get("last_error"):
        return "stale"
    if index.get("built_at"):
        return "ready"
    if any(o["phase"] for o in per_object.values()):
        return "building"
    return "empty"


def clear(store) -> None:
    """Remove the whole index (disconnecting does; the next sync builds it again)."""
    with store.transaction() as db:
        for statement in ("DELETE FROM index_phones", "DELETE FROM index_records",
                          "DELETE FROM index_sync"):
            db.execute(statement)
