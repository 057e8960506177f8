"""Fault matrix, the last row (issue 13): kill -9 of the host process at random points while calls,
the nightly run, the index sync, Task logging and alert mails are all in flight; three times,
then a restart. After recovery every call whose end hook returned is in the history exactly once
with exactly one Task, every alert went out exactly once, and the nightly run and the index sync
run again (a dead process's lease does not hold them back).

Each host is a real child process loading the plugin through its entry point, against this
module's emulator (its own org: the Tasks land there) and a real SMTP server on loopback.
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from core import history, jobs
from core.activity import send as send_tasks
from core.alerts import Alerts
from core.mail import Outbox
from core.salesforce import forget_connection
from faultmatrix import FAILURE
from helpers import ROOT, build_org, connect, runtime

ROUNDS = 3
NUMBERS = ["03-1234-5678", "06-1111-2222", "090-3333-4444", "+1 415-555-1212"]

HOST = textwrap.dedent("""
    import sys, threading, time
    from bridges.host import load_host
    from core import errors, jobs
    from core.alerts import Alerts
    from core.store import open_store
    from plugin.call import Call

    tag, numbers = sys.argv[1], sys.argv[2].split(",")
    pm, store = load_host(), open_store()
    said = threading.Lock()

    def say(*words):
        with said:                                # one whole line at a time
            sys.stdout.write(" ".join(words) + "\\n")
            sys.stdout.flush()

    def calls(thread):
        for i in range(10_000):
            call = Call(call_id=f"{tag}-{thread}-{i}", remote_number=numbers[(thread + i) % len(numbers)],
                        agent_id="101")
            pm.hook.on_incoming_call(call=call)
            pm.hook.on_call_ended(call=call.end(answered=True, duration=5))
            say("ended", call.call_id)

    def nightly():
        while True:
            jobs.register_contacts_for_day(store, force=True)

    def index_sync():
        while True:
            jobs.sync_index(store, full=True)

    def alerts():
        sender = Alerts(store, smtp_timeout=2)
        for n in range(10_000):
            code = f"KILL_{tag.upper()}_{n}"     # a new kind of failure: its alert is in flight
            errors.record_failure(store, "salesforce", "fault_matrix", code)
            say("failed", code)
            sender.tick()
            time.sleep(0.05)

    for target, args in [(calls, (0,)), (calls, (1,)), (nightly, ()), (index_sync, ()), (alerts, ())]:
        threading.Thread(target=target, args=args, daemon=True).start()
    say("started")
    time.sleep(120)
""")


@pytest.fixture(scope="module")
def emu_server():
    """This module's emulator: the sample org, whose Tasks only this module creates."""
    from emulator import Emulator

    with Emulator(build_org()) as emu:
        yield emu


class Child:
    """A host process whose stdout lines are collected as they come."""

    def __init__(self, home, tag: str):
        env = dict(os.environ, PYTHONPATH=str(ROOT), SFCTI_HOME=str(home), SFCTI_JOBS="off",
                   SFCTI_SEND_TASKS="on")
        self.log = open(pathlib.Path(home).parent / f"host-{tag}.log", "w")
        self.process = subprocess.Popen([sys.executable, "-c", HOST, tag, ",".join(NUMBERS)],
                                        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.log,
                                        text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.split())

    def said(self, word: str) -> list[str]:
        """The values of the lines starting with ``word``."""
        return [parts[1] for parts in list(self.lines) if parts and parts[0] == word and len(parts) > 1]

    def wait_started(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while ["started"] not in self.lines and time.monotonic() < deadline:
            assert self.process.poll() is None, "the host died on its own"
            time.sleep(0.02)

    def kill(self) -> None:
        """kill -9, then wait for its last lines."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.reader.join(10)
        self.log.close()


def test_kill_9_at_random_points_then_restart(store, emu, smtp_server):
    connect(store, emu, connect_timeout=1.0, read_timeout=2.0, activity_unmatched="log",
            **smtp_server.settings())
    emu.faults.latency = 0.02          # keeps requests in flight when the kill comes
    rng = random.Random()
    ended, failed = [], []
    for round_no in range(ROUNDS):
        child = Child(store.home, f"r{round_no}")
        child.wait_started()
        time.sleep(rng.uniform(0.5, 2.0))
        child.kill()
        ended += child.said("ended")
        failed += child.said("failed")
    assert ended and failed, "the hosts did nothing before their kill"
    emu.faults.clear()

    # the restart: a host process starts (its runtime records the journals of the dead ones)
    # and its jobs run, with the clock past every claim's lease
    assert runtime().wait_idle(30)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
    alerts = Alerts(store, clock=lambda: later, smtp_timeout=3)
    alerts.tick()
    alerts.tick()
    nightly = jobs.register_contacts_for_day(store, force=True)
    assert (nightly.skipped, nightly.failed) == (None, None)
    synced = jobs.sync_index(store, full=True)
    assert (synced.skipped, synced.failed) == (None, None)
    sent = send_tasks(store, force=True)
    assert sent.stopped is None

    rows = history.list_calls(store, limit=100_000)
    recorded = [r["call_id"] for r in rows]
    assert len(recorded) == len(set(recorded))                    # no call twice
    assert set(ended) - set(recorded) == set()                    # every returned end is there
    assert all(c.split("-")[0] in {f"r{n}" for n in range(ROUNDS)} for c in recorded)
    tasks = [t.get("CallObject") for t in emu.org.records["Task"]]
    assert sorted(c for c in tasks if c in set(recorded)) == sorted(recorded)   # one Task each
    assert len(tasks) == len(set(tasks))

    # Every alert arrived as one message (one Message-ID). A second copy of one can only come
    # from a kill after the SMTP server took it and before the outbox could say so (nothing
    # can tell a sender that it did): at most one per kill, with the same Message-ID.
    mails = smtp_server.wait_for(len(failed))
    copies = {}
    for mail in mails:
        copies.setdefault(str(mail["Subject"]), []).append(str(mail["Message-ID"]))
    for code in failed:
        ids = copies.get(f"{FAILURE}: salesforce {code}", [])
        assert ids and len(set(ids)) == 1, (code, ids)
    assert len(mails) - len(copies) <= ROUNDS
    assert all(len(set(ids)) == 1 for ids in copies.values())
    assert Outbox(store).pending() == []
    forget_connection(store)
