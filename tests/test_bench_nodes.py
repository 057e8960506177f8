"""bench/nodes.py --quick runs: 4 host processes on one SQLite folder and 4 nodes on one
PostgreSQL database (fsync and synchronous_commit on, as a real server), every call placed in
the history exactly once on both, every screen a cached match, the ratios printed.

The full run is ``make bench`` (figures in docs/benchmarks.md)."""

import argparse

from helpers import ROOT  # noqa: F401  (puts the project on sys.path, as for every test)

from bench import nodes

PROCESSES, THREADS = 4, 4


def test_quick_bench_records_every_call_once_on_both_backends():
    figures = nodes.run(argparse.Namespace(quick=True, calls=None, rounds=None,
                                           processes=PROCESSES, threads=THREADS))
    placed = PROCESSES * THREADS * nodes.QUICK["per_thread"] * nodes.QUICK["rounds"]
    for name in ("sqlite", "postgresql"):
        backend = figures["backends"][name]
        assert backend["broken"] == [], name
        assert (backend["placed"], backend["history_rows"]) == (placed, placed), name
        assert backend["calls_per_s"] > 0, name
    server = figures["facts"]["postgresql"]
    assert (server["fsync"], server["synchronous_commit"], server["full_page_writes"]) == ("on",) * 3
    text = nodes.report(figures)
    assert "| **PG / SQLite** |" in text
    assert "history exactly once, every screen a cached match: yes." in text
