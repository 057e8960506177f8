"""core/history.py on a real SQLite instance: reading hosts' call objects, one row per call id,
names on registration, re-fetch at most once per 15 s per number."""

import datetime as dt

import pytest

from plugin.call import Call
from helpers import ring

T0 = dt.datetime(2024, 5, 20, 1, 2, 3, tzinfo=dt.timezone.utc)


def _display(e164="+81312345678", status="matched", **more):
    return dict(dict.fromkeys(("company", "person", "object", "record_id", "record_url")),
                status=status, label="x", number=e164, **more)


@pytest.mark.parametrize("value, expected", [
    (None, None), ("", ""), ("  abc  ", "abc"), ("a\x00b\x1bc\u2028", "abc"),
    (b"\xff03", "\ufffd03"), (12, "12"), (True, None), (["x"], None), ("x" * 500, "x" * 200),
    ("\ud800x", "?x"),
])
def test_clean_text(value, expected):
    from core.history import clean_text

    assert clean_text(value) == expected


def test_call_facts_of_a_call():
    from core.history import call_facts

    call = Call(call_id="c1", direction="OUTBOUND", remote_number="03", agent_id="a",
                started_at=T0, ended_at=T0 + dt.timedelta(seconds=61.5), answered=True)
    facts = call_facts(call)
    assert (facts.call_id, facts.direction, facts.duration_seconds) == ("c1", "outbound", 61.5)


@pytest.mark.parametrize("answered, ended, duration", [
    (True, T0 + dt.timedelta(seconds=10), 10.0), (False, T0 + dt.timedelta(seconds=10), 0.0),
    (None, None, None), (True, T0 - dt.timedelta(seconds=5), 0.0),
])
def test_duration(answered, ended, duration):
    from core.history import call_facts

    facts = call_facts(Call(started_at=T0, ended_at=ended, answered=answered))
    assert facts.duration_seconds == duration


def test_naive_datetimes_are_utc_and_garbage_is_now():
    from core.history import call_facts

    facts = call_facts(Call(started_at=dt.datetime(2024, 1, 1), ended_at="garbage"))
    assert facts.started_at.tzinfo is not None and facts.ended_at is None
    before = dt.datetime.now(dt.timezone.utc)
    assert call_facts(object()).started_at >= before


def test_calls_without_an_id_get_a_stable_one():
    from core.history import call_facts

    class NoId:
        remote_number, started_at = "03-1234-5678", T0

    assert call_facts(NoId()).call_id == call_facts(NoId()).call_id
    assert call_facts(NoId()).call_id.startswith("noid-")


def test_record_call_once(store):
    from core import history

    facts = history.call_facts(Call(call_id="c1", remote_number="03-1234-5678", started_at=T0,
                                    ended_at=T0, answered=True))
    assert history.record_call(store, facts, _display(), "03-1234-5678")["call_id"] == "c1"
    assert history.record_call(store, facts, _display(status="unavailable"), None) is None
    assert history.get_call(store, "c1")["status"] == "matched"
    assert history.count_calls(store) == 1


def test_names_come_from_the_registered_contact(store):
    from core import history, registration
    from core.settings import Settings

    facts = [history.call_facts(Call(call_id=f"c{i}", started_at=T0 + dt.timedelta(minutes=i)))
             for i in range(3)]
    for f in facts[:2]:
        history.record_call(store, f, _display(status="not_registered"))
    registration.register(store, "+81312345678", _display(company="社", person="人", object="Contact"))
    assert [history.get_call(store, f"c{i}")["person"] for i in range(2)] == ["人", "人"]
    registration.record_ended_call(store, facts[2], _display(status="unavailable"), None, Settings())
    row = history.get_call(store, "c2")
    assert (row["company"], row["person"], row["status"]) == ("社", "人", "unavailable")
    assert row["registered_at"]
    assert [r["call_id"] for r in history.list_calls(store)] == ["c2", "c1", "c0"]


def test_a_call_ended_while_its_number_is_being_registered_gets_the_names(store):
    """Calls are recorded without the store-wide writer lock on PostgreSQL: a call of a number
    whose registration is under way waits for it, then takes the names it stored."""
    import threading

    from core import history, registration
    from core.settings import Settings
    from core.store import now_iso

    facts = history.call_facts(Call(call_id="during-registration", started_at=T0))
    recorded = threading.Event()

    def record():
        registration.record_ended_call(store, facts, _display(status="unavailable"), None, Settings())
        recorded.set()

    with store.transaction():    # a registration of the number, as registration.register does it
        store.hold_until_commit(registration.number_lock("+81312345678"))
        store.upsert_contact("+81312345678", company="社", person="人", fetched_at=now_iso())
        recorder = threading.Thread(target=record)
        recorder.start()
        assert not recorded.wait(0.5)          # the call waits for the registration to end
    recorder.join(10)
    row = history.get_call(store, "during-registration")
    assert (row["company"], row["person"]) == ("社", "人")


@pytest.mark.parametrize("search, expected", [
    ("人", ["c1", "c0"]), ("+8131234", ["c1", "c0"]), ("%", []), ("_", []), ("\\", []),
    ("' OR 1=1 --", []), ("", ["c1", "c0"]),
])
def test_list_calls_searches_as_a_literal_substring(store, search, expected):
    from core import history, registration

    for i in range(2):
        history.record_call(store, history.call_facts(
            Call(call_id=f"c{i}", started_at=T0 + dt.timedelta(minutes=i))), _display(status="not_registered"))
    registration.register(store, "+81312345678", _display(company="社", person="人", object="Contact"))
    assert [r["call_id"] for r in history.list_calls(store, search=search)] == expected
    assert history.count_calls(store, search=search) == len(expected)


def test_get_call_raises_call_not_found(store):
    from core import history

    with pytest.raises(history.CallNotFound):
        history.get_call(store, "nope")
    assert issubclass(history.CallNotFound, LookupError)


def test_refetch_is_limited_to_once_per_15_seconds_per_number(store):
    from core import registration

    registration.claim_refetch(store, "+81312345678", now=T0)
    with pytest.raises(registration.RefetchLocked) as info:
        registration.claim_refetch(store, "+81312345678", now=T0 + dt.timedelta(seconds=5))
    assert info.value.seconds == pytest.approx(10)
    registration.claim_refetch(store, "+81999999999", now=T0 + dt.timedelta(seconds=5))
    registration.claim_refetch(store, "+81312345678", now=T0 + dt.timedelta(seconds=15))


def test_refetch_call_registers_the_record_now(connected, host, emulator):
    from core import history, registration

    connected.upsert_contact("+81312345678", object="Account", record_id="001OLD", company="古い社名")
    call, display, _ = ring(host, "03-1234-5678")
    assert display["company"] == "古い社名"
    host.hook.on_call_ended(call=call.end())
    fresh = registration.refetch_call(connected, call.call_id)
    assert (fresh["company"], fresh["person"]) == ("株式会社サンプル", "山田 太郎")
    assert history.get_call(connected, call.call_id)["company"] == "株式会社サンプル"
    assert connected.get_contact("+81312345678")["person"] == "山田 太郎"
    assert emulator.api_calls["composite"] == 1
    with pytest.raises(registration.RefetchLocked):
        registration.refetch_call(connected, call.call_id)
    with pytest.raises(history.CallNotFound):
        registration.refetch_call(connected, "no-such-call")


def test_refetch_in_never_mode_names_only_that_call(connected, host):
    from core import history, registration
    from core.settings import save_settings

    save_settings(connected, {"contact_fetch": "never"})
    call = Call(remote_number="06-1111-2222").end()
    host.hook.on_call_ended(call=call)
    display = registration.refetch_call(connected, call.call_id)
    assert display["person"] == "田中 次郎"
    assert history.get_call(connected, call.call_id)["person"] == "田中 次郎"
    assert connected.count_contacts() == 0


def test_refetch_of_a_withheld_call_costs_nothing(connected, host, emulator):
    from core import registration

    call = Call(remote_number="anonymous").end()
    host.hook.on_call_ended(call=call)
    assert registration.refetch_call(connected, call.call_id)["status"] == "withheld"
    assert sum(emulator.api_calls.values()) == 0


def test_refetch_raises_when_salesforce_is_down(connected, host, emulator):
    from core import registration
    from core.salesforce import SalesforceError

    call = Call(remote_number="06-1111-2222").end()
    host.hook.on_call_ended(call=call)
    emulator.faults.http_status = 503
    with pytest.raises(SalesforceError):
        registration.refetch_call(connected, call.call_id)
