"""`sfcti demo --no-wait` (what `make demo` runs) on a fresh instance folder, and again."""

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from cli.demo_cmd import DEMO_RECORDS, free_port
from helpers import ROOT


def sfcti(home, *args, timeout=60) -> str:
    """`sfcti --home HOME ARGS` in a fresh process: its output, after checking it succeeded."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SFCTI_HOME", None)
    done = subprocess.run([sys.executable, "-c", "from cli import main; main()", "--home", str(home),
                           *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_demo(home):
    return sfcti(home, "demo", "--no-wait", timeout=240)


def history(home) -> list[dict]:
    """The instance's call history, read with `sfcti history --json`."""
    return json.loads(sfcti(home, "history", "--json", "--limit", "1000"))


def readme_screen() -> str:
    """The agent screen the README says `make demo` shows first, as a pattern ("…" is anything)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    block = re.search(r"```text\n(.*?┌ 着信.*?)```", readme, re.S).group(1)
    lines = [line.strip() for line in block.strip().splitlines()]
    return "\n".join(re.escape(line).replace("…", ".+?") for line in lines)


def test_the_demo_runs_on_a_fresh_instance_and_again(tmp_path):
    home = tmp_path / "fresh"
    out = run_demo(home)
    assert "株式会社サンプル / 山田 太郎" in out            # the README's example, stored 03-1234-5678
    assert re.search(readme_screen(), out), "the README's first screen is not what the demo shows"
    assert "株式会社デモ商事" in out                      # dialled +81..., stored 03-5555-0101
    assert "株式会社デモ商事 / 山田 花子" in out           # full-width dialled, mobile stored
    assert "サンプル工業 / 見込 一郎" in out               # a Lead
    assert "非通知" in out and "status=withheld" in out
    assert "03-9876-0000 未登録" in out
    assert "'registered': 7" in out
    assert "Recorded today's 10 demo calls" in out
    built = re.search(r"Building the phone index .*\n  (\d+) records, (\d+) numbers, (\d+) API calls?, "
                      r"\d+\.\d s", out)
    assert built, "the demo does not show the index being built"
    records, numbers, calls = map(int, built.groups())
    assert records > len(DEMO_RECORDS) and numbers >= records // 2 and 1 <= calls <= 10
    assert_odd_caller_named_without_api_call(out)
    history_part = out.split("Call history")[1]
    assert history_part.count("株式会社デモ商事") >= 3
    assert "03-1234-5678" in history_part and "株式会社サンプル / 山田 太郎" in history_part
    first = history(home)
    assert len(first) == 10
    assert_calls_became_tasks(out, first)
    again = run_demo(home)
    assert "株式会社デモ商事 / 山田 花子" in again and "Traceback" not in again
    assert "Updating the phone index" in again
    assert_odd_caller_named_without_api_call(again)
    assert "already in the call history" in again and "nothing was recorded twice" in again
    second = history(home)
    assert sorted(r["call_id"] for r in second) == sorted(r["call_id"] for r in first)
    assert "nothing was logged twice" in again
    assert {r["call_id"]: r["task_id"] for r in second} == {r["call_id"]: r["task_id"] for r in first}


def assert_calls_became_tasks(out: str, rows: list[dict]) -> None:
    """Every call with a matched record became one Task, owned through the agents the demo
    mapped; the two calls nobody's record matches (withheld, unknown) were skipped; all in one
    API call, and the demo names a record page in its emulator that lists them."""
    assert "agent-01 → 山田 花子, agent-02 → 佐藤 健一, agent-03 → 鈴木 美咲" in out
    logged = re.search(r"(\d+) calls logged as Tasks with (\d+) API calls? .*; (\d+) skipped", out)
    assert logged, "the demo does not log the calls as Tasks"
    assert tuple(map(int, logged.groups())) == (8, 1, 2)
    by_state = {}
    for row in rows:
        by_state.setdefault(row["task_state"], []).append(row)
    assert sorted(by_state) == ["logged", "skipped"]
    assert {r["remote_number"] for r in by_state["skipped"]} == {"anonymous", "03-9876-0000"}
    task_ids = [r["task_id"] for r in by_state["logged"]]
    assert len(set(task_ids)) == 8 and all(t.startswith("00T") for t in task_ids)
    page = re.search(r"株式会社デモ商事's calls in its activity history: (https://127\.0\.0\.1:(\d+)"
                     r"/lightning/r/Account/001\w+/view)", out)
    assert page, "the demo does not point to a record page listing the Tasks"
    assert all(f"127.0.0.1:{page.group(2)}/" in r["task_url"] for r in by_state["logged"])
    history_part = out.split("Call history")[1]
    assert history_part.count(" logged ") == 8 and history_part.count(" skipped ") == 2


def assert_odd_caller_named_without_api_call(out: str) -> None:
    """The Contact stored as "TEL 03‐5555‐0303（代表）" (U+2010 dashes) is named on the ring, and
    the emulator's count of billed API calls is the same before and after it."""
    odd = re.search(r"A caller stored as 'TEL 03\u20105555\u20100303（代表）' rings for the first time:\n"
                    r"  Salesforce API calls so far: (\d+)\n"
                    r"┌ 着信 inbound: '\+81355550303'\n│ 株式会社表記ゆれ / 表記 揺子\n.*?└.*?\n"
                    r"  Salesforce API calls after the ring: (\d+) ", out, re.S)
    assert odd, "the demo does not ring the caller stored in an odd format"
    assert odd.group(1) == odd.group(2)


def time_wait_port() -> int:
    """A loopback port whose last connection is in TIME_WAIT, as after a demo's admin stopped."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            served, _ = listener.accept()
            served.close()  # the side that closes first keeps the port in TIME_WAIT
            assert client.recv(1) == b""
    return port


def test_free_port_offers_a_port_in_time_wait():
    port = time_wait_port()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # what a bind without SO_REUSEADDR meets
    assert free_port(port) == port


def test_free_port_passes_over_a_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        other = free_port(port)
        assert other != port and other > 0
