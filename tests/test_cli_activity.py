"""`sfcti agents ...` and `sfcti activity ...`, and the Task column of `sfcti history`: run
in-process through click's CliRunner on an instance connected to the session emulator (real
HTTPS, real simple-salesforce), as an operator runs them.

What is checked is what the operator sees and what Salesforce holds: the Tasks are read back from
the emulator over a simple-salesforce client of its own.
"""

from __future__ import annotations

import json
import uuid

import pytest

from helpers import client_for, run_cli

pytestmark = pytest.mark.timeout(120)

HUGE = "y" * 100_000
CONTROL = "a\x00\x1b[2J\r\nb"
RTL = "agent\u202eevil"
INJECTIONS = ["' OR '1'='1", "x' OR Id != null --", "%' OR Name LIKE '%",
              "yamada@example.com' OR IsActive = false OR Username = '"]
CONTACT_NUMBER = "+81312345678"      # sample org: 株式会社サンプル / 山田 太郎 (Contact)
UNKNOWN_NUMBER = "03-9876-0000"      # no record in the sample org

run = run_cli


@pytest.fixture
def cli(connected, home, monkeypatch):
    """The connected instance's folder; calls leave their Tasks waiting until a test sends them."""
    monkeypatch.setenv("SFCTI_SEND_TASKS", "off")
    return home


def add_user(emulator, name: str = "営業", active: bool = True, email: str | None = None) -> dict:
    """A new Salesforce user in the session org (a fresh username); its record."""
    tag = uuid.uuid4().hex[:10]
    username = f"{tag}@users.sfcti.example"
    record = {"Username": username, "Email": email or username, "LastName": name,
              "FirstName": tag[:4], "IsActive": active}
    record["Id"] = emulator.add_record("User", dict(record))
    record["Name"] = f"{name} {tag[:4]}"
    return record


def ok(home, *args, input=None) -> str:
    """Run, check it succeeded, return its output."""
    result = run(home, *args, input=input)
    assert result.exit_code == 0, result.output
    return result.output


def failed(home, *args, code=1, says="", input=None):
    """Run and check it failed with ``code`` and said ``says``."""
    result = run(home, *args, input=input)
    assert result.exit_code == code, result.output
    assert "Error" in result.output and says in result.output, result.output
    return result


def mappings(home) -> dict[str, str]:
    """``{agent: user id}`` as `sfcti agents list --json` shows them."""
    return {r["agent_id"]: r["user_id"] for r in json.loads(ok(home, "agents", "list", "--json"))}


def place(home, number: str, agent: str | None = None, *more) -> str:
    """One simulated call through `sfcti call`; its call id."""
    args = ["call", "inbound", number, "--json"] + (["--agent", agent] if agent else []) + list(more)
    return json.loads(ok(home, *args))["call_id"]


def tasks_in_salesforce(emulator, call_id: str) -> list[dict]:
    """The Tasks Salesforce holds for ``call_id``, read over simple-salesforce."""
    soql = ("SELECT Id, CallObject, OwnerId, WhoId, WhatId, CallType, CallDurationInSeconds, Status "
            f"FROM Task WHERE CallObject = '{call_id}'")
    return client_for(emulator).query(soql)["records"]


def history_rows(home) -> dict[str, dict]:
    return {r["call_id"]: r for r in json.loads(ok(home, "history", "--json"))}


def contact_id(emulator, last: str, first: str) -> str:
    return next(r["Id"] for r in emulator.org.records["Contact"]
                if r.get("LastName") == last and r.get("FirstName") == first)


# ---------------------------------------------------------------------------------------------
# sfcti agents
# ---------------------------------------------------------------------------------------------

def test_search_lists_active_users_only(cli, emulator):
    active, inactive = add_user(emulator, "検索"), add_user(emulator, "検索", active=False)
    out = ok(cli, "agents", "search", active["Username"][:10])
    assert active["Username"] in out and active["Id"] in out
    found = json.loads(ok(cli, "agents", "search", "検索", "--json"))
    usernames = {u["username"] for u in found}
    assert active["Username"] in usernames and inactive["Username"] not in usernames
    assert emulator.api_usage()[0] >= 2


@pytest.mark.parametrize("key", ["Username", "Email", "Id"])
def test_map_by_username_email_or_id(cli, emulator, key):
    user = add_user(emulator, "担当")
    out = ok(cli, "agents", "map", "agent-7", user[key])
    assert "agent-7" in out and user["Username"] in out
    assert mappings(cli) == {"agent-7": user["Id"]}
    listed = ok(cli, "agents", "list")
    assert "agent-7" in listed and user["Username"] in listed
    ok(cli, "agents", "unmap", "agent-7")
    assert mappings(cli) == {}


def test_map_replaces_the_earlier_user(cli, emulator):
    first, second = add_user(emulator), add_user(emulator)
    ok(cli, "agents", "map", "agent-1", first["Username"])
    ok(cli, "agents", "map", "agent-1", second["Username"])
    assert mappings(cli) == {"agent-1": second["Id"]}


def test_map_refuses_users_that_cannot_own_tasks(cli, emulator):
    inactive = add_user(emulator, active=False)
    failed(cli, "agents", "map", "agent-1", inactive["Username"], says="No active Salesforce user")
    failed(cli, "agents", "map", "agent-1", "nobody@nowhere.example", says="sfcti agents search")
    shared = f"{uuid.uuid4().hex[:8]}@shared.sfcti.example"
    add_user(emulator, email=shared), add_user(emulator, email=shared)
    failed(cli, "agents", "map", "agent-1", shared, says="give the username")
    assert mappings(cli) == {}


@pytest.mark.parametrize("agent, says", [
    ("", "agent id must be"), ("   ", "agent id must be"), (HUGE, "agent id must be"),
    (CONTROL, "agent id must be"), (RTL, "agent id must be"), ("a" * 201, "agent id must be"),
])
def test_map_and_unmap_refuse_bad_agent_ids_before_asking_salesforce(cli, emulator, agent, says):
    user = add_user(emulator)
    emulator.reset_counters()
    failed(cli, "agents", "map", "--", agent, user["Username"], code=2, says=says)
    failed(cli, "agents", "unmap", "--", agent, code=2, says=says)
    assert emulator.api_usage()[0] == 0 and mappings(cli) == {}


@pytest.mark.parametrize("user, says", [
    ("", "give a username"), ("  ", "give a username"), (HUGE, "at most 128"),
    (CONTROL, "control"), ("yamada\u202e@example.com", "text-direction"),
])
def test_map_refuses_bad_user_keys_before_asking_salesforce(cli, emulator, user, says):
    emulator.reset_counters()
    failed(cli, "agents", "map", "agent-1", "--", user, code=2, says=says)
    assert emulator.api_usage()[0] == 0 and mappings(cli) == {}


@pytest.mark.parametrize("user", INJECTIONS + ["ｙａｍａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ", "005' OR ''='"])
def test_map_with_injections_and_full_width_finds_nobody(cli, emulator, user):
    add_user(emulator)
    failed(cli, "agents", "map", "agent-1", "--", user, says="No active Salesforce user")
    assert mappings(cli) == {}


@pytest.mark.parametrize("text", INJECTIONS + ["ｙａｍａｄａ", "%", "_"])
def test_search_with_injections_lists_nobody(cli, emulator, text):
    add_user(emulator)
    assert json.loads(ok(cli, "agents", "search", "--json", "--", text)) == []


@pytest.mark.parametrize("text, says", [(HUGE, "at most 80"), (CONTROL, "control"), (RTL, "control")])
def test_search_refuses_bad_texts(cli, emulator, text, says):
    emulator.reset_counters()
    failed(cli, "agents", "search", "--", text, code=2, says=says)
    assert emulator.api_usage()[0] == 0


def test_unmap_of_an_agent_nobody_mapped(cli):
    failed(cli, "agents", "unmap", "agent-404", says="not mapped")


@pytest.mark.parametrize("search", ["' OR 1=1 --", "%", "_", "ｍａｐ", "<script>"])
def test_list_search_takes_text_literally(cli, emulator, search):
    user = add_user(emulator)
    ok(cli, "agents", "map", "map-1", user["Username"])
    assert json.loads(ok(cli, "agents", "list", "--json", "--search", search)) == []
    assert [r["agent_id"] for r in json.loads(ok(cli, "agents", "list", "--json", "--search", "ap-"))] \
        == ["map-1"]


@pytest.mark.parametrize("search, says", [(HUGE, "at most 200"), (CONTROL, "control"), (RTL, "control")])
def test_list_refuses_bad_searches(cli, search, says):
    failed(cli, "agents", "list", "--search", search, code=2, says=says)


def test_import_maps_every_row_and_export_reads_back(cli, emulator, tmp_path):
    one, two = add_user(emulator), add_user(emulator)
    csv_file = tmp_path / "agents.csv"
    csv_file.write_text(f"agent_id,username,email,user_id\r\nagent-1,{one['Username']},,\r\n"
                        f"=agent-2,,{two['Email']},\r\nagent-3,,,{one['Id']}\r\n", encoding="utf-8")
    assert "3 mapped" in ok(cli, "agents", "import", csv_file)
    assert mappings(cli) == {"agent-1": one["Id"], "=agent-2": two["Id"], "agent-3": one["Id"]}
    exported = ok(cli, "agents", "export")
    assert exported.splitlines()[0] == "agent_id,username,email,name,user_id"
    assert "'=agent-2" in exported          # opened in a spreadsheet, no formula runs
    out_file = tmp_path / "out.csv"
    run(cli, "agents", "export", out_file)
    assert out_file.read_text(encoding="utf-8") == exported
    assert "0 mapped, 3 unchanged" in ok(cli, "agents", "import", out_file)
    assert mappings(cli)["=agent-2"] == two["Id"]


def test_import_from_standard_input_in_shift_jis(cli, emulator):
    user = add_user(emulator)
    data = f"agent_id,username\r\n山田,{user['Username']}\r\n".encode("cp932")
    result = run(cli, "agents", "import", "-", input=data)
    assert result.exit_code == 0, result.output
    assert mappings(cli) == {"山田": user["Id"]}


def test_import_with_bad_rows_changes_nothing_and_lists_each(cli, emulator, tmp_path):
    kept, other = add_user(emulator), add_user(emulator)
    ok(cli, "agents", "map", "agent-1", kept["Username"])
    csv_file = tmp_path / "agents.csv"
    csv_file.write_text("agent_id,username\n"
                        f"agent-1,{other['Username']}\n"      # line 2: fine
                        "agent-2,\n"                            # line 3: no user
                        f"agent-1,{other['Username']}\n"      # line 4: agent twice
                        "agent-5,nobody@nowhere.example\n"     # line 5: no such user
                        f"agent\u202e6,{other['Username']}\n",  # line 6: RTL override
                        encoding="utf-8")
    result = failed(cli, "agents", "import", csv_file, says="Nothing was changed")
    lines = result.output.splitlines()
    for line, reason in [(3, "No username"), (4, "already appears on line 2"),
                         (5, "nobody@nowhere.example"), (6, "agent id must be")]:
        assert any(f"line {line}:" in ln and reason in ln for ln in lines), result.output
    assert not any("line 2:" in ln for ln in lines)
    assert mappings(cli) == {"agent-1": kept["Id"]}


@pytest.mark.parametrize("content, says", [
    (b"", "must name the columns"), (b"\x00\x01\x02", "NUL"), (b"\xff\xfe\xfa\x80\x81", "neither UTF-8"),
    (b"name,phone\nx,y\n", "must name the columns"), (b"agent_id,username\n", "no rows"),
    (b"agent_id,username\n" + b"a,b@example.com\n" * 10_001, "More than 10000 rows"),
    (b"x" * 2_000_001, "larger than 2 MB"),
])
def test_import_refuses_files_that_are_no_mapping(cli, tmp_path, content, says):
    csv_file = tmp_path / "agents.csv"
    csv_file.write_bytes(content)
    failed(cli, "agents", "import", csv_file, says=says)
    assert mappings(cli) == {}


@pytest.mark.parametrize("path", ["/no/such/file.csv", "", CONTROL])
def test_import_refuses_missing_files(cli, path):
    failed(cli, "agents", "import", "--", path, code=2)


def test_export_to_a_folder_that_does_not_exist(cli):
    failed(cli, "agents", "export", "/no/such/folder/agents.csv", says="Cannot write")


def test_unknown_lists_agents_seen_and_not_mapped(cli, emulator):
    user = add_user(emulator)
    place(cli, UNKNOWN_NUMBER, "agent-a")
    place(cli, UNKNOWN_NUMBER, "agent-b")
    place(cli, UNKNOWN_NUMBER, "agent-b")
    ok(cli, "agents", "map", "agent-a", user["Username"])
    assert [(r["agent_id"], r["calls"]) for r in json.loads(ok(cli, "agents", "unknown", "--json"))] == \
        [("agent-b", 2)]
    assert "agent-b" in ok(cli, "agents", "unknown")


def test_agents_commands_without_a_connection_say_so(store, home):
    for args in (["search", "x"], ["map", "a1", "x@example.com"]):
        result = failed(home, "agents", *args, says="Salesforce is not connected")
        assert "Salesforce への接続が設定されていません" in result.output


# ---------------------------------------------------------------------------------------------
# sfcti activity, and the Task column of sfcti history
# ---------------------------------------------------------------------------------------------

def test_ended_calls_wait_then_go_out_as_tasks(cli, emulator):
    user = add_user(emulator, "受付")
    ok(cli, "agents", "map", "agent-1", user["Username"])
    answered = place(cli, CONTACT_NUMBER, "agent-1")
    unmatched = place(cli, UNKNOWN_NUMBER, "agent-1")
    status = json.loads(ok(cli, "activity", "status", "--json"))
    assert status["enabled"] is True and status["counts"]["waiting"] == 2
    rows = history_rows(cli)
    assert rows[answered]["task_state"] == "waiting" and rows[answered]["task_id"] is None
    assert tasks_in_salesforce(emulator, answered) == []

    emulator.reset_counters()
    report = json.loads(ok(cli, "activity", "send", "--json"))
    assert (report["logged"], report["skipped"], report["failed"]) == (1, 1, 0)
    [task] = tasks_in_salesforce(emulator, answered)
    assert task["WhoId"] == contact_id(emulator, "山田", "太郎")
    assert (task["OwnerId"], task["CallType"], task["CallDurationInSeconds"], task["Status"]) == \
        (user["Id"], "Inbound", 30, "Completed")
    assert emulator.api_calls.get("collections") == 1
    rows = history_rows(cli)
    assert (rows[answered]["task_state"], rows[answered]["task_id"]) == ("logged", task["Id"])
    assert rows[answered]["task_url"].endswith(f"/{task['Id']}/view")
    assert rows[unmatched]["task_state"] == "skipped"
    table = ok(cli, "history")
    header, *lines = table.splitlines()
    assert "task" in header.split()
    states = {line.split()[-1]: line.split()[-2] for line in lines}
    assert states == {answered: "logged", unmatched: "skipped"}
    text = ok(cli, "activity", "status")
    assert "on" in text.splitlines()[0] and "logged   1" in text and "skipped  1" in text
    # sent once: a second send has nothing to do
    assert json.loads(ok(cli, "activity", "send", "--json"))["logged"] == 0
    assert len(tasks_in_salesforce(emulator, answered)) == 1


def test_history_shows_a_dash_for_calls_not_logged(cli, connected):
    from core.settings import save_settings

    save_settings(connected, {"activity_logging": False})
    call_id = place(cli, CONTACT_NUMBER, "agent-1")
    assert history_rows(cli)[call_id]["task_state"] is None
    line = next(ln for ln in ok(cli, "history").splitlines() if call_id in ln)
    assert line.split()[-2] == "—"
    assert "off (setting activity_logging is off)" in ok(cli, "activity", "status")
    failed(cli, "activity", "send", says="call logging is off")


def test_send_while_salesforce_fails_keeps_the_calls_waiting(cli, emulator):
    call_id = place(cli, CONTACT_NUMBER, "agent-1")
    emulator.faults.set(http_status=503)
    result = failed(cli, "activity", "send")
    assert "Tasks: logged 0" in result.output and "Remedy" in result.output
    assert history_rows(cli)[call_id]["task_state"] == "waiting"
    emulator.faults.clear()
    # backing off: a plain send leaves it; --force sends it now
    assert json.loads(ok(cli, "activity", "send", "--json"))["logged"] == 0
    assert json.loads(ok(cli, "activity", "send", "--force", "--json"))["logged"] == 1
    assert len(tasks_in_salesforce(emulator, call_id)) == 1


def test_a_refused_task_fails_and_retry_logs_it(cli, emulator):
    call_id = place(cli, CONTACT_NUMBER, "agent-1")
    emulator.add_validation_rule("Task", "通話の記録は禁止です", lambda fields: True)
    result = failed(cli, "activity", "send", says="sfcti errors")
    assert "failed 1" in result.output
    assert history_rows(cli)[call_id]["task_state"] == "failed"
    assert "failed   1" in ok(cli, "activity", "status")
    assert "通話の記録は禁止です" in ok(cli, "errors", "--json")
    emulator.clear_validation_rules()
    assert "Queued" in ok(cli, "activity", "retry", call_id)
    assert json.loads(ok(cli, "activity", "send", "--json"))["logged"] == 1
    assert history_rows(cli)[call_id]["task_state"] == "logged"
    failed(cli, "activity", "retry", call_id, says="logged already")
    assert len(tasks_in_salesforce(emulator, call_id)) == 1


def test_retry_of_a_waiting_call_changes_nothing(cli):
    call_id = place(cli, CONTACT_NUMBER, "agent-1")
    assert "waiting already" in ok(cli, "activity", "retry", call_id)


@pytest.mark.parametrize("call_id", ["unknown", "", " ", HUGE, CONTROL, RTL, "０１", *INJECTIONS,
                                     "%", "_", "*"])
def test_retry_of_calls_not_in_the_history(cli, call_id):
    result = failed(cli, "activity", "retry", "--", call_id, says="not in the history")
    assert "\x1b" not in result.output and "\x00" not in result.output and len(result.output) < 500


def test_activity_on_an_instance_never_connected(store, home):
    assert json.loads(ok(home, "activity", "status", "--json"))["enabled"] is False
    assert "not connected" in ok(home, "activity", "status")
    failed(home, "activity", "send", says="not connected")


@pytest.mark.parametrize("command", [["activity", "status"], ["activity", "send"],
                                     ["activity", "retry", "c1"], ["agents", "list"],
                                     ["agents", "unknown"], ["agents", "export"]])
def test_commands_do_not_create_an_instance(tmp_path, command):
    missing = tmp_path / "no" / "instance"
    failed(missing, *command, says="No sfcti instance")
    assert not missing.exists()
