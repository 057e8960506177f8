"""`sfcti call` prints the screen as soon as the hook answers, even while Salesforce hangs; the
end of the call and the background work come after (a real process, its stdout read line by
line with the time each line arrived)."""

import os
import subprocess
import sys
import threading
import time

from core.settings import save_settings
from helpers import ROOT, connect

BUDGET = 0.8
MARGIN = 0.5     # loading the plugin and opening the instance, on a busy test machine
READ_TIMEOUT = 3.0
READY = "-- cli loaded --"


def timed_lines(home, *args):
    """Run `sfcti ARGS`; returns ([(seconds after the CLI was loaded, line)], exit code, stderr)."""
    env = dict(os.environ, SFCTI_HOME=str(home), PYTHONPATH=str(ROOT))
    env.pop("SFCTI_JOBS", None)
    # the modules a call imports are loaded before the clock starts: import time is no part of
    # what the host waits for
    code = ("from cli import main; import bridges.host, core.runtime, core.salesforce, plugin.hooks; "
            f"print({READY!r}, flush=True); main()")
    process = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()), daemon=True)
    reader.start()
    lines, loaded = [], None
    for line in process.stdout:
        now = time.monotonic()
        if loaded is None and line.strip() == READY:
            loaded = now
            continue
        lines.append((now - loaded, line.rstrip("\n")))
    lines.append((time.monotonic() - loaded, "<exit>"))
    process.wait(timeout=60)
    reader.join(10)
    return lines, process.returncode, "".join(stderr)


def test_the_screen_is_printed_within_the_budget_while_salesforce_hangs(store, emulator, home):
    connect(store, emulator, read_timeout=READ_TIMEOUT, connect_timeout=READ_TIMEOUT)
    emulator.faults.hang = True
    lines, code, stderr = timed_lines(home, "call", "inbound", "03-1234-5678")
    assert code == 0, stderr
    [(screen_at, _)] = [(at, line) for at, line in lines if "status=unavailable" in line]
    assert screen_at < BUDGET + MARGIN, lines
    [(ended_at, _)] = [(at, line) for at, line in lines if line.startswith("call ")]
    exit_at = lines[-1][0]
    # the rest waited for Salesforce to time out, after the screen was out
    assert ended_at >= exit_at - 0.5 and exit_at >= READ_TIMEOUT, lines
    assert "Traceback" not in stderr


def test_json_is_printed_early_too_and_stays_one_document(store, emulator, home):
    import json

    connect(store, emulator, read_timeout=READ_TIMEOUT, connect_timeout=READ_TIMEOUT)
    emulator.faults.hang = True
    lines, code, stderr = timed_lines(home, "call", "inbound", "03-1234-5678", "--json")
    assert code == 0, stderr
    [(at, text), (exit_at, _)] = lines
    assert at < BUDGET + MARGIN and exit_at >= READ_TIMEOUT, lines
    display = json.loads(text)
    assert display["status"] == "unavailable" and display["number"] == "+81312345678"


def test_a_healthy_call_prints_the_screen_then_the_end(store, emulator, home):
    connect(store, emulator)
    save_settings(store, {"contact_fetch": "after_call"})
    lines, code, stderr = timed_lines(home, "call", "inbound", "06-1111-2222")
    assert code == 0, stderr
    texts = [line for _, line in lines]
    assert any("田中工業 / 田中 次郎" in t for t in texts)
    assert texts[-2].startswith("call ") and texts[-2].endswith("ended (30 s)")
    assert store.get_contact("+81611112222")["person"] == "田中 次郎"   # registered before exit
