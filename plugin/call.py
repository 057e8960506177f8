"""The call object a host hands to the hooks; hosts may use this dataclass or any look-alike."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_call_id() -> str:
    """A fresh call id, unique across hosts and processes."""
    return uuid.uuid4().hex


@dataclasses.dataclass
class Call:
    """One phone call as the host sees it (DESIGN §2).

    The hooks read these attributes and nothing else; an object lacking one of them, or holding
    a value of the wrong type, is tolerated (the missing value counts as unknown).
    """

    call_id: str = dataclasses.field(default_factory=new_call_id)
    direction: str = "inbound"          # "inbound" or "outbound"
    remote_number: str = ""             # exactly as delivered: "+8131...", "03-...", "anonymous"
    local_number: str | None = None
    agent_id: str | None = None
    started_at: dt.datetime = dataclasses.field(default_factory=_now)
    ended_at: dt.datetime | None = None
    answered: bool | None = None

    def end(self, answered: bool = True, duration: float = 0.0) -> "Call":
        """Mark the call ended ``duration`` seconds after it started; returns the call."""
        self.answered = answered
        self.ended_at = self.started_at + dt.timedelta(seconds=max(0.0, float(duration)))
        return self
