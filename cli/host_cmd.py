"""The reference host: `sfcti call` loads the plugin exactly as a phone system does; plus
`sfcti history`, `sfcti fetch-contacts`, `sfcti errors` and `sfcti refetch`."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import re
import unicodedata

import click

from bridges.host import load_host
from cli import echo, echo_json


class Seconds(click.FloatRange):
    """How long a call lasted: a number of seconds from 0 to one day."""

    name = "seconds"

    def __init__(self):
        super().__init__(0, 86400)

    def convert(self, value, param, ctx):
        """The seconds as a float; NaN passes FloatRange's comparisons, so it is refused here."""
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):
            self.fail("not a number of seconds", param, ctx)
        return seconds


class LocalDay(click.ParamType):
    """A local calendar day written YYYY-MM-DD, as an ISO string."""

    name = "YYYY-MM-DD"
    # the job converts the day to UTC and adds one: the ends of date's range would overflow
    FIRST, LAST = dt.date(1970, 1, 1), dt.date(9998, 12, 31)

    def convert(self, value, param, ctx):
        """The day as ``YYYY-MM-DD``, or a usage error saying what is expected."""
        day = None
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            with contextlib.suppress(ValueError):  # 2024-02-30
                day = dt.date.fromisoformat(value)
        if day is None or not self.FIRST <= day <= self.LAST:
            self.fail(f"use YYYY-MM-DD, a day from {self.FIRST} to {self.LAST}", param, ctx)
        return day.isoformat()


# how long `sfcti call` waits, after printing, for the work a call leaves (after-call
# registration, Task sends); what is cut short stays queued for the next start
BACKGROUND_WAIT = 30.0


def start_call(pm, direction: str, number: str, agent: str | None = None,
               call_id: str | None = None):
    """Ring (or dial) one call through the hooks; returns (call, display). ``call_id`` replaces
    the fresh id a call gets (the history records a call id once)."""
    from plugin.call import Call

    call = Call(direction=direction, remote_number=number, agent_id=agent)
    if call_id:
        call.call_id = call_id
    hook = pm.hook.on_incoming_call if direction == "inbound" else pm.hook.on_outgoing_call
    return call, hook(call=call)


def end_call(pm, call, missed: bool = False, duration: float = 0.0) -> None:
    """End a call :func:`start_call` started, through the hook."""
    call.end(answered=not missed, duration=0.0 if missed else duration)
    pm.hook.on_call_ended(call=call)


def place_call(pm, direction: str, number: str, agent: str | None = None, missed: bool = False,
               duration: float = 0.0, call_id: str | None = None):
    """Ring (or dial) one call through the hooks, then end it; returns (call, display)."""
    call, display = start_call(pm, direction, number, agent, call_id)
    end_call(pm, call, missed, duration)
    return call, display


def screen_text(direction: str, number: str, display: dict | None) -> str:
    """The call screen as text."""
    display = display or {}
    arrow = "着信" if direction == "inbound" else "発信"
    lines = [f"┌ {arrow} {direction}: {number!r}",
             f"│ {display.get('label') or '-'}",
             f"│ status={display.get('status')} number={display.get('number')}"]
    if display.get("record_url"):
        lines.append(f"│ {display.get('object')} {display.get('record_url')}")
    lines.append("└")
    return "\n".join(lines)


def _store(ctx):
    """The instance's store; these commands read an instance, they never create one."""
    from core.store import open_store

    os.environ["SFCTI_HOME"] = ctx.obj["home"]
    return open_store(ctx.obj["home"], create=False)


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: East Asian wide and full-width characters take two,
    combining marks and format characters none."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, right: bool = False) -> str:
    gap = " " * max(0, width - display_width(text))
    return gap + text if right else text + gap


def _table(headers: list[str], rows: list[list[str]], right: tuple[int, ...] = ()) -> str:
    """Rows of text under ``headers``, columns aligned by display width; ``right`` lists the
    columns aligned to the right (numbers). Each cell is shown as one line, its control and
    text-direction characters as U+FFFD."""
    from core.display import printable

    if not rows:
        return "(none)"
    rows = [[printable(cell) for cell in line] for line in rows]
    widths = [max(display_width(cell) for cell in column) for column in zip(headers, *rows)]
    lines = [[_pad(cell, w, i in right) for i, (cell, w) in enumerate(zip(line, widths))]
             for line in [headers, *rows]]
    return "\n".join("  ".join(cells).rstrip() for cells in lines)


def _answered(value) -> str:
    return {None: "", 0: "no", 1: "yes"}.get(value, str(value))


def _seconds(value) -> str:
    return "" if value is None else f"{round(value):d} s"


# what an error row adds to the catalogue's texts, as `sfcti errors` labels it
ERROR_FACTS = (("detail", "detail"), ("call_id", "call"))
NO_TASK = "—"   # the call was never queued to be logged (logging off, or before it existed)


def with_task_states(store, rows: list[dict]) -> list[dict]:
    """``rows`` with the state of each call's Task (``task_state``: logged, waiting, sending,
    failed, skipped, or None when never queued) and its ``task_id`` and ``task_url``."""
    from core import activity

    states = activity.states_for(store, [row["call_id"] for row in rows])
    annotated = []
    for row in rows:
        outbox = states.get(row["call_id"]) or {}
        annotated.append(dict(row, task_state=outbox.get("state"), task_id=outbox.get("task_id"),
                              task_url=outbox.get("task_url")))
    return annotated


def history_table(rows: list[dict], settings) -> str:
    """The call history as an aligned table: times in the configured zone, answered as yes/no,
    durations in whole seconds, the state of the call's Task (— when it has none); control and
    text-direction characters shown as U+FFFD."""
    headers = [f"started ({settings.zone()})", "direction", "number", "status", "label",
               "company", "person", "answered", "duration", "agent", "task", "call id"]
    cells = [[settings.local_time(row["started_at"]), row["direction"] or "",
              row["display_number"] or row["remote_number"] or "", row["status"] or "",
              row["label"] or "", row["company"] or "", row["person"] or "",
              _answered(row["answered"]), _seconds(row["duration_seconds"]),
              row["agent_id"] or "", row.get("task_state") or NO_TASK, row["call_id"]] for row in rows]
    return _table(headers, cells, right=(headers.index("duration"),))


def register(group: click.Group) -> None:
    """Add the host commands to the CLI group."""

    @group.command("call")
    @click.argument("direction", type=click.Choice(["inbound", "outbound"]))
    @click.argument("number")
    @click.option("--agent", default=None, help="Agent id.")
    @click.option("--missed", is_flag=True, help="Nobody answered.")
    @click.option("--duration", default=30.0, show_default=True, type=Seconds(),
                  help="Seconds the call lasted.")
    @click.option("--json", "as_json", is_flag=True, help="Print the display as JSON.")
    @click.pass_context
    def call_command(ctx, direction, number, agent, missed, duration, as_json):
        """Place one simulated call through the plugin, as a phone system would."""
        from core.runtime import runtime_for

        os.environ["SFCTI_HOME"] = ctx.obj["home"]
        os.environ.setdefault("SFCTI_JOBS", "off")  # a one-shot host runs no scheduler
        pm = load_host()
        call, display = start_call(pm, direction, number, agent)
        # the screen as soon as the hook answers, as a phone would show it; the rest after
        if as_json:
            echo_json(dict(display or {}, call_id=call.call_id), indent=None)
        else:
            echo(screen_text(direction, number, display))
        end_call(pm, call, missed, duration)
        if not runtime_for().wait_idle(timeout=BACKGROUND_WAIT):
            click.echo(f"Salesforce work of this call still running after {BACKGROUND_WAIT:g} s; "
                       "stopped here (queued numbers are registered by the next run).", err=True)
        if not as_json:
            echo(f"call {call.call_id} ended ({'missed' if missed else f'{duration:g} s'})")

    @group.command("history")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
    @click.pass_context
    def history_command(ctx, as_json, limit):
        """Show the call history, newest first, with the state of each call's Task."""
        from core import history
        from core.settings import load_settings

        store = _store(ctx)
        rows = with_task_states(store, history.list_calls(store, limit=limit))
        if as_json:
            echo_json(rows)
        else:
            echo(history_table(rows, load_settings(store)))

    @group.command("fetch-contacts")
    @click.option("--date", "day", default=None, type=LocalDay(),
                  help="Local day (YYYY-MM-DD); default today.")
    @click.pass_context
    def fetch_contacts_command(ctx, day):
        """Run the nightly contact registration now."""
        from core import jobs

        report = jobs.register_contacts_for_day(_store(ctx), day, force=True)
        echo_json(report.as_dict(), indent=None)
        if report.failed:
            ctx.exit(1)

    @group.command("errors")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.option("--lang", default="ja", type=click.Choice(["ja", "en"]), show_default=True)
    @click.pass_context
    def errors_command(ctx, as_json, lang):
        """Show the external-integration error log, newest first."""
        from core.errors import list_errors

        rows = list_errors(_store(ctx), limit=200)
        if as_json:
            echo_json(rows)
            return
        for row in rows:
            state = "open" if row["open"] else "closed"
            echo(f"{row['last_at']}  {row['integration']}/{row['operation']}  {row['code']}"
                 f"  x{row['count']}  {state}\n  {row[f'message_{lang}']}\n"
                 f"  → {row[f'remedy_{lang}']}"
                 + "".join(f"\n  {label}: {row[key]}" for key, label in ERROR_FACTS if row.get(key)))
        if not rows:
            click.echo("(no errors)")

    @group.command("refetch")
    @click.argument("call_id")
    @click.pass_context
    def refetch_command(ctx, call_id):
        """Look one call's number up in Salesforce again now (once per 15 s per number)."""
        from cli.salesforce_cmd import echo_failure
        from core import history, registration
        from core.errors import report_failure

        store = _store(ctx)
        try:
            display = registration.refetch_call(store, call_id)
        except registration.RefetchLocked as exc:
            raise click.ClickException(
                f"この番号は再取得したばかりです。{exc.seconds:.0f} 秒後にもう一度お試しください。 / "
                f"{exc} ({exc.seconds:.0f} s)") from None
        except history.CallNotFound as exc:
            raise click.ClickException(f"この通話は履歴にありません。 / {exc}") from None
        except Exception as exc:  # Salesforce failing: logged, and said in both languages
            entry = report_failure(store, "refetch", exc, call_id=call_id)
            echo_failure(entry.code)
            ctx.exit(1)
        echo_json(display, indent=None)
