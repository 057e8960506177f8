"""Text-direction and control characters a phone system delivers in an agent id or a number are
stored exactly, but never shown as they are (issue 13): an RTL override would make what follows
it read backwards in the admin and in a terminal. The admin pages and the CLI show each of them
as U+FFFD; the CLI's JSON writes them as \\u escapes, which decode to the stored value."""

from __future__ import annotations

import json
import os
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
