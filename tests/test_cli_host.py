"""The reference host in the CLI: `sfcti call`, `history`, `fetch-contacts`, `errors`, `refetch`,
each run as a real process, as an operator runs them."""

import datetime as dt
import json
import os
import subprocess
import sys
import unicodedata
import zoneinfo

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


def columns(text: str) -> int:
    """Terminal columns of ``text``: wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def test_history_reads_like_the_admin(cli_home, store):
    from core.settings import save_settings

    save_settings(store, {"time_zone": "America/Sao_Paulo"})  # UTC-3, unlike the host and Tokyo
    sfcti(cli_home, "call", "inbound", "+81312345678", "--agent", "山田", "--duration", "41.6")
    sfcti(cli_home, "call", "outbound", "06-1111-2222", "--agent", "a1", "--missed")
    rows = json.loads(sfcti(cli_home, "history", "--json").stdout)
    assert [r["answered"] for r in rows] == [0, 1]  # --json stays raw
    assert rows[1]["duration_seconds"] == 41.6
    header, *lines = sfcti(cli_home, "history").stdout.splitlines()
    assert "America/Sao_Paulo" in header and len(lines) == 2
    sao_paulo = zoneinfo.ZoneInfo("America/Sao_Paulo")
    for row, line in zip(rows, lines):
        utc = dt.datetime.fromisoformat(row["started_at"])
        assert line.startswith(utc.astimezone(sao_paulo).strftime("%Y-%m-%d %H:%M:%S  "))
    missed, answered = (line.split() for line in lines)
    assert "no" in missed and "yes" not in missed and missed[missed.index("s") - 1] == "0"
    assert "yes" in answered and answered[answered.index("s") - 1] == "42"
    assert "41.6" not in "".join(lines) and "山田 太郎" in lines[1]
    # wide characters (label, company, person, agent) do not push the columns after them
    for name, cells in [("answered", ["no", "yes"]), ("agent", ["a1", "山田"]),
                        ("call id", [r["call_id"] for r in rows])]:
        at = columns(header[:header.index(name)])
        assert [from_column(line, at).split()[0] for line in lines] == cells


def from_column(line: str, column: int) -> str:
    """The rest of ``line`` from terminal column ``column`` ("" when no character starts there)."""
    for i in range(len(line) + 1):
        if columns(line[:i]) == column:
            return line[i:]
    return ""


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
