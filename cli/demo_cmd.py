"""`sfcti demo` (`make demo`): the whole product in one command.

Starts the emulator with a sample org, connects the instance to it, builds the phone index, maps
the demo's agents to the org's users, places simulated calls through the reference host (the
plugin loaded by its entry point), rings a caller stored in an odd format (named from the index,
no API call), registers the contacts, logs the calls as Salesforce Tasks (one API call for the
day), prints the annotated history and a record page listing its calls, then leaves the emulator
(and the admin, when present) running until Ctrl-C. Safe to run again on the same instance
folder: the calls of one day are recorded, and logged as Tasks, once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import os
import socket
import threading
import time

import click

from cli import echo

# (object, fields, contacts of that account): stored the way people type them; the demo dials
# them in other formats. The first is the README's example.
DEMO_RECORDS = [
    ("Account", {"Name": "株式会社サンプル", "LastModifiedDate": "2024-05-01T09:00:00.000+0000"},
     [{"LastName": "山田", "FirstName": "太郎", "Phone": "03-1234-5678",
       "LastModifiedDate": "2024-05-01T09:00:00.000+0000"}]),
    ("Account", {"Name": "株式会社デモ商事", "Phone": "03-5555-0101",
                 "LastModifiedDate": "2024-05-01T09:00:00.000+0000"},
     [{"LastName": "山田", "FirstName": "花子", "MobilePhone": "090-1234-5678",
       "LastModifiedDate": "2024-05-03T09:00:00.000+0000"}]),
    ("Lead", {"LastName": "見込", "FirstName": "一郎", "Company": "サンプル工業",
              "Phone": "(06) 6666-0202", "LastModifiedDate": "2024-05-02T09:00:00.000+0000"}, []),
    # a number a live lookup cannot find (SOQL compares the stored string exactly): a prefix,
    # U+2010 dashes and a note; the phone index reads it
    ("Account", {"Name": "株式会社表記ゆれ", "LastModifiedDate": "2024-05-01T09:00:00.000+0000"},
     [{"LastName": "表記", "FirstName": "揺子", "Phone": "TEL 03\u20105555\u20100303（代表）",
       "LastModifiedDate": "2024-05-04T09:00:00.000+0000"}]),
]
# the odd-format caller above, dialled as a carrier delivers it
ODD_CALL = ("inbound", "+81355550303", {"agent": "agent-02"})


def sample_org():
    """The ~1,000-record sample org (falls back to a small one without the data generator)."""
    try:
        from emulator import generate_org

        return generate_org(size=1000, seed=1, person_accounts=True)
    except (ImportError, AttributeError):
        from emulator import Org

        echo("(data generator not available: a small org is used)")
        return Org(person_accounts=True)


# the demo's agents and the users of the generated org (emulator/datagen.py DEMO_USERS) who own
# their answered calls' Tasks
DEMO_AGENTS = {"agent-01": "yamada@demo.sfcti.example", "agent-02": "sato@demo.sfcti.example",
               "agent-03": "suzuki@demo.sfcti.example"}
# the account whose record page the demo points to: three of the day's calls are its
TASKS_SHOWN_ON = "株式会社デモ商事"


def add_demo_records(emu) -> dict[str, str]:
    """The records whose numbers the demo dials in a different format than stored; returns
    ``{account or lead name: record Id}``."""
    ids = {}
    for object_name, fields, contacts in DEMO_RECORDS:
        record_id = ids[fields.get("Name") or fields.get("Company")] = emu.add_record(object_name, dict(fields))
        for contact in contacts:
            emu.add_record("Contact", dict(contact, AccountId=record_id))
    return ids


def org_numbers(org, count: int = 2) -> list[tuple[str, str]]:
    """(object, stored phone) of a few records of the generated org."""
    found = []
    for object_name in ("Contact", "Account"):
        for record in org.records.get(object_name, []):
            if record.get("Phone") and not record.get("IsPersonAccount"):
                found.append((object_name, record["Phone"]))
                break
    return found[:count]


def demo_calls(org) -> list[tuple[str, str, dict]]:
    """(direction, number as dialled, options) for each simulated call."""
    calls = [
        ("inbound", "+81312345678", {"agent": "agent-01"}),          # stored 03-1234-5678
        ("inbound", "+81355550101", {"agent": "agent-01"}),          # stored 03-5555-0101
        ("inbound", "０９０－１２３４－５６７８", {"agent": "agent-02"}),   # full-width, stored 090-1234-5678
        ("outbound", "06-6666-0202", {"agent": "agent-01"}),          # stored (06) 6666-0202
        ("inbound", "anonymous", {"agent": "agent-03"}),              # withheld
        ("inbound", "03-9876-0000", {"agent": "agent-02", "missed": True}),  # nobody has it
    ]
    for object_name, phone in org_numbers(org):
        calls.append(("outbound", phone, {"agent": "agent-03"}))
    calls.append(("inbound", "03-5555-0101", {"agent": "agent-01"}))  # again: from the cache
    return calls


def connect(store, emu) -> None:
    """Save the emulator as the instance's Salesforce connection."""
    from core.settings import save_settings

    save_settings(store, {"username": emu.username, "password": emu.password,
                          "security_token": emu.security_token, "login_url": emu.login_url,
                          "ca_bundle": emu.ca_path, "sandbox": False, "auth_method": "password"})
    forget_old_emulator_contacts(store, emu)


def forget_old_emulator_contacts(store, emu) -> None:
    """A re-run starts a new emulator on a new port: contacts registered from an earlier run
    would link to a server that is gone, so they are registered again."""
    store.forget_contacts_linked_elsewhere("https://127.0.0.1:", emu.login_url + "/")


def demo_call_ids(store, count: int) -> list[str]:
    """Ids for today's demo calls: the same on every run of one (local) day, so a re-run records
    nothing twice (the history keeps the first row of a call id)."""
    from core.settings import load_settings

    day = load_settings(store).local_day(dt.datetime.now(dt.timezone.utc))
    return [f"demo-{day}-{n:02d}" for n in range(1, count + 1)]


def recorded(store, call_ids: list[str]) -> set[str]:
    """Those of ``call_ids`` already in the history."""
    from core import history

    found = set()
    for call_id in call_ids:
        with contextlib.suppress(history.CallNotFound):
            history.get_call(store, call_id)
            found.add(call_id)
    return found


def place_calls(calls, call_ids: list[str]) -> None:
    """Place ``calls`` through the reference host with ``call_ids``, printing each screen."""
    from bridges.host import load_host
    from cli.host_cmd import place_call, screen_text

    pm = load_host()
    for (direction, number, options), call_id in zip(calls, call_ids):
        started = time.perf_counter()
        _, display = place_call(pm, direction, number, options.get("agent"),
                                options.get("missed", False), duration=42.0, call_id=call_id)
        elapsed = (time.perf_counter() - started) * 1000
        echo(screen_text(direction, number, display) + f"  ({elapsed:.0f} ms)")


def build_index(store) -> None:
    """Build the local phone index (the host's scheduler would, every few minutes) and say what
    it holds and what it cost."""
    from core import index, jobs

    verb = "Building" if index.status(store).state == "empty" else "Updating"
    echo(f"{verb} the phone index (every phone field of the org, read on our side)...")
    started = time.perf_counter()
    report = jobs.sync_index(store)
    seconds = time.perf_counter() - started
    if report.skipped or report.failed:
        echo(f"  not built ({report.skipped or report.failed}): calls are looked up live\n")
        return
    calls = f"{report.api_calls} API call{'' if report.api_calls == 1 else 's'}"
    echo(f"  {report.records} records, {index.status(store).numbers} numbers, {calls}, "
         f"{seconds:.1f} s\n")


def ring_odd_caller(emu, call_id: str) -> None:
    """Ring the caller whose number is stored in an odd format, showing that no API call is
    spent: the emulator's count of calls Salesforce bills, before and after."""
    stored = DEMO_RECORDS[-1][2][0]["Phone"]
    echo(f"\nA caller stored as {stored!r} rings for the first time:")
    before = emu.api_usage()[0]
    echo(f"  Salesforce API calls so far: {before}")
    place_calls([ODD_CALL], [call_id])
    after = emu.api_usage()[0]
    echo(f"  Salesforce API calls after the ring: {after} "
         f"({after - before} spent: named from the phone index)")


def say_what_was_recorded(call_ids: list[str], before: set[str]) -> None:
    """Tell whether this run added calls to the history or found today's already there."""
    new = len(call_ids) - len(before & set(call_ids))
    if new == len(call_ids):
        echo(f"\nRecorded today's {new} demo calls in the call history.")
    elif new == 0:
        echo(f"\nToday's {len(call_ids)} demo calls were already in the call history (an"
             " earlier run today): nothing was recorded twice. A run on another day adds"
             " that day's calls.")
    else:
        echo(f"\nRecorded {new} demo calls; {len(call_ids) - new} were already in the call"
             " history from an earlier run today.")


def print_history(store, call_ids: list[str]) -> None:
    """The history rows of this demo's calls, with the names registration added and the state
    of each call's Task."""
    from cli.host_cmd import NO_TASK, with_task_states
    from core import history

    echo("\nCall history (company / person filled in by contact registration; the Task):")
    rows = with_task_states(store, [history.get_call(store, call_id) for call_id in call_ids])
    for row in rows:
        names = " / ".join(n for n in (row["company"], row["person"]) if n) or "-"
        echo(f"  {row['direction']:<8} {row['display_number'] or row['remote_number']:<16} "
             f"{row['status']:<14} {'answered' if row['answered'] else 'missed':<8} "
             f"{row['duration_seconds'] or 0:>4.0f}s  {row['task_state'] or NO_TASK:<7}  {names}")


def map_agents(store) -> None:
    """Map the demo's agents to users of the org (what `sfcti agents map` does), so that each
    agent's answered calls become Tasks that agent's user owns."""
    from core import agents
    from core.salesforce import connection_for

    found = agents.find_users(connection_for(store), DEMO_AGENTS.values())
    mapped = []
    for agent, username in DEMO_AGENTS.items():
        user = found.get(username)
        if user is not None:
            agents.map_agent(store, agent, user)
            mapped.append(f"{agent} → {user.name}")
    echo(f"Agents mapped to Salesforce users: {', '.join(mapped) or 'none (no such users)'}\n")


def log_tasks(store, emu, record_ids: dict[str, str], call_ids: list[str]) -> None:
    """Send the outbox (what `sfcti serve` does every 15 s): the day's calls become Tasks in one
    sObject Collections request. Say what it cost and where the Tasks show."""
    from core import activity

    echo("\nLogging the calls as Salesforce Tasks (the outbox `sfcti serve` sends)...")
    before = emu.api_usage()[0]
    report = activity.send(store, force=True)
    spent = emu.api_usage()[0] - before
    states = activity.states_for(store, call_ids)
    logged = sum(1 for row in states.values() if row["state"] == activity.LOGGED)
    if report.logged:
        echo(f"  {report.logged} calls logged as Tasks with {spent} API "
             f"call{'' if spent == 1 else 's'} (up to 200 Tasks per call); {report.skipped} "
             "skipped (no matching record)")
        url = f"{emu.login_url}/lightning/r/Account/{record_ids[TASKS_SHOWN_ON]}/view"
        echo(f"  {TASKS_SHOWN_ON}'s calls in its activity history: {url}")
    elif logged:
        echo(f"  Today's {logged} calls were logged as Tasks by an earlier run today (in that"
             " run's emulator): nothing was logged twice.")
    if report.failed or report.stopped:
        echo(f"  not all were logged: {report.as_dict()} (see `sfcti errors`)")


# A demo instance is local and throw-away: a known password lets a newcomer log in at once.
DEMO_ADMIN_PASSWORD = "sfcti-demo"


def free_port(preferred: int = 5000) -> int:
    """``preferred`` when free on loopback, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            # as waitress binds: the last run's connections in TIME_WAIT do not hold the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    return preferred


def start_admin(home: str) -> bool:
    """Serve the admin in a daemon thread when cli/admin_cmd.py offers ``serve``."""
    try:
        admin_cmd = importlib.import_module("cli.admin_cmd")
    except ImportError:
        return False
    serve = getattr(admin_cmd, "serve", None)
    if serve is None:
        return False
    port = free_port()
    password = os.environ.get("SFCTI_ADMIN_PASSWORD") or DEMO_ADMIN_PASSWORD
    threading.Thread(target=serve, args=(home, "127.0.0.1", port),
                     kwargs={"admin_password": password}, daemon=True, name="sfcti-admin").start()
    time.sleep(1.0)  # let it print its URL before the closing lines
    user = os.environ.get("SFCTI_ADMIN_USER") or "admin"
    echo(f"Admin: http://127.0.0.1:{port}/  log in as {user!r} with password {password!r}"
         " (set when the demo instance was first created; SFCTI_ADMIN_PASSWORD overrides it"
         " on a new instance)")
    return True


def run_demo(home: str, wait: bool) -> None:
    """The demo, step by step."""
    from emulator import Emulator

    from core import jobs
    from core.store import open_store

    os.environ["SFCTI_HOME"] = home
    os.environ["SFCTI_JOBS"] = "off"   # the demo runs the registration itself
    os.environ["SFCTI_SEND_TASKS"] = "off"   # and sends the day's Tasks itself, as one batch
    store = open_store(home)
    org = sample_org()
    echo(f"Starting the Salesforce emulator ({_record_count(org)} records)...")
    with Emulator(org, cert_dir=os.path.join(home, "emulator")) as emu:
        record_ids = add_demo_records(emu)
        connect(store, emu)
        echo(f"Connected {home} to {emu.login_url} as {emu.username}\n")
        build_index(store)
        map_agents(store)
        calls = demo_calls(org)
        ids = demo_call_ids(store, len(calls) + 1)
        before = recorded(store, ids)
        place_calls(calls, ids[:-1])
        ring_odd_caller(emu, ids[-1])
        from core.runtime import runtime_for
        runtime_for().wait_idle(timeout=30)
        say_what_was_recorded(ids, before)
        echo("\nRegistering today's contacts (the nightly job, run now)...")
        report = jobs.register_contacts_for_day(store, force=True)
        echo(f"  {report.as_dict()}")
        log_tasks(store, emu, record_ids, ids)
        print_history(store, ids)
        if not wait:
            return
        if not start_admin(home):
            echo("\nAdmin: run `sfcti admin` in another terminal.")
        echo(f"\nThe emulator keeps running at {emu.login_url}. Ctrl-C to stop.")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            echo("Stopping.")


def register(group: click.Group) -> None:
    """Add `sfcti demo` to the CLI group."""

    @group.command("demo")
    @click.option("--no-wait", is_flag=True, help="Exit at the end instead of serving until Ctrl-C.")
    @click.pass_context
    def demo_command(ctx, no_wait):
        """Run the whole product against a local Salesforce emulator."""
        run_demo(ctx.obj["home"], wait=not no_wait)


def _record_count(org) -> int:
    counts = org.count() if hasattr(org, "count") else {}
    return sum(counts.values()) if isinstance(counts, dict) else int(counts or 0)
