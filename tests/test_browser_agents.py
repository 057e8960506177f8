"""The agents page in a real browser (Playwright driving Debian's Chromium) against the admin
served by a real HTTP server thread, connected to the local Salesforce emulator: search a user,
map an agent, see it listed; import a CSV file with bad rows and see each reason."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from helpers import browser_login, connect

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                                reason="Debian's chromium is not installed (make test installs it)")

USERS = [
    {"Username": "admin@browser-agents.example", "Email": "admin@browser-agents.example",
     "LastName": "管理", "FirstName": "太郎"},
    {"Username": "yamada@browser-agents.example", "Email": "hanako@browser-agents.example",
     "LastName": "山田", "FirstName": "花子"},
    {"Username": "sato@browser-agents.example", "Email": "sato@browser-agents.example",
     "LastName": "佐藤", "FirstName": "健一"},
]


@pytest.fixture(scope="module")
def emu():
    from emulator import Emulator, Org

    with Emulator(Org(records={"User": [dict(u) for u in USERS]}, name="ブラウザ担当者組織")) as emu:
        yield emu


@pytest.fixture
def agents_store(served_store, emu):
    """The served instance connected to the emulator, with no mapping left from another test."""
    from core import agents
    from core.salesforce import forget_connection

    connect(served_store, emu)
    for mapping in agents.list_mappings(served_store, limit=10_000):
        agents.unmap_agent(served_store, mapping["agent_id"])
    yield served_store
    forget_connection(served_store)


def mappings(store) -> dict:
    from core import agents

    return {m["agent_id"]: m["username"] for m in agents.list_mappings(store, limit=10_000)}


def test_an_agent_seen_in_a_call_is_mapped_through_the_user_search(page, admin_server, agents_store):
    from core import history

    facts = history.CallFacts(call_id="browser-agents-1", direction="inbound", remote_number="0312345678",
                              local_number=None, agent_id="3001",
                              started_at=dt.datetime.now(dt.timezone.utc), ended_at=None, answered=True)
    history.record_call(agents_store, facts, {"status": "not_registered"})
    browser_login(page, admin_server.url)
    page.click("nav >> text=担当者")
    assert page.url == admin_server.url + "/agents/"
    assert page.locator("h1").inner_text() == "担当者"
    page.locator("#unknown-agents tr", has_text="3001").locator("a").click()
    assert page.input_value("#agent_id") == "3001"
    page.fill("#q", "山田")
    page.click("#find_user")
    users = page.locator("#users tr.user")
    assert users.count() == 1
    assert "山田 花子" in users.inner_text() and "yamada@browser-agents.example" in users.inner_text()
    users.locator("button").click()
    assert page.locator(".flash.success").inner_text() == \
        "担当者 3001 に 山田 花子（yamada@browser-agents.example）を設定しました。"
    row = page.locator("#mappings tr.mapping")
    assert row.count() == 1
    assert row.locator("td").nth(0).inner_text() == "3001"
    assert row.locator("td").nth(1).inner_text() == "山田 花子"
    assert "3001" not in page.locator("#unknown").inner_text()
    assert mappings(agents_store) == {"3001": "yamada@browser-agents.example"}
    assert page.evaluate("document.scripts.length") == 0 and page.dialogs == []
    row.locator("button").click()
    assert page.locator(".flash.success").inner_text() == "担当者 3001 の設定を解除しました。"
    assert mappings(agents_store) == {}


def test_a_csv_file_with_bad_rows_shows_every_reason_and_changes_nothing(page, admin_server, agents_store):
    from core import agents
    from core.salesforce import connection_for

    kept = agents.find_users(connection_for(agents_store), ["sato@browser-agents.example"])
    agents.map_agent(agents_store, "kept", kept["sato@browser-agents.example"])
    browser_login(page, admin_server.url)
    page.goto(admin_server.url + "/agents/")
    bad = ("agent_id,username\r\n"
           "4001,yamada@browser-agents.example\r\n"
           "4002,nobody@browser-agents.example\r\n"
           "4001,sato@browser-agents.example\r\n"
           ",sato@browser-agents.example\r\n").encode()
    page.set_input_files("#csv_file", files=[{"name": "agents.csv", "mimeType": "text/csv", "buffer": bad}])
    page.click("#import_csv")
    box = page.locator("#import-rejected")
    assert "CSV ファイルは取り込まれませんでした。何も変更されていません。" in box.inner_text()
    lines = page.locator("#rejected-rows tbody tr")
    assert [lines.nth(i).locator("td").nth(0).inner_text() for i in range(lines.count())] == ["3", "4", "5"]
    assert "nobody@browser-agents.example" in lines.nth(0).inner_text()
    assert "2 行目" in lines.nth(1).inner_text()
    assert "200" in lines.nth(2).inner_text()
    assert mappings(agents_store) == {"kept": "sato@browser-agents.example"}
    good = "agent_id,email\r\n4001,hanako@browser-agents.example\r\n".encode("cp932")
    page.set_input_files("#csv_file", files=[{"name": "agents.csv", "mimeType": "text/csv", "buffer": good}])
    page.click("#import_csv")
    assert "設定した担当者: 1 件、変更なし: 0 件" in page.locator(".flash.success").inner_text()
    assert mappings(agents_store) == {"kept": "sato@browser-agents.example",
                                      "4001": "yamada@browser-agents.example"}
    assert page.evaluate("document.scripts.length") == 0
