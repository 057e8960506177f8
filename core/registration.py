"""Contact registration: when and how a matched number becomes a registered contact.

The ``contact_fetch`` setting is decided here and nowhere else (:func:`queues_numbers`,
:func:`registers_after_call`, :func:`runs_nightly`). Every number waiting for registration is a
row of ``registration_queue`` (this module's table), queued in the same transaction that records
its call (:func:`record_ended_call`). A number leaves the queue in the transaction that registers
it (contacts + the names of its calls, :func:`register`) or that finds it matches nothing
(:func:`unregister`), so work cut short at any point loses nothing and repeats nothing done.

- after a call: :func:`register_after_call` (the display shown on the screen, or one lookup);
- in batches: :func:`drain_queue`, the one loop that works through the queue, used by the retry
  of after-call mode and by the nightly run (core/jobs.py, which holds the lease and the clock);
- on demand: :func:`refetch_call`, at most once per 15 s per number (``refetch_locks``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Callable

from core import activity, errors, history
from core.display import MATCHED, NOT_REGISTERED, Contact, unmatchable_display
from core.phone import parse_phone
from core.resolver import Resolver
from core.settings import AFTER_CALL, NEVER, NIGHTLY, Settings, load_settings
from core.store import now_iso

BATCH_SIZE = 100          # numbers per resolve_many batch
REFETCH_INTERVAL = 15.0   # seconds between two re-fetches of one number
UNSTORED_OPERATION = "on_call_ended"   # error-log operation of a call refused for its id


class RefetchLocked(Exception):
    "This number was re-fetched a moment ago; try again in a few seconds."

    def __init__(self, seconds: float):
        super().__init__(self.__doc__)
        self.seconds = seconds


# ---------------------------------------------------------------------------------------------
# the contact_fetch decision
# ---------------------------------------------------------------------------------------------

def queues_numbers(settings: Settings) -> bool:
    """Whether ended calls queue their numbers for registration (any mode but "never")."""
    return settings.contact_fetch != NEVER


def registers_after_call(settings: Settings) -> bool:
    """Whether a number is registered right after its call ("after_call")."""
    return settings.contact_fetch == AFTER_CALL


def runs_nightly(settings: Settings) -> bool:
    """Whether the queue is worked through by the nightly run ("nightly")."""
    return settings.contact_fetch == NIGHTLY


# ---------------------------------------------------------------------------------------------
# the queue
# ---------------------------------------------------------------------------------------------

def _queue(store, numbers: list[str], day: str) -> None:
    """Queue ``numbers`` for ``day``; a number already waiting keeps its row."""
    now = now_iso()
    with store.transaction() as db:
        db.conn.executemany(
            "INSERT INTO registration_queue (e164, day, queued_at, attempts) "
            "VALUES (?, ?, ?, 0) ON CONFLICT (e164) DO NOTHING", [(e164, day, now) for e164 in numbers])


def _dequeue(store, e164: str) -> None:
    with store.transaction() as db:
        db.execute("DELETE FROM registration_queue WHERE e164 = ?", [e164])


def queued_numbers(store, limit: int = BATCH_SIZE, after: str = "",
                   queued_before: str | None = None) -> list[str]:
    """Waiting numbers in E.164 order, after ``after``; only rows queued before
    ``queued_before`` (ISO time) when given."""
    sql = "SELECT e164 FROM registration_queue WHERE e164 > ?"
    params: list = [after]
    if queued_before:
        sql += " AND queued_at < ?"
        params.append(queued_before)
    sql += " ORDER BY e164 LIMIT ?"
    return [r[0] for r in store.conn.execute(sql, params + [int(limit)])]


def queue_size(store) -> int:
    """How many numbers wait for registration."""
    return store.conn.execute("SELECT count(*) FROM registration_queue").fetchone()[0]


def queue_numbers_called(store, day: str, settings: Settings) -> int:
    """Queue every number called on the local ``day`` that has no registered contact (the
    nightly run's start); returns how many numbers that day had. Joins the caller's transaction."""
    first = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), tzinfo=settings.zone())
    with store.transaction():
        numbers = history.numbers_called(store, now_iso(first), now_iso(first + dt.timedelta(days=1)))
        _queue(store, sorted(set(numbers) - store.registered_numbers(numbers)), day)
    return len(numbers)


def _note_failure(store, numbers: list[str], exc: BaseException) -> None:
    text = f"{type(exc).__name__}: {getattr(exc, 'code', '')}"[:200]
    with store.transaction() as db:
        db.conn.executemany(
            "UPDATE registration_queue SET attempts = attempts + 1, last_error = ? WHERE e164 = ?",
            [(text, n) for n in numbers])


# ---------------------------------------------------------------------------------------------
# registering and unregistering one number
# ---------------------------------------------------------------------------------------------

def number_lock(e164: str) -> str:
    """The name of the lock that keeps recording a call of ``e164`` and registering ``e164``
    apart (:meth:`core.store.Store.hold_until_commit`)."""
    return f"number {e164}"


def register(store, e164: str, display: dict, resolver: Resolver | None = None) -> Contact:
    """Register the matched ``display`` as the contact of ``e164``, name every call of that
    number and take it out of the queue, in one transaction; returns the contact. With a
    ``resolver`` that found the match, the record's LastModifiedDate is kept too."""
    display = dict(display, number=e164)
    contact = (resolver.contact_for(display) if resolver is not None else None) \
        or Contact.from_mapping(display)
    with store.transaction():
        store.hold_until_commit(number_lock(e164))   # a call of it being recorded finishes first
        row = store.upsert_contact(e164, **dataclasses.asdict(contact))
        history.fill_names(store, e164, contact, row["fetched_at"])
        _dequeue(store, e164)
    return contact


def unregister(store, e164: str) -> None:
    """``e164`` matches nothing (any more): forget its contact and take it out of the queue."""
    with store.transaction():
        store.delete_contact(e164)
        _dequeue(store, e164)


def settle(store, displays: dict[str, dict | None], resolver: Resolver | None = None) -> int:
    """Register each matched number, drop the unmatched ones, keep the undecided (None or
    unavailable) queued; returns how many were registered."""
    registered = 0
    for e164, display in displays.items():
        status = (display or {}).get("status")
        if status == MATCHED:
            register(store, e164, display, resolver)
            registered += 1
        elif status == NOT_REGISTERED:
            unregister(store, e164)
    return registered


# ---------------------------------------------------------------------------------------------
# after a call
# ---------------------------------------------------------------------------------------------

def record_ended_call(store, facts: history.CallFacts, shown: dict, number_display: str | None,
                      settings: Settings) -> tuple[dict | None, bool]:
    """Record the ended call in the history (once per call id), queue its Task when calls are
    logged as Tasks and, unless the number is registered already or the mode is "never", queue
    the number; one transaction.

    Returns (the new history row or None for a repeat, whether the number was queued). A
    registered number's call is named from its contact at once. A call whose id cannot be
    stored (``facts.refused``) is not recorded: its error-log row (CALL_ID_UNSTORABLE) says why.
    """
    if facts.call_id is None:
        errors.report_failure(store, UNSTORED_OPERATION, "CALL_ID_UNSTORABLE", expected="plugin",
                              detail=facts.refused)
        return None, False
    e164 = (shown or {}).get("number")
    # not the store-wide writer lock: every write here is an insert keyed on the call id or the
    # number, so the calls of many nodes are recorded side by side; only a registration of the
    # same number (which names its earlier calls) must wait or be waited for
    with store.transaction(serialized=False):
        if e164:
            store.hold_until_commit(number_lock(e164))
        found = store.get_contact(e164) if e164 else None
        contact = Contact.from_mapping(found) if found else None
        row = history.record_call(store, facts, shown, number_display, contact,
                                  registered_at=found["fetched_at"] if found else None)
        queued = bool(row and e164 and found is None and queues_numbers(settings))
        if queued:
            _queue(store, [e164], settings.local_day(facts.started_at))
        if row and activity.wanted(settings):
            activity.enqueue(store, facts.call_id, shown)
    return row, queued


def register_after_call(store, resolver: Resolver, e164: str, shown: dict | None = None,
                        call_id: str | None = None) -> bool:
    """Register ``e164`` right after its call; True when it got registered.

    The display shown on the screen is reused when it came from a live answer (no API call);
    otherwise Salesforce is asked. A failure is logged and the number stays queued for a retry.
    """
    try:
        display = shown if (shown or {}).get("status") in (MATCHED, NOT_REGISTERED) \
            else resolver.resolve(e164)
    except Exception as exc:
        errors.report_failure(store, "register", exc, call_id=call_id)
        _note_failure(store, [e164], exc)
        return False
    errors.close_salesforce_incidents(store)
    return settle(store, {e164: display}, resolver) == 1


# ---------------------------------------------------------------------------------------------
# working through the queue
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Drained:
    """What one :func:`drain_queue` did."""

    batches: int = 0
    registered: int = 0
    unmatched: int = 0
    failed: str | None = None     # the catalogue code of the failure that stopped it


def drain_queue(store, resolver: Resolver, operation: str, batch_size: int = BATCH_SIZE,
                min_age: float = 0.0, after_batch: Callable[[Drained], None] | None = None) -> Drained:
    """Register every queued number, ``batch_size`` at a time through ``resolve_many``.

    Stops at the first failure, which is logged under ``operation`` ("register", "nightly")
    and noted on the batch's queue rows, leaving the rest queued. ``min_age`` (seconds) leaves
    alone numbers queued so recently that their own after-call registration is probably still
    running; ``after_batch`` is called after each batch (the nightly run renews its lease).
    """
    done = Drained()
    before = now_iso(dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=min_age)) \
        if min_age else None
    after = ""
    while numbers := queued_numbers(store, batch_size, after, before):
        try:
            displays = resolver.resolve_many(numbers)
        except Exception as exc:
            done.failed = errors.report_failure(store, operation, exc).code
            _note_failure(store, numbers, exc)
            return done
        errors.close_salesforce_incidents(store)
        done.batches += 1
        done.registered += settle(store, {n: displays.get(n) for n in numbers}, resolver)
        done.unmatched += sum((displays.get(n) or {}).get("status") == NOT_REGISTERED
                              for n in numbers)
        after = numbers[-1]
        if after_batch:
            after_batch(done)
    return done


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
        db.execute("INSERT INTO refetch_locks (e164, at) VALUES (?, ?) "
                   "ON CONFLICT (e164) DO UPDATE SET at = excluded.at",
                   [e164, now_iso(now)])


def refetch_call(store, call_id: str, resolver: Resolver | None = None) -> dict:
    """Re-resolve the number of one recorded call against Salesforce now; returns the display.

    A match is registered (and named in every call of that number) unless ``contact_fetch`` is
    "never", in which case only this call's row gets the names. A number Salesforce no longer
    matches loses its registered contact.

    :raises history.CallNotFound: when the call is not in the history
    :raises RefetchLocked: when the number was re-fetched less than 15 seconds ago
    :raises core.salesforce.SalesforceError: when Salesforce cannot answer
    """
    row = history.get_call(store, call_id)
    settings = load_settings(store)
    number = parse_phone(row["remote_number"], settings.default_region)
    unmatchable = unmatchable_display(number)
    if unmatchable is not None:
        return unmatchable
    claim_refetch(store, number.e164)
    resolver = resolver or Resolver(store)
    display = resolver.lookup(number)  # past the contacts and the no-match cache
    if display.get("status") != MATCHED:
        unregister(store, number.e164)
    elif queues_numbers(settings):
        register(store, number.e164, display, resolver)
    else:
        history.name_call(store, call_id, Contact.from_mapping(display))
    return display
