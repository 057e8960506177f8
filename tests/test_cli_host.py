"""The reference host in the CLI: `sfcti call`, `history`, `fetch-contacts`, `errors`, `refetch`,
each run as a real process, as an operator runs them."""

import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT, connect



def sfcti(home, *args, check=True):
    """Run `sfcti ARGS` in a fresh process on the instance folder ``home``."""
    env = dict(os.environ, SFCTI_HOME=str(home), PYTHONPATH=str(ROOT))
    env.pop("SFCTI_JOBS", None)
    done = subprocess.run([sys.executable, "-c", "from cli import main; main()", *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def cli_home(store, emulator, home):
    connect(store, emulator)
    return home


def test_call_prints_the_screen_and_records_the_call(cli_home):
    out = sfcti(cli_home, "call", "inbound", "+81312345678", "--agent", "a1").stdout
    assert "株式会社サンプル / 山田 太郎" in out and "status=matched" in out
    out = sfcti(cli_home, "call", "outbound", "０６－１１１１－２２２２", "--missed").stdout
    assert "田中工業 / 田中 次郎" in out and "missed" in out
    rows = json.loads(sfcti(cli_home, "history", "--json").stdout)
    assert [(r["direction"], r["answered"], r["agent_id"]) for r in rows] == [
        ("outbound", 0, None), ("inbound", 1, "a1")]
    assert "山田 太郎" in sfcti(cli_home, "history").stdout


def test_call_json_and_withheld(cli_home):
    display = json.loads(sfcti(cli_home, "call", "inbound", "anonymous", "--json").stdout)
    assert display["status"] == "withheld" and display["call_id"]


def test_fetch_contacts_registers_and_fills_the_history(cli_home):
    sfcti(cli_home, "call", "inbound", "06-1111-2222", "--duration", "12")
    report = json.loads(sfcti(cli_home, "fetch-contacts").stdout)
    assert report["registered"] == 1 and report["failed"] is None
    [row] = json.loads(sfcti(cli_home, "history", "--json").stdout)
    assert (row["company"], row["person"], row["duration_seconds"]) == ("田中工業", "田中 次郎", 12.0)
    assert json.loads(sfcti(cli_home, "fetch-contacts", "--date", "2024-01-01").stdout)["queued"] == 0


def test_fetch_contacts_rejects_a_bad_date(cli_home):
    done = sfcti(cli_home, "fetch-contacts", "--date", "yesterday", check=False)
    assert done.returncode == 2 and "YYYY-MM-DD" in done.stderr


def test_errors_lists_failures_with_remedies(store, home):
    sfcti(home, "call", "inbound", "03-1234-5678")
    sfcti(home, "call", "inbound", "03-1234-5678")
    rows = json.loads(sfcti(home, "errors", "--json").stdout)
    assert [(r["code"], r["count"]) for r in rows] == [("NOT_CONFIGURED", 2)]
    assert "→" in sfcti(home, "errors", "--lang", "en").stdout


def test_refetch(cli_home):
    call_id = json.loads(sfcti(cli_home, "call", "inbound", "090-3333-4444", "--json").stdout)["call_id"]
    assert json.loads(sfcti(cli_home, "refetch", call_id).stdout)["person"] == "鈴木 一郎"
    locked = sfcti(cli_home, "refetch", call_id, check=False)
    assert locked.returncode == 1 and "re-fetched a moment ago" in locked.stderr
    missing = sfcti(cli_home, "refetch", "nope", check=False)
    assert missing.returncode == 1 and "not in the history" in missing.stderr
