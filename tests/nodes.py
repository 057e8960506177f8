"""Host "nodes" for the shared-store tests (tests/test_nodes.py): each node is a real child process
with its own instance folder and its own host name (a UTS namespace, so the holder ids of its
leases and claims name another machine, as on a real second node), loading the plugin through
its entry point and sharing one PostgreSQL database with the others.

A node runs the steps it is given (JSON on its command line) in order and says what it did on
stdout, one line at a time: ``ended <call id>`` when an end hook returned, ``done <step>`` after
each step (its "name", else what it does), ``error <step> <text>`` if a step raised (the node
then exits with 1).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

from helpers import ROOT

NUMBERS = ["03-1234-5678", "06-1111-2222", "090-3333-4444", "+1 415-555-1212"]

NODE = textwrap.dedent("""
    import datetime as dt, json, os, sys, threading, time, traceback
    from bridges.host import load_host
    from core import activity, errors, jobs, registration
    from core.alerts import Alerts
    from core.runtime import runtime_for
    from core.store import open_store
    from plugin.call import Call

    steps = json.loads(sys.argv[1])
    said = threading.Lock()

    def say(*words):
        with said:                                # one whole line at a time
            sys.stdout.write(" ".join(str(w) for w in words) + "\\n")
            sys.stdout.flush()

    def wait_until(step):
        time.sleep(max(0.0, step["at"] - time.time()))

    def calls(step):
        pm = load_host()
        numbers, tag, every, shared = step["numbers"], step["tag"], step["shared_every"], step["shared"]

        def one_thread(thread):
            for i in range(step["count"]):
                call_id = f"{shared}-{thread}-{i}" if i % every == 0 else f"{tag}-{thread}-{i}"
                call = Call(call_id=call_id, remote_number=numbers[(thread + i) % len(numbers)],
                            agent_id="101")
                pm.hook.on_incoming_call(call=call)
                pm.hook.on_call_ended(call=call.end(answered=True, duration=5))
                say("ended", call_id)
                time.sleep(step.get("pause", 0))

        threads = [threading.Thread(target=one_thread, args=(t,)) for t in range(step["threads"])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if step.get("wait_idle", True):
            assert runtime_for().wait_idle(60), "the runtime did not get idle"

    def runtime(step):
        runtime_for()                             # its scheduler and alert sender start with it

    def fail_and_tick(step):
        store = open_store()
        for code in step["codes"]:
            errors.record_failure(store, "salesforce", "node_test", code)
        Alerts(store, smtp_timeout=3.0).tick()

    def background_alerts(step):
        store = open_store()

        def raise_and_send():
            sender = Alerts(store, smtp_timeout=3.0)
            for n in range(10_000):
                code = f"{step['prefix']}_{n}"          # a new kind of failure: its alert is in flight
                errors.record_failure(store, "salesforce", "node_test", code)
                say("failed", code)
                sender.tick()
                time.sleep(0.05)

        threading.Thread(target=raise_and_send, daemon=True).start()

    def wait_file(step):
        while not os.path.exists(step["path"]):
            time.sleep(0.02)

    def take_over(step):
        # this node's clock, later: past every lease the dead node held
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=step["later_seconds"])
        store = open_store()
        Alerts(store, clock=lambda: later, smtp_timeout=3.0).tick()
        report = activity.send(store, clock=lambda: later)
        assert report.stopped is None, report

    def catch_up_fired(step):
        # the scheduler's first catch-up check runs at once; once it has, the next is minutes away
        scheduler, deadline = runtime_for().scheduler, time.time() + step["within"]
        while True:
            found = scheduler.scheduled("catch_up")
            if found is not None and found[0].timestamp() > time.time() + 60:
                return
            assert time.time() < deadline, "the catch-up check did not fire"
            time.sleep(0.02)

    def sync_index(step):
        report = jobs.sync_index(open_store(), full=True)
        say("synced", (report.skipped or report.failed or "ran").replace(" ", "_"))

    def refetch(step):
        try:
            registration.refetch_call(open_store(), step["call_id"])
            say("refetched", "ran")
        except registration.RefetchLocked:
            say("refetched", "locked")

    def sleep(step):
        time.sleep(step["seconds"])

    def open_only(step):
        open_store()

    for step in steps:
        name = step.get("name", step["do"])
        try:
            globals()[step["do"]](step)
        except BaseException as exc:
            say("error", name, repr(exc).replace("\\n", " "))
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
        say("done", name)
    sys.stderr.flush()
    os._exit(0)                                   # the worker threads end with the process
""")


def as_other_machine(name: str) -> list[str]:
    """The command prefix that runs a program with its own host name ``name``."""
    namespace = ["unshare", "--uts"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--uts"]
    return [*namespace, "sh", "-c", 'hostname "$0" && exec "$@"', name]


def node_folder(folder: pathlib.Path, url: str, key_from: pathlib.Path | None) -> pathlib.Path:
    """An instance folder on the database ``url``, holding a copy of ``key_from``'s secret.key."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(folder / "database_url", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(url + "\n")
    if key_from is not None:
        shutil.copyfile(key_from / "secret.key", folder / "secret.key")
        os.chmod(folder / "secret.key", 0o600)
    return folder


class Node:
    """A host process on its own "machine", whose stdout lines are collected as they come."""

    def __init__(self, home: pathlib.Path, name: str, steps: list[dict], **env):
        environment = dict(os.environ, PYTHONPATH=str(ROOT), SFCTI_HOME=str(home), SFCTI_JOBS="off",
                           SFCTI_SEND_TASKS="off")
        environment.pop("SFCTI_DATABASE_URL", None)
        environment.update(env)
        self.name = name
        self.log_path = home.parent / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [*as_other_machine(name), sys.executable, "-c", NODE, json.dumps(steps)],
            cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.lines: list[list[str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.split(maxsplit=2))

    def said(self, word: str) -> list[str]:
        """The values of the lines starting with ``word``."""
        return [parts[1] for parts in list(self.lines) if parts and parts[0] == word and len(parts) > 1]

    def stderr(self) -> str:
        """What the node wrote on stderr so far."""
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_done(self, step: str, timeout: float) -> None:
        """Wait until the node has done ``step``; fails with its stderr when it errs or dies."""
        deadline = time.monotonic() + timeout
        while step not in self.said("done"):
            assert not self.said("error"), f"{self.name}: {self.lines[-1]}\n{self.stderr()}"
            assert self.process.poll() is None or step in self.said("done"), \
                f"{self.name} died ({self.process.returncode}):\n{self.stderr()}"
            assert time.monotonic() < deadline, f"{self.name}: no 'done {step}' in {timeout} s"
            time.sleep(0.05)

    def wait_exit(self, timeout: float) -> int:
        """The node's exit code, once it ended by itself."""
        code = self.process.wait(timeout)
        self.reader.join(5)
        return code

    def kill(self) -> None:
        """kill -9 (if still running), then wait for its last lines."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.reader.join(10)
        self.log.close()
