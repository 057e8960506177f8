"""core/store.py on real SQLite files and a real PostgreSQL: migrations, secrets at rest,
transactions, threads and processes. The tests about SQLite itself (WAL, PRAGMAs, the file,
sqlite-utils' table API) run on SQLite only; what both engines must do is read back through the
Store API or through a connection of the test's own (:func:`reader`)."""

import contextlib
import datetime as dt
import multiprocessing
import os
import sqlite3
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core import store as store_module
from core.store import (
    InvalidSecretKey, SecretNotDecryptable, Store, StoreError, now_iso, utc_day,
)

ALL_TABLES = {
    "settings": {"name", "value", "encrypted"},
    "contacts": {"e164", "object", "record_id", "company", "person", "record_url",
                 "last_modified", "fetched_at"},
    "no_match": {"e164", "until"},
    "api_usage": {"day", "own_calls", "org_used", "org_max", "updated_at"},
    "error_log": {"id", "first_at", "last_at", "integration", "operation", "code", "message",
                  "detail", "call_id", "count", "open"},
    "calls": {"call_id", "direction", "remote_number", "e164", "display_number", "local_number",
              "agent_id", "started_at", "ended_at", "answered", "duration_seconds", "status",
              "label", "company", "person", "object", "record_id", "record_url", "recorded_at",
              "registered_at"},
    "registration_queue": {"e164", "day", "queued_at", "attempts", "last_error"},
    "job_runs": {"job", "day", "started_at", "finished_at", "holder", "lease_until"},
    "refetch_locks": {"e164", "at"},
    "outbox": {"id", "created_at", "recipients", "subject", "body", "attempts",
               "next_attempt_at", "sent_at", "last_error"},
    "alert_state": {"kind", "started_at", "last_mail_at", "recovered_at"},
    "admin_users": {"username", "password_hash", "created_at"},
    "login_attempts": {"key", "failures", "last_at"},
}
PRIMARY_KEYS = {
    "settings": "name", "contacts": "e164", "no_match": "e164", "api_usage": "day",
    "error_log": "id", "calls": "call_id", "registration_queue": "e164", "job_runs": "job",
    "refetch_locks": "e164", "outbox": "id", "alert_state": "kind", "admin_users": "username",
    "login_attempts": "key",
}


SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def raw(path):
    """A plain sqlite3 connection, not the store's."""
    return sqlite3.connect(str(path / "sfcti.db"))


def reader(store):
    """A connection of the test's own to the store's database (sqlite3 to its file, psycopg to its
    URL), in autocommit: what it reads was committed. Close it with ``with``."""
    if store.backend == "sqlite":
        return contextlib.closing(sqlite3.connect(str(store.db_path), isolation_level=None))
    import psycopg

    return psycopg.connect(store.url, autocommit=True)


def read(store, sql):
    """The rows of ``sql`` (no parameters: the two drivers spell them differently) by :func:`reader`."""
    with reader(store) as conn:
        return [tuple(row) for row in conn.execute(sql).fetchall()]


def primary_key(store, table):
    """The primary-key columns of ``table``, as the database declares them."""
    if store.backend == "sqlite":
        return store.db[table].pks
    return [r[0] for r in read(store, f"""
        SELECT a.attname FROM pg_index i
        CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = '{table}'::regclass AND i.indisprimary ORDER BY k.position""")]


def index_columns(store, table):
    """The column lists of the indexes of ``table`` other than its primary key."""
    if store.backend == "sqlite":
        return [index.columns for index in store.db[table].indexes]
    return [list(r[0]) for r in read(store, f"""
        SELECT array_agg(a.attname ORDER BY k.position) FROM pg_index i
        CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = '{table}'::regclass AND NOT i.indisprimary GROUP BY i.indexrelid""")]


# -- opening and migrations ------------------------------------------------------------------

def test_creates_missing_folder(tmp_path):
    home = tmp_path / "a" / "b" / "instance"
    Store(home)
    assert (home / "sfcti.db").is_file()


def test_a_new_instance_is_readable_by_its_owner_only(tmp_path):
    """Call history and the admin's password hash: folder 0700; database, WAL and shm 0600."""
    home = tmp_path / "instance"
    store = Store(home)
    store.conn.execute("SELECT count(*) FROM calls").fetchone()   # WAL and shm exist now
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    files = {path.name: stat.S_IMODE(path.stat().st_mode) for path in home.iterdir()
             if path.name.startswith("sfcti.db")}
    assert set(files) == {"sfcti.db", "sfcti.db-wal", "sfcti.db-shm"}
    assert set(files.values()) == {0o600}, files


@pytest.mark.parametrize("table", sorted(ALL_TABLES))
def test_every_table_has_its_columns(store, table):
    assert ALL_TABLES[table] <= set(store.column_names(table))
    assert primary_key(store, table) == [PRIMARY_KEYS[table]]


@pytest.mark.parametrize("table,columns", [
    ("error_log", ["last_at"]), ("error_log", ["code"]),
    ("calls", ["started_at"]), ("calls", ["e164"]),
])
def test_indexes(store, table, columns):
    assert columns in index_columns(store, table)


def test_version_recorded(store):
    assert store.schema_version == len(store_module.MIGRATIONS)
    assert store.pending_migrations() == []
    if store.backend == "sqlite":
        versions = read(store, "PRAGMA user_version")
        assert versions == [(len(store_module.MIGRATIONS),)]
    else:
        versions = read(store, "SELECT version FROM schema_version ORDER BY version")
        assert versions == [(v,) for v in range(1, len(store_module.MIGRATIONS) + 1)]


@SQLITE_ONLY
def test_wal_mode(store):
    with raw(store.home) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@SQLITE_ONLY
def test_busy_timeout_and_autocommit(store):
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    assert store.conn.isolation_level is None


@pytest.mark.parametrize("reopen", [1, 2, 5])
def test_migrations_idempotent(tmp_path, reopen, database):
    database(tmp_path)
    Store(tmp_path).upsert_contact("+81312345678", "Contact", "003A")
    for _ in range(reopen):
        s = Store(tmp_path)
        s._migrate()
    assert s.schema_version == len(store_module.MIGRATIONS)
    assert s.get_contact("+81312345678")["record_id"] == "003A"
    assert set(ALL_TABLES) <= set(s.table_names())


def test_new_migration_applied_once(tmp_path, monkeypatch, database):
    database(tmp_path)
    Store(tmp_path)
    applied = []

    released = len(store_module.MIGRATIONS)

    def migration_next(schema):
        applied.append(1)
        schema.create_table("extra", {"id": int}, "id")

    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS + [migration_next])
    for _ in range(3):
        s = Store(tmp_path)
    assert applied == [1]
    assert s.schema_version == released + 1
    assert "extra" in s.table_names()


def test_failed_migration_rolls_back(tmp_path, monkeypatch, database):
    database(tmp_path)
    Store(tmp_path)

    def broken(schema):
        schema.create_table("half", {"id": int}, "id")
        raise RuntimeError("boom")

    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS + [broken])
    with pytest.raises(RuntimeError):
        Store(tmp_path)
    monkeypatch.undo()   # the released migrations only: the store opens again
    store = Store(tmp_path)
    assert store.schema_version == len(store_module.MIGRATIONS)
    assert "half" not in store.table_names()


def test_not_a_database(tmp_path):
    (tmp_path / "sfcti.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        Store(tmp_path)


# -- two processes opening a fresh folder at once ----------------------------------------------

def _open_in_child(home, barrier, results):
    barrier.wait()
    s = Store(home)
    token = s.encrypt("hello")
    results.put((s.key_path.read_bytes(), s.schema_version, token))


@pytest.mark.parametrize("processes", [2, 6])
def test_processes_racing_on_a_fresh_folder(tmp_path, processes):
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(3):
        home = tmp_path / f"race{attempt}"
        barrier, results = ctx.Barrier(processes), ctx.Queue()
        children = [ctx.Process(target=_open_in_child, args=(str(home), barrier, results))
                    for _ in range(processes)]
        for child in children:
            child.start()
        got = [results.get(timeout=60) for _ in children]
        for child in children:
            child.join(60)
            assert child.exitcode == 0
        keys = {key for key, _, _ in got}
        assert len(keys) == 1
        assert {version for _, version, _ in got} == {len(store_module.MIGRATIONS)}
        s = Store(home)
        assert s.key_path.read_bytes() in keys
        assert [s.decrypt(token) for _, _, token in got] == ["hello"] * processes
        with raw(home) as conn:
            assert conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'contacts'"
            ).fetchone()[0] == 1
        assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]


def _write_in_forked_child(s):
    s.upsert_contact("+81300000000", "Lead", "00Q1")


def test_forked_child_opens_its_own_connection(store):
    store.get_contact("+81300000000")  # the parent's connection exists before the fork
    child = multiprocessing.get_context("fork").Process(target=_write_in_forked_child, args=(store,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert store.get_contact("+81300000000")["object"] == "Lead"


# -- secrets ---------------------------------------------------------------------------------

def test_key_file_mode_0600(store):
    store.encrypt("x")
    assert stat.S_IMODE(os.stat(store.key_path).st_mode) == 0o600


@pytest.mark.parametrize("plaintext", ["", "pw", "p@ss'word\"<&>", "パスワード", "x" * 5000])
def test_encrypt_round_trip(store, plaintext):
    token = store.encrypt(plaintext)
    assert token != plaintext or plaintext == ""
    assert store.decrypt(token) == plaintext


def test_key_survives_reopen(tmp_path):
    token = Store(tmp_path).encrypt("secret")
    assert Store(tmp_path).decrypt(token) == "secret"


@pytest.mark.parametrize("token", ["", "garbage", "gAAAAAB" + "A" * 80])
def test_decrypt_garbage(store, token):
    with pytest.raises(SecretNotDecryptable):
        store.decrypt(token)


def test_decrypt_with_another_key(tmp_path):
    token = Store(tmp_path / "one").encrypt("secret")
    with pytest.raises(SecretNotDecryptable):
        Store(tmp_path / "two").decrypt(token)


def test_invalid_key_file(tmp_path):
    (tmp_path / "secret.key").write_bytes(b"not a fernet key")
    with pytest.raises(InvalidSecretKey):
        Store(tmp_path).encrypt("x")


def test_secret_encrypted_at_rest(store):
    from core.settings import save_settings

    plaintext = "Very-Secret-Passw0rd-4f1c9e"
    save_settings(store, {"username": "u@example.com", "password": plaintext,
                          "security_token": "TOKEN9Z8Y7X6W5"})
    if store.backend == "sqlite":
        with raw(store.home) as conn:
            dump = "\n".join(conn.iterdump())
    else:   # every row of every table, as text
        dump = "\n".join(repr(read(store, f'SELECT * FROM "{table}"'))
                         for table in store.table_names())
    assert plaintext not in dump and "TOKEN9Z8Y7X6W5" not in dump
    assert "u@example.com" in dump  # the non-secret is there: the dump is real
    for path in store.home.iterdir():
        data = path.read_bytes()
        assert plaintext.encode() not in data, path.name
        assert b"TOKEN9Z8Y7X6W5" not in data, path.name


# -- transactions ----------------------------------------------------------------------------

def test_transaction_commits(store):
    with store.transaction() as db:
        db.execute("INSERT INTO no_match (e164, until) VALUES ('+1', '9999')")
    assert read(store, "SELECT e164, until FROM no_match") == [("+1", "9999")]


def test_transaction_rolls_back(store):
    with pytest.raises(ZeroDivisionError):
        with store.transaction() as db:
            db.execute("INSERT INTO no_match (e164, until) VALUES ('+1', '9999')")
            1 / 0
    assert store.conn.execute("SELECT count(*) FROM no_match").fetchone()[0] == 0
    assert read(store, "SELECT count(*) FROM no_match") == [(0,)]
    # no transaction left open: a statement after the block is committed at once
    store.conn.execute("INSERT INTO no_match (e164, until) VALUES ('+2', '9999')")
    assert read(store, "SELECT e164 FROM no_match") == [("+2",)]


def test_nested_transaction_rolls_back_inner_only(store):
    with store.transaction() as db:
        db.execute("INSERT INTO no_match (e164, until) VALUES ('+1', '9999')")
        with pytest.raises(ValueError):
            with store.transaction() as inner:
                inner.execute("INSERT INTO no_match (e164, until) VALUES ('+2', '9999')")
                raise ValueError
    assert [r[0] for r in store.conn.execute("SELECT e164 FROM no_match")] == ["+1"]


def test_transaction_takes_the_write_lock_at_begin(store):
    other = Store(store.home)
    order = []

    def writer():
        with other.transaction():
            order.append("other")

    with store.transaction():
        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join(10)
    assert order == ["first", "other"]


# -- contacts --------------------------------------------------------------------------------

CONTACT = dict(object="Contact", record_id="003000000000001AAA", company="株式会社サンプル",
               person="山田 太郎", record_url="https://x.my.salesforce.com/lightning/r/Contact/003/view",
               last_modified="2024-05-20T20:49:32.000+0000")


def test_upsert_and_get_contact(store):
    row = store.upsert_contact("+81312345678", **CONTACT)
    got = store.get_contact("+81312345678")
    assert got == row
    assert got["fetched_at"] <= now_iso()


def test_upsert_replaces(store):
    store.upsert_contact("+81312345678", **CONTACT)
    store.upsert_contact("+81312345678", **dict(CONTACT, company="New", person=None))
    got = store.get_contact("+81312345678")
    assert (got["company"], got["person"]) == ("New", None)
    assert store.count_contacts() == 1


def test_upsert_forgets_no_match(store):
    store.remember_no_match("+81312345678", 3600)
    store.upsert_contact("+81312345678", **CONTACT)
    assert not store.is_remembered_no_match("+81312345678")


def test_a_nul_in_a_name_is_stored_and_shows_the_same_on_both(store):
    """PostgreSQL's text cannot hold NUL: a name from Salesforce holding one is stored all the
    same (as U+FFFD there), and shows as the admin and the CLI show it on SQLite."""
    from core.display import printable

    store.upsert_contact("+81312345678", **dict(CONTACT, company="株式会社\x00サンプル",
                                                 person="山田\x00太郎"))
    got = store.get_contact("+81312345678")
    assert printable(got["company"]) == "株式会社\ufffdサンプル"
    assert printable(got["person"]) == "山田\ufffd太郎"
    assert store.count_contacts("株式会社") == 1


@pytest.mark.parametrize("e164", ["+81312345678", "", "'; DROP TABLE contacts; --", "+1" * 500,
                                  "+8131234\x005678"])
def test_get_missing_contact(store, e164):
    assert store.get_contact(e164) is None


def test_delete_contact(store):
    store.upsert_contact("+81312345678", **CONTACT)
    assert store.delete_contact("+81312345678") is True
    assert store.delete_contact("+81312345678") is False
    assert store.get_contact("+81312345678") is None


@pytest.fixture
def many_contacts(store):
    for i in range(30):
        store.upsert_contact(f"+8131234{i:04d}", "Contact", f"003{i}", company=f"Company {i % 3}",
                             person=f"Person_{i}%", fetched_at=f"2024-01-01T00:00:{i:02d}.000000+00:00")
    store.upsert_contact("+15555550100", "Lead", "00Q1", company="100% Real", person="A_B")
    return store


@pytest.mark.parametrize("limit,offset,expected", [(10, 0, 10), (10, 25, 6), (50, 0, 31), (5, 40, 0)])
def test_list_contacts_pages(many_contacts, limit, offset, expected):
    assert len(many_contacts.list_contacts(limit, offset)) == expected


def test_list_contacts_newest_first(many_contacts):
    rows = many_contacts.list_contacts(3)
    assert rows[0]["e164"] == "+15555550100"
    assert rows[1]["fetched_at"] > rows[2]["fetched_at"]


@pytest.mark.parametrize("search,count", [
    ("Company 1", 10), ("+8131234", 30), ("Person_7", 1), ("100%", 1), ("%", 31),
    ("_", 31), ("A_B", 1), ("AxB", 0), ("nothing", 0), ("' OR 1=1 --", 0), (None, 31), ("", 31),
])
def test_list_contacts_search(many_contacts, search, count):
    assert many_contacts.count_contacts(search) == count
    assert len(many_contacts.list_contacts(100, 0, search)) == count


def test_get_contact_is_fast(store):
    store.upsert_contact("+81312345678", **CONTACT)
    store.get_contact("+81312345678")
    timings = []
    for _ in range(2000):
        start = time.perf_counter()
        store.get_contact("+81312345678")
        store.is_remembered_no_match("+81312345679")
        timings.append(time.perf_counter() - start)
    timings.sort()
    assert timings[len(timings) // 2] < 0.0005
    assert timings[int(len(timings) * 0.99)] < 0.005


# -- no-match cache --------------------------------------------------------------------------

def test_no_match_remembered(store):
    store.remember_no_match("+81312345678", 3600)
    assert store.is_remembered_no_match("+81312345678")
    assert not store.is_remembered_no_match("+81312345679")


def test_no_match_expires(store):
    store.remember_no_match("+81312345678", 0.05)
    time.sleep(0.1)
    assert not store.is_remembered_no_match("+81312345678")
    assert store.forget_no_match() == 1


@pytest.mark.parametrize("ttl", [0, -1])
def test_no_match_zero_ttl_remembers_nothing(store, ttl):
    store.remember_no_match("+81312345678", ttl)
    assert not store.is_remembered_no_match("+81312345678")


def test_forget_no_match(store):
    store.remember_no_match("+81312345678", 3600)
    assert store.forget_no_match("+81312345678") == 1
    assert not store.is_remembered_no_match("+81312345678")


# -- API usage -------------------------------------------------------------------------------

def test_api_usage_empty(store):
    assert store.api_usage() == {"day": utc_day(), "own_calls": 0, "org_used": None,
                                 "org_max": None, "updated_at": None, "by_kind": {}}


def test_count_api_call(store):
    store.count_api_call()
    store.count_api_call("composite", 3)
    store.count_api_call("login")
    usage = store.api_usage()
    assert usage["own_calls"] == 4
    assert usage["by_kind"] == {"rest": 1, "composite": 3, "login": 1}


def test_record_org_usage(store):
    store.count_api_call()
    store.record_org_usage(10018, 100000)
    store.record_org_usage(10020, 100000)
    usage = store.api_usage(dt.datetime.now(dt.timezone.utc).date())
    assert (usage["own_calls"], usage["org_used"], usage["org_max"]) == (1, 10020, 100000)


def test_api_usage_other_day(store):
    store.count_api_call()
    assert store.api_usage("2000-01-01")["own_calls"] == 0


# -- threads ---------------------------------------------------------------------------------

def failures_in_threads(work, count=8):
    """The exceptions of ``work(t)`` run at once in ``count`` threads (t = 0 .. count - 1)."""
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(work, t) for t in range(count)]
    return [future.exception() for future in futures if future.exception()]


def test_threads_lose_no_write(store):
    def work(t):
        for i in range(200):
            store.upsert_contact(f"+8190{t:02d}{i:06d}", "Contact", f"003{t}-{i}")
            store.count_api_call()

    assert failures_in_threads(work) == []
    assert store.count_contacts() == 1600
    assert store.api_usage()["own_calls"] == 1600


@SQLITE_ONLY
def test_each_thread_has_its_own_connection(store):
    """SQLite: one connection per thread (PostgreSQL shares a pool between them)."""
    seen = []
    thread = threading.Thread(target=lambda: seen.append(store.db))
    thread.start()
    thread.join()
    assert seen[0] is not store.db
    assert store.db is store.db


@SQLITE_ONLY
@pytest.mark.parametrize("method", ["insert", "upsert"])
def test_sqlite_utils_writes_from_threads(store, method):
    """sqlite-utils' own write methods (deferred BEGIN upstream) must not fail under contention."""
    def work(t):
        table = store.db["calls"]
        for i in range(200):
            row = {"call_id": f"{t}-{i}", "direction": "inbound", "started_at": now_iso()}
            getattr(table, method)(row, pk="call_id")
            store.db["refetch_locks"].upsert({"e164": "+1", "at": now_iso()}, pk="e164")

    assert failures_in_threads(work) == []
    assert store.db["calls"].count == 1600


def test_open_store_is_shared(tmp_path, monkeypatch):
    from core.store import open_store

    assert open_store(tmp_path / "x") is open_store(str(tmp_path / "x"))
    monkeypatch.setenv("SFCTI_HOME", str(tmp_path / "env"))
    assert open_store().home == tmp_path / "env"


def test_read_then_write_in_atomic_under_contention(store):
    """A read-then-write block in ``db.atomic()`` waits for the lock instead of failing."""
    def work(t):
        for i in range(100):
            with store.db.atomic() as db:
                n = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
                db.execute("INSERT INTO outbox (created_at, subject) VALUES (?, ?)",
                           [now_iso(), f"{t}-{i}-{n}"])

    assert failures_in_threads(work) == []
    counts = [int(r[0].rsplit("-", 1)[1]) for r in store.conn.execute("SELECT subject FROM outbox")]
    assert sorted(counts) == list(range(800))  # every block saw every earlier commit


# -- PostgreSQL: a database that cannot be reached -------------------------------------------

def _point_at(folder, url):
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    (folder / "database_url").write_text(url + "\n", encoding="utf-8")


def test_a_database_that_does_not_exist_is_said_at_once(tmp_path, postgres_server):
    """Seconds, not the pool's 30 s of retries; where it is, without the password."""
    _point_at(tmp_path, postgres_server.url("no_such_database") + "&password=hunter2")
    started = time.monotonic()
    with pytest.raises(StoreError) as refused:
        Store(tmp_path)
    assert time.monotonic() - started < 5
    message = str(refused.value)
    assert "no_such_database" in message and "does not exist" in message
    assert "hunter2" not in message


def test_a_database_dropped_under_a_running_store_fails_fast(tmp_path, postgres_server):
    url = postgres_server.create_database()
    _point_at(tmp_path, url)
    store = Store(tmp_path)
    try:
        store.upsert_contact("+81312345678", **CONTACT)
        postgres_server.drop_database(url)
        started = time.monotonic()
        failures = []
        for _ in range(3):
            with pytest.raises(store.unavailable) as failed:
                store.get_contact("+81312345678")
            failures.append(failed.value)
        assert time.monotonic() - started < 10
        assert isinstance(failures[-1], StoreError)
        assert url.split("?")[0].rsplit("/", 1)[1] in str(failures[-1])
    finally:
        store.dispose()
    with pytest.raises(StoreError, match="closed"):   # a disposed store opens no pool again
        store.get_contact("+81312345678")


# -- which database: the folder's database_url, or SFCTI_DATABASE_URL ------------------------

@pytest.mark.parametrize("content, says", [
    ("mysql://u:hunter2@h/db", "is not a postgresql:// URL"),
    ("sqlite:///tmp/x.db", "is not a postgresql:// URL"),
    ("postgresql://u:hunter2@h/db\x01", "control characters"),
    ("postgresql://u:hunter2@h/" + "d" * 3000, "longer than 2000 characters"),
    ("postgresql://u:hunter2@h/db?no_such_option=1", "cannot be parsed"),
    ("postgresql://u:hunter2@[bad/db", "cannot be parsed"),
])
def test_a_database_url_that_cannot_be_used_is_refused_clearly(tmp_path, content, says):
    (tmp_path / "database_url").write_text(content + "\n", encoding="utf-8")
    with pytest.raises(StoreError) as refused:
        Store(tmp_path)
    assert says in str(refused.value) and str(tmp_path / "database_url") in str(refused.value)
    assert "hunter2" not in str(refused.value)
    assert not (tmp_path / "sfcti.db").exists()      # not quietly SQLite instead


@pytest.mark.parametrize("content", ["", "\n", "   \n"])
def test_an_empty_database_url_file_means_sqlite(tmp_path, content):
    (tmp_path / "database_url").write_text(content, encoding="utf-8")
    assert Store(tmp_path).backend == "sqlite"


def test_the_environment_names_the_database_before_the_folder(tmp_path, monkeypatch):
    (tmp_path / "database_url").write_text("postgresql://u@h/db\n", encoding="utf-8")
    monkeypatch.setenv("SFCTI_DATABASE_URL", "mysql://u@h/db")
    with pytest.raises(StoreError, match="SFCTI_DATABASE_URL is not a postgresql:// URL"):
        Store(tmp_path)


# -- the secret key: not in the database; a node with another key or none writes nothing -----

def _fingerprint(store) -> dict:
    """Rows of every table, as the test reads them (what a refused node must not change)."""
    return {table: sorted(map(repr, store.conn.execute(f"SELECT * FROM {table}").fetchall()))
            for table in store.table_names()}


@pytest.fixture
def node_with_secrets(tmp_path, database):
    """A first node's folder whose database holds a secret; returns (folder, its key)."""
    from core.settings import save_settings

    folder = tmp_path / "node-1"
    database(folder)
    store = Store(folder)
    save_settings(store, {"username": "u@example.com", "password": "first node's secret"})
    store.dispose()
    return folder, (folder / "secret.key").read_bytes()


def _second_node(tmp_path, node_with_secrets, key: bytes | None):
    folder, _ = node_with_secrets
    second = tmp_path / "node-2"
    second.mkdir(mode=0o700)
    if (folder / "database_url").exists():
        (second / "database_url").write_bytes((folder / "database_url").read_bytes())
    else:                                   # SQLite: the same file, as after a restore
        os.link(folder / "sfcti.db", second / "sfcti.db")
    if key is not None:
        (second / "secret.key").write_bytes(key)
    return second


def test_a_node_with_the_same_key_reads_the_secrets(tmp_path, node_with_secrets):
    from core.settings import load_settings

    second = _second_node(tmp_path, node_with_secrets, node_with_secrets[1])
    assert load_settings(Store(second)).password == "first node's secret"


def test_a_node_with_another_key_is_refused_and_writes_nothing(tmp_path, node_with_secrets):
    from cryptography.fernet import Fernet

    before = _fingerprint(Store(node_with_secrets[0]))
    second = _second_node(tmp_path, node_with_secrets, Fernet.generate_key())
    with pytest.raises(store_module.WrongSecretKey) as refused:
        Store(second)
    assert "is not the key the secrets" in str(refused.value) and "writes nothing" in str(refused.value)
    assert _fingerprint(Store(node_with_secrets[0])) == before


def test_a_node_without_a_key_is_refused_and_makes_none(tmp_path, node_with_secrets):
    before = _fingerprint(Store(node_with_secrets[0]))
    second = _second_node(tmp_path, node_with_secrets, None)
    with pytest.raises(store_module.MissingSecretKey, match="this node has no key"):
        Store(second)
    assert not (second / "secret.key").exists()
    assert _fingerprint(Store(node_with_secrets[0])) == before


def test_the_key_from_the_environment_is_used(tmp_path, node_with_secrets, monkeypatch):
    from core.settings import load_settings

    second = _second_node(tmp_path, node_with_secrets, None)
    monkeypatch.setenv("SFCTI_SECRET_KEY", node_with_secrets[1].decode())
    assert load_settings(Store(second)).password == "first node's secret"
    assert not (second / "secret.key").exists()


@pytest.mark.parametrize("key", ["not a key", "x" * 10_000, "\x01\x02", "鍵"])
def test_a_key_in_the_environment_that_is_no_key_is_refused(tmp_path, node_with_secrets,
                                                            monkeypatch, key):
    second = _second_node(tmp_path, node_with_secrets, None)
    monkeypatch.setenv("SFCTI_SECRET_KEY", key)
    with pytest.raises(store_module.InvalidSecretKey):
        Store(second)
