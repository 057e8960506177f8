"""The one display shape (DESIGN §2) and the registered contact it is drawn from.

Every screen the hooks hand to a host is a dict with exactly :data:`DISPLAY_KEYS`; every matched
record, whether it comes from Salesforce, the local contacts or a history row, travels as a
:class:`Contact`. Both are defined here once and nowhere else.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from core.phone import NumberKind, PhoneNumber, parse_phone

MATCHED, NOT_REGISTERED, WITHHELD, UNAVAILABLE = "matched", "not_registered", "withheld", "unavailable"
DISPLAY_KEYS = ("status", "label", "company", "person", "object", "record_id", "record_url", "number")
NOT_REGISTERED_MARK = "未登録"
WITHHELD_LABEL = "非通知"


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
