"""`sfcti index status | sync [--full] | clear`: the local phone index of the org from a shell.

Failures print the catalogue's message and remedy in Japanese and English and exit non-zero.
"""

from __future__ import annotations

import click

from cli import echo, echo_json


def _store(ctx):
    from core.store import open_store

    return open_store(ctx.obj["home"], create=False)


def _local(settings, value: str | None) -> str:
    return settings.local_time(value) if value else "-"


def format_status(status, settings) -> str:
    """The index status as lines of text (times in the configured time zone)."""
    age = f"{status.age_seconds / 60:.0f} min" if status.age_seconds is not None else "-"
    lines = [f"Phone index: {status.state}",
             f"  records: {status.records}  numbers: {status.numbers}",
             f"  last sync: {_local(settings, status.last_sync)} (age {age})",
             f"  next run: {_local(settings, status.next_run)}",
             f"  API calls spent: {status.api_calls}"]
    if status.last_error:
        at = _local(settings, status.last_error_at)
        lines.append(f"  last error: {status.last_error} at {at}")
    for name, state in status.objects.items():
        lines.append(f"  {name}: {state['records']} records, phase {state['phase'] or '-'}, "
                     f"last full sync {_local(settings, state['last_full_at'])}")
    return "\n".join(lines)


def register(group: click.Group) -> None:
    """Add `sfcti index` and its subcommands to the CLI group."""

    @group.group("index")
    def index_group():
        """The local phone index: every phone field of the org, normalised (docs/index.md)."""

    @index_group.command("status")
    @click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
    @click.pass_context
    def status_command(ctx, as_json):
        """Records, last sync, age, next run, API calls spent, state."""
        from core import index
        from core.settings import load_settings

        store = _store(ctx)
        status = index.status(store)
        if as_json:
            echo_json(status.as_dict(), indent=2)
        else:
            echo(format_status(status, load_settings(store)))

    @index_group.command("sync")
    @click.option("--full", is_flag=True, help="Read the whole org again (a full re-sync).")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @click.pass_context
    def sync_command(ctx, full, as_json):
        """Bring the index up to date now (resumes an interrupted build)."""
        from cli.salesforce_cmd import echo_failure
        from core.jobs import sync_index

        report = sync_index(_store(ctx), full=full)
        if as_json:
            echo_json(report.as_dict(), indent=2)
        elif report.skipped:
            echo(f"Not synced: {report.skipped}")
        else:
            echo(f"Synced{' (full)' if report.full else ''}: {report.records} records, "
                 f"{report.pages} pages, {report.changes} changes read, "
                 f"{report.api_calls} API calls")
        if report.failed:
            echo_failure(report.failed)
            ctx.exit(1)
        if report.skipped in ("off", "not connected"):
            ctx.exit(1)

    @index_group.command("clear")
    @click.pass_context
    def clear_command(ctx):
        """Remove the index (the next sync builds it again)."""
        from core import index

        index.clear(_store(ctx))
        echo("Phone index cleared.")
