"""PostgreSQL behind the store: a psycopg 3 connection pool that speaks the part of sqlite-utils'
``Database`` the owner modules use (``execute``, ``executemany``, ``query``, ``conn``).

The owner modules write one SQL text for both engines, with SQLite's placeholders (``?`` and
``:name``); :func:`pyformat` turns them into psycopg's. Every timestamp stays an ISO-8601 string and
every text column uses the "C" collation, so strings sort and compare byte by byte as in SQLite.

- Outside a transaction each statement borrows a pooled connection (autocommit) and gives it back
  with the rows already read (:class:`Result`).
- :meth:`PostgresDatabase.atomic` pins one connection to the thread for the block; statements in it
  (``store.conn`` included) run on that connection. The outermost block takes the store-wide writer
  lock (a transaction-level advisory lock) unless told not to, which gives read-then-write blocks
  the guarantee SQLite's ``BEGIN IMMEDIATE`` gives them.
- :meth:`PostgresDatabase.named_lock` is a session-level advisory lock held across nodes for the
  length of a block (the OAuth refresh, for one).
- A server or database that cannot be reached is said at once, as ``core.store.StoreError``
  naming where (never the password): when the pool opens, and while a statement waits for a
  connection (the server is probed every :data:`PROBE_SECONDS`), not after the pool's timeout.
- PostgreSQL's text cannot hold NUL: a NUL in a text parameter is written as U+FFFD, the
  character the admin and the CLI show it as anyway. Call ids, the history's key, never get
  here with one: core.history refuses them on both engines.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import threading
import time
import weakref
from typing import Any, Iterator

import psycopg
import psycopg_pool
from psycopg.adapt import Dumper
from psycopg.pq import TransactionStatus
from psycopg.types.string import StrDumperUnknown

from core.store import StoreError

# advisory-lock key of the store-wide writer lock (any 64-bit number no other lock uses)
WRITER_LOCK = 0x5F_C7_1D_B0_00_00_00_01
POOL_MIN, POOL_MAX = 1, 16
POOL_TIMEOUT_SECONDS = 30.0    # the longest wait for a free connection while the server answers
PROBE_SECONDS = 2.0            # how often a wait for a connection checks the server still answers
CONNECT_TIMEOUT_SECONDS = 5    # one connection attempt (an unreachable host)

# what tells a pooled connection is gone or the server is unreachable: the callers that must not
# lose a call retry on these, as on SQLite's "database is locked"
UNAVAILABLE = (psycopg.OperationalError, psycopg_pool.PoolTimeout)

_PLACEHOLDERS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|::|:([A-Za-z_]\w*)|\?|%""")


@functools.lru_cache(maxsize=4096)
def pyformat(sql: str) -> str:
    """``sql`` with SQLite's placeholders (``?``, ``:name``) written as psycopg's (``%s``,
    ``%(name)s``) and a literal ``%`` doubled; quoted strings, identifiers and ``::`` casts are
    left as they are."""
    def replace(match: re.Match) -> str:
        token = match.group(0)
        if match.group(1):
            return f"%({match.group(1)})s"
        return {"?": "%s", "%": "%%"}.get(token, token)
    return _PLACEHOLDERS.sub(replace, sql)


def understood(url: str) -> bool:
    """Whether libpq can read ``url`` as connection parameters."""
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return False
    return True


def url_without_password(url: str) -> str:
    """``url`` with its password (in the user part or the query) shown as ``***``."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    shown = ", ".join(f"{k}={'***' if k == 'password' else v}" for k, v in sorted(info.items()))
    return f"PostgreSQL ({shown})"


def lock_key(name: str) -> int:
    """The advisory-lock key (a signed 64-bit number) of the lock called ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


class _BoolAsInteger(Dumper):
    """Python's True/False as 1/0: the flags are INTEGER columns, as in SQLite."""
    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


# what a NUL in a text parameter is stored as: PostgreSQL's text cannot hold NUL, and this is the
# character the admin and the CLI show an unprintable one as (core.display.MARKER)
NUL_STORED_AS = "\ufffd"


class _TextWithoutNul(StrDumperUnknown):
    """Python text as PostgreSQL text, a NUL written as :data:`NUL_STORED_AS`: a name from
    Salesforce or a typed value holding one is stored instead of failing the whole write. (The
    call id, a key, is refused before it gets here: core.history.exact_call_id.)"""

    def dump(self, obj: str):
        return super().dump(obj.replace("\x00", NUL_STORED_AS) if "\x00" in obj else obj)


def _configure(conn: psycopg.Connection) -> None:
    conn.adapters.register_dumper(bool, _BoolAsInteger)
    conn.adapters.register_dumper(str, _TextWithoutNul)


class Result:
    """The outcome of one statement, its rows already read (the connection is back in the pool):
    ``fetchone``, ``fetchall``, iteration, ``rowcount`` and ``description`` as a DB-API cursor."""

    def __init__(self, cursor: psycopg.Cursor):
        self.description = cursor.description
        self.rowcount = cursor.rowcount
        self._rows = cursor.fetchall() if cursor.description else []
        self._next = 0

    def fetchone(self) -> tuple | None:
        """The next row, or None."""
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[tuple]:
        """The rows not read yet."""
        rows, self._next = self._rows[self._next:], len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple]:
        while (row := self.fetchone()) is not None:
            yield row


class PostgresDatabase:
    """One PostgreSQL database through a connection pool, shared by the threads of a process.

    :raises psycopg.OperationalError: from any statement when the server cannot be reached
    """

    backend = "postgresql"

    def __init__(self, url: str, min_size: int = POOL_MIN, max_size: int = POOL_MAX):
        self.url = url
        self.where = url_without_password(url)
        self._unreachable: str | None = None    # why the server cannot be reached, while so
        self._next_probe = 0.0
        self._probe_lock = threading.Lock()
        # first one connection of its own: a database that is gone or a server that does not
        # answer is said at once, not after the pool has retried for its whole timeout
        self.probe()
        self.pool = psycopg_pool.ConnectionPool(
            url, min_size=min_size, max_size=max_size,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
            configure=_configure, timeout=POOL_TIMEOUT_SECONDS, open=False, name="sfcti")
        try:
            self.pool.open(wait=True, timeout=POOL_TIMEOUT_SECONDS)
        except BaseException:
            self.pool.close()
            raise
        self._local = threading.local()
        _OPEN.add(self)

    def probe(self) -> None:
        """Connect once, outside the pool, and hang up.

        :raises core.store.StoreError: the server or the database cannot be reached, naming
            where (without the password) and why
        """
        try:
            psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            self._unreachable = f"Cannot reach the database {self.where}: {reason}"
            raise StoreError(self._unreachable) from None
        self._unreachable = None

    def _fail_fast_while_unreachable(self) -> None:
        """While the server is known to be out of reach, fail at once (a ringing call must not
        wait for it), probing it again at most every :data:`PROBE_SECONDS`.

        :raises core.store.StoreError: the server was out of reach, and still is or has not
            been probed again yet
        """
        if self._unreachable is None:
            return
        with self._probe_lock:
            if self._unreachable is None:
                return
            if time.monotonic() < self._next_probe:
                raise StoreError(self._unreachable)
            self._next_probe = time.monotonic() + PROBE_SECONDS
        self.probe()

    @contextlib.contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection]:
        """A connection from the pool for the block. While none is free, the server is probed
        every :data:`PROBE_SECONDS`: a server or database that is gone fails the wait at once
        (StoreError) instead of after :data:`POOL_TIMEOUT_SECONDS`."""
        if self.pool.closed:
            raise StoreError(f"The connections to {self.where} were closed (the store was disposed).")
        self._fail_fast_while_unreachable()
        deadline = time.monotonic() + POOL_TIMEOUT_SECONDS
        while True:
            try:
                conn = self.pool.getconn(timeout=max(0.01, min(PROBE_SECONDS,
                                                               deadline - time.monotonic())))
                break
            except psycopg_pool.PoolTimeout:
                if time.monotonic() >= deadline:
                    raise
                with self._probe_lock:
                    self._next_probe = time.monotonic() + PROBE_SECONDS
                self.probe()
        try:
            with conn:   # a pooled connection: commits or rolls back, is not closed
                yield conn
        except psycopg.OperationalError:
            if conn.broken:   # the server went away: the next callers fail at once if it did
                with contextlib.suppress(StoreError):
                    self.probe()
            raise
        finally:
            self.pool.putconn(conn)

    @property
    def conn(self) -> "PostgresDatabase":
        """Itself: the owner modules' ``store.conn.execute(...)`` and ``db.conn.executemany``."""
        return self

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """The connection pinned to this thread by a transaction, else one from the pool."""
        pinned = getattr(self._local, "conn", None)
        if pinned is not None:
            yield pinned
            return
        with self._pooled() as conn:
            yield conn

    def execute(self, sql: str, params: Any = None) -> Result:
        """Run one statement (SQLite placeholders); its rows come back already read."""
        with self.connection() as conn:
            return Result(conn.execute(pyformat(sql), _params(params)))

    def executemany(self, sql: str, rows) -> None:
        """Run one statement for each parameter row."""
        with self.connection() as conn, conn.cursor() as cursor:
            cursor.executemany(pyformat(sql), [_params(row) for row in rows])

    def query(self, sql: str, params: Any = None) -> Iterator[dict]:
        """The rows of a SELECT as dicts (sqlite-utils' ``Database.query``)."""
        result = self.execute(sql, params)
        columns = [column.name for column in result.description or ()]
        for row in result:
            yield dict(zip(columns, row))

    @contextlib.contextmanager
    def atomic(self, serialized: bool = True) -> Iterator["PostgresDatabase"]:
        """A transaction on a connection pinned to this thread; nested blocks are savepoints.

        ``serialized``: the outermost block first waits for the store-wide writer lock.
        """
        with self.connection() as conn:
            outermost = conn.info.transaction_status == TransactionStatus.IDLE
            self._local.conn = conn
            try:
                with conn.transaction():
                    if outermost and serialized:
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", [WRITER_LOCK])
                    yield self
            finally:
                if outermost:
                    self._local.conn = None

    @contextlib.contextmanager
    def named_lock(self, name: str) -> Iterator[None]:
        """Hold the advisory lock ``name`` (waiting for it) on every node for the block; a node
        that dies lets it go with its connection."""
        key = lock_key(name)
        with self._pooled() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", [key])
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", [key])

    def table_names(self) -> list[str]:
        """The tables of the schema in use, by name."""
        return [row[0] for row in self.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE' ORDER BY table_name")]

    def close(self) -> None:
        """Close the pool and its connections."""
        _OPEN.discard(self)
        self.pool.close()


_OPEN: "weakref.WeakSet[PostgresDatabase]" = weakref.WeakSet()


def close_all(url: str | None = None) -> None:
    """Close every pool this process opened on ``url`` (on any database when None): a test's
    end, before its database is dropped."""
    for database in list(_OPEN):
        if url is None or database.url == url:
            database.close()


def _params(params: Any) -> Any:
    if params is None or isinstance(params, dict):
        return params
    return tuple(params)


# ---------------------------------------------------------------------------------------------
# schema: what a migration asks for, in PostgreSQL's words
# ---------------------------------------------------------------------------------------------

COLUMN_TYPES = {str: 'TEXT COLLATE "C"', int: "BIGINT", float: "DOUBLE PRECISION"}


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A number or text as an SQL literal (for DDL defaults)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def create_table_sql(name: str, columns: dict, pk, defaults: dict | None = None) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for sqlite-utils' ``create(columns, pk, defaults)`` arguments;
    an integer ``id`` primary key numbers itself, as SQLite's rowid does."""
    keys = (pk,) if isinstance(pk, str) else tuple(pk)
    defaults = defaults or {}
    parts = []
    for column, kind in columns.items():
        spec = f"{quote_identifier(column)} {COLUMN_TYPES[kind]}"
        if keys == (column,) and kind is int:
            spec += " GENERATED BY DEFAULT AS IDENTITY"
        elif column in keys:
            spec += " NOT NULL"
        if column in defaults:
            spec += f" DEFAULT {literal(defaults[column])}"
        parts.append(spec)
    parts.append(f"PRIMARY KEY ({', '.join(quote_identifier(k) for k in keys)})")
    return f"CREATE TABLE IF NOT EXISTS {quote_identifier(name)} ({', '.join(parts)})"


class PostgresSchema:
    """What a migration may ask of the database (see ``core.store.Schema``), in PostgreSQL's words."""

    def __init__(self, db: PostgresDatabase):
        self.db = db

    def create_table(self, name: str, columns: dict, pk, defaults: dict | None = None) -> None:
        """Create the table unless it exists (sqlite-utils' ``create`` arguments)."""
        self.db.execute(create_table_sql(name, columns, pk, defaults))

    def create_index(self, table: str, columns: list[str]) -> None:
        """Create the index ``idx_<table>_<columns>`` (sqlite-utils' name) unless it exists."""
        name = quote_identifier(f"idx_{table}_" + "_".join(columns))
        self.db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {quote_identifier(table)} "
                        f"({', '.join(map(quote_identifier, columns))})")

    def add_column(self, table: str, column: str, kind: type, default) -> None:
        """Add a NOT NULL column with ``default`` unless the table has it."""
        self.db.execute(f"ALTER TABLE {quote_identifier(table)} ADD COLUMN IF NOT EXISTS "
                        f"{quote_identifier(column)} {COLUMN_TYPES[kind]} NOT NULL "
                        f"DEFAULT {literal(default)}")

    def execute(self, sql: str) -> None:
        """Run a DDL statement both engines understand."""
        self.db.execute(sql)
