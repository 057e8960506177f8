"""The jobs that run on a clock: the nightly contact registration, the phone index's sync, their
leases and their scheduler.

The nightly run (:func:`register_contacts_for_day`) is guarded by a lease row in ``job_runs``
(this module's table): when several host processes share an instance folder, one runs it. A
holder killed mid-run loses its lease at once on the same machine (its pid is gone) or when the
lease expires elsewhere. The work itself, queueing a day's numbers and working through the
queue, is core/registration.py's. :class:`JobScheduler` fires the run with APScheduler at
``nightly_time`` in ``time_zone`` and catches up a run missed while everything was down; in
after-call mode it retries the numbers still queued. The phone index (core/index.py) is synced
every ``index_minutes`` under its own lease (:func:`sync_index`, also the admin's and the CLI's
"sync now").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from typing import Callable

from core import activity, errors, index, registration
from core.holders import holder_alive, new_holder
from core.resolver import Resolver
from core.settings import DEFAULTS, load_settings
from core.store import now_iso

log = logging.getLogger(__name__)

NIGHTLY = "nightly"        # the nightly run: its lease, and its operation in the error log
RETRY = "after_call"       # the after-call mode's retry of numbers still queued: its lease
INDEX = "index"            # the phone index's sync: its lease
LEASE_SECONDS = 120.0


# ---------------------------------------------------------------------------------------------
# the lease: one process runs a job at a time
# ---------------------------------------------------------------------------------------------

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
                and (row["lease_until"] or "") > now_iso(now) and holder_alive(row["holder"]):
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


def _start_run(store, day: str, settings) -> None:
    """Mark the run of ``day`` started and queue that day's unregistered numbers, atomically."""
    with store.transaction() as db:
        db.execute("UPDATE job_runs SET day = ?, started_at = ?, finished_at = NULL WHERE job = ?",
                   [day, now_iso(), NIGHTLY])
        registration.queue_numbers_called(store, day, settings)


def _finish_run(store, day: str) -> None:
    with store.transaction() as db:
        db.execute("UPDATE job_runs SET finished_at = ? WHERE job = ? AND day = ?",
                   [now_iso(), NIGHTLY, day])


def _renew(store, holder: str) -> None:
    until = now_iso(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=LEASE_SECONDS))
    with store.transaction() as db:
        db.execute("UPDATE job_runs SET lease_until = ? WHERE job = ? AND holder = ?",
                   [until, NIGHTLY, holder])


def register_contacts_for_day(store, day: str | None = None, resolver: Resolver | None = None,
                              force: bool = False, batch_size: int = registration.BATCH_SIZE,
                              progress: Callable[[RunReport], None] | None = None) -> RunReport:
    """Register every unregistered number called on ``day`` (local date, default today) and any
    other number still waiting in the queue, through ``resolve_many``; the nightly job.

    Only one process runs it at a time (a lease in ``job_runs``). A run interrupted on the same
    day is resumed without queueing again; a finished day runs again only with ``force``.
    ``progress`` is called after each batch. Salesforce failures are logged, stop the run and
    leave the rest queued (the run stays unfinished, so it is caught up later).
    """
    settings = load_settings(store)
    day = day or settings.local_day(dt.datetime.now(dt.timezone.utc))
    if not registration.queues_numbers(settings):
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
        _start_run(store, day, settings)
    report.queued = registration.queue_size(store)

    resolver = resolver or Resolver(store)
    sent_before = resolver.batch_requests()

    def after_batch(done: registration.Drained) -> None:
        report.registered, report.unmatched = done.registered, done.unmatched
        # requests sent, not batches: a batch of numbers can take several composite requests
        report.api_calls = resolver.batch_requests() - sent_before
        _renew(store, holder)
        if progress:
            progress(report)

    # everything queued, not only ``day``'s: a catch-up run also takes later days' numbers
    done = registration.drain_queue(store, resolver, NIGHTLY, batch_size, after_batch=after_batch)
    report.failed = done.failed
    report.api_calls = resolver.batch_requests() - sent_before   # the failed batch's too
    if done.failed is None:
        _finish_run(store, day)
    return report


# ---------------------------------------------------------------------------------------------
# the phone index's sync
# ---------------------------------------------------------------------------------------------

def sync_index(store, full: bool = False, **options) -> index.SyncReport:
    """Sync the phone index (``index.sync``: resume or start a full sync when due or ``full``,
    then one incremental round) while holding the index lease, renewed after every page, so
    only one process syncs at a time; skipped ("lease held") when another live process syncs.
    ``options`` go to ``index.sync`` (``connection_factory``)."""
    holder = new_holder()
    if acquire_lease(store, INDEX, holder) is None:
        return index.SyncReport(skipped="lease held")
    try:
        return index.sync(store, full=full, keep_alive=lambda: acquire_lease(store, INDEX, holder),
                          **options)
    finally:
        release_lease(store, INDEX, holder)


# ---------------------------------------------------------------------------------------------
# when the nightly run is due
# ---------------------------------------------------------------------------------------------

def _nightly_clock(settings) -> tuple[int, int]:
    try:
        hour, minute = map(int, settings.nightly_time.split(":"))
    except ValueError:  # stored before validation existed: the default time
        hour, minute = map(int, DEFAULTS.nightly_time.split(":"))
    return hour, minute


def last_scheduled_day(settings, now: dt.datetime | None = None) -> str:
    """The local day of the most recent scheduled nightly time at or before ``now``."""
    zone = settings.zone()
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


def catch_up(store, resolver: Resolver | None = None, now: dt.datetime | None = None) -> RunReport | None:
    """Run the nightly job for a missed (or interrupted) day, today's included once its time has
    come; None when nothing was missed. The scheduler's nightly job."""
    settings = load_settings(store)
    if not registration.runs_nightly(settings):
        return None
    day = missed_day(store, settings, now)
    if day is None:
        return None
    return register_contacts_for_day(store, day, resolver=resolver)


# ---------------------------------------------------------------------------------------------
# the scheduler
# ---------------------------------------------------------------------------------------------

class JobScheduler:
    """APScheduler in a daemon thread: the nightly run at ``nightly_time`` (``time_zone``), a
    catch-up check every few minutes (a run missed, or left by a crashed process), and in
    after-call mode a retry of numbers still queued; the phone index's sync every
    ``index_minutes`` (first at once) while the index is on and Salesforce connected; the
    sending of waiting Tasks every 15 seconds while calls are logged as Tasks."""

    CHECK_MINUTES = 5
    RETRY_SECONDS = 60
    TASK_SECONDS = 15       # Tasks waiting (a backlog, retries, calls ended in Kamailio) go out

    def __init__(self, store, resolver_factory: Callable[[], Resolver]):
        self.store = store
        self._resolver = resolver_factory
        self._scheduler = None
        self._key = None

    def configure(self, settings) -> None:
        """(Re)schedule the jobs for ``settings``; cheap when nothing relevant changed."""
        key = (settings.contact_fetch, settings.nightly_time, settings.time_zone,
               index.wanted(settings), settings.index_minutes, activity.wanted(settings))
        if key == self._key:
            return
        self._key = key
        self.stop()
        if registration.queues_numbers(settings) or index.wanted(settings) or activity.wanted(settings):
            self._scheduler = self._build(settings)
            self._scheduler.start()

    def scheduled(self, job_id: str) -> tuple[dt.datetime, str] | None:
        """(next run time in the job's time zone, trigger description such as
        ``cron[hour='22', minute='0']``) of job ``job_id`` ("nightly", "catch_up", "retry", "index"),
        or None when it is not scheduled."""
        job = self._scheduler.get_job(job_id) if self._scheduler is not None else None
        return (job.next_run_time, str(job.trigger)) if job is not None else None

    def _build(self, settings):
        # APScheduler is imported only by processes that schedule: a one-shot host never does
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        zone = settings.zone()
        scheduler = BackgroundScheduler(timezone=zone, daemon=True)
        common = dict(coalesce=True, max_instances=1, misfire_grace_time=3600, replace_existing=True)
        if registration.runs_nightly(settings):
            hour, minute = _nightly_clock(settings)
            scheduler.add_job(self._nightly, CronTrigger(hour=hour, minute=minute, timezone=zone),
                              id="nightly", **common)
            # the first check runs at once: a run missed while everything was down is caught up
            scheduler.add_job(self._nightly, IntervalTrigger(minutes=self.CHECK_MINUTES),
                              id="catch_up", next_run_time=dt.datetime.now(zone), **common)
        elif registration.queues_numbers(settings):
            scheduler.add_job(self._retry, IntervalTrigger(seconds=self.RETRY_SECONDS),
                              id="retry", next_run_time=dt.datetime.now(zone), **common)
        if index.wanted(settings):
            scheduler.add_job(self._index, IntervalTrigger(minutes=settings.index_minutes),
                              id="index", next_run_time=dt.datetime.now(zone), **common)
        if activity.wanted(settings):
            scheduler.add_job(self._tasks, IntervalTrigger(seconds=self.TASK_SECONDS),
                              id="tasks", next_run_time=dt.datetime.now(zone), **common)
        return scheduler

    def _tasks(self) -> None:
        try:
            activity.send(self.store)   # logs its Salesforce failures itself
        except Exception as exc:  # the scheduler thread must live on
            errors.report_failure(self.store, activity.OPERATION, exc)

    def _nightly(self) -> None:
        try:
            catch_up(self.store, self._resolver())
        except Exception as exc:  # the scheduler thread must live on
            errors.report_failure(self.store, NIGHTLY, exc)

    def _index(self) -> None:
        try:
            sync_index(self.store)   # logs its Salesforce failures itself
        except Exception as exc:  # the scheduler thread must live on
            errors.report_failure(self.store, index.OPERATION, exc)

    def _retry(self) -> None:
        holder = new_holder()
        try:
            if acquire_lease(self.store, RETRY, holder, seconds=300) is None:
                return
            try:
                registration.drain_queue(self.store, self._resolver(), "register", min_age=30.0)
            finally:
                release_lease(self.store, RETRY, holder)
        except Exception as exc:  # the scheduler thread must live on
            errors.report_failure(self.store, "register", exc)

    def stop(self, wait_seconds: float = 0.0) -> None:
        """Stop the scheduler thread; a running job finishes in the background, waited for up to
        ``wait_seconds`` (whoever closes the store next; a nightly run can take long, so the
        wait is bounded)."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        stopper = threading.Thread(target=self._shutdown, args=(scheduler, wait_seconds > 0),
                                   name="sfcti-scheduler-stop", daemon=True)
        stopper.start()
        stopper.join(wait_seconds)

    @staticmethod
    def _shutdown(scheduler, wait: bool) -> None:
        try:
            scheduler.shutdown(wait=wait)
        except Exception:
            log.debug("scheduler already stopped", exc_info=True)
