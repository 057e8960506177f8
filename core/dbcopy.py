"""Moving an instance's data between databases, table by table, without naming a table.

The tables and their columns come from the stores themselves (``store.table_names()``,
``store.column_names()``), so this module works for every table the migrations make and owns
none of them. What it does:

- :func:`applied_version`: the schema version a database has, read without migrating it (for
  ``sfcti db status``);
- :func:`open_sqlite` / :func:`open_postgres`: a Store on the folder's SQLite file, or on a given
  PostgreSQL URL with the folder's secret key, whatever ``SFCTI_DATABASE_URL`` says;
- :func:`copy_tables`: every row of every table from one store into another's empty tables (or
  emptied, with ``replace``) in one transaction, with ``COPY ... FROM STDIN``, identity
  sequences moved past the largest id;
- :func:`table_digest`: a row count and a sha256 over a table's rows, normalised to text with
  their types, computed the same way on either engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import os
import pathlib
import sqlite3
from typing import Iterator

from core.store import (DB_NAME, ENV_DATABASE_URL, MIGRATIONS, URL_FILE, InstanceNotFound,
                        Store, StoreError, checked_database_url, database_url)

CONNECT_TIMEOUT_SECONDS = 10
# SQLite's own bookkeeping tables (ANALYZE, AUTOINCREMENT) are no data of the instance
SQLITE_INTERNAL = "sqlite_"
# the table PostgreSQL stores keep their migration versions in (SQLite uses PRAGMA user_version)
VERSION_TABLE = "schema_version"


class CopyRefused(StoreError):
    "The copy was refused; nothing was written."


class CopyDiffers(CopyRefused):
    "The copy differs from the source (see above), so it was rolled back: nothing was written."

    def __init__(self, checks: list["TableCheck"]):
        self.checks = checks
        super().__init__()


def checked_url(url: str) -> str:
    """``url`` when it can name a PostgreSQL database, else a :class:`CopyRefused` saying why
    (the URL itself is never quoted: it may hold a password)."""
    url = (url or "").strip()
    if not url:
        raise CopyRefused("The target URL is empty: give --to postgresql://USER@HOST/DATABASE.")
    try:
        return checked_database_url(url, "given to --to")
    except StoreError as exc:
        raise CopyRefused(str(exc)) from None


def same_database(url_a: str, url_b: str) -> bool:
    """True when the two PostgreSQL URLs give the same connection parameters."""
    conninfo = _postgres().psycopg.conninfo.conninfo_to_dict
    try:
        return conninfo(url_a) == conninfo(url_b)
    except _postgres().psycopg.Error:  # a URL that cannot be parsed names no database
        return False


# ---------------------------------------------------------------------------------------------
# opening the two sides
# ---------------------------------------------------------------------------------------------

def open_postgres(home: pathlib.Path, url: str) -> Store:
    """A Store on the PostgreSQL database ``url`` with the folder's secret key (migrated)."""
    reachable(url)
    return Store(home, url=url)


@contextlib.contextmanager
def open_sqlite(home: pathlib.Path, allowed_url: str | None = None) -> Iterator[Store]:
    """A Store on the SQLite database of the instance folder ``home`` (migrated), closed after.

    A folder whose ``database_url`` file (or ``SFCTI_DATABASE_URL``) names ``allowed_url`` (the
    copy's own target, say after an earlier ``--switch``) is still read from its SQLite file.
    Any other database URL is refused.
    """
    if not (home / DB_NAME).is_file():
        raise InstanceNotFound(home)
    current = database_url(home)
    if current is not None and (allowed_url is None or not same_database(current, allowed_url)):
        raise CopyRefused(f"The instance folder {home} already uses another database (its "
                          f"{URL_FILE} file or {ENV_DATABASE_URL}): there is no SQLite "
                          "installation to move.")
    with _disposing(Store(home, url=None)) as store:
        yield store


@contextlib.contextmanager
def _disposing(store: Store) -> Iterator[Store]:
    try:
        yield store
    finally:
        store.dispose()


def applied_version(home: pathlib.Path) -> tuple[str, int | None]:
    """(backend, schema version) of the instance folder's database, read without migrating it;
    the version is None when the folder has no database yet.

    :raises StoreError: the database cannot be read
    """
    url = database_url(home)
    if url is None:
        path = home / DB_NAME
        if not path.is_file():
            return "sqlite", None
        try:
            with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as conn:
                return "sqlite", conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot read the database {path}: {exc}") from exc
    with _connection(url) as conn:
        if conn.execute("SELECT to_regclass(%s)", [VERSION_TABLE]).fetchone()[0] is None:
            return "postgresql", None
        return "postgresql", conn.execute(
            f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}").fetchone()[0]


def shown_url(url: str) -> str:
    """The PostgreSQL URL for people: without its password, or a placeholder when it cannot be
    parsed (the parser's message could quote part of it)."""
    try:
        return _postgres().url_without_password(url)
    except Exception:
        return "PostgreSQL (a URL that cannot be parsed)"


@contextlib.contextmanager
def _connection(url: str):
    """One direct connection to ``url``, failing fast (a pool would retry for 30 s) with a
    message that never holds the password."""
    psycopg = _postgres().psycopg
    where = shown_url(url)
    try:
        conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except psycopg.ProgrammingError:
        raise StoreError(f"Cannot open the database {where}: the URL is not a valid "
                         "PostgreSQL connection URL.") from None
    except psycopg.Error as exc:
        raise StoreError(f"Cannot open the database {where}: {_one_line(exc)}") from None
    try:
        with conn:
            yield conn
    except psycopg.Error as exc:
        raise StoreError(f"Cannot read the database {where}: {_one_line(exc)}") from None


def reachable(url: str) -> None:
    """Check that ``url`` answers, quickly and with a clear :class:`StoreError` if not."""
    with _connection(url) as conn:
        conn.execute("SELECT 1")


def known_version() -> int:
    """The schema version this sfcti makes (its migration count)."""
    return len(MIGRATIONS)


# ---------------------------------------------------------------------------------------------
# reading tables
# ---------------------------------------------------------------------------------------------

def data_tables(store: Store) -> list[str]:
    """The tables that hold the instance's data (not the engines' own bookkeeping)."""
    return [name for name in store.table_names()
            if not name.startswith(SQLITE_INTERNAL) and name != VERSION_TABLE]


def row_counts(store: Store) -> dict[str, int]:
    """Rows per data table."""
    return {table: store.conn.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()[0]
            for table in data_tables(store)}


def _select(table: str, columns: list[str]) -> str:
    return f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(table)}"


def normalised(value) -> str:
    """One value as text, the same on both engines: NULL, integers, floats (shortest repr),
    text and bytes are told apart by a prefix."""
    if value is None:
        return "N"
    if isinstance(value, bool):
        return f"i{int(value)}"
    if isinstance(value, int):
        return f"i{value}"
    if isinstance(value, float):
        return f"f{value!r}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "b" + bytes(value).hex()
    return "t" + str(value)


@dataclasses.dataclass(frozen=True)
class Digest:
    """A table's row count and checksum."""
    rows: int
    sha256: str


def table_digest(store: Store, table: str, columns: list[str]) -> Digest:
    """Row count and sha256 of ``table``'s ``columns``: each row's values :func:`normalised` and
    length-prefixed (no separator can be forged by a value), hashed; the sorted row hashes hashed
    again. Sorting in Python leaves both engines' collations out of it, and keeping only 32 bytes
    a row keeps a large table's check in memory."""
    rows = sorted(
        hashlib.sha256("".join(f"{len(text)}:{text}" for text in map(normalised, row))
                       .encode("utf-8", "surrogatepass")).digest()
        for row in store.conn.execute(_select(table, columns)))
    return Digest(len(rows), hashlib.sha256(b"".join(rows)).hexdigest())


# ---------------------------------------------------------------------------------------------
# the copy
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class TableCheck:
    """One table after the copy: rows and checksum on both sides."""
    table: str
    source: Digest
    target: Digest

    @property
    def equal(self) -> bool:
        """True when count and checksum agree."""
        return self.source == self.target


def plan(source: Store, target: Store) -> dict[str, list[str]]:
    """The tables to copy with their columns (the source's order); refused when the two schemas
    differ (versions, tables or columns)."""
    if source.schema_version != target.schema_version:
        raise CopyRefused(f"The schema versions differ (source {source.schema_version}, target "
                          f"{target.schema_version}): upgrade the older side first.")
    target_tables = set(data_tables(target))
    tables = {}
    for table in data_tables(source):
        columns = source.column_names(table)
        if table not in target_tables or set(target.column_names(table)) != set(columns):
            raise CopyRefused(f"The target's table {table} does not match the source's "
                              "(same schema version, other columns): nothing was copied.")
        tables[table] = columns
    return tables


def copy_tables(source: Store, target: Store, tables: dict[str, list[str]],
                replace: bool = False) -> tuple[dict[str, int], list["TableCheck"]]:
    """Copy every row of ``tables`` from ``source`` into ``target`` (PostgreSQL) and check both
    sides (:func:`verify`) in one transaction; returns the rows copied per table and the checks.

    The target's tables must be empty, or ``replace`` empties them first in the same transaction.
    Identity sequences are moved past the largest id copied.

    :raises CopyRefused: the target holds rows and ``replace`` is False, or PostgreSQL refused a
        value (nothing was written)
    :raises CopyDiffers: a table reads back otherwise than the source (nothing was written)
    """
    try:
        return _copy_all(source, target, tables, replace)
    except _postgres().psycopg.Error as exc:
        raise CopyRefused("The copy failed and was rolled back, nothing was written: "
                          f"{_one_line(exc)}") \
            from exc


def _copy_all(source: Store, target: Store, tables: dict[str, list[str]],
              replace: bool) -> tuple[dict[str, int], list["TableCheck"]]:
    copied: dict[str, int] = {}
    with target.transaction() as db, db.connection() as conn:
        filled = [table for table in tables
                  if conn.execute(f"SELECT 1 FROM {_quote(table)} LIMIT 1").fetchone()]
        if filled and not replace:
            raise CopyRefused("The target database already holds rows (in "
                              f"{', '.join(filled)}): nothing was copied. Use an empty database, "
                              "or --replace to empty those tables first.")
        for table in filled:
            conn.execute(f"DELETE FROM {_quote(table)}")
        for table, columns in tables.items():
            copied[table] = _copy_table(source, conn, table, columns)
        for table in tables:
            _move_identity_past_max(conn, table)
        # checked before the commit: a copy that differs is rolled back, not left half-right
        checks = verify(source, target, tables)
        if not all(check.equal for check in checks):
            raise CopyDiffers(checks)
    return copied, checks


def _copy_table(source: Store, conn, table: str, columns: list[str]) -> int:
    count = 0
    names = ", ".join(map(_quote, columns))
    with conn.cursor() as cursor, \
            cursor.copy(f"COPY {_quote(table)} ({names}) FROM STDIN") as copy:
        for row in source.conn.execute(_select(table, columns)):
            copy.write_row(row)
            count += 1
    return count


def _move_identity_past_max(conn, table: str) -> None:
    """Set each identity column's sequence so the next row gets the largest id + 1 (1 if none)."""
    identity = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s AND is_identity = 'YES'", [table]).fetchall()
    for (column,) in identity:
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence(%s, %s), "
            f"coalesce((SELECT max({_quote(column)}) FROM {_quote(table)}), 0) + 1, false)",
            [_quote(table), column])


def verify(source: Store, target: Store, tables: dict[str, list[str]]) -> list[TableCheck]:
    """Count and checksum of every table on both sides."""
    return [TableCheck(table, table_digest(source, table, columns),
                       table_digest(target, table, columns))
            for table, columns in tables.items()]


def write_database_url(home: pathlib.Path, url: str) -> pathlib.Path:
    """Write the folder's ``database_url`` file (mode 0600, replaced atomically)."""
    path = home / URL_FILE
    tmp = home / f".{URL_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(url + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def _one_line(exc: BaseException) -> str:
    """The driver's message on one line (psycopg's hints follow a line break and a tab)."""
    return " ".join(str(exc).split())


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _postgres():
    """core.postgres, imported on first use: psycopg is slow to import and SQLite needs none of it."""
    return importlib.import_module("core.postgres")
