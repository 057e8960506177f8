"""What every host does with the plugin: load it through its entry point, and hand it calls."""

from __future__ import annotations

import os
import time


def load_host():
    """A pluggy PluginManager set up the way a host does it: specs, entry points, check."""
    import pluggy

    import plugin.hookspecs

    pm = pluggy.PluginManager("telephony")
    pm.add_hookspecs(plugin.hookspecs)
    pm.load_setuptools_entrypoints("telephony")
    pm.check_pending()
    return pm


class BoundedScreens:
    """Screen hooks run in worker threads that the phone system's request waits for at most the
    screen budget (plus ``grace``), so nothing below a hook (a locked database, a hanging
    Salesforce) can hold a call longer. The budget is re-read from the settings after each
    screen (``settings``: the host's runtime's ``settings`` method); the threads are made again
    in a forked child (threads do not survive a fork)."""

    def __init__(self, pm, settings, name: str, threads: int, grace: float = 0.0):
        from core.settings import Settings  # on first use: `sfcti` starts without core

        self.pm, self.settings, self.name, self.threads = pm, settings, name, threads
        self.grace = grace
        self.budget = Settings.screen_budget_ms / 1000.0   # until the settings are read
        self._pool, self._pid = None, None

    def submit(self, fn, *args):
        """Run ``fn(*args)`` in one of this process's worker threads; returns a Future."""
        from core.runtime import WorkerPool  # on first use: `sfcti` starts without core's runtime

        if self._pid != os.getpid():
            self._pool, self._pid = WorkerPool(self.name, self.threads), os.getpid()
        return self._pool.submit(fn, *args)

    def remaining(self, started: float) -> float:
        """Seconds left of the budget (plus grace) counted from ``started`` (time.monotonic())."""
        return max(0.0, self.budget + self.grace - (time.monotonic() - started))

    def screen(self, call, started: float) -> dict | None:
        """The display of the hook for ``call.direction``, waited for within the budget.

        :raises concurrent.futures.TimeoutError: the hook has not answered in time
        :raises Exception: whatever the hook raised (the plugin's hooks raise nothing)
        """
        hook = self.pm.hook.on_outgoing_call if call.direction == "outbound" \
            else self.pm.hook.on_incoming_call
        return self.submit(self._screen, hook, call).result(timeout=self.remaining(started))

    def _screen(self, hook, call) -> dict | None:
        display = hook(call=call)
        self.budget = self.settings().screen_budget_ms / 1000.0  # one small read
        return display

    def stop(self) -> None:
        """Let this process's worker threads end."""
        if self._pool is not None:
            self._pool.stop()
