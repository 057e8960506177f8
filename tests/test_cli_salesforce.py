"""`sfcti connect`, `sfcti lookup`, `sfcti status` through click's CliRunner, against the emulator."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.display import NOT_REGISTERED, WITHHELD
from core.settings import load_settings
from core.store import Store
from helpers import DISPLAY_KEYS, HOSTILE, fresh, rest_calls, run_cli


run = run_cli   # `sfcti --home HOME ARGS`, in this process


def connect_args(emu, **overrides):
    values = {"--username": emu.username, "--password": emu.password,
              "--token": emu.security_token, "--login-url": emu.login_url,
              "--ca-bundle": emu.ca_path}
    values.update(overrides)
    args = ["connect"]
    for name, value in values.items():
        args += [name, value]
    return args


@pytest.fixture
def connected_home(sf_emu, home):
    """The instance folder after a successful `sfcti connect` to ``sf_emu``."""
    assert run(home, *connect_args(sf_emu)).exit_code == 0
    sf_emu.reset_counters()
    return home


# ---------------------------------------------------------------------------------------------
# sfcti connect
# ---------------------------------------------------------------------------------------------

def test_connect_tests_then_saves(sf_emu, home):
    result = run(home, *connect_args(sf_emu))
    assert result.exit_code == 0, result.output
    assert sf_emu.org.name in result.output and "person accounts: yes" in result.output
    settings = load_settings(Store(home))
    assert (settings.username, settings.password, settings.security_token) == (
        sf_emu.username, sf_emu.password, sf_emu.security_token)
    assert settings.login_url == sf_emu.login_url and settings.ca_bundle == sf_emu.ca_path
    assert sf_emu.api_calls["composite"] == 1  # the permission check


def test_connect_prompts_for_secrets_without_echoing_them(sf_emu, home):
    args = ["connect", "--username", sf_emu.username, "--login-url", sf_emu.login_url,
            "--ca-bundle", sf_emu.ca_path]
    result = run(home, *args, input=f"{sf_emu.password}\n{sf_emu.security_token}\n")
    assert result.exit_code == 0, result.output
    assert "Password" in result.output and "Security token" in result.output
    assert sf_emu.password not in result.output and sf_emu.security_token not in result.output
    assert load_settings(Store(home)).password == sf_emu.password


@pytest.mark.parametrize("overrides, code", [
    ({"--password": "wrong"}, "INVALID_LOGIN"),
    ({"--token": ""}, "LOGIN_MUST_USE_SECURITY_TOKEN"),
])
def test_connect_failure_explains_and_saves_nothing(sf_emu, home, overrides, code):
    result = run(home, *connect_args(sf_emu, **overrides))
    assert result.exit_code == 1
    assert code in result.output
    assert "セキュリティトークン" in result.output and "security token" in result.output  # ja + en remedy
    assert "Nothing was saved" in result.output
    assert not load_settings(Store(home)).is_configured()
    assert Store(home).conn.execute("SELECT count(*) FROM settings").fetchone()[0] == 0


def test_connect_unreachable(sf_emu, home):
    result = run(home, *connect_args(sf_emu, **{"--ca-bundle": ""}))
    assert result.exit_code == 1 and "TLS_ERROR" in result.output
    assert not load_settings(Store(home)).is_configured()


@pytest.mark.parametrize("overrides", [
    {"--username": "not an email"},
    {"--username": "a\r\nb@example.com"},
    {"--login-url": "http://insecure.example.com"},
    {"--login-url": "x" * 5000},
    {"--ca-bundle": "/no/such/file.pem"},
])
def test_connect_rejects_invalid_values(sf_emu, home, overrides):
    result = run(home, *connect_args(sf_emu, **overrides))
    assert result.exit_code == 2
    assert not load_settings(Store(home)).is_configured()
    assert not sf_emu.request_log


# ---------------------------------------------------------------------------------------------
# sfcti lookup
# ---------------------------------------------------------------------------------------------

def test_lookup_prints_the_screen(sf_emu, connected_home):
    national, e164 = fresh()
    account = sf_emu.add_record("Account", {"Name": "株式会社表示"})
    sf_emu.add_record("Contact", {"LastName": "表示", "FirstName": "太郎", "AccountId": account,
                                  "Phone": national})
    result = run(connected_home, "lookup", national.replace("-", ""))
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "株式会社表示 / 表示 太郎"
    assert "status: matched" in result.output and f"number: {e164}" in result.output
    assert rest_calls(sf_emu) == 1


def test_lookup_json(sf_emu, connected_home):
    national, e164 = fresh()
    result = run(connected_home, "lookup", "--json", e164)
    display = json.loads(result.output)
    assert set(display) == DISPLAY_KEYS
    assert display["status"] == "not_registered" and display["label"] == f"{national} 未登録"


WITHHELD_WORDS = [raw for raw, status in HOSTILE if status == WITHHELD and raw and raw.strip()]
NOT_NUMBERS = list(dict.fromkeys(
    ["", "   ", "\u3000", "garbage-xyz", "-1", "--", "12", "１２", "9" * 100_000, "\x00",
     "\x1b[2J", "03-1234-5678\x00' OR 1=1", "03\u202e1234-5678", "<b>x</b>"]
    + [raw for raw, status in HOSTILE if status == NOT_REGISTERED]))


def short(raw: str) -> str:
    """A test id for a possibly huge, unprintable argument."""
    return ascii(raw[:24])


@pytest.mark.parametrize("raw", NOT_NUMBERS, ids=short)
def test_lookup_refuses_what_is_not_a_phone_number(sf_emu, connected_home, raw):
    from core.errors import list_errors

    for args in (["lookup", "--", raw], ["lookup", "--json", "--", raw]):
        result = run(connected_home, *args)
        assert result.exit_code == 2 and result.stdout == ""
        assert "電話番号ではありません" in result.stderr and "not a phone number" in result.stderr
        assert "03-1234-5678" in result.stderr  # how to write one
        assert not any(ch in result.stderr for ch in "\x00\x1b\r\u202e")
        assert len(result.stderr) < 1000
    assert not sf_emu.request_log
    assert list_errors(Store(connected_home)) == []  # a typing mistake is no integration failure


def test_lookup_garbage_is_not_shown_as_an_unknown_caller(sf_emu, connected_home):
    result = run(connected_home, "lookup", "garbage-xyz")
    assert result.exit_code == 2 and "未登録" not in result.output
    assert "'garbage-xyz'" in result.stderr


@pytest.mark.parametrize("raw", WITHHELD_WORDS)
def test_lookup_withheld_words_show_the_withheld_screen(sf_emu, connected_home, raw):
    result = run(connected_home, "lookup", "--", raw)
    assert result.exit_code == 0 and result.output.splitlines()[0] == "非通知"
    assert "status: withheld" in result.output
    assert not sf_emu.request_log


@pytest.mark.parametrize("shape", ["full-width", "full-width with ideographic spaces",
                                   "half-width katakana dashes"])
def test_lookup_full_width_digits_are_a_number(sf_emu, connected_home, shape):
    national, e164 = fresh()
    sf_emu.add_record("Contact", {"LastName": "全角", "FirstName": "一郎", "Phone": national})
    full = national.translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))
    typed = {"full-width": full, "full-width with ideographic spaces": full.replace("－", "\u3000"),
             "half-width katakana dashes": national.replace("-", "ｰ")}[shape]
    result = run(connected_home, "lookup", typed)
    assert result.exit_code == 0, result.output
    assert "全角 一郎" in result.output.splitlines()[0] and f"number: {e164}" in result.output
    assert rest_calls(sf_emu) == 1


def test_lookup_json_of_a_valid_number(sf_emu, connected_home):
    result = run(connected_home, "lookup", "--json", "--", "０３－１２３４－５６７８")
    assert result.exit_code == 0, result.output
    display = json.loads(result.output)
    assert set(display) == DISPLAY_KEYS and display["number"] == "+81312345678"


def test_lookup_not_connected(store, home):
    result = run(home, "lookup", "03-1234-5678")
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == "03-1234-5678"
    assert "status: unavailable" in result.output and "NOT_CONFIGURED" in result.output


def test_lookup_salesforce_down(sf_emu, connected_home):
    sf_emu.faults.http_status = 503
    result = run(connected_home, "lookup", fresh()[1])
    assert result.exit_code == 1
    assert "status: unavailable" in result.output and "SERVER_ERROR" in result.output
    assert "status.salesforce.com" in result.output


def test_lookup_withheld_works_without_connection(store, home):
    result = run(home, "lookup", "anonymous")
    assert result.exit_code == 0 and result.output.splitlines()[0] == "非通知"


# ---------------------------------------------------------------------------------------------
# sfcti status
# ---------------------------------------------------------------------------------------------

def test_status_not_connected(store, home):
    result = run(home, "status")
    assert result.exit_code == 0 and "not connected" in result.output
    assert "API calls: 0, counted against the daily limit\n" in result.output
    assert "logins" not in result.output


def test_status_connected(sf_emu, connected_home):
    run(connected_home, "lookup", fresh()[1])
    result = run(connected_home, "status")
    assert result.exit_code == 0, result.output
    assert sf_emu.org.name in result.output and "person accounts: yes" in result.output
    assert "API calls: 2 (composite 2), counted" in result.output  # the connection test, the lookup
    assert "org usage (all integrations): " in result.output and "unknown" not in result.output
    assert sf_emu.password not in result.output


def test_status_usage_adds_up_and_says_logins_are_not_counted(sf_emu, home):
    run(home, *connect_args(sf_emu))
    for _ in range(3):
        run(home, "lookup", fresh()[1])
    from core.salesforce import forget_connection

    forget_connection(Store(home))  # the next command logs in again
    result = run(home, "status")
    assert result.exit_code == 0, result.output
    counted, logins = rest_calls(sf_emu), sf_emu.api_calls["login"]
    assert counted >= 4 and logins >= 2  # the connection test and 3 lookups; a login or more
    assert f"API calls: {counted} (composite {counted}), counted against the daily limit\n" \
        in result.output
    assert f"logins: {logins}, not counted against the daily limit" in result.output


def test_status_connection_failing(sf_emu, connected_home):
    sf_emu.faults.login_fault = "API_DISABLED_FOR_ORG"
    from core.salesforce import forget_connection

    forget_connection(Store(connected_home))
    result = run(connected_home, "status")
    assert result.exit_code == 1 and "API_DISABLED_FOR_ORG" in result.output


def test_connect_sandbox_flag_is_saved(sf_emu, home):
    result = run(home, *connect_args(sf_emu), "--sandbox")
    assert result.exit_code == 0, result.output
    settings = load_settings(Store(home))
    assert settings.sandbox is True and settings.login_host() == sf_emu.login_url
    # without a login URL a sandbox would log in at test.salesforce.com (not contacted here)
    assert dataclasses.replace(settings, login_url="").login_host() == "https://test.salesforce.com"
