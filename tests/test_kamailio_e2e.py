"""The Kamailio bridge end to end: a real Kamailio running the cfg `sfcti kamailio-config`
prints, real baresip phones calling through it, the local Salesforce emulator behind the plugin.

What is asserted is what the phones see: the name the agent's phone shows for a caller (and the
INVITE it received), the connected-line identity an agent's phone receives when it dials out,
and the call history each kind of ending leaves. Callers are baresip phones whose SIP user is
their phone number; the agent's phone is ``agent`` (an agent by --agent-user).
"""

from __future__ import annotations

import re
import socket
import time

import pytest

from helpers import fresh
from sip import Pbx, Phone, header_values, sip_trace

AGENT = "agent"
BUDGET = 0.8            # the default screen budget (seconds)
RING_TIMEOUT = 5        # seconds a call rings unanswered before it fails (the least allowed)
CONTACT_NUMBER = "0312345678"           # sample org: 株式会社サンプル / 山田 太郎 (Contact)
LEAD_NUMBER = "0611112222"              # sample org: 田中工業 / 田中 次郎 (Lead)
PERSON_ACCOUNT_NUMBER = "0451112222"    # person-account org: 伊藤 健
UNKNOWN_NUMBER = "0398760000"           # no record in the sample org


def _pbx(tmp_path_factory, emu, name):
    pbx = Pbx(tmp_path_factory.mktemp(name), emu, "--agent-address", "127.0.0.1", "--agent-user",
              AGENT, "--agent-header", "X-Sfcti-Agent", "--children", "2", "--ring-timeout",
              str(RING_TIMEOUT))
    try:
        pbx.start()
    except Exception:
        pbx.stop()
        raise
    return pbx


@pytest.fixture(scope="module")
def pbx(tmp_path_factory, emulator_server):
    """Kamailio and phones on an instance connected to the sample org."""
    pbx = _pbx(tmp_path_factory, emulator_server, "pbx")
    yield pbx
    pbx.stop()


@pytest.fixture(scope="module")
def pa_pbx(tmp_path_factory, pa_emulator_server):
    """Kamailio and phones on an instance connected to the person-account org."""
    pbx = _pbx(tmp_path_factory, pa_emulator_server, "pa-pbx")
    yield pbx
    pbx.stop()


@pytest.fixture
def agent(pbx):
    """The agent's phone, no events pending."""
    return pbx.phone(AGENT)


def ring(caller: Phone, agent: Phone) -> tuple[dict, float]:
    """Dial the agent's phone from ``caller``; (the agent's CALL_INCOMING event, seconds from
    dialling to ringing)."""
    started = time.monotonic()
    assert caller.dial(agent.uri)["ok"]
    incoming = agent.wait_event("CALL_INCOMING", timeout=5)
    return incoming, time.monotonic() - started


def hang_up(first: Phone, second: Phone) -> None:
    """End the call: ``first`` hangs up, both phones see it closed."""
    first.hangup()
    first.wait_event("CALL_CLOSED")
    second.wait_event("CALL_CLOSED")


def sent_by(phone: Phone, start: str, call_id: str) -> str:
    """The last message starting with ``start`` that ``phone`` sent in call ``call_id``."""
    sent = [message for source, _, message in sip_trace(phone.log())
            if source.endswith(f":{phone.sip_port}") and message.startswith(start)
            and call_id in header_values(message, "Call-ID")]
    assert sent, phone.log()[-3000:]
    return sent[-1]


def invite_received(agent: Phone, call_id: str) -> str:
    """The INVITE of call ``call_id`` as the agent's phone received it."""
    invites = [m for m in agent.received("INVITE ") if f"Call-ID: {call_id}" in m]
    assert invites, agent.log()[-3000:]
    return invites[-1]


# ---------------------------------------------------------------------------------------------
# what the agent's phone shows for a caller
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("number, shown", [
    (CONTACT_NUMBER, "株式会社サンプル / 山田 太郎"),
    (LEAD_NUMBER, "田中工業 / 田中 次郎"),
])
def test_agent_phone_shows_the_salesforce_name(pbx, agent, emulator, number, shown):
    caller = pbx.phone(number)
    incoming, _ = ring(caller, agent)
    assert incoming["peerdisplayname"] == shown
    invite = invite_received(agent, incoming["id"])
    # only the display name changed: URI and tag are the caller's own
    sent = sent_by(caller, "INVITE ", incoming["id"])
    tag = re.search(r";tag=(\S+)", header_values(sent, "From")[0]).group(1)
    assert header_values(invite, "From") == [f'"{shown}" <sip:{number}@127.0.0.1>;tag={tag}']
    assert header_values(invite, "P-Asserted-Identity") == [f'"{shown}" <sip:{number}@127.0.0.1>']
    hang_up(agent, caller)


def test_person_account_caller(pa_pbx, pa_emulator):
    agent, caller = pa_pbx.phone(AGENT), pa_pbx.phone(PERSON_ACCOUNT_NUMBER)
    incoming, _ = ring(caller, agent)
    assert incoming["peerdisplayname"] == "伊藤 健"
    hang_up(agent, caller)


@pytest.mark.parametrize("user, own_name", [
    (UNKNOWN_NUMBER, "Unknown Caller"),     # no record: not_registered
    ("anonymous", "Anonymous"),             # withheld
])
def test_callers_without_a_record_pass_unchanged(pbx, agent, emulator, user, own_name):
    caller = pbx.phone(user, display=own_name)
    incoming, _ = ring(caller, agent)
    assert incoming["peerdisplayname"] == own_name
    invite = invite_received(agent, incoming["id"])
    assert header_values(invite, "From")[0].startswith(f'"{own_name}" <sip:{user}@127.0.0.1>')
    assert header_values(invite, "P-Asserted-Identity") == []
    hang_up(agent, caller)


def test_a_name_holding_quotes_backslashes_and_newlines_stays_one_quoted_string(pbx, agent, emulator):
    national, _ = fresh()
    emulator.add_record("Contact", {"LastName": 'Back\\slash "Quoted"\r\nInjected: yes',
                                    "Phone": national})
    number = national.replace("-", "")
    caller = pbx.phone(number)
    incoming, _ = ring(caller, agent)
    invite = invite_received(agent, incoming["id"])
    from_header = header_values(invite, "From")[0]
    quoted = re.fullmatch(r'"((?:[^"\\\r\n]|\\.)*)" <sip:' + number + r'@127\.0\.0\.1>;tag=\S+', from_header)
    assert quoted, from_header
    name = re.sub(r"\\(.)", r"\1", quoted.group(1))
    assert "Back\\slash" in name and '"Quoted"' in name and "Injected: yes" in name
    assert header_values(invite, "Injected") == []          # no header smuggled in
    assert header_values(invite, "P-Asserted-Identity")[0].startswith(f'"{quoted.group(1)}" <sip:')
    hang_up(agent, caller)


def test_the_call_rings_within_the_budget_while_salesforce_hangs(pbx, agent, emulator):
    national, _ = fresh()
    emulator.add_record("Contact", {"LastName": "応答なし", "Phone": national})
    emulator.faults.hang = True
    caller = pbx.phone(national.replace("-", ""), display="Hang Caller")
    incoming, seconds = ring(caller, agent)
    assert incoming["peerdisplayname"] == "Hang Caller"      # relayed unchanged
    assert BUDGET * 0.5 < seconds < BUDGET + 0.05, seconds
    hang_up(agent, caller)


# ---------------------------------------------------------------------------------------------
# an agent dials out: the connected-line identity its phone receives
# ---------------------------------------------------------------------------------------------

def test_agent_dialling_out_receives_the_called_partys_name(pbx, agent, emulator):
    customer = pbx.phone(CONTACT_NUMBER)
    assert agent.dial(customer.uri)["ok"]
    customer.wait_event("CALL_INCOMING")
    agent.wait_event("CALL_RINGING")
    customer.accept()
    established = agent.wait_event("CALL_ESTABLISHED")
    identity = f'"株式会社サンプル / 山田 太郎" <sip:{CONTACT_NUMBER}@127.0.0.1>'
    for status in ("SIP/2.0 180", "SIP/2.0 200"):
        reply = [m for m in agent.received(status) if f"Call-ID: {established['id']}" in m][-1]
        assert header_values(reply, "P-Asserted-Identity") == [identity]
        assert header_values(reply, "Remote-Party-ID") == [f"{identity};party=called;screen=no;privacy=off"]
    hang_up(agent, customer)
    row = pbx.history_row(established["id"])
    assert (row["direction"], row["answered"], row["agent_id"], row["remote_number"]) == \
        ("outbound", 1, AGENT, CONTACT_NUMBER)


# ---------------------------------------------------------------------------------------------
# every kind of ending is recorded once
# ---------------------------------------------------------------------------------------------

def _bye_answers(phone: Phone, call_id: str, count: int = 1, timeout: float = 3.0) -> list[str]:
    """The 200 answers to BYE that ``phone`` received in call ``call_id``, once there are
    ``count`` of them or ``timeout`` seconds passed (a phone reports the call closed when it
    sends its BYE, and logs the answer when it comes)."""
    deadline = time.monotonic() + timeout
    while True:
        answers = [m for m in phone.received("SIP/2.0 200 ") if call_id in header_values(m, "Call-ID")
                   and header_values(m, "CSeq")[0].endswith(" BYE")]
        if len(answers) >= count or time.monotonic() > deadline:
            return answers
        time.sleep(0.05)


def _replay_to_kamailio(pbx, message: str) -> None:
    """Send ``message`` (from a SIP trace, without a body) to Kamailio again, from another port."""
    head = message.replace("\r\n", "\n").partition("\n\n")[0]
    assert re.search(r"^Content-Length: 0$", head, re.M), head     # a message without a body
    wire = head.replace("\n", "\r\n") + "\r\n\r\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(wire.encode("utf-8"), ("127.0.0.1", pbx.port))


def test_hang_up_records_the_answered_call_once(pbx, agent, emulator):
    caller = pbx.phone(LEAD_NUMBER)
    incoming, _ = ring(caller, agent)
    agent.accept()
    caller.wait_event("CALL_ESTABLISHED")
    hang_up(caller, agent)
    call_id = incoming["id"]
    row = pbx.history_row(call_id)
    assert (row["direction"], row["answered"], row["agent_id"], row["local_number"]) == \
        ("inbound", 1, AGENT, AGENT)
    assert row["ended_at"] >= row["started_at"]
    assert row["label"] == "田中工業 / 田中 次郎"
    # the caller's BYE once more, as a retransmission: relayed again, recorded no more
    # (Kamailio's transaction answers it by sending the caller its 200 again)
    assert len(_bye_answers(caller, call_id)) == 1
    _replay_to_kamailio(pbx, sent_by(caller, "BYE ", call_id))
    assert len(_bye_answers(caller, call_id, count=2)) == 2
    assert len(pbx.ended_lines(call_id)) == 1, pbx.ended_lines(call_id)
    assert pbx.history_row(call_id) == row



def test_cancel_records_the_unanswered_call_once(pbx, agent, emulator):
    caller = pbx.phone(CONTACT_NUMBER)
    incoming, _ = ring(caller, agent)
    hang_up(caller, agent)          # before the agent answers: CANCEL
    row = pbx.history_row(incoming["id"])
    assert (row["direction"], row["answered"]) == ("inbound", 0)
    assert (row["status"], row["label"]) == ("matched", "株式会社サンプル / 山田 太郎")
    assert any(m.startswith("CANCEL ") for m in agent.received("CANCEL "))
    time.sleep(0.3)
    assert len(pbx.ended_lines(incoming["id"])) == 1


def test_a_rejected_call_is_recorded_once(pbx, agent, emulator):
    caller = pbx.phone(UNKNOWN_NUMBER, display="Unknown Caller")
    incoming, _ = ring(caller, agent)
    hang_up(agent, caller)          # the agent rejects the ringing call
    row = pbx.history_row(incoming["id"])
    assert (row["direction"], row["answered"], row["status"]) == ("inbound", 0, "not_registered")
    time.sleep(0.3)
    assert len(pbx.ended_lines(incoming["id"])) == 1


def test_a_locked_database_delays_no_ringing_and_loses_no_call(pbx, agent, emulator):
    """While another process holds the database's write lock, the call still rings within the
    budget and the BYE still reaches the agent. The end is recorded in Kamailio's own thread
    (a Kamailio 5 worker cannot run a Python thread later), right after the lock is released."""
    import sqlite3

    caller = pbx.phone(CONTACT_NUMBER)
    lock = sqlite3.connect(pbx.home / "sfcti.db", isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        incoming, seconds = ring(caller, agent)
        assert seconds < BUDGET + 0.05
        agent.accept()
        caller.wait_event("CALL_ESTABLISHED")
        hang_up(caller, agent)
        time.sleep(0.3)
        assert lock.execute("SELECT count(*) FROM calls WHERE call_id = ?",
                            (incoming["id"],)).fetchone() == (0,)
    finally:
        lock.rollback()
        lock.close()
    row = pbx.history_row(incoming["id"], timeout=1.0)
    assert (row["direction"], row["answered"]) == ("inbound", 1)


class RawAgentSide:
    """A trusted PBX's side of an agent's call, on a plain UDP socket: what it sends is written
    out here, and what it receives is exactly what came over the wire."""

    def __init__(self, kamailio_port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port, self.kamailio_port = self.sock.getsockname()[1], kamailio_port
        self.call_id, self.tag, self.branch = f"raw-{time.time_ns()}", "rawtag1", f"z9hG4bKraw{time.time_ns()}"

    def send(self, method: str, uri: str, extra: str = "", to_tag: str = "", body: str = "") -> None:
        """Send one request of the call (INVITE, CANCEL, or ACK of a failure) to Kamailio."""
        to = f"<sip:{uri.split(':')[1].split('@')[0]}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
        message = (f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch={self.branch};rport\r\n"
                   f"Max-Forwards: 70\r\nFrom: <sip:gateway@127.0.0.1>;tag={self.tag}\r\nTo: {to}\r\n"
                   f"Call-ID: {self.call_id}\r\nCSeq: 1 {method}\r\n"
                   f"Contact: <sip:gateway@127.0.0.1:{self.port}>\r\n{extra}"
                   f"Content-Length: {len(body.encode())}\r\n\r\n{body}")
        self.sock.sendto(message.encode(), ("127.0.0.1", self.kamailio_port))

    def reply(self, start: str) -> str:
        """The next reply whose status line starts with ``start`` (others are skipped)."""
        while True:
            message = self.sock.recv(65535).decode("utf-8", "replace")
            if message.startswith(start):
                return message

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def test_agent_named_by_a_trusted_header_receives_the_called_partys_name(pbx, emulator):
    """An INVITE carrying X-Sfcti-Agent (from an agent address) is an agent's call: the 180 it
    gets back names the called party, and the header itself never reaches the called phone."""
    customer = pbx.phone(LEAD_NUMBER)
    gateway = RawAgentSide(pbx.port)
    uri = f"sip:{LEAD_NUMBER}@127.0.0.1:{customer.sip_port}"
    try:
        gateway.send("INVITE", uri, "X-Sfcti-Agent: yamada\r\nContent-Type: application/sdp\r\n", body=SDP)
        ringing = gateway.reply("SIP/2.0 180")
        identity = f'"田中工業 / 田中 次郎" <sip:{LEAD_NUMBER}@127.0.0.1>'
        assert header_values(ringing, "P-Asserted-Identity") == [identity]
        assert header_values(ringing, "Remote-Party-ID") == [f"{identity};party=called;screen=no;privacy=off"]
        customer.wait_event("CALL_INCOMING")
        gateway.send("CANCEL", uri)
        failed = gateway.reply("SIP/2.0 487")
        to_tag = re.search(r";tag=([^;\s]+)", header_values(failed, "To")[0]).group(1)
        gateway.send("ACK", uri, to_tag=to_tag)
        customer.wait_event("CALL_CLOSED")
    finally:
        gateway.close()
    invite = [m for m in customer.received("INVITE ") if gateway.call_id in header_values(m, "Call-ID")][-1]
    assert header_values(invite, "X-Sfcti-Agent") == []
    row = pbx.history_row(gateway.call_id)
    assert (row["direction"], row["answered"], row["agent_id"], row["remote_number"]) == \
        ("outbound", 0, "yamada", LEAD_NUMBER)


def test_an_unanswered_call_times_out_and_keeps_the_name_the_agent_saw(pbx, agent, emulator):
    """Nobody answers: after --ring-timeout Kamailio's timer process fails the call (408 to the
    caller, CANCEL to the agent). That process never screened the call, yet the row holds the
    name the agent's phone showed."""
    national, _ = fresh()
    emulator.add_record("Contact", {"LastName": "履歴", "FirstName": "残る", "Phone": national})
    caller = pbx.phone(national.replace("-", ""))
    incoming, _ = ring(caller, agent)
    assert incoming["peerdisplayname"] == "履歴 残る"
    started = time.monotonic()
    closed = caller.wait_event("CALL_CLOSED", timeout=RING_TIMEOUT + 5)
    agent.wait_event("CALL_CLOSED")
    assert time.monotonic() - started > RING_TIMEOUT - 1
    assert "408" in closed["param"]
    row = pbx.history_row(incoming["id"])
    assert (row["status"], row["label"], row["answered"]) == ("matched", "履歴 残る", 0)


@pytest.mark.parametrize("privacy, shown, status", [
    ("", "株式会社サンプル / 山田 太郎", "matched"),
    ("Privacy: id\r\n", None, "withheld"),
])
def test_the_carriers_asserted_identity_names_the_caller_unless_privacy_is_asked(
        pbx, agent, emulator, privacy, shown, status):
    """A carrier sends the caller's number in P-Asserted-Identity (the From may say anything):
    the agent's phone shows the Salesforce name of that number, unless the caller asked for
    privacy (RFC 3325 ``Privacy: id``): then the screen and the history say withheld."""
    carrier = RawAgentSide(pbx.port)   # From user "gateway", no agent header: a call from outside
    uri = agent.uri
    try:
        carrier.send("INVITE", uri, f"P-Asserted-Identity: <sip:{CONTACT_NUMBER}@127.0.0.1>\r\n"
                     f"{privacy}Content-Type: application/sdp\r\n", body=SDP)
        incoming = agent.wait_event("CALL_INCOMING")
        carrier.send("CANCEL", uri)
        failed = carrier.reply("SIP/2.0 487")
        carrier.send("ACK", uri, to_tag=re.search(r";tag=([^;\s]+)", header_values(failed, "To")[0]).group(1))
        agent.wait_event("CALL_CLOSED")
    finally:
        carrier.close()
    assert (incoming.get("peerdisplayname") or None) == shown
    row = pbx.history_row(carrier.call_id)
    assert (row["direction"], row["status"], row["answered"]) == ("inbound", status, 0)
