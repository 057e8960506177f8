"""`sfcti settings show` and `sfcti settings set NAME VALUE`: the settings from a shell, for
headless installs and configuration management.

Every setting the admin has can be read and set here, checked by the same rules as the admin's
forms (core.settings, the one module deciding both). Secrets are never printed, and never taken
from the command line (where shell history and `ps` would keep them): they are read from a
hidden prompt, or from standard input when it is not a terminal. Connection settings set here are
saved without a connection test (configuration management sets them one at a time); `sfcti status`
tests the connection, and `sfcti connect` tests before it saves, as the admin does.
"""

from __future__ import annotations

import sys

import click

from cli import echo, echo_json


def _setting_name(text: str) -> str:
    """``login-url`` or ``login_url`` as the setting's name."""
    return text.strip().replace("-", "_").lower()


def shown_settings(settings) -> dict:
    """Every setting as shown to a person: secrets replaced by whether one is stored."""
    shown = settings.public_dict()
    shown.update({name: ("(stored)" if stored else "(not set)")
                  for name, stored in settings.secret_stored().items()})
    return dict(sorted(shown.items()))


def _read_secret(name: str) -> str:
    if sys.stdin.isatty():
        return click.prompt(f"{name} (hidden; Enter clears it)", hide_input=True, default="",
                            show_default=False)
    return sys.stdin.readline().rstrip("\r\n")


def _echo_invalid(errors_en: dict, errors_ja: dict) -> None:
    for name in sorted(errors_en):
        echo(f"{name}: {errors_ja.get(name, '')} / {errors_en[name]}", err=True)


def register(group: click.Group) -> None:
    """Add `sfcti settings show` and `sfcti settings set` to the CLI group."""

    @group.group("settings")
    def settings_group():
        """Read or change the settings (the same ones, and rules, as the admin)."""

    @settings_group.command("show")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON (secrets as stored or not).")
    @click.pass_context
    def show_command(ctx, as_json):
        """Print every setting; secrets only say whether one is stored."""
        from core.settings import load_settings
        from core.store import open_store

        shown = shown_settings(load_settings(open_store(ctx.obj["home"], create=False)))
        if as_json:
            echo_json(shown)
            return
        width = max(map(len, shown))
        for name, value in shown.items():
            echo(f"{name.ljust(width)}  {value}")

    @settings_group.command("set")
    @click.argument("name")
    @click.argument("value", required=False)
    @click.pass_context
    def set_command(ctx, name, value):
        """Set NAME to VALUE after checking it; a secret (password, security_token,
        smtp_password, oauth_client_secret, oauth_refresh_token) is read from a hidden prompt
        or standard input instead, and an empty one clears it."""
        from core.settings import FIELDS, SECRET_FIELDS, save_settings, validate_settings
        from core.store import open_store

        name = _setting_name(name)
        if name not in FIELDS:
            raise click.UsageError(f"不明な設定項目です / unknown setting: {name[:40]!r}. "
                                   f"Settings: {', '.join(sorted(FIELDS))}")
        if name in SECRET_FIELDS:
            if value is not None:
                raise click.UsageError(f"{name} は秘密情報です。コマンドラインでなくプロンプトか標準入力で"
                                       f"渡してください。 / {name} is a secret: give it at the prompt or "
                                       "on standard input, not on the command line.")
            value = _read_secret(name)
        elif value is None:
            raise click.UsageError(f"値がありません / missing VALUE for {name}")
        problems = validate_settings({name: value}, "en")
        if problems:
            _echo_invalid(problems, validate_settings({name: value}, "ja"))
            ctx.exit(2)
        save_settings(open_store(ctx.obj["home"]), {name: value}, keep_blank_secrets=False)
        shown = "(stored)" if name in SECRET_FIELDS and value else \
            "(not set)" if name in SECRET_FIELDS else value
        echo(f"{name} = {shown}")
