"""`sfcti agents ...`: which Salesforce user owns the Task of each agent's calls (docs/activity.md).

    sfcti agents list [--search TEXT] [--json]     the mappings
    sfcti agents map AGENT USER                     USER: username, e-mail address or user id
    sfcti agents unmap AGENT
    sfcti agents search TEXT [--json]               active Salesforce users (one API call)
    sfcti agents import FILE                        CSV, all rows or none
    sfcti agents export [FILE]                      CSV (the file import reads back)
    sfcti agents unknown [--json]                   agents seen in calls that nobody mapped

Failures of Salesforce print the catalogue's message and remedy in Japanese and English and exit
non-zero; arguments no agent id or user could be are refused before anything is asked.
"""

from __future__ import annotations

import click

from cli import FilePath, echo, echo_json

USER_KEY_MAX = 128          # Salesforce usernames and e-mail addresses have at most 80 characters
SEARCH_MAX = 80             # what agents.search_users reads of a search text


def _store(ctx):
    from core.store import open_store

    return open_store(ctx.obj["home"], create=False)


def has_unprintable(text: str) -> bool:
    """Whether ``text`` holds control or text-direction characters (which could make what is
    printed read otherwise than what was typed)."""
    from core.display import printable

    return printable(text) != text.strip()


class AgentId(click.ParamType):
    """An agent id as the call history keeps it: 1 to 200 printable characters."""

    name = "AGENT"

    def convert(self, value, param, ctx):
        """The trimmed agent id, or a usage error quoting core's rule."""
        from core.agents import InvalidAgentId, clean_agent_id

        try:
            return clean_agent_id(value)
        except InvalidAgentId as exc:
            self.fail(str(exc), param, ctx)


class UserKey(click.ParamType):
    """A Salesforce username, e-mail address or user id, as typed."""

    name = "USER"

    def convert(self, value, param, ctx):
        """The trimmed key, or a usage error (empty, too long, control characters)."""
        text = str(value).strip()
        if not text:
            self.fail("give a username, e-mail address or user id (005...)", param, ctx)
        if len(text) > USER_KEY_MAX:
            self.fail(f"at most {USER_KEY_MAX} characters (a Salesforce username has at most 80)",
                      param, ctx)
        if has_unprintable(text):
            self.fail("contains control or text-direction characters", param, ctx)
        return text


class SearchText(click.ParamType):
    """A short line of text to search for."""

    name = "TEXT"

    def __init__(self, max_chars: int):
        self.max_chars = max_chars

    def convert(self, value, param, ctx):
        """The trimmed text, or a usage error (too long, control characters)."""
        text = str(value).strip()
        if len(text) > self.max_chars:
            self.fail(f"at most {self.max_chars} characters", param, ctx)
        if has_unprintable(text):
            self.fail("contains control or text-direction characters", param, ctx)
        return text


class CsvFile(click.File):
    """A CSV file to read as bytes ("-": standard input); a path with control characters is
    refused before the system is asked for it."""

    def __init__(self):
        super().__init__("rb")

    def convert(self, value, param, ctx):
        """The open file, or a usage error."""
        if isinstance(value, str) and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            self.fail("the path contains control characters", param, ctx)
        return super().convert(value, param, ctx)


def _connection_or_exit(ctx, store):
    """The Salesforce connection; a failure is printed (ja, en) and ends the command."""
    from cli.salesforce_cmd import echo_failure
    from core.errors import describe_failure
    from core.salesforce import connection_for

    try:
        return connection_for(store)
    except Exception as exc:
        echo_failure(*describe_failure(exc, "salesforce"))
        ctx.exit(1)


def _ask_salesforce(ctx, action):
    """``action()``; a Salesforce failure is printed (ja, en) and ends the command (the agent
    module's own refusals pass through)."""
    from cli.salesforce_cmd import echo_failure
    from core.agents import AgentError
    from core.errors import describe_failure

    try:
        return action()
    except AgentError:
        raise
    except Exception as exc:
        echo_failure(*describe_failure(exc, "salesforce"))
        ctx.exit(1)


def _shown(value) -> str:
    """A value from Salesforce or the database as one printable line (inside a line of text;
    a table's cells are made so by the table)."""
    from core.display import printable

    return printable("" if value is None else str(value))


def users_table(users) -> str:
    """Salesforce users as an aligned table."""
    from cli.host_cmd import _table

    return _table(["name", "username", "email", "user id"],
                  [[u.name, u.username, u.email, u.user_id] for u in users])


def mappings_table(rows: list[dict], settings) -> str:
    """The agent → user mappings as an aligned table (times in the configured zone)."""
    from cli.host_cmd import _table

    return _table(["agent", "user", "username", "email", "user id", f"mapped ({settings.zone()})"],
                  [[r["agent_id"], r["user_name"], r["username"], r["email"], r["user_id"],
                    settings.local_time(r["mapped_at"])]
                   for r in rows])


def _mapping_line(row: dict) -> str:
    return (f"{_shown(row['agent_id'])} → {_shown(row['user_name'])} <{_shown(row['username'])}> "
            f"({_shown(row['user_id'])})")


def register(group: click.Group) -> None:
    """Add `sfcti agents` and its subcommands to the CLI group."""

    @group.group("agents")
    def agents_group():
        """Agents and the Salesforce users who own their calls' Tasks (docs/activity.md)."""

    @agents_group.command("list")
    @click.option("--search", default=None, type=SearchText(200),
                  help="Only mappings whose agent, user name, username or e-mail contains this.")
    @click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100000))
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_context
    def list_command(ctx, search, limit, as_json):
        """The agents mapped to Salesforce users, by agent id."""
        from core import agents
        from core.settings import load_settings

        store = _store(ctx)
        rows = agents.list_mappings(store, search=search or None, limit=limit)
        if as_json:
            echo_json(rows)
        else:
            echo(mappings_table(rows, load_settings(store)))

    @agents_group.command("map")
    @click.argument("agent", type=AgentId())
    @click.argument("user", type=UserKey())
    @click.pass_context
    def map_command(ctx, agent, user):
        """Map AGENT to the active Salesforce USER (username, e-mail address or user id): the
        Tasks of the agent's answered calls are then owned by that user."""
        from core import agents

        store = _store(ctx)
        connection = _connection_or_exit(ctx, store)
        found = _ask_salesforce(ctx, lambda: agents.find_users(connection, [user]))
        match = found.get(user.lower())
        if match is None:
            raise click.ClickException(
                f"{agents.UserNotFound.__doc__} ({user!r}; an e-mail address several users share "
                f"names none of them: give the username). Find users with `sfcti agents search`.")
        echo(f"Mapped: {_mapping_line(agents.map_agent(store, agent, match))}")

    @agents_group.command("unmap")
    @click.argument("agent", type=AgentId())
    @click.pass_context
    def unmap_command(ctx, agent):
        """Forget AGENT's mapping: its calls' Tasks are then owned by the connection user."""
        from core import agents

        if not agents.unmap_agent(_store(ctx), agent):
            raise click.ClickException(f"Agent {agent!r} is not mapped.")
        echo(f"Unmapped {agent}.")

    @agents_group.command("search")
    @click.argument("text", type=SearchText(SEARCH_MAX))
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_context
    def search_command(ctx, text, as_json):
        """Active Salesforce users whose name, username or e-mail contains TEXT (all of them,
        up to 50, for ""). One API call."""
        from core import agents

        store = _store(ctx)
        connection = _connection_or_exit(ctx, store)
        users = _ask_salesforce(ctx, lambda: agents.search_users(connection, text))
        if as_json:
            echo_json([u.__dict__ for u in users])
        else:
            echo(users_table(users))

    @agents_group.command("import")
    @click.argument("file", type=CsvFile())
    @click.pass_context
    def import_command(ctx, file):
        """Map the agents of a CSV FILE ("-": standard input): a column agent_id and one of
        username, email or user_id. All rows or none: a file with a bad row changes nothing
        and each bad row is listed with its line number."""
        from core import agents

        data = file.read(agents.CSV_MAX_BYTES + 1)
        store = _store(ctx)
        connection = _connection_or_exit(ctx, store)
        try:
            report = _ask_salesforce(ctx, lambda: agents.import_csv(store, data, connection))
        except agents.CsvRejected as exc:
            echo("Error: 取り込みませんでした（変更はありません）。 / "
                 f"{agents.CsvRejected.__doc__}", err=True)
            for (line, ja), (_, en) in zip(exc.reasons("ja"), exc.reasons("en")):
                echo(f"  line {line}: {_shown(ja)} / {_shown(en)}", err=True)
            ctx.exit(1)
        echo(f"Imported: {report.mapped} mapped, {report.unchanged} unchanged.")

    @agents_group.command("export")
    @click.argument("file", required=False, type=FilePath(dir_okay=False, writable=True))
    @click.pass_context
    def export_command(ctx, file):
        """Every mapping as CSV, to FILE or standard output; `sfcti agents import` reads it back."""
        from core import agents

        text = agents.export_csv(_store(ctx))
        if not file or file == "-":
            click.echo(text, nl=False)  # CSV: the exact values, to be imported back
            return
        try:
            with open(file, "w", encoding="utf-8", newline="") as out:
                out.write(text)
        except OSError as exc:
            raise click.ClickException(f"Cannot write {file!r}: {exc.strerror}") from None
        echo(f"Exported {text.count(chr(10)) - 1} mappings to {file}.", err=True)

    @agents_group.command("unknown")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_context
    def unknown_command(ctx, as_json):
        """Agents seen in calls that no mapping names yet, the most recent first."""
        from cli.host_cmd import _table
        from core import agents
        from core.settings import load_settings

        store = _store(ctx)
        rows = agents.unknown_agents(store, limit=1000)
        if as_json:
            echo_json(rows)
            return
        settings = load_settings(store)
        echo(_table(["agent", "calls", f"last call ({settings.zone()})"],
                    [[r["agent_id"], str(r.get("calls", 0)), settings.local_time(r["last_call_at"])]
                     for r in rows], right=(1,)))
