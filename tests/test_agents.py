"""core/agents.py on a real store and the emulator: the user search stays a search whatever is
typed, CSV import is all or nothing with a reason per rejected row, export re-imports as is and
never hands a spreadsheet a formula."""

from __future__ import annotations

import pytest

from helpers import connect

USERS = [("hanako", "鈴木", "花子", True), ("jiro", "佐藤", "次郎", True), ("gone", "退職", "済", False),
         ("=cmd", "数式", "太郎", True)]


@pytest.fixture(scope="module")
def emu_server(tmp_path_factory):
    from emulator import Emulator, Org

    with Emulator(Org(name="担当者組織"), cert_dir=str(tmp_path_factory.mktemp("agents-ca"))) as emu:
        emu.users = {name: emu.add_record("User", {
            "Username": f"{name}@agents.example", "Email": f"{name}@agents.example",
            "LastName": last, "FirstName": first, "IsActive": active})
            for name, last, first, active in USERS}
        yield emu


@pytest.fixture
def connection(store, emu_server):
    from core.salesforce import connection_for, forget_connection

    emu_server.reset()
    connect(store, emu_server)
    yield connection_for(store)
    forget_connection(store)


def test_search_finds_active_users_by_name_username_or_email(connection):
    from core.agents import search_users

    assert [u.username for u in search_users(connection, "花子")] == ["hanako@agents.example"]
    assert [u.username for u in search_users(connection, "JIRO@")] == ["jiro@agents.example"]
    assert "gone@agents.example" not in [u.username for u in search_users(connection, "")]


@pytest.mark.parametrize("typed", ["%", "_", "' OR Name != '", "\\' OR IsActive = false --",
                                   "x' ) OR (Name LIKE '", "<script>", "\x00花\u202e子x", "a" * 10_000])
def test_hostile_search_text_stays_a_search(connection, typed):
    from core.agents import search_users

    assert search_users(connection, typed) == []


def test_control_characters_alone_search_like_an_empty_box(connection):
    from core.agents import search_users

    assert search_users(connection, "\x00\u202e\t") == search_users(connection, "")


def test_find_users_by_id_username_or_email_only_active(connection, emu_server):
    from core.agents import find_users

    found = find_users(connection, [emu_server.users["hanako"], "JIRO@agents.example",
                                    "gone@agents.example", "nobody@x"])
    assert {u.username for u in found.values()} == {"hanako@agents.example", "jiro@agents.example"}
    assert "gone@agents.example" not in found


CSV_GOOD = "agent_id,username\n101,hanako@agents.example\n102,jiro@agents.example\n"


def test_import_then_export_round_trip(store, connection):
    from core import agents

    report = agents.import_csv(store, CSV_GOOD.encode(), connection)
    assert (report.mapped, report.unchanged) == (2, 0)
    exported = agents.export_csv(store)
    assert exported.splitlines()[0] == "agent_id,username,email,name,user_id"
    assert agents.import_csv(store, exported.encode(), connection).unchanged == 2
    assert {m["agent_id"]: m["user_name"] for m in agents.list_mappings(store)} == {
        "101": "鈴木 花子", "102": "佐藤 次郎"}


def test_a_file_with_bad_rows_imports_nothing_and_says_why_for_each(store, connection):
    from core import agents

    text = ("agent_id,username\n"
            "201,hanako@agents.example\n"
            ",jiro@agents.example\n"                 # line 3: no agent id
            "202,nobody@agents.example\n"            # line 4: no such user
            "201,jiro@agents.example\n"              # line 5: agent twice
            "203,gone@agents.example\n"              # line 6: inactive user
            f"{'x' * 201},jiro@agents.example\n"     # line 7: agent id too long
            "204,\n"                                 # line 8: no user
            "205\u202e,jiro@agents.example\n")       # line 9: text-direction override
    with pytest.raises(agents.CsvRejected) as caught:
        agents.import_csv(store, text.encode(), connection)
    lines = [line for line, _ in caught.value.problems]
    assert lines == [3, 4, 5, 6, 7, 8, 9]
    assert all(reason for _, reason in caught.value.problems)
    assert agents.list_mappings(store) == []


@pytest.mark.parametrize("data,reason", [
    (b"", "columns"), (b"\x00\x01binary", "NUL"), (b"name,email\nx,y\n", "columns"),
    (b"agent_id,username\n", "no rows"), (b"\xff\xfe\xfa\xfb" * 10, "columns"),
    (b"a" * 3_000_000, "larger"),
])
def test_bad_files_are_refused_with_a_reason(store, connection, data, reason):
    from core import agents

    with pytest.raises(agents.CsvRejected) as caught:
        agents.import_csv(store, data, connection)
    assert reason.lower() in " ".join(r for _, r in caught.value.problems).lower()


def test_shift_jis_file_from_excel_imports(store, connection):
    from core import agents

    text = "agent_id,email\n受付1,hanako@agents.example\n"
    assert agents.import_csv(store, text.encode("cp932"), connection).mapped == 1
    assert agents.owners_for(store, ["受付1"])["受付1"]["username"] == "hanako@agents.example"


def test_export_defuses_formulas_and_import_restores_them(store, connection):
    from core import agents

    agents.import_csv(store, b"agent_id,username\n=1+1,=cmd@agents.example\n", connection)
    exported = agents.export_csv(store)
    assert "\r\n'=1+1,'=cmd@agents.example," in exported
    agents.unmap_agent(store, "=1+1")
    agents.import_csv(store, exported.encode(), connection)
    assert agents.owners_for(store, ["=1+1"])["=1+1"]["username"] == "=cmd@agents.example"


@pytest.mark.parametrize("agent_id", ["", "   ", "a" * 201, "a\x00b", "a\nb", "a\u202eb", 5, None,
                                      "\ud800"])
def test_invalid_agent_ids_are_refused(store, agent_id):
    from core import agents

    user = agents.SalesforceUser("005000000000001AAA", "名前", "u@x.example", "u@x.example")
    with pytest.raises(agents.InvalidAgentId):
        agents.map_agent(store, agent_id, user)


def test_unknown_agents_are_the_unmapped_ones_seen_in_calls(store, connection):
    import datetime as dt

    from core import agents, history

    for call_id, agent in (("c1", "301"), ("c2", "302"), ("c3", "302")):
        facts = history.call_facts(type("Call", (), {
            "call_id": call_id, "agent_id": agent, "remote_number": "0312345678",
            "started_at": dt.datetime.now(dt.timezone.utc)})())
        history.record_call(store, facts, {"status": "unavailable"})
    agents.import_csv(store, b"agent_id,username\n301,hanako@agents.example\n", connection)
    assert [(a["agent_id"], a["calls"]) for a in agents.unknown_agents(store)] == [("302", 2)]
