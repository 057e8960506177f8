"""Call logging benchmark: a backlog of ended calls after a day-long outage, drained as Tasks.

    .venv/bin/python bench/activity.py [--quick] [--calls N] [--size N] [--write-docs]

One generated emulator org (default 20,000 records, person accounts on, the demo's sales users;
then the same bench again on an org without person accounts),
served from its own process with 20 ms added to every request (a WAN), so its CPU and memory
count neither in the draining process's figures. The instance builds its phone index first, maps
its agents to the org's users, then:

1. **the outage**: the org's daily API limit is spent (every request answers 403
   REQUEST_LIMIT_EXCEEDED) while 10,000 calls end through the plugin's hooks as a phone system
   makes them (known callers with Zipf-like repetition, 15 % unknown callers, 85 % answered,
   30 agents); every 2,000 calls the sender tries once, as `sfcti serve`'s scheduler would, and
   is refused;
2. **the drain**: the org is healthy again; ``core.activity.send`` (what `sfcti serve` runs every
   15 s) works through the backlog, with a clock one day on so every backoff is over. Measured:
   API calls by kind (target ≤ 1 per 150 calls), wall time, the draining process's peak resident
   memory over the drain (VmHWM reset before it);
3. **the check**, in the emulator process from its own records: every call with a matched record
   has exactly one Task (``CallObject``), related to the record the generator's truth says wins
   for the number (DESIGN §3: WhoId/WhatId), owned by the agent's user when answered; the unknown
   callers' calls have none (``activity_unmatched`` "skip");
4. **the baseline**, in the same process against the same emulator: a sample of the same Tasks
   created one request each (``POST sobjects/Task``, what an integration without sObject
   Collections does), extrapolated to the backlog.

``--write-docs`` replaces the text between the activity markers of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import pathlib
import random
import shutil
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Emu, answer, percentile, replace_marked  # noqa: E402

ORG_SIZE = 20_000
CALLS = 10_000
BASELINE_SAMPLE = 500
QUICK = {"size": 5_000, "call_count": 2_000, "baseline": 100}
LATENCY = 0.020
UNKNOWN_SHARE = 0.15
CALLERS_PER_CALL = 0.45         # distinct callers per call in a day (bench/index.py's figure)
ANSWERED_SHARE = 0.85
OUTBOUND_SHARE = 0.3
AGENTS = 30
ATTEMPT_EVERY = 2_000           # calls between the sender's tries during the outage
TARGET_CALLS_PER_REQUEST = 150
BEGIN, END = "<!-- activity:begin -->", "<!-- activity:end -->"
HEADING = "## Call logging as Tasks"


def resolve_bench():
    """bench/resolve.py as a module (its helpers are reused, not copied)."""
    import bench.resolve

    return bench.resolve


def vm_kb(field: str) -> int:
    """A VmXXX line of /proc/self/status, kB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss() -> bool:
    """Start VmHWM again from the current VmRSS (Linux: ``5`` into /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# the emulator process: the org, its truth, and the check of the Tasks it holds
# ---------------------------------------------------------------------------------------------

def expected_relation(org, winner) -> tuple[str | None, str | None]:
    """(WhoId, WhatId) a Task about the record ``winner`` (object, Id) should carry, from the
    org's own records: a Contact and its account; a person account's contact and the account; a
    business account alone; a Lead alone (Salesforce allows no WhatId with a Lead)."""
    obj, record_id = winner
    record = org.get(record_id)[1]
    if obj == "Contact":
        return record_id, record.get("AccountId")
    if obj == "Lead":
        return record_id, None
    if record.get("IsPersonAccount"):
        return record.get("PersonContactId"), record_id
    return None, record_id


def check_tasks(org, expected: dict) -> dict:
    """The Tasks of the org against ``expected`` (call id -> (winner or None, owner Id or None)):
    how many calls have none, one, several; right relation; right owner."""
    by_call: dict[str, list[dict]] = {}
    for task in org.records["Task"]:
        if task.get("CallObject") in expected:
            by_call.setdefault(task["CallObject"], []).append(task)
    out = {"all_calls": len(expected), "known": 0, "with_one": 0, "twice": 0, "missing": 0,
           "unknown_with_task": 0, "right_relation": 0, "right_owner": 0, "owned": 0}
    for call_id, (winner, owner) in expected.items():
        tasks = by_call.get(call_id, [])
        out["twice"] += len(tasks) > 1
        if winner is None:
            out["unknown_with_task"] += bool(tasks)
            continue
        out["known"] += 1
        if not tasks:
            out["missing"] += 1
            continue
        out["with_one"] += len(tasks) == 1
        task = tasks[0]
        out["right_relation"] += (task.get("WhoId"), task.get("WhatId")) == expected_relation(org, tuple(winner))
        if owner:
            out["owned"] += 1
            out["right_owner"] += task.get("OwnerId") == owner
    return out


def serve(pipe, size: int, seed: int, latency: float, callers_needed: int, unknown_needed: int,
          person_accounts: bool) -> None:
    """Child process: generate the org, pick the callers, serve until told to stop."""
    from emulator import Emulator, generate_org
    from emulator.datagen import org_phone_catalogue

    rb = resolve_bench()
    started = time.perf_counter()
    org = generate_org(size=size, seed=seed, person_accounts=person_accounts)
    generated = time.perf_counter() - started
    rng = random.Random(seed)
    holders = rb.holders_by_number(org)
    known, seen = [], set()
    for e164, _obj, _rid, stored in org_phone_catalogue(org, sample=callers_needed * 3, seed=seed):
        winner = rb.truth(holders, e164)
        if e164 not in seen and winner is not None:
            seen.add(e164)
            known.append((e164, stored, winner))
    users = {u["Username"]: u["Id"] for u in org.records["User"] if u.get("IsActive") is not False}
    with Emulator(org) as emu:
        emu.faults.latency = latency
        pipe.send({"login_url": emu.login_url, "ca_path": emu.ca_path, "username": emu.username,
                   "password": emu.password, "token": emu.security_token, "counts": org.count(),
                   "generated_s": generated, "known": known[:callers_needed],
                   "unknown": rb.unknown_numbers(holders, unknown_needed, rng), "users": users})
        answer(pipe, emu, {
            "exhaust": lambda: emu.exhaust_daily_limit() or True,
            "healthy": lambda: emu.set_daily_limit(emu.default_daily_limit, used=0) or True,
            "check": lambda expected: check_tasks(org, expected),
        })


# ---------------------------------------------------------------------------------------------
# the instance: index, agents, the calls of the outage
# ---------------------------------------------------------------------------------------------

def map_agents(store, users: dict) -> dict[str, str]:
    """Map AGENTS agent ids to the org's active sales users in turn; ``{agent: user Id}``."""
    from core import agents
    from core.salesforce import connection_for

    sales = sorted(u for u in users if not u.startswith("admin@"))
    found = agents.find_users(connection_for(store), sales)
    owners = {}
    for n in range(AGENTS):
        agent = f"agent-{n + 1:02d}"
        user = found[sales[n % len(sales)].lower()]
        agents.map_agent(store, agent, user)
        owners[agent] = user.user_id
    return owners


def the_calls(env: dict, count: int, rng: random.Random) -> list[dict]:
    """``count`` calls: callers with Zipf-like repetition (15 % unknown), answered or missed,
    inbound or outbound, each by one of the agents."""
    rb = resolve_bench()
    callers_n = max(10, int(count * CALLERS_PER_CALL))
    n_unknown = int(callers_n * UNKNOWN_SHARE)
    callers = [(e, s, w) for e, s, w in env["known"][:callers_n - n_unknown]]
    callers += [(e, None, None) for e in env["unknown"][:n_unknown]]
    rng.shuffle(callers)
    weights = [1 / rank ** rb.ZIPF_EXPONENT for rank in range(1, len(callers) + 1)]
    calls = []
    for e164, stored, winner in rng.choices(callers, weights, k=count):
        calls.append({"raw": rb.dialled_form(e164, stored, rng), "winner": winner,
                      "agent": f"agent-{rng.randrange(AGENTS) + 1:02d}",
                      "direction": "outbound" if rng.random() < OUTBOUND_SHARE else "inbound",
                      "missed": rng.random() > ANSWERED_SHARE,
                      "duration": round(rng.uniform(15, 600), 1)})
    return calls


def outage(emu: Emu, store, calls: list[dict]) -> dict:
    """The daily limit spent while ``calls`` end through the plugin's hooks; the sender tries
    every ATTEMPT_EVERY calls and is refused. Each call gets its id here."""
    from cli.host_cmd import place_call
    from bridges.host import load_host
    from core import activity
    from core.runtime import runtime_for

    pm = load_host()
    emu.ask("exhaust")
    before = emu.counters()
    ended_ms, attempts = [], []
    for n, call in enumerate(calls, 1):
        started = time.perf_counter()
        ended, _display = place_call(pm, call["direction"], call["raw"], call["agent"],
                                     call["missed"], call["duration"])
        ended_ms.append((time.perf_counter() - started) * 1000)
        call["call_id"] = ended.call_id
        if n % ATTEMPT_EVERY == 0:
            runtime_for().wait_idle(timeout=120)
            attempts.append(activity.send(store))
    runtime_for().wait_idle(timeout=120)
    after = emu.counters()
    return {"ended_ms": ended_ms, "attempts": attempts,
            "requests": sum(after.values()) - sum(before.values()),
            "waiting": activity.status(store).counts}


def drain(emu: Emu, store) -> dict:
    """The org healthy again, a day later: send until nothing is due."""
    from core import activity

    emu.ask("healthy")
    emu.reset()
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    rss_before = vm_kb("VmRSS")
    peak_reset = reset_peak_rss()
    started = time.perf_counter()
    reports = []
    while True:
        report = activity.send(store, clock=lambda: later)
        reports.append(report)
        if report.stopped or not (report.logged or report.found or report.failed or report.skipped
                                  or report.deferred):
            break
    wall = time.perf_counter() - started
    return {"wall": wall, "by_kind": emu.counters(), "reports": [r.as_dict() for r in reports],
            "rss_before_mb": rss_before / 1024, "peak_mb": vm_kb("VmHWM") / 1024,
            "peak_is_drain": peak_reset, "status": activity.status(store).counts}


def baseline(env: dict, calls: list[dict], sample: int, owners: dict, rng: random.Random) -> dict:
    """The same Tasks for a sample of the matched calls, one ``POST sobjects/Task`` each, over a
    simple-salesforce client of their own; wall time and requests."""
    from simple_salesforce import Salesforce, SalesforceLogin

    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = env["ca_path"]
    session_id, instance = SalesforceLogin(username=env["username"], password=env["password"],
                                           security_token=env["token"], session=session,
                                           scratch_url=env["login_url"])
    sf = Salesforce(session_id=session_id, instance=instance, session=session)
    matched = [c for c in calls if c["winner"] is not None]
    chosen = rng.sample(matched, min(sample, len(matched)))
    ms = []
    for n, call in enumerate(chosen):
        fields = baseline_task(call, n, owners)
        started = time.perf_counter()
        sf.Task.create(fields)
        ms.append((time.perf_counter() - started) * 1000)
    return {"n": len(chosen), "ms": ms, "wall": sum(ms) / 1000}


def owner_of(call: dict, owners: dict) -> str | None:
    """The user who should own the call's Task: the agent's, unless nobody took the call (a
    missed inbound call: the connection user owns it)."""
    missed_inbound = call["missed"] and call["direction"] == "inbound"
    return None if missed_inbound else owners[call["agent"]]


def baseline_task(call: dict, n: int, owners: dict) -> dict:
    """A Task like the drain's for ``call``: the call's fields, related to the winning record."""
    obj, record_id = call["winner"]
    fields = {"Subject": f"着信 baseline {n}", "Status": "Completed", "Priority": "Normal",
              "TaskSubtype": "Call", "CallType": "Outbound" if call["direction"] == "outbound" else "Inbound",
              "CallDurationInSeconds": 0 if call["missed"] else int(call["duration"]),
              "CallObject": f"baseline-{call['call_id']}", "ActivityDate": dt.date.today().isoformat(),
              "Description": "Call logged one request at a time (baseline)\n" + call["raw"]}
    fields["WhoId" if obj in ("Contact", "Lead") else "WhatId"] = record_id
    if owner_of(call, owners):
        fields["OwnerId"] = owner_of(call, owners)
    return fields


# ---------------------------------------------------------------------------------------------
# the run and its report
# ---------------------------------------------------------------------------------------------

def run(args: argparse.Namespace, person_accounts: bool = True) -> dict:
    """Build, break, drain, check, compare on an org with or without person accounts; the figures."""
    size = QUICK["size"] if args.quick else args.size
    count = QUICK["call_count"] if args.quick else args.calls
    sample = QUICK["baseline"] if args.quick else args.baseline
    started = time.perf_counter()
    rng = random.Random(args.seed)
    callers = int(count * CALLERS_PER_CALL) + 10
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    process = context.Process(target=serve, daemon=True, args=(
        child, size, args.seed, LATENCY, callers, callers, person_accounts))
    process.start()
    print(f"generating a {size:,}-record org in the emulator process...", flush=True)
    env = parent.recv()
    emu = Emu(parent, env)
    store = resolve_bench().new_store(env)   # a generous read timeout: no budget test
    os.environ.update({"SFCTI_HOME": str(store.home), "SFCTI_JOBS": "off", "SFCTI_SEND_TASKS": "off"})
    figures = {"env": {k: env[k] for k in ("counts", "generated_s")}, "size": size, "count": count}
    try:
        from core import jobs

        print("building the phone index...", flush=True)
        index_started = time.perf_counter()
        built = jobs.sync_index(store, full=True)
        figures["index"] = {"wall": time.perf_counter() - index_started, "api": built.api_calls,
                            "records": built.records}
        owners = map_agents(store, env["users"])
        calls = the_calls(env, count, rng)
        print(f"the outage: {count:,} calls end while the daily limit is spent...", flush=True)
        figures["outage"] = outage(emu, store, calls)
        print("the drain...", flush=True)
        figures["drain"] = drain(emu, store)
        print(f"  {figures['drain']['wall']:.1f} s, {figures['drain']['by_kind']}", flush=True)
        expected = {c["call_id"]: (c["winner"], owner_of(c, owners)) for c in calls}
        figures["check"] = emu.ask("check", expected)
        print(f"baseline: {sample} Tasks one request each...", flush=True)
        figures["baseline"] = baseline(env, calls, sample, owners, rng)
    finally:
        parent.send(("stop",))      # the emulator process stops without answering
        process.join(10)
        from core.runtime import shutdown_all

        shutdown_all()
        shutil.rmtree(store.home, ignore_errors=True)
    figures["bench_s"] = time.perf_counter() - started
    return figures


def report(f: dict) -> str:
    """The markdown between the activity markers."""
    count, drain, check, base, out = f["count"], f["drain"], f["check"], f["baseline"], f["outage"]
    api = sum(drain["by_kind"].values())
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(drain["by_kind"].items()))
    per_request = count / api if api else float("inf")
    logged, skipped, failed = (drain["status"][s] for s in ("logged", "skipped", "failed"))
    left = drain["status"]["waiting"] + drain["status"]["sending"]
    base_ms = sum(base["ms"]) / base["n"]
    base_wall = base_ms * logged / 1000
    attempts = out["attempts"]
    refused = sum(a.deferred for a in attempts)
    counts = f["env"]["counts"]
    total = sum(counts[o] for o in ("Contact", "Account", "Lead"))
    target_met = "met" if per_request >= TARGET_CALLS_PER_REQUEST else "**not met**"
    rows = [
        ("API calls to drain the backlog", f"**{api}** ({kinds})", f"{logged:,} (one per Task)",
         _ratio(logged, api)),
        ("calls per API call (target ≥ 150)", f"**{per_request:,.0f}** ({target_met})", "1", ""),
        ("wall time, s", f"**{drain['wall']:.1f}**",
         f"{base_wall:,.0f} (extrapolated: {base['n']} Tasks took {base['wall']:.1f} s)",
         _ratio(base_wall, drain["wall"])),
        ("per Task, ms", f"{drain['wall'] * 1000 / max(logged, 1):.2f}", f"{base_ms:.1f}",
         _ratio(base_ms, drain["wall"] * 1000 / max(logged, 1))),
    ]
    peak = (f"peak resident memory of the draining process over the drain **{drain['peak_mb']:.0f} MB** "
            f"VmHWM, {drain['peak_mb'] - drain['rss_before_mb']:+.0f} MB over its "
            f"{drain['rss_before_mb']:.0f} MB before the drain (phone index, {count:,} calls ended "
            "in this process)" if drain["peak_is_drain"] else
            f"peak resident memory of the bench process {drain['peak_mb']:.0f} MB VmHWM (could not "
            "be reset before the drain)")
    lines = [
        f"Org: {total:,} records (Contact {counts['Contact']:,}, Account {counts['Account']:,}, Lead "
        f"{counts['Lead']:,}), person accounts on, the demo's sales users; {LATENCY * 1000:.0f} ms "
        f"added to every request. Phone index built first ({f['index']['records']:,} records, "
        f"{f['index']['api']} API calls, {f['index']['wall']:.0f} s); {AGENTS} agents mapped to the "
        "org's users.",
        "",
        f"**The outage**: the org's daily API limit spent, {count:,} calls end through the plugin's "
        f"hooks ({UNKNOWN_SHARE:.0%} of distinct callers unknown, {ANSWERED_SHARE:.0%} answered): "
        f"ending a call took p50 {percentile(out['ended_ms'], 50):.1f} ms, p99 "
        f"{percentile(out['ended_ms'], 99):.1f} ms. The sender tried {len(attempts)} times "
        f"(every {ATTEMPT_EVERY:,} calls) and was refused each time ({out['requests']:,} requests in "
        f"all during the outage, lookups of unknown callers included; {refused:,} calls put back "
        "with the limit's backoff).",
        "",
        f"**The drain**, once the org is healthy (a day on): `core.activity.send` as `sfcti serve` "
        f"runs it. {logged:,} Tasks logged, {skipped:,} calls skipped (no matching record), "
        f"{failed} refused, {left} left waiting; {peak}.",
        "",
        "| figure | sObject Collections (sfcti) | one request per Task (baseline) | baseline / sfcti |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += [
        "",
        f"Checked in the emulator from its own records: {check['with_one']:,} / {check['known']:,} "
        f"calls from a known caller have exactly one Task ({check['missing']} none, "
        f"{check['twice']} twice or more); {check['right_relation']:,} related to the record the "
        f"generator's truth says wins for the number (WhoId / WhatId); {check['right_owner']:,} / "
        f"{check['owned']:,} calls an agent took or placed owned by the agent's user; "
        f"{check['unknown_with_task']} Tasks for the {check['all_calls'] - check['known']:,} calls "
        "from unknown callers.",
        "",
        without_person_accounts(f["without_pa"]),
        "",
        f"Bench wall time: {f['bench_s'] + f['without_pa']['bench_s']:.0f} s.",
    ]
    return "\n".join(lines)


def without_person_accounts(f: dict) -> str:
    """The same bench on an org without person accounts, in one paragraph."""
    drain, check = f["drain"], f["check"]
    api = sum(drain["by_kind"].values())
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(drain["by_kind"].items()))
    per_request = f["count"] / api if api else float("inf")
    met = "met" if per_request >= TARGET_CALLS_PER_REQUEST else "not met"
    return (f"The same bench on an org without person accounts: {drain['status']['logged']:,} Tasks "
            f"logged with **{api} API calls** ({kinds}): **{per_request:,.0f} calls per API call** "
            f"(target {met}), {drain['wall']:.1f} s; {check['with_one']:,} / {check['known']:,} "
            f"calls with exactly one Task, {check['right_relation']:,} rightly related. The phone "
            "index keeps a Contact's AccountId and a person account's PersonContactId, so with it "
            "built no batch needs a relation query on either org.")


def _ratio(baseline_value: float, ours: float) -> str:
    return f"{baseline_value / ours:,.0f}×" if ours else ""


def write_doc(text: str) -> None:
    """Put ``text`` between the activity markers of docs/benchmarks.md (other sections kept)."""
    replace_marked(BEGIN, END, text, f"{HEADING}\n\n`make bench` runs `bench/activity.py "
                   "--write-docs` (`--quick` for 2,000 calls on a 5,000-record org): a backlog of "
                   "ended calls after a day-long outage, drained as Tasks in sObject Collections "
                   "(docs/activity.md), against the same Tasks created one request each. Target "
                   "(issue 12): at most one API call per 150 calls.")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print its section (and write it with --write-docs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['call_count']:,} calls on a {QUICK['size']:,}-record org")
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--size", type=int, default=ORG_SIZE)
    parser.add_argument("--baseline", type=int, default=BASELINE_SAMPLE,
                        help="Tasks created one request each for the baseline")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    figures = run(args)
    figures["without_pa"] = run(args, person_accounts=False)
    text = report(figures)
    print(text)
    if args.write_docs:
        write_doc(text)


if __name__ == "__main__":
    main()
