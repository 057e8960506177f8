"""The hook implementations: each calls core/ and turns any failure into an error-log row and a
safe answer, because pluggy re-raises a hook's exception in the host's call thread.

The instance folder is ``$SFCTI_HOME`` (default ``./instance``), read when a hook first runs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from core import runtime
from core.errors import report_failure
from core.history import call_facts
from plugin import hookimpl

log = logging.getLogger(__name__)


@hookimpl
def on_incoming_call(call: Any) -> dict:
    """The ringing screen's display, within the screen budget."""
    return _screen(call, "inbound", "on_incoming_call")


@hookimpl
def on_outgoing_call(call: Any) -> dict:
    """The dialing screen's display, within the screen budget."""
    return _screen(call, "outbound", "on_outgoing_call")


@hookimpl
def on_call_ended(call: Any) -> None:
    """Record the call in the history (once per call id) and queue its contact registration."""
    try:
        runtime.runtime_for().end_call(call)
    except Exception as exc:
        _report(exc, "on_call_ended", call)


def _screen(call: Any, direction: str, operation: str) -> dict:
    started = time.monotonic()  # the budget is the host's: it runs from here
    try:
        return runtime.runtime_for().screen(call, direction, started)
    except Exception as exc:
        _report(exc, operation, call)
        return runtime.fallback_display(call)


def _report(exc: Exception, operation: str, call: Any) -> None:
    """The error-log row of a hook's failure (report_failure never raises; opening the instance
    folder may, and then the host's log is all that is left)."""
    try:
        store = runtime.runtime_for().store
    except Exception:
        log.exception("sfcti: %s failed and the instance folder cannot be opened", operation)
        return
    report_failure(store, operation, exc, call_id=call_facts(call).call_id)
