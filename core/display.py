"""The one display shape (DESIGN §2) and the registered contact it is drawn from.

Every screen the hooks hand to a host is a dict with exactly :data:`DISPLAY_KEYS`; every matched
record, whether it comes from Salesforce, the local contacts or a history row, travels as a
:class:`Contact`. Both are defined here once and nowhere else.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Mapping

from core.phone import NumberKind, PhoneNumber, parse_phone

MATCHED, NOT_REGISTERED, WITHHELD, UNAVAILABLE = "matched", "not_registered", "withheld", "unavailable"
DISPLAY_KEYS = ("status", "label", "company", "person", "object", "record_id", "record_url", "number")
NOT_REGISTERED_MARK = "未登録"
WITHHELD_LABEL = "非通知"

# What must never reach a page or a terminal as it is: control characters (C0, DEL, C1), the line
# and paragraph separators, the bidirectional marks, embeddings, overrides and isolates (after an
# RTL override the text reads backwards: an agent "1001" followed by a crafted number can show as
# a different agent), and lone surrogates (which no page or terminal can encode).
_BEYOND_C0 = r"\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
UNPRINTABLE = re.compile(rf"[\x00-\x1f{_BEYOND_C0}]")
_LEFT_RAW_BY_JSON = re.compile(rf"[{_BEYOND_C0}]")   # json.dumps escapes C0 itself
MARKER = "\ufffd"    # what an unprintable character is shown as


def printable(value: Any, marker: str = MARKER) -> str:
    """``value`` as one trimmed line safe to show: every character of :data:`UNPRINTABLE`
    becomes ``marker``, so nothing can reorder or hide what is shown (what is stored stays
    exact); "" for anything but text. ``marker=""`` cleans typed input instead."""
    if not isinstance(value, str):
        return ""
    return UNPRINTABLE.sub(marker, str.__str__(value).strip()).strip()


def printable_json(value: Any, indent: int | None = 1) -> str:
    """``value`` as JSON (indented, or one line for ``indent=None``), non-ASCII text readable,
    with every character of :data:`UNPRINTABLE` written as a ``\\uXXXX`` escape: it still
    decodes to the exact values, but no terminal reorders it."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    # outside its strings JSON is ASCII, so these are inside one, where an escape means the same
    return _LEFT_RAW_BY_JSON.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


@dataclasses.dataclass(frozen=True)
class Contact:
    """A matched Salesforce record as the screen and the call history name it."""

    object: str | None = None
    record_id: str | None = None
    company: str | None = None
    person: str | None = None
    record_url: str | None = None
    last_modified: str | None = None   # the record's LastModifiedDate, when known

    NAME_FIELDS = ("object", "record_id", "company", "person", "record_url")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> "Contact":
        """The contact in a display, a contacts row or a history row (other keys ignored)."""
        values = values or {}
        return cls(**{f.name: values.get(f.name) for f in dataclasses.fields(cls)})

    def names(self) -> dict[str, str | None]:
        """The columns a call-history row copies from its registered contact."""
        return {name: getattr(self, name) for name in self.NAME_FIELDS}


def display_for(number: PhoneNumber, status: str, contact: Contact | Mapping | None = None) -> dict:
    """The display dict (every key of :data:`DISPLAY_KEYS`) for ``number`` in ``status``.

    ``contact`` names the record; it is used only when ``status`` is "matched".
    """
    if not isinstance(contact, Contact):
        contact = Contact.from_mapping(contact)
    display = dict.fromkeys(DISPLAY_KEYS)
    display["status"], display["number"] = status, number.e164
    if status == MATCHED:
        display.update(contact.names())
    display["label"] = _label(number, status, display)
    return display


def _label(number: PhoneNumber, status: str, display: dict) -> str:
    if status == WITHHELD:
        return WITHHELD_LABEL
    if status == MATCHED:
        names = " / ".join(n for n in (display["company"], display["person"]) if n)
        return names or number.display
    if status == NOT_REGISTERED:
        return f"{number.display} {NOT_REGISTERED_MARK}".strip()
    return number.display


def unmatchable_display(number: PhoneNumber) -> dict | None:
    """The display of a number no lookup can match (withheld, empty, invalid), else None."""
    if number.kind in (NumberKind.WITHHELD, NumberKind.EMPTY):
        return display_for(number, WITHHELD)
    if number.kind != NumberKind.VALID:
        return display_for(number, NOT_REGISTERED)
    return None


def unavailable_display(raw: Any = None, default_region: str = "JP") -> dict:
    """The display when Salesforce cannot say: the number as far as it can be read ("withheld"
    for a withheld one). Never raises."""
    try:
        number = parse_phone(raw if isinstance(raw, str) else None, default_region)
        return unmatchable_display(number) or display_for(number, UNAVAILABLE)
    except Exception:  # the last resort must stay well-formed whatever went wrong
        return dict.fromkeys(DISPLAY_KEYS) | {"status": UNAVAILABLE, "label": ""}
