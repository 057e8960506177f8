"""`sfcti activity status | send | retry`: the calls logged as Salesforce Tasks (docs/activity.md).

A long-running host (`sfcti serve`, a host process running the jobs) sends the waiting Tasks every
15 seconds; these commands show the outbox, send it now, and queue a failed call again. Failures
of Salesforce print the catalogue's message and remedy in Japanese and English and exit non-zero.
"""

from __future__ import annotations

import click

from cli import echo, echo_json

STATE_WORDS = {"waiting": "waiting to be sent", "sending": "being sent",
               "logged": "logged as Tasks", "failed": "refused by Salesforce (retry after fixing)",
               "skipped": "skipped (no matching record)"}


def _store(ctx):
    from core.store import open_store

    return open_store(ctx.obj["home"], create=False)


def format_status(status, settings) -> str:
    """The outbox status as lines of text (times in the configured time zone)."""
    lines = [f"Call logging as Tasks: {'on' if status.enabled else 'off'}"
             + ("" if status.enabled else _why_off(settings))]
    width = max(len(str(n)) for n in status.counts.values())
    for state, count in status.counts.items():
        lines.append(f"  {state:<8} {count:>{width}}  {STATE_WORDS.get(state, '')}")
    allowed = "unknown until Salesforce answers" if status.allowed_today is None else \
        f"{status.allowed_today} ({settings.activity_api_share}% of the org's daily limit)"
    lines.append(f"  API calls spent on Tasks today (UTC): {status.spent_today}, allowed: {allowed}")
    last = settings.local_time(status.last_logged_at) if status.last_logged_at else "-"
    lines.append(f"  last logged: {last}")
    if status.counts.get("failed"):
        lines.append("  Failed calls: see `sfcti errors` for why, fix it, then "
                     "`sfcti activity retry CALL_ID`.")
    return "\n".join(lines)


def _why_off(settings) -> str:
    if not settings.activity_logging:
        return " (setting activity_logging is off)"
    return " (Salesforce is not connected: run `sfcti connect`)"


def format_report(report) -> str:
    """What a send did, as one line."""
    parts = [f"logged {report.logged}"]
    if report.found:
        parts.append(f"{report.found} found already in Salesforce")
    parts += [f"failed {report.failed}", f"skipped {report.skipped}", f"deferred {report.deferred}"]
    return f"Tasks: {', '.join(parts)}; {report.api_calls} API calls"


def register(group: click.Group) -> None:
    """Add `sfcti activity` and its subcommands to the CLI group."""

    @group.group("activity")
    def activity_group():
        """Calls logged as Salesforce Tasks, each exactly once (docs/activity.md)."""

    @activity_group.command("status")
    @click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
    @click.pass_context
    def status_command(ctx, as_json):
        """Calls per state (waiting, logged, failed...), today's API spending and allowance."""
        import dataclasses

        from core import activity
        from core.settings import load_settings

        store = _store(ctx)
        status = activity.status(store)
        if as_json:
            echo_json(dataclasses.asdict(status), indent=2)
        else:
            echo(format_status(status, load_settings(store)))

    @activity_group.command("send")
    @click.option("--force", is_flag=True, help="Send the waiting calls now, whatever their backoff.")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @click.pass_context
    def send_command(ctx, force, as_json):
        """Log the waiting calls as Tasks now (up to 200 per API call). Exits 1 when calls
        were refused or the run stopped early."""
        from cli.salesforce_cmd import echo_failure
        from core import activity

        store = _store(ctx)
        report = activity.send(store, force=force)
        if as_json:
            echo_json(report.as_dict(), indent=2)
        else:
            echo(format_report(report))
        if report.stopped == "off":
            echo("Error: call logging is off or Salesforce is not connected "
                 "(`sfcti settings set activity_logging on`, `sfcti connect`).", err=True)
        elif report.stopped == "share spent":
            echo("Error: today's share of the daily API limit for Tasks is spent "
                 "(setting activity_api_share); the rest go out tomorrow (UTC).", err=True)
        elif report.stopped:
            echo_failure(report.stopped)
        elif report.failed:
            echo("Error: Salesforce refused some Tasks: see `sfcti errors`.", err=True)
        if report.stopped or report.failed:
            ctx.exit(1)

    @activity_group.command("retry")
    @click.argument("call_id")
    @click.pass_context
    def retry_command(ctx, call_id):
        """Queue CALL_ID to be logged again (a failed or skipped call); the next send takes it."""
        from core import activity, history

        store = _store(ctx)
        try:
            queued = activity.retry(store, call_id)
        except history.CallNotFound:
            raise click.ClickException(
                f"この通話は履歴にありません。 / The call {call_id[:80]!r} is not in the history.") from None
        if queued:
            echo(f"Queued {call_id[:80]!r} again: `sfcti serve` sends it within 15 s, or run "
                 "`sfcti activity send`.")
            return
        row = activity.get_state(store, call_id) or {}
        if row.get("state") == activity.LOGGED:
            raise click.ClickException(f"The call is logged already: Task {row.get('task_url') or row.get('task_id')}")
        echo(f"The call is {row.get('state', 'queued')} already: nothing to do.")
