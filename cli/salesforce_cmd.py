"""`sfcti connect`, `sfcti lookup NUMBER`, `sfcti status`: the Salesforce connection from a shell.

Failures print the catalogue's message and remedy in Japanese and English (the same texts the
admin and the error log show) and exit non-zero; no command ever ends in a traceback.
"""

from __future__ import annotations

import click

from cli import echo, echo_json

OPERATION_LOOKUP = "lookup"
# the usage kind core/store.py leaves out of the calls counted against the daily limit
LOGIN_KIND = "login"


# ---------------------------------------------------------------------------------------------
# output helpers
# ---------------------------------------------------------------------------------------------

def echo_failure(code: str, detail: str | None = None, problems: list[str] = ()) -> None:
    """Print the catalogue entry for ``code`` (ja, then en) on stderr."""
    from core.errors import clean_text, entry_for

    entry = entry_for(code)
    lines = [f"エラー / Error: {entry.code}",
             f"  {entry.message_ja}", f"  {entry.message_en}",
             "対処 / Remedy:", f"  {entry.remedy_ja}", f"  {entry.remedy_en}"]
    lines += [f"  - {clean_text(p, 300)}" for p in problems]
    if detail:
        lines.append(f"詳細 / Detail: {clean_text(detail, 500)}")
    echo("\n".join(lines), err=True)


def _store(ctx, create: bool = False):
    """The instance's store; only commands that set an instance up may ``create`` one."""
    from core.store import open_store

    return open_store(ctx.obj["home"], create=create)


# ---------------------------------------------------------------------------------------------
# sfcti connect
# ---------------------------------------------------------------------------------------------

def _connect(ctx, values: dict) -> None:
    from core.salesforce import ConnectionTestFailed, connect_and_save
    from core.settings import InvalidSettings

    try:
        connection = connect_and_save(_store(ctx, create=True), values, keep_blank_secrets=False)
    except InvalidSettings as exc:
        for name, message in sorted(exc.errors.items()):
            echo(f"--{name.replace('_', '-')}: {message}", err=True)
        ctx.exit(2)
    except ConnectionTestFailed as exc:
        echo_failure(exc.code, exc.detail, exc.problems)
        echo("設定は保存されていません。 / Nothing was saved.", err=True)
        ctx.exit(1)
    org = connection.org
    echo(f"接続しました / Connected: {org.org_name} ({org.org_id}) as {org.user_name}")
    echo(f"  instance: {org.instance_url}")
    echo(f"  person accounts: {'yes' if org.person_accounts else 'no'}")


# ---------------------------------------------------------------------------------------------
# sfcti lookup
# ---------------------------------------------------------------------------------------------

class NotAPhoneNumber(ValueError):
    """The text to look up is no phone number (nor a withheld-caller word such as anonymous)."""


def lookup_display(store, raw: str) -> tuple[dict, object | None]:
    """(display, exception or None): what the agent's screen would show for ``raw``.

    :raises NotAPhoneNumber: when ``raw`` is empty or not a phone number (no lookup is made)
    """
    from core import errors
    from core.display import UNAVAILABLE, display_for
    from core.phone import NumberKind
    from core.resolver import Resolver

    resolver = Resolver(store)
    number = resolver.parse(raw)
    if number.kind in (NumberKind.INVALID, NumberKind.EMPTY):
        raise NotAPhoneNumber(raw)
    try:
        return resolver.resolve(raw), None
    except Exception as exc:  # Salesforce failing: the screen still shows the number
        errors.report_failure(store, OPERATION_LOOKUP, exc)
        return display_for(number, UNAVAILABLE), exc


def echo_not_a_number(raw: str, shown_chars: int = 40) -> None:
    """Say on stderr (ja, then en) that ``raw`` is no phone number, with its control characters
    escaped and at most ``shown_chars`` of it shown."""
    shown = repr(raw[:shown_chars]) + ("…" if len(raw) > shown_chars else "")
    echo("\n".join([
        f"エラー / Error: 電話番号ではありません / not a phone number: {shown}",
        "  電話番号を数字で指定してください（例: 03-1234-5678、+81 3 1234 5678。全角数字も使えます）。",
        "  Give a phone number in digits (e.g. 03-1234-5678 or +81 3 1234 5678; full-width digits"
        " work too).",
        "  非通知の着信は anonymous で試せます。 / For a withheld caller, give anonymous.",
    ]), err=True)


def format_display(display: dict) -> str:
    """The display as lines of text: the screen's label first, then the details."""
    lines = [display["label"] or "", f"  status: {display['status']}"]
    for key in ("company", "person", "object", "record_id", "record_url", "number"):
        if display.get(key):
            lines.append(f"  {key}: {display[key]}")
    return "\n".join(lines)


def _lookup(ctx, number: str, as_json: bool) -> None:
    from core.errors import describe_failure

    try:
        display, failure = lookup_display(_store(ctx), number)
    except NotAPhoneNumber:
        echo_not_a_number(number)
        ctx.exit(2)
    if as_json:
        echo_json(display, indent=2)
    else:
        echo(format_display(display))
    if failure is not None:
        echo_failure(*describe_failure(failure, "salesforce"))
        ctx.exit(1)


# ---------------------------------------------------------------------------------------------
# sfcti status
# ---------------------------------------------------------------------------------------------

def _usage_lines(store) -> list[str]:
    """Today's API usage: the calls Salesforce counts against the daily limit (with their
    kinds, which add up to the total), then the logins, which it does not count."""
    usage = store.api_usage()
    counted = {k: v for k, v in usage["by_kind"].items() if k != LOGIN_KIND}
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(counted.items()))
    org = (f"{usage['org_used']} / {usage['org_max']}" if usage["org_max"] else "unknown")
    lines = [f"API usage today ({usage['day']}, UTC):",
             f"  API calls: {usage['own_calls']}" + (f" ({kinds})" if kinds else "")
             + ", counted against the daily limit"]
    if usage["by_kind"].get(LOGIN_KIND):
        lines.append(f"  logins: {usage['by_kind'][LOGIN_KIND]},"
                     " not counted against the daily limit")
    lines.append(f"  org usage (all integrations): {org}")
    return lines


def _status(ctx) -> None:
    from core.errors import describe_failure
    from core.salesforce import connection_for
    from core.settings import load_settings

    store = _store(ctx)
    settings = load_settings(store)
    echo(f"Instance: {store.home}")
    if not settings.is_configured():
        echo("Salesforce: 未接続 / not connected (run: sfcti connect)")
        echo("\n".join(_usage_lines(store)))
        return
    echo(f"Login URL: {settings.login_host()}  user: {settings.username}")
    try:
        org = connection_for(store).org
    except Exception as exc:
        echo("Salesforce: 接続できません / cannot connect")
        echo("\n".join(_usage_lines(store)))
        echo_failure(*describe_failure(exc, "salesforce"))
        ctx.exit(1)
    echo(f"Salesforce: 接続済み / connected to {org.org_name} ({org.org_id}) as {org.user_name}")
    echo(f"  instance: {org.instance_url}")
    echo(f"  person accounts: {'yes' if org.person_accounts else 'no'}")
    echo("\n".join(_usage_lines(store)))


# ---------------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------------

def register(group: click.Group) -> None:
    """Add `sfcti connect`, `sfcti lookup` and `sfcti status` to the CLI group."""

    @group.command("connect")
    @click.option("--username", help="Salesforce username (the integration user).")
    @click.option("--password", help="Password; prompted with hidden input when omitted.")
    @click.option("--token", "security_token",
                  help="Security token; prompted with hidden input when omitted (may be empty).")
    @click.option("--sandbox/--no-sandbox", default=None,
                  help="Log in at test.salesforce.com (sandbox).")
    @click.option("--login-url", help="Login URL (My Domain, or the emulator's URL).")
    @click.option("--ca-bundle", help="PEM file of CAs to trust (corporate TLS proxy, emulator).")
    @click.pass_context
    def connect_command(ctx, username, password, security_token, sandbox, login_url, ca_bundle):
        """Test the Salesforce connection, then save it (nothing is saved on failure)."""
        if username is None:
            username = click.prompt("Username")
        if password is None:
            password = click.prompt("Password", hide_input=True)
        if security_token is None:
            security_token = click.prompt("Security token (Enter if not needed)", hide_input=True,
                                          default="", show_default=False)
        # username + password + token is the password flow, whatever method was stored before
        values = {"username": username, "password": password, "security_token": security_token,
                  "auth_method": "password"}
        optional = {"sandbox": sandbox, "login_url": login_url, "ca_bundle": ca_bundle}
        values.update({k: v for k, v in optional.items() if v is not None})
        _connect(ctx, values)

    @group.command("lookup")
    @click.argument("number")
    @click.option("--json", "as_json", is_flag=True, help="Print the display dict as JSON.")
    @click.pass_context
    def lookup_command(ctx, number, as_json):
        """Show what the agent's screen would show for a caller NUMBER."""
        _lookup(ctx, number, as_json)

    @group.command("status")
    @click.pass_context
    def status_command(ctx):
        """Connection, org, person accounts and today's API usage."""
        _status(ctx)
