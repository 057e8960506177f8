"""Several phone-system nodes, one PostgreSQL store (issue 14, "Cross-node correctness").

Each node is a real host process (tests/nodes.py) with its own instance folder and its own host
name, the folders holding the same ``database_url`` and a copy of the same ``secret.key``, all
nodes talking to this module's emulator and a real SMTP server on loopback. What a user would
check is read straight from the PostgreSQL database, the emulator's org and request log, and the
mailbox: every call in the history once, one Task per call, one nightly run, one index sync and
one refetch at a time, one mail per alert, both nodes logged in while the refresh token rotates,
nothing lost nor done twice when a node is killed, and a node with the wrong key refused before
it writes anything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import zoneinfo

import psycopg
import pytest

from core.activity import call_object
from core.salesforce import forget_connection
from core.settings import Settings, save_settings
from core.store import Store
from faultmatrix import FAILURE
from helpers import SmtpServer, build_org, connect, fresh, make_host
from nodes import NUMBERS, Node, node_folder
from plugin.call import Call

THREADS, CALLS, SHARED_EVERY = 4, 200, 10
START_SECONDS = 2.5          # nodes start their work together this long after being spawned


@pytest.fixture
def backend():
    """Every test here runs on PostgreSQL: several nodes share nothing else."""
    return "postgresql"


@pytest.fixture(scope="module")
def emu_server():
    """This module's emulator: the sample org, whose Tasks only this module creates."""
    from emulator import Emulator

    with Emulator(build_org()) as emu:
        yield emu


class Cluster:
    """Instance folders on one database; the nodes started on them are killed at the end."""

    def __init__(self, tmp_path, database):
        self.tmp_path, self.database = tmp_path, database
        self.first = tmp_path / "node-a" / "instance"
        self.url = database(self.first)
        self.store = Store(self.first)
        self.nodes: list[Node] = []

    def folder(self, name: str, key_from=None):
        """Another node's instance folder on the same database (with the first's key copied)."""
        folder = self.tmp_path / name / "instance"
        self.database(folder)
        return node_folder(folder, self.url, self.first if key_from is None else key_from)

    def start(self, name: str, steps: list[dict], home=None, **env) -> Node:
        node = Node(home or self.folder(name), name, steps, **env)
        self.nodes.append(node)
        return node

    def sql(self, query: str, params=()) -> list[tuple]:
        """Rows read straight from the shared PostgreSQL database."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


@pytest.fixture
def cluster(tmp_path, database, emu, monkeypatch):
    """The first node's folder (its Store in this process, connected to ``emu``)."""
    for name in ("SFCTI_DATABASE_URL", "SFCTI_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SFCTI_JOBS", "off")
    monkeypatch.setenv("SFCTI_SEND_TASKS", "off")
    cluster = Cluster(tmp_path, database)
    try:
        yield cluster
    finally:
        from core.runtime import shutdown_all

        cluster.stop()
        shutdown_all()
        forget_connection(cluster.store)
        cluster.store.dispose()


def together(seconds: float = START_SECONDS) -> dict:
    """The step that makes the nodes start what follows at one moment."""
    return {"do": "wait_until", "at": time.time() + seconds}


def calls_step(tag: str, shared: str, count: int = CALLS, **more) -> dict:
    """Calls ``tag``-THREAD-I from THREADS threads; every SHARED_EVERY-th is ``shared``-THREAD-I,
    the same call every node given ``shared`` sees (two proxies, one call)."""
    return {"do": "calls", "tag": tag, "threads": THREADS, "count": count, "numbers": NUMBERS,
            "shared_every": SHARED_EVERY, "shared": shared, **more}


def expected_call_ids(tags: list[str], shared: str, count: int = CALLS) -> set[str]:
    """The call ids the nodes ``tags`` place (those sent to every node once)."""
    ids = set()
    for tag in tags:
        for thread in range(THREADS):
            for i in range(count):
                ids.add(f"{shared}-{thread}-{i}" if i % SHARED_EVERY == 0 else f"{tag}-{thread}-{i}")
    return ids


def tasks_by_call(emu) -> dict[str, int]:
    """How many Tasks the org holds for each CallObject."""
    counts: dict[str, int] = {}
    for task in emu.org.records["Task"]:
        counts[task.get("CallObject")] = counts.get(task.get("CallObject"), 0) + 1
    return counts


# ---------------------------------------------------------------------------------------------
# 1. every call once, also the calls both proxies saw
# ---------------------------------------------------------------------------------------------

def test_two_nodes_record_every_call_once_and_log_one_task_each(cluster, emu):
    connect(cluster.store, emu, connect_timeout=2.0, read_timeout=3.0, activity_unmatched="log")
    start = together()
    a = cluster.start("node-a", [start, calls_step("a", "both")], home=cluster.first, SFCTI_SEND_TASKS="on")
    b = cluster.start("node-b", [start, calls_step("b", "both")], SFCTI_SEND_TASKS="on")
    a.wait_done("calls", 50)
    b.wait_done("calls", 50)

    expected = expected_call_ids(["a", "b"], "both")
    assert len(a.said("ended")) == len(b.said("ended")) == THREADS * CALLS
    assert set(a.said("ended")) | set(b.said("ended")) == expected
    per_call = dict(cluster.sql("SELECT call_id, count(*) FROM calls GROUP BY call_id"))
    assert per_call == {call_id: 1 for call_id in expected}
    outbox = dict(cluster.sql("SELECT call_id, count(*) FROM task_outbox GROUP BY call_id"))
    assert outbox == {call_id: 1 for call_id in expected}
    # the nodes' own senders took the Tasks (a call left waiting goes out with the next send)
    from core.activity import send

    assert send(cluster.store, force=True).stopped is None
    assert cluster.sql("SELECT state, count(*) FROM task_outbox GROUP BY state") == \
        [("logged", len(expected))]
    tasks = tasks_by_call(emu)
    assert {c: tasks.get(call_object(c)) for c in expected} == {c: 1 for c in expected}



# ---------------------------------------------------------------------------------------------
# 2. both schedulers fire the nightly run together: one run
# ---------------------------------------------------------------------------------------------

NIGHTLY_NUMBERS = 30


def test_both_schedulers_fire_the_nightly_run_and_it_runs_once(cluster, emu, monkeypatch):
    tokyo_now = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Tokyo"))
    connect(cluster.store, emu, contact_fetch="nightly", nightly_time=tokyo_now.strftime("%H:%M"),
            time_zone="Asia/Tokyo", phone_index=False, activity_logging=False)
    numbers = [fresh()[0] for _ in range(NIGHTLY_NUMBERS)]
    monkeypatch.setenv("SFCTI_HOME", str(cluster.first))
    host = make_host()
    for number in numbers:             # calls of today, ended unscreened: queued for tonight
        host.hook.on_call_ended(call=Call(remote_number=number).end(duration=10))
    emu.reset_counters()

    start = together()
    steps = [start, {"do": "runtime"}, {"do": "catch_up_fired", "within": 20},
             {"do": "sleep", "seconds": 1.5}]
    a = cluster.start("node-a", steps, home=cluster.first, SFCTI_JOBS="on")
    b = cluster.start("node-b", steps, SFCTI_JOBS="on")
    a.wait_done("sleep", 40)
    b.wait_done("sleep", 40)

    assert cluster.sql("SELECT job, day, finished_at IS NOT NULL, holder FROM job_runs "
                       "WHERE job = 'nightly'") == [("nightly", tokyo_now.date().isoformat(), True, None)]
    assert cluster.sql("SELECT count(*) FROM registration_queue") == [(0,)]
    # each number asked about in one request: a second run would have asked again
    requests = [json.dumps(entry, default=str) for entry in emu.request_log]
    asked = {n: sum(n.replace("-", "") in r for r in requests) for n in numbers}
    assert asked == {n: 1 for n in numbers}


# ---------------------------------------------------------------------------------------------
# 3. the same incidents on both nodes: one mail each
# ---------------------------------------------------------------------------------------------

class SlowSmtpServer(SmtpServer):
    """The loopback SMTP server, taking ``delay`` seconds to accept each recipient: senders on
    several nodes are busy with a mail at the same time."""

    delay = 0.1

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        """aiosmtpd's hook: accept the recipient, slowly."""
        await asyncio.sleep(self.delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def slow_smtp():
    server = SlowSmtpServer().start()
    yield server
    server.stop()


def test_incidents_raised_on_both_nodes_are_mailed_once(cluster, emu, slow_smtp):
    connect(cluster.store, emu, **slow_smtp.settings())
    codes = [f"NODES_BOTH_{n}" for n in range(5)]
    steps = [together(), {"do": "fail_and_tick", "codes": codes}]
    a = cluster.start("node-a", steps, home=cluster.first)
    b = cluster.start("node-b", steps)
    a.wait_done("fail_and_tick", 30)
    b.wait_done("fail_and_tick", 30)

    time.sleep(0.5)                       # a second copy would be on its way by now
    subjects = sorted(str(m["Subject"]) for m in slow_smtp.messages)
    assert subjects == sorted(f"{FAILURE}: salesforce {code}" for code in codes)
    assert cluster.sql("SELECT count(*), count(sent_at) FROM outbox") == [(len(codes), len(codes))]
    assert cluster.sql("SELECT code, count FROM error_log ORDER BY code") == [(c, 2) for c in codes]


# ---------------------------------------------------------------------------------------------
# 5. a node with another key: refused at start, writes nothing
# ---------------------------------------------------------------------------------------------

SNAPSHOT_TABLES = """SELECT table_name FROM information_schema.tables
                     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"""


def snapshot(cluster) -> dict:
    """Every table's row count and a digest of its rows, and every sequence's last value."""
    tables = {}
    for (name,) in cluster.sql(SNAPSHOT_TABLES):
        quoted = '"' + name.replace('"', '""') + '"'
        tables[name] = cluster.sql(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' "
                                   f"ORDER BY t::text), '')) FROM {quoted} t")[0]
    tables["sequences"] = cluster.sql("SELECT sequencename, last_value FROM pg_sequences "
                                      "ORDER BY sequencename")
    return tables


def test_a_node_with_another_secret_key_is_refused_and_writes_nothing(cluster, emu, monkeypatch):
    from cryptography.fernet import Fernet

    connect(cluster.store, emu)            # the password is stored encrypted with the first key
    monkeypatch.setenv("SFCTI_HOME", str(cluster.first))
    host = make_host()
    for number in NUMBERS:
        host.hook.on_call_ended(call=Call(remote_number=number).end(duration=10))
    before = snapshot(cluster)
    assert before["calls"][0] == len(NUMBERS) and before["settings"][0] > 0

    wrong = cluster.tmp_path / "wrong-key"
    wrong.mkdir()
    (wrong / "secret.key").write_bytes(Fernet.generate_key())
    b = cluster.start("node-b", [calls_step("wrong", "wrong-both", count=3, wait_idle=False),
                                 {"do": "runtime"}],
                      home=cluster.folder("node-b", key_from=wrong))
    assert b.wait_exit(30) == 1
    refusal = [line for line in b.lines if line[:2] == ["error", "runtime"]]
    assert refusal and "WrongSecretKey" in refusal[0][2], b.lines
    assert "is not the key the secrets in" in refusal[0][2]
    assert "so this node writes nothing" in refusal[0][2]
    assert len(b.said("ended")) == THREADS * 3        # the host's calls went on, unrecorded
    assert "is not the key the secrets in" in b.stderr()   # what the host's log says for them
    assert snapshot(cluster) == before


# ---------------------------------------------------------------------------------------------
# 6. OAuth refresh-token rotation: nodes logging in together both end logged in
# ---------------------------------------------------------------------------------------------

def connect_oauth(store, emu) -> str:
    """Connect ``store`` through the web-server flow; returns the refresh token stored."""
    from core import oauth
    from emulator.oauth import DEMO_CALLBACK
    from helpers import authorize, trusting_session

    values = {"auth_method": "oauth_web", "oauth_client_id": emu.oauth_client_id,
              "oauth_client_secret": emu.oauth_client_secret, "login_url": emu.login_url,
              "ca_bundle": emu.ca_path}
    pkce = oauth.new_pkce()
    answer = authorize(emu, trusting_session(emu), verifier=pkce.verifier, state="nodes")
    token = oauth.exchange_code(Settings(**values),
                                oauth.plain_session(emu.ca_path), answer["code"], DEMO_CALLBACK,
                                pkce.verifier)
    save_settings(store, {**values, "oauth_refresh_token": token.refresh_token})
    return token.refresh_token


def test_nodes_logging_in_together_with_a_rotating_refresh_token_both_stay_logged_in(cluster, emu):
    first_token = connect_oauth(cluster.store, emu)
    emu.oauth.rotate_refresh_tokens = True     # the connected app: each refresh revokes the one used
    emu.reset_counters()
    relogin = cluster.tmp_path / "access-tokens-expired"
    start = together()

    def steps(tag):
        return [start, calls_step(tag, f"{tag}-shared", count=3, numbers=NUMBERS[:2], name="first"),
                {"do": "wait_file", "path": str(relogin)},
                calls_step(f"{tag}2", f"{tag}2-shared", count=3, numbers=NUMBERS[2:], name="second")]

    a = cluster.start("node-a", steps("oa"), home=cluster.first)
    b = cluster.start("node-b", steps("ob"))
    a.wait_done("first", 30)
    b.wait_done("first", 30)
    emu.oauth.expire_access_tokens()           # mid-day: both nodes must refresh again, together
    relogin.touch()
    a.wait_done("second", 30)
    b.wait_done("second", 30)

    logins = emu.calls("oauth_token")
    assert [entry["status"] for entry in logins] == [200] * 4      # two logins a node, none refused
    assert cluster.sql("SELECT integration, code FROM error_log") == []
    statuses = dict(cluster.sql("SELECT status, count(*) FROM calls GROUP BY status"))
    assert statuses == {"matched": 2 * 2 * THREADS * 3}
    stored = cluster.sql("SELECT value FROM settings WHERE name = 'oauth_refresh_token'")[0][0]
    current = cluster.store.decrypt(stored)
    assert current != first_token and current in emu.oauth.refresh_tokens()
    assert first_token not in emu.oauth.refresh_tokens()


# ---------------------------------------------------------------------------------------------
# 4. kill -9 one node mid-run: the other finishes, and takes over what the dead one held
# ---------------------------------------------------------------------------------------------

def held_by(cluster, node: str) -> tuple[list[str], list[int]]:
    """(calls whose Task ``node`` is sending, mails ``node`` has claimed and not sent)."""
    tasks = [r[0] for r in cluster.sql("SELECT call_id FROM task_outbox WHERE state = 'sending' "
                                       "AND claimed_by LIKE %s ORDER BY call_id", [f"{node}:%"])]
    soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=60)).isoformat()
    mails = [r[0] for r in cluster.sql("SELECT id FROM outbox WHERE sent_at IS NULL "
                                       "AND next_attempt_at > %s ORDER BY id", [soon])]
    return tasks, mails


def test_a_node_killed_mid_run_leaves_nothing_lost_nor_done_twice(cluster, emu, slow_smtp):
    connect(cluster.store, emu, connect_timeout=2.0, read_timeout=3.0, activity_unmatched="log",
            **slow_smtp.settings())
    # Task requests and mails take long: the dead node had some in flight when the kill came
    emu.faults.kinds, emu.faults.latency = {"collections"}, 2.0
    slow_smtp.delay = 1.2
    taken_over = cluster.tmp_path / "take-over"
    start = together()
    a = cluster.start("node-a", [start, {"do": "background_alerts", "prefix": "KILLED_A"},
                                 calls_step("ka", "kboth", count=400, pause=0.01)],
                      home=cluster.first, SFCTI_SEND_TASKS="on")
    b = cluster.start("node-b", [start, calls_step("kb", "kboth", count=100),
                                 {"do": "wait_file", "path": str(taken_over)},
                                 {"do": "take_over", "later_seconds": 600}],
                      SFCTI_SEND_TASKS="on")
    deadline = time.monotonic() + 20
    while not (len(a.said("ended")) >= 100 and all(held_by(cluster, "node-a"))):
        assert time.monotonic() < deadline and a.process.poll() is None, (a.lines[-3:], held_by(cluster, "node-a"))
        time.sleep(0.01)
    a.kill()
    killed_at = time.monotonic()
    slow_smtp.delay = 0.0
    held_tasks, held_mails = held_by(cluster, "node-a")
    assert held_tasks and held_mails

    b.wait_done("calls", 40)
    # another machine's claims hold until their lease ends, even with their node gone
    assert held_by(cluster, "node-a") == (held_tasks, held_mails)
    emu.faults.clear()
    time.sleep(max(0.0, killed_at + 2.5 - time.monotonic()))   # its last request is done
    taken_over.touch()
    b.wait_done("take_over", 30)

    ended_a, ended_b = set(a.said("ended")), set(b.said("ended"))
    assert ended_b == expected_call_ids(["kb"], "kboth", 100)
    per_call = dict(cluster.sql("SELECT call_id, count(*) FROM calls GROUP BY call_id"))
    assert set(per_call.values()) == {1}
    assert ended_a | ended_b <= set(per_call)                      # every returned end is there
    assert set(per_call) <= expected_call_ids(["ka"], "kboth", 400) | ended_b
    assert cluster.sql("SELECT state, count(*) FROM task_outbox GROUP BY state") == \
        [("logged", len(per_call))]
    tasks = tasks_by_call(emu)
    assert {c: tasks.get(call_object(c)) for c in per_call} == {c: 1 for c in per_call}

    # Every alert arrived, once. A second copy can only come from the kill landing after the
    # SMTP server took a mail and before the outbox could note it: then with one Message-ID.
    failed = a.said("failed")
    mails = slow_smtp.wait_for(len(failed))
    copies: dict[str, list[str]] = {}
    for mail in mails:
        copies.setdefault(str(mail["Subject"]), []).append(str(mail["Message-ID"]))
    assert {f"{FAILURE}: salesforce {code}" for code in failed} <= set(copies)
    # (a failure the kill came between recording and saying is mailed too)
    assert all(subject.startswith(f"{FAILURE}: salesforce KILLED_A_") for subject in copies)
    assert len(mails) - len(copies) <= 1 and all(len(set(ids)) == 1 for ids in copies.values())
    assert cluster.sql("SELECT count(*) - count(sent_at) FROM outbox") == [(0,)]


# ---------------------------------------------------------------------------------------------
# 7. the index sync's lease and the refetch lock hold across nodes
# ---------------------------------------------------------------------------------------------

def test_one_node_syncs_the_index_and_one_refetches_a_number_when_both_try_at_once(cluster, emu,
                                                                                   monkeypatch):
    connect(cluster.store, emu, connect_timeout=2.0, read_timeout=3.0)
    monkeypatch.setenv("SFCTI_HOME", str(cluster.first))
    make_host().hook.on_call_ended(call=Call(call_id="refetched", remote_number=NUMBERS[0]).end())
    emu.faults.latency = 0.2            # a sync lasts long enough for the other node to meet it
    refetch_now = cluster.tmp_path / "refetch-now"

    steps = [together(), {"do": "sync_index"}, {"do": "wait_file", "path": str(refetch_now)},
             {"do": "refetch", "call_id": "refetched"}]
    a = cluster.start("node-a", steps, home=cluster.first)
    b = cluster.start("node-b", steps)
    a.wait_done("sync_index", 30)
    b.wait_done("sync_index", 30)
    assert sorted(a.said("synced") + b.said("synced")) == ["lease_held", "ran"], \
        cluster.sql("SELECT operation, code, detail FROM error_log")
    assert cluster.sql("SELECT count(*) > 0 FROM index_phones") == [(True,)]
    assert cluster.sql("SELECT holder FROM job_runs WHERE job = 'index'") == [(None,)]

    emu.faults.clear()
    refetch_now.touch()
    a.wait_done("refetch", 30)
    b.wait_done("refetch", 30)
    assert sorted(a.said("refetched") + b.said("refetched")) == ["locked", "ran"]
