"""No stored secret ever shows in clear: an instance holding a distinctive Salesforce password,
security token, OAuth consumer secret and refresh token and SMTP password goes through a day's
activity (password and OAuth logins to the emulator, calls, a failing login, a refused and then an
accepted SMTP login, alert and recovery mails, the admin's pages), then every place a secret could
leak to is scanned: the instance folder's files as raw bytes (sfcti.db, -wal, -shm, any log), the
log records, the error log, every mail received and every admin page (each GET route of the
app's url_map, logged in), for each secret as is, URL-encoded and in base64 at any alignment.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from urllib.parse import quote, quote_plus

import pytest

from helpers import (ADMIN_PASSWORD, SmtpServer, admin_login, authorize, csrf_token, end, error_rows,
                     form_values, make_app, make_host, ring, trusting_session)

pytestmark = pytest.mark.timeout(120)

PASSWORD = "Pw!Marker+Secret/0001 z"
SECURITY_TOKEN = "TokMarkerSecret0002"
CONSUMER_SECRET = "CsMarkerSecret0003XYZ"
SMTP_PASSWORD = "Smtp+Marker/Secret=0004"
SMTP_USER = "alerts-user"
CONSUMER_KEY = "sfcti-secrets-scan-app"


# ---------------------------------------------------------------------------------------------
# the needles: each secret as is and in the encodings a careless program would write it
# ---------------------------------------------------------------------------------------------

def base64_needles(secret: bytes) -> set[bytes]:
    """The base64 text of ``secret`` wherever it sits in an encoded blob: for each of the three
    alignments, the characters that depend on the secret's bits only (standard and URL-safe)."""
    needles = set()
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * offset + secret)
            start = -(-8 * offset // 6)                  # first character wholly inside the secret
            stop = 8 * (offset + len(secret)) // 6       # past the last one
            needles.add(text[start:stop])
    return needles


def needles(secret: str) -> dict[bytes, str]:
    """Byte strings that betray ``secret``, each with what it is."""
    raw = secret.encode()
    found = {raw: "in clear", quote(secret, safe="").encode(): "URL-encoded",
             quote_plus(secret).encode(): "form-encoded"}
    found.update({needle: "base64" for needle in base64_needles(raw)})
    return found


def leaks(data: bytes | str, secrets: dict[str, str]) -> list[str]:
    """Which secrets ``data`` holds, and how."""
    data = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return [f"{name} {how}" for name, secret in secrets.items()
            for needle, how in needles(secret).items() if needle in data]


def test_the_scan_finds_each_encoding():
    """The scanner itself: a secret in clear, URL-encoded or in base64 at any offset is found;
    a text without it is clean."""
    secrets = {"password": PASSWORD}
    for prefix in (b"", b"a", b"ab", b"abc"):
        assert leaks(base64.b64encode(prefix + PASSWORD.encode() + b"tail"), secrets), prefix
    assert leaks("x=" + quote_plus(PASSWORD), secrets) == ["password form-encoded"]
    assert leaks("u=" + quote(PASSWORD, safe=""), secrets) == ["password URL-encoded"]
    assert leaks("…" + PASSWORD, secrets)
    assert leaks("Pw!Marker+Secret/0001", secrets) == []


# ---------------------------------------------------------------------------------------------
# a day's activity
# ---------------------------------------------------------------------------------------------

class AuthSmtpServer(SmtpServer):
    """The loopback SMTP server, asking for a login (plain AUTH without TLS, loopback only);
    ``accept`` decides whether the right password is taken."""

    accept = True
    logins: list[tuple[str, str]]

    def start(self):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.logins = []

        def authenticator(server, session, envelope, mechanism, auth_data):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            self.logins.append((login, password))
            if self.accept and (login, password) == (SMTP_USER, SMTP_PASSWORD):
                return AuthResult(success=True)
            # handled=False: aiosmtpd answers the refusal itself (else the client waits for it)
            return AuthResult(success=False, handled=False)

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                     authenticator=authenticator, auth_require_tls=False)
        self.controller.start()
        return self


class LogCapture(logging.Handler):
    """Every log record of the module, formatted with its traceback."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@dataclasses.dataclass
class Day:
    """What the day left behind, to scan."""

    home: object
    store: object
    secrets: dict[str, str]
    smtp: AuthSmtpServer
    logs: LogCapture
    pages: dict[str, str]
    cli_output: list[str]


def crawl(app, smtp_port: int) -> dict[str, str]:
    """Every GET page of the admin (each rule of the url_map without arguments, and the language
    switch), logged in; the settings form also as re-shown after a refused save, the alert form
    after a failed and a sent test mail."""
    client = app.test_client()
    assert admin_login(client).status_code == 302
    pages = {}
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        url = rule.rule.replace("<code>", "ja") if rule.arguments == {"code"} else rule.rule
        if "<" in url:
            continue
        response = client.get(url, follow_redirects=True)
        assert response.status_code < 500, url
        pages[url] = response.get_data(as_text=True)
    refused = client.post("/settings/", data={
        **form_values(client, "/settings/"),
        "csrf_token": csrf_token(client, "/settings/"), "auth_method": "password",
        "username": "not an address", "password": PASSWORD, "security_token": SECURITY_TOKEN,
        "contact_fetch": "nightly", "time_zone": "Asia/Tokyo", "nightly_time": "22:00",
        "screen_budget_ms": "800", "submit": "1"})
    pages["/settings/ refused"] = refused.get_data(as_text=True)
    for port, outcome in ((1, "failed"), (smtp_port, "sent")):   # the stored SMTP password is kept
        alerts = client.post("/alerts/", data={
            **form_values(client, "/alerts/"),
            "csrf_token": csrf_token(client, "/alerts/"), "alert_recipients": "ops@example.com",
            "smtp_host": "127.0.0.1", "smtp_port": str(port), "smtp_security": "none",
            "smtp_user": SMTP_USER, "smtp_password": "", "smtp_sender": "sfcti@example.com",
            "alert_reminder_hours": "4", "admin_base_url": "http://admin.example.com:5000",
            "send_test": "1"}, follow_redirects=True)
        pages[f"/alerts/ {outcome} test mail"] = alerts.get_data(as_text=True)
    return pages


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """An instance with every secret stored, after a day of calls, failures, alerts and admin use."""
    from core import oauth
    from core.alerts import Alerts
    from core.runtime import runtime_for, shutdown_all
    from core.salesforce import forget_connection
    from core.settings import load_settings, save_settings
    from core.store import open_store
    from emulator import Emulator
    from emulator.oauth import DEMO_CALLBACK
    from helpers import build_org, run_cli

    logs = LogCapture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(logs)
    root.setLevel(logging.DEBUG)
    home = tmp_path_factory.mktemp("secrets") / "instance"
    smtp = AuthSmtpServer().start()
    emu = Emulator(build_org(), cert_dir=str(tmp_path_factory.mktemp("secrets-ca")),
                   password=PASSWORD, security_token=SECURITY_TOKEN).start()
    cli_output = []
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SFCTI_HOME", str(home))
            mp.setenv("SFCTI_JOBS", "off")
            mp.setenv("SFCTI_SEND_TASKS", "off")
            store = open_store(home)
            save_settings(store, dict(
                username=emu.username, password=PASSWORD, security_token=SECURITY_TOKEN,
                login_url=emu.login_url, ca_bundle=emu.ca_path, connect_timeout=2.0, read_timeout=2.0,
                **smtp.settings(smtp_user=SMTP_USER, smtp_password=SMTP_PASSWORD)))
            host = make_host()

            # calls over a password login
            for number in ("03-1234-5678", "06-1111-2222", "03-9876-0000"):
                call, display, _ = ring(host, number)
                assert display["status"] in ("matched", "not_registered"), display
                end(host, call)
            # the CLI's view of it
            for args in (["status"], ["settings", "show"], ["settings", "show", "--json"],
                         ["errors"], ["history"], ["lookup", "090-1111-2222"]):
                cli_output.append(run_cli(home, *args).output)

            # a failing login: error rows, an alert the SMTP server first refuses to relay
            emu.faults.login_fault = "INVALID_LOGIN"
            forget_connection(store)
            call, display, _ = ring(host, "090-3333-4444")
            assert display["status"] == "unavailable"
            end(host, call)
            runtime_for().wait_idle(10)
            smtp.accept = False
            Alerts(store).tick()
            assert smtp.logins, "the alert sender never logged in to SMTP"
            assert error_rows(store, code="SMTP_AUTH"), "the refused SMTP login left no error row"
            smtp.accept = True
            Alerts(store, clock=lambda: _later(hours=1)).tick()
            assert smtp.wait_for(1), "no alert mail"
            cli_output.append(run_cli(home, "errors", "--json").output)
            cli_output.append(run_cli(home, "connect", "--username", emu.username, "--password",
                                      "wrong password", "--token", SECURITY_TOKEN,
                                      "--login-url", emu.login_url, "--ca-bundle", emu.ca_path).output)

            # recovery
            emu.faults.login_fault = None
            forget_connection(store)
            call, display, _ = ring(host, "090-3333-4444")
            end(host, call)
            Alerts(store, clock=lambda: _later(hours=2)).tick()

            # OAuth: the consumer secret and a refresh token, then the token revoked
            emu.register_oauth_app(client_id=CONSUMER_KEY, client_secret=CONSUMER_SECRET,
                                   callback_url=DEMO_CALLBACK)
            pkce = oauth.new_pkce()
            settings = dataclasses.replace(load_settings(store), auth_method="oauth_web",
                                           oauth_client_id=CONSUMER_KEY,
                                           oauth_client_secret=CONSUMER_SECRET)
            answer = _authorize_app(emu, pkce.verifier)
            token = oauth.exchange_code(settings, oauth.plain_session(emu.ca_path), answer["code"],
                                        DEMO_CALLBACK, pkce.verifier)
            save_settings(store, dict(auth_method="oauth_web", oauth_client_id=CONSUMER_KEY,
                                      oauth_client_secret=CONSUMER_SECRET,
                                      oauth_refresh_token=token.refresh_token))
            forget_connection(store)
            call, display, _ = ring(host, "045-000-1111")
            end(host, call)
            emu.oauth.expire_access_tokens()
            call, display, _ = ring(host, "045-000-2222")
            end(host, call)
            emu.oauth.revoke_refresh_tokens()
            forget_connection(store)
            call, display, _ = ring(host, "045-000-3333")
            assert display["status"] == "unavailable"
            end(host, call)
            runtime_for().wait_idle(10)
            Alerts(store, clock=lambda: _later(hours=3)).tick()

            mails_before = len(smtp.messages)
            pages = crawl(make_app(home, TESTING=True), smtp.port)
            assert len(smtp.wait_for(mails_before + 1)) > mails_before, "the admin's test mail did not arrive"
            secrets = {"Salesforce password": PASSWORD, "security token": SECURITY_TOKEN,
                       "consumer secret": CONSUMER_SECRET, "refresh token": token.refresh_token,
                       "SMTP password": SMTP_PASSWORD}
            assert load_settings(store).oauth_refresh_token == token.refresh_token
            runtime_for().wait_idle(10)
            yield Day(home, store, secrets, smtp, logs, pages, cli_output)
            shutdown_all()
            store.close()
    finally:
        emu.stop()
        smtp.stop()
        root.removeHandler(logs)
        root.setLevel(old_level)


def _later(hours: float):
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours)


def _authorize_app(emu, verifier: str) -> dict:
    """The emulator's login and consent pages, for the scan's connected app."""
    import types

    app_view = types.SimpleNamespace(login_url=emu.login_url, oauth_client_id=CONSUMER_KEY,
                                     username=emu.username, password=emu.password)
    return authorize(app_view, trusting_session(emu), verifier=verifier)


# ---------------------------------------------------------------------------------------------
# the scans
# ---------------------------------------------------------------------------------------------

def test_the_day_used_every_secret(day):
    """The scans below mean something: each secret was stored and used."""
    assert (SMTP_USER, SMTP_PASSWORD) in day.smtp.logins
    assert day.smtp.messages, "no mail was sent"
    assert {"DB", "WAL"} <= {"DB" if p.name == "sfcti.db" else "WAL" if p.name.endswith("-wal") else ""
                             for p in day.home.iterdir()}, list(day.home.iterdir())
    assert len(day.pages) >= 10 and "/settings/" in day.pages
    assert day.logs.lines, "nothing was logged"


def test_instance_files_hold_no_secret_in_clear(day):
    found = {path.name: leaks(path.read_bytes(), day.secrets)
             for path in sorted(day.home.rglob("*")) if path.is_file()}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_log_records_hold_no_secret(day):
    found = [(line[:200], leaks(line, day.secrets)) for line in day.logs.lines]
    assert [hit for hit in found if hit[1]] == []


def test_error_log_holds_no_secret(day):
    from core.errors import list_errors

    rows = list_errors(day.store, limit=10_000)
    assert rows, "the failing logins left no error row"
    found = [(row["code"], leaks(repr(row), day.secrets)) for row in rows]
    assert [hit for hit in found if hit[1]] == []


def test_mails_hold_no_secret(day):
    found = [(str(mail["Subject"]), leaks(mail.as_bytes(), day.secrets)) for mail in day.smtp.messages]
    assert [hit for hit in found if hit[1]] == []


def test_admin_pages_hold_no_secret(day):
    found = {url: leaks(html, day.secrets) for url, html in day.pages.items()}
    assert {url: hits for url, hits in found.items() if hits} == {}
    assert ADMIN_PASSWORD not in "".join(day.pages.values())


def test_cli_output_holds_no_secret(day):
    found = [(text[:200], leaks(text, day.secrets)) for text in day.cli_output]
    assert [hit for hit in found if hit[1]] == []
    assert re.search(r"password", "".join(day.cli_output), re.IGNORECASE)   # settings show ran
