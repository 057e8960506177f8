"""Hostile arguments and options for the commands tests/test_cli_salesforce.py does not cover:
each ends with a clear message and an exit code, never a traceback, a hang or a server started.

Run in-process through click's CliRunner on a temporary instance folder, not connected to any
Salesforce: what is proved here is the command line, not the lookups.
"""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from cli import main
from helpers import run_cli

pytestmark = pytest.mark.timeout(60)

HUGE = "9" * 100_000
CONTROL = "\x00\x1b[2J\r\n\x7f"
INJECTIONS = ["' OR '1'='1", "x' OR Id != null --", "FIND {*} IN ALL FIELDS RETURNING Contact",
              "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>"]


run = run_cli   # `sfcti --home HOME ARGS`, in this process


def refused(home, *args, code=2, says=""):
    """Run and check the command was refused with ``code`` and a message containing ``says``."""
    result = run(home, *args)
    assert result.exit_code == code, result.output
    assert "Error:" in result.output and says in result.output
    return result


def calls(home) -> list[dict]:
    """The call history as JSON rows ([] when nothing created the instance)."""
    result = run(home, "history", "--json")
    if result.exit_code == 1 and "No sfcti instance" in result.output:
        return []
    return json.loads(result.output)


# ---------------------------------------------------------------------------------------------
# sfcti call
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("duration, says", [
    ("-1", "range"), ("86401", "range"), ("1e400", "range"), ("inf", "range"), ("-inf", "range"),
    ("nan", "not a number of seconds"), ("NaN", "not a number of seconds"),
    ("abc", "valid"), ("", "valid"), (HUGE, "range"), ("30' OR 1=1", "valid"), (CONTROL, "valid"),
])
def test_call_refuses_bad_durations(home, duration, says):
    refused(home, "call", "inbound", "03-1234-5678", "--duration", duration, says=says)
    assert calls(home) == []


def test_call_accepts_full_width_duration_digits(home):
    result = run(home, "call", "inbound", "03-1234-5678", "--duration", "３０")
    assert result.exit_code == 0 and "30 s" in result.output
    assert calls(home)[0]["duration_seconds"] == 30.0


@pytest.mark.parametrize("direction", ["", "in", "INBOUND", "sideways", "inbound\x00", HUGE,
                                       "inbound' OR 1=1"])
def test_call_refuses_other_directions(home, direction):
    refused(home, "call", direction, "03-1234-5678", says="inbound")
    assert calls(home) == []


@pytest.mark.parametrize("number", ["", "   ", HUGE, "０３－１２３４－５６７８", CONTROL,
                                    "03-1234-5678\x00", *INJECTIONS])
def test_call_with_hostile_numbers_records_the_call(home, number):
    result = run(home, "call", "inbound", "--json", "--", number)
    assert result.exit_code == 0, result.output
    display = json.loads(result.output)
    assert display["status"] in ("withheld", "not_registered", "unavailable")
    [row] = calls(home)
    assert row["call_id"] == display["call_id"]
    assert not any(ch in (row["remote_number"] or "") for ch in "\x00\x1b")


@pytest.mark.parametrize("agent", ["", HUGE, CONTROL, "０１", *INJECTIONS])
def test_call_with_hostile_agents(home, agent):
    result = run(home, "call", "outbound", "03-1234-5678", "--agent", agent)
    assert result.exit_code == 0, result.output
    [row] = calls(home)
    assert len(row["agent_id"] or "") <= 1000
    assert not any(ch in (row["agent_id"] or "") for ch in "\x00\x1b")


def test_call_screen_escapes_control_characters(home):
    result = run(home, "call", "inbound", "03\x1b[2J\x00")
    assert result.exit_code == 0 and "\x1b" not in result.output and "\x00" not in result.output


# ---------------------------------------------------------------------------------------------
# sfcti history / errors
# ---------------------------------------------------------------------------------------------

def test_history_json_on_a_fresh_instance(store, home):
    result = run(home, "history", "--json")
    assert result.exit_code == 0 and json.loads(result.output) == []


def test_history_json_keeps_hostile_text_as_data(home):
    run(home, "call", "inbound", "--agent", "<script>alert(1)</script>", "--", "' OR '1'='1")
    [row] = calls(home)
    assert row["agent_id"] == "<script>alert(1)</script>" and row["remote_number"] == "' OR '1'='1"


@pytest.mark.parametrize("limit", ["0", "-1", "100001", HUGE, "abc", "", "1.5", CONTROL])
def test_history_refuses_bad_limits(home, limit):
    refused(home, "history", "--limit", limit, says="--limit")


def test_history_accepts_full_width_limit_digits(store, home):
    assert run(home, "history", "--limit", "５").exit_code == 0


@pytest.mark.parametrize("args", [[], ["--json"], ["--lang", "en"]])
def test_errors_on_a_fresh_instance(store, home, args):
    result = run(home, "errors", *args)
    assert result.exit_code == 0
    assert result.output.strip() in ("(no errors)", "[]")


@pytest.mark.parametrize("lang", ["", "fr", "JA", HUGE, "ja\x00", "ja' OR 1=1"])
def test_errors_refuses_other_languages(home, lang):
    refused(home, "errors", "--lang", lang, says="--lang")


# ---------------------------------------------------------------------------------------------
# sfcti fetch-contacts
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("day", [
    "", "yesterday", "2024-13-01", "2024-02-30", "24-01-01", "2024/01/01", "2024-W01-1",
    "２０２４－０１－０１", "２０２４-01-01", "2024-01-01' OR 1=1 --", "2024-01-01\x00",
    "2024-01-01\n", "<b>2024-01-01</b>", HUGE, "0001-01-01", "1969-12-31", "9999-12-31",
])
def test_fetch_contacts_refuses_bad_dates(home, day):
    refused(home, "fetch-contacts", "--date", day, says="YYYY-MM-DD")


@pytest.mark.parametrize("day", ["1970-01-01", "2024-02-29", "9998-12-31"])
def test_fetch_contacts_accepts_any_real_day(store, home, day):
    result = run(home, "fetch-contacts", "--date", day)
    assert result.exit_code == 0, result.output  # nothing called that day: nothing to look up
    assert json.loads(result.output)["day"] == day


# ---------------------------------------------------------------------------------------------
# sfcti refetch
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call_id", ["unknown", "", " ", HUGE, CONTROL, "０１", *INJECTIONS,
                                     "%", "_", "*"])
def test_refetch_unknown_calls(store, home, call_id):
    refused(home, "refetch", "--", call_id, code=1, says="not in the history")


def test_refetch_a_call_while_not_connected(home):
    from core.errors import list_errors
    from core.store import Store

    call_id = json.loads(run(home, "call", "inbound", "03-1234-5678", "--json").output)["call_id"]
    result = run(home, "refetch", call_id)
    assert result.exit_code == 1
    # both languages, as every other command says a failure
    assert "Salesforce への接続が設定されていません" in result.output
    assert "Salesforce is not connected" in result.output
    rows = list_errors(Store(home), code="NOT_CONFIGURED")
    assert [(r["integration"], r["operation"], r["call_id"]) for r in rows
            if r["operation"] == "refetch"] == [("salesforce", "refetch", call_id)]


# ---------------------------------------------------------------------------------------------
# sfcti emulator / admin: refused before anything listens
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--port", "-1"], "--port"), (["--port", "65536"], "--port"), (["--port", "70000"], "--port"),
    (["--port", "abc"], "--port"), (["--port", ""], "--port"), (["--port", HUGE], "--port"),
    (["--port", "8443\x00"], "--port"),
    (["--size", "0"], "--size"), (["--size", "-5"], "--size"), (["--size", HUGE], "--size"),
    (["--size", "1000001"], "--size"), (["--size", "1e3"], "--size"),
    (["--seed", "abc"], "--seed"), (["--daily-limit", "0"], "--daily-limit"),
    (["--org-json", "/no/such/org.json"], "does not exist"), (["--org-json", ""], "--org-json"),
])
def test_emulator_refuses_bad_options(home, monkeypatch, args, says):
    monkeypatch.setattr("emulator.Emulator.start", lambda self: pytest.fail("the emulator started"))
    refused(home, "emulator", *args, says=says)
    assert not os.path.exists(os.path.join(home, "emulator.json"))


@pytest.mark.parametrize("content", ["{not json", "", "[1, 2]", '{"records": 5}', "null",
                                     "\x00\x01", '{"records": {"Contact": "x"}}'])
def test_emulator_refuses_an_org_file_that_is_not_an_org(home, tmp_path, monkeypatch, content):
    monkeypatch.setattr("emulator.Emulator.start", lambda self: pytest.fail("the emulator started"))
    org_json = tmp_path / "org.json"
    org_json.write_text(content, encoding="utf-8")
    refused(home, "emulator", "--org-json", str(org_json), "--port", "1", code=1,
            says="is not an org JSON file")


def test_emulator_refuses_an_org_file_in_another_encoding(home, tmp_path, monkeypatch):
    monkeypatch.setattr("emulator.Emulator.start", lambda self: pytest.fail("the emulator started"))
    org_json = tmp_path / "org.json"
    org_json.write_bytes('{"name": "組織"}'.encode("shift_jis"))
    refused(home, "emulator", "--org-json", str(org_json), code=1, says="is not an org JSON file")


@pytest.mark.parametrize("args, says", [
    (["--port", "0"], "--port"), (["--port", "-1"], "--port"), (["--port", "70000"], "--port"),
    (["--port", "abc"], "--port"), (["--port", HUGE], "--port"),
    (["--host", ""], "--host"), (["--host", "not a host"], "--host"),
    (["--host", "127.0.0.1\x00"], "--host"), (["--host", "localhost\n"], "--host"),
    (["--host", "256.1.1.1"], "--host"), (["--host", "host_name"], "--host"),
    (["--host", "a" * 300], "--host"), (["--host", "-flag"], "--host"),
    (["--host", "<script>"], "--host"), (["--host", "0.0.0.0' OR 1=1"], "--host"),
    (["--host", "０.０.０.０"], "--host"),
])
def test_admin_refuses_bad_addresses(home, monkeypatch, args, says):
    monkeypatch.setattr("cli.admin_cmd.serve", lambda *a, **k: pytest.fail("the admin started"))
    refused(home, "admin", *args, says=says)


@pytest.mark.parametrize("user, says", [
    ("", "empty"), ("   ", "empty"), (" admin", "spaces"), ("ad\x00min", "control"),
    ("admin\r\nX-Injected: 1", "control"), ("ad\u202emin", "text-direction"),
    ("a" * 81, "longer than 80"), (HUGE, "longer than 80"),
])
def test_admin_reset_password_refuses_bad_user_names(home, monkeypatch, user, says):
    monkeypatch.setattr("cli.admin_cmd.serve", lambda *a, **k: pytest.fail("the admin started"))
    refused(home, "admin", "--reset-password", user, says=says)


@pytest.mark.parametrize("config", ["TRUSTED_PROXIES = 'one'\n", "TRUSTED_PROXIES = -1\n",
                                    "this is not python\n"])
def test_admin_with_a_broken_admin_cfg_says_so(home, monkeypatch, config):
    monkeypatch.setattr("waitress.serve", lambda *a, **k: pytest.fail("the admin started"))
    home.mkdir()
    (home / "admin.cfg").write_text(config, encoding="utf-8")
    refused(home, "admin", code=1, says="Cannot start the admin")


def test_admin_addresses_that_are_accepted():
    from cli.admin_cmd import ListenAddress

    for host in ("127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "admin.example.jp", "my-host"):
        assert ListenAddress().convert(host, None, None) == host


# ---------------------------------------------------------------------------------------------
# --home
# ---------------------------------------------------------------------------------------------

def test_home_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    refused(path, "history", says="is a file")


@pytest.mark.parametrize("command", [["history"], ["errors"], ["refetch", "x"],
                                     ["fetch-contacts"], ["emulator", "--org-json", "/no/such"]])
def test_home_under_a_file(tmp_path, command):
    path = tmp_path / "file"
    path.write_text("x")
    result = run(path / "instance", *command)
    assert result.exit_code in (1, 2) and "Error:" in result.output


def test_home_that_cannot_be_created(tmp_path):
    refused("/proc/sfcti-no/instance", "connect", "--username", "a@example.com", "--password", "x",
            "--token", "", code=1, says="Cannot create the instance folder")


@pytest.mark.parametrize("command", [["history"], ["errors"], ["status"], ["lookup", "03-1234-5678"],
                                     ["settings", "show"], ["fetch-contacts"], ["refetch", "c1"]])
def test_read_only_commands_do_not_create_an_instance(tmp_path, command):
    missing = tmp_path / "no" / "such" / "dir"
    result = run(missing, *command)
    assert result.exit_code == 1
    assert f"No sfcti instance in {missing}" in result.output and "settings set" in result.output
    assert os.listdir(tmp_path) == []


def test_call_with_a_home_that_cannot_be_created(monkeypatch):
    monkeypatch.setenv("SFCTI_JOBS", "off")
    monkeypatch.setenv("SFCTI_HOME", "/proc/sfcti-no/instance")
    refused("/proc/sfcti-no/instance", "call", "inbound", "03-1234-5678", code=1,
            says="Cannot create the instance folder")


@pytest.mark.parametrize("name", ["a\x00b", "a\nb", "a\x1b[2Jb", "a\rb", "a\x7fb", "a\tb"])
def test_home_with_control_characters(tmp_path, name):
    refused(tmp_path / name, "history", says="control characters")
    assert os.listdir(tmp_path) == []


def test_home_from_the_environment_is_checked_too(tmp_path, monkeypatch):
    monkeypatch.setenv("SFCTI_HOME", str(tmp_path / "a\x1bb"))
    result = CliRunner().invoke(main, ["history"])
    assert result.exit_code == 2 and "control characters" in result.output
