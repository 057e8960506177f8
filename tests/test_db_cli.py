"""`sfcti db status | migrate | copy`: the instance's database from a shell, and the move of an
SQLite installation to PostgreSQL with nothing lost (counts and checksums computed here, from
both databases, by the test's own code)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import stat
import time

import psycopg
import pytest
import sqlite_utils

from core.store import DB_NAME, MIGRATIONS, Schema, Store
from helpers import connect, end, make_host, ring, run_cli

SECRET = "pässwörd-秘密"
URL_PASSWORD = "hunter2-do-not-show"


@pytest.fixture
def target(postgres_server):
    """An empty PostgreSQL database (dropped at the test's end): its URL."""
    from core.postgres import close_all

    url = postgres_server.create_database()
    yield url
    close_all()
    postgres_server.drop_database(url)


@pytest.fixture
def no_env_url(monkeypatch):
    monkeypatch.delenv("SFCTI_DATABASE_URL", raising=False)


# ---------------------------------------------------------------------------------------------
# the test's own view of both databases
# ---------------------------------------------------------------------------------------------

def sqlite_tables(home) -> dict[str, list[str]]:
    """{table: columns} of the folder's SQLite file, read with sqlite3."""
    with sqlite3.connect(home / DB_NAME) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {name: [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')]
                for name in names}


def sqlite_rows(home, table, columns) -> list[tuple]:
    with sqlite3.connect(home / DB_NAME) as conn:
        return conn.execute(f'SELECT {", ".join(columns)} FROM "{table}"').fetchall()


def pg_rows(url, table, columns) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(f'SELECT {", ".join(columns)} FROM "{table}"').fetchall()


def fingerprint(rows) -> tuple[int, str]:
    """(count, sha256 of the rows as JSON lines, sorted): types kept (1 vs 1.0 vs "1")."""
    lines = sorted(json.dumps([[type(v).__name__, v] for v in row], ensure_ascii=False)
                   for row in rows)
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def assert_same_data(home, url) -> dict[str, int]:
    """Every SQLite table has the same rows in PostgreSQL; returns the row counts."""
    counts = {}
    for table, columns in sqlite_tables(home).items():
        here, there = fingerprint(sqlite_rows(home, table, columns)), \
            fingerprint(pg_rows(url, table, columns))
        assert here == there, table
        counts[table] = here[0]
    return counts


# ---------------------------------------------------------------------------------------------
# an instance with rows in every table, made through the product's own functions
# ---------------------------------------------------------------------------------------------

def populate(store, emulator):
    """Rows in every table: settings with secrets, an index sync, calls through the plugin's
    hooks, contacts, errors, alert mails, agents, Tasks, the admin, leases, locks."""
    from core import accounts, activity, agents, errors, history, registration
    from core.alerts import Alerts
    from core.jobs import acquire_lease, sync_index
    from core.mail import Outbox
    from core.settings import load_settings, save_settings

    connect(store, emulator, contact_fetch="nightly", alert_recipients="ops@example.com",
            smtp_host="127.0.0.1", smtp_port=2525, smtp_password=SECRET)
    sync_index(store, full=True)                                     # index_records/phones/sync
    host = make_host()
    for number, agent in [("03-1234-5678", "受付1"), ("0120-000-000", None), ("090-3333-4444", "101")]:
        call, display, _ = ring(host, number, agent_id=agent, local_number="03-9999-0000")
        end(host, call, answered=agent is not None, duration=12.75)
    call, _, _ = ring(host, "anonymous")                             # NULLs: never ended
    history.record_call(store, history.call_facts(
        {"call_id": "ユニコード-☎-\u00e9", "direction": "inbound", "remote_number": "0312345678",
         "started_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
         "ended_at": dt.datetime(2026, 1, 2, 3, 5, 5, tzinfo=dt.timezone.utc), "answered": True,
         "duration_seconds": 0.1 + 0.2}), {"status": "matched", "label": "株式会社サンプル 山田 太郎",
                                            "number": "+81312345678"})
    day = store.conn.execute("SELECT max(started_at) FROM calls").fetchone()[0][:10]
    registration.queue_numbers_called(store, day, load_settings(store))
    registration.claim_refetch(store, "+81312345678")
    store.upsert_contact("+81300000001", "Account", "001000000000001AAA", "手入力", None)
    store.remember_no_match("+81300000002", 3600)
    for _ in range(3):
        errors.record_failure(store, "salesforce", "lookup", "SF_UNAVAILABLE", detail="down ☁")
    errors.record_failure(store, "smtp", "send", "SMTP_REFUSED", detail=None)
    Alerts(store).check()                                            # alert_state, outbox
    Outbox(store).enqueue(["a@example.com"], "件名 subject", "本文\nbody")
    user = agents.SalesforceUser("005000000000001AAA", "山田 花子", "hanako@example.jp", "h@example.jp")
    agents.map_agent(store, "受付1", user)
    activity.enqueue(store, "ユニコード-☎-\u00e9", {"status": "matched", "company": "株式会社サンプル"})
    accounts.ensure_admin(store, "admin", "admin-password-123")
    accounts.note_failure(store, ["admin", "192.0.2.1"])
    acquire_lease(store, "nightly", "node-1")
    save_settings(store, {"oauth_refresh_token": "refresh-" + SECRET})


def test_a_populated_instance_is_copied_with_nothing_lost(connected, emulator, home, target,
                                                          no_env_url, monkeypatch):
    from core import history
    from core.mail import Outbox
    from core.settings import load_settings

    populate(connected, emulator)
    tables = sqlite_tables(home)
    empty = [t for t, cols in tables.items() if not sqlite_rows(home, t, cols)]
    assert empty == [], "the test should put rows in every table"
    settings_before = load_settings(connected)
    calls_before = history.list_calls(connected, limit=100)
    connected.close()

    result = run_cli(home, "db", "copy", "--to", target)

    assert result.exit_code == 0, result.output
    counts = assert_same_data(home, target)
    for table, rows in counts.items():
        assert f"  {table} " in result.output and f" {rows} " in result.output
    assert "Every table matches" in result.output
    assert "secret.key" in result.output and "SFCTI_SECRET_KEY" in result.output
    assert not (home / "database_url").exists()                      # no --switch
    with monkeypatch.context() as env:                                # this node on PostgreSQL
        env.setenv("SFCTI_DATABASE_URL", target)
        on_pg = Store(home)
        assert on_pg.backend == "postgresql"
        settings = load_settings(on_pg)
        assert settings.password == emulator.password and settings.smtp_password == SECRET
        assert settings.oauth_refresh_token == "refresh-" + SECRET
        assert settings == settings_before
        assert history.list_calls(on_pg, limit=100) == calls_before
        top_error = max(r[0] for r in pg_rows(target, "error_log", ["id"]))
        top_mail = max(r[0] for r in pg_rows(target, "outbox", ["id"]))
        # (core.errors.record_failure's upsert does not run on PostgreSQL yet: "count" is
        # ambiguous there; the sequence is what this test is about)
        with psycopg.connect(target) as conn:
            new_id = conn.execute("INSERT INTO error_log (first_at, last_at, integration, "
                                  "operation, code, open) VALUES ('t', 't', 'x', 'y', 'Z', 0) "
                                  "RETURNING id").fetchone()[0]
        assert new_id == top_error + 1
        assert Outbox(on_pg).enqueue(["b@example.com"], "s", "b") == top_mail + 1
        on_pg.dispose()


def test_switch_points_the_folder_at_postgresql(store, home, target, no_env_url):
    from core.settings import load_settings, save_settings

    save_settings(store, {"username": "ops@example.com", "password": SECRET})
    result = run_cli(home, "db", "copy", "--to", target, "--switch")
    assert result.exit_code == 0, result.output
    url_file = home / "database_url"
    assert url_file.read_text().strip() == target
    assert stat.S_IMODE(url_file.stat().st_mode) == 0o600
    switched = Store(home)
    try:
        assert switched.backend == "postgresql"
        assert load_settings(switched).password == SECRET
    finally:
        switched.dispose()
    status = json.loads(run_cli(home, "db", "status", "--json").output)
    assert status["backend"] == "postgresql" and status["tables"]["settings"] == 2
    # once more into the same (now filled) target: refused unless --replace
    again = run_cli(home, "db", "copy", "--to", target)
    assert again.exit_code == 1 and "already holds rows" in again.output
    assert run_cli(home, "db", "copy", "--to", target, "--replace").exit_code == 0
    assert assert_same_data(home, target)["settings"] == 2


def test_a_target_named_by_the_environment_is_allowed(store, home, target, monkeypatch):
    from core.settings import save_settings

    save_settings(store, {"username": "env@example.com"})
    monkeypatch.setenv("SFCTI_DATABASE_URL", target)
    result = run_cli(home, "db", "copy", "--to", target)
    assert result.exit_code == 0, result.output
    assert ("env@example.com",) in pg_rows(target, "settings", ["value"])


def test_a_target_with_rows_is_refused_and_replace_empties_it(store, home, target, no_env_url,
                                                              monkeypatch):
    from core.errors import record_failure

    record_failure(store, "salesforce", "lookup", "SF_UNAVAILABLE")
    with monkeypatch.context() as env:                 # another installation's rows in the target
        env.setenv("SFCTI_DATABASE_URL", target)
        other = Store(home)
        other.upsert_contact("+81399999999", company="よそのデータ")
        other.dispose()

    refused = run_cli(home, "db", "copy", "--to", target)
    assert refused.exit_code == 1 and "already holds rows" in refused.output
    assert "contacts" in refused.output
    assert pg_rows(target, "error_log", ["id"]) == []                # nothing was written
    assert pg_rows(target, "contacts", ["company"]) == [("よそのデータ",)]

    replaced = run_cli(home, "db", "copy", "--to", target, "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert pg_rows(target, "contacts", ["company"]) == []
    assert assert_same_data(home, target)["error_log"] == 1


def test_copy_of_100000_calls_is_timed(store, home, target, no_env_url, capsys):
    """The benchmark of the brief: 100,000 call rows; the time is printed (pytest -s)."""
    from core import history

    facts = history.call_facts({"call_id": "seed", "direction": "inbound",
                                "remote_number": "0312345678", "answered": True,
                                "duration_seconds": 3.5})
    history.record_call(store, facts, {"status": "matched", "number": "+81312345678"})
    row = next(store.db.query("SELECT * FROM calls"))
    # the bulk rows are the seed row with other ids: 100,000 record_call transactions would
    # measure the history's writes, not the copy
    with sqlite3.connect(home / DB_NAME) as conn:
        columns = list(row)
        conn.executemany(
            f"INSERT INTO calls ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            ([f"bulk-{i:06d}" if c == "call_id" else row[c] for c in columns]
             for i in range(100_000)))
    started = time.monotonic()
    result = run_cli(home, "db", "copy", "--to", target)
    seconds = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert assert_same_data(home, target)["calls"] == 100_001
    with capsys.disabled():
        print(f"\n  db copy of 100,001 calls: {seconds:.1f} s (copy and both checksums)")
    assert seconds < 120


# ---------------------------------------------------------------------------------------------
# migrate and status
# ---------------------------------------------------------------------------------------------

def make_old_sqlite(home, version: int) -> None:
    """An instance database made by an older sfcti: the first ``version`` migrations."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = sqlite_utils.Database(home / DB_NAME)
    for migration in MIGRATIONS[:version]:
        migration(Schema(db))
    db.execute(f"PRAGMA user_version = {version}")
    db.close()


def test_status_shows_pending_migrations_and_migrate_applies_them(tmp_path, no_env_url):
    home = tmp_path / "old"
    make_old_sqlite(home, 3)
    status = json.loads(run_cli(home, "db", "status", "--json").output)
    assert status["backend"] == "sqlite" and status["schema_version"] == 3
    assert status["pending_migrations"] == list(range(4, len(MIGRATIONS) + 1))
    assert status["where"] == str(home / DB_NAME)
    assert "db migrate" in run_cli(home, "db", "status").output
    assert sqlite3.connect(home / DB_NAME).execute("PRAGMA user_version").fetchone()[0] == 3

    result = run_cli(home, "db", "migrate")
    assert result.exit_code == 0, result.output
    assert f"from schema version 3 to {len(MIGRATIONS)}" in result.output
    assert sqlite3.connect(home / DB_NAME).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    again = run_cli(home, "db", "migrate")
    assert again.exit_code == 0 and "already up to date" in again.output


def test_migrate_makes_a_fresh_sqlite_database(tmp_path, no_env_url):
    home = tmp_path / "new"
    home.mkdir()
    result = run_cli(home, "db", "migrate")
    assert result.exit_code == 0, result.output
    assert f"from schema version 0 to {len(MIGRATIONS)}" in result.output
    assert "calls" in sqlite_tables(home)


def test_migrate_and_status_on_postgresql(tmp_path, target, no_env_url):
    home = tmp_path / "pg"
    home.mkdir(mode=0o700)
    (home / "database_url").write_text(target + "\n")
    status = json.loads(run_cli(home, "db", "status", "--json").output)
    assert status["backend"] == "postgresql" and status["schema_version"] == 0
    assert status["pending_migrations"] == list(range(1, len(MIGRATIONS) + 1))

    result = run_cli(home, "db", "migrate")
    assert result.exit_code == 0, result.output
    assert f"from schema version 0 to {len(MIGRATIONS)}" in result.output
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    again = run_cli(home, "db", "migrate")
    assert again.exit_code == 0 and "already up to date" in again.output

    text = run_cli(home, "db", "status").output
    assert "(postgresql)" in text and "Pending migrations: none" in text
    assert "calls" in text and "settings" in text


def test_status_counts_rows(store, home, no_env_url):
    from core.errors import record_failure

    record_failure(store, "salesforce", "lookup", "SF_UNAVAILABLE")
    record_failure(store, "smtp", "send", "SMTP_REFUSED")
    status = json.loads(run_cli(home, "db", "status", "--json").output)
    assert status["tables"]["error_log"] == 2 and status["tables"]["calls"] == 0
    assert status["pending_migrations"] == []


# ---------------------------------------------------------------------------------------------
# hostile arguments: a clear error, never a traceback, never a password
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, says", [
    ("", "empty"),
    ("   ", "empty"),
    ("mysql://u@h/db", "not a postgresql:// URL"),
    ("sqlite:///tmp/x.db", "not a postgresql:// URL"),
    ("postgresql://u@h/db\x00x", "control characters"),
    ("postgresql://u@h/db\nx", "control characters"),
    ("postgresql://" + "x" * 100_000, "longer than"),
    (f"postgresql://u:{URL_PASSWORD}@127.0.0.1:1/db", "Cannot open the database"),
    (f"postgresql:///db?host=/nonexistent&password={URL_PASSWORD}", "Cannot open the database"),
])
def test_hostile_targets_are_refused_clearly(store, home, url, says, no_env_url):
    result = run_cli(home, "db", "copy", "--to", url)
    assert result.exit_code == 1
    assert says in result.output
    assert URL_PASSWORD not in result.output
    assert not (home / "database_url").exists()


def test_a_missing_folder_is_refused(tmp_path, target, no_env_url):
    for command in (["db", "copy", "--to", target], ["db", "status"], ["db", "migrate"]):
        result = run_cli(tmp_path / "nowhere", *command)
        assert result.exit_code == 1, command
        assert "nowhere" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_a_folder_already_on_another_database_is_refused(store, home, target, postgres_server,
                                                         no_env_url, monkeypatch):
    other = postgres_server.create_database()
    try:
        (home / "database_url").write_text(other + "\n")
        result = run_cli(home, "db", "copy", "--to", target)
        assert result.exit_code == 1 and "already uses another database" in result.output
        (home / "database_url").unlink()
        monkeypatch.setenv("SFCTI_DATABASE_URL", other)
        result = run_cli(home, "db", "copy", "--to", target)
        assert result.exit_code == 1 and "already uses another database" in result.output
        with psycopg.connect(target) as conn:                        # the target untouched
            assert conn.execute("SELECT count(*) FROM information_schema.tables "
                                "WHERE table_schema = 'public'").fetchone()[0] == 0
    finally:
        from core.postgres import close_all

        close_all()
        postgres_server.drop_database(other)


@pytest.mark.parametrize("content", ["mysql://x/y", f"postgresql://u:{URL_PASSWORD}@127.0.0.1:1/db",
                                     f"postgresql://u:{URL_PASSWORD}@h/db?bogus_option=1"])
def test_migrate_and_status_with_a_bad_database_url(tmp_path, content, no_env_url):
    home = tmp_path / "bad"
    home.mkdir(mode=0o700)
    (home / "database_url").write_text(content + "\n")
    for command in ("migrate", "status"):
        result = run_cli(home, "db", command)
        assert result.exit_code == 1, result.output
        assert "database" in result.output.lower() and URL_PASSWORD not in result.output


def loose_sqlite_value(home, sql, params) -> None:
    """Write a value SQLite's loose typing accepts and PostgreSQL's columns do not."""
    with sqlite3.connect(home / DB_NAME) as conn:
        conn.execute(sql, params)


@pytest.mark.parametrize("sql, params", [
    ("UPDATE calls SET duration_seconds = ?", ["not a number"]),   # text in a REAL column
    ("UPDATE calls SET label = ?", ["nul \x00 inside"]),           # PostgreSQL text has no NUL
])
def test_a_copy_that_fails_writes_nothing(store, home, target, sql, params, no_env_url):
    from core import history

    store.upsert_contact("+81300000001", company="残らない")
    history.record_call(store, history.call_facts({"call_id": "c1", "remote_number": "0312345678",
                                                   "direction": "inbound"}), {})
    loose_sqlite_value(home, sql, params)
    result = run_cli(home, "db", "copy", "--to", target)
    assert result.exit_code == 1 and "rolled back" in result.output
    assert pg_rows(target, "contacts", ["e164"]) == [] and pg_rows(target, "calls", ["call_id"]) == []


def test_a_difference_after_the_copy_is_reported(store, home, target, no_env_url):
    store.upsert_contact("+81300000001", company="ok")
    loose_sqlite_value(home, "UPDATE contacts SET company = ?", [b"bytes, not text"])
    result = run_cli(home, "db", "copy", "--to", target, "--switch")
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if line.strip().startswith("contacts"))
    assert "DIFFERENT" in line
    assert "still uses SQLite" in result.output and not (home / "database_url").exists()


def test_a_folder_with_an_unparsable_database_url_is_refused(store, home, target, no_env_url):
    (home / "database_url").write_text(f"postgresql://u:{URL_PASSWORD}@h/db?bogus_option=1\n")
    result = run_cli(home, "db", "copy", "--to", target)
    assert result.exit_code == 1
    assert f"The database URL in {home / 'database_url'} cannot be parsed" in result.output
    assert URL_PASSWORD not in result.output


def test_a_password_in_the_target_url_is_never_printed(store, home, target, no_env_url):
    from core.settings import save_settings

    save_settings(store, {"username": "ops@example.com"})
    url = f"{target}&password={URL_PASSWORD}"            # the test server trusts its socket
    result = run_cli(home, "db", "copy", "--to", url, "--switch")
    assert result.exit_code == 0, result.output
    assert URL_PASSWORD not in result.output and "password=***" in result.output
    status = run_cli(home, "db", "status")
    assert status.exit_code == 0 and URL_PASSWORD not in status.output
    assert "password=***" in status.output


def test_a_node_folder_holding_only_the_url_reads_the_shared_history(tmp_path, target, no_env_url):
    """A second node's folder has no sfcti.db, only database_url: its read-only commands work on
    the shared database instead of saying there is no instance."""
    from core import history
    from core.store import URL_FILE
    from plugin.call import Call

    first, second = tmp_path / "node-1", tmp_path / "node-2"
    for folder in (first, second):
        folder.mkdir(mode=0o700)
        (folder / URL_FILE).write_text(target + "\n")
    store = Store(first)
    history.record_call(store, history.call_facts(
        Call(call_id="seen-by-node-1", remote_number="0312345678").end()), {})
    store.dispose()
    result = run_cli(second, "history", "--json")
    assert result.exit_code == 0, result.output
    assert [row["call_id"] for row in json.loads(result.output)] == ["seen-by-node-1"]
    assert not (second / DB_NAME).exists()
