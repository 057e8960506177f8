"""Fault matrix, PostgreSQL row (issue 14): the database server stops while calls ring and end,
then comes back. Screens still answer within their budget, the end of a call never blocks the
host for long nor raises, and once the server is back every call is in the history exactly once.
"""

from __future__ import annotations

import os
import time

import pytest

from core.store import open_store
from helpers import connect, end, ring
from pgserver import PostgresServer

BUDGET, SLACK = 0.8, 0.1
END_WAIT = 1.0                    # core.runtime.END_WAIT_SECONDS: the longest the host waits
WARM, DURING = "090-3333-4444", "03-1234-5678"
DURING_E164 = "+81312345678"
OUTAGE_CALLS = 5


@pytest.fixture
def own_server():
    """A PostgreSQL server of this test's own: it is stopped and started again."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_home(tmp_path, monkeypatch, own_server):
    """An instance folder on a database of ``own_server``, as $SFCTI_HOME."""
    from core.runtime import shutdown_all
    from core.store import forget_store

    path = tmp_path / "instance"
    path.mkdir(mode=0o700)
    fd = os.open(path / "database_url", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(own_server.create_database() + "\n")
    monkeypatch.setenv("SFCTI_HOME", str(path))
    monkeypatch.setenv("SFCTI_JOBS", "off")
    monkeypatch.setenv("SFCTI_SEND_TASKS", "off")
    yield path
    shutdown_all()
    forget_store(path)


def _history_counts(store, timeout: float) -> dict[str, int]:
    """Rows per call id once every call of the outage is in (or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            rows = store.conn.execute("SELECT call_id, count(*) FROM calls GROUP BY call_id").fetchall()
        except store.unavailable:
            rows = []
        counts = dict(rows)
        if sum(counts.values()) >= OUTAGE_CALLS + 1 or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def test_postgresql_stopped_while_calls_ring_and_end(pg_home, own_server, emulator, host):
    store = open_store(pg_home)
    connect(store, emulator)
    call, display, _ = ring(host, WARM, call_id="before-the-outage")
    assert display["status"] == "matched"
    assert end(host, call) == []

    own_server.pause()
    slowest_ring = slowest_end = 0.0
    for i in range(OUTAGE_CALLS):
        call, display, took = ring(host, DURING, call_id=f"during-the-outage-{i}")
        slowest_ring = max(slowest_ring, took)
        assert display["number"] == DURING_E164
        started = time.monotonic()
        assert end(host, call) == []                     # nothing raised into the host
        slowest_end = max(slowest_end, time.monotonic() - started)
    assert slowest_ring < BUDGET + SLACK
    assert slowest_end < END_WAIT + SLACK

    own_server.resume()
    counts = _history_counts(store, timeout=30)
    expected = {"before-the-outage": 1} | {f"during-the-outage-{i}": 1 for i in range(OUTAGE_CALLS)}
    assert counts == expected
