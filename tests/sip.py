"""Real SIP parts for tests and benchmarks: a Kamailio running a rendered kamailio.cfg, and
headless baresip phones driven through their ctrl_tcp interface (netstring JSON).

Everything started here is stopped by its process id (the process group Kamailio's workers
belong to), by ``stop()`` or the context manager.

    pbx = Pbx(workdir, emulator, "--agent-user", "agent").start()   # Kamailio on its own instance
    agent, alice = pbx.phone("agent"), pbx.phone("0312345678")
    alice.dial(agent.uri); agent.wait_event("CALL_INCOMING")["peerdisplayname"]
    pbx.stop()
"""

from __future__ import annotations

import json
import os
import pathlib
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import uuid

from click.testing import CliRunner

from cli import main
from core import history
from core.store import open_store
from helpers import connect

KAMAILIO = "/usr/sbin/kamailio"
BARESIP = "/usr/bin/baresip"
BARESIP_MODULES = "/usr/lib/baresip/modules"
LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------------------------------------
# ports
# ---------------------------------------------------------------------------------------------

def _free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                return False
    return True


def free_port_block(size: int = 3) -> int:
    """The first of ``size`` consecutive ports free for UDP and TCP on loopback (baresip binds
    its SIP port and the next one for TLS)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((LOOPBACK, 0))
            first = s.getsockname()[1]
        if first + size < 65535 and all(_free(first + i) for i in range(size)):
            return first
    raise RuntimeError("no free block of ports on loopback")


def sip_ping(port: int, timeout: float = 0.3) -> bool:
    """Whether a SIP server answers an OPTIONS on ``127.0.0.1:port`` (UDP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        s.settimeout(timeout)
        me = s.getsockname()[1]
        tag = uuid.uuid4().hex[:8]
        request = (f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {LOOPBACK}:{me};branch=z9hG4bK{tag}\r\n"
                   f"Max-Forwards: 5\r\nFrom: <sip:ping@{LOOPBACK}>;tag={tag}\r\n"
                   f"To: <sip:{LOOPBACK}:{port}>\r\nCall-ID: ping-{tag}\r\nCSeq: 1 OPTIONS\r\n"
                   f"Content-Length: 0\r\n\r\n")
        s.sendto(request.encode(), (LOOPBACK, port))
        try:
            return s.recv(65535).startswith(b"SIP/2.0 ")
        except OSError:
            return False


def _stop_group(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """Stop a process started in its own session, and everything it forked, by its id."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
        except ProcessLookupError:
            pass
    try:  # workers outliving their main process
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------------------------
# Kamailio
# ---------------------------------------------------------------------------------------------

class Kamailio:
    """Kamailio in the foreground (``-DD -E``) on a cfg text, its log in ``workdir/kamailio.log``."""

    def __init__(self, cfg_text: str, workdir: pathlib.Path, port: int, env: dict | None = None):
        self.workdir = pathlib.Path(workdir)
        self.port = port
        self.cfg_text = cfg_text
        self.env = env
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "kamailio.log"

    def start(self, timeout: float = 15.0) -> "Kamailio":
        """Start Kamailio and wait until it answers SIP."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "kamailio.cfg"
        cfg.write_text(self.cfg_text, encoding="utf-8")
        rundir = self.workdir / "run"
        rundir.mkdir(exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [KAMAILIO, "-DD", "-E", "-f", str(cfg), "-Y", str(rundir), "-w", str(self.workdir),
                 "-P", str(self.workdir / "kamailio.pid"), "-m", "64", "-M", "8"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                env=self.env)
        deadline = time.monotonic() + timeout
        while not sip_ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Kamailio did not start:\n{self.log()[-4000:]}")
        return self

    def log(self) -> str:
        """What Kamailio logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Stop Kamailio and its workers."""
        if self.process is not None:
            _stop_group(self.process)

    def __enter__(self) -> "Kamailio":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# baresip phones
# ---------------------------------------------------------------------------------------------

def _netstring(payload: dict) -> bytes:
    data = json.dumps(payload).encode("utf-8")
    return str(len(data)).encode() + b":" + data + b","


class Phone:
    """A headless baresip phone with one account ``<sip:USER@127.0.0.1>`` using Kamailio as its
    outbound proxy; answers only when told (``answermode manual``). Its SIP trace (every
    message it sends and receives) is in ``workdir/baresip.log``."""

    def __init__(self, workdir: pathlib.Path, user: str, proxy_port: int, display: str | None = None):
        self.workdir = pathlib.Path(workdir)
        self.user, self.proxy_port, self.display = user, proxy_port, display
        self.sip_port = free_port_block(3)
        self.ctrl_port = free_port_block(1)
        self.process: subprocess.Popen | None = None
        self.events: "queue.Queue[dict]" = queue.Queue()
        self._responses: dict[str, "queue.Queue[dict]"] = {}
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.log_path = self.workdir / "baresip.log"

    @property
    def uri(self) -> str:
        """The phone's direct address: dial it to ring this phone."""
        return f"sip:{self.user}@{LOOPBACK}:{self.sip_port}"

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        audio = self.workdir / "heard.wav"
        (self.workdir / "config").write_text("\n".join([
            f"module_path {BARESIP_MODULES}",
            "module g711.so", "module ausine.so", "module aufile.so", "module ctrl_tcp.so",
            "module_app account.so", "module_app menu.so",
            "audio_source ausine,440", "ausrc_srate 48000", "ausrc_channels 2", "auplay_srate 48000", f"audio_player aufile,{audio}", f"audio_alert aufile,{audio}",
            "answermode manual", f"ctrl_tcp_listen {LOOPBACK}:{self.ctrl_port}",
            f"sip_listen {LOOPBACK}:{self.sip_port}", "audio_jitter_buffer_delay 0-0", ""]))
        name = f'"{self.display}" ' if self.display else ""
        (self.workdir / "accounts").write_text(
            f'{name}<sip:{self.user}@{LOOPBACK};transport=udp>;regint=0;'
            f'outbound="sip:{LOOPBACK}:{self.proxy_port};transport=udp"\n')

    def start(self, timeout: float = 10.0) -> "Phone":
        """Start baresip and connect to its control port."""
        self._write_config()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([BARESIP, "-f", str(self.workdir), "-s"],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while self._sock is None:
            try:
                self._sock = socket.create_connection((LOOPBACK, self.ctrl_port), timeout=1.0)
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"baresip did not start:\n{self.log()[-3000:]}")
                time.sleep(0.05)
        self._sock.settimeout(None)
        threading.Thread(target=self._read, name=f"baresip-{self.user}", daemon=True).start()
        return self

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while True:
                head, colon, rest = buffer.partition(b":")
                if not colon or not head.isdigit() or len(rest) < int(head) + 1:
                    break
                size = int(head)
                message, buffer = json.loads(rest[:size]), rest[size + 1:]
                if message.get("event"):
                    self.events.put(message)
                elif message.get("token") in self._responses:
                    self._responses[message["token"]].put(message)

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> dict:
        """Run one baresip command (``dial``, ``accept``, ``hangup``...) and return its response."""
        token = uuid.uuid4().hex[:12]
        answer: "queue.Queue[dict]" = queue.Queue()
        self._responses[token] = answer
        with self._lock:
            self._sock.sendall(_netstring({"command": command, "params": params, "token": token}))
        try:
            return answer.get(timeout=timeout)
        finally:
            self._responses.pop(token, None)

    def dial(self, uri: str) -> dict:
        """Dial ``uri`` (through Kamailio)."""
        return self.command("dial", uri)

    def accept(self) -> dict:
        """Answer the ringing call."""
        return self.command("accept")

    def hangup(self) -> dict:
        """Hang up (or cancel, or reject) the current call."""
        return self.command("hangup")

    def wait_event(self, kind: str, timeout: float = 5.0) -> dict:
        """The next event of type ``kind`` (CALL_INCOMING, CALL_ESTABLISHED, CALL_CLOSED...),
        skipping others; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"{self.user}: no {kind} in {timeout} s; log:\n{self.log()[-3000:]}") from None
            if event.get("type") == kind:
                return event

    def drain(self) -> None:
        """Forget the events received so far."""
        while not self.events.empty():
            self.events.get_nowait()

    def log(self) -> str:
        """baresip's output so far (with the SIP trace)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def received(self, start: str = "") -> list[str]:
        """The SIP messages this phone received (from its SIP trace) whose first line starts
        with ``start`` (e.g. "SIP/2.0 180"), oldest first."""
        return [message for source, target, message in sip_trace(self.log())
                if target.endswith(f":{self.sip_port}") and message.startswith(start)]

    def stop(self) -> None:
        """Quit baresip."""
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        if self.process is not None:
            _stop_group(self.process)

    def __enter__(self) -> "Phone":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# a Kamailio on its own instance folder, with phones
# ---------------------------------------------------------------------------------------------

class Pbx:
    """A Kamailio on its own instance folder, and the phones calling through it."""

    def __init__(self, workdir: pathlib.Path, emu, *options: str):
        """An instance folder in ``workdir`` connected to the emulator ``emu``, and the cfg
        `sfcti kamailio-config --listen udp:127.0.0.1:PORT OPTIONS...` prints for it."""
        self.workdir, self.home = pathlib.Path(workdir), pathlib.Path(workdir) / "instance"
        self.store = open_store(self.home)
        connect(self.store, emu)
        self.port = free_port_block(1)
        result = CliRunner().invoke(main, ["--home", str(self.home), "kamailio-config", "--listen",
                                           f"udp:{LOOPBACK}:{self.port}", *options])
        assert result.exit_code == 0, result.output
        self.kamailio = Kamailio(result.stdout, self.workdir / "kamailio", self.port)
        self.phones: dict[str, Phone] = {}

    def start(self) -> "Pbx":
        """Start Kamailio."""
        self.kamailio.start()
        return self

    def phone(self, user: str, display: str | None = None) -> Phone:
        """The phone of SIP user ``user`` (started on first use), with no events pending."""
        if user not in self.phones:
            self.phones[user] = Phone(self.workdir / f"phone-{user}", user, self.port, display).start()
        self.phones[user].drain()
        return self.phones[user]

    def stop(self) -> None:
        """Stop every phone and Kamailio."""
        for phone in self.phones.values():
            phone.stop()
        self.kamailio.stop()
        self.store.close()

    def ended_lines(self, call_id: str) -> list[str]:
        """Kamailio's log lines saying that call ``call_id`` ended."""
        return [line for line in self.kamailio.log().splitlines()
                if f"sfcti: call {call_id} ended" in line]

    def history_row(self, call_id: str, timeout: float = 5.0) -> dict:
        """The call's history row, once it is there."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return history.get_call(self.store, call_id)
            except history.CallNotFound:
                if time.monotonic() > deadline:
                    raise AssertionError(f"call {call_id} not in the history; Kamailio log:\n"
                                         f"{self.kamailio.log()[-3000:]}") from None
                time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# reading SIP traces
# ---------------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TRACE_BLOCK = re.compile(r"^#[ \t]*\n(?:UDP|TCP|TLS) (\S+) -> (\S+)\n(.*?)(?=^#[ \t]*\n|\Z)", re.M | re.S)


def sip_trace(log: str) -> list[tuple[str, str, str]]:
    """(source, target, message) of every SIP message in a baresip SIP trace (``-s``)."""
    return [(m.group(1), m.group(2), m.group(3)) for m in _TRACE_BLOCK.finditer(_ANSI.sub("", log))]


def header_values(message: str, name: str) -> list[str]:
    """The values of header ``name`` in a SIP message (case-insensitive, headers only)."""
    head = re.split(r"\r?\n\r?\n", message, maxsplit=1)[0]
    return [line.split(":", 1)[1].strip() for line in head.splitlines()
            if line.split(":", 1)[0].strip().lower() == name.lower()]
