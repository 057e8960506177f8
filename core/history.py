"""Call history: one row per call id, written when the call ends, named once the number is registered.

- :func:`call_facts` turns whatever object a host hands over into clean values (never raises);
- :func:`record_call` inserts the row once (``INSERT OR IGNORE``: a repeated end-of-call event
  changes nothing), taking company and person from the contacts when the number is registered;
- :func:`fill_names` copies a newly registered contact into every earlier call of that number;
- :func:`refetch_call` re-resolves one call's number now, at most once per 15 s per number.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from typing import Any

from core.store import now_iso, substring_filter

TEXT_MAX = 200            # ids and numbers longer than this are cut: they are garbage anyway
REFETCH_INTERVAL = 15.0   # seconds between two re-fetches of one number
DIRECTIONS = ("inbound", "outbound")

CALL_COLUMNS = (
    "call_id", "direction", "remote_number", "e164", "display_number", "local_number", "agent_id",
    "started_at", "ended_at", "answered", "duration_seconds", "status", "label", "company",
    "person", "object", "record_id", "record_url", "recorded_at", "registered_at",
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# ---------------------------------------------------------------------------------------------
# exceptions: the docstring is the message
# ---------------------------------------------------------------------------------------------

class CallNotFound(LookupError):
    "This call is not in the history."

    def __init__(self, call_id: str | None = None):
        super().__init__(self.__doc__)
        self.call_id = call_id


class RefetchLocked(Exception):
    "This number was re-fetched a moment ago; try again in a few seconds."

    def __init__(self, seconds: float):
        super().__init__(self.__doc__)
        self.seconds = seconds


# ---------------------------------------------------------------------------------------------
# reading a host's call object
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CallFacts:
    """The attributes of a host's call object, cleaned: printable text of bounded length, aware
    datetimes, and None wherever the host gave nothing usable."""

    call_id: str
    direction: str | None
    remote_number: str
    local_number: str | None
    agent_id: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None
    answered: bool | None

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start to end for an answered call, 0 for a missed one, None if unknown."""
        if self.answered is False:
            return 0.0
        if self.ended_at is None:
            return None
        return max(0.0, round((self.ended_at - self.started_at).total_seconds(), 3))


def clean_text(value: Any, limit: int = TEXT_MAX) -> str | None:
    """``value`` as printable text of at most ``limit`` characters; None for None or the
    unprintable. Lone surrogates (which SQLite cannot store) become "?"."""
    if value is None:
        return None
    try:
        if isinstance(value, bytes):
            text = value[: limit * 4].decode("utf-8", "replace")
        elif isinstance(value, str):
            text = value[: limit * 4]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            text = str(value)
        else:
            return None
    except Exception:
        return None
    text = text.encode("utf-8", "replace").decode("utf-8")
    return _CONTROL.sub("", text)[:limit].strip()


def _attr(call: Any, name: str) -> Any:
    try:
        return getattr(call, name, None)
    except Exception:  # a host's property may raise anything; it counts as missing
        return None


def _aware(value: Any) -> dt.datetime | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value[:40])
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _answered(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


def _direction(value: Any) -> str | None:
    text = (clean_text(value, 16) or "").lower()
    return text if text in DIRECTIONS else None


def call_facts(call: Any, direction: str | None = None) -> CallFacts:
    """Clean values from any object with the attributes of ``plugin.call.Call``; never raises.

    ``direction`` stands in when the object has none (the hook being called says it). A call
    without an id gets a stable synthetic one, so a repeated event is still recorded once.
    """
    started = _aware(_attr(call, "started_at")) or dt.datetime.now(dt.timezone.utc)
    facts = dict(
        direction=_direction(_attr(call, "direction")) or direction,
        remote_number=clean_text(_attr(call, "remote_number")) or "",
        local_number=clean_text(_attr(call, "local_number")),
        agent_id=clean_text(_attr(call, "agent_id")),
        started_at=started,
        ended_at=_aware(_attr(call, "ended_at")),
        answered=_answered(_attr(call, "answered")),
    )
    call_id = clean_text(_attr(call, "call_id")) or _synthetic_id(facts)
    return CallFacts(call_id=call_id, **facts)


def _synthetic_id(facts: dict) -> str:
    key = "|".join(str(facts[k]) for k in ("direction", "remote_number", "agent_id", "started_at"))
    return "noid-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


# ---------------------------------------------------------------------------------------------
# writing the history
# ---------------------------------------------------------------------------------------------

def record_call(store, facts: CallFacts, display: dict, number_display: str | None = None) -> dict | None:
    """Insert the history row for ``facts`` with the ``display`` shown on the screen.

    Returns the new row, or None when the call id was already recorded (nothing changes then).
    Company and person come from the registered contact, when the number already has one.
    """
    row = _call_row(facts, display, number_display)
    with store.transaction() as db:
        contact = _contact(db, row["e164"])
        if contact:
            row.update(_names(contact))
        cursor = db.execute(
            f"INSERT OR IGNORE INTO calls ({', '.join(CALL_COLUMNS)}) "
            f"VALUES ({', '.join(':' + c for c in CALL_COLUMNS)})", row,
        )
        return row if cursor.rowcount == 1 else None


def _call_row(facts: CallFacts, display: dict, number_display: str | None) -> dict:
    display = display or {}
    return {
        "call_id": facts.call_id, "direction": facts.direction,
        "remote_number": facts.remote_number, "e164": display.get("number"),
        "display_number": number_display, "local_number": facts.local_number,
        "agent_id": facts.agent_id, "started_at": now_iso(facts.started_at),
        "ended_at": now_iso(facts.ended_at) if facts.ended_at else None,
        "answered": None if facts.answered is None else int(facts.answered),
        "duration_seconds": facts.duration_seconds, "status": display.get("status"),
        "label": display.get("label"), "company": None, "person": None,
        "object": display.get("object"), "record_id": display.get("record_id"),
        "record_url": display.get("record_url"), "recorded_at": now_iso(), "registered_at": None,
    }


def _contact(db, e164: str | None) -> dict | None:
    if not e164:
        return None
    cursor = db.execute(
        "SELECT company, person, object, record_id, record_url, fetched_at FROM contacts "
        "WHERE e164 = ?", [e164])
    found = cursor.fetchone()
    return dict(zip([d[0] for d in cursor.description], found)) if found else None


def _names(contact: dict) -> dict:
    return {"company": contact.get("company"), "person": contact.get("person"),
            "object": contact.get("object"), "record_id": contact.get("record_id"),
            "record_url": contact.get("record_url"),
            "registered_at": contact.get("fetched_at") or now_iso()}


def fill_names(db, e164: str, contact: dict) -> int:
    """Give every call of ``e164`` the registered ``contact``'s names; returns the rows changed.

    Run it inside the transaction that registers the contact, so history and contacts never
    disagree.
    """
    values = dict(_names(contact), e164=e164)
    return db.execute(
        "UPDATE calls SET company = :company, person = :person, object = :object, "
        "record_id = :record_id, record_url = :record_url, registered_at = :registered_at "
        "WHERE e164 = :e164", values,
    ).rowcount


# ---------------------------------------------------------------------------------------------
# reading the history
# ---------------------------------------------------------------------------------------------

def get_call(store, call_id: str) -> dict:
    """The history row of ``call_id``.

    :raises CallNotFound: when the call is not in the history
    """
    cursor = store.conn.execute(
        f"SELECT {', '.join(CALL_COLUMNS)} FROM calls WHERE call_id = ?", (call_id,))
    found = cursor.fetchone()
    if found is None:
        raise CallNotFound(call_id)
    return dict(zip(CALL_COLUMNS, found))


SEARCHED_COLUMNS = ("display_number", "e164", "remote_number", "company", "person", "agent_id")


def list_calls(store, limit: int = 50, offset: int = 0, search: str | None = None) -> list[dict]:
    """History rows, newest call first; ``search`` matches number, names or agent (substring)."""
    where, params = substring_filter(search, SEARCHED_COLUMNS)
    cursor = store.conn.execute(
        f"SELECT {', '.join(CALL_COLUMNS)} FROM calls{where} ORDER BY started_at DESC, call_id "
        "LIMIT :limit OFFSET :offset", dict(params, limit=int(limit), offset=int(offset)))
    return [dict(zip(CALL_COLUMNS, found)) for found in cursor.fetchall()]


def count_calls(store, search: str | None = None) -> int:
    """How many calls :func:`list_calls` would page through."""
    where, params = substring_filter(search, SEARCHED_COLUMNS)
    return store.conn.execute(f"SELECT count(*) FROM calls{where}", params).fetchone()[0]


# ---------------------------------------------------------------------------------------------
# re-fetch
# ---------------------------------------------------------------------------------------------

def claim_refetch(store, e164: str, interval: float = REFETCH_INTERVAL,
                  now: dt.datetime | None = None) -> None:
    """Take the right to re-fetch ``e164`` now (shared by every process of the instance).

    :raises RefetchLocked: when the number was re-fetched less than ``interval`` seconds ago
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    with store.transaction() as db:
        found = db.execute("SELECT at FROM refetch_locks WHERE e164 = ?", [e164]).fetchone()
        if found:
            waited = (now - dt.datetime.fromisoformat(found[0])).total_seconds()
            if 0 <= waited < interval:
                raise RefetchLocked(interval - waited)
        db.execute("INSERT OR REPLACE INTO refetch_locks (e164, at) VALUES (?, ?)",
                   [e164, now_iso(now)])


def refetch_call(store, call_id: str, resolver=None) -> dict:
    """Re-resolve the number of one recorded call against Salesforce now; returns the display.

    A match is registered (and named in every call of that number) unless ``contact_fetch`` is
    "never", in which case only this call's row gets the names. A number Salesforce no longer
    matches loses its registered contact.

    :raises CallNotFound: when the call is not in the history
    :raises RefetchLocked: when the number was re-fetched less than 15 seconds ago
    :raises core.salesforce.SalesforceError: when Salesforce cannot answer
    """
    from core import jobs
    from core.phone import parse_phone
    from core.resolver import Resolver, unmatchable_display
    from core.settings import load_settings

    row = get_call(store, call_id)
    settings = load_settings(store)
    number = parse_phone(row["remote_number"], settings.default_region)
    unmatchable = unmatchable_display(number)
    if unmatchable is not None:
        return unmatchable
    claim_refetch(store, number.e164)
    resolver = resolver or Resolver(store)
    display = resolver.lookup(number)  # past the contacts and the no-match cache
    if display.get("status") != "matched":
        jobs.unregister(store, number.e164)
    elif settings.contact_fetch == "never":
        _name_one_call(store, call_id, display)
    else:
        jobs.register_contact(store, number.e164, display, resolver)
    return display


def _name_one_call(store, call_id: str, display: dict) -> None:
    with store.transaction() as db:
        db.execute(
            "UPDATE calls SET company = ?, person = ?, object = ?, record_id = ?, record_url = ? "
            "WHERE call_id = ?",
            [display.get("company"), display.get("person"), display.get("object"),
             display.get("record_id"), display.get("record_url"), call_id])
