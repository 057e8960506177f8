"""Resolver benchmark: this project's resolver side by side with the seed product's strategy.

Run with ``make bench`` (or ``.venv/bin/python bench/resolve.py``). Against the emulator serving
a generated 300,000-record org with 20 ms added to every request (a WAN), in one run:

- a day of 1,000 calls: Zipf-like repetition over a few hundred callers, some unknown numbers,
  every known number dialled in a format different from the one stored in the org;
- a nightly run over 10,000 distinct numbers (``resolve_many``).

The emulator runs in a child process, so its CPU work and its 300,000 records neither share the
GIL with the client nor count in the client's memory figures. Figures go to stdout and into the
"Resolver" section of docs/benchmarks.md (``--no-write`` leaves the file alone).
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import pathlib
import random
import resource
import sys
import tempfile
import time
import tracemalloc

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import DOC, replace_marked  # noqa: E402

import phonenumbers  # noqa: E402
import requests  # noqa: E402
from simple_salesforce import Salesforce, SalesforceLogin  # noqa: E402
from simple_salesforce.format import format_soql  # noqa: E402

from core.phone import NumberKind, parse_phone  # noqa: E402
from core.display import MATCHED  # noqa: E402
from core.resolver import OBJECTS, Resolver  # noqa: E402
from core.settings import save_settings  # noqa: E402
from core.store import Store  # noqa: E402

ORG_SIZE = 300_000
LATENCY = 0.020
DAY_CALLS = 1_000
DAY_CALLERS = 450
UNKNOWN_SHARE = 0.15
NIGHTLY_NUMBERS = 10_000
SEED_NIGHTLY_SAMPLE = 1_000     # the seed's nightly run is measured on this many and scaled
ZIPF_EXPONENT = 1.1
BEGIN, END = "<!-- resolver:begin -->", "<!-- resolver:end -->"
# DESIGN §3.1, written out here: the truth is the bench's own, not the resolver's constant
PRIORITY = ("Contact", "Account", "Lead")


# ---------------------------------------------------------------------------------------------
# the emulator, in its own process
# ---------------------------------------------------------------------------------------------

def holders_by_number(org) -> dict[str, list[tuple[str, dict]]]:
    """E.164 -> (object, record) of every record a phone field of which holds that number, from
    the numbers the data generator recorded writing (org.phone_truth), not from any parse: a
    stored form our parser cannot read still counts."""
    holders: dict[str, list[tuple[str, dict]]] = collections.defaultdict(list)
    for (record_id, _field), numbers in org.phone_truth.items():
        found = org.get(record_id)
        for number in numbers:
            if found and found not in holders[number.e164]:
                holders[number.e164].append(found)
    return holders


def truth(holders: dict, e164: str) -> tuple[str, str] | None:
    """(object, Id) DESIGN §3 says must win for ``e164``: the first object in priority order with
    an eligible record holding it, newest LastModifiedDate, ties broken on Id."""
    for obj in PRIORITY:
        matching = [r for o, r in holders.get(e164, ()) if o == obj and _eligible(obj, r)]
        if matching:
            by_id = sorted(matching, key=lambda r: r["Id"])
            best = sorted(by_id, key=lambda r: r["LastModifiedDate"], reverse=True)[0]
            return obj, best["Id"]
    return None


def _eligible(obj: str, record: dict) -> bool:
    if obj == "Lead":
        return not record.get("IsConverted")
    if obj == "Contact":
        return not record.get("IsPersonAccount")  # the hidden contact of a person account
    return True


def unknown_numbers(holders: dict, count: int, rng: random.Random) -> list[str]:
    """Valid Japanese numbers nobody in the org has, as E.164."""
    found: list[str] = []
    while len(found) < count:
        prefix = rng.choice(["3", "6", "45", "52", "90", "80", "70"])
        rest = 10 - len(prefix) - (0 if prefix in ("90", "80", "70") else 1)
        e164 = f"+81{prefix}{rng.randint(2, 9)}{rng.randrange(10 ** (rest - 1)):0{rest - 1}d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(e164, None)) and e164 not in holders:
            found.append(e164)
    return found


def winner_forms(org, known: list) -> dict[str, str]:
    """E.164 -> the stored value of its DESIGN §3 winner that holds it (what a miss missed)."""
    forms = {}
    for e164, _stored, winner in known:
        if not winner:
            continue
        record_id = winner[1]
        record = org.get(record_id)[1]
        forms[e164] = next(
            record[field] for field in ("Phone", "MobilePhone", "PersonMobilePhone")
            if any(n.e164 == e164 for n in org.phone_truth.get((record_id, field), ())))
    return forms


def serve(pipe, size: int, seed: int, latency: float, known_needed: int, unknown_needed: int) -> None:
    """Child process: generate the org, pick the numbers, serve until told to stop."""
    from emulator import Emulator, generate_org
    from emulator.datagen import org_phone_catalogue

    started = time.perf_counter()
    org = generate_org(size=size, seed=seed)
    generated = time.perf_counter() - started
    rng = random.Random(seed)
    holders = holders_by_number(org)
    known, seen = [], set()
    for e164, _obj, _rid, stored in org_phone_catalogue(org, sample=known_needed * 2, seed=seed):
        if e164 not in seen:
            seen.add(e164)
            known.append((e164, stored, truth(holders, e164)))
    unknown = unknown_numbers(holders, unknown_needed, rng)
    with Emulator(org) as emu:
        emu.faults.latency = latency
        pipe.send({"login_url": emu.login_url, "ca_path": emu.ca_path, "username": emu.username,
                   "password": emu.password, "token": emu.security_token,
                   "person_accounts": org.person_accounts, "counts": org.count(),
                   "generated_s": generated, "known": known[:known_needed], "unknown": unknown,
                   "winner_forms": winner_forms(org, known[:known_needed])})
        while True:
            command = pipe.recv()
            if command == "counters":
                pipe.send(dict(emu.api_calls))
            elif command == "reset":
                emu.reset_counters()
                pipe.send(True)
            else:
                break


# ---------------------------------------------------------------------------------------------
# the seed product's strategy
# ---------------------------------------------------------------------------------------------

class SeedStrategy:
    """The seed product's lookup: query Contact, then Account, then Lead (one API call each),
    stopping at the first hit, newest LastModifiedDate first; the number is tried with and
    without hyphens.

    Generous to the seed: a number delivered as +81... is first turned into its national
    hyphenated form, which the seed would need to find "03-1234-5678" at all.
    """

    def __init__(self, emu: dict):
        session = requests.Session()
        session.trust_env = False
        session.verify = emu["ca_path"]
        session_id, instance = SalesforceLogin(
            username=emu["username"], password=emu["password"], security_token=emu["token"],
            session=session, scratch_url=emu["login_url"])
        self.sf = Salesforce(session_id=session_id, instance=instance, session=session)
        self.person_accounts = emu["person_accounts"]
        self.calls = 0

    @staticmethod
    def forms(raw: str) -> list[str]:
        """The number with and without hyphens ([] when it is not a number)."""
        number = parse_phone(raw)
        if number.kind is not NumberKind.VALID:
            return []
        national = phonenumbers.format_number(phonenumbers.parse(number.e164, None),
                                              phonenumbers.PhoneNumberFormat.NATIONAL)
        return list(dict.fromkeys([national, national.replace("-", "")]))

    def queries(self, forms: list[str]) -> list[tuple[str, str]]:
        mobile = "PersonMobilePhone" if self.person_accounts else None
        account_match = "Phone IN {forms}" + (f" OR {mobile} IN {{forms}}" if mobile else "")
        order = " ORDER BY LastModifiedDate DESC LIMIT 1"
        return [
            ("Contact", format_soql("SELECT Id, Name, Account.Name FROM Contact WHERE Phone IN {forms} "
                                    "OR MobilePhone IN {forms}" + order, forms=forms)),
            ("Account", format_soql("SELECT Id, Name FROM Account WHERE " + account_match + order,
                                    forms=forms)),
            ("Lead", format_soql("SELECT Id, Name, Company FROM Lead WHERE (Phone IN {forms} OR "
                                 "MobilePhone IN {forms}) AND IsConverted = false" + order, forms=forms)),
        ]

    def lookup(self, raw: str) -> tuple[str, str] | None:
        """(object, Id) of the first hit, or None."""
        forms = self.forms(raw)
        if not forms:
            return None
        for obj, soql in self.queries(forms):
            self.calls += 1
            records = self.sf.query(soql)["records"]
            if records:
                return obj, records[0]["Id"]
        return None


# ---------------------------------------------------------------------------------------------
# the workloads
# ---------------------------------------------------------------------------------------------

def dialled_form(e164: str, stored: str | None, rng: random.Random) -> str:
    """How the phone system delivers ``e164``: E.164, national bare or national hyphenated,
    never the very string stored in the org."""
    parsed = phonenumbers.parse(e164, None)
    if parsed.country_code == 81:
        national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        options = [(e164, 0.5), (national.replace("-", ""), 0.3), (national, 0.2)]
    else:  # international, as a Japanese phone system may show it
        nsn = phonenumbers.national_significant_number(parsed)
        options = [(e164, 0.7), (f"010{parsed.country_code}{nsn}", 0.3)]
    options = [(form, w) for form, w in options if form != stored] or [(e164, 1.0)]
    return rng.choices([f for f, _ in options], [w for _, w in options])[0]


def day_of_calls(known: list, unknown: list[str], rng: random.Random) -> tuple[list[tuple], dict]:
    """(calls, expected): 1,000 (raw, e164) calls with Zipf-like repetition; expected maps each
    e164 to its winning (object, Id) or None."""
    n_unknown = int(DAY_CALLERS * UNKNOWN_SHARE)
    callers = [(dialled_form(e, s, rng), e, t) for e, s, t in known[:DAY_CALLERS - n_unknown]]
    callers += [(dialled_form(e, None, rng), e, None) for e in unknown[:n_unknown]]
    rng.shuffle(callers)
    weights = [1 / (rank ** ZIPF_EXPONENT) for rank in range(1, len(callers) + 1)]
    chosen = rng.choices(callers, weights, k=DAY_CALLS)
    return [(raw, e164) for raw, e164, _ in chosen], {e164: t for _, e164, t in callers}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``, in milliseconds as given."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def rest_calls_since_reset(emu: dict) -> int:
    """API calls the emulator counted since the last reset (login excluded: not an API call)."""
    emu["pipe"].send("counters")
    return sum(n for kind, n in emu["pipe"].recv().items() if kind != "login")


def reset_counters(emu: dict) -> None:
    emu["pipe"].send("reset")
    emu["pipe"].recv()


def new_store(emu: dict) -> Store:
    store = Store(tempfile.mkdtemp(prefix="sfcti-bench-"))
    save_settings(store, {"username": emu["username"], "password": emu["password"],
                          "security_token": emu["token"], "login_url": emu["login_url"],
                          "ca_bundle": emu["ca_path"], "read_timeout": 60.0})
    return store


def run_day_ours(emu: dict, calls: list, expected: dict) -> dict:
    """The day through Resolver.resolve, registering matches after each call (as the plugin's
    "after call" setting does), so repeat callers are answered from the store."""
    store = new_store(emu)
    resolver = Resolver(store)
    resolver.connection_factory(store)  # log in before the clock starts
    reset_counters(emu)
    seen, cached, uncached, first = set(), [], [], {}
    for raw, e164 in calls:
        started = time.perf_counter()
        display = resolver.resolve(raw)
        elapsed = (time.perf_counter() - started) * 1000
        (cached if e164 in seen else uncached).append(elapsed)
        if e164 not in seen:
            seen.add(e164)
            first[e164] = display
            resolver.register(display)
    api = rest_calls_since_reset(emu)
    assert api == store.api_usage()["own_calls"], "own accounting disagrees with the emulator"
    return _day_figures(api, cached, uncached, first, expected, lambda d: (
        (d["object"], d["record_id"]) if d["status"] == MATCHED else None))


def run_day_seed(emu: dict, calls: list, expected: dict) -> dict:
    """The day through SeedStrategy: every call is a live lookup (the seed keeps no cache)."""
    seed = SeedStrategy(emu)
    reset_counters(emu)
    seen, cached, uncached, first = set(), [], [], {}
    first_calls = 0
    for raw, e164 in calls:
        before = seed.calls
        started = time.perf_counter()
        found = seed.lookup(raw)
        elapsed = (time.perf_counter() - started) * 1000
        (cached if e164 in seen else uncached).append(elapsed)
        if e164 not in seen:
            seen.add(e164)
            first[e164] = found
            first_calls += seed.calls - before
    assert seed.calls == rest_calls_since_reset(emu)
    return _day_figures(seed.calls, cached, uncached, first, expected, lambda f: f,
                        uncached_api=first_calls)


def _day_figures(api, cached, uncached, first, expected, winner, uncached_api=None) -> dict:
    """Figures of a day; ``uncached_api`` is the calls spent on first calls (default: all)."""
    known = [e for e in first if expected.get(e)]
    matched = sum(1 for e in known if winner(first[e]) is not None)
    right = sum(1 for e in known if winner(first[e]) == tuple(expected[e]))
    return {"calls": len(cached) + len(uncached), "uncached_n": len(uncached), "api": api,
            "per_lookup": api / (len(cached) + len(uncached)),
            "per_uncached": (api if uncached_api is None else uncached_api) / len(uncached),
            "known": len(known), "match": matched / len(known), "right": right / len(known),
            "cached_p50": percentile(cached, 50), "cached_p99": percentile(cached, 99),
            "uncached_p50": percentile(uncached, 50), "uncached_p99": percentile(uncached, 99)}


def nightly_numbers(known: list, unknown: list[str], rng: random.Random) -> tuple[list[str], dict]:
    n_unknown = int(NIGHTLY_NUMBERS * UNKNOWN_SHARE)
    chosen = known[:NIGHTLY_NUMBERS - n_unknown]
    raws = [dialled_form(e, s, rng) for e, s, _ in chosen] + unknown[-n_unknown:]
    rng.shuffle(raws)
    expected = {e: t for e, _, t in chosen}
    expected.update({e: None for e in unknown[-n_unknown:]})
    return raws, expected


def run_nightly_ours(emu: dict, raws: list[str], expected: dict, trace: bool) -> dict:
    store = new_store(emu)
    resolver = Resolver(store)
    resolver.connection_factory(store)  # the login is not part of the run
    reset_counters(emu)
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    results = resolver.resolve_many(raws)
    wall = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    if trace:
        tracemalloc.stop()
    api = rest_calls_since_reset(emu)
    known = [e for e, t in expected.items() if t]
    got = {e: (d["object"], d["record_id"]) if d["status"] == MATCHED else None for e, d in results.items()}
    return {"numbers": len(raws), "api": api, "wall": wall, "peak_mb": (peak or 0) / 2 ** 20,
            "match": sum(1 for e in known if got.get(e)) / len(known),
            "right": sum(1 for e in known if got.get(e) == tuple(expected[e])) / len(known),
            "false": sum(1 for e, t in expected.items() if not t and got.get(e)),
            "missed": [e for e in known if got.get(e) != tuple(expected[e])]}


def run_nightly_seed(emu: dict, raws: list[str], expected: dict) -> dict:
    seed = SeedStrategy(emu)
    sample = raws[:SEED_NIGHTLY_SAMPLE]
    started = time.perf_counter()
    got = {}
    for raw in sample:
        got[parse_phone(raw).e164] = seed.lookup(raw)
    wall = time.perf_counter() - started
    scale = len(raws) / len(sample)
    known = [e for e in got if expected.get(e)]
    return {"numbers": len(raws), "sample": len(sample), "api": seed.calls * scale, "wall": wall * scale,
            "match": sum(1 for e in known if got[e]) / len(known),
            "right": sum(1 for e in known if got[e] == tuple(expected[e])) / len(known)}


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------

def report(env: dict, day: dict, nightly: dict) -> str:
    ours, seed = day["ours"], day["seed"]
    n_ours, n_seed = nightly["ours"], nightly["seed"]
    rows = [
        ("API calls per lookup, all 1,000 calls", f"{ours['per_lookup']:.3f}", f"{seed['per_lookup']:.3f}",
         _ratio(seed["per_lookup"], ours["per_lookup"])),
        (f"API calls per uncached lookup ({ours['uncached_n']} first calls)", f"{ours['per_uncached']:.3f}",
         f"{seed['per_uncached']:.3f}", _ratio(seed["per_uncached"], ours["per_uncached"])),
        (f"match rate, known numbers dialled in another format ({ours['known']})",
         f"{ours['match']:.1%}", f"{seed['match']:.1%}", ""),
        ("right record (DESIGN §3 winner)", f"{ours['right']:.1%}", f"{seed['right']:.1%}", ""),
        ("lookup p50, repeat callers (sfcti: cached; the seed asks again), ms", f"{ours['cached_p50']:.2f}", f"{seed['cached_p50']:.1f}",
         _ratio(seed["cached_p50"], ours["cached_p50"])),
        ("lookup p99, repeat callers (sfcti: cached; the seed asks again), ms", f"{ours['cached_p99']:.2f}", f"{seed['cached_p99']:.1f}",
         _ratio(seed["cached_p99"], ours["cached_p99"])),
        ("lookup p50, uncached (first call of a number), ms", f"{ours['uncached_p50']:.1f}", f"{seed['uncached_p50']:.1f}",
         _ratio(seed["uncached_p50"], ours["uncached_p50"])),
        ("lookup p99, uncached (first call of a number), ms", f"{ours['uncached_p99']:.1f}", f"{seed['uncached_p99']:.1f}",
         _ratio(seed["uncached_p99"], ours["uncached_p99"])),
        (f"nightly run, {n_ours['numbers']:,} distinct numbers: API calls", f"{n_ours['api']:,}",
         f"{n_seed['api']:,.0f} *", _ratio(n_seed["api"], n_ours["api"])),
        ("nightly run: API calls per 100 numbers", f"{100 * n_ours['api'] / n_ours['numbers']:.2f}",
         f"{100 * n_seed['api'] / n_seed['numbers']:.0f} *", ""),
        ("nightly run: wall time, s", f"{n_ours['wall']:.1f}", f"{n_seed['wall']:.0f} *",
         _ratio(n_seed["wall"], n_ours["wall"])),
        ("nightly run: match rate / right record", f"{n_ours['match']:.1%} / {n_ours['right']:.1%}",
         f"{n_seed['match']:.1%} / {n_seed['right']:.1%} *", ""),
        ("nightly run: peak Python memory (tracemalloc), MB", f"{nightly['peak_mb']:.1f}", "", ""),
        ("nightly run: client process peak RSS (before the run), MB",
         f"{nightly['rss_mb']:.0f} ({nightly['rss_before_mb']:.0f})", "", ""),
    ]
    counts = ", ".join("%s %s" % (o, format(env["counts"][o], ",")) for o in OBJECTS)
    lines = [
        f"Org: {sum(env['counts'][o] for o in OBJECTS):,} records "
        f"({counts}), person accounts on, "
        f"generated in {env['generated_s']:.0f} s; {LATENCY * 1000:.0f} ms added to every request; "
        f"emulator in its own process.",
        f"Day: {DAY_CALLS:,} calls over {DAY_CALLERS} callers (Zipf s={ZIPF_EXPONENT}, "
        f"{UNKNOWN_SHARE:.0%} unknown), known numbers dialled as E.164 / national / hyphenated, never "
        "in the stored string. Ours registers a match after its first call (\"after call\"); "
        "the seed looks every call up live.",
        "",
        "| figure | sfcti | seed strategy | seed / sfcti |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["",
              f"\\* the seed's nightly run was measured on {n_seed['sample']:,} of the numbers and "
              f"scaled to {n_seed['numbers']:,} (serially it would take about {n_seed['wall'] / 60:.0f} min).",
              f"False matches for unknown numbers in the nightly run: {n_ours['false']}. "
              f"Known numbers answered with another record or none: {len(n_ours['missed'])}; "
              "what their winner holds, e.g. "
              + ", ".join(f"`{env['winner_forms'].get(e, '?')}`" for e in n_ours["missed"][:12])
              + ". "
              f"Bench wall time: {env['bench_s']:.0f} s."]
    return "\n".join(lines)


def _ratio(seed: float, ours: float) -> str:
    return f"{seed / ours:.1f}x" if ours else "∞" if seed else ""


def write_doc(text: str) -> None:
    """Put ``text`` between the resolver markers of docs/benchmarks.md (other sections kept)."""
    replace_marked(BEGIN, END, text, "## Resolver\n\n`make bench` (bench/resolve.py):")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the figures and write them to docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=ORG_SIZE)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    bench_started = time.perf_counter()
    rng = random.Random(args.seed)
    parent, child = multiprocessing.get_context("fork").Pipe()
    n_unknown = int(NIGHTLY_NUMBERS * UNKNOWN_SHARE) + DAY_CALLERS
    process = multiprocessing.get_context("fork").Process(
        target=serve, args=(child, args.size, args.seed, LATENCY, NIGHTLY_NUMBERS, n_unknown),
        daemon=True)
    process.start()
    print(f"generating a {args.size:,}-record org in the emulator process...", flush=True)
    env = parent.recv()
    env["pipe"] = parent
    try:
        calls, expected = day_of_calls(env["known"], env["unknown"], rng)
        print("day of calls: sfcti...", flush=True)
        day = {"ours": run_day_ours(env, calls, expected)}
        print("day of calls: seed strategy...", flush=True)
        day["seed"] = run_day_seed(env, calls, expected)
        raws, n_expected = nightly_numbers(env["known"], env["unknown"][DAY_CALLERS:], rng)
        print("nightly run: sfcti...", flush=True)
        nightly = {"rss_before_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        nightly["ours"] = run_nightly_ours(env, raws, n_expected, trace=False)
        # ru_maxrss is the process's peak so far: taken before tracemalloc adds its own memory
        nightly["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        nightly["peak_mb"] = run_nightly_ours(env, raws, n_expected, trace=True)["peak_mb"]
        print("nightly run: seed strategy (sample)...", flush=True)
        nightly["seed"] = run_nightly_seed(env, raws, n_expected)
    finally:
        parent.send("stop")
        process.join(timeout=10)
    env["bench_s"] = time.perf_counter() - bench_started
    text = report(env, day, nightly)
    print()
    print(text)
    if not args.no_write:
        write_doc(text)
        print(f"\nwritten to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
