"""Text-direction and control characters a phone system delivers in an agent id or a number are
stored exactly, but never shown as they are (issue 13): an RTL override would make what follows
it read backwards in the admin and in a terminal. The admin pages and the CLI show each of them
as U+FFFD; the CLI's JSON writes them as \\u escapes, which decode to the stored value."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from core import history
from helpers import ROOT, end, make_host, ring

RLO = "\u202e"                       # RIGHT-TO-LEFT OVERRIDE
AGENT = RLO + "1001"                 # reads "1001" backwards after the override
NUMBER = "03-1234-5678" + RLO + "9"  # a garbled number that stays invalid
# every character that can reorder text, each in its own value
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
        "\u200e", "\u200f", "\u061c"]
FFFD = "\ufffd"


@pytest.fixture
def calls(store):
    """One answered call whose agent id and number carry an RTL override, through the host."""
    placed, _, _ = ring(make_host(), NUMBER, agent_id=AGENT)
    placed.call_id = "bidi-" + RLO + "call"
    end(make_host(), placed)
    [row] = history.list_calls(store)
    assert (row["agent_id"], row["remote_number"]) == (AGENT, NUMBER)  # stored exactly
    return row


def sfcti(home, *args):
    env = dict(os.environ, SFCTI_HOME=str(home), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", "from cli import main; main()", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_printable_replaces_every_direction_and_control_character():
    from core.display import printable

    for char in BIDI + ["\x00", "\x1b", "\x7f", "\x85", "\u2028", "\ud800"]:
        assert printable(f"a{char}b") == f"a{FFFD}b"
    assert printable("  山田 太郎\n") == "山田 太郎"
    assert printable(None) == "" and printable(42) == ""


def test_the_call_history_page_neutralises_the_agent_and_number(admin_client, calls):
    admin_client.get("/lang/en")
    html = admin_client.get("/calls/").get_data(as_text=True)
    assert RLO not in html
    assert f"<td>{FFFD}1001</td>" in html


def test_the_agents_page_neutralises_an_agent_seen_in_calls(admin_client, calls):
    html = admin_client.get("/agents/").get_data(as_text=True)
    assert RLO not in html
    assert f"<td>{FFFD}1001</td>" in html
    assert "agent_id=%E2%80%AE1001" in html   # the link still maps the exact agent id


def test_sfcti_history_shows_the_marker_and_its_json_decodes_to_the_stored_value(home, calls):
    table = sfcti(home, "history")
    assert RLO not in table
    line = table.splitlines()[1]
    assert f"{FFFD}1001" in line and f"bidi-{FFFD}call" in line
    text = sfcti(home, "history", "--json")
    assert RLO not in text and "\\u202e" in text
    [row] = json.loads(text)
    assert (row["agent_id"], row["remote_number"]) == (AGENT, NUMBER)
    assert row["call_id"] == calls["call_id"]


def test_sfcti_agents_unknown_shows_the_marker(home, calls):
    table = sfcti(home, "agents", "unknown")
    assert RLO not in table and f"{FFFD}1001" in table
    text = sfcti(home, "agents", "unknown", "--json")
    assert RLO not in text
    assert [r["agent_id"] for r in json.loads(text)] == [AGENT]


def test_a_task_never_carries_the_override(store):
    from core.activity import call_object, description, subject
    from core.settings import Settings

    call = dict(call_id="c" + RLO, agent_id=AGENT, remote_number=NUMBER, display_number=None,
                direction="inbound", answered=1, duration_seconds=5,
                started_at="2024-01-01T00:00:00+00:00")
    settings = Settings()
    for text in (subject(call, None, settings), description(call, settings, None),
                 call_object(call["call_id"])):
        assert RLO not in text and FFFD in text


def test_chromium_shows_the_marker_in_the_agent_cell(page, admin_server, served_store):
    from core import registration
    from core.settings import Settings
    from helpers import browser_login
    from plugin.call import Call

    call = Call(call_id="bidi-browser", remote_number=NUMBER, agent_id=AGENT)
    facts = history.call_facts(call.end())
    registration.record_ended_call(served_store, facts, {}, None, Settings())
    browser_login(page, admin_server.url)
    page.goto(admin_server.url + "/calls/")
    row = page.locator("tbody tr").first
    assert RLO not in row.inner_text()
    assert row.locator("td").nth(6).inner_text() == FFFD + "1001"


def test_the_error_log_page_neutralises_a_call_id_and_detail(admin_client, store):
    from core.errors import record_failure

    record_failure(store, "salesforce", "lookup", "SERVER_ERROR", detail="Salesforce said " + AGENT,
                   call_id="bidi-" + RLO + "call")
    html = admin_client.get("/errors/").get_data(as_text=True)
    assert RLO not in html
    assert f"bidi-{FFFD}call" in html and f"Salesforce said {FFFD}1001" in html


# ---------------------------------------------------------------------------------------------
# every page and every command: text from Salesforce, a host or the error log, shown through one
# door per channel (the admin's Jinja finalize, the CLI's echo)
# ---------------------------------------------------------------------------------------------

COMPANY = "株式会社" + RLO + "ABC"                        # an Account name read backwards after "会社"
PERSON_LAST, PERSON_FIRST = "\u2067山田", "太郎\u2069"    # an isolate around a Contact's name
USER_FIRST, USER_LAST = "\u202b花子", "佐藤\u200f"        # a Salesforce user's name
DETAIL = "Salesforce said " + "".join(BIDI)               # every direction character in one detail
TASK_REFUSAL = "件名が" + RLO + "不正です"                  # a validation rule's message for a Task
SUBJECT = "着信 {name}" + RLO                              # a setting typed before settings refused it
MAPPED_AGENT = "2002"


def marked(text: str) -> str:
    """``text`` as the tests expect it shown: each direction character as U+FFFD."""
    return "".join(FFFD if ch in BIDI else ch for ch in text)


def assert_neutral(text: str, where: str) -> None:
    raw = sorted({f"U+{ord(ch):04X}" for ch in text if ch in BIDI})
    assert not raw, f"{where} shows {raw} as they are"
    assert FFFD in text, f"{where} shows no U+FFFD"


@pytest.fixture
def world(sf_store, sf_emu, calls):
    """Direction characters everywhere they can come from: a Salesforce Account, Contact and
    user created in the emulator, a call that resolved and registered them, its agent mapped to
    that user, a Task Salesforce refused with such a message, an error detail, a setting; plus
    the host's call whose agent id and number carry an RTL override (``calls``)."""
    from core import activity, agents
    from core.errors import record_failure
    from core.salesforce import connection_for
    from core.settings import save_settings
    from helpers import fresh, runtime

    store = sf_store
    national, e164 = fresh()
    account = sf_emu.add_record("Account", {"Name": COMPANY, "Phone": national})
    sf_emu.add_record("Contact", {"LastName": PERSON_LAST, "FirstName": PERSON_FIRST,
                                  "AccountId": account, "Phone": national})
    username = f"hanako-{e164[1:]}@bidi.example"
    sf_emu.add_record("User", {"Username": username, "FirstName": USER_FIRST,
                               "LastName": USER_LAST, "Email": username})
    save_settings(store, {"contact_fetch": "after_call", "activity_logging": True})
    with store.transaction() as db:   # saved by a version that still took text-direction characters
        db.execute("INSERT OR REPLACE INTO settings (name, value, encrypted) "
                   "VALUES ('activity_subject', ?, 0)", [SUBJECT])
    placed, display, _ = ring(make_host(), national, agent_id=MAPPED_AGENT)
    assert display["company"] == COMPANY                 # resolved exactly
    end(make_host(), placed)
    runtime().wait_idle(timeout=10)
    [contact] = store.list_contacts()
    assert (contact["company"], contact["e164"]) == (COMPANY, e164)   # registered exactly
    user = agents.find_users(connection_for(store), [username])[username]
    agents.map_agent(store, MAPPED_AGENT, user)
    sf_emu.add_validation_rule("Task", TASK_REFUSAL, lambda fields: True)
    report = activity.send(store, force=True)
    assert report.failed >= 1, report
    record_failure(store, "salesforce", "lookup", "SERVER_ERROR", detail=DETAIL,
                   call_id="bidi-" + RLO + "call")
    return dict(store=store, national=national, e164=e164, username=username,
                user_name=user.name, call_id=placed.call_id)


# the admin's pages a logged-in user can open without a query (each must show no raw character)
ADMIN_PAGES = ["/", "/calls/", "/contacts/", "/agents/", "/errors/", "/errors/common",
               "/settings/", "/index/", "/alerts/", "/auth/password"]


def test_every_admin_page_shows_the_marker_where_the_text_came_from_outside(admin_client, world):
    admin_client.get("/lang/en")
    pages = {url: admin_client.get(url) for url in ADMIN_PAGES}
    pages["/agents/?q=佐藤"] = admin_client.get("/agents/?q=佐藤")           # asks Salesforce
    pages["/agents/?agent_id=2002"] = admin_client.get("/agents/?agent_id=2002")
    for url, response in pages.items():
        assert response.status_code == 200, url
        # a form field holds the exact value, so that saving the form keeps it
        html = re.sub(r"<input [^>]*>", "", response.get_data(as_text=True))
        raw = sorted({f"U+{ord(ch):04X}" for ch in html if ch in BIDI})
        assert not raw, f"{url} shows {raw} as they are"
    text = {url: r.get_data(as_text=True) for url, r in pages.items()}
    assert f'value="{SUBJECT}"' in text["/settings/"]
    company, person = marked(COMPANY), marked(f"{PERSON_LAST} {PERSON_FIRST}")
    assert f">{company}</a>" in text["/calls/"] and f"<td>{person}</td>" in text["/calls/"]
    assert f"<td>{FFFD}1001</td>" in text["/calls/"]
    assert marked(TASK_REFUSAL) in text["/calls/"]
    assert f">{company}</a>" in text["/contacts/"] and f"<td>{person}</td>" in text["/contacts/"]
    assert f"<td>{marked(world['user_name'])}</td>" in text["/agents/"]           # mapped
    assert f"<td>{FFFD}1001</td>" in text["/agents/"]                              # unknown
    assert f"<td>{marked(world['user_name'])}</td>" in text["/agents/?q=佐藤"]      # search
    assert f"<pre>{marked(DETAIL)}</pre>" in text["/errors/"]
    assert f"bidi-{FFFD}call" in text["/errors/"]
    assert marked(TASK_REFUSAL) in text["/errors/"]


def test_a_value_formatted_into_a_translated_text_is_neutralised_too(admin_client, world):
    admin_client.get("/lang/en")
    html = admin_client.get("/agents/?agent_id=2002").get_data(as_text=True)
    # the user's name reaches the page as a %(name)s of _(): formatted into Markup by Jinja
    assert (f"Agent 2002 is mapped to {marked(world['user_name'])} ({world['username']}) now"
            in html)


def test_macros_still_render_html_escaped_once(admin_client, world, sf_emu):
    from core.settings import save_settings

    sf_emu.add_record("Account", {"Name": "<b>太字</b> & " + RLO, "Phone": "03-6999-0001"})
    admin_client.get("/lang/en")
    html = admin_client.get("/contacts/").get_data(as_text=True)
    # record_link's <a> is HTML, its text (a str) is escaped once and neutralised
    assert '<a href="https://' in html and 'target="_blank" rel="noopener noreferrer">' in html
    assert "&lt;a href" not in html and "&amp;lt;" not in html and "&amp;amp;" not in html
    # the field macro's <input> and a translated text with markup-like values stay HTML
    assert '<input ' in html and 'name="q"' in html
    save_settings(world["store"], {"alert_recipients": "ops@example.com"})
    page = admin_client.get("/alerts/").get_data(as_text=True)
    assert 'value="ops@example.com"' in page


CLI_PLAIN = [("history",), ("errors",), ("errors", "--lang", "en"), ("agents", "unknown"),
             ("agents", "list"), ("agents", "search", "佐藤"), ("settings", "show")]
CLI_JSON = [("history", "--json"), ("errors", "--json"), ("agents", "unknown", "--json"),
            ("agents", "list", "--json"), ("agents", "search", "佐藤", "--json"),
            ("settings", "show", "--json")]


def cli_out(home, *args):
    from helpers import run_cli

    result = run_cli(home, *args)
    assert result.exit_code == 0, (args, result.output)
    return result.output


def test_every_command_printing_outside_text_shows_the_marker(home, world):
    for args in CLI_PLAIN:
        assert_neutral(cli_out(home, *args), " ".join(args))
    history_table = cli_out(home, "history")
    assert marked(COMPANY) in history_table and marked(f"{PERSON_LAST} {PERSON_FIRST}") in history_table
    assert f"{FFFD}1001" in history_table
    errors = cli_out(home, "errors", "--lang", "en")
    assert f"detail: {marked(DETAIL)}" in errors and f"call: bidi-{FFFD}call" in errors
    assert marked(world["user_name"]) in cli_out(home, "agents", "list")
    assert marked(world["user_name"]) in cli_out(home, "agents", "search", "佐藤")
    assert marked(SUBJECT) in cli_out(home, "settings", "show")


def test_looking_up_and_calling_show_the_marker(home, world):
    lookup = cli_out(home, "lookup", world["national"])
    assert_neutral(lookup, "lookup")
    assert marked(COMPANY) in lookup
    screen = cli_out(home, "call", "inbound", world["national"], "--agent", MAPPED_AGENT)
    assert_neutral(screen, "call")
    assert marked(f"{COMPANY} / {PERSON_LAST} {PERSON_FIRST}") in screen
    mapped = cli_out(home, "agents", "map", "2003", world["username"])
    assert_neutral(mapped, "agents map")
    assert marked(world["user_name"]) in mapped


def test_json_output_escapes_the_characters_and_decodes_to_the_stored_values(home, world):
    for args in CLI_JSON:
        text = cli_out(home, *args)
        raw = sorted({f"U+{ord(ch):04X}" for ch in text if ch in BIDI})
        assert not raw, f"{' '.join(args)} prints {raw} as they are"
    [error] = [r for r in json.loads(cli_out(home, "errors", "--json")) if r["detail"] == DETAIL]
    assert error["call_id"] == "bidi-" + RLO + "call"
    assert world["user_name"] in [r["user_name"] for r in
                                  json.loads(cli_out(home, "agents", "list", "--json"))]
    assert json.loads(cli_out(home, "settings", "show", "--json"))["activity_subject"] == SUBJECT
    for args in [("lookup", world["national"], "--json"),
                 ("call", "inbound", world["national"], "--json"),
                 ("refetch", world["call_id"])]:
        text = cli_out(home, *args)
        assert not any(ch in BIDI for ch in text), args
        assert json.loads(text.splitlines()[0] if args[0] == "call" else text)["company"] == COMPANY


def test_an_error_message_quoting_a_typed_value_shows_the_marker(tmp_path):
    from helpers import run_cli

    folder = tmp_path / ("instance-" + RLO + "old")     # a folder with no instance in it
    result = run_cli(folder, "history")
    assert result.exit_code == 1
    assert RLO not in result.output and f"instance-{FFFD}old" in result.output


def test_chromium_shows_the_marker_for_a_salesforce_name(page, admin_server, served_store, sf_emu):
    from core import jobs, registration
    from core.resolver import Resolver
    from core.settings import Settings, save_settings
    from helpers import browser_login, fresh, save_emu_settings
    from plugin.call import Call

    national, _ = fresh()
    sf_emu.add_record("Account", {"Name": COMPANY, "Phone": national})
    save_emu_settings(served_store, sf_emu)
    save_settings(served_store, {"contact_fetch": "after_call"})
    display = Resolver(served_store).resolve(national)
    call = Call(call_id="bidi-sf-browser", remote_number=national, agent_id=AGENT)
    registration.record_ended_call(served_store, history.call_facts(call.end()), display, None,
                                   Settings())
    jobs.register_contacts_for_day(served_store, None, force=True)
    browser_login(page, admin_server.url)
    for path in ("/calls/", "/contacts/"):
        page.goto(admin_server.url + path)
        shown = page.locator("main").inner_text()
        assert not any(ch in BIDI for ch in shown), path
        link = page.locator("tbody tr").first.locator("a", has_text="株式会社")
        assert link.inner_text() == marked(COMPANY), path
        assert link.get_attribute("href").startswith("https://"), path
