"""`sfcti serve`, the HTTP lookup service, as phone systems use it: a real `sfcti serve` process
on a free port, connected to the emulator, asked by the real curl binary in exactly the URL forms
of docs/http-lookup.md's recipes (Asterisk's CURL() with URIENCODE, FreeSWITCH's mod_cidlookup),
plus hostile input, the ended-call POST and the bearer token.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import time
from urllib.parse import quote

import pytest

from helpers import ROOT, SAMPLE, UNKNOWN, connect, free_port, fresh

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl binary")

BUDGET_MS = 800
START_SECONDS = 30
# what Asterisk's STRFTIME(${EPOCH},,%Y-%m-%dT%H:%M:%S%z) prints: the offset without a colon
STARTED, ENDED = "2024-05-20T10:00:00+0900", "2024-05-20T10:03:20+0900"


# ---------------------------------------------------------------------------------------------
# a real `sfcti serve` process, and curl
# ---------------------------------------------------------------------------------------------

class Served:
    """`sfcti --home HOME serve ARGS` in a child process, stopped by its PID."""

    def __init__(self, home, *args, env=None, host="127.0.0.1"):
        self.home, self.port = pathlib.Path(home), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # a token in the test runner's own environment must not leak into the service
        child_env = {k: v for k, v in os.environ.items() if k != "SFCTI_SERVE_TOKEN"}
        child_env.update(PYTHONPATH=str(ROOT), **(env or {}))
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from cli import main; main()", "--home", str(home), "serve",
             "--host", host, "--port", str(self.port), *args],
            cwd=ROOT, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.output = ""

    def wait_ready(self) -> "Served":
        """Wait until /v1/health answers (the process may have ended instead: then say why)."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"sfcti serve ended: {self.stop()}")
            with contextlib.suppress(OSError):
                if raw_request(self.url, "GET", "/v1/health")[0] == 200:
                    return self
            time.sleep(0.1)
        raise AssertionError(f"sfcti serve did not start: {self.stop()}")

    def finished(self) -> str:
        """Wait for a process that ends by itself (a refused start); its output."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=START_SECONDS)
        return self.stop()

    def stop(self) -> str:
        """Stop the process by its PID; its stdout and stderr."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            out, err = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        self.output = out + err
        return self.output


@contextlib.contextmanager
def serving(home, *args, **kwargs):
    """A started `sfcti serve`, stopped (and checked stopped) afterwards."""
    served = Served(home, *args, **kwargs)
    try:
        yield served.wait_ready()
    finally:
        served.stop()
        assert served.process.returncode is not None


def curl(*args: str) -> tuple[int, dict, str, float]:
    """Run curl; (status, headers lower-cased, body, curl's own total time in seconds)."""
    done = subprocess.run(["curl", "-sS", "--max-time", "10", "-i", "-w", "\n%{time_total}", *args],
                          capture_output=True, timeout=20)
    assert done.returncode == 0, done.stderr.decode()
    response, _, seconds = done.stdout.decode("utf-8").rpartition("\n")
    head, _, body = response.partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body, float(seconds)


def raw_request(base: str, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, dict, str]:
    """One request with exactly this path (no client-side re-encoding)."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, \
            response.read().decode("utf-8")
    finally:
        connection.close()


def uriencode(text: str) -> str:
    """What Asterisk's URIENCODE() makes of a value: every byte but unreserved ones as %XX."""
    return quote(text, safe="-_.~")


# ---------------------------------------------------------------------------------------------
# one service for the module, connected to the session's emulator
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def service_home(tmp_path_factory, emulator_server):
    """An instance folder connected to the session emulator."""
    from core.store import Store

    home = tmp_path_factory.mktemp("serve") / "instance"
    store = Store(home)
    connect(store, emulator_server)
    store.close()
    return home


@pytest.fixture(scope="module")
def service(service_home):
    """`sfcti serve` on loopback, no token, for the module."""
    with serving(service_home) as served:
        yield served


def history_rows(home, call_id: str) -> list[dict]:
    """The call history rows of ``call_id`` (read through core.history)."""
    from core import history
    from core.store import Store

    store = Store(home)
    try:
        return [row for row in history.list_calls(store, limit=100000) if row["call_id"] == call_id]
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# the recipes' URL forms
# ---------------------------------------------------------------------------------------------

def test_asterisk_curl_form_with_uriencode_names_the_contact(service, emulator):
    number = "+81312345678"
    url = f"{service.url}/v1/lookup?format=text&number={uriencode(number)}"
    assert "%2B81312345678" in url
    status, headers, body, _ = curl(url)
    company, person, _ = SAMPLE[number]
    assert (status, body) == (200, f"{company} / {person}")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["x-sfcti-status"] == "matched"


def test_asterisk_recipe_with_call_id_then_the_ended_post_records_what_was_shown(service, emulator):
    unique_id = "1716166800.42"             # Asterisk's ${UNIQUEID}
    status, _, label, _ = curl(f"{service.url}/v1/lookup?format=text&call_id={unique_id}"
                               f"&number={uriencode('+81611112222')}")
    assert (status, label) == (200, "田中工業 / 田中 次郎")
    body = json.dumps({"direction": "inbound", "remote_number": "+81611112222",
                       "started_at": STARTED, "ended_at": ENDED, "answered": True})
    post = ["-X", "POST", "-H", "Content-Type: application/json", "--data", body,
            f"{service.url}/v1/calls/{unique_id}/ended"]
    first, second = curl(*post), curl(*post)
    assert first[0] == 201 and json.loads(first[2])["recorded"] is True
    assert second[0] == 200 and json.loads(second[2])["recorded"] is False
    rows = history_rows(service.home, unique_id)
    assert len(rows) == 1
    assert (rows[0]["status"], rows[0]["label"], rows[0]["object"]) == ("matched", label, "Lead")
    assert rows[0]["duration_seconds"] == 200.0 and rows[0]["answered"] == 1


def test_freeswitch_url_with_a_raw_plus_keeps_the_plus(service, emulator):
    # +1 415... read with form decoding would be " 14155551212": no valid number in Japan
    status, _, body, _ = curl(f"{service.url}/v1/lookup?format=text&number=+14155551212")
    assert (status, body) == (200, "Smith John")


def test_freeswitch_curl_api_form_then_the_hangup_hook_post(service, emulator):
    uuid = "5f0c8e2a-3b1d-4c55-9a07-1e2d3c4b5a69"      # FreeSWITCH's ${uuid}
    status, _, label, _ = curl(f"{service.url}/v1/lookup?format=text&call_id={uuid}"
                               "&number=+819033334444")
    assert (status, label) == (200, "鈴木 一郎")
    # what mod_curl's `curl URL content-type application/json post '{...}'` sends at hang-up:
    # no ended_at (the service takes the arrival time), answered from ${answer_epoch}
    body = ('{"direction":"inbound","remote_number":"+819033334444",'
            '"started_at":"2024-05-20T10:00:00+0900","answered":false}')
    answer = curl("-X", "POST", "-H", "Content-Type: application/json", "--data", body,
                  f"{service.url}/v1/calls/{uuid}/ended")
    assert answer[0] == 201, answer
    (row,) = history_rows(service.home, uuid)
    assert (row["label"], row["answered"], row["duration_seconds"]) == ("鈴木 一郎", 0, 0.0)


def test_freeswitch_mod_cidlookup_sends_digits_only(service, emulator):
    # mod_cidlookup strips all but digits from ${caller_id_number} before expanding the URL
    status, _, body, _ = curl(f"{service.url}/v1/lookup?format=text&number=819011112222")
    assert (status, body) == (200, "株式会社サンプル / 山田 太郎")


def test_full_width_digits_are_a_valid_number(service, emulator):
    number = "０９０－３３３３－４４４４"
    status, _, body, _ = curl(f"{service.url}/v1/lookup?number={uriencode(number)}")
    display = json.loads(body)
    assert status == 200
    assert (display["status"], display["person"], display["object"]) == \
        ("matched", "鈴木 一郎", "Contact")
    assert display["number"] == "+819033334444"


def test_json_answer_is_the_display_dict_in_utf8(service, emulator):
    status, headers, body, _ = curl(f"{service.url}/v1/lookup?number=%2B81312345678&call_id=j-1")
    assert status == 200
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert "株式会社サンプル" in body            # not \u escapes
    display = json.loads(body)
    assert set(display) == {"status", "label", "company", "person", "object", "record_id",
                            "record_url", "number", "call_id"}
    assert (display["company"], display["person"], display["call_id"]) == \
        ("株式会社サンプル", "山田 太郎", "j-1")
    assert display["record_url"].startswith(emulator.login_url)


def test_not_registered_answers_the_number_marked_unregistered(service, emulator):
    url = f"{service.url}/v1/lookup?format=text&number={uriencode(UNKNOWN)}"
    status, headers, body, _ = curl(url)
    assert (status, body, headers["x-sfcti-status"]) == \
        (200, "03-9876-0000 未登録", "not_registered")


@pytest.mark.parametrize("raw", ["", "anonymous", "Anonymous", uriencode("非通知"),
                                 uriencode("sip:anonymous@anonymous.invalid")])
def test_withheld_callers_answer_hitsuuchi(service, raw):
    status, headers, body, _ = curl(f"{service.url}/v1/lookup?format=text&number={raw}")
    assert (status, body, headers["x-sfcti-status"]) == (200, "非通知", "withheld")


def test_outbound_direction_uses_the_dialing_hook(service, emulator):
    status, _, body, _ = curl(f"{service.url}/v1/lookup?direction=outbound&number=0312345678"
                              "&agent_id=agent-7")
    assert status == 200 and json.loads(body)["person"] == "山田 太郎"


def test_hanging_salesforce_answers_unavailable_within_the_budget(service, emulator):
    national, e164 = fresh()
    emulator.faults.hang = True
    status, headers, body, seconds = curl(f"{service.url}/v1/lookup?format=text&number={e164}")
    assert (status, body, headers["x-sfcti-status"]) == (200, national, "unavailable")
    assert seconds <= (BUDGET_MS + 50) / 1000, seconds
    status, _, body, seconds = curl(f"{service.url}/v1/lookup?number={uriencode(fresh()[1])}")
    assert json.loads(body)["status"] == "unavailable" and seconds <= (BUDGET_MS + 50) / 1000


def test_health_answers(service):
    status, _, body, _ = curl(f"{service.url}/v1/health")
    assert (status, json.loads(body)) == (200, {"status": "ok"})


# ---------------------------------------------------------------------------------------------
# hostile input: a 4xx saying what is wrong, never a 500 or a traceback
# ---------------------------------------------------------------------------------------------

BAD_LOOKUPS = [
    ("/v1/lookup", "number is missing"),
    ("/v1/lookup?number=" + "1" * 5000, "too long"),
    ("/v1/lookup?number=03-1234-5678%00", "control character"),
    ("/v1/lookup?number=03-1234%0D%0A-5678", "control character"),
    ("/v1/lookup?number=%1B%5B31m0312345678", "control character"),
    ("/v1/lookup?number=" + uriencode("\u202e8765-4321-30"), "text-direction"),
    ("/v1/lookup?number=" + uriencode("03\u200b12345678"), "invisible"),
    ("/v1/lookup?number=" + uriencode("' OR '1'='1"), "do not have"),
    ("/v1/lookup?number=" + uriencode("03-1234-5678' OR Name != '"), "do not have"),
    ("/v1/lookup?number=" + uriencode("FIND {*} IN ALL FIELDS RETURNING Contact"), "do not have"),
    ("/v1/lookup?number=" + uriencode("03-1234-5678} OR {*"), "do not have"),
    ("/v1/lookup?number=" + uriencode("03\\'1234"), "do not have"),
    ("/v1/lookup?number=" + uriencode("<script>alert(1)</script>"), "do not have"),
    ("/v1/lookup?number=" + uriencode("☎️📞"), "do not have"),
    ("/v1/lookup?number=%", "do not have"),
    ("/v1/lookup?number=%FF%FE", "not UTF-8"),
    ("/v1/lookup?number=1&number=2", "given twice"),
    ("/v1/lookup?numbr=0312345678", "Unknown parameter"),
    ("/v1/lookup?number=0312345678&direction=sideways", "inbound or outbound"),
    ("/v1/lookup?number=0312345678&format=xml", "json or text"),
    ("/v1/lookup?number=0312345678&call_id=" + "x" * 200, "too long"),
    ("/v1/lookup?number=0312345678&call_id=a%00b", "control character"),
    ("/v1/lookup?number=0312345678&call_id=" + uriencode("通話1"), "visible ASCII"),
    ("/v1/lookup?number=0312345678&agent_id=a%07b", "control character"),
]


@pytest.mark.parametrize("path, says", BAD_LOOKUPS, ids=[p[:60] for p, _ in BAD_LOOKUPS])
def test_bad_lookups_get_a_400_in_json(service, path, says):
    status, headers, body = raw_request(service.url, "GET", path)
    assert status == 400
    assert headers["content-type"] == "application/json; charset=utf-8"
    answer = json.loads(body)
    assert says in answer["error"]
    assert "<script" not in body and "Traceback" not in body


def test_bad_text_lookups_get_a_400_in_text(service):
    status, headers, body = raw_request(service.url, "GET",
                                        "/v1/lookup?format=text&number=%3Cscript%3E")
    assert status == 400 and headers["content-type"] == "text/plain; charset=utf-8"
    assert body == "number contains '<' (U+003C), which phone numbers do not have."


def good_ended(**changes) -> dict:
    """An ended call the service accepts, with ``changes`` (None removes a field)."""
    fields = {"direction": "inbound", "remote_number": "+81312345678", "started_at": STARTED,
              "ended_at": ENDED, "answered": True}
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


def ended_body(**changes) -> bytes:
    """good_ended(**changes) as the POST's JSON body."""
    return json.dumps(good_ended(**changes)).encode()


JSON = {"Content-Type": "application/json"}
BAD_ENDED = [
    ("malformed JSON", b'{"direction": "inbound",', JSON, 400, "not valid JSON"),
    ("not an object", b'["inbound"]', JSON, 400, "JSON object"),
    ("NaN", b'{"answered": NaN}', JSON, 400, "not valid JSON"),
    ("not UTF-8", b'{"direction": "\xff"}', JSON, 400, "not UTF-8"),
    ("missing field", ended_body(started_at=None), JSON, 400, "started_at is missing"),
    ("unknown field", ended_body(remoteNumber="1"), JSON, 400, "Unknown field"),
    ("answered as text", ended_body(answered="yes"), JSON, 400, "answered must be"),
    ("number as number", ended_body(remote_number=312345678), JSON, 400,
     "must be a string"),
    ("naive datetime", ended_body(started_at="2024-05-20T10:00:00"), JSON, 400,
     "UTC offset"),
    ("garbage datetime", ended_body(ended_at="yesterday"), JSON, 400, "UTC offset"),
    ("impossible date", ended_body(started_at="2024-02-30T10:00:00+09:00"), JSON,
     400, "not a real date"),
    ("ended before started", ended_body(ended_at="2024-05-20T09:00:00+0900"), JSON,
     400, "before started_at"),
    ("bad direction", ended_body(direction="up"), JSON, 400, "inbound or outbound"),
    ("injection in number", ended_body(remote_number="' OR '1'='1"), JSON, 400,
     "do not have"),
    ("bidi in agent", ended_body(agent_id="\u202eadmin"), JSON, 400, "text-direction"),
    ("form content type", b"direction=inbound",
     {"Content-Type": "application/x-www-form-urlencoded"},
     415, "application/json"),
    ("no content type", ended_body(), {}, 415, "application/json"),
    ("huge body", b'{"agent_id": "' + b"a" * 8000 + b'"}', JSON, 413, "too large"),
]


@pytest.mark.parametrize("body, headers, status, says", [b[1:] for b in BAD_ENDED],
                         ids=[b[0] for b in BAD_ENDED])
def test_bad_ended_posts_get_a_4xx_in_json(service, body, headers, status, says):
    answer = raw_request(service.url, "POST", "/v1/calls/bad-ended-1/ended", body, headers)
    assert answer[0] == status and says in json.loads(answer[2])["error"], answer
    assert history_rows(service.home, "bad-ended-1") == []


@pytest.mark.parametrize("path, says", [
    ("/v1/calls/" + "x" * 200 + "/ended", "too long"),
    ("/v1/calls/a%01b/ended", "control character"),
    ("/v1/calls/" + uriencode("通話") + "/ended", "visible ASCII"),
])
def test_bad_call_ids_in_the_path_get_a_400(service, path, says):
    status, _, body = raw_request(service.url, "POST", path, ended_body(), JSON)
    assert status == 400 and says in json.loads(body)["error"]


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nothing", 404), ("GET", "/v1/lookups", 404), ("DELETE", "/v1/lookup", 405),
    ("GET", "/v1/calls/c-1/ended", 405), ("POST", "/v1/health", 405),
])
def test_unknown_paths_and_methods_answer_json(service, method, path, status):
    answer = raw_request(service.url, method, path)
    assert answer[0] == status and json.loads(answer[2])["status"] == status


def test_simultaneous_repeats_record_once_and_say_which_did(service):
    body = ended_body(remote_number="")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda _: raw_request(service.url, "POST", "/v1/calls/twice-1/ended", body, JSON),
            range(8)))
    assert sorted(a[0] for a in answers) == [200] * 7 + [201]
    assert [json.loads(a[2])["recorded"] for a in answers].count(True) == 1
    (row,) = history_rows(service.home, "twice-1")
    assert row["status"] == "withheld"


def test_ended_post_without_a_lookup_records_the_number(service, emulator):
    national, e164 = fresh()
    answer = raw_request(service.url, "POST", "/v1/calls/no-lookup-1/ended",
                         json.dumps(good_ended(remote_number=e164, ended_at=None,
                                               answered=None)).encode(), JSON)
    assert answer[0] == 201, answer
    (row,) = history_rows(service.home, "no-lookup-1")
    assert (row["e164"], row["answered"], row["ended_at"] is not None) == (e164, None, True)


# ---------------------------------------------------------------------------------------------
# the bearer token
# ---------------------------------------------------------------------------------------------

TOKEN = "t0k3n-for-the-tests-" + "x" * 20


def test_off_loopback_the_token_from_the_environment_is_required(service_home):
    with serving(service_home, host="0.0.0.0", env={"SFCTI_SERVE_TOKEN": TOKEN}) as served:
        url = f"{served.url}/v1/lookup?number=0312345678"
        missing = curl(url)
        wrong = curl("-H", "Authorization: Bearer " + "y" * 40, url)
        right = curl("-H", f"Authorization: Bearer {TOKEN}", url)
        health = curl(f"{served.url}/v1/health")
    assert missing[0] == 401 and missing[1]["www-authenticate"] == 'Bearer realm="sfcti"'
    assert wrong[0] == 401 and 'error="invalid_token"' in wrong[1]["www-authenticate"]
    assert right[0] == 200 and json.loads(right[2])["person"] == "山田 太郎"
    assert health[0] == 200
    for answer in (missing, wrong, right, health):
        assert TOKEN not in answer[2] and TOKEN not in json.dumps(answer[1])
    assert "token: SFCTI_SERVE_TOKEN" in served.output and TOKEN not in served.output


def test_off_loopback_without_a_token_one_is_made_in_a_private_file(tmp_path, emulator):
    home = tmp_path / "instance"
    with serving(home, host="0.0.0.0") as served:
        token_file = home / "serve.token"
        token = token_file.read_text().strip()
        refused = curl(f"{served.url}/v1/lookup?number=0312345678")
        allowed = curl("-H", f"Authorization: Bearer {token}", f"{served.url}/v1/lookup?number=")
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert refused[0] == 401
    assert allowed[0] == 200 and json.loads(allowed[2])["status"] == "withheld"
    assert str(token_file) in served.output and token not in served.output


def test_a_token_set_applies_on_loopback_too(service_home):
    with serving(service_home, env={"SFCTI_SERVE_TOKEN": TOKEN}) as served:
        assert curl(f"{served.url}/v1/lookup?number=0312345678")[0] == 401
        assert curl("-H", f"Authorization: Bearer {TOKEN}",
                    f"{served.url}/v1/lookup?number=0312345678")[0] == 200


def test_a_token_file_open_to_others_refuses_to_start(tmp_path):
    home = tmp_path / "instance"
    home.mkdir()
    (home / "serve.token").write_text(TOKEN)
    (home / "serve.token").chmod(0o644)
    served = Served(home, host="0.0.0.0")
    output = served.finished()
    assert served.process.returncode == 1
    assert "chmod 600" in output and TOKEN not in output and "Traceback" not in output


def test_a_malformed_token_refuses_to_start_without_echoing_it(tmp_path):
    served = Served(tmp_path / "instance", env={"SFCTI_SERVE_TOKEN": "short secret"})
    output = served.finished()
    assert served.process.returncode == 1
    assert "SFCTI_SERVE_TOKEN must be 16 to 256" in output and "short secret" not in output


def test_a_taken_port_is_a_one_line_error(service, tmp_path):
    child_env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", "from cli import main; main()", "--home",
                           str(tmp_path / "instance"), "serve", "--port", str(service.port)],
                          cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"Error: Cannot listen on 127.0.0.1:{service.port}" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
