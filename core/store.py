"""The instance folder: one SQLite database (through sqlite-utils) and the key for stored secrets.

``Store(home)`` is shared by the host plugin, the admin and the CLI, from many threads and from
several processes at once:

- ``home/sfcti.db`` in WAL mode with a 30 s busy timeout; one connection per thread (and per
  process: a forked child opens its own);
- versioned migrations through ``PRAGMA user_version``, each applied once inside
  ``BEGIN IMMEDIATE`` so two processes starting together never both migrate;
- ``home/secret.key``: a Fernet key, mode 0600, created atomically (two processes racing end with
  the same key);
- small helpers for the tables this module owns (contacts, no_match, api_usage). The other tables
  are created here and written by their owners (see docs/architecture.md).

All timestamps are ISO-8601 UTC strings as produced by :func:`now_iso`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import importlib
import json
import logging
import os
import pathlib
import shlex
import sqlite3
import stat
import threading
import time
from typing import Callable, Iterator

import sqlite_utils
from cryptography.fernet import Fernet, InvalidToken

DB_NAME = "sfcti.db"
KEY_NAME = "secret.key"
URL_FILE = "database_url"
ENV_DATABASE_URL = "SFCTI_DATABASE_URL"
ENV_SECRET_KEY = "SFCTI_SECRET_KEY"
MAX_URL_LENGTH = 2000
BUSY_TIMEOUT_MS = 30_000
# what only the instance's owner may read: the database (call history, the admin's password
# hash), SQLite's WAL and shm beside it, the key of the stored secrets and the database URL (it
# may hold a password)
PRIVATE_FILES = (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", KEY_NAME, URL_FILE)
# the store_meta row whose value, encrypted with the secrets' key, tells a node's key is that one
KEY_CHECK = "secret_key_check"
KEY_CHECK_PLAINTEXT = b"sfcti secret key check"

log = logging.getLogger(__name__)

CONTACT_COLUMNS = (
    "e164", "object", "record_id", "company", "person", "record_url", "last_modified", "fetched_at",
)


# ---------------------------------------------------------------------------------------------
# exceptions: the docstring is the message
# ---------------------------------------------------------------------------------------------

class StoreError(Exception):
    "The instance folder could not be used."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.__doc__)


class InstanceNotFound(StoreError):
    "No sfcti instance in this folder."

    def __init__(self, home: pathlib.Path):
        self.home = home
        super().__init__(
            f"No sfcti instance in {home} (no {DB_NAME} there). Check --home or SFCTI_HOME, or "
            f"create one: `sfcti --home {home} connect` or `sfcti --home {home} settings set ...`.")


class InvalidSecretKey(StoreError):
    "The secret key file (secret.key) is not a valid Fernet key; restore it from a backup or remove it and enter the secrets again."


class WrongSecretKey(StoreError):
    "This node's secret key is not the one the stored secrets were encrypted with."

    def __init__(self, where: str, source: str):
        super().__init__(
            f"This node's secret key ({source}) is not the key the secrets in {where} were "
            "encrypted with, so this node writes nothing. Copy secret.key from a node that works "
            f"into the instance folder (mode 0600), or set {ENV_SECRET_KEY} to it; see "
            "docs/several-nodes.md.")


class MissingSecretKey(StoreError):
    "This node has no secret key, and the database holds secrets encrypted with one."

    def __init__(self, where: str, key_path: pathlib.Path):
        super().__init__(
            f"The secrets in {where} are encrypted, and this node has no key ({key_path} is "
            f"missing and {ENV_SECRET_KEY} is not set), so this node writes nothing. Copy "
            "secret.key from a node that works (mode 0600), or set the variable; see "
            "docs/several-nodes.md.")


class SecretNotDecryptable(StoreError):
    "A stored secret cannot be decrypted with the key in secret.key; enter it again."


# ---------------------------------------------------------------------------------------------
# which database
# ---------------------------------------------------------------------------------------------

def database_url(home: str | os.PathLike) -> str | None:
    """The PostgreSQL URL the instance folder ``home`` uses: ``$SFCTI_DATABASE_URL``, else the
    first line of ``home/database_url``; None (SQLite in the folder) when neither is set.

    :raises StoreError: the URL is not a ``postgresql://`` one, or the file cannot be read
    """
    source = ENV_DATABASE_URL
    url = os.environ.get(ENV_DATABASE_URL, "").strip()
    if not url:
        source = pathlib.Path(home) / URL_FILE
        try:
            url = source.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeError) as exc:
            raise StoreError(f"Cannot read the database URL in {source}: {exc}") from exc
    return checked_database_url(url, f"in {source}") if url else None


def checked_database_url(url: str, source: str) -> str:
    """``url`` when it can name a PostgreSQL database; ``source`` says where it came from in
    the messages (the URL itself is never quoted: it may hold a password).

    :raises StoreError: it is too long, holds control characters, is not a ``postgresql://``
        URL, or libpq cannot read it
    """
    if len(url) > MAX_URL_LENGTH:
        raise StoreError(f"The database URL {source} is longer than {MAX_URL_LENGTH} characters.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise StoreError(f"The database URL {source} contains control characters.")
    if url.partition("://")[0].lower() not in ("postgresql", "postgres"):
        raise StoreError(f"The database URL {source} is not a postgresql:// URL; leave it out "
                         "to keep SQLite in the instance folder.")
    if not _postgres().understood(url):
        raise StoreError(f"The database URL {source} cannot be parsed as a PostgreSQL "
                         "connection URL.")
    return url


# ---------------------------------------------------------------------------------------------
# query and time helpers
# ---------------------------------------------------------------------------------------------

def escape_like(text: str) -> str:
    """``text`` with LIKE's wildcards (and the escape character) escaped for ``ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def substring_filter(search: str | None, columns: tuple[str, ...]) -> tuple[str, dict]:
    """A `` WHERE`` clause (and its parameters) matching ``search`` as a substring of any of
    ``columns`` (constant names), LIKE wildcards in ``search`` taken literally; ("", {}) for none."""
    if not search:
        return "", {}
    pattern = "%" + escape_like(search) + "%"
    # lower() on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not
    return " WHERE " + " OR ".join(f"lower({column}) LIKE lower(:p) ESCAPE '\\'"
                                   for column in columns), {"p": pattern}


IN_CHUNK = 500    # keys per `IN (...)`: well below SQLite's limit of bound parameters


def select_in(conn: sqlite3.Connection, sql: str, keys: list) -> list[tuple]:
    """The rows of ``sql`` (a SELECT whose ``IN ({marks})`` takes the keys) for every key of
    ``keys``, asked ``IN_CHUNK`` keys at a time."""
    rows: list[tuple] = []
    for start in range(0, len(keys), IN_CHUNK):
        chunk = list(keys[start:start + IN_CHUNK])
        rows += conn.execute(sql.format(marks=", ".join("?" for _ in chunk)), chunk).fetchall()
    return rows


def now_iso(at: dt.datetime | None = None) -> str:
    """The UTC time ``at`` (default: now) as an ISO-8601 string with microseconds.

    Every timestamp in the database uses this one format, so strings compare like times.
    Naive datetimes are taken as UTC.
    """
    at = at or dt.datetime.now(dt.timezone.utc)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    return at.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def utc_day(at: dt.datetime | None = None) -> str:
    """The UTC day (YYYY-MM-DD) of ``at`` (default: now)."""
    return now_iso(at)[:10]


# ---------------------------------------------------------------------------------------------
# migrations: append only, never edit a released one
# ---------------------------------------------------------------------------------------------

def _migration_1(schema: "Schema") -> None:
    """Every table of docs/architecture.md."""
    tables = {
        "settings": ({"name": str, "value": str, "encrypted": int}, "name"),
        "contacts": ({"e164": str, "object": str, "record_id": str, "company": str, "person": str,
                      "record_url": str, "last_modified": str, "fetched_at": str}, "e164"),
        "no_match": ({"e164": str, "until": str}, "e164"),
        "api_usage": ({"day": str, "own_calls": int, "org_used": int, "org_max": int,
                       "updated_at": str, "by_kind": str}, "day"),
        "error_log": ({"id": int, "first_at": str, "last_at": str, "integration": str,
                       "operation": str, "code": str, "message": str, "detail": str,
                       "call_id": str, "count": int, "open": int}, "id"),
        "calls": ({"call_id": str, "direction": str, "remote_number": str, "e164": str,
                   "display_number": str, "local_number": str, "agent_id": str, "started_at": str,
                   "ended_at": str, "answered": int, "duration_seconds": float, "status": str,
                   "label": str, "company": str, "person": str, "object": str, "record_id": str,
                   "record_url": str, "recorded_at": str, "registered_at": str}, "call_id"),
        "registration_queue": ({"e164": str, "day": str, "queued_at": str, "attempts": int,
                                "last_error": str}, "e164"),
        "job_runs": ({"job": str, "day": str, "started_at": str, "finished_at": str,
                      "holder": str, "lease_until": str}, "job"),
        "refetch_locks": ({"e164": str, "at": str}, "e164"),
        "outbox": ({"id": int, "created_at": str, "recipients": str, "subject": str, "body": str,
                    "attempts": int, "next_attempt_at": str, "sent_at": str, "last_error": str}, "id"),
        "alert_state": ({"kind": str, "started_at": str, "last_mail_at": str,
                         "recovered_at": str}, "kind"),
        "admin_users": ({"username": str, "password_hash": str, "created_at": str}, "username"),
        "login_attempts": ({"key": str, "failures": int, "last_at": str}, "key"),
    }
    defaults = {
        "settings": {"encrypted": 0},
        "api_usage": {"own_calls": 0, "by_kind": "{}"},
        "error_log": {"count": 1, "open": 1},
        "registration_queue": {"attempts": 0},
        "outbox": {"attempts": 0},
        "login_attempts": {"failures": 0},
    }
    for name, (columns, pk) in tables.items():
        schema.create_table(name, columns, pk, defaults.get(name))
    indexes = [
        ("error_log", ["last_at"]), ("error_log", ["code"]),
        ("error_log", ["integration", "last_at"]),
        ("calls", ["started_at"]), ("calls", ["e164"]), ("calls", ["registered_at"]),
        ("contacts", ["fetched_at"]),
        ("no_match", ["until"]),
        ("registration_queue", ["day"]),
        ("outbox", ["sent_at", "next_attempt_at"]),
    ]
    for table, columns in indexes:
        schema.create_index(table, columns)
    # one open incident per (integration, operation, code): repeats raise its count
    schema.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS error_log_open_incident "
        "ON error_log (integration, operation, code) WHERE open = 1"
    )


def _migration_2(schema: "Schema") -> None:
    """The phone index of the org (owner: core/index.py, see docs/index.md)."""
    tables = {
        # one row per indexed record: what the screen shows and what picks the winner
        "index_records": ({"record_id": str, "object": str, "company": str, "person": str,
                           "account_id": str, "is_person_account": int, "last_modified": str,
                           "system_modstamp": str, "generation": int}, "record_id"),
        # one row per (record, phone field, number the field holds), with the record's object
        # priority and LastModifiedDate, so the winner for a number is the first row of an index
        "index_phones": ({"record_id": str, "field": str, "e164": str, "raw": str,
                          "priority": int, "last_modified": str},
                         ("record_id", "field", "e164")),
        # one row per object (its sync) and one, "_index", for the whole index
        "index_sync": ({"scope": str, "phase": str, "resume_after": str, "high_water": str,
                        "generation": int, "full_started_at": str, "last_full_at": str,
                        "last_round_at": str, "records": int, "api_calls": int,
                        "last_error": str, "last_error_at": str, "org_id": str,
                        "instance_url": str, "built_at": str, "method": str, "bulk_job": str,
                        "bulk_locator": str, "connected_as": str}, "scope"),
    }
    defaults = {"index_records": {"generation": 0, "is_person_account": 0},
                "index_sync": {"generation": 0, "records": 0, "api_calls": 0}}
    for name, (columns, pk) in tables.items():
        schema.create_table(name, columns, pk, defaults.get(name))
    schema.execute("CREATE INDEX IF NOT EXISTS idx_index_phones_winner ON index_phones "
               "(e164, priority, last_modified DESC, record_id)")
    for table, columns in [("index_records", ["account_id"]),
                           ("index_records", ["object", "generation"])]:
        schema.create_index(table, columns)


def _migration_3(schema: "Schema") -> None:
    """Calls logged as Salesforce Tasks (owners: core/agents.py, core/activity.py; docs/activity.md)."""
    schema.create_table("agent_users", {"agent_id": str, "user_id": str, "user_name": str,
                                        "username": str, "email": str, "mapped_at": str}, "agent_id")
    # one row per call to log: the names its screen showed, its state, the claim of the process
    # sending it, the Task it became
    schema.create_table(
        "task_outbox",
        {"call_id": str, "company": str, "person": str, "state": str, "created_at": str, "updated_at": str, "attempts": int,
         "next_attempt_at": str, "claimed_by": str, "claimed_until": str, "uncertain": int,
         "owner_fallback": int, "task_id": str, "task_url": str, "error_code": str,
         "error_message": str, "logged_at": str},
        "call_id", {"attempts": 0, "uncertain": 0, "owner_fallback": 0})
    schema.create_index("task_outbox", ["state", "next_attempt_at"])


def _migration_4(schema: "Schema") -> None:
    """The admin's session generation (owner: core/accounts.py): a session opened under an older
    generation is over (logout, a password change or reset moves to the next one)."""
    schema.add_column("admin_users", "session_generation", int, default=0)


def _migration_5(schema: "Schema") -> None:
    """The store's own facts (owner: core/store.py): the check value that tells whether a node's
    secret key is the one the stored secrets were encrypted with."""
    schema.create_table("store_meta", {"name": str, "value": str}, "name")


MIGRATIONS: list[Callable[["Schema"], None]] = [
    _migration_1, _migration_2, _migration_3, _migration_4, _migration_5]
STORE_META_VERSION = 5   # the migration that made store_meta


class Schema:
    """What a migration may ask of the database, in SQLite's words (through sqlite-utils)."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    def create_table(self, name: str, columns: dict, pk, defaults: dict | None = None) -> None:
        """Create the table unless it exists (sqlite-utils' ``create`` arguments)."""
        self.db[name].create(columns, pk=pk, defaults=defaults, if_not_exists=True)

    def create_index(self, table: str, columns: list[str]) -> None:
        """Create the index ``idx_<table>_<columns>`` unless it exists."""
        self.db[table].create_index(columns, if_not_exists=True)

    def add_column(self, table: str, column: str, kind: type, default) -> None:
        """Add a NOT NULL column with ``default`` unless the table has it."""
        if column not in self.db[table].columns_dict:
            self.db[table].add_column(column, kind, not_null_default=default)

    def execute(self, sql: str) -> None:
        """Run a DDL statement both engines understand."""
        self.db.execute(sql)



# ---------------------------------------------------------------------------------------------
# the store
# ---------------------------------------------------------------------------------------------

class ImmediateDatabase(sqlite_utils.Database):
    """A ``sqlite_utils.Database`` whose outermost transactions take the write lock at BEGIN.

    sqlite-utils opens its write transactions (``insert``, ``upsert``... through ``atomic()``)
    with a deferred ``BEGIN``; in WAL mode a deferred transaction that has read and then tries to
    write fails at once with "database is locked" when another connection committed meanwhile,
    whatever the busy timeout. ``BEGIN IMMEDIATE`` waits for the lock instead.
    """

    @contextlib.contextmanager
    def atomic(self) -> Iterator["ImmediateDatabase"]:
        """sqlite-utils' ``atomic()``, with ``BEGIN IMMEDIATE`` for the outermost transaction."""
        if self.conn.in_transaction:
            with super().atomic():
                yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self.rollback()
                raise

    def begin(self) -> None:
        """Start a transaction with ``BEGIN IMMEDIATE`` (see :meth:`atomic`)."""
        self.execute("BEGIN IMMEDIATE")


# Store's default database: the one the folder names (its database_url, or its SQLite file)
FOLDERS_DATABASE = object()


class Store:
    """The instance folder ``home``: database, secret key and table helpers.

    Creating a Store creates the folder if missing, opens the database (SQLite in the folder, or
    the PostgreSQL database of :func:`database_url`), applies pending migrations and checks the
    secret key against the database. Safe to share between threads; on SQLite each thread (and
    process) gets its own connection, on PostgreSQL each process its own connection pool.

    :raises StoreError: when the folder cannot be created or the database cannot be opened
    :raises WrongSecretKey: the stored secrets were encrypted with another key than this node's
    :raises MissingSecretKey: the database holds secrets and this node has no key
    """

    def __init__(self, home: str | os.PathLike, url: str | None | object = FOLDERS_DATABASE):
        """``url``: the PostgreSQL database, or None for the folder's SQLite file; by default the
        folder's own choice (:func:`database_url`)."""
        self.home = pathlib.Path(home).expanduser().absolute()
        self.db_path = self.home / DB_NAME
        self.key_path = self.home / KEY_NAME
        # call history, the index and the admin's password hash are nobody else's business: a
        # new folder is 0700, a new database 0600 (SQLite gives its WAL and shm files its mode)
        try:
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the instance folder {self.home}: {exc}") from exc
        self.url = database_url(self.home) if url is FOLDERS_DATABASE else url
        self.backend = "postgresql" if self.url else "sqlite"
        if self.backend == "sqlite":
            try:
                os.close(os.open(self.db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(f"Cannot create the database {self.db_path}: {exc}") from exc
        self._local = threading.local()
        self._postgres = None
        self._postgres_pid = None
        self._disposed_in = None
        self._fernet: Fernet | None = None
        self._fernet_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._migrate()
        self._check_secret_key()
        _warn_if_readable_by_others(self.home)

    def __repr__(self) -> str:
        return f"<Store {self.home} ({self.backend})>"

    @property
    def where(self) -> str:
        """Where the data lives, for people: the SQLite file, or the PostgreSQL URL without its
        password."""
        if self.backend == "sqlite":
            return str(self.db_path)
        return _postgres().url_without_password(self.url)

    # -- connections ---------------------------------------------------------------------------

    @property
    def db(self):
        """This thread's ``sqlite_utils.Database`` (opened on first use), or this process's
        :class:`core.postgres.PostgresDatabase`: both run ``execute``/``query`` with SQLite
        placeholders."""
        if self.backend == "postgresql":
            return self._postgres_database()
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.db = self._open()
            local.pid = os.getpid()
        return local.db

    @property
    def conn(self):
        """What runs one statement: this thread's raw ``sqlite3.Connection`` (the one behind
        :attr:`db`), or the PostgreSQL database itself."""
        return self.db.conn

    def _open(self) -> sqlite_utils.Database:
        """Open a connection in driver autocommit mode: transactions are always explicit."""
        conn = sqlite3.connect(
            str(self.db_path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return ImmediateDatabase(conn, execute_plugins=False)

    def _postgres_database(self):
        """This process's pool (a forked child opens its own: sockets are not shared)."""
        if self._postgres is None or self._postgres_pid != os.getpid():
            with self._pool_lock:
                if self._disposed_in == os.getpid():
                    # a thread that outlived its runtime must not open a pool nobody closes
                    raise StoreError(f"The store of {self.where} was closed in this process.")
                if self._postgres is None or self._postgres_pid != os.getpid():
                    try:
                        self._postgres = _postgres().PostgresDatabase(self.url)
                    except StoreError:
                        raise
                    except Exception as exc:
                        raise StoreError(f"Cannot open the database {self.where}: {exc}") from exc
                    self._postgres_pid = os.getpid()
        return self._postgres

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends); on PostgreSQL
        the pool stays open for the other threads (see :meth:`dispose`)."""
        local = self._local
        if getattr(local, "pid", None) == os.getpid():
            local.db.close()
        local.__dict__.clear()

    def dispose(self) -> None:
        """Close every connection of this process (the PostgreSQL pool included). On PostgreSQL
        the Store is done with in this process then: using it raises StoreError (open a new one)."""
        self.close()
        if self.backend == "postgresql":
            with self._pool_lock:
                self._disposed_in = os.getpid()
                if self._postgres is not None and self._postgres_pid == os.getpid():
                    self._postgres.close()
                self._postgres = None

    def table_names(self) -> list[str]:
        """The tables of the database, by name."""
        if self.backend == "postgresql":
            return self.db.table_names()
        return sorted(self.db.table_names())

    def column_names(self, table: str) -> list[str]:
        """The columns of ``table`` in their order (empty when there is no such table)."""
        if self.backend == "sqlite":
            return [column.name for column in self.db[table].columns]
        return [row[0] for row in self.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = ? ORDER BY ordinal_position", [table])]

    @property
    def skip_locked(self) -> str:
        """What ends a SELECT that claims rows other nodes may be claiming at the same moment:
        ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; nothing on SQLite, whose one writer at a time
        (``BEGIN IMMEDIATE``) already keeps claims apart."""
        return " FOR UPDATE SKIP LOCKED" if self.backend == "postgresql" else ""

    def _enable_wal(self) -> None:
        conn = self.conn
        for attempt in range(200):
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                time.sleep(0.05)
        raise StoreError(f"Cannot switch {self.db_path} to WAL mode: the database stays locked.")

    # -- migrations ----------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        """The applied migration count (SQLite: ``PRAGMA user_version``; PostgreSQL: the
        ``schema_version`` table)."""
        if self.backend == "sqlite":
            return self.conn.execute("PRAGMA user_version").fetchone()[0]
        row = self.conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return row[0] or 0

    def _set_schema_version(self, db, version: int) -> None:
        if self.backend == "sqlite":
            db.execute(f"PRAGMA user_version = {int(version)}")
        else:
            db.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                       [version, now_iso()])

    def _schema(self, db) -> Schema:
        if self.backend == "sqlite":
            return Schema(db)
        return _postgres().PostgresSchema(db)

    def pending_migrations(self) -> list[int]:
        """The versions of the migrations this database has not had yet."""
        return list(range(self.schema_version + 1, len(MIGRATIONS) + 1))

    @property
    def unavailable(self) -> tuple[type[BaseException], ...]:
        """The errors that mean the database cannot take a write now (locked, full, read-only,
        server gone): a caller that must not lose a call retries on them."""
        if self.backend == "sqlite":
            return (sqlite3.OperationalError,)
        return (sqlite3.OperationalError, StoreError, *_postgres().UNAVAILABLE)

    def _migrate(self) -> None:
        """Apply every pending migration, each once, in its own serialized transaction (two
        processes or nodes starting together never both migrate)."""
        try:
            if self.backend == "sqlite":
                self._enable_wal()
            else:
                with self.transaction():
                    self.db.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                                    "version BIGINT PRIMARY KEY, applied_at TEXT)")
            for version, migration in enumerate(MIGRATIONS, start=1):
                if self.schema_version >= version:
                    continue
                with self.transaction() as db:
                    # re-read under the write lock: another process may have just migrated
                    if self.schema_version < version:
                        migration(self._schema(db))
                        self._set_schema_version(db, version)
        except (sqlite3.DatabaseError, *self.unavailable) as exc:
            raise StoreError(f"Cannot open the database {self.where}: {exc}") from exc
        if self.schema_version > len(MIGRATIONS):
            raise StoreError(f"The database {self.where} was made by a newer sfcti (schema "
                             f"{self.schema_version}, this one knows {len(MIGRATIONS)}): upgrade "
                             "this node.")

    # -- transactions --------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, serialized: bool = True) -> Iterator[sqlite_utils.Database]:
        """``with store.transaction() as db:`` runs the block in one transaction.

        SQLite: ``BEGIN IMMEDIATE`` ... ``COMMIT``, the write lock taken at the start (waiting up
        to the busy timeout). PostgreSQL: with ``serialized`` (the default) the block first waits
        for the store-wide writer lock, an advisory lock every node shares; so read-then-write
        blocks are safe across threads, processes and nodes on both. ``serialized=False`` is for
        blocks whose statements are safe on their own (an insert keyed on its primary key, a
        claim with :attr:`skip_locked`), which then run beside each other on PostgreSQL.

        Any exception rolls back and propagates. Nested use joins the outer transaction through
        a savepoint.

        :raises sqlite3.OperationalError: "database is locked" after the busy timeout
        """
        if self.backend == "postgresql":
            with self.db.atomic(serialized=serialized) as db:
                yield db
            return
        with self.db.atomic() as db:
            yield db

    def hold_until_commit(self, name: str) -> None:
        """Inside a transaction: wait for the lock ``name`` and hold it until the transaction
        ends, on every node (a transaction-level advisory lock). For blocks that run without the
        store-wide writer lock but must not interleave with the other writers of the same name.
        SQLite's transactions have the whole database to themselves already: nothing to do."""
        if self.backend == "postgresql":
            self.db.execute("SELECT pg_advisory_xact_lock(?)", [_postgres().lock_key(name)])

    @contextlib.contextmanager
    def named_lock(self, name: str) -> Iterator[None]:
        """Hold the lock ``name`` for the block, waiting for it: across the nodes of a PostgreSQL
        store (an advisory lock), across the processes of this machine on SQLite (a lock file in
        the instance folder). A process that dies lets it go."""
        if self.backend == "postgresql":
            with self.db.named_lock(name):
                yield
            return
        path = self.home / f".{name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- secrets -------------------------------------------------------------------------------

    @property
    def fernet(self) -> Fernet:
        """The Fernet of this node's key (``SFCTI_SECRET_KEY``, else ``secret.key``, created on
        first use when the database holds no secrets yet).

        :raises InvalidSecretKey: when the key is not a Fernet key
        """
        if self._fernet is None:
            with self._fernet_lock:
                if self._fernet is None:
                    fernet = _fernet(self._read_or_create_key())
                    self._remember_key(fernet)
                    self._fernet = fernet
        return self._fernet

    def _stored_key_check(self) -> str | None:
        if self.schema_version < STORE_META_VERSION:   # a schema from before store_meta
            return None
        row = self.conn.execute("SELECT value FROM store_meta WHERE name = ?",
                                [KEY_CHECK]).fetchone()
        return row[0] if row else None

    def _remember_key(self, fernet: Fernet) -> None:
        """Store the check value of the key the secrets are encrypted with (the first key used
        wins; a node that raced with another key is refused)."""
        if self._stored_key_check() is None:
            with self.transaction(serialized=False) as db:
                db.execute("INSERT INTO store_meta (name, value) VALUES (?, ?) "
                           "ON CONFLICT (name) DO NOTHING",
                           [KEY_CHECK, fernet.encrypt(KEY_CHECK_PLAINTEXT).decode("ascii")])
        self._verify_key(fernet, self._stored_key_check())

    def _verify_key(self, fernet: Fernet, check: str) -> None:
        try:
            fernet.decrypt(check.encode("ascii"))
        except (InvalidToken, ValueError) as exc:
            raise WrongSecretKey(self.where, self._key_source()) from exc

    def _check_secret_key(self) -> None:
        """Refuse to open when the database holds secrets and this node's key cannot read them."""
        check = self._stored_key_check()
        if check is None:
            return
        try:
            key = self._read_key()
        except FileNotFoundError:
            raise MissingSecretKey(self.where, self.key_path) from None
        self._fernet = _fernet(key)
        self._verify_key(self._fernet, check)

    def _key_source(self) -> str:
        return ENV_SECRET_KEY if os.environ.get(ENV_SECRET_KEY) else str(self.key_path)

    def _read_or_create_key(self) -> bytes:
        """This node's key; ``secret.key`` is created first when there is none, atomically and
        with mode 0600.

        The key is written to a private temporary file and hard-linked into place: the link
        fails if another process won the race, and then the winner's (complete) key is read.
        """
        try:
            return self._read_key()
        except FileNotFoundError:
            pass
        tmp = self.home / f".{KEY_NAME}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, self.key_path)
            except FileExistsError:
                pass
            except OSError:  # file systems without hard links: exclusive create instead
                self._create_key_exclusive(tmp.read_bytes())
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return self._read_key()

    def _create_key_exclusive(self, key: bytes) -> None:
        try:
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        with os.fdopen(fd, "wb") as f:
            f.write(key)

    def _read_key(self) -> bytes:
        """The key bytes (``SFCTI_SECRET_KEY`` first); waits briefly for a key file another
        process is still writing.

        :raises FileNotFoundError: no key in the environment nor in the folder
        """
        from_env = os.environ.get(ENV_SECRET_KEY, "").strip()
        if from_env:
            return from_env.encode("ascii", "replace")
        for attempt in range(100):
            key = self.key_path.read_bytes().strip()
            if key:
                return key
            time.sleep(0.02)
        raise InvalidSecretKey()

    def encrypt(self, plaintext: str) -> str:
        """``plaintext`` encrypted with the instance key (a Fernet token, ASCII)."""
        return self.fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext of a token made by :meth:`encrypt`.

        :raises SecretNotDecryptable: when the token is damaged or was made with another key
        """
        try:
            return self.fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError) as exc:
            raise SecretNotDecryptable() from exc

    # -- contacts ------------------------------------------------------------------------------

    def upsert_contact(self, e164: str, object: str | None = None, record_id: str | None = None,
                       company: str | None = None, person: str | None = None,
                       record_url: str | None = None, last_modified: str | None = None,
                       fetched_at: str | None = None) -> dict:
        """Insert or replace the registered contact for ``e164``; returns the stored row.

        ``fetched_at`` defaults to now. Registering a number also forgets its no-match entry.
        """
        row = {"e164": e164, "object": object, "record_id": record_id, "company": company,
               "person": person, "record_url": record_url, "last_modified": last_modified,
               "fetched_at": fetched_at or now_iso()}
        with self.transaction() as db:
            db.execute(
                "INSERT INTO contacts (e164, object, record_id, company, person, record_url, "
                "last_modified, fetched_at) VALUES (:e164, :object, :record_id, :company, "
                ":person, :record_url, :last_modified, :fetched_at) ON CONFLICT (e164) DO UPDATE "
                "SET object = excluded.object, record_id = excluded.record_id, "
                "company = excluded.company, person = excluded.person, "
                "record_url = excluded.record_url, last_modified = excluded.last_modified, "
                "fetched_at = excluded.fetched_at", row,
            )
            db.execute("DELETE FROM no_match WHERE e164 = ?", [e164])
        return row

    def get_contact(self, e164: str) -> dict | None:
        """The registered contact for ``e164`` as a dict, or None. Hot path: one indexed read."""
        cursor = self.conn.execute(
            "SELECT e164, object, record_id, company, person, record_url, last_modified, "
            "fetched_at FROM contacts WHERE e164 = ?", (e164,),
        )
        row = cursor.fetchone()
        return dict(zip(CONTACT_COLUMNS, row)) if row else None

    def _contact_filter(self, search: str | None) -> tuple[str, dict]:
        return substring_filter(search, ("e164", "company", "person"))

    def list_contacts(self, limit: int = 50, offset: int = 0, search: str | None = None) -> list[dict]:
        """Registered contacts, most recently fetched first; ``search`` matches number, company
        or person (substring, LIKE wildcards taken literally)."""
        where, params = self._contact_filter(search)
        params.update(limit=int(limit), offset=int(offset))
        sql = (f"SELECT * FROM contacts{where} ORDER BY fetched_at DESC, e164 "
               "LIMIT :limit OFFSET :offset")
        return list(self.db.query(sql, params))

    def count_contacts(self, search: str | None = None) -> int:
        """How many contacts :meth:`list_contacts` would page through."""
        where, params = self._contact_filter(search)
        return self.conn.execute(f"SELECT count(*) FROM contacts{where}", params).fetchone()[0]

    def registered_numbers(self, numbers: list[str]) -> set[str]:
        """Those of ``numbers`` that have a registered contact."""
        found: set[str] = set()
        numbers = list(numbers)
        for start in range(0, len(numbers), 500):  # under SQLite's bound-parameter limit
            chunk = numbers[start:start + 500]
            found.update(r[0] for r in self.conn.execute(
                f"SELECT e164 FROM contacts WHERE e164 IN ({', '.join('?' * len(chunk))})", chunk))
        return found

    def forget_contacts_linked_elsewhere(self, url_prefix: str, keep_prefix: str) -> int:
        """Remove the contacts whose record link starts with ``url_prefix`` but not with
        ``keep_prefix`` (links to a server that is gone); returns how many."""
        with self.transaction() as db:
            return db.execute(
                "DELETE FROM contacts WHERE record_url LIKE ? ESCAPE '\\' "
                "AND record_url NOT LIKE ? ESCAPE '\\'",
                [escape_like(url_prefix) + "%", escape_like(keep_prefix) + "%"]).rowcount

    def delete_contact(self, e164: str) -> bool:
        """Remove the registered contact; True when there was one."""
        with self.transaction() as db:
            return db.execute("DELETE FROM contacts WHERE e164 = ?", [e164]).rowcount > 0

    # -- no-match cache ------------------------------------------------------------------------

    def remember_no_match(self, e164: str, ttl_seconds: float) -> None:
        """Remember that ``e164`` matched nothing, for ``ttl_seconds`` (<= 0 remembers nothing)."""
        if ttl_seconds <= 0:
            return
        until = now_iso(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=ttl_seconds))
        with self.transaction() as db:
            db.execute("INSERT INTO no_match (e164, until) VALUES (?, ?) "
                       "ON CONFLICT (e164) DO UPDATE SET until = excluded.until", [e164, until])

    def is_remembered_no_match(self, e164: str) -> bool:
        """True while a remembered no-match for ``e164`` has not expired. Hot path."""
        row = self.conn.execute(
            "SELECT 1 FROM no_match WHERE e164 = ? AND until > ?", (e164, now_iso())
        ).fetchone()
        return row is not None

    def forget_no_match(self, e164: str | None = None) -> int:
        """Forget the no-match for ``e164`` (None: forget all expired ones); returns rows removed."""
        with self.transaction() as db:
            if e164 is None:
                return db.execute("DELETE FROM no_match WHERE until <= ?", [now_iso()]).rowcount
            return db.execute("DELETE FROM no_match WHERE e164 = ?", [e164]).rowcount

    # -- API usage -----------------------------------------------------------------------------

    def count_api_call(self, kind: str = "rest", n: int = 1) -> None:
        """Add ``n`` calls of ``kind`` to today's (UTC) count.

        ``own_calls`` counts what Salesforce counts against the daily limit: every kind but
        ``"login"``. ``by_kind`` keeps the breakdown (``{"rest": 12, "login": 1}``).
        """
        day, now = utc_day(), now_iso()
        own = 0 if kind == "login" else n
        with self.transaction() as db:
            row = db.execute("SELECT by_kind FROM api_usage WHERE day = ?", [day]).fetchone()
            by_kind = _json_dict(row[0] if row else None)
            by_kind[kind] = by_kind.get(kind, 0) + n
            db.execute(
                "INSERT INTO api_usage (day, own_calls, by_kind, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(day) DO UPDATE SET own_calls = coalesce(api_usage.own_calls, 0) + excluded.own_calls, "
                "by_kind = excluded.by_kind, updated_at = excluded.updated_at",
                [day, own, json.dumps(by_kind, sort_keys=True), now],
            )

    def record_org_usage(self, used: int, max: int) -> None:
        """Record the org-wide usage read from ``Sforce-Limit-Info`` (``api-usage=used/max``)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO api_usage (day, own_calls, org_used, org_max, updated_at) "
                "VALUES (?, 0, ?, ?, ?) ON CONFLICT(day) DO UPDATE SET org_used = excluded.org_used, "
                "org_max = excluded.org_max, updated_at = excluded.updated_at",
                [utc_day(), int(used), int(max), now_iso()],
            )

    def api_usage(self, day: str | dt.date | None = None) -> dict:
        """Usage for ``day`` (UTC, default today): ``{"day", "own_calls", "org_used", "org_max",
        "updated_at", "by_kind"}``; zeros and Nones when nothing was recorded."""
        day = (day.isoformat() if isinstance(day, dt.date) else day) or utc_day()
        row = self.conn.execute(
            "SELECT own_calls, org_used, org_max, updated_at, by_kind FROM api_usage WHERE day = ?",
            (day,),
        ).fetchone()
        if row is None:
            return {"day": day, "own_calls": 0, "org_used": None, "org_max": None,
                    "updated_at": None, "by_kind": {}}
        return {"day": day, "own_calls": row[0] or 0, "org_used": row[1], "org_max": row[2],
                "updated_at": row[3], "by_kind": _json_dict(row[4])}


def _postgres():
    """core.postgres, imported on first use: psycopg takes about 150 ms to import, which an
    instance on SQLite never needs to pay."""
    return importlib.import_module("core.postgres")


def _fernet(key: bytes) -> Fernet:
    try:
        return Fernet(key)
    except ValueError as exc:
        raise InvalidSecretKey() from exc


def _json_dict(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------------------------
# file modes: instances made by older versions were 0755/0644
# ---------------------------------------------------------------------------------------------

def readable_by_others(home: str | os.PathLike) -> list[str]:
    """The instance folder and private files (:data:`PRIVATE_FILES`) that give other users any
    access, each as ``"path (mode)"``; empty when the folder is 0700 and the files 0600 or
    narrower (files that do not exist are left out)."""
    home = pathlib.Path(home)
    wide = []
    for path in (home, *(home / name for name in PRIVATE_FILES)):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            wide.append(f"{path} ({mode:04o})")
    return wide


def permissions_fix(home: str | os.PathLike) -> str:
    """The shell commands that make the instance folder ``home`` private again."""
    folder = shlex.quote(str(home))
    return f"chmod 700 {folder}; chmod 600 {folder}/{DB_NAME}* {folder}/{KEY_NAME}"


_MODES_WARNED: set[pathlib.Path] = set()


def _warn_if_readable_by_others(home: pathlib.Path) -> None:
    """Log once per process and folder when the instance is open to other users."""
    if home in _MODES_WARNED:
        return
    wide = readable_by_others(home)
    if wide:
        _MODES_WARNED.add(home)
        log.warning("the instance folder is open to other users of this machine (call history, "
                    "the admin's password hash and the key of the stored secrets): %s. "
                    "Fix: %s", ", ".join(wide), permissions_fix(home))


_SHARED: dict[pathlib.Path, Store] = {}
_SHARED_LOCK = threading.Lock()


ENV_HOME = "SFCTI_HOME"
DEFAULT_HOME = "instance"


def home_path(home: str | os.PathLike | None = None) -> pathlib.Path:
    """The instance folder: ``home``, else ``$SFCTI_HOME``, else ``./instance``, made absolute.
    The one place that decides it (plugin, admin and CLI)."""
    return pathlib.Path(home or os.environ.get(ENV_HOME) or DEFAULT_HOME).expanduser().absolute()


def forget_store(home: str | os.PathLike | None = None) -> None:
    """Close the shared Store of ``home`` (:func:`open_store`) with every connection of this
    process, its PostgreSQL pool included; the next :func:`open_store` opens it afresh."""
    with _SHARED_LOCK:
        store = _SHARED.pop(home_path(home), None)
    if store is not None:
        store.dispose()


def open_store(home: str | os.PathLike | None = None, create: bool = True) -> Store:
    """The shared Store of this process for the instance folder (:func:`home_path`).

    Opening a Store runs the migration check; long-lived callers (the plugin's hooks, the CLI)
    use this to open each instance folder once per process. With ``create`` False (read-only
    commands) a folder without a database is not turned into an instance.

    :raises InstanceNotFound: ``create`` is False and the folder holds no database (neither a
        SQLite file nor a database URL)
    """
    path = home_path(home)
    if not create and not (path / DB_NAME).is_file() and database_url(path) is None:
        raise InstanceNotFound(path)
    with _SHARED_LOCK:
        store = _SHARED.get(path)
        if store is None:
            store = _SHARED[path] = Store(path)
        return store
