"""Several nodes: 4 host processes on SQLite (one shared instance folder) against the same 4 on
PostgreSQL (4 instance folders, one database URL: 4 "nodes"), side by side in one run.

    .venv/bin/python bench/nodes.py [--quick] [--write-docs]

Each host process loads the plugin through its entry point into a real ``PluginManager`` and
places its calls from a few threads as fast as it can (a closed loop, no pause): a cached
``on_incoming_call`` (a registered contact, so no Salesforce request) and ``on_call_ended``
(the history row, written before the hook returns). Both backends get the same workload; the
rounds alternate SQLite, PostgreSQL, SQLite, ... so machine noise hits both. The jobs and the
Task sender are off in the hosts: the bench measures the call path and the store, nothing else.

The PostgreSQL server is tests/pgserver.py's, configured like a real one (fsync,
synchronous_commit and full_page_writes on, WAL level replica), on a unix socket in a temporary
folder on the same disk as the SQLite folder. Every call placed must be in the history exactly
once (exit status 1 otherwise).

``--write-docs`` replaces the text between the nodes markers of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))   # tests/pgserver.py, imported as the tests do
from bench.common import percentile, replace_marked  # noqa: E402
from bench.loadtest import check_history  # noqa: E402

PROCESSES = 4
THREADS = 4                  # host threads per process
CALLS = 400                  # calls per thread and round
ROUNDS = 2                   # rounds per backend, alternating
QUICK = {"per_thread": 25, "rounds": 1}
REGISTERED = 200             # registered contacts the calls ring from
# a real server's durability, not the test server's disposable settings
REAL_SERVER = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on",
               "wal_level": "replica", "max_wal_senders": "10", "shared_buffers": "128MB",
               "checkpoint_timeout": "5min", "max_connections": "100"}
SHOWN_SETTINGS = ("server_version", "fsync", "synchronous_commit", "full_page_writes",
                  "wal_level", "shared_buffers")
BACKENDS = ("sqlite", "postgresql")

BEGIN = "<!-- nodes:begin -->"
END = "<!-- nodes:end -->"
INTRODUCTION = """## Several nodes: SQLite and PostgreSQL

`bench/nodes.py` (`make bench`; `--quick` for a short run): 4 host processes on one SQLite
instance folder against 4 nodes (instance folders) on one PostgreSQL database, the same calls
side by side in one run, on one machine. It measures what PostgreSQL costs, not what it buys:
nodes on several machines (docs/several-nodes.md) cannot share an SQLite folder at all.

Reading the figures: every ended call is written in a transaction that takes the store-wide
writer lock (SQLite's `BEGIN IMMEDIATE`; on PostgreSQL an advisory lock), so the history writes
of all nodes go one at a time, and with `synchronous_commit` on each PostgreSQL commit waits for
its WAL to reach the disk, where SQLite in WAL mode with `synchronous = NORMAL` does not sync at
every commit. A cached ring makes a few small reads (the settings rows, the index state, the
contact): in-process on SQLite, each a round trip to the server on PostgreSQL."""


# ---------------------------------------------------------------------------------------------
# instance folders
# ---------------------------------------------------------------------------------------------

def registered_numbers() -> list[str]:
    """The numbers of the registered contacts (fixed, outside any real range)."""
    return [f"+8150{9000_0000 + i:08d}" for i in range(REGISTERED)]


def register_contacts(home: pathlib.Path) -> None:
    """Store the registered contacts in ``home``'s database (the first node's, on PostgreSQL)."""
    from core.store import open_store

    store = open_store(home)
    for i, e164 in enumerate(registered_numbers()):
        store.upsert_contact(e164, object="Contact", record_id=f"003BENCH{i:010d}", company="負荷試験",
                             person=f"登録 {i}", record_url="https://example.invalid/")


def node_folders(base: pathlib.Path, url: str, count: int) -> list[pathlib.Path]:
    """``count`` instance folders on the database ``url`` (``database_url``, mode 0600), the
    first node's secret key copied to the others (mode 0600), as docs/several-nodes.md says."""
    from core.store import KEY_NAME, URL_FILE, open_store

    folders = []
    for i in range(count):
        folder = base / f"node{i}"
        folder.mkdir(mode=0o700)
        private_write(folder / URL_FILE, url + "\n")
        folders.append(folder)
    open_store(folders[0]).fernet      # the first node makes the key; the database keeps its check
    key = (folders[0] / KEY_NAME).read_bytes()
    for folder in folders[1:]:
        private_write(folder / KEY_NAME, key)
    return folders


def private_write(path: pathlib.Path, content: str | bytes) -> None:
    """Write ``content`` to a new file only its owner can read."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------------
# a host process
# ---------------------------------------------------------------------------------------------

def host(spec: dict) -> None:
    """One host process: load the plugin, ring once to warm up, say it is ready, wait for the
    go file, then place ``calls`` calls from each of ``threads`` threads; write one JSON object
    to ``out``."""
    from bridges.host import load_host
    from plugin.call import Call

    pm = load_host()
    numbers = spec["numbers"]
    pm.hook.on_incoming_call(call=Call(call_id=f"{spec['tag']}-warm", remote_number=numbers[0]))
    pathlib.Path(spec["ready"]).touch()
    go = pathlib.Path(spec["go"])
    while not go.exists():
        time.sleep(0.002)
    placed, failures = [], []

    def agent(t: int):
        for k in range(spec["per_thread"]):
            call = Call(call_id=f"{spec['tag']}-{t}-{k}", remote_number=numbers[(t * 7919 + k) % len(numbers)],
                        agent_id=spec["tag"])
            try:
                began = time.perf_counter()
                display = pm.hook.on_incoming_call(call=call)
                rang = time.perf_counter()
                pm.hook.on_call_ended(call=call.end(answered=True, duration=1))
                ended = time.perf_counter()
            except Exception as exc:  # a hook raising into the host is a failure of the bench
                failures.append(f"{call.call_id}: {exc!r}")
                continue
            placed.append({"id": call.call_id, "ring_ms": (rang - began) * 1000,
                           "end_ms": (ended - rang) * 1000, "status": display.get("status"),
                           "done": time.time()})

    threads = [threading.Thread(target=agent, args=(t,)) for t in range(spec["threads"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    from core.runtime import runtime_for
    runtime_for().wait_idle(60)
    with open(spec["out"], "w", encoding="utf-8") as f:
        json.dump({"placed": placed, "failures": failures}, f)
    os._exit(0)


# ---------------------------------------------------------------------------------------------
# a round
# ---------------------------------------------------------------------------------------------

def run_round(tag: str, homes: list[pathlib.Path], work: pathlib.Path, calls: int,
              threads: int) -> dict:
    """One round on one backend: a host process per folder of ``homes`` (the same folder
    repeated for SQLite), started together once all are loaded; their calls and the wall time."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), SFCTI_JOBS="off", SFCTI_SEND_TASKS="off")
    go = work / f"{tag}.go"
    specs, hosts = [], []
    for p, home in enumerate(homes):
        spec = {"tag": f"{tag}-{p}", "threads": threads, "per_thread": calls,
                "numbers": registered_numbers(), "ready": str(work / f"{tag}-{p}.ready"),
                "go": str(go), "out": str(work / f"{tag}-{p}.json")}
        spec_path = work / f"{tag}-{p}.spec.json"
        spec_path.write_text(json.dumps(spec))
        specs.append(spec)
        hosts.append(subprocess.Popen([sys.executable, str(pathlib.Path(__file__).resolve()),
                                       "--host", str(spec_path)], cwd=ROOT,
                                      env=dict(env, SFCTI_HOME=str(home))))
    try:
        wait_for(lambda: all(pathlib.Path(s["ready"]).exists() for s in specs), hosts, 120)
        started = time.time()
        go.touch()
        wait_for(lambda: all(h.poll() is not None for h in hosts), hosts, 600)
    finally:
        for h in hosts:
            if h.poll() is None:
                h.kill()
    results = []
    for h, spec in zip(hosts, specs):
        if h.returncode != 0 or not pathlib.Path(spec["out"]).exists():
            raise RuntimeError(f"{tag}: a host process failed (exit {h.returncode})")
        results.append(json.loads(pathlib.Path(spec["out"]).read_text()))
    placed = [c for r in results for c in r["placed"]]
    return {"hosts": results, "wall_s": max(c["done"] for c in placed) - started if placed else 0.0}


@contextlib.contextmanager
def folders_decide():
    """Leave out ``SFCTI_DATABASE_URL`` and ``SFCTI_SECRET_KEY`` for the block (the hosts inherit
    that): each instance folder's own ``database_url`` and ``secret.key`` must decide, or an
    operator's variable would point the SQLite side at a PostgreSQL database."""
    from core.store import ENV_DATABASE_URL, ENV_SECRET_KEY

    saved = {name: os.environ.pop(name) for name in (ENV_DATABASE_URL, ENV_SECRET_KEY)
             if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def wait_for(condition, hosts: list, seconds: float) -> None:
    """Wait until ``condition()``; a host that died or a timeout ends the bench."""
    deadline = time.time() + seconds
    while not condition():
        if any(h.poll() not in (None, 0) for h in hosts):
            raise RuntimeError("a host process failed while starting or running")
        if time.time() > deadline:
            raise RuntimeError(f"the hosts did not get there within {seconds} s")
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> dict:
    """Every round on both backends; returns the figures."""
    from pgserver import PostgresServer

    from core.postgres import close_all
    from core.store import forget_store

    calls = args.calls or (QUICK["per_thread"] if args.quick else CALLS)
    rounds = args.rounds or (QUICK["rounds"] if args.quick else ROUNDS)
    work = pathlib.Path(tempfile.mkdtemp(prefix="sfcti-nodes-"))
    began = time.perf_counter()
    try:
        with folders_decide(), PostgresServer(settings=REAL_SERVER) as server:
            url = server.create_database("sfcti_nodes")
            sqlite_home = work / "sqlite"
            sqlite_home.mkdir(mode=0o700)
            pg_homes = node_folders(work, url, args.processes)
            for home in (sqlite_home, pg_homes[0]):
                register_contacts(home)
            homes = {"sqlite": [sqlite_home] * args.processes, "postgresql": pg_homes}
            measured = {name: [] for name in BACKENDS}
            for r in range(rounds):
                for name in BACKENDS:
                    measured[name].append(run_round(f"{name[:2]}{r}", homes[name], work, calls,
                                                    args.threads))
            figures = {name: summarize(measured[name], homes[name][0]) for name in BACKENDS}
            facts = machine_facts(server, url, sqlite_home, work)
            forget_store(sqlite_home)
            for home in pg_homes:
                forget_store(home)
            close_all()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"backends": figures, "facts": facts, "processes": args.processes,
            "threads": args.threads, "per_thread": calls, "rounds": rounds,
            "bench_s": time.perf_counter() - began}


def summarize(rounds: list[dict], home: pathlib.Path) -> dict:
    """One backend's figures over its rounds, and whether every call is in its history once."""
    calls = [c for r in rounds for h in r["hosts"] for c in h["placed"]]
    failures = [f for r in rounds for h in r["hosts"] for f in h["failures"]]
    history = check_history(str(home), {"hosts": [h for r in rounds for h in r["hosts"]]})
    rings = [c["ring_ms"] for c in calls]
    ends = [c["end_ms"] for c in calls]
    broken = []
    if failures:
        broken.append(f"{len(failures)} hooks raised into the host: {failures[:3]}")
    if history["lost_count"] or history["rows"] != history["placed"] \
            or history["unique_placed"] != history["placed"]:
        broken.append(f"history: {history['rows']} rows for {history['placed']} calls "
                      f"({history['lost_count']} lost)")
    statuses = sorted({c["status"] for c in calls})
    if statuses != ["matched"]:
        broken.append(f"screens answered {statuses}, not only 'matched' (a cached contact)")
    return {"placed": len(calls), "calls_per_s": len(calls) / sum(r["wall_s"] for r in rounds),
            "ring_p50": percentile(rings, 50), "ring_p99": percentile(rings, 99),
            "end_p50": percentile(ends, 50), "end_p99": percentile(ends, 99),
            "history_rows": history["rows"], "broken": broken}


def machine_facts(server, url: str, sqlite_home: pathlib.Path, work: pathlib.Path) -> dict:
    """What the figures were measured on: machine, Python, both databases' settings."""
    import psycopg

    with psycopg.connect(url) as conn:
        pg = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in SHOWN_SETTINGS}
    from core.store import open_store

    store = open_store(sqlite_home)
    sqlite_mode = {"journal_mode": store.conn.execute("PRAGMA journal_mode").fetchone()[0],
                   "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
                       store.conn.execute("PRAGMA synchronous").fetchone()[0])}
    return {"machine": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "sqlite_mode": sqlite_mode, "postgresql": pg, "filesystem": filesystem(work)}


def filesystem(path: pathlib.Path) -> str:
    """The type of the filesystem holding ``path`` (both databases' files are there)."""
    best, kind = "", "?"
    try:
        for line in pathlib.Path("/proc/mounts").read_text().splitlines():
            _device, mount, fs_type, *_ = line.split()
            if str(path).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fs_type
    except OSError:
        pass
    return kind


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------

def report(figures: dict) -> str:
    """The figures as markdown: the table, the ratios PG / SQLite and the machine facts."""
    facts, b = figures["facts"], figures["backends"]
    pg = facts["postgresql"]
    sq, pq = b["sqlite"], b["postgresql"]
    lines = [
        f"`bench/nodes.py` on {facts['machine']} / {facts['cpus']} CPUs, Python {facts['python']}: "
        f"{figures['processes']} host processes × {figures['threads']} threads, each thread "
        f"{figures['per_thread']} calls per round as fast as it can (cached `on_incoming_call` of a "
        f"registered contact, then `on_call_ended`), {figures['rounds']} round(s) per backend, "
        "alternating. SQLite: one shared instance folder "
        f"(SQLite {facts['sqlite']}, journal {facts['sqlite_mode']['journal_mode']}, synchronous "
        f"{facts['sqlite_mode']['synchronous']}). PostgreSQL {pg['server_version']}: "
        f"{figures['processes']} instance folders (nodes), one database over a unix socket on the "
        f"same machine, fsync {pg['fsync']}, synchronous_commit {pg['synchronous_commit']}, "
        f"full_page_writes {pg['full_page_writes']}, wal_level {pg['wal_level']}, shared_buffers "
        f"{pg['shared_buffers']}. Both on the same disk ({facts['filesystem']}). "
        f"Bench wall time: {figures['bench_s']:.0f} s.",
        "",
        "| backend | calls | calls/s | `on_incoming_call` p50 / p99 ms | `on_call_ended` p50 / p99 ms "
        "| history rows |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, label in (("sqlite", "SQLite, 1 folder"),
                        ("postgresql", f"PostgreSQL, {figures['processes']} nodes")):
        f = b[name]
        lines.append(f"| {label} | {f['placed']} | {f['calls_per_s']:.0f} | {f['ring_p50']:.2f} / "
                     f"{f['ring_p99']:.2f} | {f['end_p50']:.2f} / {f['end_p99']:.2f} | "
                     f"{f['history_rows']} |")
    lines.append(
        f"| **PG / SQLite** | | {_ratio(pq['calls_per_s'], sq['calls_per_s'])} | "
        f"{_ratio(pq['ring_p50'], sq['ring_p50'])} / {_ratio(pq['ring_p99'], sq['ring_p99'])} | "
        f"{_ratio(pq['end_p50'], sq['end_p50'])} / {_ratio(pq['end_p99'], sq['end_p99'])} | |")
    broken = [f"{name}: {x}" for name, f in b.items() for x in f["broken"]]
    lines += ["", "Every call in the history exactly once, every screen a cached match: "
              + ("yes." if not broken else "NO: " + "; ".join(broken))]
    return "\n".join(lines)


def _ratio(pg: float, sqlite: float) -> str:
    return f"{pg / sqlite:.2f}x" if sqlite else "∞"


def main(argv: list[str] | None = None) -> int:
    """Run the bench (or, with --host, one host process); exit status 1 when a call is missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['per_thread']} calls per thread, {QUICK['rounds']} round")
    parser.add_argument("--calls", type=int, help="calls per thread and round")
    parser.add_argument("--rounds", type=int, help="rounds per backend")
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--threads", type=int, default=THREADS, help="host threads per process")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--host", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.host:
        host(json.loads(pathlib.Path(args.host).read_text()))
        return 0
    figures = run(args)
    text = report(figures)
    print(text)
    if args.write_docs:
        replace_marked(BEGIN, END, text, INTRODUCTION)
    return 1 if any(f["broken"] for f in figures["backends"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
