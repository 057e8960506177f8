"""Phone index benchmark: the index (core/index.py) side by side with today's live resolver.

    .venv/bin/python bench/index.py [--quick] [--size N] [--write-docs]

One emulator org (default 1,000,000 records, phones typed in every form the generator knows),
served from its own process with 20 ms added to every request (a WAN), so its CPU and memory
count neither in the client's figures nor in the syncing process's. Two stores on the same org:
one with the phone index on (built by an initial sync in a fresh child process, where wall time
and peak memory are measured), one with ``phone_index`` off (today's live resolver). Measured:

1. stored-format match rate and right record for known numbers dialled in another format than
   stored, common and odd stored forms apart (first call of each number: also the cold p99);
2. right record in the nightly run (``resolve_many``);
3. API calls per day for days of 100, 1,000 and 10,000 calls (index: its lookups plus 96 sync
   rounds a day at 15 minutes);
4. screen p99 on a cold number;
5. the initial sync: wall time, API calls, peak memory (VmHWM), database size; Bulk API 2.0
   above ``index_bulk_threshold`` as the product does;
6. an incremental round after 1,000 phone edits made through the emulator's controls.

Expected answers come from the generator's recorded truth (``org.phone_truth``: the numbers it
encoded into each stored value) and the DESIGN §3 rules applied to it, never from core/phone.py.
``--write-docs`` replaces the "Phone index" section of docs/benchmarks.md (other sections kept).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import pathlib
import random
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import DOC, Emu, answer, replace_marked  # noqa: E402

ORG_SIZE = 1_000_000
QUICK_SIZE = 20_000
LATENCY = 0.020
COLD_PER_STRATUM = 500          # known numbers stored in a common form, and as many in an odd one
NIGHTLY_NUMBERS = 10_000
UNKNOWN_SHARE = 0.15
DAYS = (100, 1_000, 10_000)     # calls per day
CALLERS_PER_CALL = 0.45         # distinct callers in a day's pool per call (bench/resolve.py: 450 / 1,000)
ROUNDS_PER_DAY = 96             # index_minutes = 15
EDITS = 1_000
SHARED = 10                     # a number on more records than this is a shared line
KEYSET_SIZE = 100_000           # the keyset-pages comparison's org (every object under the threshold)
BEGIN, END = "<!-- index:begin -->", "<!-- index:end -->"
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
MADE: list[pathlib.Path] = []   # the stores' temporary homes, removed at the end (a 1M index is 400 MB)


def resolve_bench():
    """bench/resolve.py as a module (its helpers are reused, not copied); importing runs no bench."""
    import bench.resolve

    return bench.resolve


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------------------------
# the emulator process: the org, its recorded truth, the DESIGN §3 winners
# ---------------------------------------------------------------------------------------------

class Truth:
    """The numbers the generator wrote into each phone value (``org.phone_truth``), who holds
    each (bench/resolve.py's ``holders_by_number``) and the DESIGN §3 winner that implies
    (its ``truth``); kept in step when the bench edits a phone."""

    def __init__(self, org):
        self.org, self.truth = org, org.phone_truth
        self.holders = resolve_bench().holders_by_number(org)

    def winner(self, e164: str) -> tuple[str, str] | None:
        """(object, Id) DESIGN §3 picks for ``e164``: Contact > Account > Lead, newest
        LastModifiedDate, smallest Id."""
        return resolve_bench().truth(self.holders, e164)

    def values(self) -> list[tuple[str, str, str, object]]:
        """(object, Id, field, Number) of every number written into a phone value."""
        return [(self.org.object_of(record_id), record_id, field, number)
                for (record_id, field), numbers in self.truth.items() for number in numbers]

    def stored(self, record_id: str, field: str) -> str | None:
        found = self.org.get(record_id)
        return found[1].get(field) if found else None

    def edit(self, record_id: str, field: str, value: str, e164: str, emu) -> None:
        """Change a phone through the emulator's control, keeping the truth in step (the records
        in ``holders`` are the org's own, so their LastModifiedDate follows)."""
        from emulator.datagen import PHONE_FIELDS, Number
        found = self.org.get(record_id)
        for old in self.truth.get((record_id, field), ()):
            elsewhere = [self.truth.get((record_id, other), ()) for other in PHONE_FIELDS[found[0]]
                         if other != field]
            if not any(old in numbers for numbers in elsewhere):
                self.holders[old.e164] = [h for h in self.holders[old.e164] if h[1] is not found[1]]
        emu.edit_record(record_id, **{field: value})
        self.truth[(record_id, field)] = (Number(e164, (), "81"),)
        self.holders.setdefault(e164, []).append(found)


def common_forms(number) -> set[str]:
    """The stored forms the generator counts as common for ``number`` (the others are odd:
    other dashes, brackets, spaces and pluses, labels, notes, extensions, international
    prefixes, hyphens in the wrong place, two numbers in one field)."""
    from emulator.datagen import COMMON_JP_STYLES, FOREIGN_STYLES
    if number.cc != "81":
        return {style(number.cc, number.groups, None) for _, style in FOREIGN_STYLES[:4]}
    return {style(number.groups, None) for _, style in COMMON_JP_STYLES}


def pick_numbers(truth: Truth, rng: random.Random, per_stratum: int, pool: int) -> dict:
    """Distinct numbers with a winner: ``per_stratum`` stored in a common form and as many in an
    odd one (the cold lookups), ``pool`` more at random (days, nightly run); the org's odd share."""
    rows = truth.values()
    rng.shuffle(rows)
    seen, common, odd, other = set(), [], [], []
    odd_values = values = 0
    for obj, record_id, field, number in rows:
        stored = truth.stored(record_id, field)
        if stored is None:
            continue
        values += 1
        is_odd = stored not in common_forms(number)
        odd_values += is_odd
        if number.e164 in seen or len(other) >= pool and len(common) >= per_stratum \
                and len(odd) >= per_stratum:
            continue
        winner = truth.winner(number.e164)
        if winner is None:
            continue
        seen.add(number.e164)
        entry = (number.e164, stored, winner)
        target = odd if is_odd else common
        (target if len(target) < per_stratum else other).append(entry)
    holders = {e164: len(truth.holders[e164]) for e164, _s, _w in common + odd}
    return {"common": common, "odd": odd, "pool": other[:pool], "odd_share": odd_values / values,
            "holders": holders}


def edit_targets(truth: Truth, count: int, rng: random.Random) -> list[tuple[str, str, str, str]]:
    """(Id, field, new stored value, its E.164) for ``count`` records' Phone: new IP-phone
    numbers nobody holds, typed in assorted forms (common and odd)."""
    records = [(obj, r) for obj in ("Contact", "Account", "Lead") for r in truth.org.records[obj]
               if r.get("Phone") and resolve_bench()._eligible(obj, r)]
    edits, used = [], set()
    for obj, record in rng.sample(records, count):
        while True:
            local = f"{rng.randint(2, 9)}{rng.randrange(10 ** 7):07d}"
            e164 = "+8150" + local
            if e164 not in truth.holders and e164 not in used:
                used.add(e164)
                break
        groups = ("050", local[:4], local[4:])
        value = rng.choice(["-".join(groups), "".join(groups), f"+81 50 {groups[1]} {groups[2]}",
                            "－".join(groups).translate(FULL_WIDTH), f"TEL {'-'.join(groups)}",
                            "‐".join(groups), f"{'-'.join(groups)}（代表）"])
        edits.append((record["Id"], "Phone", value, e164))
    return edits


def serve(pipe, size: int, seed: int, latency: float, needs: dict) -> None:
    """Child process: generate the org, pick the numbers, serve until told to stop."""
    from emulator import Emulator, generate_org

    started = time.perf_counter()
    org = generate_org(size=size, seed=seed)
    generated = time.perf_counter() - started
    truth = Truth(org)
    rng = random.Random(seed)
    numbers = pick_numbers(truth, rng, needs["per_stratum"], needs["pool"])
    unknown = resolve_bench().unknown_numbers(truth.holders, needs["unknown"], rng)
    with Emulator(org) as emu:
        emu.faults.latency = latency
        pipe.send({"login_url": emu.login_url, "ca_path": emu.ca_path, "username": emu.username,
                   "password": emu.password, "token": emu.security_token,
                   "person_accounts": org.person_accounts, "counts": org.count(),
                   "generated_s": generated, "emulator_peak_mb": peak_rss_mb(),
                   "numbers": numbers, "unknown": unknown})
        def edit(count):
            edits = edit_targets(truth, count, rng)
            before = [[n.e164 for n in truth.truth.get((record_id, field), ())]
                      for record_id, field, _value, _e164 in edits]
            for record_id, field, value, e164 in edits:
                truth.edit(record_id, field, value, e164, emu)
            return [edit + (old,) for edit, old in zip(edits, before)]

        def server_ms():
            spent: dict[str, float] = {}
            for entry in emu.calls():
                spent[entry["kind"]] = spent.get(entry["kind"], 0.0) + entry.get("duration_ms", 0.0)
            return spent

        answer(pipe, emu, {"edit": edit, "server_ms": server_ms,
                           "winners": lambda numbers: {e164: truth.winner(e164) for e164 in numbers}})


# ---------------------------------------------------------------------------------------------
# the client side
# ---------------------------------------------------------------------------------------------

def new_store(env: dict, phone_index: bool):
    """A store connected to the emulator, the phone index on or off."""
    from core.settings import save_settings
    store = resolve_bench().new_store(env)
    MADE.append(store.home)
    save_settings(store, {"phone_index": phone_index})
    return store


def own_calls(store) -> int:
    return store.api_usage()["own_calls"]


def sync_child(home: str) -> None:
    """``--sync-child HOME``: one ``index.sync`` of the store in HOME in this fresh process; prints
    JSON (wall time, report, peak RSS before and after)."""
    from core import index
    from core.store import Store
    store = Store(home)
    before = peak_rss_mb()
    started = time.perf_counter()
    report = index.sync(store, full=True)
    wall = time.perf_counter() - started
    print(json.dumps({"wall": wall, "report": report.as_dict(), "peak_before_mb": before,
                      "peak_mb": peak_rss_mb()}))


def initial_sync(emu: Emu, store, profile: bool) -> dict:
    """The initial sync in a child process (its own memory only); API calls as the emulator counts them."""
    emu.reset()
    command = [sys.executable]
    if profile:
        command += ["-m", "cProfile", "-o", str(store.home / "sync.prof")]
    command += [str(pathlib.Path(__file__).resolve()), "--sync-child", str(store.home)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the sync child failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["api"] = emu.calls()
    result["by_kind"] = emu.ask("counters")
    result["server_s"] = {k: v / 1000 for k, v in emu.ask("server_ms").items()}
    if profile:
        import pstats
        stats = pstats.Stats(str(store.home / "sync.prof"))
        print("the sync child's profile (cumulative, top 25):")
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(15)
    result["db_mb"] = sum(p.stat().st_size for p in store.home.glob("sfcti.db*")) / 2 ** 20
    return result


def display_answer(display: dict) -> tuple[str, str] | None:
    from core.display import MATCHED
    return (display["object"], display["record_id"]) if display["status"] == MATCHED else None


def cold_lookups(emu: Emu, stores: dict, numbers: dict, rng: random.Random) -> dict:
    """The first call of each known number, dialled in another form than stored, through both
    resolvers in turn (the same number one after the other)."""
    from core.resolver import Resolver
    dialled = resolve_bench().dialled_form
    resolvers = {side: Resolver(store) for side, store in stores.items()}
    for resolver in resolvers.values():
        resolver.connection_factory(resolver.store)  # log in before the clock starts
    out = {side: {"ms": [], "by_number": {}, "api": own_calls(store)} for side, store in stores.items()}
    for stratum in ("common", "odd"):
        for side in out:
            out[side][stratum] = {"n": 0, "match": 0, "right": 0}
        for e164, stored, winner in numbers[stratum]:
            raw = dialled(e164, stored, rng)
            for side, resolver in resolvers.items():
                started = time.perf_counter()
                got = display_answer(resolver.resolve(raw))
                elapsed = (time.perf_counter() - started) * 1000
                out[side]["ms"].append(elapsed)
                out[side]["by_number"][e164] = elapsed
                figures = out[side][stratum]
                figures["n"] += 1
                figures["match"] += got is not None
                figures["right"] += got == tuple(winner)
    for side, store in stores.items():
        out[side]["api"] = own_calls(store) - out[side]["api"]
    return out


def nightly(stores: dict, numbers: dict, unknown: list[str], rng: random.Random) -> dict:
    """``resolve_many`` over known and unknown numbers, each side; right record against the truth."""
    from core.resolver import Resolver
    dialled = resolve_bench().dialled_form
    n_unknown = int(NIGHTLY_NUMBERS * UNKNOWN_SHARE)
    known = (numbers["pool"] + numbers["common"] + numbers["odd"])[:NIGHTLY_NUMBERS - n_unknown]
    raws = [dialled(e, s, rng) for e, s, _ in known] + unknown[:n_unknown]
    rng.shuffle(raws)
    expected = {e: tuple(w) for e, _, w in known}
    out = {}
    for side, store in stores.items():
        resolver = Resolver(store)
        resolver.connection_factory(store)
        calls = own_calls(store)
        started = time.perf_counter()
        results = resolver.resolve_many(raws)
        wall = time.perf_counter() - started
        got = {e: display_answer(d) for e, d in results.items()}
        out[side] = {"numbers": len(raws), "known": len(expected), "wall": wall,
                     "api": own_calls(store) - calls,
                     "match": sum(1 for e in expected if got.get(e)) / len(expected),
                     "right": sum(1 for e, w in expected.items() if got.get(e) == w) / len(expected),
                     "false": sum(1 for e in unknown[:n_unknown] if got.get(e))}
    return out


def day(env: dict, store_index, calls_per_day: int, known: list, unknown: list[str],
        rng: random.Random) -> dict:
    """A day of ``calls_per_day`` calls (Zipf-like repetition, 15 % unknown callers) through each
    side, a match registered after its first call; API calls each side spent."""
    from core.resolver import Resolver
    rb = resolve_bench()
    callers_n = max(10, int(calls_per_day * CALLERS_PER_CALL))
    n_unknown = int(callers_n * UNKNOWN_SHARE)
    callers = [(rb.dialled_form(e, s, rng), e) for e, s, _ in known[:callers_n - n_unknown]]
    callers += [(rb.dialled_form(e, None, rng), e) for e in unknown[:n_unknown]]
    rng.shuffle(callers)
    weights = [1 / rank ** rb.ZIPF_EXPONENT for rank in range(1, len(callers) + 1)]
    calls = rng.choices(callers, weights, k=calls_per_day)
    out = {"callers": len(callers), "distinct": len({e for _, e in calls})}
    for side, store in (("index", store_index), ("live", new_store(env, phone_index=False))):
        resolver = Resolver(store)
        resolver.connection_factory(store)
        before, seen = own_calls(store), set()
        for raw, e164 in calls:
            display = resolver.resolve(raw)
            if e164 not in seen:
                seen.add(e164)
                resolver.register(display)
        out[side] = own_calls(store) - before
    return out


def incremental(emu: Emu, store) -> dict:
    """1,000 phones edited through the emulator's control, then one round; every edited record
    (new number and old ones) checked against the truth's winners afterwards."""
    from core import index
    edits = emu.ask("edit", EDITS)
    before = own_calls(store)
    started = time.perf_counter()
    report = index.sync(store)
    wall = time.perf_counter() - started
    numbers = [e164 for *_, e164, _old in edits] + [e for *_, old in edits for e in old]
    winners = emu.ask("winners", numbers)
    wrong = 0
    for e164, winner in winners.items():
        found = index.find(store, e164)
        wrong += (found.object, found.record_id) != tuple(winner) if found and winner \
            else (found is None) != (winner is None)
    new_right = sum(1 for record_id, _f, _v, e164, _o in edits
                    if (found := index.find(store, e164)) and found.record_id == record_id)
    return {"wall": wall, "api": own_calls(store) - before, "changes": report.changes,
            "failed": report.failed, "edits": len(edits), "new_right": new_right,
            "checked": len(winners), "wrong": wrong}


def idle_round(store) -> dict:
    """One round with nothing changed: its time and API calls."""
    from core import index
    before = own_calls(store)
    started = time.perf_counter()
    index.sync(store)
    return {"wall": time.perf_counter() - started, "api": own_calls(store) - before}


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------

def rate(figures: dict, key: str) -> float:
    return figures[key] / figures["n"] if figures["n"] else float("nan")


def weighted(side: dict, key: str, odd_share: float) -> float:
    """A rate over the org's mix of stored forms (the strata weighted by their share)."""
    return (1 - odd_share) * rate(side["common"], key) + odd_share * rate(side["odd"], key)


def report(env: dict, r: dict) -> str:
    rb = resolve_bench()
    ratio = rb._ratio
    cold, odd_share = r["cold"], env["numbers"]["odd_share"]
    ix, lv = cold["index"], cold["live"]
    n_cold = ix["common"]["n"] + ix["odd"]["n"]
    p99 = {side: rb.percentile(cold[side]["ms"], 99) for side in cold}
    p50 = {side: rb.percentile(cold[side]["ms"], 50) for side in cold}
    night = r["nightly"]
    sync, counts = r["sync"], env["counts"]
    total = sum(counts[o] for o in ("Contact", "Account", "Lead"))
    rows = [
        (f"match rate, stored in a common form ({ix['common']['n']} numbers)",
         f"{rate(ix['common'], 'match'):.1%}", f"{rate(lv['common'], 'match'):.1%}", ""),
        (f"match rate, stored in an odd form ({ix['odd']['n']} numbers)",
         f"{rate(ix['odd'], 'match'):.1%}", f"{rate(lv['odd'], 'match'):.1%}", ""),
        (f"match rate, the org's mix ({odd_share:.1%} of values odd)",
         f"{weighted(ix, 'match', odd_share):.1%}", f"{weighted(lv, 'match', odd_share):.1%}", ""),
        ("right record (DESIGN §3 winner), common / odd",
         f"{rate(ix['common'], 'right'):.1%} / {rate(ix['odd'], 'right'):.1%}",
         f"{rate(lv['common'], 'right'):.1%} / {rate(lv['odd'], 'right'):.1%}", ""),
        ("right record, the org's mix", f"{weighted(ix, 'right', odd_share):.1%}",
         f"{weighted(lv, 'right', odd_share):.1%}", ""),
        (f"API calls, these {n_cold} first calls", f"{ix['api']}", f"{lv['api']}", ""),
        ("screen p50, cold number (first call), ms", f"{p50['index']:.2f}", f"{p50['live']:.1f}",
         ratio(p50["live"], p50["index"])),
        ("**screen p99, cold number (first call), ms** (target < 1 ms)", f"**{p99['index']:.2f}**",
         f"{p99['live']:.1f}", ratio(p99["live"], p99["index"])),
        *shared_rows(env["numbers"]["holders"], cold, rb.percentile),
        (f"nightly run, {night['index']['numbers']:,} numbers: right record (target 100 %)",
         f"**{night['index']['right']:.2%}**", f"{night['live']['right']:.2%}", ""),
        ("nightly run: match rate", f"{night['index']['match']:.2%}", f"{night['live']['match']:.2%}", ""),
        ("nightly run: API calls / wall time, s",
         f"{night['index']['api']} / {night['index']['wall']:.1f}",
         f"{night['live']['api']} / {night['live']['wall']:.1f}",
         ratio(night["live"]["wall"], night["index"]["wall"])),
        ("nightly run: false matches for unknown numbers",
         f"{night['index']['false']}", f"{night['live']['false']}", ""),
    ]
    lines = [
        f"Org: {total:,} records (Contact {counts['Contact']:,}, Account {counts['Account']:,}, "
        f"Lead {counts['Lead']:,}; hidden person-account contacts included), person accounts on, "
        f"phones typed in every form the generator knows ({odd_share:.1%} of values in an odd form); "
        f"generated in {env['generated_s']:.0f} s, emulator process peak {env['emulator_peak_mb']:,.0f} MB "
        f"after generating; {LATENCY * 1000:.0f} ms added to every request. \"index\": the phone index "
        "on (built by the initial sync below); \"live\": `phone_index` off, today's live resolver. "
        "Expected answers: the generator's recorded truth and DESIGN §3, never core/phone.py.",
        "",
        "| figure | index | live | live / index |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", "Known numbers are dialled as E.164, national or hyphenated, never as the stored "
              "string; \"odd\" stored forms are the generator's uncommon styles (other dashes, "
              "brackets, spaces and pluses, labels and notes, extensions, international prefixes, "
              "hyphens in the wrong place, two numbers in one field).", "",
              "API calls per day (a match registered after its first call on both sides; the index "
              f"adds {ROUNDS_PER_DAY} rounds a day at 15 minutes, {r['idle']['api']} call each when "
              "nothing changed; an unknown caller costs either side one live call):", "",
              "| calls per day | distinct callers | index: lookups + rounds = total | live | live / index |",
              "|---:|---:|---:|---:|---:|"]
    round_calls = ROUNDS_PER_DAY * r["idle"]["api"]
    for d in r["days"]:
        total_index = d["index"] + round_calls
        lines.append(f"| {d['per_day']:,} | {d['distinct']:,} | {d['index']} + {round_calls} = "
                     f"{total_index:,} | {d['live']:,} | {ratio(d['live'], total_index)} |")
    lines += ["", "Weekly full re-sync: the initial sync's calls once a week "
              f"(about {sync['api'] / 7:.0f} a day for this org).", ""]
    lines += sync_lines(sync, total, "Initial sync (`index_bulk_threshold` default: Bulk API 2.0 "
                        "above it)")
    if r.get("keyset"):
        lines += [""] + sync_lines(r["keyset"], r["keyset"]["org_records"],
                                   "For comparison, keyset pages only (`index_bulk_threshold` 0)")
    inc, idle = r["incremental"], r["idle"]
    lines += ["", f"Incremental round after {inc['edits']:,} phones edited through the emulator's "
              f"control: **{inc['wall']:.2f} s**, {inc['api']} API call(s), {inc['changes']:,} rows read; "
              f"afterwards {inc['new_right']:,} / {inc['edits']:,} new numbers name the edited record "
              f"and {inc['checked'] - inc['wrong']:,} / {inc['checked']:,} numbers (new and old) "
              f"name the truth's winner. A round with nothing changed: {idle['wall']:.2f} s, "
              f"{idle['api']} call.", "", f"Bench wall time: {r['bench_s']:.0f} s."]
    return "\n".join(lines)


def shared_rows(holders: dict, cold: dict, percentile) -> list[tuple]:
    """Cold p99 apart for numbers on few records and for lines shared by many (a big customer's
    company line on all its contacts: the index sorts every holder to pick the winner)."""
    rows = []
    for label, test in ((f"at most {SHARED} records", lambda n: n <= SHARED),
                        (f"more than {SHARED} records", lambda n: n > SHARED)):
        chosen = [e for e, n in holders.items() if test(n)]
        if not chosen:
            continue
        ms = {side: [cold[side]["by_number"][e] for e in chosen] for side in cold}
        most = max(holders[e] for e in chosen)
        rows.append((f"screen p99 / max, cold number held by {label} ({len(chosen)} numbers, "
                     f"up to {most:,} holders), ms",
                     f"{percentile(ms['index'], 99):.2f} / {max(ms['index']):.2f}",
                     f"{percentile(ms['live'], 99):.1f} / {max(ms['live']):.1f}",
                     resolve_bench()._ratio(percentile(ms['live'], 99), percentile(ms['index'], 99))))
    return rows


def sync_lines(sync: dict, records: int, title: str) -> list[str]:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(sync["by_kind"].items()) if k != "login")
    server_s = sum(sync["server_s"].values())
    spent = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(sync["server_s"].items()) if k != "login")
    return [f"{title}, in a child process, of {records:,} records: **{sync['wall']:.0f} s** wall "
            f"({records / sync['wall']:,.0f} records/s), **{sync['api']} API calls** ({kinds}), "
            f"peak memory of the syncing process **{sync['peak_mb']:.0f} MB** VmHWM "
            f"({sync['peak_before_mb']:.0f} MB after its imports; target < 200 MB), database "
            f"**{sync['db_mb']:.0f} MB**; {sync['report']['records']:,} records indexed. "
            f"Of the wall time, the emulator spent {server_s:.0f} s answering ({spent}; the added "
            f"latency included); the rest, about {sync['wall'] - server_s:.0f} s, is the "
            "syncing process's own work and its waits between polls of a Bulk job."]


def write_doc(text: str) -> None:
    """Put ``text`` between the index markers of docs/benchmarks.md (other sections kept)."""
    replace_marked(BEGIN, END, text, "## Phone index\n\n`make bench` runs `bench/index.py` "
                   "(`--quick` for a 20,000-record org): the phone index (docs/index.md) side by "
                   "side with today's live resolver on the same org.")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the "Phone index" section (and write it with --write-docs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=ORG_SIZE)
    parser.add_argument("--quick", action="store_true", help=f"a {QUICK_SIZE:,}-record org")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keyset-size", type=int, default=KEYSET_SIZE,
                        help="also sync an org of this size in keyset pages only (0: skip; "
                             "--quick skips it)")
    parser.add_argument("--profile", action="store_true", help="cProfile the initial sync")
    parser.add_argument("--sync-only", action="store_true", help="stop after the initial sync")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--sync-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sync_child:
        return sync_child(args.sync_child)
    try:
        run(args)
    finally:
        for home in MADE:
            shutil.rmtree(home, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    """The benchmark proper (main removes the stores it made afterwards)."""
    size = QUICK_SIZE if args.quick else args.size
    started = time.perf_counter()
    rng = random.Random(args.seed)
    pool = sum(int(d * CALLERS_PER_CALL) for d in DAYS) + NIGHTLY_NUMBERS
    needs = {"per_stratum": COLD_PER_STRATUM, "pool": pool,
             "unknown": NIGHTLY_NUMBERS + sum(int(d * CALLERS_PER_CALL) for d in DAYS)}
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    process = context.Process(target=serve, args=(child, size, args.seed, LATENCY, needs), daemon=True)
    process.start()
    print(f"generating a {size:,}-record org in the emulator process...", flush=True)
    env = parent.recv()
    emu = Emu(parent, env)
    results = {}
    try:
        store_index, store_live = new_store(env, True), new_store(env, False)
        print(f"generated in {env['generated_s']:.0f} s; initial sync in a child process...", flush=True)
        results["sync"] = initial_sync(emu, store_index, args.profile)
        print(f"  {results['sync']['wall']:.0f} s, {results['sync']['api']} calls, "
              f"{results['sync']['peak_mb']:.0f} MB", flush=True)
        if args.sync_only:
            return
        results["idle"] = idle_round(store_index)
        stores = {"index": store_index, "live": store_live}
        print("cold lookups, both sides...", flush=True)
        results["cold"] = cold_lookups(emu, stores, env["numbers"], rng)
        print("nightly run, both sides...", flush=True)
        results["nightly"] = nightly(stores, env["numbers"], env["unknown"], rng)
        known, unknown = list(env["numbers"]["pool"]), env["unknown"][NIGHTLY_NUMBERS:]
        results["days"] = []
        for calls in DAYS:
            print(f"a day of {calls:,} calls, both sides...", flush=True)
            figures = day(env, store_index, calls, known, unknown, rng)
            figures["per_day"] = calls
            results["days"].append(figures)
            taken = figures["callers"]
            known, unknown = known[taken:], unknown[int(taken * UNKNOWN_SHARE) + 1:]
        print(f"incremental round after {EDITS:,} edits...", flush=True)
        results["incremental"] = incremental(emu, store_index)
    finally:
        parent.send(("stop",))
        process.join(timeout=30)
    if args.keyset_size and not args.quick:
        results["keyset"] = keyset_sync(args.keyset_size, args.seed)
    results["bench_s"] = time.perf_counter() - started
    text = report(env, results)
    print()
    print(text)
    if args.write_docs:
        write_doc(text)
        print(f"\nwritten to {DOC.relative_to(ROOT)}")


def keyset_sync(size: int, seed: int) -> dict:
    """The initial sync of another org in keyset pages only (no Bulk API), for comparison."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    needs = {"per_stratum": 0, "pool": 0, "unknown": 0}
    process = context.Process(target=serve, args=(child, size, seed, LATENCY, needs), daemon=True)
    process.start()
    print(f"keyset comparison: a {size:,}-record org...", flush=True)
    env = parent.recv()
    try:
        from core.settings import save_settings
        store = new_store(env, True)
        save_settings(store, {"index_bulk_threshold": 0})
        result = initial_sync(Emu(parent, env), store, profile=False)
        result["org_records"] = sum(env["counts"][o] for o in ("Contact", "Account", "Lead"))
        return result
    finally:
        parent.send(("stop",))
        process.join(timeout=30)


if __name__ == "__main__":
    main()
