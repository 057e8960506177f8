"""`sfcti emulator`: starts, prints what a client needs, serves it, stops on Ctrl-C."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests
from simple_salesforce import Salesforce, SalesforceLogin

pytest.importorskip("emulator.datagen")


def read_until(process, marker, timeout=60):
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return "".join(lines)
    raise AssertionError("emulator did not start:\n" + "".join(lines) + process.stderr.read())


def field(output, label):
    return re.search(rf"^\s+{label}\s+(\S+)$", output, re.M).group(1)


def test_emulator_command_serves_until_interrupted(tmp_path):
    home = tmp_path / "instance"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SFCTI_HOME": str(home)}
    process = subprocess.Popen([sys.executable, "-c", "from cli import main; main()", "emulator", "--port", "0", "--size", "60",
                                "--no-person-accounts"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        output = read_until(process, "Press Ctrl-C")
        login_url, ca_path = field(output, "Login URL"), field(output, "CA bundle")
        assert login_url.startswith("https://127.0.0.1:") and ca_path.startswith(str(home))
        session = requests.Session()
        session.trust_env, session.verify = False, ca_path
        session_id, instance = SalesforceLogin(
            username=field(output, "Username"), password=field(output, "Password"),
            security_token=field(output, "Security token"), session=session, scratch_url=login_url)
        sf = Salesforce(session_id=session_id, instance=instance, session=session)
        assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] > 0
        info = json.loads((home / "emulator.json").read_text(encoding="utf-8"))
        assert info["login_url"] == login_url and info["person_accounts"] is False
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
        process.stderr.close()
