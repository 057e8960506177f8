"""Load: 4 host processes sharing one instance folder, calls placed at a fixed rate.

    .venv/bin/python bench/loadtest.py [--quick] [--write-docs] [--profile]

Each host process loads the plugin through its entry point into a real ``PluginManager`` and
places its share of the calls from its own threads: ring hook, a short pause, end hook. The
numbers are a mix: numbers of the org (answered from the phone index), registered contacts,
unknown numbers seen before (a remembered no-match) and fresh unknown numbers (a live lookup).
Two phases against the emulator (in a process of its own, HTTPS on loopback): Salesforce
answering with 50 ms latency, then Salesforce hanging (requests never answered).

The promises checked (exit status 1 when one is broken): no hook raised into the host, no error
row while Salesforce answers (while it hangs only Salesforce rows), every call placed is in the
history exactly once (by call id), every ring answered within the screen budget + 50 ms.

``--profile`` times the stages of each ring inside the hosts (settings read, call facts, the
cached read, the wait for a lookup...) and the longest garbage collections, and prints where the
slow rings spent their time. ``--busy N`` runs N spinning processes beside the hosts (a loaded
machine; a screen out of budget, SCREEN_LATE, is then recorded but no error).
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import pathlib
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import Emu, answer, percentile, replace_marked  # noqa: E402

BUDGET_MS = 800
SLACK_MS = 50               # the promise: every ring within budget + 50 ms
PROCESSES = 4
THREADS = 8                 # host threads per process
RATE = 200                  # calls per second, all processes together
SECONDS = 60
QUICK_SECONDS = 10
PAUSE = 0.02                # seconds between a call's ring and its end
ORG_SIZE = 1000
REGISTERED = 300            # registered contacts (numbers outside the org)
SEEN_UNKNOWN = 300          # unknown numbers rung once before the run (remembered no-matches)
# the mix of numbers, per call: (kind, share)
MIX = (("indexed", 0.55), ("registered", 0.2), ("remembered", 0.2), ("fresh", 0.05))
LATENCY = 0.05

BEGIN = "<!-- loadtest:begin -->"
END = "<!-- loadtest:end -->"
RELIABILITY = ROOT / "docs" / "reliability.md"
INTRODUCTION = """## Load

`bench/loadtest.py` (`make loadtest`): host processes sharing one instance folder place calls at a
fixed rate against the emulator; every ring is timed from the host's side of the hook."""


# ---------------------------------------------------------------------------------------------
# the emulator's process
# ---------------------------------------------------------------------------------------------

def serve(pipe, size: int, seed: int) -> None:
    """Child process: the emulator with a generated org; answers "latency", "hang" and the
    bench/common commands until told to stop."""
    from emulator import Emulator, generate_org

    from bench.hooks import org_numbers

    org = generate_org(size=size, seed=seed)
    with Emulator(org) as emu:
        pipe.send({"login_url": emu.login_url, "ca_path": emu.ca_path, "username": emu.username,
                   "password": emu.password, "security_token": emu.security_token,
                   "numbers": org_numbers(org),
                   "contact_ids": [r["Id"] for r in org.records["Contact"][:REGISTERED]]})

        def latency(seconds):
            emu.faults.latency = seconds
            return True

        def hang(on):
            emu.faults.hang = on
            return True

        answer(pipe, emu, {"latency": latency, "hang": hang})


# ---------------------------------------------------------------------------------------------
# a host process
# ---------------------------------------------------------------------------------------------

def number_plan(org_numbers: list[str], calls: int, seed: int) -> dict:
    """The numbers to dial, by kind; ``fresh`` unknown numbers are never dialled twice."""
    rng = random.Random(seed)
    taken = set(org_numbers)

    def unknown(count):
        out = []
        while len(out) < count:
            e164 = f"+8150{rng.randrange(10**8):08d}"
            if e164 not in taken:
                taken.add(e164)
                out.append(e164)
        return out

    fresh_share = dict(MIX)["fresh"]
    return {"indexed": org_numbers, "registered": unknown(REGISTERED),
            "remembered": unknown(SEEN_UNKNOWN), "fresh": unknown(int(calls * fresh_share * 1.5) + 50)}


def pick_kind(rng: random.Random) -> str:
    """A kind of number by the shares of MIX."""
    roll, total = rng.random(), 0.0
    for kind, share in MIX:
        total += share
        if roll < total:
            return kind
    return MIX[-1][0]


class Stages:
    """``--profile``: seconds spent in named functions during the current ring, per thread."""

    def __init__(self):
        self.local = threading.local()

    def wrap(self, owner, name: str, label: str) -> None:
        """Time ``owner.name`` as stage ``label``."""
        original = getattr(owner, name)
        stages = self

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent = getattr(stages.local, "spent", None)
                if spent is not None:
                    spent[label] += time.perf_counter() - started

        setattr(owner, name, timed)

    def start(self) -> None:
        self.local.spent = collections.Counter()

    def stop(self) -> dict:
        spent, self.local.spent = self.local.spent, None
        return {k: round(v * 1000, 2) for k, v in spent.items()}


def install_stages() -> Stages:
    """Wrap the screen path's stages (core's functions, as the hooks reach them)."""
    import concurrent.futures

    from core import index, resolver, runtime, store

    stages = Stages()
    stages.wrap(runtime, "runtime_for", "runtime_for")
    stages.wrap(runtime.Runtime, "settings", "settings")
    stages.wrap(runtime.history, "call_facts", "call_facts")
    stages.wrap(runtime, "parse_phone", "parse_phone")
    stages.wrap(runtime.Runtime, "known_display", "known_display")
    stages.wrap(index, "usable", "index.usable")
    stages.wrap(resolver.Resolver, "from_index", "index.find")
    stages.wrap(store.Store, "get_contact", "get_contact")
    stages.wrap(store.Store, "is_remembered_no_match", "no_match")
    stages.wrap(runtime.Runtime, "lookup", "lookup.submit")
    stages.wrap(concurrent.futures.Future, "result", "future.result")
    stages.wrap(runtime.Memo, "put", "memo.put")
    return stages


def host(args: dict) -> None:
    """One host process: place this process's calls from ``threads`` threads at ``rate`` calls
    per second from ``start_at`` (time.time()) for ``seconds``; write one JSON object to ``out``."""
    from bridges.host import load_host
    from plugin.call import Call

    pm = load_host()
    stages = install_stages() if args["profile"] else None
    collections_ms = watch_gc() if args["profile"] else None
    plan = args["plan"]
    tag, rate, seconds = args["tag"], args["rate"], args["seconds"]
    total = int(rate * seconds)
    rng = random.Random(args["seed"])
    fresh = iter(plan["fresh"][args["index"]::args["processes"]])
    numbers = []
    for _ in range(total):
        kind = pick_kind(rng)
        numbers.append((kind, next(fresh) if kind == "fresh" else rng.choice(plan[kind])))
    slots = iter(range(total))
    slots_lock = threading.Lock()
    calls, failures = [], []

    def agent():
        while True:
            with slots_lock:
                k = next(slots, None)
            if k is None:
                return
            due = args["start_at"] + k / rate
            time.sleep(max(0.0, due - time.time()))
            kind, number = numbers[k]
            call = Call(call_id=f"{tag}-{k}", remote_number=number, agent_id=f"{tag}")
            placed = time.time()
            if stages:
                stages.start()
            began = time.perf_counter()
            try:
                display = pm.hook.on_incoming_call(call=call)
                status = display.get("status") if isinstance(display, dict) else repr(display)
            except Exception as exc:  # a hook raising into the host breaks a promise
                status = None
                failures.append(f"ring {call.call_id}: {exc!r}")
            ring_ms = (time.perf_counter() - began) * 1000
            spent = stages.stop() if stages else None
            time.sleep(PAUSE)
            try:
                ended = time.perf_counter()
                pm.hook.on_call_ended(call=call.end(answered=True, duration=1))
                end_ms = (time.perf_counter() - ended) * 1000
            except Exception as exc:
                end_ms = None
                failures.append(f"end {call.call_id}: {exc!r}")
            calls.append({"id": call.call_id, "kind": kind, "ring_ms": ring_ms, "end_ms": end_ms,
                          "status": status, "late_ms": (placed - due) * 1000, "stages": spent,
                          "placed": placed, "done": time.time()})

    threads = [threading.Thread(target=agent, name=f"host-{i}") for i in range(args["threads"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(args["out"], "w", encoding="utf-8") as f:
        cpu = os.times()
        json.dump({"placed": calls, "failures": failures, "peak_rss_mb": vm_hwm_mb(),
                   "cpu_s": cpu.user + cpu.system, "gc_ms": collections_ms}, f)
    os._exit(0)  # lookups still hanging in daemon threads must not hold the host


def watch_gc() -> dict:
    """``--profile``: the longest garbage collection of each generation, ms (they hold the GIL)."""
    import gc

    longest = {0: 0.0, 1: 0.0, 2: 0.0}
    began = {}

    def timer(phase, info):
        if phase == "start":
            began["at"] = time.perf_counter()
        elif "at" in began:
            generation = info["generation"]
            longest[generation] = max(longest[generation], (time.perf_counter() - began["at"]) * 1000)

    gc.callbacks.append(timer)
    return longest


def vm_hwm_mb() -> float:
    """This process's peak resident memory (VmHWM), MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float | None:
    """The proportional set size of process ``pid`` now, MB (None once it has ended)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------

def prepare(info: dict, home: str, seconds: float) -> dict:
    """The instance folder: connected to the emulator, the phone index built, the registered
    contacts stored and the remembered unknown numbers rung once. Returns the number plan."""
    from core import index
    from core.resolver import Resolver
    from core.settings import save_settings
    from core.store import open_store

    store = open_store(home)
    save_settings(store, dict(username=info["username"], password=info["password"],
                              security_token=info["security_token"], login_url=info["login_url"],
                              ca_bundle=info["ca_path"], screen_budget_ms=BUDGET_MS))
    index.sync(store, full=True)
    plan = number_plan(info["numbers"], int(RATE * seconds * 2), seed=7)
    # registered contacts whose numbers are not in the index: real records (Tasks name them)
    for i, (e164, record_id) in enumerate(zip(plan["registered"], info["contact_ids"])):
        store.upsert_contact(e164, object="Contact", record_id=record_id, company="負荷試験",
                             person=f"登録 {i}", record_url="https://example.invalid/")
    resolver = Resolver(store)
    for e164 in plan["remembered"]:
        resolver.resolve(e164)  # no match: remembered
    return plan


def run_phase(name: str, home: str, plan: dict, seconds: float, processes: int, threads: int,
              rate: float, profile: bool) -> dict:
    """Start the host processes, sample their memory, collect their calls."""
    # a host as deployed: the jobs (nightly run, index sync, alerts, Tasks) run in it too
    env = dict(os.environ, SFCTI_HOME=home, PYTHONPATH=str(ROOT), SFCTI_JOBS="on",
               SFCTI_SEND_TASKS="on")
    # calls are due from the moment the hosts start, as when a phone system restarts under
    # traffic: each process's first rings meet the others still loading
    start_at = time.time()
    outs, hosts = [], []
    # each host takes its own fresh numbers
    for p in range(processes):
        out = pathlib.Path(home) / f"host-{name}-{p}.json"
        outs.append(out)
        spec = {"tag": f"{name}{p}", "index": p, "processes": processes, "threads": threads,
                "rate": rate / processes, "seconds": seconds, "start_at": start_at,
                "seed": 1000 * len(name) + p, "plan": plan, "out": str(out), "profile": profile}
        spec_path = pathlib.Path(home) / f"host-{name}-{p}.spec.json"
        spec_path.write_text(json.dumps(spec))
        hosts.append(subprocess.Popen([sys.executable, str(pathlib.Path(__file__).resolve()),
                                       "--host", str(spec_path)], cwd=ROOT, env=env))
    peak_pss = [0.0] * processes
    deadline = time.time() + seconds + 120
    while any(h.poll() is None for h in hosts):
        if time.time() > deadline:
            for h in hosts:
                h.kill()
            raise RuntimeError(f"{name}: the hosts did not finish in time")
        for i, h in enumerate(hosts):
            value = pss_mb(h.pid)
            if value:
                peak_pss[i] = max(peak_pss[i], value)
        time.sleep(0.5)
    results = []
    for h, out in zip(hosts, outs):
        if h.returncode != 0 or not out.exists():
            raise RuntimeError(f"{name}: a host process failed (exit {h.returncode})")
        results.append(json.loads(out.read_text()))
    return {"hosts": results, "peak_pss_mb": peak_pss, "seconds": seconds, "rate": rate}


def check_history(home: str, phase: dict) -> dict:
    """Calls placed vs history rows, by call id."""
    from core import history
    from core.store import open_store

    store = open_store(home)
    placed = [c["id"] for h in phase["hosts"] for c in h["placed"]]
    found = history.get_calls(store, placed)
    return {"placed": len(placed), "unique_placed": len(set(placed)),
            "rows": len(found), "rows_total": history.count_calls(store), "lost": sorted(set(placed) - set(found))[:10],
            "lost_count": len(set(placed) - set(found))}


def error_rows(home: str) -> list[dict]:
    from core.errors import list_errors
    from core.store import open_store

    return list_errors(open_store(home), limit=10_000)


def summarize(phase: dict, history_check: dict, errors: list[dict], salesforce_down: bool,
              late_is_error: bool = True) -> dict:
    """The figures of one phase and the promises it kept or broke (with ``late_is_error``
    False, screens that ran out of budget waiting for Salesforce, SCREEN_LATE, are no error)."""
    calls = [c for h in phase["hosts"] for c in h["placed"]]
    rings = [c["ring_ms"] for c in calls]
    ends = [c["end_ms"] for c in calls if c["end_ms"] is not None]
    failures = [f for h in phase["hosts"] for f in h["failures"]]
    # while Salesforce hangs its incidents are expected: anything else is an error
    unexpected = [e for e in errors if not (salesforce_down and e.get("integration") == "salesforce")
                  and (late_is_error or e.get("code") != "SCREEN_LATE")]
    limit = BUDGET_MS + SLACK_MS
    over = sorted((c for c in calls if c["ring_ms"] > limit), key=lambda c: -c["ring_ms"])
    # from the first call's due time (a host still loading places it late) to the last end
    span = max(c["done"] for c in calls) - min(c["placed"] - c["late_ms"] / 1000 for c in calls)
    statuses = collections.Counter(c["status"] for c in calls)
    broken = []
    if failures:
        broken.append(f"{len(failures)} hook failures into the host")
    if unexpected:
        broken.append(f"{len(unexpected)} unexpected error rows")
    if history_check["lost_count"] or history_check["rows"] != history_check["unique_placed"] \
            or history_check["unique_placed"] != history_check["placed"] \
            or history_check["rows_total"] != history_check["expected_total"]:
        broken.append(f"history: {history_check['rows']} rows for {history_check['placed']} calls "
                      f"({history_check['lost_count']} lost, {history_check['rows_total']} rows in all for "
                      f"{history_check['expected_total']})")
    if over:
        broken.append(f"{len(over)} rings over {limit} ms (max {over[0]['ring_ms']:.0f} ms)")
    return {
        "calls_placed": len(calls), "rings_p50": percentile(rings, 50), "rings_p99": percentile(rings, 99),
        "rings_max": max(rings), "over": len(over), "slowest": over[:5],
        "ends_p50": percentile(ends, 50), "ends_p99": percentile(ends, 99), "ends_max": max(ends),
        "late_p99": percentile([c["late_ms"] for c in calls], 99),
        "throughput": len(calls) / max(span, 1e-9), "statuses": dict(statuses),
        "failures": failures[:5], "errors": len(errors), "unexpected_errors": unexpected[:5],
        "error_kinds": dict(collections.Counter(f"{e.get('integration')}/{e.get('code')}"
                                                for e in errors)),
        "history": history_check, "peak_rss_mb": [h["peak_rss_mb"] for h in phase["hosts"]],
        "peak_pss_mb": phase["peak_pss_mb"], "broken": broken,
        "cpu_s": [round(h["cpu_s"], 1) for h in phase["hosts"]],
        "gc_ms": [h.get("gc_ms") for h in phase["hosts"]],
        "stages": stage_figures(calls),
    }


def stage_figures(calls: list[dict]) -> dict | None:
    """``--profile``: per stage p50/p99/max over all rings, and the stages of the 5 slowest."""
    if not calls or calls[0]["stages"] is None:
        return None
    by_stage = collections.defaultdict(list)
    for c in calls:
        for stage, ms in c["stages"].items():
            by_stage[stage].append(ms)
    table = {s: (percentile(v, 50), percentile(v, 99), max(v), len(v)) for s, v in by_stage.items()}
    slowest = sorted(calls, key=lambda c: -c["ring_ms"])[:8]
    return {"table": table,
            "slowest": [(round(c["ring_ms"]), c["id"], c["kind"], c["stages"]) for c in slowest]}


def run(args: argparse.Namespace) -> dict:
    """Both phases; returns the figures."""
    seconds = args.seconds or (QUICK_SECONDS if args.quick else SECONDS)
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    emulator = context.Process(target=serve, args=(child, ORG_SIZE, 1), daemon=True)
    emulator.start()
    home = tempfile.mkdtemp(prefix="sfcti-load-")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        info = parent.recv()
        emu = Emu(parent, {})
        plan = prepare(info, home, seconds)
        phases, placed_total = {}, 0
        for name, hang in (("answering", False), ("hanging", True)):
            emu.ask("latency", LATENCY)
            emu.ask("hang", hang)
            before = {e["id"]: e["last_at"] for e in error_rows(home)}
            phase = run_phase(name, home, plan, seconds, args.processes, args.threads, args.rate,
                              args.profile)
            emu.ask("hang", False)
            errors = [e for e in error_rows(home) if before.get(e["id"]) != e["last_at"]]
            checked = check_history(home, phase)
            placed_total += checked["placed"]
            checked["expected_total"] = placed_total
            phases[name] = summarize(phase, checked, errors, salesforce_down=hang,
                                     late_is_error=not args.busy)
        parent.send(("stop",))
    finally:
        for process in busy:
            process.kill()
        emulator.kill()
        shutil.rmtree(home, ignore_errors=True)
    return {"phases": phases, "seconds": seconds, "processes": args.processes, "busy": args.busy,
            "threads": args.threads, "rate": args.rate}


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------

def report(figures: dict) -> str:
    """The figures as markdown (the marked sections of docs/benchmarks.md and docs/reliability.md)."""
    limit = BUDGET_MS + SLACK_MS
    lines = [
        f"`bench/loadtest.py` on {platform.machine()} / {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}: {figures['processes']} host processes × "
        f"{figures['threads']} threads sharing one instance folder, {figures['rate']} calls/s for "
        f"{figures['seconds']:g} s per phase (ring hook, {PAUSE * 1000:.0f} ms pause, end hook), "
        f"numbers: " + ", ".join(f"{share:.0%} {kind}" for kind, share in MIX)
        + f"; screen budget {BUDGET_MS} ms, promise: every ring within {limit} ms.",
        "",
        "| phase | calls | rings p50 / p99 / max ms | over limit | end hook p99 ms "
        "| throughput calls/s | history rows / calls | errors | peak RSS / PSS MB per process |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, p in figures["phases"].items():
        label = {"answering": f"Salesforce answering ({LATENCY * 1000:.0f} ms latency)",
                 "hanging": "Salesforce hanging"}[name]
        errors = f"{len(p['failures'])} into the host, " + (
            f"{p['errors']} rows ({', '.join(f'{k}: {v}' for k, v in p['error_kinds'].items())})"
            if p["errors"] else "0 rows")
        memory = ", ".join(f"{r:.0f} / {s:.0f}" for r, s in zip(p["peak_rss_mb"], p["peak_pss_mb"]))
        lines.append(
            f"| {label} | {p['calls_placed']} | {p['rings_p50']:.1f} / {p['rings_p99']:.1f} / "
            f"{p['rings_max']:.1f} | {p['over']} | {p['ends_p99']:.1f} | {p['throughput']:.0f} | "
            f"{p['history']['rows']} / {p['history']['placed']} | {errors} | {memory} |")
    broken = [f"{n}: {b}" for n, p in figures["phases"].items() for b in p["broken"]]
    lines += ["", "Promises: " + ("all kept." if not broken else "BROKEN: " + "; ".join(broken))]
    return "\n".join(lines)


def write_docs(text: str) -> None:
    """The figures into docs/benchmarks.md and the marked section of docs/reliability.md."""
    replace_marked(BEGIN, END, text, INTRODUCTION + " The promises: docs/reliability.md.")
    body = RELIABILITY.read_text(encoding="utf-8") if RELIABILITY.exists() else ""
    section = f"{BEGIN}\n{INTRODUCTION}\n\n{text}\n{END}"
    if BEGIN in body and END in body:
        head, rest = body.split(BEGIN, 1)
        body = head + section + rest.split(END, 1)[1]
    else:
        body = (body.rstrip() + "\n\n" if body.strip() else "") + section + "\n"
    RELIABILITY.write_text(body, encoding="utf-8")


def print_profile(figures: dict) -> None:
    for name, p in figures["phases"].items():
        if not p["stages"]:
            continue
        print(f"\n{name}: stage p50 / p99 / max ms (rings)")
        for stage, (p50, p99, top, n) in sorted(p["stages"]["table"].items(), key=lambda kv: -kv[1][2]):
            print(f"  {stage:16} {p50:8.2f} {p99:8.2f} {top:8.2f}  ({n})")
        print(f"  longest garbage collections by generation, ms: {p['gc_ms']}")
        print(f"  host CPU seconds: {p['cpu_s']}; ring p50/p99/max {p['rings_p50']:.1f} / "
              f"{p['rings_p99']:.1f} / {p['rings_max']:.1f}, over: {p['over']}")
        for ring_ms, call_id, kind, spent in p["stages"]["slowest"]:
            print(f"  slow ring {ring_ms} ms ({call_id}, {kind}): {spent}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS} s per phase")
    parser.add_argument("--seconds", type=float, help="seconds per phase")
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--threads", type=int, default=THREADS, help="host threads per process")
    parser.add_argument("--rate", type=float, default=RATE, help="calls per second, all hosts")
    parser.add_argument("--profile", action="store_true", help="time the stages of each ring")
    parser.add_argument("--busy", type=int, default=0,
                        help="busy processes running beside the hosts (a loaded machine)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--write-docs", action="store_true",
                        help="write the figures into docs/benchmarks.md and docs/reliability.md")
    parser.add_argument("--host", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.host:
        host(json.loads(pathlib.Path(args.host).read_text()))
        return 0
    figures = run(args)
    text = report(figures)
    print(text)
    if args.profile:
        print_profile(figures)
    for name, p in figures["phases"].items():
        for c in p["slowest"]:
            print(f"{name}: slow ring {c['id']} {c['kind']} {c['ring_ms']:.0f} ms -> {c['status']}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
    if args.write_docs:
        write_docs(text)
    return 1 if any(p["broken"] for p in figures["phases"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
