"""What the Kamailio bridge adds to a call: latency per INVITE and memory per Kamailio worker.

    .venv/bin/python bench/kamailio.py [--write-docs]

Two Kamailio processes run side by side, each with 8 UDP workers: one on the cfg that
``sfcti kamailio-config`` renders (the bridge), one on the same cfg with the bridge taken out
(no app_python3, no ``route(SFCTI)``): Kamailio relaying without it. A SIP caller and callee on
loopback UDP sockets (:class:`SipProbe`) send each INVITE through one and then the other (the
order alternating), and time it from the caller's send to the callee's receive; the callee
answers 486 so each call ends at once (and the bridge records it in the history).

- registered: callers that are registered contacts (one indexed SQLite read per ring);
- cold: callers seen for the first time (one live lookup each to the emulator on loopback);
- memory: RSS and PSS of each UDP worker of both, after the calls (PSS counts shared pages
  once across the processes sharing them: the plugin is imported before Kamailio forks).

``--write-docs`` replaces the "## Kamailio bridge" section of docs/benchmarks.md.
"""

from __future__ import annotations

import os
import pathlib
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # tests/sip.py: starting and stopping Kamailio
from bench.common import main as bench_main, percentile  # noqa: E402

CHILDREN = 8
BUDGET_MS = 800
REGISTERED_CALLS = 2000
COLD_CALLS = 300
SECTION = "## Kamailio bridge"


class SipProbe:
    """A UAC and a UAS on loopback UDP: each ``invite`` goes from the UAC through the proxy to the
    UAS, which answers 486 (the proxy's transaction and the call end at once)."""

    def __init__(self, proxy_port: int, timeout: float = 5.0):
        self.proxy = ("127.0.0.1", proxy_port)
        self.uac, self.uas = self._socket(timeout), self._socket(timeout)
        self.uac_port, self.uas_port = self.uac.getsockname()[1], self.uas.getsockname()[1]

    @staticmethod
    def _socket(timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout)
        return sock

    def close(self) -> None:
        """Close both sockets."""
        self.uac.close()
        self.uas.close()

    def invite(self, number: str) -> tuple[float, str]:
        """One call from ``number``: (milliseconds until the INVITE reached the UAS, its From)."""
        call_id, branch, tag = uuid.uuid4().hex, "z9hG4bK" + uuid.uuid4().hex, uuid.uuid4().hex[:10]
        ruri = f"sip:agent@127.0.0.1:{self.uas_port}"
        via = f"SIP/2.0/UDP 127.0.0.1:{self.uac_port};branch={branch};rport"
        from_ = f"<sip:{number}@127.0.0.1>;tag={tag}"
        common = (f"Via: {via}\r\nMax-Forwards: 70\r\nFrom: {from_}\r\n")
        invite = (f"INVITE {ruri} SIP/2.0\r\n{common}To: <{ruri}>\r\nCall-ID: {call_id}\r\n"
                  f"CSeq: 1 INVITE\r\nContact: <sip:{number}@127.0.0.1:{self.uac_port}>\r\n"
                  "Content-Length: 0\r\n\r\n")
        sent = time.perf_counter()
        self.uac.sendto(invite.encode(), self.proxy)
        request, source = self._receive(self.uas, lambda m: m.startswith("INVITE ") and call_id in m)
        took = (time.perf_counter() - sent) * 1000
        self.uas.sendto(self._busy(request).encode(), source)
        response, _ = self._receive(self.uac, lambda m: m.startswith("SIP/2.0 486") and call_id in m)
        ack = (f"ACK {ruri} SIP/2.0\r\n{common}To: {header(response, 'To')}\r\nCall-ID: {call_id}\r\n"
               "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
        self.uac.sendto(ack.encode(), self.proxy)
        return took, header(request, "From")

    @staticmethod
    def _receive(sock: socket.socket, wanted) -> tuple[str, tuple]:
        while True:  # skips 100 Trying, the ACK of the 486 and late retransmissions
            data, source = sock.recvfrom(65535)
            message = data.decode("utf-8", "replace")
            if wanted(message):
                return message, source

    @staticmethod
    def _busy(request: str) -> str:
        kept = [line for line in request.split("\r\n")[1:] if line and line.split(":", 1)[0].strip()
                .lower() in ("via", "v", "from", "f", "call-id", "i", "cseq", "record-route")]
        to = header(request, "To") + ";tag=" + uuid.uuid4().hex[:10]
        return "SIP/2.0 486 Busy Here\r\n" + "\r\n".join(kept) + f"\r\nTo: {to}\r\nContent-Length: 0\r\n\r\n"


def header(message: str, name: str) -> str:
    """The first value of header ``name`` (or its compact form) in a SIP message."""
    names = {name.lower(), {"from": "f", "to": "t", "via": "v", "call-id": "i"}.get(name.lower())}
    for line in message.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() in names:
            return value.strip()
    return ""


def without_bridge(cfg: str) -> str:
    """The bridge's cfg with the bridge taken out: no app_python3, no handler calls."""
    kept = [line.replace("route(SFCTI);", "$var(sfcti) = 0;  # the bridge taken out")
            for line in cfg.splitlines() if "app_python3" not in line and "python_exec" not in line]
    return "\n".join(kept) + "\n"


def workers_memory(kamailio, children: int) -> list[tuple[float, float]]:
    """(RSS MB, PSS MB) of each UDP worker: Kamailio forks them first, so they are the
    ``children`` lowest process ids after the main process."""
    pids = sorted(int(p) for p in subprocess.run(
        ["pgrep", "-P", str(kamailio.process.pid)], capture_output=True, text=True).stdout.split())
    figures = []
    for pid in pids[:children]:
        rollup = pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text()
        kb = {key: int(value) for key, value in re.findall(r"^(Rss|Pss):\s+(\d+) kB", rollup, re.M)}
        figures.append((kb["Rss"] / 1024, kb["Pss"] / 1024))
    return figures


def alternate(probes: dict, numbers: list[str]) -> dict:
    """Each number through the relay and the bridge, the order alternating; latencies of each,
    and how many INVITEs reached the callee with a Salesforce name."""
    times = {"relay": [], "bridge": []}
    named = 0
    for i, number in enumerate(numbers):
        for side in (("relay", "bridge") if i % 2 == 0 else ("bridge", "relay")):
            took, from_header = probes[side].invite(number)
            times[side].append(took)
            named += side == "bridge" and from_header.startswith('"')
    return dict(times, named=named)


def kamailio_config(home: str, port: int) -> str:
    """The cfg ``sfcti kamailio-config`` prints for this instance, with 8 workers."""
    command = [sys.executable, "-c", "from cli import main; main()", "--home", home,
               "kamailio-config", "--listen", f"udp:127.0.0.1:{port}", "--children", str(CHILDREN)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout


def run() -> dict:
    """All measurements; returns the figures."""
    from emulator import Emulator, generate_org
    from sip import Kamailio, free_port_block

    from core.phone import parse_phone
    from core.settings import save_settings
    from core.store import open_store

    started = time.perf_counter()
    work = pathlib.Path(tempfile.mkdtemp(prefix="sfcti-bench-kamailio-"))
    home = str(work / "instance")
    org = generate_org(size=1000, seed=1)
    numbers = list(dict.fromkeys(
        e164 for obj in ("Contact", "Account", "Lead") for record in org.records[obj]
        if (e164 := parse_phone(record.get("Phone")).e164)))
    with Emulator(org) as emu:
        store = open_store(home)
        save_settings(store, dict(username=emu.username, password=emu.password,
                                  security_token=emu.security_token, login_url=emu.login_url,
                                  ca_bundle=emu.ca_path, contact_fetch="never",
                                  screen_budget_ms=BUDGET_MS))
        registered = numbers[:200]
        for i, e164 in enumerate(registered):
            store.upsert_contact(e164, object="Contact", record_id=f"003{i:015d}", company="社",
                                 person="人", record_url="https://example/")
        bridge_port, relay_port = free_port_block(1), free_port_block(1)
        cfg = kamailio_config(home, bridge_port)
        relay_cfg = without_bridge(cfg).replace(f":{bridge_port}", f":{relay_port}")
        with Kamailio(cfg, work / "bridge", bridge_port) as bridge, \
                Kamailio(relay_cfg, work / "relay", relay_port) as relay:
            probes = {"bridge": SipProbe(bridge_port), "relay": SipProbe(relay_port)}
            alternate(probes, registered[:50])  # warm-up: each worker opens the store, logs in
            warm = alternate(probes, [registered[i % len(registered)] for i in range(REGISTERED_CALLS)])
            cold = alternate(probes, numbers[200:200 + COLD_CALLS])
            memory = {"bridge": workers_memory(bridge, CHILDREN),
                      "relay": workers_memory(relay, CHILDREN)}
            for probe in probes.values():
                probe.close()
    return {"registered": warm, "cold": cold, "memory": memory,
            "bench_s": time.perf_counter() - started}


def _row(name: str, case: dict, note: str) -> str:
    relay, bridge = case["relay"], case["bridge"]
    r50, r99, b50, b99 = (percentile(relay, 50), percentile(relay, 99),
                          percentile(bridge, 50), percentile(bridge, 99))
    return (f"| {name} | {len(bridge)} | {r50:.3f} | {r99:.3f} | {b50:.3f} | {b99:.3f} | "
            f"**{b50 - r50:+.3f}** | {b99 - r99:+.3f} | {case['named']} | {note} |")


def report(figures: dict) -> str:
    """The figures as the markdown of the "## Kamailio bridge" section."""
    memory = figures["memory"]

    def mean(side: str, index: int) -> float:
        return sum(m[index] for m in memory[side]) / len(memory[side])

    added_rss, added_pss = mean("bridge", 0) - mean("relay", 0), mean("bridge", 1) - mean("relay", 1)
    max_pss = max(b[1] - r[1] for b, r in zip(memory["bridge"], memory["relay"]))
    lines = [
        SECTION,
        "",
        f"`bench/kamailio.py` on {platform.machine()} / {os.cpu_count()} CPUs: two Kamailio "
        f"processes side by side, {CHILDREN} UDP workers each, one on the cfg `sfcti "
        "kamailio-config` renders, one on the same cfg without the bridge (no app_python3, no "
        "handler call). Each INVITE goes from a SIP caller through one and then the other (order "
        "alternating) to a callee answering 486, all on loopback UDP; the time is from the "
        "caller's send to the callee's receive, in milliseconds. Emulator org of 1,000 records "
        f"over HTTPS on loopback (no added latency). Bench wall time: {figures['bench_s']:.0f} s. "
        "How to run: `.venv/bin/python bench/kamailio.py [--write-docs]` (part of `make bench`).",
        "",
        "| callers | INVITEs | relay p50 | relay p99 | bridge p50 | bridge p99 | added p50 "
        "| added p99 | named by the bridge | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        _row("registered contacts", figures["registered"],
             "target: under 1 ms added median"),
        _row("first call of a number (cold cache)", figures["cold"],
             "one live lookup (composite request) per INVITE: the phone index is not built "
             "here, and the live lookup misses numbers stored in odd forms"),
        "",
        f"Memory per UDP worker after the calls ({CHILDREN} workers each, mean over the workers): "
        f"without the bridge {mean('relay', 0):.1f} MB RSS / {mean('relay', 1):.1f} MB PSS; "
        f"with it {mean('bridge', 0):.1f} MB RSS / {mean('bridge', 1):.1f} MB PSS. The bridge adds "
        f"**{added_pss:.1f} MB PSS** per worker (at most {max_pss:.1f} MB; target under 20 MB) "
        f"and {added_rss:.1f} MB RSS: the plugin is imported in Kamailio's main process before "
        "it forks, so most of its pages are shared.",
        "",
        "Reading the figures: a registered caller costs about 0.05 ms in the hook itself; most of "
        "the added median is the hand-over to a worker thread that lets the INVITE go on "
        "unchanged within the budget whatever happens below (a locked database, a hanging "
        "Salesforce), and the few milliseconds the handler lets the worker's threads finish "
        "before Kamailio takes the GIL back. A cold number is one composite request to the "
        "emulator on loopback; against a real org add the network round trip.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run, report)
