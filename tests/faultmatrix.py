"""What the fault-matrix tests (tests/test_faults_*.py) look at after each fault: the agent's screen,
the history, the error log and the alert mailbox, read the way their users read them."""

from __future__ import annotations

from core import history
from core.alerts import Alerts
from helpers import error_rows

FAILURE = "[sfcti] 障害発生 / Failure"
LATE = "SCREEN_LATE"      # a screen out of budget: the slow row's own incident, asserted there
RECOVERED = "[sfcti] 復旧 / Recovered"


def history_of(store) -> list[tuple]:
    """(call id, status shown, record shown) of every history row, sorted by call id (names
    come with registration, so the record is what the screen showed)."""
    rows = history.list_calls(store, limit=10_000)
    return sorted((r["call_id"], r["status"], r["record_id"]) for r in rows)


def incidents(store, open_only: bool = False, left_out: tuple = ()) -> list[tuple]:
    """(integration, operation, code, count, open) of every error-log row (open ones only with
    ``open_only``), but those of the codes ``left_out``."""
    return sorted((r["integration"], r["operation"], r["code"], r["count"], r["open"])
                  for r in error_rows(store)
                  if (r["open"] or not open_only) and r["code"] not in left_out)


def mailbox_after_tick(store, smtp_server, expected: int, timeout: float = 5.0) -> list[str]:
    """Run the alert sender once (as a host's alert worker does every minute) and return the
    subjects the SMTP server has received, once ``expected`` arrived (or the timeout passed)."""
    Alerts(store, smtp_timeout=3.0).tick()
    return [str(m["Subject"]) for m in smtp_server.wait_for(expected, timeout)]
