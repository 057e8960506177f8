"""A call through the Kamailio bridge ends as a Salesforce Task: a real Kamailio running the cfg
`sfcti kamailio-config` prints, real baresip phones, the local Salesforce emulator behind it.

Kamailio's workers only queue the Task (``SFCTI_SEND_TASKS=off``: a worker's threads run only
while it handles a message); what sends it is ``core.activity.send``, the job `sfcti serve`'s
scheduler runs every 15 seconds beside Kamailio.
"""

from __future__ import annotations

import html
import time
import uuid

import pytest
from click.testing import CliRunner

from cli import main
from core import activity
from core.runtime import TASK_GATHER_SECONDS
from helpers import client_for, trusting_session
from sip import Pbx

AGENT = "agent"
CONTACT_NUMBER = "0312345678"       # sample org: 株式会社サンプル / 山田 太郎 (Contact)
UNKNOWN_NUMBER = "0398760000"       # no record in the sample org
TALK_SECONDS = 2.0


@pytest.fixture(scope="module")
def pbx(tmp_path_factory, emulator_server):
    """Kamailio and phones on an instance connected to the sample org."""
    pbx = Pbx(tmp_path_factory.mktemp("tasks-pbx"), emulator_server, "--agent-address", "127.0.0.1",
              "--agent-user", AGENT, "--children", "2")
    try:
        pbx.start()
        yield pbx
    finally:
        pbx.stop()


def the_contact(emulator) -> dict:
    """The sample org's Contact whose number the caller has (as the test data put it there)."""
    return next(r for r in emulator.org.records["Contact"]
                if (r.get("LastName"), r.get("FirstName"), r.get("Phone")) == ("山田", "太郎", "03-1234-5678"))


def tasks_for(emulator, call_id: str) -> list[dict]:
    """The Tasks Salesforce holds with ``CallObject = call_id``, read over simple-salesforce."""
    return client_for(emulator).query(
        "SELECT Id, CallObject, WhoId, WhatId, OwnerId, CallType, CallDurationInSeconds, Subject "
        f"FROM Task WHERE CallObject = '{call_id}'")["records"]


def ring_and_cancel(caller, agent) -> None:
    """A short unanswered call: Python runs in the worker for its INVITE and its end."""
    assert caller.dial(agent.uri)["ok"]
    agent.wait_event("CALL_INCOMING")
    caller.hangup()
    caller.wait_event("CALL_CLOSED")
    agent.wait_event("CALL_CLOSED")


def test_a_call_through_the_kamailio_bridge_ends_as_a_task(pbx, emulator):
    tag = uuid.uuid4().hex[:8]
    username = f"agent-{tag}@users.sfcti.example"
    user_id = emulator.add_record("User", {"Username": username, "Email": username,
                                           "LastName": "受付", "FirstName": tag})
    mapped = CliRunner().invoke(main, ["--home", str(pbx.home), "agents", "map", AGENT, username])
    assert mapped.exit_code == 0, mapped.output

    caller, agent = pbx.phone(CONTACT_NUMBER), pbx.phone(AGENT)
    assert caller.dial(agent.uri)["ok"]
    incoming = agent.wait_event("CALL_INCOMING")
    assert incoming["peerdisplayname"] == "株式会社サンプル / 山田 太郎"
    agent.accept()
    caller.wait_event("CALL_ESTABLISHED")
    time.sleep(TALK_SECONDS)
    caller.hangup()
    caller.wait_event("CALL_CLOSED")
    agent.wait_event("CALL_CLOSED")
    row = pbx.history_row(incoming["id"])
    assert (row["direction"], row["answered"], row["agent_id"]) == ("inbound", 1, AGENT)

    # Kamailio's workers queued the Task and did not send it, even once the gathering pause
    # is over and they have run Python for more calls (their threads run only then)
    time.sleep(TASK_GATHER_SECONDS + 0.5)
    for _ in range(3):
        ring_and_cancel(pbx.phone(UNKNOWN_NUMBER), agent)
    time.sleep(0.5)
    assert activity.get_state(pbx.store, row["call_id"])["state"] == activity.WAITING
    assert tasks_for(emulator, row["call_id"]) == []
    assert "collections" not in emulator.api_calls

    report = activity.send(pbx.store)           # what `sfcti serve` runs every 15 s
    assert report.logged >= 1 and report.failed == 0
    [task] = tasks_for(emulator, row["call_id"])
    contact = the_contact(emulator)
    assert (task["CallObject"], task["WhoId"], task["WhatId"]) == \
        (row["call_id"], contact["Id"], contact["AccountId"])
    assert (task["CallType"], task["OwnerId"]) == ("Inbound", user_id)
    assert TALK_SECONDS - 1 <= task["CallDurationInSeconds"] <= TALK_SECONDS + 3
    assert emulator.api_calls["collections"] == 1
    state = activity.get_state(pbx.store, row["call_id"])
    assert (state["state"], state["task_id"]) == (activity.LOGGED, task["Id"])

    # the contact's record page lists the call in its activity history
    page = trusting_session(emulator).get(f"{emulator.login_url}/lightning/r/Contact/{contact['Id']}/view")
    assert page.status_code == 200
    assert f"/lightning/r/Task/{task['Id']}/view" in page.text
    assert html.escape(task["Subject"], quote=False) in page.text
