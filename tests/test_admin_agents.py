"""The agents page through Flask's test client against the local Salesforce emulator: mapping an
agent through the user search, unmapping, the agents seen in calls, the CSV export and its
all-or-nothing import, login and CSRF, hostile input everywhere, Salesforce down or not connected."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import urllib.parse

import pytest
from markupsafe import escape

from core import agents, history
from core.errors import entry_for
from helpers import connect, csrf_token, page_html, post_form

USERS = [
    # the first active user is the one the emulator's credentials log in as
    {"Username": "admin@agents.example", "Email": "admin@agents.example", "LastName": "管理", "FirstName": "太郎"},
    {"Username": "yamada@agents.example", "Email": "hanako.yamada@mail.example", "LastName": "山田",
     "FirstName": "花子"},
    {"Username": "sato@agents.example", "Email": "sato@agents.example", "LastName": "佐藤", "FirstName": "健一"},
    {"Username": "obrien@agents.example", "Email": "pat@agents.example", "LastName": "O'Brien",
     "FirstName": "Pat"},
    {"Username": "tanaka@agents.example", "Email": "tanaka@agents.example", "LastName": "田中",
     "FirstName": "一郎", "IsActive": False},
    {"Username": "markup@agents.example", "Email": "markup@agents.example",
     "LastName": "<img src=x onerror=alert(1)>", "FirstName": "Evil"},
]


@pytest.fixture(scope="module")
def emu():
    from emulator import Emulator, Org

    with Emulator(Org(records={"User": [dict(u) for u in USERS]}, name="担当者テスト組織")) as emu:
        yield emu


@pytest.fixture
def connected_store(store, emu):
    """The instance connected to this module's emulator."""
    from core.salesforce import forget_connection

    emu.reset()
    connect(store, emu, connect_timeout=2.0, read_timeout=2.0)
    yield store
    emu.faults.clear()
    forget_connection(store)


def user_id(emu, username: str) -> str:
    """The Id the emulator gave the user the test put there."""
    return next(u["Id"] for u in emu.org.records["User"] if u["Username"] == username)


def page(client, url="/agents/", lang="ja") -> str:
    return page_html(client, url, lang)


def section(html: str, element_id: str) -> str:
    """The HTML of the section (or box) with ``element_id``."""
    found = re.search(rf'id="{element_id}"(.*?)</(?:section|table)>', html, re.S)
    return found.group(1) if found else ""


def mapped(store) -> dict:
    """{agent id: username} as stored."""
    return {m["agent_id"]: m["username"] for m in agents.list_mappings(store, limit=10_000)}


def map_by_post(client, agent_id, uid):
    """Press a "map to this user" button (the form the page's search offers) for ``uid``."""
    return client.post("/agents/map", data={"csrf_token": csrf_token(client, "/agents/"),
                                            "agent_id": agent_id, "user_id": uid, "map_user": "1"})


def flashes(client, lang="ja") -> str:
    html = page(client, lang=lang)
    return " ".join(re.findall(r'<div class="flash [a-z]+" role="status">(.*?)</div>', html, re.S))


def record_call(store, call_id, agent_id, minutes_ago=0):
    facts = history.CallFacts(
        call_id=call_id, direction="inbound", remote_number="03-1234-5678", local_number=None,
        agent_id=agent_id, started_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes_ago),
        ended_at=None, answered=True)
    assert history.record_call(store, facts, {"status": "not_registered"}) is not None


def upload(client, data: bytes, name="agents.csv", with_token=True):
    form = {"csv_file": (io.BytesIO(data), name), "import_csv": "1"}
    if with_token:
        form["csrf_token"] = csrf_token(client, "/agents/")
    return client.post("/agents/import", data=form, content_type="multipart/form-data")


# -- access and CSRF ---------------------------------------------------------------------------

@pytest.mark.parametrize("method,url", [("get", "/agents/"), ("get", "/agents/export.csv"),
                                        ("post", "/agents/map"), ("post", "/agents/unmap"),
                                        ("post", "/agents/import")])
def test_the_agents_pages_need_the_admin(client, method, url):
    data = {"csrf_token": csrf_token(client, "/auth/login")} if method == "post" else None
    response = getattr(client, method)(url, data=data)
    assert response.status_code == 302 and "/auth/login" in response.location


def test_the_navigation_links_the_agents_page(admin_client):
    html = page(admin_client, "/")
    assert '<a href="/agents/" class="">担当者</a>' in html
    assert '<a href="/agents/" class="on">担当者</a>' in page(admin_client)
    assert '<a href="/agents/" class="on">Agents</a>' in page(admin_client, lang="en")


def test_map_unmap_and_import_without_the_csrf_token_are_refused(admin_client, connected_store, emu):
    uid = user_id(emu, "yamada@agents.example")
    response = admin_client.post("/agents/map", data={"agent_id": "1001", "user_id": uid})
    assert response.status_code == 400 and mapped(connected_store) == {}
    agents.map_agent(connected_store, "1002", agents.SalesforceUser(uid, "山田 花子", "yamada@agents.example", ""))
    response = admin_client.post("/agents/unmap", data={"agent_id": "1002"})
    assert response.status_code == 400 and mapped(connected_store) == {"1002": "yamada@agents.example"}
    response = upload(admin_client, b"agent_id,username\r\n1003,sato@agents.example\r\n", with_token=False)
    assert response.status_code == 400 and mapped(connected_store) == {"1002": "yamada@agents.example"}
    assert "フォームを受け付けられませんでした" in response.get_data(as_text=True)


# -- the user search and mapping ---------------------------------------------------------------

def test_an_agent_is_mapped_through_the_user_search(admin_client, connected_store, emu):
    html = page(admin_client, "/agents/?agent_id=1001&q=山田")
    users = section(html, "users")
    assert "山田 花子" in users and "yamada@agents.example" in users and "hanako.yamada@mail.example" in users
    assert "佐藤" not in users and "管理" not in users
    uid = re.search(r'name="user_id" value="([^"]+)"', users).group(1)
    assert uid == user_id(emu, "yamada@agents.example")
    assert re.search(r'name="agent_id" value="1001"', users)
    response = map_by_post(admin_client, "1001", uid)
    assert response.status_code == 302 and response.location.endswith("/agents/")
    assert "担当者 1001 に 山田 花子（yamada@agents.example）を設定しました。" in flashes(admin_client)
    table = section(page(admin_client), "mappings")
    assert re.search(r"<td>1001</td><td>山田 花子</td><td>yamada@agents.example</td>"
                     r"<td>hanako.yamada@mail.example</td>", table)
    stored = agents.list_mappings(connected_store)
    assert [(m["agent_id"], m["user_id"]) for m in stored] == [("1001", uid)]


def test_mapping_again_replaces_the_user_and_the_page_says_who_is_mapped_now(admin_client, connected_store, emu):
    map_by_post(admin_client, "1001", user_id(emu, "yamada@agents.example"))
    html = page(admin_client, "/agents/?agent_id=1001&q=sato")
    assert "担当者 1001 には現在 山田 花子（yamada@agents.example）が設定されています。" in html
    map_by_post(admin_client, "1001", user_id(emu, "sato@agents.example"))
    assert mapped(connected_store) == {"1001": "sato@agents.example"}


def test_a_blank_search_lists_every_active_user_and_never_an_inactive_one(admin_client, connected_store):
    users = section(page(admin_client, "/agents/?agent_id=1001&q="), "users")
    for user in USERS:
        assert (user["Username"] in users) == user.get("IsActive", True), user["Username"]
    html = page(admin_client, "/agents/?agent_id=1001&q=tanaka")
    assert 'id="users"' not in html and "「tanaka」に一致する有効な Salesforce ユーザーはいません。" in html


def test_the_search_without_an_agent_id_lists_users_but_offers_no_map_button(admin_client, connected_store):
    html = page(admin_client, "/agents/?q=山田")
    assert "山田 花子" in section(html, "users")
    assert 'name="map_user"' not in html and 'id="enter-agent"' in html


def test_unmap_removes_the_mapping(admin_client, connected_store, emu):
    map_by_post(admin_client, "1001", user_id(emu, "yamada@agents.example"))
    map_by_post(admin_client, "1002", user_id(emu, "sato@agents.example"))
    response = post_form(admin_client, "/agents/unmap", {"agent_id": "1001", "unmap": "1"})
    assert response.status_code == 302
    assert "担当者 1001 の設定を解除しました。" in flashes(admin_client)
    assert mapped(connected_store) == {"1002": "sato@agents.example"}
    assert "<td>1001</td>" not in section(page(admin_client), "mappings")
    post_form(admin_client, "/agents/unmap", {"agent_id": "1001", "unmap": "1"})
    assert "担当者 1001 には Salesforce ユーザーが設定されていません。" in flashes(admin_client)


def test_an_inactive_or_made_up_user_is_never_mapped(admin_client, connected_store, emu):
    for uid in (user_id(emu, "tanaka@agents.example"), "005000000000000AAA", "' OR Id != '",
                "yamada@agents.example", "", "0" * 5000):
        response = map_by_post(admin_client, "1001", uid)
        assert response.status_code == 302
        assert "この ID の有効な Salesforce ユーザーはいません" in flashes(admin_client)
    assert mapped(connected_store) == {}


HOSTILE_AGENT_IDS = ["", "   ", "x" * 201, "10\x0001", "10\r\n01", "\u202e1001", "10\u200f01", "\x1b[31m1"]


@pytest.mark.parametrize("agent_id", HOSTILE_AGENT_IDS)
def test_a_hostile_agent_id_gets_a_clear_error_and_maps_nothing(admin_client, connected_store, emu, agent_id):
    response = map_by_post(admin_client, agent_id, user_id(emu, "yamada@agents.example"))
    assert response.status_code == 302
    assert "担当者 ID は 1〜200 文字で" in flashes(admin_client)
    assert mapped(connected_store) == {}
    if agent_id.strip():   # the search form says it at the field, and offers no map button
        html = page(admin_client, "/agents/?" + "&".join(
            ["q=山田", "agent_id=" + urllib.parse.quote(agent_id)]))
        assert re.search(r'<div class="field has-error">\s*<label for="agent_id">', html)
        assert 'name="map_user"' not in html


def test_markup_in_agent_ids_and_user_names_is_shown_as_text(admin_client, connected_store, emu):
    agent_id = '<script>alert(1)</script>"\'&'
    map_by_post(admin_client, agent_id, user_id(emu, "markup@agents.example"))
    html = page(admin_client)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert str(escape(agent_id)) in section(html, "mappings")
    assert str(escape("<img src=x onerror=alert(1)> Evil")) in section(html, "mappings")
    assert mapped(connected_store) == {agent_id: "markup@agents.example"}


@pytest.mark.parametrize("text", ["' OR Name != '", "%", "_", "山田' OR IsActive = false OR Name = '",
                                  "\\", "%' OR '1'='1", "*) OR (Name LIKE '%"])
def test_soql_in_the_search_box_stays_a_search(admin_client, connected_store, text):
    html = page(admin_client, "/agents/?agent_id=1001&q=" + urllib.parse.quote(text))
    assert 'id="users"' not in html       # an injection would have listed users
    assert "一致する有効な Salesforce ユーザーはいません" in html


@pytest.mark.parametrize("text", ["x" * 81, "<script>alert(1)</script>", "山田\x00", "\u202e山田", "１００１"])
def test_hostile_search_text_never_breaks_the_page(admin_client, connected_store, text):
    response = admin_client.get("/agents/?agent_id=1001&q=" + urllib.parse.quote(text))
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<script>alert" not in html and "Traceback" not in html
    if len(text) > 80:
        assert re.search(r'<div class="field has-error">\s*<label for="q">', html)


def test_the_search_says_when_salesforce_is_not_connected(admin_client, store):
    entry = entry_for("NOT_CONFIGURED")
    html = page(admin_client, "/agents/?agent_id=1001&q=山田")
    box = section(html, "search-failure")
    assert str(escape(entry.message_ja)) in html and str(escape(entry.remedy_ja)) in html and box
    html = page(admin_client, "/agents/?agent_id=1001&q=山田", lang="en")
    assert str(escape(entry.message_en)) in html and str(escape(entry.remedy_en)) in html


def test_the_search_and_the_map_button_say_what_to_do_when_salesforce_fails(admin_client, connected_store, emu):
    from core.errors import list_errors

    emu.faults.set(http_status=503)
    entry = entry_for("SERVER_UNAVAILABLE")
    html = page(admin_client, "/agents/?agent_id=1001&q=山田")
    assert 'id="search-failure"' in html and str(escape(entry.remedy_ja)) in html
    response = map_by_post(admin_client, "1001", user_id(emu, "yamada@agents.example"))
    assert response.status_code == 302
    assert str(escape(entry.remedy_ja)) in flashes(admin_client)
    assert mapped(connected_store) == {}
    assert [row["operation"] for row in list_errors(connected_store, limit=50)] == ["agents"]


# -- agents seen in calls ----------------------------------------------------------------------

def test_agents_seen_in_calls_and_not_mapped_are_listed_with_a_link_to_map_them(admin_client, connected_store, emu):
    record_call(connected_store, "c-1", "2001", minutes_ago=30)
    record_call(connected_store, "c-2", "2001", minutes_ago=5)
    record_call(connected_store, "c-3", "2002", minutes_ago=60)
    record_call(connected_store, "c-4", "1001", minutes_ago=1)
    map_by_post(admin_client, "1001", user_id(emu, "yamada@agents.example"))
    table = section(page(admin_client), "unknown-agents")
    rows = re.findall(r"<tr><td>(.*?)</td><td class=\"num\">(\d+)</td>", table)
    assert rows == [("2001", "2"), ("2002", "1")]        # the most recently seen first
    assert 'href="/agents/?agent_id=2001#map"' in table
    html = page(admin_client, "/agents/?agent_id=2001")
    assert re.search(r'id="agent_id" name="agent_id"[^>]*value="2001"', html)


def test_the_unknown_agents_list_says_when_every_agent_is_mapped(admin_client, connected_store):
    assert "応対履歴の担当者はすべて設定済みです。" in page(admin_client)


# -- the mappings table ------------------------------------------------------------------------

def test_the_mappings_are_searchable_and_paged(admin_client, connected_store):
    for n in range(60):
        agents.map_agent(connected_store, f"ag{n:03d}",
                         agents.SalesforceUser(f"005000000000{n:03d}", f"User {n}", f"u{n}@agents.example", ""))
    first = section(page(admin_client), "mappings")
    assert first.count('class="mapping"') == 50 and "<td>ag000</td>" in first
    second = page(admin_client, "/agents/?page=2")
    assert section(second, "mappings").count('class="mapping"') == 10 and "<td>ag059</td>" in second
    found = section(page(admin_client, "/agents/?find=u42%40"), "mappings")
    assert found.count('class="mapping"') == 1 and "<td>ag042</td>" in found
    assert "「nobody」に一致する設定済みの担当者はいません。" in page(admin_client, "/agents/?find=nobody")


# -- CSV export and import ---------------------------------------------------------------------

def export(client) -> list[list[str]]:
    response = client.get("/agents/export.csv")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="sfcti-agents.csv"'
    assert response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def test_the_export_lists_every_mapping(admin_client, connected_store, emu):
    map_by_post(admin_client, "1001", user_id(emu, "yamada@agents.example"))
    map_by_post(admin_client, "1002", user_id(emu, "sato@agents.example"))
    rows = export(admin_client)
    assert rows[0] == ["agent_id", "username", "email", "name", "user_id"]
    assert rows[1:] == [["1001", "yamada@agents.example", "hanako.yamada@mail.example", "山田 花子",
                         user_id(emu, "yamada@agents.example")],
                        ["1002", "sato@agents.example", "sato@agents.example", "佐藤 健一",
                         user_id(emu, "sato@agents.example")]]


FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)"]


def test_exported_cells_never_start_a_spreadsheet_formula(admin_client, connected_store, emu):
    for n, agent_id in enumerate(FORMULAS):
        map_by_post(admin_client, agent_id, user_id(emu, "yamada@agents.example"))
    rows = export(admin_client)[1:]
    assert len(rows) == len(FORMULAS)
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert sorted(row[0] for row in rows) == sorted("'" + f for f in FORMULAS)


def test_an_export_imports_back_as_it_was(admin_client, connected_store, emu):
    for agent_id, username in (("1001", "yamada@agents.example"), ("受付2", "sato@agents.example"),
                               (FORMULAS[0], "obrien@agents.example")):
        map_by_post(admin_client, agent_id, user_id(emu, username))
    before = mapped(connected_store)
    data = admin_client.get("/agents/export.csv").get_data()
    for agent_id in before:
        agents.unmap_agent(connected_store, agent_id)
    response = upload(admin_client, data)
    assert response.status_code == 302
    assert "設定した担当者: 3 件、変更なし: 0 件" in flashes(admin_client)
    assert mapped(connected_store) == before
    upload(admin_client, data)
    assert "設定した担当者: 0 件、変更なし: 3 件" in flashes(admin_client)


def test_a_good_file_maps_by_username_email_or_user_id(admin_client, connected_store, emu):
    uid = user_id(emu, "obrien@agents.example")
    data = ("agent_id,username,email,user_id\r\n"
            "1001,yamada@agents.example,,\r\n"
            "1002,,sato@agents.example,\r\n"
            f"1003,,,{uid}\r\n").encode()
    upload(admin_client, data)
    assert "設定した担当者: 3 件" in flashes(admin_client)
    assert mapped(connected_store) == {"1001": "yamada@agents.example", "1002": "sato@agents.example",
                                       "1003": "obrien@agents.example"}


def test_a_shift_jis_file_from_excel_imports(admin_client, connected_store):
    upload(admin_client, "agent_id,email\r\n受付１,sato@agents.example\r\n".encode("cp932"))
    assert mapped(connected_store) == {"受付１": "sato@agents.example"}


def test_a_file_with_bad_rows_lists_each_and_changes_nothing(admin_client, connected_store, emu):
    map_by_post(admin_client, "kept", user_id(emu, "yamada@agents.example"))
    data = ("agent_id,username\r\n"
            "1001,sato@agents.example\r\n"            # line 2: good
            "1002,nobody@agents.example\r\n"          # line 3: no such user
            "1001,yamada@agents.example\r\n"          # line 4: agent of line 2 again
            ",sato@agents.example\r\n"                # line 5: no agent id
            f"{'x' * 201},sato@agents.example\r\n"    # line 6: agent id too long
            "1006,tanaka@agents.example\r\n"          # line 7: inactive user
            "1007,\r\n").encode()                     # line 8: no user
    response = upload(admin_client, data)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "CSV ファイルは取り込まれませんでした。何も変更されていません。" in html
    rows = dict(re.findall(r'<tr><td class="num">(\d+)</td><td>(.*?)</td></tr>', section(html, "rejected-rows")))
    assert sorted(map(int, rows)) == [3, 4, 5, 6, 7, 8]
    assert "nobody@agents.example" in rows["3"]
    assert "2 行目" in rows["4"]
    assert "1〜200 文字" in rows["5"] and "1〜200 文字" in rows["6"]
    assert "tanaka@agents.example" in rows["7"]
    assert mapped(connected_store) == {"kept": "yamada@agents.example"}


def test_the_reasons_are_in_english_on_the_english_page(admin_client, connected_store):
    page(admin_client, lang="en")
    html = upload(admin_client, b"agent_id,username\r\n,x@agents.example\r\n").get_data(as_text=True)
    assert "An agent id must be 1 to 200 printable characters." in section(html, "rejected-rows")


@pytest.mark.parametrize("data,expected", [
    (b"", "1 行目に列名"),
    (b"1001,yamada@agents.example\r\n", "1 行目に列名"),
    (b"agent_id,username\r\n", "見出し行の下に行がありません"),
    (b"agent_id,username\r\n1001,\x82\xff\x81 \r\n", "UTF-8 でも Shift_JIS"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "NUL"),
    (b"agent_id,username\r\n1001,yamada@agents.example\x00\r\n", "NUL"),
    (b"agent_id,username\r\n" + b"1,a\r\n" * 10_001, "10000 行を超えています"),
    (b"agent_id,username\r\n" + b"x" * 2_000_001, "2 MB を超えています"),
])
def test_a_bad_file_gets_a_clear_message_and_changes_nothing(admin_client, connected_store, data, expected):
    response = upload(admin_client, data)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Traceback" not in html
    assert "何も変更されていません" in html and expected in section(html, "rejected-rows")
    assert mapped(connected_store) == {}


def test_a_ten_megabyte_file_is_refused_with_a_message(admin_client, connected_store):
    response = upload(admin_client, b"agent_id,username\r\n" + b"1001,yamada@agents.example\r\n" * 370_000)
    assert response.status_code == 302 and response.location.endswith("/agents/")
    assert "ファイルが大きすぎます（最大 2 MB）。" in flashes(admin_client)
    assert mapped(connected_store) == {}


def test_importing_without_a_file_says_choose_one(admin_client, connected_store):
    response = post_form(admin_client, "/agents/import", {"import_csv": "1"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "CSV ファイルを選んでください。" in html


def test_an_import_while_salesforce_is_not_connected_says_what_to_do(admin_client, store):
    response = upload(admin_client, b"agent_id,username\r\n1001,yamada@agents.example\r\n")
    html = response.get_data(as_text=True)
    entry = entry_for("NOT_CONFIGURED")
    assert 'id="import-failure"' in html and str(escape(entry.remedy_ja)) in html
    assert "何も変更されていません" in html and mapped(store) == {}
