"""The Kamailio host: an app_python3 handler that loads the plugin and hands it the calls.

Kamailio's main process imports this module (through the bootstrap that ``sfcti
kamailio-config`` writes) before it forks its workers, so the plugin is loaded once and its pages
are shared; nothing here opens the instance folder then (each SIP worker opens the plugin's
runtime in ``child_init``, after the fork; other processes open it lazily on first use). The cfg calls the methods of :class:`KamailioBridge` with
``python_exec("method")``; each returns 1, because a method returning 0 makes Kamailio drop the
message.

- ``initial_invite``: a new INVITE. From outside, the caller's Salesforce name replaces the From
  display name (URI and tag stay, so the dialog still matches) and goes into P-Asserted-Identity.
  Dialled by an agent, the called party's name waits in ``$avp(sfcti_connected)`` for the cfg's
  reply route to put into the 18x/200 replies. The call's facts go into ``$dlg_var(sfcti)``.
- ``call_ended`` / ``call_failed``: the dialog module's end and failed events (once per dialog):
  the call goes into the history, answered or not.

Whatever fails or hangs, the INVITE is relayed unchanged within the screen budget: the screen
hook runs in a worker thread this process waits for at most the budget (see BoundedHooks for
why a call's end is recorded in Kamailio's own thread instead).
The job scheduler, the alert sender and the sending of the calls' Tasks do not run in Kamailio's
processes (``SFCTI_JOBS=off``, ``SFCTI_SEND_TASKS=off``: each ended call's Task waits in the
outbox); ``sfcti serve`` or ``sfcti admin`` runs beside Kamailio for them.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import gc
import json
import logging
import os
import re
import time
import unicodedata

os.environ["SFCTI_JOBS"] = "off"  # before the runtime is made: no scheduler in the workers
# nor Task sending: a worker's threads run only while it handles a message, so a request to
# Salesforce would hang between messages; `sfcti serve`'s scheduler sends the waiting Tasks
os.environ["SFCTI_SEND_TASKS"] = "off"
os.environ["SFCTI_LOOKUP_THREADS"] = "2"  # a worker handles one message at a time

from bridges.host import BoundedScreens, load_host  # noqa: E402
from bridges.kamailio.config import AgentRule  # noqa: E402
from core.runtime import runtime_for  # noqa: E402
from plugin.call import Call  # noqa: E402

try:
    import KSR  # provided by app_python3 inside Kamailio only
except ImportError:  # unit tests import the pure functions
    KSR = None

DISPLAY_LIMIT = 64                  # characters of a display name on the wire
DIALOG_VAR = "$dlg_var(sfcti)"
SHOWN_VAR = "$dlg_var(sfcti_shown)"     # the display the screen showed, for the call's end
CONNECTED_AVP = "$avp(sfcti_connected)"
HOOK_THREADS = 2
SETTLE_SECONDS = 0.02               # at most this long for the process's threads before returning
_URI_USER = re.compile(r"sips?:([^@;?>]*)@|tel:([^;?>]*)")
_SAFE_USER = re.compile(r"[A-Za-z0-9._~+*#()%-]{1,64}")

HOST = load_host()                  # before the fork: one plugin, pages shared by the workers
_agent_rule = AgentRule()


# ---------------------------------------------------------------------------------------------
# pure pieces
# ---------------------------------------------------------------------------------------------

def quote_display(text: str | None, limit: int = DISPLAY_LIMIT) -> str | None:
    """``text`` as an RFC 3261 quoted-string display name: control characters (CR, LF, ...)
    dropped, spaces collapsed, at most ``limit`` characters, ``"`` and ``\\`` escaped.
    None when nothing printable is left."""
    kept = "".join(" " if ch.isspace() else ch for ch in str(text or "")
                   if ch.isspace() or unicodedata.category(ch)[0] != "C")
    kept = " ".join(kept.split())[:limit].strip()
    if not kept:
        return None
    return '"' + kept.replace("\\", "\\\\").replace('"', '\\"') + '"'


def uri_user(uri: str | None) -> str | None:
    """The user part of a sip:, sips: or tel: URI (``sip:0312345678@host`` → ``0312345678``)."""
    match = _URI_USER.match((uri or "").strip().lstrip("<"))
    return (match.group(1) or match.group(2) or None) if match else None


def privacy_requested(privacy: str | None) -> bool:
    """Whether a ``Privacy`` header (RFC 3323, 3325) asks to hide the caller's identity: any
    value but ``none`` (``id``, ``user``, ``header``, ``session``, ``critical``)."""
    values = {value.strip().lower() for value in (privacy or "").split(";") if value.strip()}
    return bool(values - {"none"})


def call_facts_json(call: Call) -> str:
    """What the dialog keeps of a call until it ends."""
    return json.dumps({"call_id": call.call_id, "direction": call.direction,
                       "remote_number": call.remote_number, "local_number": call.local_number,
                       "agent_id": call.agent_id, "started_at": call.started_at.isoformat()})


def ended_call(facts_json: str | None, answered: bool) -> Call | None:
    """The Call of ``call_facts_json``'s text, ended now; None when there is none."""
    try:
        facts = json.loads(facts_json or "null")
        facts["started_at"] = dt.datetime.fromisoformat(facts["started_at"])
        call = Call(**facts)
    except (TypeError, ValueError, KeyError):
        return None
    call.answered, call.ended_at = answered, dt.datetime.now(dt.timezone.utc)
    return call


def configure(agents: AgentRule) -> None:
    """Set which INVITEs agents dial (the bootstrap calls this with the CLI's options)."""
    global _agent_rule
    _agent_rule = agents


def mod_init() -> "KamailioBridge":
    """app_python3's entry: the object whose methods ``python_exec`` calls."""
    logging.getLogger().addHandler(KamailioLog())
    bridge = KamailioBridge(_agent_rule)
    preload()
    return bridge


def preload() -> None:
    """Load before the fork what each worker would otherwise load for itself on its first call,
    then freeze the objects: the collector no longer writes to them, so their pages stay shared
    between the workers instead of being copied into each one."""
    import xml.dom.expatbuilder  # noqa: F401  (simple-salesforce's login answer is parsed with it)

    import phonenumbers
    from phonenumbers.phonemetadata import PhoneMetadata

    for region in phonenumbers.SUPPORTED_REGIONS:  # about 1.5 MB, loaded region by region
        PhoneMetadata.metadata_for_region(region)
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        PhoneMetadata.metadata_for_nongeo_region(code)
    gc.collect()
    gc.freeze()


class KamailioLog(logging.Handler):
    """The plugin's warnings and errors, in Kamailio's log (a worker's stderr goes nowhere)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record through KSR (one line: Kamailio's log is line-based)."""
        if KSR is not None:
            text = self.format(record).replace("\n", " | ") + "\n"
            (KSR.err if record.levelno >= logging.ERROR else KSR.warn)(text)


# ---------------------------------------------------------------------------------------------
# running hooks within a bound
# ---------------------------------------------------------------------------------------------

class BoundedHooks:
    """Calls the plugin's hooks from a Kamailio worker.

    Kamailio 5.x's app_python3 holds the GIL between two ``python_exec`` calls, so a Python
    thread of the worker runs only while the handler waits for something. Hence: a screen runs
    in a worker thread this process waits for at most the budget (the INVITE never waits
    longer); before returning, the handler lets the process's threads finish what they can in a
    few milliseconds (``settle``), so that none is left holding the database's write lock while
    the worker sits in C; and a call's end is recorded in Kamailio's own thread, so it is
    written before the message goes on, never left half-done in a thread that cannot run.
    """

    def __init__(self):
        self.screens = BoundedScreens(HOST, lambda: runtime_for().settings(), "sfcti-kamailio",
                                      HOOK_THREADS)

    def screen(self, call: Call, started: float) -> dict | None:
        """The hook's display, or None when it fails or outlasts the budget counted from
        ``started`` (time.monotonic())."""
        try:
            display = self.screens.screen(call, started)
        except concurrent.futures.TimeoutError:
            _log_error(f"sfcti: the {call.direction} screen gave no answer within "
                       f"{self.screens.budget * 1000:.0f} ms; the call goes on unchanged")
            return None
        except Exception as exc:
            _log_error(f"sfcti: the {call.direction} screen failed: {exc!r}; "
                       f"the call goes on unchanged")
            return None
        self.settle(min(SETTLE_SECONDS, self.screens.remaining(started)))
        return display

    def end(self, call: Call, shown: dict | None) -> None:
        """Record the ended call (in this thread), then settle."""
        runtime = runtime_for()
        if shown is not None:
            # the call's end may come to another Kamailio process than its screen: the
            # history records what the agent saw, not a fresh guess
            runtime.shown.put(call.call_id, shown)
        HOST.hook.on_call_ended(call=call)
        self.settle(SETTLE_SECONDS)

    def settle(self, seconds: float) -> None:
        """Let this process's threads (lookups, registrations) finish for up to ``seconds``."""
        if seconds > 0:
            runtime_for().wait_idle(timeout=seconds)


def _log_error(text: str) -> None:
    if KSR is not None:
        KSR.err(text.replace("\n", " ") + "\n")


def _pv(name: str) -> str | None:
    value = KSR.pv.get(name)
    return value if isinstance(value, str) and value != "" else None


# ---------------------------------------------------------------------------------------------
# what python_exec calls
# ---------------------------------------------------------------------------------------------

class KamailioBridge:
    """The handler object: each method is a ``python_exec`` target and returns 1 (never 0, which
    would drop the message)."""

    def __init__(self, agents: AgentRule):
        self.agents = agents
        self.hooks = BoundedHooks()

    def child_init(self, rank: int) -> int:
        """Called in every process after the fork: a SIP worker (rank > 0) opens the plugin's
        runtime now, in its own thread, rather than in a screen's worker thread that the
        INVITE might have to leave behind (a thread left holding the database's write lock
        could not run again until the next message). Returns 0: never stops Kamailio."""
        if rank > 0:
            try:
                runtime_for()
            except Exception as exc:  # the screens report it again, call by call
                _log_error(f"sfcti: the instance folder cannot be opened: {exc!r}")
        return 0

    def initial_invite(self, msg, args=None) -> int:
        """A new INVITE: name the caller for the agent, or the called party for the agent."""
        started = time.monotonic()
        try:
            self._initial_invite(started)
        except Exception as exc:  # the INVITE goes on unchanged
            _log_error(f"sfcti: initial_invite failed: {exc!r}")
        return 1

    def call_ended(self, msg, args=None) -> int:
        """The dialog ended after being answered (BYE, or its timeout)."""
        return self._ended(answered=True)

    def call_failed(self, msg, args=None) -> int:
        """The dialog never got answered (CANCEL, a failure reply, no answer in time)."""
        return self._ended(answered=False)

    # -- the INVITE ----------------------------------------------------------------------------

    def _initial_invite(self, started: float) -> None:
        call = self._call_of_request()
        KSR.pv.sets(DIALOG_VAR, call_facts_json(call))
        display = self.hooks.screen(call, started)
        if call.direction == "outbound":
            self._name_called_party(display, call)
        else:
            self._name_caller(display)
        if isinstance(display, dict):
            KSR.pv.sets(SHOWN_VAR, json.dumps(display, ensure_ascii=False))

    def _call_of_request(self) -> Call:
        header = self.agents.header
        header_value = KSR.hdr.gete(header) if header else None
        if header and KSR.hdr.is_present(header) > 0:
            KSR.hdr.remove(header)          # it names our agent: nobody downstream needs it
        from_user = _pv("$fU")
        agent = self.agents.agent_of(_pv("$si") or "", from_user, header_value or None)
        now = dt.datetime.now(dt.timezone.utc)
        if agent is not None:
            return Call(call_id=_pv("$ci") or "", direction="outbound", remote_number=_pv("$rU") or "",
                        local_number=from_user, agent_id=agent, started_at=now)
        # a caller who asked for privacy is withheld on the agent's screen, although the
        # carrier's P-Asserted-Identity still carries the number
        caller = "anonymous" if privacy_requested(KSR.hdr.gete("Privacy")) else \
            uri_user(_pv("$ai")) or from_user or ""
        return Call(call_id=_pv("$ci") or "", direction="inbound", remote_number=caller,
                    local_number=_pv("$tU"), agent_id=_pv("$rU"), started_at=now)

    def _name_caller(self, display: dict | None) -> None:
        """The agent's phone shows the caller's name: From display name and P-Asserted-Identity."""
        name = _matched_name(display)
        if name is None:
            return
        uri = _pv("$ai") or _pv("$fu")
        KSR.uac.uac_replace_from(name, "")
        KSR.hdr.remove("P-Asserted-Identity")
        # a URI that could end the header or open another (CR, LF, ">") is not copied into one
        if uri and uri.isprintable() and ">" not in uri:
            KSR.hdr.append(f"P-Asserted-Identity: {name} <{uri}>\r\n")

    def _name_called_party(self, display: dict | None, call: Call) -> None:
        """Leave the called party's identity for the reply route (18x and 200 to the agent)."""
        name, domain = _matched_name(display), _pv("$rd")
        if name is None or not domain or not _SAFE_USER.fullmatch(call.remote_number or ""):
            return
        KSR.pv.sets(CONNECTED_AVP, f"{name} <sip:{call.remote_number}@{domain}>")

    # -- the end -------------------------------------------------------------------------------

    def _ended(self, answered: bool) -> int:
        try:
            call = ended_call(_pv(DIALOG_VAR), answered)
            if call is not None:
                self.hooks.end(call, _shown(_pv(SHOWN_VAR)))
        except Exception as exc:
            _log_error(f"sfcti: recording the call's end failed: {exc!r}")
        return 1


def _shown(text: str | None) -> dict | None:
    try:
        shown = json.loads(text or "null")
    except ValueError:
        return None
    return shown if isinstance(shown, dict) else None


def _matched_name(display: dict | None) -> str | None:
    if not display or display.get("status") != "matched":
        return None
    return quote_display(display.get("label"))
