"""The plugin's per-process runtime: what the hooks call into.

One :class:`Runtime` per (process, instance folder), made on first use by :func:`runtime_for`.
It holds the store, the resolver, two small pools of daemon threads (live lookups for the
screens; registration after calls) and the job scheduler. Daemon threads, because a host must be
able to exit while Salesforce hangs: work cut short that way is never lost, since every number
still to be registered waits in the queue and is caught up at the next start.

Screens answer within ``screen_budget_ms``: registered contacts and recent live matches answer
from the host's thread; anything else is looked up in a worker thread that the host's thread waits
for at most the rest of the budget. One lookup runs per number at a time: calls from the same
number wait for the same answer.

A screen that runs out of budget waiting for Salesforce is a failure of its own: the late screens
are counted in one ``SCREEN_LATE`` incident of the error log (written off the host's thread), and
the incident closes once IN_TIME_TO_RECOVER live answers in a row come within the budget.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import pathlib
import queue
import threading
import time
from typing import Any, Callable

from core import activity, history, jobs, pending_calls, registration
from core.alerts import AlertWorker
from core.display import UNAVAILABLE, display_for, unavailable_display, unmatchable_display
from core.errors import close_salesforce_incidents, record_late_screens, report_failure
from core.phone import parse_phone
from core.resolver import Resolver
from core.settings import Settings, load_settings
from core.store import home_path, open_store

log = logging.getLogger(__name__)

MATCH_TTL = 600.0       # seconds a live match answers from memory when it is not registered
SHOWN_MAX = 20_000      # displays remembered between a call's screen and its end
LOOKUP_THREADS = 8      # requests' connection pool keeps 10 connections per host
REGISTER_THREADS = 2
# The host's thread waits this long for a call's history row; a database that cannot take it
# (locked by another process, disk full, read-only) gets it later from a retrying writer thread,
# and meanwhile the call waits in a journal file (core/pending_calls.py) in case the process dies.
END_WAIT_SECONDS = 1.0
RECORD_RETRY_SECONDS = (0.2, 5.0)   # first and longest pause between attempts to write a call
ENV_JOBS = "SFCTI_JOBS"  # "off": no scheduler nor alert sender here (one-shot CLI hosts, tests)
# "off": ended calls' Tasks are left to the process that runs the jobs (a Kamailio worker, whose
# threads run only while it handles a message, must not hold a request to Salesforce open)
ENV_SEND_TASKS = "SFCTI_SEND_TASKS"
TASK_GATHER_SECONDS = 1.0   # calls ending together go out as one request
# live answers within the screen budget, in a row, that close a late-screens incident: one quick
# answer between slow ones is no recovery (the incident, and its count, would restart each time)
IN_TIME_TO_RECOVER = 3
# lookup threads per process; a host process that handles one call at a time (a Kamailio worker)
# needs few, and every thread costs it memory of its own
ENV_LOOKUP_THREADS = "SFCTI_LOOKUP_THREADS"
# how long shutting a runtime down waits for the work already running
SHUTDOWN_WAIT_SECONDS = 10.0


# ---------------------------------------------------------------------------------------------
# small building blocks
# ---------------------------------------------------------------------------------------------

class WorkerPool:
    """A fixed set of daemon threads running submitted functions; ``submit`` returns a Future."""

    def __init__(self, name: str, size: int, eager: bool = False):
        """``eager``: start the threads now, for a pool a ringing call's thread submits to once
        its budget is spent (starting a thread waits until it runs: long on a busy machine)."""
        self.name, self.size = name, size
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._idle = threading.Condition()
        if eager:
            with self._idle:
                while len(self._threads) < size:
                    self._start_thread()

    def submit(self, fn: Callable, *args: Any) -> concurrent.futures.Future:
        """Run ``fn(*args)`` in a worker thread."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._idle:
            self._busy += 1
            if len(self._threads) < self.size:
                self._start_thread()
        self._queue.put((future, fn, args))
        return future

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            try:
                if future.set_running_or_notify_cancel():
                    self._run(future, fn, args)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    @staticmethod
    def _run(future, fn, args) -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to whoever waits on the future
            future.set_exception(exc)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no task is queued or running; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def stop(self) -> None:
        """Let the threads end once the queued work is done."""
        for _ in self._threads:
            self._queue.put(None)

    def join(self, deadline: float) -> None:
        """Wait for the threads to end (after :meth:`stop`) until ``deadline`` (a
        ``time.monotonic()`` value)."""
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))


class Memo:
    """A small thread-safe dict with a size bound (oldest out first) and an optional expiry."""

    def __init__(self, size: int, ttl: float | None = None):
        self.size, self.ttl = size, ttl
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, value: Any) -> None:
        """Remember ``value`` under ``key``."""
        with self._lock:
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, key: str, pop: bool = False) -> Any:
        """The value under ``key`` (removed with ``pop``), or None when absent or expired."""
        with self._lock:
            item = self._items.pop(key, None) if pop else self._items.get(key)
        if item is None or (self.ttl is not None and time.monotonic() - item[0] > self.ttl):
            return None
        return item[1]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()


class LateScreens:
    """Screens that ran out of budget waiting for Salesforce, and the live answers that came in
    time since the last of them.

    A late screen is counted on the host's thread (a lock and an addition); the error-log row is
    written by ``pool``'s thread, several late screens in one write, so a slow Salesforce never
    makes a host's thread wait for the database.
    """

    def __init__(self, store, pool: WorkerPool):
        self.store, self.pool = store, pool
        self._lock = threading.Lock()
        self._unwritten = 0
        self._budget_ms = 0
        self._call_id: str | None = None
        self._in_time = 0

    def note_late(self, call_id: str, budget_ms: int) -> None:
        """One more screen ran out of budget (cheap: the write happens in the pool)."""
        with self._lock:
            self._in_time = 0
            self._unwritten += 1
            self._budget_ms, self._call_id = budget_ms, call_id
            first = self._unwritten == 1
        if first:
            self.pool.submit(self._write)

    def _write(self) -> None:
        with self._lock:
            screens, budget_ms, call_id = self._unwritten, self._budget_ms, self._call_id
            self._unwritten = 0
        if screens:
            record_late_screens(self.store, screens, budget_ms, call_id)

    def answered(self, in_time: bool | None) -> bool:
        """A live lookup answered within its screen's budget (True), after it (False), or for
        no screen (None); True once IN_TIME_TO_RECOVER answers in a row came in time (screens
        are back to normal)."""
        with self._lock:
            if in_time is not None:
                self._in_time = self._in_time + 1 if in_time else 0
            return self._in_time >= IN_TIME_TO_RECOVER


def fallback_display(call: Any = None) -> dict:
    """The display when nothing else can be said: "unavailable" (or "withheld") with the number
    as far as it can be read. Never raises."""
    return unavailable_display(history.call_facts(call).remote_number)


# ---------------------------------------------------------------------------------------------
# the runtime
# ---------------------------------------------------------------------------------------------

class Runtime:
    """The plugin's state in one process for one instance folder."""

    def __init__(self, home: str | os.PathLike, jobs_enabled: bool = True,
                 lookup_threads: int = LOOKUP_THREADS):
        self.store = open_store(home)
        self.lookups = WorkerPool("sfcti-lookup", lookup_threads)
        self.background = WorkerPool("sfcti-register", REGISTER_THREADS)
        self.task_sender = WorkerPool("sfcti-tasks", 1)
        self.incidents = WorkerPool("sfcti-incidents", 1, eager=True)
        self.late_screens = LateScreens(self.store, self.incidents)
        self.sends_tasks = _env_on(ENV_SEND_TASKS)
        self._tasks_due = threading.Event()
        self.matches = Memo(SHOWN_MAX, ttl=MATCH_TTL)
        self.shown = Memo(SHOWN_MAX)
        self._inflight: dict[str, concurrent.futures.Future] = {}
        self._lock = threading.Lock()
        self._settings: Settings | None = None
        self._settings_unreadable = False
        self.resolver = Resolver(self.store)
        self.recorder = WorkerPool("sfcti-history", REGISTER_THREADS)
        self.journal = pending_calls.Journal(self.store.home)
        self.recorder.submit(self._replay_journals)
        self.scheduler = jobs.JobScheduler(self.store, lambda: self.resolver) if jobs_enabled else None
        # (re)scheduling imports and starts APScheduler: never in a ringing call's thread
        self.configurer = WorkerPool("sfcti-configure", 1, eager=jobs_enabled)
        # alert mails must go out from a host even when no admin process runs
        self.alert_worker = AlertWorker(self.store) if jobs_enabled else None
        if self.alert_worker is not None:
            self.alert_worker.start()
        self._warm_up()

    def _warm_up(self) -> None:
        """Load now what the first screens would otherwise load while a call rings: the settings
        and the phone metadata of the default region. A failure here is the first screen's to
        meet and report."""
        try:
            parse_phone("1234567890", self.settings().default_region)
        except Exception:
            log.debug("warm-up failed", exc_info=True)

    # -- shared objects ------------------------------------------------------------------------

    def settings(self) -> Settings:
        """The current settings (core.settings' cache); a change clears the remembered live
        matches and reschedules the jobs. While the database is out of reach the last settings
        read stand (the defaults, if none was read yet): a call still gets its screen and its
        history row, written once the database is back."""
        try:
            settings = load_settings(self.store)
        except self.store.unavailable as exc:
            if not self._settings_unreadable:   # once per outage, not once per call
                self._settings_unreadable = True
                log.warning("sfcti: the settings cannot be read now (%s); the last ones read "
                            "stand", exc)
            return self._settings or Settings()
        self._settings_unreadable = False
        if settings is not self._settings:
            self._settings = settings
            self.matches.clear()
            if self.scheduler is not None:
                self.configurer.submit(self._configure_jobs, settings)
        return settings

    def _configure_jobs(self, settings: Settings) -> None:
        try:
            self.scheduler.configure(settings)
        except Exception as exc:
            report_failure(self.store, "scheduler", exc)

    # -- screens -------------------------------------------------------------------------------

    def screen(self, call: Any, direction: str, started: float | None = None) -> dict:
        """The display for a ringing or dialling call, within the screen budget counted from
        ``started`` (time.monotonic() when the hook was entered; default now)."""
        started = time.monotonic() if started is None else started
        settings = self.settings()
        facts = history.call_facts(call, direction)
        number = parse_phone(facts.remote_number, settings.default_region)
        display = self._display(number, facts.call_id, settings, started)
        self.shown.put(facts.call_id, display)
        return display

    def _display(self, number, call_id: str, settings: Settings, started: float) -> dict:
        unmatchable = unmatchable_display(number)
        if unmatchable is not None:
            return unmatchable
        known = self.known_display(number)
        if known is not None:
            return known
        deadline = started + settings.screen_budget_ms / 1000.0
        future = self.lookup(number, call_id, deadline)
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except Exception as exc:  # timed out, or failed: the number is all we know
            if not (future.done() and future.exception() is exc):
                # out of budget (a failed lookup is logged by the lookup itself)
                self.late_screens.note_late(call_id, settings.screen_budget_ms)
            return display_for(number, UNAVAILABLE)

    def known_display(self, number) -> dict | None:
        """The display answered without Salesforce: registered contact, recent live match, or a
        remembered no-match; None when only a lookup can tell (or the database is out of reach)."""
        try:
            return self.resolver.cached(number) or self.matches.get(number.e164)
        except self.store.unavailable:
            return self.matches.get(number.e164)

    def lookup(self, number, call_id: str | None = None,
               deadline: float | None = None) -> concurrent.futures.Future:
        """The live lookup of ``number``: the one already running, or a new one. ``deadline``
        (a ``time.monotonic()`` value) is when the screen that asks stops waiting."""
        with self._lock:
            future = self._inflight.get(number.e164)
            if future is None:
                future = self.lookups.submit(self._lookup_task, number, call_id, deadline)
                self._inflight[number.e164] = future
        return future

    def _lookup_task(self, number, call_id: str | None, deadline: float | None = None) -> dict:
        try:
            display = self.resolver.lookup(number)
        except Exception as exc:
            report_failure(self.store, "lookup", exc, call_id=call_id)
            raise
        else:
            if display.get("status") == "matched":
                self.matches.put(number.e164, display)
            # an answer after its screen's deadline must not close the late-screens incident
            # it has just added to; only answers in time do, a few in a row
            in_time = None if deadline is None else time.monotonic() <= deadline
            close_salesforce_incidents(self.store, self.late_screens.answered(in_time))
            return display
        finally:
            with self._lock:
                self._inflight.pop(number.e164, None)

    # -- end of call ---------------------------------------------------------------------------

    def end_call(self, call: Any) -> dict | None:
        """Record the ended call once; queue its number for registration (and register it in the
        background in after-call mode). Returns the new history row, None for a repeat."""
        settings = self.settings()
        facts = history.call_facts(call)
        number = parse_phone(facts.remote_number, settings.default_region)
        shown = self.shown.get(facts.call_id, pop=True) or self._display_after(number)
        written = self.recorder.submit(self._record_ended_call, facts, shown, number, settings)
        try:
            return written.result(timeout=END_WAIT_SECONDS)
        except concurrent.futures.TimeoutError:
            log.warning("sfcti: the database cannot take call %r now; it is recorded as soon as it "
                        "can", facts.call_id)
            if self.journal.add(facts, shown):
                written.add_done_callback(lambda _: self.journal.written())
            return None

    def _replay_journals(self) -> None:
        """Record the calls a stopped process had kept in its journal."""
        try:
            self.journal.replay_dead(self._record_replayed)
        except Exception as exc:  # a worker thread must never die of it
            report_failure(self.store, "on_call_ended", exc)

    def _record_replayed(self, facts, shown: dict) -> None:
        settings = load_settings(self.store)   # not self.settings(): the runtime is still starting
        self._record_ended_call(facts, shown, parse_phone(facts.remote_number, settings.default_region),
                                settings)

    def _record_ended_call(self, facts, shown: dict, number, settings: Settings) -> dict | None:
        """Write the ended call, retrying while the database cannot take it: the call is never
        dropped while this process runs. Then queue its registration and Task."""
        pause, attempts = RECORD_RETRY_SECONDS[0], 0
        while True:
            try:
                row, queued = registration.record_ended_call(self.store, facts, shown, number.display,
                                                             settings)
                break
            except self.store.unavailable as exc:  # locked, disk full, read-only, server gone
                attempts += 1
                log.warning("sfcti: cannot record call %r yet (attempt %d: %s); retrying in %.1f s",
                            facts.call_id, attempts, exc, pause)
                self.store.close()      # a connection opened on a read-only folder stays read-only
                time.sleep(pause)
                pause = min(pause * 2, RECORD_RETRY_SECONDS[1])
        if attempts:
            log.warning("sfcti: call %r recorded after %d failed attempts", facts.call_id, attempts)
        if queued and registration.registers_after_call(settings):
            self.background.submit(self._register_after_call, number.e164, shown, facts.call_id)
        if row and self.sends_tasks and activity.wanted(settings):
            self._send_tasks_soon()
        return row

    def _display_after(self, number) -> dict:
        """The display for a call whose screen this process did not draw (no lookup now)."""
        return self.known_display(number) or display_for(number, UNAVAILABLE)

    def _register_after_call(self, e164: str, shown: dict, call_id: str) -> None:
        try:
            registration.register_after_call(self.store, self.resolver, e164, shown, call_id)
        except Exception as exc:  # a worker thread must never die of it
            report_failure(self.store, "register", exc, call_id=call_id)

    def _send_tasks_soon(self) -> None:
        """Send the waiting Tasks after a short gathering pause; one pending send at a time."""
        if not self._tasks_due.is_set():
            self._tasks_due.set()
            self.task_sender.submit(self._send_tasks)

    def _send_tasks(self) -> None:
        time.sleep(TASK_GATHER_SECONDS)
        self._tasks_due.clear()
        try:
            activity.send(self.store)
        except Exception as exc:  # a worker thread must never die of it
            report_failure(self.store, activity.OPERATION, exc)

    # -- lifecycle -----------------------------------------------------------------------------

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait for queued lookups, registrations, Task sends and error-log writes to finish;
        False on timeout."""
        deadline = time.monotonic() + timeout
        for pool in (self.lookups, self.background, self.task_sender, self.incidents):
            if not pool.wait_idle(max(0.0, deadline - time.monotonic())):
                return False
        return self._history_writes_idle(deadline)

    def _history_writes_idle(self, deadline: float) -> bool:
        """Wait for the history writes still retrying, then for what they queued."""
        return all(pool.wait_idle(max(0.0, deadline - time.monotonic()))
                   for pool in (self.recorder, self.background, self.task_sender))

    def shutdown(self, wait_seconds: float = SHUTDOWN_WAIT_SECONDS) -> None:
        """Stop the scheduler and the alert sender and let the worker threads end, waiting up to
        ``wait_seconds`` for the work already running (a job, a history write): whoever closes
        the store next must not have a thread still using it (on PostgreSQL such a thread would
        meet a closed pool, or a database dropped meanwhile)."""
        if self.scheduler is not None:
            self.scheduler.stop(wait_seconds)
        if self.alert_worker is not None:
            self.alert_worker.stop()
        pools = (self.configurer, self.lookups, self.recorder, self.background,
                 self.task_sender, self.incidents)
        for pool in pools:
            pool.stop()
        deadline = time.monotonic() + wait_seconds
        for pool in pools:
            pool.join(deadline)
        if self.alert_worker is not None:
            self.alert_worker.join(max(0.0, deadline - time.monotonic()))


_RUNTIMES: dict[tuple[int, pathlib.Path], Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def runtime_for(home: str | os.PathLike | None = None) -> Runtime:
    """This process's runtime for the instance folder (made on first use; a forked child makes
    its own, since threads do not survive a fork)."""
    key = (os.getpid(), home_path(home))
    runtime = _RUNTIMES.get(key)
    if runtime is None:
        with _RUNTIMES_LOCK:
            runtime = _RUNTIMES.get(key)
            if runtime is None:
                runtime = _RUNTIMES[key] = Runtime(key[1], jobs_enabled=_env_on(ENV_JOBS),
                                                   lookup_threads=_lookup_threads())
    return runtime


def _env_on(name: str) -> bool:
    return os.environ.get(name, "on").lower() not in ("off", "0", "no")


def _lookup_threads() -> int:
    """``$SFCTI_LOOKUP_THREADS`` (1 to LOOKUP_THREADS), else LOOKUP_THREADS."""
    value = os.environ.get(ENV_LOOKUP_THREADS, "").strip()
    if value.isascii() and value.isdigit() and 1 <= int(value) <= LOOKUP_THREADS:
        return int(value)
    if value:
        log.warning("%s=%r is not a number from 1 to %d; using %d", ENV_LOOKUP_THREADS, value,
                    LOOKUP_THREADS, LOOKUP_THREADS)
    return LOOKUP_THREADS


def shutdown_all() -> None:
    """Shut every runtime of this process down (tests, and hosts that unload the plugin)."""
    with _RUNTIMES_LOCK:
        runtimes = list(_RUNTIMES.values())
        _RUNTIMES.clear()
    for runtime in runtimes:
        runtime.shutdown()
