"""Caller resolution: a phone number, in any format, to the right Salesforce record.

The rules are DESIGN.md §3. The order of the work in :meth:`Resolver.resolve`, cheapest first:

1. a number that cannot be matched (withheld, empty, garbage, injection) answers at once;
2. the phone index (core/index.py), when it is on and built: every stored form of the number,
   the DESIGN §3 winner among all candidates (zero API calls);
3. a registered contact answers from the store (zero API calls);
4. a remembered no-match answers from the store (zero API calls);
5. otherwise ONE composite request holding three SOQL queries (Contact, Account, Lead), each
   ``WHERE Phone IN (...) OR MobilePhone IN (...)`` over every format Salesforce may hold the
   number in (``stored_variants``). Why composite + SOQL and not SOSL: docs/resolver.md. What
   it finds is written back to the index.

SOQL is built only with ``simple_salesforce.format_soql`` on the constant statements of
``LOOKUP_SOQL``, so nothing a caller sends is ever part of the statement's syntax.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from typing import Callable, Iterable

from simple_salesforce.format import format_soql, quote_soql_value

from core import index
from core.display import MATCHED, NOT_REGISTERED, Contact, display_for, unmatchable_display
from core.phone import NumberKind, PhoneNumber, parse_phone, stored_matches, stored_variants
from core.salesforce import Connection, connection_for, raise_for_subresponse
from core.settings import Settings, load_settings

OBJECTS = index.OBJECTS   # priority order (DESIGN §3.1)

# Salesforce limits that shape the queries (reference/salesforce-wire.md §3.1, §2.9).
SOQL_MAX_CHARS = 100_000          # a longer statement fails with QUERY_TOO_COMPLICATED
SOQL_BUDGET_CHARS = SOQL_MAX_CHARS * 9 // 10   # what the batch packer fills: a 10 % margin
PHONE_FIELD_LENGTH = 40           # a phone field holds at most 40 characters
COMPOSITE_MAX_QUERIES = 5         # query sub-requests allowed in one composite request
LIVE_LIMIT = 200                  # rows per object for one live lookup (newest first)
BATCH_NUMBERS_PER_CALL = 100      # the nightly run's budget: one call per 100 numbers...
BATCH_MIN_CALLS = 3               # ...but never fewer than this (one per object tier)
SMALL_BATCH = 60                  # up to this many numbers may fit in one composite request
RECENT_MAX = 10_000               # LastModifiedDate of recent matches, kept for register()


# ---------------------------------------------------------------------------------------------
# the queries
# ---------------------------------------------------------------------------------------------

# The whole statement per (object, org has person accounts); format_soql fills in only the quoted
# variants (and the limit), so nothing a caller sends is ever part of the syntax. Person-account
# fields are named only when the org has person accounts: an org without them answers
# INVALID_FIELD to any query that names one. In a person-account org every person account has a
# hidden Contact; it must match as the Account (person = Name), not as a Contact of itself.
LOOKUP_SOQL = {
    ("Contact", False):
        "SELECT Id, Name, Phone, MobilePhone, Account.Name, LastModifiedDate FROM Contact"
        " WHERE (Phone IN {variants} OR MobilePhone IN {variants})",
    ("Contact", True):
        "SELECT Id, Name, Phone, MobilePhone, Account.Name, LastModifiedDate FROM Contact"
        " WHERE (Phone IN {variants} OR MobilePhone IN {variants}) AND IsPersonAccount = false",
    ("Account", False):
        "SELECT Id, Name, Phone, LastModifiedDate FROM Account"
        " WHERE (Phone IN {variants})",
    ("Account", True):
        "SELECT Id, Name, Phone, PersonMobilePhone, IsPersonAccount, LastModifiedDate FROM Account"
        " WHERE (Phone IN {variants} OR PersonMobilePhone IN {variants})",
    ("Lead", False):
        "SELECT Id, Name, Company, Phone, MobilePhone, LastModifiedDate FROM Lead"
        " WHERE (Phone IN {variants} OR MobilePhone IN {variants}) AND IsConverted = false",
    ("Lead", True):
        "SELECT Id, Name, Company, Phone, MobilePhone, LastModifiedDate FROM Lead"
        " WHERE (Phone IN {variants} OR MobilePhone IN {variants}) AND IsConverted = false",
}
NEWEST_FIRST_SOQL = " ORDER BY LastModifiedDate DESC, Id ASC LIMIT {limit}"


def build_query(object_name: str, variants: list[str], person_accounts: bool,
                limit: int | None = None) -> str:
    """The SOQL finding records of ``object_name`` whose phone fields equal one of ``variants``.

    :raises ValueError: ``object_name`` is not one of OBJECTS
    """
    template = LOOKUP_SOQL.get((object_name, person_accounts))
    if template is None:
        raise ValueError(f"not a matched object: {object_name}")
    if limit:
        template += NEWEST_FIRST_SOQL
    return format_soql(template, variants=list(variants), limit=limit)


def query_variants(number: PhoneNumber, exhaustive: bool) -> list[str]:
    """The stored-format variants worth asking for: unique, and short enough to be stored."""
    seen: dict[str, None] = {}
    for value in stored_variants(number, exhaustive=exhaustive):
        if value and len(value) <= PHONE_FIELD_LENGTH:
            seen.setdefault(value, None)
    return list(seen)


# ---------------------------------------------------------------------------------------------
# choosing the record
# ---------------------------------------------------------------------------------------------

def record_phones(object_name: str, record: dict) -> list[str | None]:
    """The values of the phone fields a record was matched on."""
    return [record.get(field) for field in index.PHONE_FIELDS[object_name]]


def newest(records: list[dict]) -> dict:
    """The record with the newest LastModifiedDate; ties go to the smallest Id."""
    by_id = sorted(records, key=lambda r: r.get("Id") or "")
    # API datetimes are all "...+0000" with fixed width, so they sort as strings
    return sorted(by_id, key=lambda r: r.get("LastModifiedDate") or "", reverse=True)[0]


def pick(candidates: dict[str, list[dict]], number: PhoneNumber) -> tuple[str, dict] | None:
    """(object, record) winning for ``number`` among ``candidates`` (object -> records), by
    DESIGN §3: first object in priority order with a record whose stored phone is the number."""
    for object_name in OBJECTS:
        matching = [r for r in candidates.get(object_name, ())
                    if any(stored_matches(v, number) for v in record_phones(object_name, r))]
        if matching:
            return object_name, newest(matching)
    return None


def contact_of(object_name: str, record: dict, record_url: str) -> Contact:
    """A matched Salesforce record as a contact (company/person by DESIGN §3.4)."""
    company, person = index.names_of(object_name, record)
    return Contact(object=object_name, record_id=record.get("Id"), company=company,
                   person=person, record_url=record_url,
                   last_modified=record.get("LastModifiedDate"))


# ---------------------------------------------------------------------------------------------
# the resolver
# ---------------------------------------------------------------------------------------------

class Resolver:
    """Turns caller numbers into displays; safe to share between threads.

    ``connection_factory(store)`` gives the Salesforce connection and is called only when
    Salesforce must be asked (a number neither registered nor remembered as unknown).
    """

    def __init__(self, store, connection_factory: Callable[..., Connection] = connection_for):
        self.store = store
        self.connection_factory = connection_factory
        self._recent: OrderedDict[str, str | None] = OrderedDict()
        self._lock = threading.Lock()
        self._sent = threading.local()   # requests resolve_many sent, per thread (see batch_requests)

    # -- settings ------------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The store's current settings (cached by core.settings, hot path)."""
        return load_settings(self.store)

    def parse(self, raw: str | None) -> PhoneNumber:
        """``raw`` parsed with the configured default region (never raises)."""
        return parse_phone(raw, self.settings.default_region)

    # -- one number ------------------------------------------------------------------------------

    def resolve(self, raw: str | None) -> dict:
        """The display for the caller number ``raw`` (DESIGN §2), by the rules of DESIGN §3.

        Costs no API call for unmatchable numbers, registered contacts and remembered
        no-matches, else exactly one (a composite request). A match is not registered: call
        :meth:`register` when the registration setting says so.

        :raises core.salesforce.SalesforceError: (a subclass) when Salesforce must be asked and
            cannot answer; the caller shows ``display_for(number, UNAVAILABLE)`` meanwhile
        """
        number = self.parse(raw)
        return self.cached(number) or self.lookup(number)

    def cached(self, number: PhoneNumber) -> dict | None:
        """The display answerable without Salesforce (unmatchable, in the phone index, registered,
        remembered), or None."""
        display = unmatchable_display(number)
        if display is not None:
            return display
        if index.usable(self.store, self.settings):
            indexed = self.from_index(number)
            if indexed is not None:
                return indexed
        contact = self.store.get_contact(number.e164)
        if contact is not None:
            return display_for(number, MATCHED, contact)
        if self.store.is_remembered_no_match(number.e164):
            return display_for(number, NOT_REGISTERED)
        return None

    def from_index(self, number: PhoneNumber) -> dict | None:
        """The display of ``number``'s winner in the phone index, or None when it holds none."""
        contact = index.find(self.store, number.e164)
        if contact is None:
            return None
        self._remember_modified(number.e164, contact.last_modified)
        return display_for(number, MATCHED, contact)

    def lookup(self, number: PhoneNumber | str) -> dict:
        """Ask Salesforce now, past the registered contacts and the no-match cache: one
        composite request of three queries (none for an unmatchable number).

        A no-match is remembered for the no-match TTL setting.

        :raises core.salesforce.SalesforceError: (a subclass) when Salesforce cannot answer
        """
        if not isinstance(number, PhoneNumber):
            number = self.parse(number)
        display = unmatchable_display(number)
        if display is not None:
            return display
        connection = self.connection_factory(self.store)
        variants = query_variants(number, exhaustive=True)
        person_accounts = connection.org.person_accounts
        subrequests = [connection.query_subrequest(name, build_query(name, variants, person_accounts,
                                                                    limit=LIVE_LIMIT))
                       for name in OBJECTS]
        candidates = {}
        for name, response in zip(OBJECTS, connection.composite(subrequests)):
            raise_for_subresponse(response)
            candidates[name] = list(response["body"].get("records", []))
        winner = pick(candidates, number)
        if winner is not None and index.usable(self.store, self.settings):
            # the index missed a record Salesforce has (created since the last round)
            index.write_back(self.store, winner[0], [winner[1]])
        return self._display(connection, number, winner)

    def _display(self, connection: Connection, number: PhoneNumber, winner,
                 remember_no_match: bool = True) -> dict:
        if winner is None:
            if remember_no_match:
                self.store.remember_no_match(number.e164, self.settings.no_match_ttl_seconds)
            return display_for(number, NOT_REGISTERED)
        object_name, record = winner
        contact = contact_of(object_name, record, connection.record_url(object_name, record["Id"]))
        self._remember_modified(number.e164, contact.last_modified)
        return display_for(number, MATCHED, contact)

    def _remember_modified(self, e164: str, last_modified: str | None) -> None:
        with self._lock:
            self._recent[e164] = last_modified
            self._recent.move_to_end(e164)
            while len(self._recent) > RECENT_MAX:
                self._recent.popitem(last=False)

    # -- registration ----------------------------------------------------------------------------

    def contact_for(self, display: dict) -> Contact | None:
        """The contact a matched ``display`` names, with the record's LastModifiedDate when this
        resolver found it; None when the display is not a match."""
        if not display or display.get("status") != MATCHED or not display.get("number"):
            return None
        with self._lock:
            last_modified = self._recent.get(display["number"])
        return dataclasses.replace(Contact.from_mapping(display), last_modified=last_modified)

    def register(self, display: dict) -> dict | None:
        """Register a matched display as a local contact; returns the stored row, or None when
        not matched. (The plugin registers through core.registration, which also names the
        calls of the number.)"""
        contact = self.contact_for(display)
        if contact is None:
            return None
        return self.store.upsert_contact(display["number"], **dataclasses.asdict(contact))

    # -- many numbers ----------------------------------------------------------------------------

    def resolve_many(self, raws: Iterable[str | None], use_cache: bool = False) -> dict[str, dict]:
        """``{e164: display}`` for the VALID numbers among ``raws`` (others are left out).

        Many numbers share each query (IN lists sized under the SOQL length limit), up to five
        queries share one composite request, and pages are followed; see :class:`BatchLookup`
        for the passes and the call budget (at most 1 call per 100 numbers, at least 3).

        With ``use_cache`` False (the nightly run) registered contacts and remembered no-matches
        are asked again, so the registered names are refreshed. When the phone index is on and
        built, every number is answered from it (zero API calls): it holds the whole org.

        :raises core.salesforce.SalesforceError: (a subclass) when Salesforce cannot answer
        """
        numbers: dict[str, PhoneNumber] = {}
        for raw in raws:
            number = self.parse(raw)
            if number.kind == NumberKind.VALID:
                numbers.setdefault(number.e164, number)
        results: dict[str, dict] = {}
        if index.usable(self.store, self.settings):
            return {e164: self.from_index(number) or display_for(number, NOT_REGISTERED)
                    for e164, number in numbers.items()}
        if use_cache:
            for e164, number in numbers.items():
                display = self.cached(number)
                if display is not None:
                    results[e164] = display
        todo = [n for e164, n in numbers.items() if e164 not in results]
        if todo:
            connection = self.connection_factory(self.store)
            batch = BatchLookup(connection, todo)
            try:
                winners = batch.run()
            finally:  # a failed request was still sent (and charged)
                self._sent.count = self.batch_requests() + batch.calls
            for number in todo:
                results[number.e164] = self._display(connection, number, winners.get(number.e164),
                                                     remember_no_match=False)
        return results

    def batch_requests(self) -> int:
        """How many requests :meth:`resolve_many` has sent to Salesforce from this thread so
        far (composite requests and the query pages after them): a caller takes the difference
        around its own work, which other threads' lookups do not disturb."""
        return getattr(self._sent, "count", 0)


class BatchLookup:
    """Many numbers looked up in few calls (the nightly run).

    - A handful of numbers whose every variant (odd hyphenations included) fits in one query
      per object: ONE composite request, as for a single live lookup.
    - Otherwise two passes. First the common stored formats (``stored_variants``), object by
      object in priority order: Contact for every number, Account for those Contact did not
      match, Lead for the rest (the same winners as asking all three objects for everyone, with
      fewer queries). Then the numbers still unmatched are asked again with the odd
      hyphenations only, while the call budget lasts: one call per 100 numbers (at least 3), so
      a day of mostly unknown callers cannot eat the org's API allowance.

    A pass whose numbers fit in one query per object sends the three queries in one composite.
    """

    def __init__(self, connection: Connection, numbers: list[PhoneNumber]):
        self.connection = connection
        self.numbers = numbers
        self.person_accounts = connection.org.person_accounts
        self.budget = max(BATCH_MIN_CALLS, -(-len(numbers) // BATCH_NUMBERS_PER_CALL))
        self.calls = 0
        self.winners: dict[str, tuple[str, dict]] = {}

    def run(self) -> dict[str, tuple[str, dict]]:
        """``{e164: (object, record)}`` for the numbers that matched."""
        if len(self.numbers) <= SMALL_BATCH:
            every = {n.e164: query_variants(n, exhaustive=True) for n in self.numbers}
            if len(self._batches(self.numbers, every)) == 1:
                self._pass(self.numbers, every, limited=False)
                return self.winners
        common = {n.e164: query_variants(n, exhaustive=False) for n in self.numbers}
        self._pass(self.numbers, common, limited=False)
        rest = [n for n in self.numbers if n.e164 not in self.winners]
        if rest and self.calls < self.budget:
            # computed for the unmatched only: the exhaustive lists are long
            odd = {n.e164: _without(query_variants(n, exhaustive=True), common.pop(n.e164))
                   for n in rest}
            common.clear()
            self._pass(rest, odd, limited=True)
        return self.winners

    def _batches(self, numbers: list[PhoneNumber], variants: dict[str, list[str]]) -> list[list[str]]:
        return list(pack([variants[n.e164] for n in numbers], self.person_accounts))

    def _pass(self, numbers: list[PhoneNumber], variants: dict[str, list[str]], limited: bool) -> None:
        todo = [n for n in numbers if variants[n.e164]]
        batches = self._batches(todo, variants)
        if len(batches) == 1:  # all three objects fit in one composite request
            jobs = [(name, batches[0]) for name in OBJECTS]
            self._settle(todo, variants, self._records(jobs, limited))
            return
        for name in OBJECTS:
            if not todo:
                return
            jobs = [(name, batch) for batch in self._batches(todo, variants)]
            self._settle(todo, variants, self._records(jobs, limited))
            todo = [n for n in todo if n.e164 not in self.winners]

    def _settle(self, numbers: list[PhoneNumber], variants: dict[str, list[str]],
                records: dict[str, list[dict]]) -> None:
        """Record the winner of each number among ``records`` (object -> records)."""
        indexes = {name: _index_by_phone(name, recs) for name, recs in records.items()}
        for number in numbers:
            candidates = {name: _records_for(index, variants[number.e164])
                          for name, index in indexes.items()}
            winner = pick(candidates, number)
            if winner is not None:
                self.winners[number.e164] = winner

    def _records(self, jobs: list[tuple[str, list[str]]], limited: bool) -> dict[str, list[dict]]:
        """The records found by the (object, variants) queries, five per composite request;
        with ``limited``, no request beyond the call budget."""
        records: dict[str, list[dict]] = {name: [] for name, _ in jobs}
        for start in range(0, len(jobs), COMPOSITE_MAX_QUERIES):
            if limited and self.calls >= self.budget:
                break
            chunk = jobs[start:start + COMPOSITE_MAX_QUERIES]
            subrequests = [self.connection.query_subrequest(
                f"{name}{start + i}", build_query(name, batch, self.person_accounts))
                for i, (name, batch) in enumerate(chunk)]
            self.calls += 1
            for (name, _), response in zip(chunk, self.connection.composite(subrequests)):
                raise_for_subresponse(response)
                records[name] += self._all_records(response["body"])
        return records

    def _all_records(self, body: dict) -> list[dict]:
        records = list(body.get("records", []))
        while not body.get("done", True) and body.get("nextRecordsUrl"):
            self.calls += 1
            body = self.connection.query_more(body["nextRecordsUrl"])
            records += body.get("records", [])
        return records


def pack(variant_lists: list[list[str]], person_accounts: bool) -> Iterable[list[str]]:
    """The variant lists of consecutive numbers joined into batches, each as long as fits in a
    query under the SOQL length budget (a 10 % margin under the 100,000-character limit)."""
    overhead = max(len(build_query(name, [], person_accounts)) for name in OBJECTS)
    fields = max(LOOKUP_SOQL[name, person_accounts].count("{variants}") for name in OBJECTS)
    batch: list[str] = []
    used = 0
    for mine in variant_lists:
        # each value appears once per phone field, quoted and followed by a comma
        cost = sum(len(quote_soql_value(v)) + 1 for v in mine)
        if batch and overhead + fields * (used + cost) > SOQL_BUDGET_CHARS:
            yield batch
            batch, used = [], 0
        batch += mine
        used += cost
    if batch:
        yield batch


def _without(values: list[str], known: list[str]) -> list[str]:
    seen = set(known)
    return [v for v in values if v not in seen]


def _index_by_phone(object_name: str, records: list[dict]) -> dict[str, list[dict]]:
    index: dict[str, list[dict]] = {}
    for record in records:
        for value in record_phones(object_name, record):
            if value:
                index.setdefault(value.lower(), []).append(record)
    return index


def _records_for(index: dict[str, list[dict]], variants: list[str]) -> list[dict]:
    found = {}
    for value in variants:
        for record in index.get(value.lower(), ()):
            found[record["Id"]] = record
    return list(found.values())
