"""Plain helpers and test data shared by several test files (the fixtures are in conftest.py).

Sections: the sample org and emulator clients; the plugin as a host loads and calls it; the
emulator's OAuth pages; the admin app, its forms and a real SMTP server.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import html
import itertools
import pathlib
import re
import socket
import time
from urllib.parse import parse_qs, urlsplit

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent   # the project: cwd and PYTHONPATH of child processes

# ---------------------------------------------------------------------------------------------
# the sample org and clients of the emulator
# ---------------------------------------------------------------------------------------------

SAMPLE_ACCOUNT_ID = "0015g000001SAMP"     # 15 characters: the org stores the 18-character form
BULK_CONTACTS = 4500          # more than two 2,000-record pages of one query


def sample_records(person_accounts=False):
    """A small org people can reason about: names, companies and phones typed several ways."""
    accounts = [
        {"Id": SAMPLE_ACCOUNT_ID, "Name": "株式会社サンプル", "Phone": "03-1234-5678",
         "LastModifiedDate": "2024-05-20T20:49:32.000+0000"},
        {"Name": "山田商事", "Phone": "0312345678", "LastModifiedDate": "2024-04-01T09:00:00.000+0000"},
        {"Name": "Acme Inc", "Phone": "+1 415-555-1212", "LastModifiedDate": "2023-01-01T00:00:00.000+0000"},
    ]
    sample_id = accounts[0]["Id"]
    contacts = [
        {"LastName": "山田", "FirstName": "太郎", "Phone": "03-1234-5678", "MobilePhone": "090-1111-2222",
         "AccountId": sample_id, "Email": "taro@example.jp",
         "LastModifiedDate": "2024-05-21T10:00:00.000+0000"},
        {"LastName": "佐藤", "FirstName": "花子", "Phone": "(03) 1234-5678", "AccountId": sample_id,
         "LastModifiedDate": "2024-03-01T10:00:00.000+0000"},
        {"LastName": "鈴木", "FirstName": "一郎", "MobilePhone": "０９０-３３３３-４４４４",
         "LastModifiedDate": "2024-06-01T10:00:00.000+0000"},
        {"LastName": "Smith", "FirstName": "John", "Phone": "+1 (415) 555-1212",
         "LastModifiedDate": "2022-12-01T10:00:00.000+0000"},
    ]
    contacts += [{"LastName": f"一括{i:04d}", "Phone": f"050-0000-{i:04d}", "Department": "bulk",
                  "LastModifiedDate": "2021-01-01T00:00:00.000+0000"} for i in range(BULK_CONTACTS)]
    leads = [
        {"LastName": "田中", "FirstName": "次郎", "Company": "田中工業", "Phone": "06-1111-2222",
         "LastModifiedDate": "2024-02-02T10:00:00.000+0000"},
        {"LastName": "高橋", "FirstName": "三郎", "Company": "高橋物産", "Phone": "03-1234-5678",
         "IsConverted": True, "LastModifiedDate": "2024-01-01T10:00:00.000+0000"},
    ]
    if person_accounts:
        accounts.append({"IsPersonAccount": True, "FirstName": "健", "LastName": "伊藤",
                         "Phone": "045-111-2222", "PersonMobilePhone": "080-5555-6666",
                         "LastModifiedDate": "2024-07-07T07:07:07.000+0000"})
    return {"Account": accounts, "Contact": contacts, "Lead": leads}


def build_org(person_accounts=False, name="サンプル組織"):
    """An emulator Org of sample_records()."""
    from emulator import Org

    return Org(records=sample_records(person_accounts), person_accounts=person_accounts, name=name)


def trusting_session(emu):
    """A requests.Session that trusts only the emulator's CA and ignores proxy/CA env variables."""
    session = requests.Session()
    session.trust_env = False
    session.verify = emu.ca_path
    return session


def login(emu, session=None, password=None, token=None):
    """SalesforceLogin against the emulator: (session_id, sf_instance)."""
    from simple_salesforce import SalesforceLogin

    return SalesforceLogin(username=emu.username,
                           password=emu.password if password is None else password,
                           security_token=emu.security_token if token is None else token,
                           session=session or trusting_session(emu), scratch_url=emu.login_url)


def client_for(emu):
    """A logged-in simple_salesforce.Salesforce client talking to `emu`."""
    from simple_salesforce import Salesforce

    session = trusting_session(emu)
    session_id, instance = login(emu, session)
    return Salesforce(session_id=session_id, instance=instance, session=session)


def emu_settings(emu, **changes):
    """core Settings that log in to ``emu``."""
    from core.settings import Settings

    values = dict(username=emu.username, password=emu.password, security_token=emu.security_token,
                  login_url=emu.login_url, ca_bundle=emu.ca_path, connect_timeout=2.0,
                  read_timeout=2.0)
    values.update(changes)
    return Settings(**values)


def save_emu_settings(store, emu) -> None:
    """Connect the instance folder of ``store`` to ``emu`` with emu_settings()."""
    from core.settings import save_settings

    save_settings(store, dataclasses.asdict(emu_settings(emu)))


def rest_calls(emu) -> int:
    """Requests Salesforce would count against the daily limit (everything but login)."""
    return sum(n for kind, n in emu.api_calls.items() if kind != "login")


# ---------------------------------------------------------------------------------------------
# numbers and what the screen shows for them
# ---------------------------------------------------------------------------------------------

DISPLAY_KEYS = {"status", "label", "company", "person", "object", "record_id", "record_url", "number"}

# numbers of the sample org, and (company, person, object) the screen must show for them
SAMPLE = {
    "+81312345678": ("株式会社サンプル", "山田 太郎", "Contact"),
    "+819011112222": ("株式会社サンプル", "山田 太郎", "Contact"),
    "+819033334444": (None, "鈴木 一郎", "Contact"),
    "+81611112222": ("田中工業", "田中 次郎", "Lead"),
    "+14155551212": (None, "Smith John", "Contact"),
}
UNKNOWN = "+81398760000"       # a valid Tokyo number no sample record has

WITHHELD, NOT_REGISTERED = "withheld", "not_registered"
# caller numbers no lookup may be spent on, and the status each must get
HOSTILE = [
    (None, WITHHELD), ("", WITHHELD), ("   ", WITHHELD), ("anonymous", WITHHELD),
    ("Anonymous", WITHHELD), ("非通知", WITHHELD), ("公衆電話", WITHHELD), ("P", WITHHELD),
    ("sip:anonymous@anonymous.invalid", WITHHELD),
    ("abc", NOT_REGISTERED), ("1" * 5000, NOT_REGISTERED), ("0" * 5000, NOT_REGISTERED),
    ("03-1234-5678' OR Name != '", NOT_REGISTERED),
    ("' OR '1'='1", NOT_REGISTERED),
    ("0312345678') OR (Phone != null", NOT_REGISTERED),
    ("03\\'1234", NOT_REGISTERED),
    ("FIND {*} IN ALL FIELDS RETURNING Contact", NOT_REGISTERED),
    ("03-1234-5678} OR {*", NOT_REGISTERED),
    ("<script>alert(1)</script>", NOT_REGISTERED),
    ("03-1234-5678<img src=x onerror=alert(1)>", NOT_REGISTERED),
    ("03-1234-5678\x00", NOT_REGISTERED),
    ("03-1234\r\n-5678", NOT_REGISTERED),
    ("\x1b[31m0312345678", NOT_REGISTERED),
    ("☎️📞", NOT_REGISTERED),
    ("+", NOT_REGISTERED), ("+-", NOT_REGISTERED),
    ("12", NOT_REGISTERED),
    ("%", NOT_REGISTERED), ("_", NOT_REGISTERED),
]

_serial = itertools.count(1)


def fresh(prefix: str = "03-6") -> tuple[str, str]:
    """(hyphenated national, E.164) of a Tokyo number (or mobile with prefix "090-") no other
    test uses."""
    n = next(_serial)
    if prefix == "090-":
        national = f"090-{5000 + n // 10000:04d}-{n % 10000:04d}"
    else:
        national = f"03-6{100 + n // 10000:03d}-{n % 10000:04d}"
    return national, f"+81{national[1:].replace('-', '')}"


# ---------------------------------------------------------------------------------------------
# the plugin as a host loads and calls it
# ---------------------------------------------------------------------------------------------

def make_host():
    """A pluggy PluginManager built exactly as a host builds it (the plugin from its entry point):
    the reference host's, `sfcti call`'s."""
    from bridges.host import load_host

    return load_host()


def connect(store, emu, **settings):
    """Point the instance at the emulator (plus any other settings)."""
    from core.settings import save_settings

    save_settings(store, dict(username=emu.username, password=emu.password,
                              security_token=emu.security_token, login_url=emu.login_url,
                              ca_bundle=emu.ca_path, **settings))


def ring(host, number, direction="inbound", **fields):
    """Ring (or dial) a call through the host; returns (call, display, seconds taken)."""
    from plugin.call import Call

    call = Call(direction=direction, remote_number=number, **fields)
    hook = host.hook.on_incoming_call if direction == "inbound" else host.hook.on_outgoing_call
    started = time.perf_counter()
    display = hook(call=call)
    return call, display, time.perf_counter() - started


def end(host, call, answered=True, duration=30.0):
    """End a call through the host."""
    call.end(answered=answered, duration=duration)
    return host.hook.on_call_ended(call=call)


def runtime():
    """This process's plugin runtime for $SFCTI_HOME."""
    from core.runtime import runtime_for

    return runtime_for()


def error_rows(store, code=None):
    """Error-log rows (optionally of one code)."""
    from core.errors import list_errors

    return list_errors(store, code=code, limit=1000)


def insert_row(store, table: str, row: dict) -> None:
    """Put a row the test made up straight into ``table``, on either backend."""
    store.conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                       list(row.values()))


# ---------------------------------------------------------------------------------------------
# the emulator's OAuth pages
# ---------------------------------------------------------------------------------------------

def authorize(emu, session, verifier="v" * 50, state="st-1", redirect_uri=None, decision="allow",
              password=None):
    """Drive the login and consent pages like a browser; returns the redirect's query dict.
    ``redirect_uri`` defaults to the demo app's callback."""
    from emulator.oauth import DEMO_CALLBACK, s256

    redirect_uri = redirect_uri or DEMO_CALLBACK
    params = {"response_type": "code", "client_id": emu.oauth_client_id, "redirect_uri": redirect_uri,
              "state": state, "code_challenge": s256(verifier), "code_challenge_method": "S256",
              "scope": "api refresh_token"}
    page = session.get(emu.login_url + "/services/oauth2/authorize", params=params)
    assert page.status_code == 200, page.text
    ticket = re.search(r"name='ticket' value='([^']+)'", page.text).group(1)
    url = emu.login_url + "/services/oauth2/authorize"
    consent = session.post(url, data={"step": "login", "ticket": ticket, "username": emu.username,
                                      "password": password or emu.password})
    assert "oaapprove" in consent.text, consent.text
    answer = session.post(url, data={"step": "consent", "ticket": ticket, "decision": decision},
                          allow_redirects=False)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(redirect_uri + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


# ---------------------------------------------------------------------------------------------
# the admin app, its forms, a real SMTP server
# ---------------------------------------------------------------------------------------------

ADMIN_USER = "admin"
ADMIN_PASSWORD = "correct horse battery staple"


def make_app(home, **config):
    """An admin app on the instance folder ``home`` with the test admin account."""
    from admin import create_app

    # a cheap hash keeps the many app-per-test fixtures fast
    return create_app({"SFCTI_HOME": str(home), "ADMIN_USERNAME": ADMIN_USER,
                       "ADMIN_PASSWORD": ADMIN_PASSWORD,
                       "ADMIN_PASSWORD_METHOD": "pbkdf2:sha256:1000", **config})


def page_html(client, url: str, lang: str = "ja") -> str:
    """The admin page at ``url`` in ``lang`` (asserting it answered 200)."""
    client.get(f"/lang/{lang}")
    response = client.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def field_has_error(html: str, name: str) -> bool:
    """True when the form field ``name`` is shown with an error.

    :raises AssertionError: the page has no field ``name``
    """
    for chunk in html.split('<div class="field')[1:]:
        if f'name="{name}"' in chunk.split('<div class="field')[0]:
            return chunk.startswith(" has-error")
    raise AssertionError(f"field {name} not on the page")


def csrf_token(client, url: str) -> str:
    """The CSRF token of the form on ``url`` (as a browser would read it)."""
    html = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def form_values(client, url: str) -> dict:
    """What the forms on ``url`` would post untouched, as a browser fills them: every input's
    value (a radio or check box only when checked), buttons and the CSRF token left out."""
    html_text = client.get(url).get_data(as_text=True)
    values = {}
    for tag in re.findall(r"<input\b[^>]*>", html_text):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        kind, name = attrs.get("type", "text"), attrs.get("name")
        if not name or name == "csrf_token" or kind in ("submit", "button", "file"):
            continue
        if kind in ("radio", "checkbox") and " checked" not in tag:
            continue
        values[name] = html.unescape(attrs.get("value", "y" if kind == "checkbox" else ""))
    return values


def post_form(client, url: str, data: dict, **kwargs):
    """POST ``data`` to ``url`` with the token the page's form carries."""
    return client.post(url, data={"csrf_token": csrf_token(client, url), **data}, **kwargs)


def admin_login(client, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD):
    """Log in through the login form of Flask's test client; returns the response."""
    return post_form(client, "/auth/login", {"username": username, "password": password})


def browser_login(page, base: str) -> None:
    """Log in as the test admin through the login page in the browser (Playwright ``page``)."""
    page.goto(base + "/auth/login")
    page.fill("#username", ADMIN_USER)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#submit")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    """A real SMTP server on 127.0.0.1 that keeps what it receives; can go down and come back
    on the same port."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.messages: list[email.message.EmailMessage] = []
        self.controller = None

    async def handle_DATA(self, server, session, envelope):
        """aiosmtpd's hook: keep the message, accept it."""
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def start(self) -> "SmtpServer":
        """Start listening (again)."""
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop listening; connections are refused until :meth:`start`."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def wait_for(self, count: int, timeout: float = 5.0) -> list:
        """The messages, once at least ``count`` arrived (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages

    def settings(self, **extra) -> dict:
        """Alert settings pointing at this server."""
        return {"alert_recipients": "ops@example.com, admin@example.com", "smtp_host": "127.0.0.1",
                "smtp_port": self.port, "smtp_security": "none", "smtp_sender": "sfcti@example.com",
                "admin_base_url": "http://admin.example.com:5000", **extra}


# ---------------------------------------------------------------------------------------------
# the command line, in this process
# ---------------------------------------------------------------------------------------------

def run_cli(home, *args, input=None):
    """`sfcti --home HOME ARGS` through click's CliRunner: the result, after checking the command
    ended with a message and an exit code, never a traceback."""
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, ["--home", str(home), *map(str, args)], input=input,
                                catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result
