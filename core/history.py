"""Call history: one row per call id, written when the call ends, named once the number is registered.

- :func:`call_facts` turns whatever object a host hands over into clean values (never raises),
  keeping the host's call id exactly: it is the key of the call, so two ids that differ in any
  character are two calls. An id that cannot be stored is refused (:attr:`CallFacts.refused`);
- :func:`record_call` inserts the row once (``ON CONFLICT DO NOTHING``: a repeated end-of-call event
  changes nothing), taking company and person from the contacts when the number is registered;
- :func:`fill_names` copies a newly registered contact into every earlier call of that number.

This module owns the ``calls`` table and depends on the store only: deciding when a number is
registered is core/registration.py's job.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from typing import Any

from core.display import Contact, printable
from core.store import now_iso, select_in, substring_filter

TEXT_MAX = 200            # numbers and agent ids longer than this are cut: garbage anyway
CALL_ID_MAX = 1000        # longer call ids are refused: no phone system makes them this long
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


# ---------------------------------------------------------------------------------------------
# reading a host's call object
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CallFacts:
    """The attributes of a host's call object, cleaned: printable text of bounded length, aware
    datetimes, and None wherever the host gave nothing usable. The call id is the host's own,
    exactly; when it cannot be stored it is None and ``refused`` says why."""

    call_id: str | None
    direction: str | None
    remote_number: str
    local_number: str | None
    agent_id: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None
    answered: bool | None
    refused: str | None = None

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
            value = dt.datetime.fromisoformat(str.__str__(value)[:40])  # a str subclass may raise
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
    without an id (None or "") gets a stable synthetic one, so a repeated event is still recorded
    once. An id that is not text (or an int), holds a lone surrogate (bytes: is not UTF-8) or a
    NUL, or is longer than :data:`CALL_ID_MAX` is refused: ``call_id`` None and ``refused`` the
    reason.
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
    try:
        call_id = exact_call_id(_attr(call, "call_id"))
    except UnstorableCallId as exc:
        return CallFacts(call_id=None, refused=str(exc), **facts)
    return CallFacts(call_id=call_id or _synthetic_id(facts), **facts)


class UnstorableCallId(ValueError):
    """A call id the history cannot keep exactly; the message says why (English)."""


def exact_call_id(value: Any) -> str | None:
    """The host's call id as the exact text it is kept under; None when there is none.

    :raises UnstorableCallId: for an id that is not text, bytes or an integer, holds a lone
        surrogate, bytes that are not UTF-8 or a NUL character (which PostgreSQL cannot store),
        or is longer than :data:`CALL_ID_MAX` characters
    """
    if value is None:
        return None
    try:
        # the base types' own methods: a subclass may override every method to raise
        if isinstance(value, str):
            text = str.__str__(value)
        elif isinstance(value, (bytes, bytearray)):
            text = _decoded(bytes(memoryview(value)[: CALL_ID_MAX * 4 + 1]))
        elif isinstance(value, int) and not isinstance(value, bool):
            text = int.__repr__(value)
        else:
            raise UnstorableCallId(f"the call id is a {type(value).__name__}, not text")
    except UnstorableCallId:
        raise
    except Exception as exc:  # undecodable bytes, a hostile object
        reason = f"the call id cannot be read as text ({type(exc).__name__})"
        raise UnstorableCallId(reason) from None
    if len(text) > CALL_ID_MAX:
        raise _too_long(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnstorableCallId(f"the call id holds a lone surrogate (not Unicode text): "
                               f"{_preview(text)}") from None
    if "\x00" in text:
        # PostgreSQL's text cannot hold NUL; refused on SQLite too, so both keep the same calls
        raise UnstorableCallId(f"the call id holds a NUL character: {_preview(text)}")
    return text or None


def _decoded(raw: bytes) -> str:
    if len(raw) > CALL_ID_MAX * 4:   # more characters than that, whatever they are
        raise _too_long(bytes.decode(raw, "utf-8", "replace"))
    return bytes.decode(raw, "utf-8")


def _too_long(text: str) -> UnstorableCallId:
    return UnstorableCallId(f"the call id is longer than {CALL_ID_MAX:,} characters: "
                            f"{_preview(text)}")


def _preview(text: str) -> str:
    """The start of a refused id as the error log shows it (the admin can tell which host)."""
    shown = printable(text)
    return f"\"{shown[:40]}…\"" if len(shown) > 40 else f"\"{shown}\""


def _synthetic_id(facts: dict) -> str:
    key = "|".join(str(facts[k]) for k in ("direction", "remote_number", "agent_id", "started_at"))
    return "noid-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


# ---------------------------------------------------------------------------------------------
# writing the history
# ---------------------------------------------------------------------------------------------

def record_call(store, facts: CallFacts, display: dict, number_display: str | None = None,
                contact: Contact | None = None, registered_at: str | None = None) -> dict | None:
    """Insert the history row for ``facts`` with the ``display`` shown on the screen.

    Returns the new row, or None when the call id was already recorded (nothing changes then).
    A number already registered passes its ``contact`` (and when it was ``registered_at``): the
    row is named from it.
    """
    row = _call_row(facts, display, number_display)
    if contact is not None:
        row.update(contact.names(), registered_at=registered_at or now_iso())
    with store.transaction() as db:
        cursor = db.execute(
            f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) "
            f"VALUES ({', '.join(':' + c for c in CALL_COLUMNS)}) ON CONFLICT (call_id) DO NOTHING",
            row,
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


def fill_names(store, e164: str, contact: Contact, registered_at: str) -> int:
    """Give every call of ``e164`` the registered ``contact``'s names; returns the rows changed.

    Run it inside the transaction that registers the contact, so history and contacts never
    disagree.
    """
    values = dict(contact.names(), registered_at=registered_at, e164=e164)
    with store.transaction() as db:
        return db.execute(
            "UPDATE calls SET company = :company, person = :person, object = :object, "
            "record_id = :record_id, record_url = :record_url, registered_at = :registered_at "
            "WHERE e164 = :e164", values,
        ).rowcount


def name_call(store, call_id: str, contact: Contact) -> None:
    """Give one call the names of ``contact`` without registering it (mode "never")."""
    with store.transaction() as db:
        db.execute(
            "UPDATE calls SET company = :company, person = :person, object = :object, "
            "record_id = :record_id, record_url = :record_url WHERE call_id = :call_id",
            dict(contact.names(), call_id=call_id))


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


def numbers_called(store, start: str, end: str) -> list[str]:
    """The distinct E.164 numbers of calls started from ``start`` until before ``end`` (ISO)."""
    return [r[0] for r in store.conn.execute(
        "SELECT DISTINCT e164 FROM calls WHERE started_at >= ? AND started_at < ? "
        "AND e164 IS NOT NULL", [start, end])]


def get_calls(store, call_ids: list[str]) -> dict[str, dict]:
    """``{call_id: history row}`` for those of ``call_ids`` in the history."""
    rows = select_in(store.conn, f"SELECT {', '.join(CALL_COLUMNS)} FROM calls "
                                 "WHERE call_id IN ({marks})", call_ids)
    return {row[0]: dict(zip(CALL_COLUMNS, row)) for row in rows}


def agents_seen(store, limit: int = 1000) -> list[dict]:
    """The agents of the history: ``{"agent_id", "calls", "last_call_at"}``, the most recently
    seen first."""
    cursor = store.conn.execute(
        "SELECT agent_id, count(*), max(started_at) FROM calls WHERE agent_id IS NOT NULL "
        "AND agent_id != '' GROUP BY agent_id ORDER BY max(started_at) DESC LIMIT ?", [int(limit)])
    return [{"agent_id": a, "calls": n, "last_call_at": at} for a, n, at in cursor.fetchall()]


def count_calls(store, search: str | None = None) -> int:
    """How many calls :func:`list_calls` would page through."""
    where, params = substring_filter(search, SEARCHED_COLUMNS)
    return store.conn.execute(f"SELECT count(*) FROM calls{where}", params).fetchone()[0]
