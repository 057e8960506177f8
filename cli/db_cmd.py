"""`sfcti db status | migrate | copy --to URL`: the instance's database from a shell.

`status` says which database the instance uses (never a password), its schema version, the
migrations it still needs and the rows per table; `migrate` applies them; `copy` moves an
installation on SQLite to PostgreSQL with nothing lost, checked by row counts and checksums
(docs/database.md). Failures print one message and exit 1, never a traceback.
"""

from __future__ import annotations

import pathlib
import time

import click

from cli import echo, echo_json


def _home(ctx) -> pathlib.Path:
    return pathlib.Path(ctx.obj["home"])


def _require_instance(home: pathlib.Path) -> None:
    """Refuse a folder that holds no instance (neither a database URL nor an SQLite file)."""
    from core.store import DB_NAME, InstanceNotFound, database_url

    if database_url(home) is None and not (home / DB_NAME).is_file():
        raise InstanceNotFound(home)


def _status(home: pathlib.Path) -> dict:
    """What `sfcti db status` reports, as a dict."""
    from core import dbcopy
    from core.store import Store

    backend, version = dbcopy.applied_version(home)
    known = dbcopy.known_version()
    pending = list(range((version or 0) + 1, known + 1))
    status = {"backend": backend, "where": None, "schema_version": version or 0,
              "known_version": known, "pending_migrations": pending, "tables": None}
    if version is not None and not pending:
        store = Store(home)
        try:
            status["where"] = store.where
            status["tables"] = dbcopy.row_counts(store)
        finally:
            store.dispose()
    else:
        status["where"] = _where(home)
    return status


def _where(home: pathlib.Path) -> str:
    from core.dbcopy import shown_url
    from core.store import DB_NAME, database_url

    url = database_url(home)
    return shown_url(url) if url else str(home / DB_NAME)


def _print_status(status: dict) -> None:
    echo(f"Database: {status['where']} ({status['backend']})")
    pending = status["pending_migrations"]
    echo(f"Schema version: {status['schema_version']} (this sfcti: {status['known_version']})")
    if pending:
        echo(f"Pending migrations: {', '.join(map(str, pending))} — run `sfcti db migrate`.")
    else:
        echo("Pending migrations: none")
    if status["tables"] is not None:
        width = max(map(len, status["tables"]), default=5)
        echo("Rows per table:")
        for table, rows in status["tables"].items():
            echo(f"  {table.ljust(width)}  {rows:>10}")


def _print_checks(checks) -> None:
    width = max((len(check.table) for check in checks), default=5)
    echo(f"  {'table'.ljust(width)}  {'source rows':>11}  {'target rows':>11}  checksum (sha256)")
    for check in checks:
        mark = "ok" if check.equal else "DIFFERENT"
        target = "" if check.equal else f" / target {check.target.sha256[:16]}"
        echo(f"  {check.table.ljust(width)}  {check.source.rows:>11}  {check.target.rows:>11}  "
             f"{check.source.sha256[:16]}{target}  {mark}")


def register(group: click.Group) -> None:
    """Add `sfcti db` and its subcommands to the CLI group."""

    @group.group("db")
    def db_group():
        """The instance's database: status, migrations, the move from SQLite to PostgreSQL."""

    @db_group.command("status")
    @click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
    @click.pass_context
    def status_command(ctx, as_json):
        """Which database, its schema version, pending migrations and rows per table."""
        home = _home(ctx)
        _require_instance(home)
        status = _status(home)
        if as_json:
            echo_json(status, indent=2)
        else:
            _print_status(status)

    @db_group.command("migrate")
    @click.pass_context
    def migrate_command(ctx):
        """Apply the pending migrations (a new SQLite instance is created when there is none)."""
        from core import dbcopy
        from core.store import Store, StoreError

        home = _home(ctx)
        if not home.is_dir():
            raise StoreError(f"The instance folder {home} does not exist: check --home or "
                             "SFCTI_HOME (migrate makes the database of an existing folder).")
        before = dbcopy.applied_version(home)[1] or 0
        store = Store(home)
        try:
            after, where = store.schema_version, store.where
        finally:
            store.dispose()
        if after == before:
            echo(f"{where}: already up to date (schema version {after}).")
        else:
            echo(f"{where}: migrated from schema version {before} to {after}.")

    @db_group.command("copy")
    @click.option("--to", "to_url", required=True, metavar="postgresql://...",
                  help="The PostgreSQL database to copy into (migrated to this sfcti's schema).")
    @click.option("--replace", is_flag=True,
                  help="Empty the target's tables first (same transaction) if it holds rows.")
    @click.option("--switch", is_flag=True,
                  help="Then write the folder's database_url: the instance uses PostgreSQL.")
    @click.pass_context
    def copy_command(ctx, to_url, replace, switch):
        """Move this instance's SQLite data to PostgreSQL, every row, then check both sides
        (row counts and a checksum per table)."""
        from core import dbcopy

        home = _home(ctx)
        url = dbcopy.checked_url(to_url)
        started = time.monotonic()
        with dbcopy.open_sqlite(home, allowed_url=url) as source:
            target = dbcopy.open_postgres(home, url)
            try:
                echo(f"From {source.where} to {target.where}")
                tables = dbcopy.plan(source, target)
                copied = dbcopy.copy_tables(source, target, tables, replace=replace)
                seconds = time.monotonic() - started
                echo(f"Copied {sum(copied.values())} rows in {len(copied)} tables "
                     f"in {seconds:.1f} s; checking both sides:")
                checks = dbcopy.verify(source, target, tables)
            finally:
                target.dispose()
        _print_checks(checks)
        if not all(check.equal for check in checks):
            echo("The copy differs from the source (see above); the instance still uses SQLite.",
                 err=True)
            ctx.exit(1)
        echo("Every table matches.")
        if switch:
            path = dbcopy.write_database_url(home, url)
            echo(f"Switched: {path} now points the instance at PostgreSQL; {home / 'sfcti.db'} "
                 "is kept as it was (a backup).")
        else:
            echo("The instance still uses SQLite; run again with --switch, or write the URL into "
                 "the folder's database_url file, to use PostgreSQL.")
        echo(f"The stored secrets stay encrypted with this folder's secret.key: every node using "
             f"this database needs the same key ({home / 'secret.key'}, mode 0600, or "
             "SFCTI_SECRET_KEY).")
