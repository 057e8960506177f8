"""Calls logged as Salesforce Tasks, each exactly once (issue 12; docs/activity.md).

When a call ends, core/registration.py queues it here (:func:`enqueue`, in the transaction that
writes its history row), so no call is ever recorded without its Task to come. :func:`send`
works through the queue, this module's table ``task_outbox``:

1. it *claims* up to 200 due calls (state "sending", with its holder id and a deadline), in one
   transaction (rows read ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so processes and nodes
   sharing the store never send the same call;
2. a call whose earlier attempt may have reached Salesforce (a timeout or reset after the
   request left, or a sender killed mid-request: its claim outlived its holder) is *uncertain*:
   before creating it again, Salesforce is asked for a Task with that ``CallObject``;
3. the rest go out in one sObject Collections request (one API call for up to 200 Tasks), and
   each SaveResult settles its call: "logged" (with the Task's id), "failed" (Salesforce refused
   that Task: the reason is kept, the admin can retry), or back to "waiting".

While Salesforce is unreachable, refuses the login or the daily limit is spent, calls wait and
go out later, with backoff. Task logging spends at most ``activity_api_share`` percent of the
org's daily API limit (requests counted as kind "activity").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import re
import urllib.parse
from typing import Callable

from simple_salesforce.format import format_soql

from core import agents, errors, history, index
from core.display import Contact, printable
from core.holders import holder_alive, new_holder
from core.salesforce import AccessDenied, Connection, LimitExceeded, Unavailable, connection_for
from core.settings import Settings, load_settings
from core.store import now_iso, select_in

log = logging.getLogger(__name__)

STATES = ("waiting", "sending", "logged", "failed", "skipped")
WAITING, SENDING, LOGGED, FAILED, SKIPPED = STATES
BATCH_SIZE = 200                  # sObject Collections' limit per request
OPERATION = "activity"            # error-log operation of failures of a whole request
REJECTED = "activity_rejected"    # error-log operation of a Task Salesforce refused
API_KIND = "activity"             # what the requests of this module are counted as
BACKOFF_SECONDS = (30, 60, 120, 300, 600, 1800, 3600)
QUERY_CHARS = 8000                # a CallObject lookup's query stays far below the URL limit
DESCRIPTION_MAX = 32_000
SUBJECT_MAX = 255
CALL_OBJECT_MAX = 255             # Task.CallObject is a 255-character text field
CALL_OBJECT_HASH_CHARS = 20       # hex digits of the exact id's hash when the id cannot be sent
_HASHED_CALL_OBJECT = re.compile(r"~[0-9a-f]{%d}\Z" % CALL_OBJECT_HASH_CHARS)
_ACCESS_CODES = ("INSUFFICIENT_ACCESS", "INSUFFICIENT_ACCESS_OR_READONLY",
                 "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", "INVALID_TYPE")
_INACTIVE_OWNER = "INACTIVE_OWNER_OR_USER"
_VALIDATION = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
OUTBOX_COLUMNS = ("call_id", "company", "person", "state", "created_at", "updated_at", "attempts", "next_attempt_at",
                  "claimed_by", "claimed_until", "uncertain", "owner_fallback", "task_id",
                  "task_url", "error_code", "error_message", "logged_at")


# ---------------------------------------------------------------------------------------------
# the queue
# ---------------------------------------------------------------------------------------------

def wanted(settings: Settings) -> bool:
    """Whether ended calls are to be logged as Tasks (the setting, and a connection to use)."""
    return bool(settings.activity_logging and settings.is_configured())


def enqueue(store, call_id: str, shown: dict | None = None) -> bool:
    """Queue the ended call ``call_id`` for logging, with the names its screen ``shown`` (the
    Task's subject uses them when the record is not registered); False when queued before."""
    now = now_iso()
    names = Contact.from_mapping(shown if (shown or {}).get("status") == "matched" else None)
    with store.transaction() as db:
        return db.execute(
            "INSERT INTO task_outbox (call_id, company, person, state, created_at, "
            "updated_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (call_id) DO NOTHING",
            [call_id, names.company, names.person, WAITING, now, now, now]).rowcount == 1


def retry(store, call_id: str) -> bool:
    """Log ``call_id`` again as soon as possible: a failed or skipped call (or one never queued)
    is queued afresh; False when it is logged already or on its way.

    :raises core.history.CallNotFound: when the call is not in the history
    """
    history.get_call(store, call_id)
    now = now_iso()
    with store.transaction() as db:
        db.execute("INSERT INTO task_outbox (call_id, state, created_at, updated_at, "
                   "next_attempt_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (call_id) DO NOTHING",
                   [call_id, FAILED, now, now, now])
        return db.execute(
            "UPDATE task_outbox SET state = ?, attempts = 0, next_attempt_at = ?, updated_at = ?, "
            "owner_fallback = 0, error_code = NULL, error_message = NULL "
            "WHERE call_id = ? AND state IN (?, ?)",
            [WAITING, now, now, call_id, FAILED, SKIPPED]).rowcount == 1


def states_for(store, call_ids: list[str]) -> dict[str, dict]:
    """``{call_id: outbox row}`` for those of ``call_ids`` queued for logging."""
    rows = select_in(store.conn, f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM task_outbox "
                                 "WHERE call_id IN ({marks})", call_ids)
    return {row[0]: dict(zip(OUTBOX_COLUMNS, row)) for row in rows}


def get_state(store, call_id: str) -> dict | None:
    """The outbox row of ``call_id``, or None when it was never queued."""
    return states_for(store, [call_id]).get(call_id)


@dataclasses.dataclass
class ActivityStatus:
    """The outbox as the admin and `sfcti activity status` show it."""

    enabled: bool
    counts: dict                    # state -> calls
    spent_today: int                # API calls spent on Tasks today (UTC)
    allowed_today: int | None       # the share of today's limit, None while the limit is unknown
    last_logged_at: str | None


def status(store) -> ActivityStatus:
    """Counts per state, today's spending and its allowance."""
    settings = load_settings(store)
    counts = dict.fromkeys(STATES, 0)
    counts.update(store.conn.execute("SELECT state, count(*) FROM task_outbox GROUP BY state").fetchall())
    last = store.conn.execute("SELECT max(logged_at) FROM task_outbox").fetchone()[0]
    spent, allowed = _spending(store, settings)
    return ActivityStatus(enabled=wanted(settings), counts=counts, spent_today=spent,
                          allowed_today=allowed, last_logged_at=last)


def _spending(store, settings: Settings) -> tuple[int, int | None]:
    usage = store.api_usage()
    spent = int(usage["by_kind"].get(API_KIND, 0))
    limit = usage["org_max"]
    return spent, (limit * settings.activity_api_share // 100 if limit else None)


# ---------------------------------------------------------------------------------------------
# sending
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class SendReport:
    """What a run of :func:`send` did."""

    logged: int = 0          # Tasks created
    found: int = 0           # uncertain calls whose Task Salesforce already had
    failed: int = 0          # Tasks Salesforce refused
    skipped: int = 0         # calls with no matched record, in "skip" mode
    deferred: int = 0        # calls put back to wait (Salesforce unavailable, limit, access)
    api_calls: int = 0
    stopped: str | None = None   # why it stopped early: "off", "share spent", or a catalogue code

    def as_dict(self) -> dict:
        """The report as a plain dict (for --json output)."""
        return dataclasses.asdict(self)


def send(store, connection_factory: Callable[..., Connection] = connection_for, *,
         force: bool = False, max_batches: int | None = None,
         clock: Callable[[], dt.datetime] | None = None) -> SendReport:
    """Log the due calls of the outbox as Tasks, batch after batch, until none is due, the
    share of the daily limit is spent or Salesforce fails; ``force`` sends the waiting calls
    whatever their backoff. Never logs a call twice. Failures are written to the error log.
    """
    settings = load_settings(store)
    report = SendReport()
    if not wanted(settings):
        report.stopped = "off"
        return report
    holder = new_holder()
    batches = 0
    while max_batches is None or batches < max_batches:
        now = (clock or _utcnow)()
        if _share_left(store, settings) <= 0:
            report.stopped = "share spent"
            break
        batch = _claim(store, holder, settings, now, force)
        if not batch:
            break
        batches += 1
        if not _Batch(store, settings, connection_factory, batch, report, now).run():
            break
    return report


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _share_left(store, settings: Settings) -> float:
    spent, allowed = _spending(store, settings)
    return float("inf") if allowed is None else allowed - spent


def _claim_seconds(settings: Settings) -> float:
    # longer than any request can take, so a live sender's claim never runs out under it
    return 2 * (settings.connect_timeout + settings.read_timeout) * 3 + 60


def _claim(store, holder: str, settings: Settings, now: dt.datetime, force: bool) -> list[dict]:
    """Take up to BATCH_SIZE due calls for ``holder``; a call taken back from a sender that
    died or ran out of time is marked uncertain."""
    stamp = now_iso(now)
    until = now_iso(now + dt.timedelta(seconds=_claim_seconds(settings)))
    # skip_locked: senders on several nodes each take other calls, none waiting for the store-wide
    # writer lock (on SQLite the transaction itself keeps them apart)
    with store.transaction(serialized=False) as db:
        due = db.execute(
            f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM task_outbox WHERE state = ? "
            f"{'' if force else 'AND next_attempt_at <= ?'} ORDER BY created_at, call_id LIMIT ?"
            f"{store.skip_locked}",
            [WAITING] + ([] if force else [stamp]) + [BATCH_SIZE]).fetchall()
        rows = [dict(zip(OUTBOX_COLUMNS, r)) for r in due]
        if len(rows) < BATCH_SIZE:
            rows += _orphans(db, store.skip_locked, stamp, BATCH_SIZE - len(rows))
        for row in rows:
            if row["state"] == SENDING:
                row["uncertain"] = 1
            row["state"] = SENDING
            db.execute("UPDATE task_outbox SET state = ?, claimed_by = ?, claimed_until = ?, "
                       "uncertain = ?, attempts = attempts + 1, updated_at = ? WHERE call_id = ?",
                       [SENDING, holder, until, row["uncertain"], stamp, row["call_id"]])
    return rows


def _orphans(db, skip_locked: str, stamp: str, limit: int) -> list[dict]:
    """Calls claimed by a sender that is gone (its process, or its time); the rows read are
    locked for the claim's transaction, those another node is claiming skipped."""
    cursor = db.execute(f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM task_outbox WHERE state = ? "
                        f"{skip_locked}", [SENDING])
    rows = [dict(zip(OUTBOX_COLUMNS, r)) for r in cursor.fetchall()]
    return [r for r in rows if (r["claimed_until"] or "") <= stamp
            or not holder_alive(r["claimed_by"] or "")][:limit]


class _ShareSpent(Exception):
    "The share of today's API limit for Task logging is spent."


class _Batch:
    """One claimed batch: look up the uncertain calls, build the Tasks, send, settle."""

    def __init__(self, store, settings: Settings, connection_factory, rows: list[dict],
                 report: SendReport, now: dt.datetime):
        self.store, self.settings, self.report, self.now = store, settings, report, now
        self.connection_factory = connection_factory
        self.rows = {r["call_id"]: r for r in rows}
        self.settled: list[dict] = []       # outbox rows to write, in one transaction
        self.calls = history.get_calls(store, list(self.rows))
        for call_id, call in self.calls.items():
            call.update(shown_company=self.rows[call_id]["company"], shown_person=self.rows[call_id]["person"])

    def run(self) -> bool:
        """Send the batch; False when a failure of the whole request should end the run."""
        for call_id in [c for c in self.rows if c not in self.calls]:
            self._settle(call_id, FAILED, error=("TASK_REJECTED", "The call is not in the history."))
        try:
            connection = self.connection_factory(self.store)
            with connection.counted_as(API_KIND):
                return self._send(connection)
        except _ShareSpent:
            self._release()
            self.report.stopped = "share spent"
            return False
        except Exception as exc:
            self._defer_all(exc)
            return False
        finally:
            self._write_settled()

    def _spend(self) -> None:
        """Count one request about to be made; raises _ShareSpent when the share allows none."""
        if _share_left(self.store, self.settings) < 1:
            raise _ShareSpent()
        self.report.api_calls += 1

    def _release(self) -> None:
        """Give the calls still claimed back to the queue, due at once and as they were."""
        for call_id, row in self.rows.items():
            if row["state"] == SENDING:
                self._settle(call_id, WAITING, uncertain=bool(row["uncertain"]))

    def _send(self, connection: Connection) -> bool:
        pending = [c for c in self.rows if c in self.calls]
        uncertain = [c for c in pending if self.rows[c]["uncertain"]]
        if uncertain:
            found = self._existing_tasks(connection, uncertain)
            for call_id, task_id in found.items():
                self._settle(call_id, LOGGED, task=(task_id, connection.record_url("Task", task_id)))
                self.report.found += 1
            pending = [c for c in pending if c not in found]
        tasks = self._tasks(connection, pending)
        if tasks:
            ids = list(tasks)
            self._spend()
            results = connection.create_records([tasks[c] for c in ids])
            for call_id, result in zip(ids, results):
                self._result(connection, call_id, result)
        self._write_settled()
        errors.record_recovery(self.store, "salesforce", OPERATION)
        self._close_rejections_when_none_left()
        return True

    # -- before sending ------------------------------------------------------------------------

    def _existing_tasks(self, connection: Connection, call_ids: list[str]) -> dict[str, str]:
        """``{call_id: Task Id}`` of the Tasks Salesforce has for ``call_ids`` (by CallObject)."""
        asked = {call_object(c): c for c in call_ids}
        found: dict[str, str] = {}
        for chunk in _chunks_by_length(list(asked), QUERY_CHARS):
            soql = format_soql("SELECT Id, CallObject FROM Task WHERE CallObject IN {ids} "
                               "ORDER BY CreatedDate, Id", ids=chunk)
            self._spend()
            for record in connection.query(soql).get("records", []):
                found.setdefault(record.get("CallObject"), record.get("Id"))
        # SOQL compares text ignoring case: only the exact CallObject is this call's Task
        return {asked[o]: found[o] for o in asked if found.get(o)}

    def _tasks(self, connection: Connection, call_ids: list[str]) -> dict[str, dict]:
        """``{call_id: Task fields}`` for the calls to create; calls skipped by the settings are
        settled on the way."""
        records = {c: self._record_of(self.calls[c]) for c in call_ids}
        for call_id, contact in list(records.items()):
            if contact is None and self.settings.activity_unmatched == "skip":
                self._settle(call_id, SKIPPED)
                self.report.skipped += 1
                del records[call_id]
        relations = self._relations(connection, [c for c in records.values() if c is not None])
        owners = agents.owners_for(self.store, [self.calls[c]["agent_id"] for c in records])
        return {call_id: task_fields(self.calls[call_id], contact, relations, owners, self.settings,
                                     owner_fallback=bool(self.rows[call_id]["owner_fallback"]))
                for call_id, contact in records.items()}

    def _record_of(self, call: dict) -> Contact | None:
        """The record the call is about: the one its screen matched or that was registered for
        its number since, else the index's winner (no API call); None when unknown."""
        if call.get("record_id") and call.get("object"):
            return Contact.from_mapping(call)
        e164 = call.get("e164")
        if not e164:
            return None
        found = self.store.get_contact(e164)
        if found and found.get("record_id"):
            return Contact.from_mapping(found)
        return index.find(self.store, e164) if index.usable(self.store, self.settings) else None

    def _relations(self, connection: Connection, contacts: list[Contact]) -> dict[str, tuple]:
        """``{record_id: (WhoId, WhatId)}`` for the matched records: a Contact's account comes
        from the index, else from one query for the batch; a person account's contact likewise."""
        ids = sorted({c.record_id for c in contacts})
        known = index.accounts_of(self.store, ids)
        objects = {c.record_id: c.object for c in contacts}
        relations: dict[str, tuple] = {}
        ask_contacts, ask_accounts = [], []
        for record_id in ids:
            account, person = known.get(record_id, (None, False))
            if objects[record_id] == "Contact":
                relations[record_id] = (record_id, account)
                if record_id not in known:
                    ask_contacts.append(record_id)
            elif objects[record_id] == "Lead":
                relations[record_id] = (record_id, None)   # Salesforce: no WhatId with a Lead
            elif person and account:        # a person account: its contact is the Who
                relations[record_id] = (account, record_id)
            else:
                relations[record_id] = (None, record_id)
                if connection.org.person_accounts and (person or record_id not in known):
                    ask_accounts.append(record_id)
        if ask_contacts or ask_accounts:
            relations.update(self._ask_relations(connection, ask_contacts, ask_accounts))
        return relations

    def _ask_relations(self, connection: Connection, contact_ids: list[str],
                       account_ids: list[str]) -> dict[str, tuple]:
        subrequests = []
        if contact_ids:
            subrequests.append(connection.query_subrequest("contacts", format_soql(
                "SELECT Id, AccountId FROM Contact WHERE Id IN {ids}", ids=contact_ids)))
        if account_ids:
            subrequests.append(connection.query_subrequest("accounts", format_soql(
                "SELECT Id, PersonContactId FROM Account WHERE Id IN {ids}", ids=account_ids)))
        self._spend()
        found: dict[str, tuple] = {}
        for response in connection.composite(subrequests):
            if (response.get("httpStatusCode") or 0) >= 300:
                continue   # the Task still goes out, related to the record alone
            for record in (response.get("body") or {}).get("records", []):
                if response.get("referenceId") == "contacts":
                    found[record["Id"]] = (record["Id"], record.get("AccountId"))
                elif record.get("PersonContactId"):
                    found[record["Id"]] = (record["PersonContactId"], record["Id"])
        return {_id15_key(k, contact_ids + account_ids): v for k, v in found.items()}

    # -- after sending -------------------------------------------------------------------------

    def _result(self, connection: Connection, call_id: str, result: dict) -> None:
        if result.get("success") and result.get("id"):
            task_id = result["id"]
            self._settle(call_id, LOGGED, task=(task_id, connection.record_url("Task", task_id)))
            self.report.logged += 1
            return
        problem = (result.get("errors") or [{}])[0] or {}
        code = str(problem.get("statusCode") or "UNKNOWN")
        message = errors.clean_text(str(problem.get("message") or ""), 1000)
        call = self.calls[call_id]
        if code == _INACTIVE_OWNER and not self.rows[call_id]["owner_fallback"]:
            # the Task goes out at once, owned by the connection user; the admin is told to re-map
            errors.record_failure(self.store, "salesforce", agents.OWNER_OPERATION, _INACTIVE_OWNER, call_id=call_id,
                                  detail=f"agent {errors.clean_text(call.get('agent_id') or '')}: {message}")
            self._settle(call_id, WAITING, owner_fallback=True)
            self.report.deferred += 1
        elif code in _ACCESS_CODES:
            errors.record_failure(self.store, "salesforce", OPERATION, "TASK_CREATE_DENIED",
                                  detail=f"{code}: {message}", call_id=call_id)
            self._settle(call_id, WAITING, backoff=True)
            self.report.deferred += 1
        else:
            shown = code if code == _VALIDATION else "TASK_REJECTED"
            errors.record_failure(self.store, "salesforce", REJECTED, shown,
                                  detail=f"{code}: {message}", call_id=call_id)
            self._settle(call_id, FAILED, error=(code, message))
            self.report.failed += 1

    def _defer_all(self, exc: Exception) -> None:
        """The whole request failed: every claimed call waits (uncertain when the request may
        have been carried out), and the failure goes to the error log."""
        ambiguous = isinstance(exc, Unavailable)
        code = "TASK_CREATE_DENIED" if isinstance(exc, AccessDenied) else exc
        errors.report_failure(self.store, OPERATION, code,
                              detail=str(exc) if isinstance(code, str) else None)
        self.report.stopped = getattr(exc, "code", None) or errors.describe_failure(exc)[0]
        for call_id, row in self.rows.items():
            if row["state"] != SENDING or call_id not in self.calls:
                continue
            self._settle(call_id, WAITING, backoff=True, uncertain=ambiguous or bool(row["uncertain"]),
                         limit=isinstance(exc, LimitExceeded))
            self.report.deferred += 1

    def _settle(self, call_id: str, state: str, *, task: tuple | None = None,
                error: tuple | None = None, backoff: bool = False, owner_fallback: bool = False,
                uncertain: bool = False, limit: bool = False) -> None:
        row = self.rows[call_id]
        row["state"] = state
        stamp = now_iso(self.now)
        delay = _backoff(row["attempts"], limit) if backoff else 0
        values = {"call_id": call_id, "state": state, "updated_at": stamp,
                  "next_attempt_at": now_iso(self.now + dt.timedelta(seconds=delay)),
                  "uncertain": int(uncertain), "owner_fallback": int(owner_fallback or row["owner_fallback"]),
                  "task_id": task[0] if task else None, "task_url": task[1] if task else None,
                  "error_code": error[0] if error else None, "error_message": error[1] if error else None,
                  "logged_at": stamp if state == LOGGED else None}
        self.settled.append(values)

    def _write_settled(self) -> None:
        """Write the settled calls' rows, all in one transaction."""
        if not self.settled:
            return
        with self.store.transaction() as db:
            db.conn.executemany(
                "UPDATE task_outbox SET state = :state, updated_at = :updated_at, "
                "next_attempt_at = :next_attempt_at, uncertain = :uncertain, "
                "owner_fallback = :owner_fallback, task_id = :task_id, task_url = :task_url, "
                "error_code = :error_code, error_message = :error_message, "
                "logged_at = :logged_at, claimed_by = NULL, claimed_until = NULL "
                "WHERE call_id = :call_id", self.settled)
        self.settled = []

    def _close_rejections_when_none_left(self) -> None:
        if not self.store.conn.execute("SELECT 1 FROM task_outbox WHERE state = ? LIMIT 1",
                                       [FAILED]).fetchone():
            errors.record_recovery(self.store, "salesforce", REJECTED)


def _backoff(attempts: int, limit: bool) -> float:
    if limit:   # the daily allowance recovers slowly: no point asking every minute
        return BACKOFF_SECONDS[-1] / 4
    return BACKOFF_SECONDS[min(max(attempts - 1, 0), len(BACKOFF_SECONDS) - 1)]


def _chunks_by_length(values: list[str], max_chars: int) -> list[list[str]]:
    chunks, current, size = [], [], 0
    for value in values:
        cost = len(value) + 4
        if current and size + cost > max_chars:
            chunks.append(current)
            current, size = [], 0
        current.append(value)
        size += cost
    return chunks + [current] if current else chunks


def _id15_key(found_id: str, asked: list[str]) -> str:
    """The id as asked (15 or 18 characters) for an Id Salesforce answered (18)."""
    for record_id in asked:
        if found_id[:15] == record_id[:15]:
            return record_id
    return found_id


# ---------------------------------------------------------------------------------------------
# the Task of a call
# ---------------------------------------------------------------------------------------------

_TEXTS = {
    # direction word: (answered inbound, missed inbound, answered outbound, unanswered outbound)
    "ja": {"words": ("着信", "不在着信", "発信", "発信（不通）"),
           "disposition": ("応答", "不在", "応答", "不通"),
           "header": "sfcti による通話の記録", "direction": "種別", "number": "相手の番号",
           "agent": "担当者", "started": "開始", "duration": "通話時間", "call_id": "通話 ID",
           "link": "通話の記録", "unknown": "不明な番号"},
    "en": {"words": ("Inbound call", "Missed call", "Outbound call", "Outbound call (no answer)"),
           "disposition": ("Answered", "Missed", "Answered", "No answer"),
           "header": "Call logged by sfcti", "direction": "Call", "number": "Number",
           "agent": "Agent", "started": "Started", "duration": "Duration", "call_id": "Call ID",
           "link": "Call record", "unknown": "unknown number"},
}


def _kind(call: dict) -> int:
    """0 answered inbound, 1 missed inbound, 2 answered outbound, 3 unanswered outbound."""
    outbound = call.get("direction") == "outbound"
    missed = call.get("answered") == 0
    return (2 if outbound else 0) + (1 if missed else 0)


def is_missed(call: dict) -> bool:
    """An inbound call nobody answered."""
    return _kind(call) == 1


def task_fields(call: dict, contact: Contact | None, relations: dict, owners: dict,
                settings: Settings, owner_fallback: bool = False) -> dict:
    """The Task of the history row ``call``: a completed call Task related to ``contact``
    (``relations``: ``{record_id: (WhoId, WhatId)}``), owned by the agent's mapped user
    (``owners``), except a missed call, which the connection user owns (nobody took it)."""
    texts = _TEXTS[settings.activity_language]
    kind = _kind(call)
    fields = {
        "attributes": {"type": "Task"},
        "Subject": subject(call, contact, settings),
        "Status": "Completed",
        "Priority": "Normal",
        "TaskSubtype": "Call",
        "CallType": "Outbound" if call.get("direction") == "outbound" else "Inbound",
        "CallDurationInSeconds": int(round(call.get("duration_seconds") or 0)),
        "CallObject": call_object(call["call_id"]),
        "CallDisposition": texts["disposition"][kind],
        "ActivityDate": settings.local_day(_started(call)),
        "Description": description(call, settings, owners.get(call.get("agent_id") or "")),
    }
    if contact is not None:
        who, what = relations.get(contact.record_id, (None, None))
        fields.update({k: v for k, v in (("WhoId", who), ("WhatId", what)) if v})
    owner = owners.get(call.get("agent_id") or "")
    if owner and not is_missed(call) and not owner_fallback:   # the agent placed or took it
        fields["OwnerId"] = owner["user_id"]
    return fields


def call_object(call_id: str) -> str:
    """The Task's CallObject for ``call_id``: the id itself when it is printable and fits the
    field; else its printable form cut short and a hash of the exact id, so that two call ids
    never share a CallObject (the uncertain-send lookup finds a Task by it)."""
    if len(call_id) <= CALL_OBJECT_MAX and printable(call_id) == call_id \
            and not _HASHED_CALL_OBJECT.search(call_id):
        return call_id
    digest = hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:CALL_OBJECT_HASH_CHARS]
    return f"{printable(call_id)[:CALL_OBJECT_MAX - CALL_OBJECT_HASH_CHARS - 1]}~{digest}"


def _started(call: dict) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(call["started_at"])
    except (TypeError, ValueError, KeyError):
        return _utcnow()


def _names(call: dict, contact: Contact | None) -> tuple[str, str]:
    """(company, person) of the call: its record's, else those its screen showed."""
    contact = contact or Contact()
    return (contact.company or call.get("company") or call.get("shown_company") or "",
            contact.person or call.get("person") or call.get("shown_person") or "")


def _duration(seconds) -> str:
    total = int(round(seconds or 0))
    return f"{total // 60}:{total % 60:02d}"


def subject(call: dict, contact: Contact | None, settings: Settings) -> str:
    """The Task's subject: the settings' template (or the built-in one of the language)."""
    texts = _TEXTS[settings.activity_language]
    number = call.get("display_number") or call.get("remote_number") or texts["unknown"]
    company, person = _names(call, contact)
    values = {
        "direction": texts["words"][_kind(call)],
        "name": " / ".join(dict.fromkeys(n for n in (company, person) if n)) or number,
        "company": company, "person": person,
        "number": number, "agent": call.get("agent_id") or "",
        "duration": _duration(call.get("duration_seconds")),
    }
    values = {k: printable(v) for k, v in values.items()}
    template = settings.activity_subject or "{direction} {name}"
    return printable(template.format_map(values))[:SUBJECT_MAX]


def description(call: dict, settings: Settings, owner: dict | None) -> str:
    """The Task's description: the call's facts and the link to it in the phone system."""
    texts = _TEXTS[settings.activity_language]
    agent = printable(call.get("agent_id") or "")
    if agent and owner:
        agent += f" ({printable(owner.get('user_name') or '')})"
    lines = [
        texts["header"],
        f"{texts['direction']}: {texts['words'][_kind(call)]}",
        f"{texts['number']}: {printable(call.get('display_number') or call.get('remote_number') or '')}",
        f"{texts['agent']}: {agent or '-'}",
        f"{texts['started']}: {settings.local_time(call.get('started_at'))} ({settings.time_zone})",
        f"{texts['duration']}: {_duration(call.get('duration_seconds'))}",
        f"{texts['call_id']}: {printable(call['call_id'])}",
    ]
    link = call_link(call, settings)
    if link:
        lines.append(f"{texts['link']}: {link}")
    return "\n".join(lines)[:DESCRIPTION_MAX]


def call_link(call: dict, settings: Settings) -> str:
    """The call's page in the phone system from ``call_url_template`` (values URL-encoded);
    empty when no template is set."""
    if not settings.call_url_template:
        return ""
    values = {"call_id": call.get("call_id") or "", "agent": call.get("agent_id") or "",
              "number": call.get("e164") or call.get("remote_number") or ""}
    return settings.call_url_template.format_map(
        {k: urllib.parse.quote(str(v), safe="") for k, v in values.items()})
