"""The disposable PostgreSQL server of the tests (tests/pgserver.py): databases isolated from
each other, dropped on request, and no server process or folder left behind."""

import pathlib
import subprocess
import sys
import time

import psycopg
import pytest

from pgserver import PostgresServer, shared_server

HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def server():
    """One server for the tests of this module that only need databases."""
    with PostgresServer() as running:
        yield running


def _gone(pid, folder, seconds=15):
    """Wait until the process `pid` and `folder` no longer exist; whether they are gone."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pathlib.Path(f"/proc/{pid}").exists() and not folder.exists():
            return True
        time.sleep(0.05)
    return False


def test_two_databases_share_no_table_row_or_sequence(server):
    first, second = server.create_database(), server.create_database()
    assert first != second
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("CREATE TABLE calls (id serial PRIMARY KEY, caller text)")
        conn.execute("INSERT INTO calls (caller) VALUES ('+81312345678'), ('+81698765432')")
    with psycopg.connect(second, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM calls")
        conn.execute("CREATE TABLE calls (id serial PRIMARY KEY, caller text)")
        new_id = conn.execute("INSERT INTO calls (caller) VALUES ('x') RETURNING id").fetchone()[0]
        assert new_id == 1           # the first database's sequence stands at 2
        assert conn.execute("SELECT caller FROM calls").fetchall() == [("x",)]
    for url in (first, second):
        server.drop_database(url)


def test_named_database_gets_that_name(server):
    url = server.create_database("named_for_test")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "named_for_test"
    server.drop_database("named_for_test")


def test_japanese_text_is_stored_and_sorted_by_code_point(server):
    url = server.create_database()
    names = ["東京支社", "大阪営業所", "あおば商事", "アオバ", "abc", "Ｚ全角"]
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE accounts (name text)")
        conn.cursor().executemany("INSERT INTO accounts VALUES (%s)", [(name,) for name in names])
        stored = [row[0] for row in conn.execute("SELECT name FROM accounts ORDER BY name")]
    assert stored == sorted(names)
    server.drop_database(url)


def test_drop_ends_open_connections_and_removes_the_database(server):
    url = server.create_database()
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    still_open = psycopg.connect(url)
    server.drop_database(url)
    with pytest.raises(psycopg.OperationalError):
        still_open.execute("SELECT 1")
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(url)
    with psycopg.connect(server.admin_url) as admin:
        assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchall() == []


def test_stop_leaves_no_process_and_no_folder_even_with_clients_connected():
    server = PostgresServer().start()
    pid, folder = server.pid, server.folder
    assert pathlib.Path(f"/proc/{pid}").exists() and folder.is_dir()
    client = psycopg.connect(server.create_database())
    server.stop()
    assert not pathlib.Path(f"/proc/{pid}").exists()
    assert not folder.exists()
    with pytest.raises(psycopg.OperationalError):
        client.execute("SELECT 1")


def test_server_is_stopped_when_the_test_process_is_killed():
    program = ("import os, signal, sys; from pgserver import PostgresServer;"
               "s = PostgresServer().start(); print(s.pid, s.folder, flush=True);"
               "os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", program], cwd=HERE, capture_output=True,
                          text=True, timeout=60)
    pid, folder = done.stdout.split()
    assert _gone(int(pid), pathlib.Path(folder)), f"server {pid} in {folder} still there"


def test_shared_server_is_started_once_per_process():
    first = shared_server()
    assert shared_server() is first
    assert first.running
    with psycopg.connect(first.admin_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
