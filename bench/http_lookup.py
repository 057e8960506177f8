"""Latency of `sfcti serve`'s GET /v1/lookup under a paced open-loop load.

    .venv/bin/python bench/http_lookup.py [--rate 200] [--seconds 10]

A real `sfcti serve` process (waitress, 16 threads) on loopback, its instance connected to an
in-process emulator (1,000-record org). Requests are sent on a fixed schedule (``--rate`` per
second in all, whatever the answers do: an open loop, so a slow answer cannot hide the queue it
causes) from a pool of client threads, each request on a new TCP connection as a one-shot curl
would. Latency runs from the scheduled send time to the last byte of the answer.

Three kinds of request take turns, so machine noise hits them alike:

- registered: ``format=text`` lookup of a number in the local contacts (what Asterisk's CURL()
  asks for a known caller);
- not registered: a number Salesforce has no record of, answered from the remembered no-match;
- baseline: ``GET /v1/health`` on the same server: HTTP, waitress and Flask without the plugin.

A second baseline: the same registered lookup through the hook in this process (no HTTP).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import os
import pathlib
import platform
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import percentile  # noqa: E402

CLIENT_THREADS = 48
KINDS = ("registered", "not registered", "baseline: /v1/health")


def api_calls(emu) -> int:
    """API requests the emulator received so far (logins excluded: not API calls)."""
    return sum(n for kind, n in dict(emu.api_calls).items() if kind != "login")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> tuple[int, str]:
    """One GET on a new connection; (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        connection.close()


def start_service(home: str, port: int) -> subprocess.Popen:
    """`sfcti serve` for ``home`` on ``port``, once /v1/health answers."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SFCTI_SERVE_TOKEN", None)
    process = subprocess.Popen([sys.executable, "-c", "from cli import main; main()",
                                "--home", home, "serve", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if get(port, "/v1/health")[0] == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"sfcti serve did not start: {process.communicate()[1]}")


def prepare(home: str, emu, org) -> tuple[list[str], list[str]]:
    """Connect the instance to ``emu``; register 200 of the org's numbers as contacts; return
    (registered numbers, numbers no record has)."""
    from core.phone import parse_phone
    from core.settings import save_settings
    from core.store import open_store

    store = open_store(home)
    save_settings(store, dict(username=emu.username, password=emu.password,
                              security_token=emu.security_token, login_url=emu.login_url,
                              ca_bundle=emu.ca_path, contact_fetch="never"))
    numbers = sorted({parse_phone(r.get("Phone")).e164 for r in org.records["Contact"]} - {None})
    registered = numbers[:200]
    for i, e164 in enumerate(registered):
        store.upsert_contact(e164, object="Contact", record_id=f"003{i:015d}",
                             company="株式会社ベンチ", person=f"担当 {i}",
                             record_url="https://example/")
    unknown = [f"+8150{9000_0000 + i:08d}" for i in range(50)]
    return registered, unknown


def schedule(rate: float, seconds: float, registered: list[str], unknown: list[str]) -> list:
    """(send offset in seconds, kind, path) for every request of the run."""
    plan = []
    for i in range(int(rate * seconds)):
        kind = KINDS[i % 3]
        if kind == "registered":
            path = f"/v1/lookup?format=text&number={registered[i % len(registered)]}"
        elif kind == "not registered":
            path = f"/v1/lookup?format=text&number={unknown[i % len(unknown)]}"
        else:
            path = "/v1/health"
        plan.append((i / rate, kind, path))
    return plan


def run_open_loop(port: int, plan: list) -> dict:
    """Send ``plan`` on schedule; per kind, the latencies (ms) of 200 answers and the failures."""
    started = time.perf_counter() + 0.2
    results: dict = {kind: [] for kind in KINDS}
    failures: dict = {kind: 0 for kind in KINDS}

    def send(offset, kind, path):
        delay = started + offset - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            status, _ = get(port, path)
        except OSError:
            status = 0
        return kind, status, (time.perf_counter() - started - offset) * 1000

    with concurrent.futures.ThreadPoolExecutor(CLIENT_THREADS) as pool:
        futures = [pool.submit(send, *item) for item in plan]
        for future in futures:
            kind, status, took = future.result()
            if status == 200:
                results[kind].append(took)
            else:
                failures[kind] += 1
    return {"latency": results, "failures": failures,
            "wall": time.perf_counter() - started}


def in_process_hook(home: str, registered: list[str], calls: int = 2000) -> list[float]:
    """Latency (ms) of on_incoming_call for registered numbers, in this process (no HTTP)."""
    from bridges.host import load_host
    from plugin.call import Call

    os.environ.update(SFCTI_HOME=home, SFCTI_JOBS="off")
    pm = load_host()
    took = []
    for i in range(calls):
        call = Call(remote_number=registered[i % len(registered)])
        started = time.perf_counter()
        pm.hook.on_incoming_call(call=call)
        took.append((time.perf_counter() - started) * 1000)
    return took


def run(rate: float, seconds: float) -> dict:
    """The whole measurement."""
    from core.runtime import shutdown_all
    from emulator import Emulator, generate_org

    org = generate_org(size=1000, seed=1)
    with tempfile.TemporaryDirectory(prefix="sfcti-bench-http-") as home, Emulator(org) as emu:
        registered, unknown = prepare(home, emu, org)
        port = free_port()
        process = start_service(home, port)
        try:
            for number in unknown:      # Salesforce asked once: the no-match is remembered
                get(port, f"/v1/lookup?number={number}")
            checks = (get(port, f"/v1/lookup?format=text&number={registered[0]}")[1],
                      get(port, f"/v1/lookup?format=text&number={unknown[0]}")[1])
            api_before = api_calls(emu)
            loop = run_open_loop(port, schedule(rate, seconds, registered, unknown))
            loop["api_calls"] = api_calls(emu) - api_before
        finally:
            process.terminate()
            process.wait(timeout=15)
        loop["hook"] = in_process_hook(home, registered)
        shutdown_all()
    loop.update(rate=rate, seconds=seconds, checks=checks)
    return loop


def report(figures: dict) -> str:
    """The figures as a markdown section."""
    latency = figures["latency"]
    base50 = percentile(latency[KINDS[2]], 50)
    base99 = percentile(latency[KINDS[2]], 99)
    sent = sum(len(v) for v in latency.values()) + sum(figures["failures"].values())
    lines = [
        "## HTTP lookup service",
        "",
        f"`bench/http_lookup.py` on {platform.machine()} / {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}: a real `sfcti serve` (waitress, 16 threads) on loopback, "
        f"{figures['rate']:g} requests/s in all for {figures['seconds']:g} s on a fixed schedule "
        f"(open loop, {sent} requests, a new TCP connection each, sent from {CLIENT_THREADS} "
        "client threads on the same 2 CPUs), the three kinds taking turns. Latency in ms from the "
        "scheduled send to the last byte. Answers checked first: "
        f"{figures['checks'][0]!r} and {figures['checks'][1]!r}. Salesforce API calls during "
        f"the run: {figures['api_calls']}.",
        "",
        "| request | answers | failed | p50 | p99 | max | p50 / baseline | p99 / baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        values = latency[kind]
        p50, p99 = percentile(values, 50), percentile(values, 99)
        lines.append(f"| {kind} | {len(values)} | {figures['failures'][kind]} | {p50:.2f} | "
                     f"{p99:.2f} | {max(values):.2f} | {p50 / base50:.2f}x | {p99 / base99:.2f}x |")
    hook = figures["hook"]
    lines += [
        f"| hook in-process, registered (no HTTP) | {len(hook)} | 0 | "
        f"{percentile(hook, 50):.2f} | {percentile(hook, 99):.2f} | {max(hook):.2f} | | |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Measure and print the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, in all")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(report(run(args.rate, args.seconds)))


if __name__ == "__main__":
    main()
