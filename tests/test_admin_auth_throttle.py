"""The failed-login brake holds against parallel requests: two real `sfcti admin` processes
(waitress, 8 threads each) on one instance folder, hit by bursts of logins sent at once.

Each response says what happened to its attempt: "Wrong user name or password." means its
password was checked, "Too many failed logins" means it was refused before any check, a redirect
means it logged in. With 5 free failures, no burst may get more than 5 password checks.

The admin trusts one proxy (``TRUSTED_PROXIES = 1``), so each request's ``X-Forwarded-For`` is
its client address: a burst can come from many addresses, or from one.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from helpers import ROOT, free_port

FREE_FAILURES = 5
CHEAP_HASH = "pbkdf2:sha256:1000"
# about a second per check on this kind of machine: the wrong passwords of a burst are still
# being checked when the right one arrives
SLOW_HASH = "pbkdf2:sha256:4000000"
RIGHT_PASSWORD = "the right password, at last"

ADMIN_CFG = f"""\
ADMIN_PASSWORD_METHOD = {CHEAP_HASH!r}
LOGIN_FREE_FAILURES = {FREE_FAILURES}
LOGIN_FIRST_DELAY_SECONDS = 60   # no wait runs out during a test, however slow the machine
TRUSTED_PROXIES = 1
"""


def _start_admin(home, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), SFCTI_HOME=str(home), SFCTI_JOBS="off")
    return subprocess.Popen(
        [sys.executable, "-c", "from cli import main; main()", "--home", str(home), "admin",
         "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until_serving(process: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sfcti admin ended: {process.communicate()[1]}")
        try:
            if requests.get(url + "/auth/login", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    pytest.fail(f"sfcti admin did not answer on {url}")


@pytest.fixture(scope="module")
def instance(tmp_path_factory, module_database):
    """The instance folder: the admin account and the burst accounts, admin.cfg."""
    from core.accounts import set_password
    from core.store import Store

    home = tmp_path_factory.mktemp("throttle") / "instance"
    module_database(home)
    store = Store(home)
    set_password(store, "admin", "not used here", CHEAP_HASH)
    (home / "admin.cfg").write_text(ADMIN_CFG)
    yield store
    store.close()


@pytest.fixture(scope="module")
def servers(instance):
    """The URLs of two `sfcti admin` processes serving the instance."""
    ports = [free_port(), free_port()]
    processes = [_start_admin(instance.home, port) for port in ports]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for process, url in zip(processes, urls):
            _wait_until_serving(process, url)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.communicate(timeout=30)


class Attempt:
    """One browser's login: the form fetched (session cookie and CSRF token), ready to post."""

    def __init__(self, url: str, username: str, password: str, address: str):
        self.url = url
        self.data = {"username": username, "password": password}
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers.update({"Accept-Language": "en", "X-Forwarded-For": address})
        html = self.http.get(url + "/auth/login", timeout=30).text
        self.data["csrf_token"] = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)

    def post(self) -> str:
        """"in", "wrong" (the password was checked) or "wait" (refused before any check)."""
        response = self.http.post(self.url + "/auth/login", data=self.data, timeout=120,
                                  allow_redirects=False)
        if response.status_code == 302:
            return "in"
        assert response.status_code == 200, response.text
        if "Wrong user name or password." in response.text:
            return "wrong"
        assert "Too many failed logins. Try again in" in response.text, response.text
        return "wait"

    def opens_settings(self) -> bool:
        """Whether this browser's session now opens the settings page."""
        return self.http.get(self.url + "/settings/", allow_redirects=False).status_code == 200


def burst(attempts: list[Attempt]) -> collections.Counter:
    """Post every attempt at the same moment (one thread each); how many ended which way."""
    start = threading.Barrier(len(attempts))

    def send(attempt: Attempt) -> str:
        start.wait()
        return attempt.post()

    with ThreadPoolExecutor(len(attempts)) as pool:
        return collections.Counter(pool.map(send, attempts))


def wrong_logins(servers, username: str, count: int, network: str) -> list[Attempt]:
    """``count`` logins of ``username`` with wrong passwords, alternating between the two admin
    processes, each from its own client address in ``network`` (the first three numbers)."""
    return [Attempt(servers[n % 2], username, f"guess {n}", f"{network}.{n + 1}")
            for n in range(count)]


def counted_failures(store, username: str) -> int:
    row = store.conn.execute("SELECT failures FROM login_attempts WHERE key = ?",
                             (f"user:{username}",)).fetchone()
    return row[0] if row else 0


def failures_in_postgresql(url: str, username: str) -> int | None:
    """The failures of ``username`` as the PostgreSQL database itself holds them (no sfcti code)."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT failures FROM login_attempts WHERE key = %s",
                           (f"user:{username}",)).fetchone()
    return row[0] if row else None


def test_40_parallel_wrong_logins_get_5_password_checks(instance, servers, backend):
    from core.accounts import set_password

    set_password(instance, "alice", RIGHT_PASSWORD, CHEAP_HASH)
    results = burst(wrong_logins(servers, "alice", 40, "10.1.0"))
    assert results == {"wrong": FREE_FAILURES, "wait": 40 - FREE_FAILURES}
    assert counted_failures(instance, "alice") == FREE_FAILURES
    if backend == "postgresql":  # the two admin processes counted them in the shared database
        assert failures_in_postgresql((instance.home / "database_url").read_text().strip(),
                                      "alice") == FREE_FAILURES
        assert not any(instance.home.glob("*.db")), "an admin process wrote a SQLite file"
    # the right password is refused too: the account must wait
    assert Attempt(servers[0], "alice", RIGHT_PASSWORD, "203.0.113.1").post() == "wait"


def test_40_parallel_logins_from_one_address_get_5_password_checks(servers):
    # forty different user names (none of them an account) from one client address
    attempts = [Attempt(servers[n % 2], f"user{n}", "guess", "192.0.2.77") for n in range(40)]
    assert burst(attempts) == {"wrong": FREE_FAILURES, "wait": 40 - FREE_FAILURES}


def test_behind_the_trusted_proxy_each_client_address_has_its_own_brake(servers):
    # waitress dropped X-Forwarded-For before the app saw it: every client was the proxy's
    # 127.0.0.1, and one attacker's failures made every other client wait
    attacker = [Attempt(servers[0], f"mallory{n}", "guess", "192.0.2.66") for n in range(6)]
    assert [attempt.post() for attempt in attacker] == ["wrong"] * FREE_FAILURES + ["wait"]
    assert Attempt(servers[1], "somebody", "typo", "192.0.2.67").post() == "wrong"


def test_after_the_wait_20_parallel_logins_get_1_password_check(instance, servers):
    from core.accounts import set_password

    set_password(instance, "bob", RIGHT_PASSWORD, CHEAP_HASH)
    assert burst(wrong_logins(servers, "bob", FREE_FAILURES, "10.3.0")) == {"wrong": FREE_FAILURES}
    assert Attempt(servers[1], "bob", "one more", "203.0.113.2").post() == "wait"
    # the first wait (60 s) has passed: put the last failure 61 s back
    long_ago = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=61)).isoformat()
    with instance.transaction() as db:
        db.execute("UPDATE login_attempts SET last_at = ? WHERE key = 'user:bob'", [long_ago])
    assert burst(wrong_logins(servers, "bob", 20, "10.3.1")) == {"wrong": 1, "wait": 19}
    assert counted_failures(instance, "bob") == FREE_FAILURES + 1


def test_7_wrong_passwords_then_the_right_one_in_the_same_burst_do_not_log_in(instance, servers):
    from core.accounts import set_password

    set_password(instance, "carol", RIGHT_PASSWORD, SLOW_HASH)
    wrong = wrong_logins(servers, "carol", 7, "10.4.0")
    right = Attempt(servers[1], "carol", RIGHT_PASSWORD, "198.51.100.250")
    with ThreadPoolExecutor(1) as pool:
        wrong_results = pool.submit(burst, wrong)
        # the right password follows as soon as the free failures are taken, or after 2 s: seven
        # checks of about a second each on two cores are still running then (a brake that
        # counts failures only after checking them has counted none yet)
        deadline = time.monotonic() + 2.0
        while counted_failures(instance, "carol") < FREE_FAILURES and time.monotonic() < deadline:
            time.sleep(0.01)
        assert right.post() == "wait"
        assert wrong_results.result() == {"wrong": FREE_FAILURES, "wait": 7 - FREE_FAILURES}
    assert not right.opens_settings()
