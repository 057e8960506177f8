"""The hostile corpus (tests/hostile_corpus.py) run through every way in: the hooks as a host calls
them, the command line, the settings validation, SIP requests through the Kamailio bridge, the
HTTP lookup service and hostile answers from the emulator. The admin's forms and query parameters
are run in tests/test_admin_hostile.py.

For each entry: no exception into the host (only KeyboardInterrupt and SystemExit pass through a
hook), no 500, no traceback shown, and a refusal that names the field or the problem. A hook's
call is either recorded in the history or refused with an error row.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from urllib.parse import quote

import pytest

import hostile_corpus as corpus
from helpers import DISPLAY_KEYS, make_host, run_cli
from hostile_corpus import entry_ids

pytestmark = pytest.mark.timeout(120)

STATUSES = {"matched", "not_registered", "withheld", "unavailable"}
KNOWN_NUMBER = "03-1234-5678"      # of the sample org: answered from the cache after the first ring


def hostile(name):
    """The value a corpus entry names (a literal when it names none)."""
    return corpus.HOSTILE_VALUES.get(name, name) if isinstance(name, str) else name


# ---------------------------------------------------------------------------------------------
# an instance folder shared by the module (tests here add rows; none reads another's)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def instance(tmp_path_factory, emulator_server):
    """An instance folder as $SFCTI_HOME, connected to the session emulator; no background jobs."""
    from core.runtime import shutdown_all
    from core.store import open_store
    from helpers import connect

    home = tmp_path_factory.mktemp("hostile") / "instance"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SFCTI_HOME", str(home))
        mp.setenv("SFCTI_JOBS", "off")
        mp.setenv("SFCTI_SEND_TASKS", "off")
        store = open_store(home)
        connect(store, emulator_server)
        yield store
        shutdown_all()
        store.close()


@pytest.fixture(scope="module")
def hooks():
    """The plugin loaded as a host loads it."""
    return make_host()


def recorded(store) -> int:
    """Calls in the history plus error-log events: one of them grows for every ended call."""
    from core.history import count_calls

    return count_calls(store) + sum(row["count"] for row in error_log(store))


def error_log(store) -> list[dict]:
    """Every error-log row."""
    from core.errors import list_errors

    return list_errors(store, limit=100_000)


def assert_kept_or_refused_saying_why(store, before: int, calls_before: int) -> None:
    """The ended call is in the history, or an error row says why it is not."""
    from core.history import count_calls

    assert recorded(store) == before + 1, "the call was neither recorded nor refused with an error row"
    if count_calls(store) == calls_before:
        newest = max(error_log(store), key=lambda row: row["last_at"])
        assert newest["message"] and newest["code"], newest


def assert_display(display) -> None:
    """A display the host can draw: every key, known status, text or None, no traceback."""
    assert isinstance(display, dict) and set(display) == DISPLAY_KEYS, display
    assert display["status"] in STATUSES, display
    for key, value in display.items():
        assert value is None or isinstance(value, str), (key, value)
        assert "Traceback" not in (value or "")


def plain_call(**changes):
    """An ordinary call, answered and ended, with ``changes`` applied as attributes."""
    from plugin.call import Call

    call = Call(remote_number=KNOWN_NUMBER, agent_id="agent-1", local_number="0120-000-000")
    call.answered, call.ended_at = True, dt.datetime.now(dt.timezone.utc)
    for name, value in changes.items():
        object.__setattr__(call, name, value)
    return call


def ring_and_end(hooks, store, call) -> None:
    """Both screen hooks and the end hook, as a host calls them: each returns, the call is kept."""
    from core.history import count_calls

    before, calls_before = recorded(store), count_calls(store)
    assert_display(hooks.hook.on_incoming_call(call=call))
    assert_display(hooks.hook.on_outgoing_call(call=call))
    assert hooks.hook.on_call_ended(call=call) == []
    assert_kept_or_refused_saying_why(store, before, calls_before)


# ---------------------------------------------------------------------------------------------
# hooks
# ---------------------------------------------------------------------------------------------

def test_the_instance_answers_an_ordinary_call_from_salesforce(instance, hooks):
    """The corpus runs against a working instance: an ordinary call is matched and recorded."""
    from core.history import get_call

    call = plain_call()
    assert hooks.hook.on_incoming_call(call=call)["status"] == "matched"
    hooks.hook.on_call_ended(call=call)
    assert get_call(instance, call.call_id)["label"] == "株式会社サンプル / 山田 太郎"


@pytest.mark.parametrize("entry", corpus.HOOK_ENTRIES, ids=entry_ids(corpus.HOOK_ENTRIES))
def test_hooks_take_a_hostile_attribute(instance, hooks, entry):
    _, attribute, name = entry
    ring_and_end(hooks, instance, plain_call(**{attribute: hostile(name)}))


class EveryAttributeRaises:
    """A call whose every attribute raises ValueError."""

    def __getattr__(self, name):
        raise ValueError(f"no {name}")


class RecursionAttribute:
    """A call whose number recurses until RecursionError."""

    @property
    def remote_number(self):
        return self.remote_number


class MemoryErrorAttributes:
    """A call whose every attribute access raises MemoryError."""

    def __getattribute__(self, name):
        raise MemoryError(name)


class SlotsWithoutValues:
    """A call with every attribute declared and none set (reading one raises AttributeError)."""

    __slots__ = corpus.CALL_ATTRIBUTES


WEIRD = {"None": lambda: None, "object()": object, "int": lambda: 42, "str": lambda: "03-1234-5678",
         "dict": lambda: {"remote_number": "03-1234-5678"},
         "every attribute raises": EveryAttributeRaises, "attribute raises RecursionError":
         RecursionAttribute, "getattr raises MemoryError": MemoryErrorAttributes,
         "missing attributes": type("Bare", (), {}), "slots without values": SlotsWithoutValues}


@pytest.mark.parametrize("kind", corpus.WEIRD_CALLS)
def test_hooks_take_objects_that_are_not_calls(instance, hooks, kind):
    ring_and_end(hooks, instance, WEIRD[kind]())


class Interrupting:
    """A call whose number is read when the operator presses Ctrl-C (or the host exits)."""

    def __init__(self, exc):
        self.exc, self.call_id, self.direction = exc, "interrupted", "inbound"

    @property
    def remote_number(self):
        raise self.exc


@pytest.mark.parametrize("exc", corpus.PASS_THROUGH)
@pytest.mark.parametrize("hook", ["on_incoming_call", "on_outgoing_call", "on_call_ended"])
def test_interrupts_pass_through_every_hook(instance, hooks, hook, exc):
    exc_type = {"KeyboardInterrupt": KeyboardInterrupt, "SystemExit": SystemExit}[exc]
    with pytest.raises(exc_type):
        getattr(hooks.hook, hook)(call=Interrupting(exc_type()))


# ---------------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", corpus.SETTINGS_ENTRIES, ids=entry_ids(corpus.SETTINGS_ENTRIES))
def test_settings_validation_refuses_with_the_field_named(entry):
    from core.settings import InvalidSettings, clean_settings

    _, field, name, says = entry
    try:
        clean_settings({field: hostile(name)})
    except InvalidSettings as exc:
        assert set(exc.errors) == {field} and exc.errors[field], exc.errors
        assert says is None or says.lower() in exc.errors[field].lower(), exc.errors
        assert field in str(exc)
    else:
        assert says is None, f"{field}={name!r} was accepted"


# ---------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", corpus.CLI_ENTRIES, ids=entry_ids(corpus.CLI_ENTRIES))
def test_cli_arguments(home, entry):
    _, args, says = entry
    result = run_cli(home, *args)       # no exception, no traceback (checked by run_cli)
    if says is not None:
        assert result.exit_code != 0, result.output
    if result.exit_code != 0:
        message = result.output.strip()
        assert message, "refused without a word"
        assert says is None or says.lower() in message.lower(), message


# ---------------------------------------------------------------------------------------------
# SIP requests through the Kamailio bridge
# ---------------------------------------------------------------------------------------------

class FakeKSR:
    """Kamailio's KSR API as app_python3 gives it to the handler, for one INVITE and its dialog:
    pseudo-variables and headers in; the headers added, the From display names set and the log
    lines out."""

    def __init__(self, pvs: dict, headers: dict):
        self.vars, self.headers = dict(pvs), dict(headers)
        self.appended, self.from_names, self.log = [], [], []
        self.pv, self.hdr, self.uac = _PV(self), _Hdr(self), _Uac(self)

    def err(self, text):
        """KSR.err: a line of Kamailio's log."""
        self.log.append(text)

    warn = err


class _PV:
    """KSR.pv: pseudo-variables ($fU, $ci, $dlg_var(...))."""

    def __init__(self, ksr):
        self.ksr = ksr

    def get(self, name):
        """The variable's value (None when unset)."""
        return self.ksr.vars.get(name)

    def sets(self, name, value):
        """Set a string variable (Kamailio takes nothing else)."""
        assert isinstance(value, str)
        self.ksr.vars[name] = value


class _Hdr:
    """KSR.hdr: the request's headers."""

    def __init__(self, ksr):
        self.ksr = ksr

    def gete(self, name):
        """The header's value (None when absent)."""
        return self.ksr.headers.get(name)

    def is_present(self, name):
        """1 when the header is there, -1 when not."""
        return 1 if name in self.ksr.headers else -1

    def remove(self, name):
        """Drop the header."""
        self.ksr.headers.pop(name, None)

    def append(self, text):
        """Add a header line (with its CR LF)."""
        self.ksr.appended.append(text)


class _Uac:
    """KSR.uac: the From display name replaced."""

    def __init__(self, ksr):
        self.ksr = ksr

    def uac_replace_from(self, display, uri):
        """Keep the display name the handler set."""
        self.ksr.from_names.append(display)


SIP_INVITE = {"$fU": "0312345678", "$ai": "sip:0312345678@carrier.example", "$tU": "0120000000",
              "$rU": "agent-1", "$fu": "sip:0312345678@carrier.example", "$si": "192.0.2.1",
              "$rd": "pbx.example"}


@pytest.fixture(scope="module")
def kamailio(instance):
    """The Kamailio handler module, with the fake KSR put in per request."""
    from bridges.kamailio import handler

    yield handler
    handler.KSR = None


def test_an_ordinary_invite_through_the_bridge_is_named(instance, kamailio):
    """The fake KSR is wired as Kamailio's: an ordinary caller's name goes into From and PAI."""
    from bridges.kamailio.config import AgentRule

    ksr = kamailio.KSR = FakeKSR({**SIP_INVITE, "$ci": "sip-ordinary"}, {})
    bridge = kamailio.KamailioBridge(AgentRule())
    assert bridge.initial_invite(None) == 1 and bridge.call_ended(None) == 1
    assert ksr.from_names == ['"株式会社サンプル / 山田 太郎"']
    assert ksr.appended == ['P-Asserted-Identity: "株式会社サンプル / 山田 太郎" '
                            '<sip:0312345678@carrier.example>\r\n']


@pytest.mark.parametrize("entry", corpus.SIP_ENTRIES, ids=entry_ids(corpus.SIP_ENTRIES))
def test_sip_headers_through_the_kamailio_bridge(instance, kamailio, entry):
    from bridges.kamailio.config import AgentRule

    _, field, name = entry
    value = hostile(name)
    if field == "$ci" and value:
        value = "sip-" + value    # distinct from the ids the hook entries used in this instance
    pvs, headers = dict(SIP_INVITE), {}
    if field == "Privacy":
        headers["Privacy"] = value
    else:
        pvs[field] = value
    if field != "$ci":
        pvs["$ci"] = f"sip-{entry[0]}"
    ksr = kamailio.KSR = FakeKSR(pvs, headers)
    bridge = kamailio.KamailioBridge(AgentRule())
    from core.history import count_calls

    before, calls_before = recorded(instance), count_calls(instance)
    assert bridge.initial_invite(None) == 1
    assert bridge.call_ended(None) == 1
    for line in ksr.appended:                     # one header line each, ending the header
        assert line.endswith("\r\n") and "\r" not in line[:-2] and "\n" not in line[:-2], line
    for display in ksr.from_names:
        assert not any(unicodedata.category(ch) == "Cc" for ch in display), display
    assert not [line for line in ksr.log if "Traceback" in line]
    assert_kept_or_refused_saying_why(instance, before, calls_before)


# ---------------------------------------------------------------------------------------------
# the HTTP lookup service
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lookup_service(instance):
    """The lookup service's test client on the module's instance folder (loopback, no token)."""
    from bridges.http.app import create_app

    app = create_app(instance.home)
    return app.test_client()


def assert_answer(response) -> dict:
    """A JSON answer, never a 500 or a traceback; a refusal says why."""
    body = response.get_data(as_text=True)
    assert response.status_code < 500, body[:500]
    assert "Traceback" not in body
    if response.status_code >= 400:
        answer = json.loads(body)
        assert len(answer["error"]) > 10, answer
        return answer
    return json.loads(body) if response.is_json else {"text": body}


def _query_value(value) -> str:
    """``value`` percent-encoded for a query string (a lone surrogate as its UTF-8 bytes)."""
    return quote(value, safe="", errors="surrogatepass") if isinstance(value, str) else quote(str(value))


@pytest.mark.parametrize("entry", corpus.HTTP_LOOKUP_ENTRIES, ids=entry_ids(corpus.HTTP_LOOKUP_ENTRIES))
def test_http_lookup_parameters(lookup_service, entry):
    _, param, name = entry
    params = {"number": "03-1234-5678", param: _query_value(hostile(name))}
    if param != "number":
        params["number"] = quote("03-1234-5678")
    query = "&".join(f"{k}={v}" for k, v in params.items())
    answer = assert_answer(lookup_service.get("/v1/lookup?" + query, environ_base={"REMOTE_ADDR": "127.0.0.1"}))
    if "error" in answer:
        assert param in answer["error"] or "request" in answer["error"].lower(), answer


HUGE_DIGITS = "9" * 5000       # more digits than Python turns into an int by default


def ended_body(field, value) -> bytes:
    """The JSON body of an ended call with ``field`` set to ``value`` (digits beyond the
    int-conversion limit are written as raw JSON)."""
    fields = {"direction": "inbound", "remote_number": "+81312345678",
              "started_at": "2024-05-20T10:00:00+09:00", "ended_at": "2024-05-20T10:05:00+09:00",
              "answered": True}
    fields[field] = "__HUGE__" if value == corpus.HOSTILE_VALUES["huge int"] else value
    text = json.dumps(fields, default=str)
    return text.replace('"__HUGE__"', HUGE_DIGITS).encode()


@pytest.mark.parametrize("entry", corpus.HTTP_ENDED_ENTRIES, ids=entry_ids(corpus.HTTP_ENDED_ENTRIES))
def test_http_ended_fields(lookup_service, entry):
    _, field, name = entry
    call_id = "ended-" + "".join(ch if ch.isalnum() else "-" for ch in entry[0])
    response = lookup_service.post(f"/v1/calls/{call_id}/ended", data=ended_body(field, hostile(name)),
                                   content_type="application/json",
                                   environ_base={"REMOTE_ADDR": "127.0.0.1"})
    answer = assert_answer(response)
    if "error" in answer:
        assert field in answer["error"] or "large" in answer["error"], answer


# ---------------------------------------------------------------------------------------------
# hostile answers from the emulator, through the resolver
# ---------------------------------------------------------------------------------------------

def emulator_phone(index: int) -> str:
    """A Tokyo number of the hostile org's record ``index``."""
    return f"03-6{900 + index // 10000:03d}-{index % 10000:04d}"


@pytest.fixture(scope="module")
def hostile_org(tmp_path_factory):
    """An emulator whose records hold the corpus's hostile names and wrong types."""
    from emulator import Emulator, Org

    org = Org(name="hostile org")
    for index, (_, obj, fields) in enumerate(corpus.EMULATOR_RECORDS):
        # Name as the broken org holds it (the emulator would otherwise build it from the parts)
        name = {"Name": fields["LastName"]} if "LastName" in fields else {}
        org.add_record(obj, {**name, **fields, "Phone": emulator_phone(index)})
    with Emulator(org, cert_dir=str(tmp_path_factory.mktemp("hostile-ca"))) as emu:
        yield emu


@pytest.fixture(scope="module")
def hostile_instance(tmp_path_factory, hostile_org, instance):
    """A second instance folder connected to the hostile org (its own runtime)."""
    from core.runtime import Runtime
    from helpers import connect

    runtime = Runtime(tmp_path_factory.mktemp("hostile-answers") / "instance", jobs_enabled=False)
    # contacts registered right after each call: the admin then shows the records' names
    connect(runtime.store, hostile_org, read_timeout=5.0, contact_fetch="after_call")
    yield runtime
    runtime.shutdown()
    runtime.store.close()


@pytest.mark.parametrize("index", range(len(corpus.EMULATOR_RECORDS)),
                         ids=entry_ids(corpus.EMULATOR_RECORDS))
def test_hostile_emulator_answers_through_the_resolver(hostile_instance, index):
    from core.phone import parse_phone

    looked_up = hostile_instance.resolver.lookup(parse_phone(emulator_phone(index)))
    shown = hostile_instance.screen(plain_call(remote_number=emulator_phone(index)), "inbound")
    for display in (looked_up, shown):
        assert_display(display)
        assert display["status"] == "matched", display
        for value in display.values():      # the phone's screen gets no control characters
            assert not any(unicodedata.category(ch) == "Cc" for ch in value or ""), display


def test_hostile_emulator_names_are_escaped_in_the_admin(hostile_instance):
    """The calls of the hostile records, as the admin's call history shows them: escaped."""
    from helpers import admin_login, make_app

    from core.phone import parse_phone

    for index in range(len(corpus.EMULATOR_RECORDS)):
        call = plain_call(remote_number=emulator_phone(index), call_id=f"hostile-answer-{index}")
        hostile_instance.lookup(parse_phone(emulator_phone(index))).result(timeout=10)  # no budget
        assert hostile_instance.screen(call, "inbound")["status"] == "matched"
        hostile_instance.end_call(call)
    assert hostile_instance.wait_idle(10)
    client = make_app(hostile_instance.store.home, TESTING=True).test_client()
    assert admin_login(client).status_code == 302
    shown = ""
    for page in ("/calls/", "/calls/?page=2", "/calls/?q=script", "/contacts/", "/"):
        response = client.get(page)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, page
        for markup in ("<script>", "<img src=x", "<iframe", "<b>株式会社</b>"):
            assert markup not in html, (page, markup)
        shown += html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown      # the name is shown, as text
