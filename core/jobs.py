"""Contact registration: after each call, in a nightly run, or never (setting ``contact_fetch``).

Every number waiting for registration is a row of ``registration_queue`` (queued in the same
transaction that records its call). A number leaves the queue in the transaction that registers
it (contacts + history names) or that finds it matches nothing, so a run killed at any point
loses nothing and repeats nothing already done.

The nightly run (:func:`register_contacts_for_day`) is guarded by a lease row in ``job_runs``:
when several host processes share an instance folder, one runs it. A holder killed mid-run loses
its lease at once on the same machine (its pid is gone) or when the lease expires elsewhere.
:class:`JobScheduler` fires it with APScheduler at ``nightly_time`` in ``time_zone`` and catches
up a run missed while everything was down.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import socket
import uuid
import zoneinfo
from typing import Callable, Iterable

from core import history
from core.errors import record_failure, record_recovery
from core.store import now_iso

log = logging.getLogger(__name__)

NIGHTLY = "nightly"
AFTER_CALL = "after_call"
LEASE_SECONDS = 120.0
BATCH_SIZE = 100
OPERATIONS = ("lookup", "register", "nightly")   # the error-log operations of the plugin


# ---------------------------------------------------------------------------------------------
# the queue
# ---------------------------------------------------------------------------------------------

def local_day(at: dt.datetime, time_zone: str) -> str:
    """The calendar day (YYYY-MM-DD) of ``at`` in ``time_zone``."""
    return at.astimezone(_zone(time_zone)).date().isoformat()


def _zone(name: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("Asia/Tokyo")


def queue_number(db, e164: str, day: str) -> None:
    """Put ``e164`` in the registration queue for ``day`` (kept as is when already waiting)."""
    db.execute("INSERT OR IGNORE INTO registration_queue (e164, day, queued_at, attempts) "
               "VALUES (?, ?, ?, 0)", [e164, day, now_iso()])


def queued_numbers(store, up_to_day: str | None = None, limit: int = BATCH_SIZE,
                   after: str = "", queued_before: str | None = None) -> list[str]:
    """Waiting numbers in E.164 order, after ``after``; only days up to ``up_to_day`` and only
    rows queued before ``queued_before`` (ISO time) when given."""
    sql = "SELECT e164 FROM registration_queue WHERE e164 > ?"
    params: list = [after]
    if up_to_day:
        sql += " AND day <= ?"
        params.append(up_to_day)
    if queued_before:
        sql += " AND queued_at < ?"
        params.append(queued_before)
    sql += " ORDER BY e164 LIMIT ?"
    return [r[0] for r in store.conn.execute(sql, params + [int(limit)])]


def queue_size(store) -> int:
    """How many numbers wait for registration."""
    return store.conn.execute("SELECT count(*) FROM registration_queue").fetchone()[0]


def register_contact(store, e164: str, display: dict, resolver=None) -> None:
    """Register a matched ``display`` as the contact of ``e164`` and name its calls, in one
    transaction that also takes the number out of the queue. With a ``resolver``, its
    ``register`` stores the contact (it knows the record's LastModifiedDate)."""
    display = dict(display, number=e164)
    with store.transaction() as db:
        contact = resolver.register(display) if resolver is not None else None
        if contact is None:
            contact = store.upsert_contact(
                e164, object=display.get("object"), record_id=display.get("record_id"),
                company=display.get("company"), person=display.get("person"),
                record_url=display.get("record_url"))
        history.fill_names(db, e164, contact)
        db.execute("DELETE FROM registration_queue WHERE e164 = ?", [e164])


def unregister(store, e164: str) -> None:
    """``e164`` matches nothing (any more): forget its contact and take it out of the queue."""
    with store.transaction() as db:
        db.execute("DELETE FROM contacts WHERE e164 = ?", [e164])
        db.execute("DELETE FROM registration_queue WHERE e164 = ?", [e164])


def _note_failure(store, numbers: Iterable[str], exc: BaseException) -> None:
    text = f"{type(exc).__name__}: {getattr(exc, 'code', '')}"[:200]
    with store.transaction() as db:
        db.conn.executemany(
            "UPDATE registration_queue SET attempts = attempts + 1, last_error = ? WHERE e164 = ?",
            [(text, n) for n in numbers])


def _settle(store, displays: dict[str, dict], resolver=None) -> int:
    """Register each matched number, drop the unmatched ones, keep the undecided queued;
    returns how many were registered."""
    registered = 0
    for e164, display in displays.items():
        if (display or {}).get("status") == "matched":
            register_contact(store, e164, display, resolver)
            registered += 1
        elif (display or {}).get("status") == "not_registered":
            unregister(store, e164)
    return registered


def close_incidents(store) -> None:
    """Salesforce answered: close the plugin's open Salesforce incidents (one cheap read when
    nothing is open)."""
    found = store.conn.execute(
        "SELECT 1 FROM error_log WHERE integration = 'salesforce' AND open = 1 AND operation IN "
        f"({', '.join('?' * len(OPERATIONS))}) LIMIT 1", OPERATIONS).fetchone()
    if found:
        for operation in OPERATIONS:
            record_recovery(store, "salesforce", operation)


# ---------------------------------------------------------------------------------------------
# after a call
# ---------------------------------------------------------------------------------------------

def register_after_call(store, resolver, e164: str, shown: dict | None = None,
                        call_id: str | None = None) -> bool:
    """Register ``e164`` right after its call; True when it got registered.

    The display shown on the screen is reused when it came from a live match (no API call);
    otherwise Salesforce is asked. A failure is logged and the number stays queued for a retry.
    """
    try:
        display = shown if (shown or {}).get("status") in ("matched", "not_registered") \
            else resolver.resolve(e164)
    except Exception as exc:
        record_failure(store, "salesforce", "register", exc, call_id=call_id)
        _note_failure(store, [e164], exc)
        return False
    close_incidents(store)
    return _settle(store, {e164: display}, resolver) == 1


def register_pending(store, resolver, batch_size: int = BATCH_SIZE, min_age: float = 0.0) -> int:
    """Register every queued number (retries after a failure, catch-up after a crash) through
    ``resolve_many``; returns how many got registered. Stops at the first Salesforce failure.

    ``min_age`` (seconds) leaves alone numbers queued so recently that their own after-call
    registration is probably still running.
    """
    done, after = 0, ""
    before = now_iso(dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=min_age))
    while True:
        numbers = queued_numbers(store, limit=batch_size, after=after, queued_before=before)
        if not numbers:
            return done
        try:
            displays = resolver.resolve_many(numbers)
        except Exception as exc:
            record_failure(store, "salesforce", "register", exc)
            _note_failure(store, numbers, exc)
            return done
        close_incidents(store)
        done += _settle(store, {n: displays.get(n) for n in numbers}, resolver)
        after = numbers[-1]


# ---------------------------------------------------------------------------------------------
# the lease: one process runs a job at a time
# ---------------------------------------------------------------------------------------------

def new_holder() -> str:
    """An id for one run: host, pid and a random part (threads of one process differ too)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _holder_alive(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: only the lease's expiry tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return not _is_zombie(int(pid))


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _job_row(db, job: str) -> dict | None:
    cursor = db.execute("SELECT job, day, started_at, finished_at, holder, lease_until "
                        "FROM job_runs WHERE job = ?", [job])
    found = cursor.fetchone()
    return dict(zip([d[0] for d in cursor.description], found)) if found else None


def acquire_lease(store, job: str, holder: str, seconds: float = LEASE_SECONDS) -> dict | None:
    """Take the lease of ``job`` for ``holder``; returns the job's row as it was before (``{}``
    for a job never run), or None when a live holder has it."""
    now = dt.datetime.now(dt.timezone.utc)
    with store.transaction() as db:
        row = _job_row(db, job)
        if row and row["holder"] and row["holder"] != holder \
                and (row["lease_until"] or "") > now_iso(now) and _holder_alive(row["holder"]):
            return None
        until = now_iso(now + dt.timedelta(seconds=seconds))
        db.execute("INSERT INTO job_runs (job, holder, lease_until) VALUES (?, ?, ?) "
                   "ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, "
                   "lease_until = excluded.lease_until", [job, holder, until])
        return row or {}


def release_lease(store, job: str, holder: str) -> None:
    """Give the lease back (only when ``holder`` still has it)."""
    with store.transaction() as db:
        db.execute("UPDATE job_runs SET holder = NULL, lease_until = NULL "
                   "WHERE job = ? AND holder = ?", [job, holder])


# ---------------------------------------------------------------------------------------------
# the nightly run
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class RunReport:
    """What a run of :func:`register_contacts_for_day` did."""

    day: str
    skipped: str | None = None    # why nothing ran: "lease held", "already done", "never"
    resumed: bool = False         # it continued a run that had been interrupted
    queued: int = 0               # numbers waiting when it started
    registered: int = 0
    unmatched: int = 0
    failed: str | None = None     # the catalogue code that stopped it
    api_calls: int = 0

    def as_dict(self) -> dict:
        """The report as a plain dict (for --json output)."""
        return dataclasses.asdict(self)


def _start_run(store, day: str, time_zone: str) -> None:
    """Mark the run of ``day`` started and queue that day's unregistered numbers, atomically."""
    start, end = _day_bounds(day, time_zone)
    with store.transaction() as db:
        db.execute("UPDATE job_runs SET day = ?, started_at = ?, finished_at = NULL WHERE job = ?",
                   [day, now_iso(), NIGHTLY])
        db.execute(
            "INSERT OR IGNORE INTO registration_queue (e164, day, queued_at, attempts) "
            "SELECT DISTINCT e164, ?, ?, 0 FROM calls WHERE started_at >= ? AND started_at < ? "
            "AND e164 IS NOT NULL AND e164 NOT IN (SELECT e164 FROM contacts)",
            [day, now_iso(), start, end])


def _day_bounds(day: str, time_zone: str) -> tuple[str, str]:
    first = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), tzinfo=_zone(time_zone))
    return now_iso(first), now_iso(first + dt.timedelta(days=1))


def _finish_run(store, day: str) -> None:
    with store.transaction() as db:
        db.execute("UPDATE job_runs SET finished_at = ? WHERE job = ? AND day = ?",
                   [now_iso(), NIGHTLY, day])


def _renew(store, holder: str) -> None:
    until = now_iso(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=LEASE_SECONDS))
    with store.transaction() as db:
        db.execute("UPDATE job_runs SET lease_until = ? WHERE job = ? AND holder = ?",
                   [until, NIGHTLY, holder])


def register_contacts_for_day(store, day: str | None = None, resolver=None, force: bool = False,
                              batch_size: int = BATCH_SIZE,
                              progress: Callable[[RunReport], None] | None = None) -> RunReport:
    """Register every unregistered number called on ``day`` (local date, default today) and any
    other number still waiting in the queue, through ``resolve_many``; the nightly job.

    Only one process runs it at a time (a lease in ``job_runs``). A run interrupted on the same
    day is resumed without queueing again; a finished day runs again only with ``force``.
    ``progress`` is called after each batch. Salesforce failures are logged, stop the run and
    leave the rest queued (the run stays unfinished, so it is caught up later).
    """
    from core.settings import load_settings

    settings = load_settings(store)
    day = day or local_day(dt.datetime.now(dt.timezone.utc), settings.time_zone)
    if settings.contact_fetch == "never":
        return RunReport(day, skipped="never")
    holder = new_holder()
    before = acquire_lease(store, NIGHTLY, holder)
    if before is None:
        return RunReport(day, skipped="lease held")
    try:
        return _run(store, day, before, holder, settings, resolver, force, batch_size, progress)
    finally:
        release_lease(store, NIGHTLY, holder)


def _run(store, day, before, holder, settings, resolver, force, batch_size, progress) -> RunReport:
    report = RunReport(day, resumed=before.get("day") == day and not before.get("finished_at")
                       and bool(before.get("started_at")))
    if before.get("day") == day and before.get("finished_at") and not force:
        report.skipped = "already done"
        return report
    if not report.resumed:
        _start_run(store, day, settings.time_zone)
    if resolver is None:
        from core.resolver import Resolver
        resolver = Resolver(store)
    report.queued = queue_size(store)
    if _process_queue(store, day, holder, resolver, report, batch_size, progress):
        _finish_run(store, day)
    return report


def _process_queue(store, day, holder, resolver, report, batch_size, progress) -> bool:
    """Work through the queue in batches; False when a Salesforce failure stopped it."""
    after = ""
    while True:
        # everything queued, not only ``day``'s: a catch-up run also takes later days' numbers
        numbers = queued_numbers(store, limit=batch_size, after=after)
        if not numbers:
            return True
        try:
            displays = resolver.resolve_many(numbers)
        except Exception as exc:
            entry = record_failure(store, "salesforce", "nightly", exc)
            _note_failure(store, numbers, exc)
            report.failed = entry.code
            return False
        close_incidents(store)
        report.api_calls += 1
        done = _settle(store, {n: displays.get(n) for n in numbers}, resolver)
        report.registered += done
        report.unmatched += sum(1 for n in numbers if (displays.get(n) or {}).get("status")
                                == "not_registered")
        after = numbers[-1]
        _renew(store, holder)
        if progress:
            progress(report)


# ---------------------------------------------------------------------------------------------
# when the nightly run is due
# ---------------------------------------------------------------------------------------------

def _nightly_clock(settings) -> tuple[int, int]:
    try:
        hour, minute = (int(p) for p in settings.nightly_time.split(":"))
        return hour, minute
    except (ValueError, AttributeError):
        return 22, 0


def last_scheduled_day(settings, now: dt.datetime | None = None) -> str:
    """The local day of the most recent scheduled nightly time at or before ``now``."""
    zone = _zone(settings.time_zone)
    local = (now or dt.datetime.now(dt.timezone.utc)).astimezone(zone)
    hour, minute = _nightly_clock(settings)
    scheduled = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if scheduled > local:
        scheduled -= dt.timedelta(days=1)
    return scheduled.date().isoformat()


def missed_day(store, settings, now: dt.datetime | None = None) -> str | None:
    """The day whose nightly run was missed or left unfinished, or None when all is done."""
    day = last_scheduled_day(settings, now)
    row = _job_row(store.db, NIGHTLY) or {}
    if (row.get("day") or "") > day:
        return None
    if row.get("day") == day and row.get("finished_at"):
        return None
    return day


def catch_up(store, resolver=None, now: dt.datetime | None = None) -> RunReport | None:
    """Run the nightly job for a missed (or interrupted) day; None when nothing was missed."""
    from core.settings import load_settings

    settings = load_settings(store)
    if settings.contact_fetch != NIGHTLY:
        return None
    day = missed_day(store, settings, now)
    if day is None:
        return None
    return register_contacts_for_day(store, day, resolver=resolver)


def run_scheduled(store, resolver=None) -> RunReport | None:
    """The scheduler's nightly job: today's run (or a missed day's, when it is still open)."""
    return catch_up(store, resolver)


# ---------------------------------------------------------------------------------------------
# the scheduler
# ---------------------------------------------------------------------------------------------

class JobScheduler:
    """APScheduler in a daemon thread: the nightly run at ``nightly_time`` (``time_zone``), a
    catch-up check every few minutes (a run missed, or left by a crashed process), and in
    after-call mode a retry of numbers still queued."""

    CHECK_MINUTES = 5
    RETRY_SECONDS = 60
    ALERT_SECONDS = 60

    def __init__(self, store, resolver_factory: Callable[[], object]):
        self.store = store
        self._resolver = resolver_factory
        self._scheduler = None
        self._key = None

    def configure(self, settings) -> None:
        """(Re)schedule the jobs for ``settings``; cheap when nothing relevant changed."""
        key = (settings.contact_fetch, settings.nightly_time, settings.time_zone)
        if key == self._key:
            return
        self._key = key
        self.stop()
        if settings.contact_fetch == "never":
            return
        self._scheduler = self._build(settings)
        self._scheduler.start()

    def scheduled(self, job_id: str) -> tuple[dt.datetime, str] | None:
        """(next run time in the job's time zone, trigger description such as
        ``cron[hour='22', minute='0']``) of job ``job_id`` ("nightly", "catch_up", "retry",
        "alerts"), or None when it is not scheduled."""
        job = self._scheduler.get_job(job_id) if self._scheduler is not None else None
        return (job.next_run_time, str(job.trigger)) if job is not None else None

    def _build(self, settings):
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        zone = _zone(settings.time_zone)
        scheduler = BackgroundScheduler(timezone=zone, daemon=True)
        common = dict(coalesce=True, max_instances=1, misfire_grace_time=3600, replace_existing=True)
        if settings.contact_fetch == NIGHTLY:
            hour, minute = _nightly_clock(settings)
            scheduler.add_job(self._nightly, CronTrigger(hour=hour, minute=minute, timezone=zone),
                              id="nightly", **common)
            # the first check runs at once: a run missed while everything was down is caught up
            scheduler.add_job(self._nightly, IntervalTrigger(minutes=self.CHECK_MINUTES),
                              id="catch_up", next_run_time=dt.datetime.now(zone), **common)
        else:
            scheduler.add_job(self._retry, IntervalTrigger(seconds=self.RETRY_SECONDS),
                              id="retry", next_run_time=dt.datetime.now(zone), **common)
        # alert mails must go out from a host even when no admin process is running
        scheduler.add_job(self._alerts, IntervalTrigger(seconds=self.ALERT_SECONDS), id="alerts", **common)
        return scheduler

    def _alerts(self) -> None:
        from core.alerts import Alerts

        try:
            Alerts(self.store).tick()
        except Exception:  # the scheduler thread must live on; SMTP failures are logged by the outbox
            log.exception("sending alert mails failed")

    def _nightly(self) -> None:
        try:
            run_scheduled(self.store, self._resolver())
        except Exception as exc:  # the scheduler thread must live on
            log.exception("nightly contact registration failed")
            _safe_record(self.store, "nightly", exc)

    def _retry(self) -> None:
        holder = new_holder()
        try:
            if acquire_lease(self.store, AFTER_CALL, holder, seconds=300) is None:
                return
            try:
                register_pending(self.store, self._resolver(), min_age=30.0)
            finally:
                release_lease(self.store, AFTER_CALL, holder)
        except Exception as exc:
            log.exception("retrying contact registration failed")
            _safe_record(self.store, "register", exc)

    def stop(self) -> None:
        """Stop the scheduler thread (a running job finishes in the background)."""
        if self._scheduler is not None:
            try:
                self._scheduler.shutdown(wait=False)
            except Exception:
                log.debug("scheduler already stopped", exc_info=True)
            self._scheduler = None


def _safe_record(store, operation: str, exc: BaseException) -> None:
    try:
        record_failure(store, "plugin", operation, exc)
    except Exception:
        log.exception("cannot write the error log")
