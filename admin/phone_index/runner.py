"""The admin's "sync now": one index sync at a time in a daemon thread of the admin process, so
the request returns at once and the page shows the progress on reload. ``jobs.sync_index``'s
lease keeps it to one process across every admin worker, the host and the CLI."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Callable

from flask import Flask

from core import jobs
from core.store import now_iso

log = logging.getLogger(__name__)
_CREATE_LOCK = threading.Lock()   # two first requests at once must not make two runners


@dataclasses.dataclass
class SyncRun:
    """One sync started from the admin: when, which kind, and how it ended."""

    full: bool
    started_at: str
    finished_at: str | None = None
    report: dict | None = None       # SyncReport.as_dict() once it ended
    crashed: str | None = None       # the exception's type when the sync raised


class BackgroundSync:
    """Runs ``sync(store, full=...)`` in a daemon thread, never two at a time in this process."""

    def __init__(self, store, sync: Callable = jobs.sync_index):
        self.store, self._sync = store, sync
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last: SyncRun | None = None

    @property
    def running(self) -> bool:
        """Whether a sync started here has not ended yet."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, full: bool) -> bool:
        """Start a sync; False when one started here is still running."""
        with self._lock:
            if self.running:
                return False
            run = SyncRun(full=full, started_at=now_iso())
            self.last = run
            self._thread = threading.Thread(target=self._run, args=(run,), daemon=True,
                                            name="sfcti-admin-index-sync")
            self._thread.start()
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running sync ends (at most ``timeout`` seconds); True when none runs."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def _run(self, run: SyncRun) -> None:
        try:
            run.report = self._sync(self.store, full=run.full).as_dict()
        except Exception as exc:  # a thread's exception would only reach stderr: keep it for the page
            log.exception("index sync started from the admin failed")
            run.crashed = type(exc).__name__
        finally:
            run.finished_at = now_iso()
            self.store.close()   # this thread's database connection


def background_sync(app: Flask, store) -> BackgroundSync:
    """The app's one BackgroundSync (created on first use)."""
    with _CREATE_LOCK:
        return app.extensions.setdefault("sfcti_index_sync", BackgroundSync(store))
