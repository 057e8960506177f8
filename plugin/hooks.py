"""The hook implementations: each calls core/ and turns any failure into an error-log row and a
safe answer, because pluggy re-raises a hook's exception in the host's call thread.

The instance folder is ``$SFCTI_HOME`` (default ``./instance``), read when a hook first runs.
"""

from __future__ import annotations

import logging
from typing import Any

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
        from core.runtime import runtime_for

        runtime_for().end_call(call)
    except Exception as exc:
        _record_failure("on_call_ended", exc, call)


def _screen(call: Any, direction: str, operation: str) -> dict:
    try:
        from core.runtime import runtime_for

        return runtime_for().screen(call, direction)
    except Exception as exc:
        _record_failure(operation, exc, call)
        return _fallback(call)


def _fallback(call: Any) -> dict:
    try:
        from core.runtime import fallback_display

        return fallback_display(call)
    except Exception:  # core itself cannot be imported: still a well-formed display
        keys = ("status", "label", "company", "person", "object", "record_id", "record_url", "number")
        return dict.fromkeys(keys) | {"status": "unavailable", "label": ""}


def _record_failure(operation: str, exc: Exception, call: Any) -> None:
    try:
        from core.errors import record_failure
        from core.history import call_facts
        from core.runtime import runtime_for

        record_failure(runtime_for().store, "plugin", operation, exc,
                       call_id=call_facts(call).call_id)
    except Exception:
        log.exception("sfcti: %s failed and the error log cannot be written", operation)
