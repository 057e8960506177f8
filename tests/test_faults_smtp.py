"""Fault matrix, SMTP rows (issue 13): the alert mail server refusing connections, hanging,
rejecting the login or a recipient. The screen and the history do not care; the alert stays in
the outbox, the error log says why, and once SMTP is back every recipient gets the alert exactly
once.

A real aiosmtpd server on loopback (with AUTH, and a switch to refuse the login or recipients),
and a listener that accepts connections and never answers (a hanging server).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import socket
import threading
from typing import Callable

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

from core.alerts import Alerts
from core.mail import Outbox
from core.salesforce import forget_connection
from faultmatrix import FAILURE, incidents
from helpers import SmtpServer, connect, end, free_port, ring, runtime

USER, PASSWORD = "alerts@example.com", "smtp-secret-pw"
OPS, ADMIN = "ops@example.com", "admin@example.com"
SUBJECT = f"{FAILURE}: salesforce SERVER_ERROR"


class Clock:
    """The alert sender's clock, moved by hand past the outbox's back-off."""

    def __init__(self):
        self.now = dt.datetime.now(dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)


class AuthSmtp(SmtpServer):
    """An SMTP server with AUTH that records each delivery per envelope recipient; it can refuse
    the login or some recipients."""

    def __init__(self, port: int):
        super().__init__(port)
        self.reject_login = False
        self.quit_reply = ""                     # a reply to QUIT other than "221 Bye"
        self.refused: set[str] = set()
        self.deliveries: list[tuple[str, str]] = []          # (recipient, subject)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        """aiosmtpd's hook: refuse the recipients in ``refused`` as a full mailbox would."""
        if address in self.refused:
            return "550 5.2.2 Mailbox full"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        """aiosmtpd's hook: keep the message and one delivery per recipient."""
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)
        self.deliveries += [(rcpt, str(message["Subject"])) for rcpt in envelope.rcpt_tos]
        return "250 OK"

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        ok = (not self.reject_login and auth_data.login == USER.encode()
              and auth_data.password == PASSWORD.encode())
        return AuthResult(success=ok, handled=False)

    def start(self) -> "AuthSmtp":
        """Listen with AUTH required (over plain SMTP on loopback)."""
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP

        owner = self

        class Session(SMTP):
            async def smtp_QUIT(self, arg):
                if not owner.quit_reply:
                    return await super().smtp_QUIT(arg)
                await self.push(owner.quit_reply)
                self.transport.close()

        class QuitController(Controller):
            def factory(self):
                return Session(self.handler, **self.SMTP_kwargs)

        self.controller = QuitController(self, hostname="127.0.0.1", port=self.port,
                                     authenticator=self._authenticate, auth_required=True,
                                     auth_require_tls=False)   # loopback: no TLS needed
        self.controller.start()
        return self


class Silent:
    """A TCP listener that accepts connections and never says a word (a hung mail server)."""

    def __init__(self, port: int):
        self.sock = socket.create_server(("127.0.0.1", port))
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def stop(self) -> None:
        """Close the listener (waking its accept) and the connections it holds."""
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)
        for conn in self.held:
            conn.close()


@dataclasses.dataclass
class Row:
    """An SMTP fault: what goes wrong (returns a stopper), the error code, who still waits."""

    name: str
    break_smtp: Callable
    code: str
    waiting_for: tuple = (OPS, ADMIN)        # recipients the alert still has to reach
    delivered_during_fault: tuple = ()


def _refusing(server):
    return lambda: server.start()            # nothing listens until healed


def _hanging(server):
    silent = Silent(server.port)
    return lambda: (silent.stop(), server.start())


def _rejecting_login(server):
    server.reject_login = True
    server.start()
    return lambda: setattr(server, "reject_login", False)


def _rejecting_a_recipient(server):
    server.refused = {ADMIN}
    server.start()
    return lambda: server.refused.clear()


def _rejecting_every_recipient(server):
    server.refused = {OPS, ADMIN}
    server.start()
    return lambda: server.refused.clear()


ROWS = [
    Row("refusing connections", _refusing, "SMTP_CONNECTION"),
    Row("hanging", _hanging, "SMTP_CONNECTION"),
    Row("rejecting the login", _rejecting_login, "SMTP_AUTH"),
    Row("rejecting one recipient", _rejecting_a_recipient, "SMTP_RECIPIENTS_REFUSED",
        waiting_for=(ADMIN,), delivered_during_fault=((OPS, SUBJECT),)),
    Row("rejecting every recipient", _rejecting_every_recipient, "SMTP_RECIPIENTS_REFUSED"),
]


@pytest.fixture
def server():
    """The alert SMTP server of a row (started by the row), stopped after the test."""
    smtp = AuthSmtp(free_port())
    yield smtp
    smtp.stop()


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_smtp_fault_row(row, store, emulator, host, server):
    connect(store, emulator, connect_timeout=0.5, read_timeout=1.0,
            **server.settings(smtp_user=USER, smtp_password=PASSWORD))
    heal = row.break_smtp(server)
    try:
        call = _call_while_salesforce_fails(emulator, host)

        clock = Clock()
        alerts = Alerts(store, clock, smtp_timeout=1.0)
        alerts.tick()
        [waiting] = Outbox(store).pending()
        assert waiting["subject"] == SUBJECT and waiting["attempts"] == 1
        assert sorted(a.strip() for a in waiting["recipients"].split(",")) == sorted(row.waiting_for)
        assert server.deliveries == list(row.delivered_during_fault)
        assert incidents(store) == [("salesforce", "lookup", "SERVER_ERROR", 1, 1),
                                    ("smtp", "send_alert", row.code, 1, 1)]
        clock.advance(seconds=10)            # not due yet: no new attempt
        assert alerts.tick() == (0, 0, 0)
    finally:
        heal()

    clock.advance(minutes=5)                  # past the back-off
    alerts.tick()
    alerts.tick()
    server.wait_for(len(row.delivered_during_fault) and 2 or 1)
    assert sorted(server.deliveries) == sorted([(OPS, SUBJECT), (ADMIN, SUBJECT)])   # each once
    assert Outbox(store).pending() == []
    assert incidents(store, open_only=True) == [("salesforce", "lookup", "SERVER_ERROR", 1, 1)]
    # the screen and the history never noticed
    from faultmatrix import history_of
    assert [r[:2] for r in history_of(store)] == [(call.call_id, "unavailable")]
    forget_connection(store)


def _call_while_salesforce_fails(emulator, host):
    """One call while Salesforce answers 503 (an incident worth an alert); its screen shows the
    number within the budget."""
    emulator.faults.http_status = 503
    call, display, took = ring(host, "03-1234-5678")
    assert display["status"] == "unavailable" and took < 0.9
    end(host, call)
    assert runtime().wait_idle(15)
    return call


def test_smtp_failing_after_taking_the_mail_sends_it_once(store, emulator, host, server):
    """The server takes the alert, then answers QUIT with an error: the alert is sent, not
    sent again."""
    connect(store, emulator, connect_timeout=0.5, read_timeout=1.0,
            **server.settings(smtp_user=USER, smtp_password=PASSWORD))
    server.quit_reply = "421 4.3.2 Service shutting down"
    server.start()
    _call_while_salesforce_fails(emulator, host)

    clock = Clock()
    alerts = Alerts(store, clock, smtp_timeout=1.0)
    alerts.tick()
    server.quit_reply = ""
    clock.advance(minutes=5)
    alerts.tick()
    alerts.tick()
    assert sorted(server.deliveries) == sorted([(OPS, SUBJECT), (ADMIN, SUBJECT)])   # once each
    assert Outbox(store).pending() == []
    assert incidents(store) == [("salesforce", "lookup", "SERVER_ERROR", 1, 1)]     # no SMTP error
    forget_connection(store)
