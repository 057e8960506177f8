"""A real, disposable PostgreSQL server for the tests: unix socket only, in a temporary folder.

PostgreSQL refuses to run as root, so as root every binary runs as the `postgres` system user
(`runuser -u postgres --`, the folder is chowned to it); as any other user it runs as that user.
The server is tuned to be thrown away (fsync, synchronous_commit and full_page_writes off; the
constructor's ``settings`` override that, as bench/nodes.py does) and
allows 400 connections (two host "nodes" with connection pools plus the tests themselves).
It is stopped by the PID in DATA/postmaster.pid, always: by stop(), by the context manager, by
an atexit hook, and by a small watchdog process should the test process die without running
atexit (kill -9, os._exit).

    with PostgresServer() as server:
        url = server.create_database()    # postgresql:///t_...?host=/tmp/sfcti-pg-...&user=postgres
        ...
        server.drop_database(url)

shared_server() starts one server per process on first use and reuses it (the session fixture).

One test, one database: CREATE DATABASE ... TEMPLATE template0 STRATEGY FILE_COPY. Measured here
(PostgreSQL 15, 2 shared cores, idle; medians of 20, milliseconds; server start 0.7 s, stop 0.05 s):
    CREATE DATABASE  template0 FILE_COPY 26 | template0 WAL_LOG 38 | template1 FILE_COPY 29 |
                     template1 WAL_LOG 40;  DROP DATABASE WITH (FORCE) 4-6;  CREATE/DROP SCHEMA 0.1
    create + 10 tables with indexes + drop:  database 80, schema (search_path in the URL) 30
A database isolates everything (tables, rows, sequences, types, LISTEN channels) for ~50 ms a test;
a schema leaks whatever code qualifies with `public.` or sets search_path itself.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from urllib.parse import quote

import psycopg
from psycopg import sql

BIN_DIR = pathlib.Path(os.environ.get("SFCTI_PG_BIN", "/usr/lib/postgresql/15/bin"))
SYSTEM_USER = "postgres"       # the server's own user when we are root; also the superuser's name
START_SECONDS = 30
STOP_SECONDS = 10

SERVER_SETTINGS = {
    "listen_addresses": "",            # unix socket only: nothing else on the machine can reach it
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "400",
    "shared_buffers": "32MB",
    "max_wal_senders": "0",
    "wal_level": "minimal",            # no WAL for tables created and filled in one transaction
    "checkpoint_timeout": "1h",
    "max_wal_size": "1GB",
    "log_min_messages": "warning",
}

# Runs beside the test process and reads its stdin until the test process is gone (the pipe's
# end closes however that process ends); then stops the server, if it still runs, and removes
# the folder. stop() closes the pipe after stopping, so then there is nothing left to do.
_WATCHDOG = r"""
import os, pathlib, shutil, signal, sys, time
sys.stdin.buffer.read()
folder = pathlib.Path(sys.argv[1])
try:
    pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
except (OSError, ValueError, IndexError):
    pid = None
if pid:
    for sig, seconds in ((signal.SIGINT, float(sys.argv[2])), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.05)
shutil.rmtree(folder, ignore_errors=True)
"""


class PostgresServerError(RuntimeError):
    """The server could not be set up, started or stopped."""


class PostgresServer:
    """One PostgreSQL server in its own temporary folder, reached over a unix socket there."""

    def __init__(self, bin_dir: pathlib.Path = BIN_DIR, settings: dict | None = None):
        """``settings`` override SERVER_SETTINGS (a benchmark wants fsync and
        synchronous_commit on, as on a real server)."""
        self.bin_dir = pathlib.Path(bin_dir)
        self.settings = {**SERVER_SETTINGS, **(settings or {})}
        self.folder: pathlib.Path | None = None
        self.pid: int | None = None
        self._process: subprocess.Popen | None = None
        self._watchdog: subprocess.Popen | None = None
        self._admin: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self._owner_pid = os.getpid()

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> "PostgresServer":
        """Create the folder and the cluster, start the server and wait until it answers."""
        if self.folder is not None:
            raise PostgresServerError("this server is already started")
        self._owner_pid = os.getpid()
        self.folder = pathlib.Path(tempfile.mkdtemp(prefix="sfcti-pg-"))
        atexit.register(self._stop_at_exit)
        try:
            self._hand_folder_to_server_user()
            self._start_watchdog()
            self._initdb()
            self._launch()
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown, then SIGKILL after a timeout) and remove its folder."""
        if self.folder is None:
            return
        self._close_admin()
        pid = self.pid or self._read_postmaster_pid()
        if pid:
            self._signal_until_gone(pid)
        if self._process is not None:
            try:
                self._process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
        self._stop_watchdog()
        self.folder = None
        self._process = None
        atexit.unregister(self._stop_at_exit)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server's process still exists."""
        return bool(self.pid) and _process_exists(self.pid)

    # -- URLs and databases ------------------------------------------------------------------

    @property
    def admin_url(self) -> str:
        """URL of the `postgres` maintenance database, for administrative statements."""
        return self.url("postgres")

    def url(self, dbname: str) -> str:
        """URL of database `dbname` on this server, as the superuser, over the unix socket."""
        if self.folder is None:
            raise PostgresServerError("the server is not started")
        return (f"postgresql:///{quote(dbname, safe='')}?host={quote(str(self.folder), safe='/')}"
                f"&user={SYSTEM_USER}")

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh, empty database (a unique name when none is given); return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        self._admin_execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 STRATEGY FILE_COPY")
                            .format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, url_or_name: str) -> None:
        """Drop a database given by URL or name, ending any connections it still has."""
        name = _database_name(url_or_name)
        self._admin_execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                            .format(sql.Identifier(name)))

    # -- inside ------------------------------------------------------------------------------

    def _as_server_user(self, *command) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", SYSTEM_USER, "--", *map(str, command)]
        return [str(part) for part in command]

    def _hand_folder_to_server_user(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, user=SYSTEM_USER, group=SYSTEM_USER)
        self.folder.chmod(0o700)

    def _start_watchdog(self) -> None:
        # a session of its own: a Ctrl-C to the test run reaches the test process, not the watchdog
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(self.folder), str(STOP_SECONDS)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stdin.close()
            try:
                self._watchdog.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
            self._watchdog = None

    def _initdb(self) -> None:
        done = subprocess.run(
            self._as_server_user(self.bin_dir / "initdb", "-D", self.data_dir, "-U", SYSTEM_USER,
                                 "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"),
            capture_output=True, text=True)
        if done.returncode != 0:
            raise PostgresServerError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _launch(self) -> None:
        settings = [arg for key, value in self.settings.items() for arg in ("-c", f"{key}={value}")]
        command = self._as_server_user(self.bin_dir / "postgres", "-D", self.data_dir,
                                       "-k", self.folder, *settings)
        with open(self.log_path, "ab") as log:
            # a session of its own: a Ctrl-C to the test run must not half-stop the server
            # before the atexit hook stops it properly
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if self._process.poll() is not None:
                raise PostgresServerError(f"the server exited with {self._process.returncode}"
                                          f" while starting; its log ends:\n{self.log_tail()}")
            try:
                psycopg.connect(self.admin_url, connect_timeout=2).close()
                break
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise PostgresServerError(f"the server did not accept connections within"
                                              f" {START_SECONDS} s ({error}); its log ends:\n"
                                              f"{self.log_tail()}") from None
                time.sleep(0.05)
        self.pid = self._read_postmaster_pid()

    def _read_postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _signal_until_gone(self, pid: int) -> None:
        # SIGINT is the fast shutdown: open sessions are ended; SIGTERM (smart shutdown) would
        # wait for every client, and one pool a test forgot to close would hang the stop
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + STOP_SECONDS
            while time.monotonic() < deadline:
                if self._process is not None:
                    self._process.poll()      # reaps the postmaster when it is our own child
                if not _process_exists(pid):
                    return
                time.sleep(0.02)
        raise PostgresServerError(f"the server (PID {pid}) did not stop")

    def _stop_at_exit(self) -> None:
        if os.getpid() == self._owner_pid:     # not in a forked child that inherited the hook
            self.stop()

    def _admin_execute(self, statement) -> None:
        with self._lock:
            if self._admin is None or self._admin.closed:
                self._admin = psycopg.connect(self.admin_url, autocommit=True)
            self._admin.execute(statement)

    def _close_admin(self) -> None:
        with self._lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None

    @property
    def data_dir(self) -> pathlib.Path:
        """The cluster's data folder."""
        return self.folder / "data"

    @property
    def log_path(self) -> pathlib.Path:
        """The server's log file."""
        return self.folder / "server.log"

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _process_exists(pid: int) -> bool:
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status           # a zombie has stopped; it only waits to be reaped


def _database_name(url_or_name: str) -> str:
    if "://" in url_or_name or "=" in url_or_name:
        return psycopg.conninfo.conninfo_to_dict(url_or_name)["dbname"]
    return url_or_name


_shared: PostgresServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> PostgresServer:
    """The one server of this process, started on first use and stopped when the process exits."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.folder is None or os.getpid() != _shared._owner_pid:
            _shared = PostgresServer().start()
        return _shared
