"""`sfcti settings show` and `sfcti settings set`: every setting from a shell, checked by the
admin's rules, secrets never on the command line nor printed."""

from __future__ import annotations

import json

import pytest

from core.settings import FIELDS, SECRET_FIELDS, load_settings, save_settings
from core.store import Store
from helpers import run_cli

HUGE = "x" * 100_000


def show(home) -> dict:
    result = run_cli(home, "settings", "show", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_show_lists_every_setting_and_hides_secrets(store, home):
    save_settings(store, {"username": "ops@example.com", "password": "s3cret-pass", "smtp_port": 2525})
    shown = show(home)
    assert set(shown) == set(FIELDS)
    assert shown["username"] == "ops@example.com" and shown["smtp_port"] == 2525
    assert shown["password"] == "(stored)" and shown["smtp_password"] == "(not set)"
    text = run_cli(home, "settings", "show").output
    assert "s3cret-pass" not in text and "s3cret-pass" not in json.dumps(shown)
    assert "smtp_port" in text and "2525" in text


def test_show_does_not_create_an_instance(tmp_path):
    result = run_cli(tmp_path / "nowhere", "settings", "show")
    assert result.exit_code == 1 and "No sfcti instance" in result.output
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("name, value, stored", [
    ("smtp_port", "2525", 2525),
    ("smtp-port", "25", 25),                       # the option spelling works too
    ("contact_fetch", "after_call", "after_call"),
    ("sandbox", "on", True),
    ("time_zone", "America/New_York", "America/New_York"),
    ("alert_recipients", "a@example.com; b@example.com", "a@example.com, b@example.com"),
    ("screen_budget_ms", "1200", 1200),
])
def test_set_saves_a_valid_value(home, name, value, stored):
    result = run_cli(home, "settings", "set", name, value)
    assert result.exit_code == 0, result.output
    assert getattr(load_settings(Store(home)), name.replace("-", "_")) == stored


@pytest.mark.parametrize("name, value, says_en, says_ja", [
    ("smtp_port", "５８７", "half-width digits", "半角数字"),           # full-width digits
    ("smtp_port", "70000", "between 1 and 65535", "1 から 65535"),
    ("smtp_port", "", "whole number", "整数"),
    ("contact_fetch", "hourly", "one of: nightly, after_call, never", "いずれか"),
    ("contact_fetch", "nightly' OR 1=1 --", "one of", "いずれか"),       # SQL injection
    ("username", "x' OR Id != null --", "e-mail address", "メールアドレス"),  # SOQL injection
    ("smtp_host", "<script>alert(1)</script>", "host name", "ホスト名"),  # HTML
    ("smtp_host", "mail\r\nRCPT TO:<x@evil>", "control characters", "制御文字"),
    ("login_url", "http://login.salesforce.com", "https://", "https://"),
    ("time_zone", "../../etc/passwd", "time zone", "タイムゾーン"),
    ("nightly_time", "25:00", "HH:MM", "HH:MM"),
    ("smtp_user", HUGE, "Too long", "長すぎます"),
    ("sandbox", "maybe", "on or off", "オンかオフ"),
])
def test_set_refuses_an_invalid_value_in_both_languages(home, name, value, says_en, says_ja):
    result = run_cli(home, "settings", "set", name, value)
    assert result.exit_code == 2
    assert says_en in result.output and says_ja in result.output
    assert len(result.output) < 2000          # a huge value is not echoed back
    assert not (home / "sfcti.db").exists()   # nothing saved, no instance made


@pytest.mark.parametrize("name", ["", "nope", "password_hash", "username\x00", HUGE, "' OR 1=1"])
def test_set_refuses_an_unknown_setting(home, name):
    result = run_cli(home, "settings", "set", "--", name, "x")
    assert result.exit_code == 2 and "unknown setting" in result.output
    assert "smtp_port" in result.output     # the known names are listed
    assert len(result.output) < 5000


def test_set_needs_a_value_for_a_plain_setting(home):
    result = run_cli(home, "settings", "set", "smtp_host")
    assert result.exit_code == 2 and "missing VALUE" in result.output


@pytest.mark.parametrize("secret", sorted(SECRET_FIELDS))
def test_a_secret_is_read_from_stdin_stored_encrypted_and_never_printed(home, secret):
    result = run_cli(home, "settings", "set", secret, input="Tok3n-Value-9\n")
    assert result.exit_code == 0, result.output
    assert "Tok3n-Value-9" not in result.output and f"{secret} = (stored)" in result.output
    store = Store(home)
    assert getattr(load_settings(store), secret) == "Tok3n-Value-9"
    (raw,) = store.conn.execute("SELECT value FROM settings WHERE name = ?", [secret]).fetchone()
    assert "Tok3n-Value-9" not in raw
    assert "Tok3n-Value-9" not in run_cli(home, "settings", "show").output


def test_a_secret_on_the_command_line_is_refused(home):
    result = run_cli(home, "settings", "set", "smtp_password", "on-the-command-line")
    assert result.exit_code == 2 and "not on the command line" in result.output
    assert "on-the-command-line" not in result.output
    assert not (home / "sfcti.db").exists()


def test_an_empty_secret_clears_it(store, home):
    save_settings(store, {"smtp_password": "old-secret-1"})
    result = run_cli(home, "settings", "set", "smtp_password", input="\n")
    assert result.exit_code == 0 and "smtp_password = (not set)" in result.output
    assert load_settings(store).smtp_password == ""


def test_a_secret_with_control_characters_is_refused(store, home):
    save_settings(store, {"smtp_password": "old-secret-1"})
    result = run_cli(home, "settings", "set", "smtp_password", input="bad\x00secret\n")
    assert result.exit_code == 2 and "control characters" in result.output
    assert "bad" not in result.output
    assert load_settings(store).smtp_password == "old-secret-1"


def test_the_admin_and_the_command_line_share_one_rule_book(home):
    """The admin's form and `settings set` refuse and accept the same values, because both ask
    core.settings (the admin's side is tested in tests/test_admin_settings.py)."""
    from core.settings import RULES

    assert set(RULES) == set(FIELDS)
    for name in ("screen_budget_ms", "smtp_port", "alert_reminder_hours"):
        assert run_cli(home, "settings", "set", name, "0").exit_code == 2
