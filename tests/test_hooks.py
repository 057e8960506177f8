"""The hooks as a host sees them: loaded through the real entry point into a real PluginManager,
answering from the emulator over real HTTPS, recording into a real SQLite instance folder.
"""

import inspect
import re

import pytest

import plugin.hookspecs
from helpers import DISPLAY_KEYS, ROOT, SAMPLE, end, ring, runtime
from plugin.call import Call


def hook_names() -> list[str]:
    """The hooks plugin/hookspecs.py specifies."""
    return [name for name, fn in inspect.getmembers(plugin.hookspecs, inspect.isfunction)
            if hasattr(fn, "telephony_spec")]


# ---------------------------------------------------------------------------------------------
# every hook documented and tested (datasette's habit)
# ---------------------------------------------------------------------------------------------

def test_the_host_contract_has_three_hooks():
    assert sorted(hook_names()) == ["on_call_ended", "on_incoming_call", "on_outgoing_call"]


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_is_documented(name):
    docs = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    assert re.search(rf"^## `?{name}\(call\)`?", docs, re.MULTILINE), f"docs/hooks.md lacks {name}"
    doc = inspect.getdoc(getattr(plugin.hookspecs, name))
    assert ":param call:" in doc and ":returns:" in doc, f"{name}'s spec docstring is incomplete"


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_is_tested(name):
    tests = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_hooks*.py"))
    assert f"def test_hook_{name}" in tests, f"no test_hook_{name}"


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_is_implemented_with_the_specs_arguments(name):
    import plugin.hooks

    impl = getattr(plugin.hooks, name)
    assert hasattr(impl, "telephony_impl")
    spec = inspect.signature(getattr(plugin.hookspecs, name))
    assert set(inspect.signature(impl).parameters) <= set(spec.parameters)


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------

def test_plugin_is_found_through_its_entry_point(host):
    import plugin.hooks

    assert host.get_plugin("salesforce") is plugin.hooks
    for name in hook_names():
        impls = getattr(host.hook, name).get_hookimpls()
        assert [i.plugin_name for i in impls] == ["salesforce"], name


def test_the_plugin_implements_exactly_the_specified_hooks():
    import plugin.hooks

    implemented = [name for name, fn in inspect.getmembers(plugin.hooks, callable)
                   if hasattr(fn, "telephony_impl")]
    # a misspelt or extra hook implementation would never be called by a host
    assert sorted(implemented) == sorted(hook_names())


def test_screen_hooks_are_firstresult():
    for name in ("on_incoming_call", "on_outgoing_call"):
        assert getattr(plugin.hookspecs, name).telephony_spec["firstresult"] is True
    assert not plugin.hookspecs.on_call_ended.telephony_spec["firstresult"]


# ---------------------------------------------------------------------------------------------
# the hooks
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dialled, e164", [
    ("+81312345678", "+81312345678"),
    ("03-1234-5678", "+81312345678"),
    ("０３－１２３４－５６７８", "+81312345678"),
    ("(03) 1234 5678", "+81312345678"),
    ("090-1111-2222", "+819011112222"),
    ("09033334444", "+819033334444"),
    ("06-1111-2222", "+81611112222"),
    ("+1 415 555 1212", "+14155551212"),
])
def test_hook_on_incoming_call(connected, host, emulator, dialled, e164):
    call, display, took = ring(host, dialled)
    company, person, object_name = SAMPLE[e164]
    assert set(display) == DISPLAY_KEYS
    assert display["status"] == "matched"
    assert (display["company"], display["person"], display["object"]) == (company, person, object_name)
    assert display["number"] == e164
    assert display["record_url"].startswith(emulator.login_url + "/lightning/r/")
    assert display["label"] == " / ".join(n for n in (company, person) if n)
    assert emulator.api_calls["composite"] == 1
    assert took < 0.8


def test_hook_on_outgoing_call(connected, host, emulator):
    call, display, _ = ring(host, "06-1111-2222", direction="outbound", agent_id="agent-7")
    assert display["status"] == "matched"
    assert (display["company"], display["person"]) == ("田中工業", "田中 次郎")
    end(host, call)
    from core import history
    row = history.get_call(connected, call.call_id)
    assert (row["direction"], row["agent_id"], row["label"]) == ("outbound", "agent-7", "田中工業 / 田中 次郎")


def test_hook_on_call_ended(connected, host):
    from core import history

    call, display, _ = ring(host, "03-1234-5678", local_number="0120-000-000", agent_id="a1")
    assert end(host, call, duration=95.5) == []
    row = history.get_call(connected, call.call_id)
    assert row["direction"] == "inbound" and row["remote_number"] == "03-1234-5678"
    assert row["e164"] == "+81312345678" and row["display_number"] == "03-1234-5678"
    assert row["local_number"] == "0120-000-000" and row["agent_id"] == "a1"
    assert row["answered"] == 1 and row["duration_seconds"] == 95.5
    assert row["ended_at"] > row["started_at"]
    assert (row["status"], row["label"]) == ("matched", display["label"])
    assert row["record_id"] == display["record_id"]


def test_a_repeated_end_event_changes_nothing(connected, host):
    from core import history

    call, _, _ = ring(host, "03-1234-5678")
    end(host, call)
    before = history.get_call(connected, call.call_id)
    call.answered, call.agent_id = False, "someone else"
    for _ in range(3):
        host.hook.on_call_ended(call=call)
    assert history.get_call(connected, call.call_id) == before
    assert history.count_calls(connected) == 1


def test_a_missed_call_is_recorded_with_zero_duration(connected, host):
    from core import history

    call, _, _ = ring(host, "06-1111-2222")
    end(host, call, answered=False, duration=12)
    row = history.get_call(connected, call.call_id)
    assert (row["answered"], row["duration_seconds"]) == (0, 0.0)


def test_a_call_never_screened_by_this_process_is_still_recorded(connected, host):
    from core import history

    call = Call(remote_number="03-1234-5678").end(duration=5)
    host.hook.on_call_ended(call=call)
    row = history.get_call(connected, call.call_id)
    assert row["e164"] == "+81312345678" and row["status"] == "unavailable"


def test_registered_contacts_answer_without_salesforce(connected, host, emulator):
    connected.upsert_contact("+81312345678", object="Account", record_id="001X", company="登録済み商事",
                             person=None, record_url="https://example/001X")
    _, display, took = ring(host, "03-1234-5678")
    assert (display["status"], display["company"]) == ("matched", "登録済み商事")
    assert emulator.api_calls["composite"] == 0 and took < 0.1


def test_an_unknown_number_is_not_registered_and_remembered(connected, host, emulator):
    _, display, _ = ring(host, "03-9876-0000")
    assert display["status"] == "not_registered" and display["label"] == "03-9876-0000 未登録"
    _, again, _ = ring(host, "03-9876-0000")
    assert again == display and emulator.api_calls["composite"] == 1


@pytest.mark.parametrize("number", ["anonymous", "", None, "非通知", "Private", "P"])
def test_withheld_numbers_answer_without_lookup(connected, host, emulator, number):
    _, display, took = ring(host, number)
    assert display["status"] == "withheld" and display["number"] is None
    assert sum(emulator.api_calls.values()) == 0 and took < 0.1


def test_a_live_match_answers_the_next_call_from_memory(connected, host, emulator):
    ring(host, "090-1111-2222")
    _, display, took = ring(host, "+819011112222")
    assert display["status"] == "matched" and emulator.api_calls["composite"] == 1


def test_calls_from_one_number_at_once_share_one_lookup(connected, host, emulator):
    import concurrent.futures

    emulator.faults.latency = 0.3
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        displays = list(pool.map(lambda _: ring(host, "06-1111-2222")[1], range(10)))
    assert {d["status"] for d in displays} == {"matched"}
    assert emulator.api_calls["composite"] == 1


def test_hanging_salesforce_answers_unavailable_within_the_budget(connected, host, emulator):
    from core.settings import save_settings

    save_settings(connected, {"screen_budget_ms": 300})
    ring(host, "03-9999-1111")  # logs in while Salesforce is healthy
    emulator.faults.hang = True
    _, display, took = ring(host, "06-1111-2222")
    assert display["status"] == "unavailable" and display["number"] == "+81611112222"
    assert display["label"] == "06-1111-2222"
    # the +20 ms target is measured by bench/hooks.py; a loaded CI machine gets a little more slack
    assert 0.3 <= took < 0.35
    emulator.faults.hang = False  # the lookup finishes in the background and fills the cache
    assert runtime().wait_idle(10)
    _, display, took = ring(host, "06-1111-2222")
    assert display["status"] == "matched" and took < 0.05


def test_the_budget_is_a_setting(connected, host, emulator):
    from core.settings import save_settings

    ring(host, "03-9999-1111")
    save_settings(connected, {"screen_budget_ms": 150})
    emulator.faults.latency = 1.0
    _, display, took = ring(host, "06-1111-2222")
    assert display["status"] == "unavailable" and 0.15 <= took < 0.2


@pytest.mark.parametrize("value, threads", [
    ("2", 2), (" 1 ", 1), ("8", 8), ("", 8), ("0", 8), ("9", 8), ("-1", 8), ("２", 8),
    ("two", 8), ("1e3", 8), ("2\n", 2), ("99999999999999999999", 8), ("\x01", 8),
])
def test_lookup_threads_come_from_the_environment_within_bounds(home, monkeypatch, value, threads):
    """A host that handles one call at a time per process (a Kamailio worker) asks for fewer
    lookup threads; anything that is not a number from 1 to 8 keeps the default."""
    from core import runtime

    monkeypatch.setenv("SFCTI_LOOKUP_THREADS", value)
    try:
        assert runtime.runtime_for(home).lookups.size == threads
    finally:
        runtime.shutdown_all()
