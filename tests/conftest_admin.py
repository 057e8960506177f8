"""Fixtures for the admin, alert and browser tests: an admin app on a temporary instance folder,
a logged-in test client, and a real SMTP server on loopback (aiosmtpd).

Imported by those test files (``from conftest_admin import *``) so that tests/conftest.py stays
the emulator's.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import time

import pytest

ADMIN_USER = "admin"
ADMIN_PASSWORD = "correct horse battery staple"


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


@pytest.fixture
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def home(tmp_path):
    return tmp_path / "instance"


def make_app(home, **config):
    """An admin app on the instance folder ``home`` with the test admin account."""
    from admin import create_app

    # a cheap hash keeps the many app-per-test fixtures fast
    return create_app({"SFCTI_HOME": str(home), "ADMIN_USERNAME": ADMIN_USER,
                       "ADMIN_PASSWORD": ADMIN_PASSWORD,
                       "ADMIN_PASSWORD_METHOD": "pbkdf2:sha256:1000", **config})


@pytest.fixture
def app(home):
    return make_app(home, TESTING=True, SMTP_TIMEOUT=3.0)


@pytest.fixture
def store(app):
    from admin import get_store

    with app.app_context():
        return get_store()


@pytest.fixture(scope="module")
def server(app):
    """The module's ``app`` served by a real HTTP server thread (for the browser tests)."""
    from admin.liveserver import LiveServer

    with LiveServer(app) as server:
        yield server


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token(client, url: str) -> str:
    """The CSRF token of the form on ``url`` (as a browser would read it)."""
    html = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def post_form(client, url: str, data: dict, **kwargs):
    """POST ``data`` to ``url`` with the token the page's form carries."""
    return client.post(url, data={"csrf_token": csrf_token(client, url), **data}, **kwargs)


def login(client, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD):
    """Log in through the login form; returns the response."""
    return post_form(client, "/auth/login", {"username": username, "password": password})


@pytest.fixture
def admin_client(client):
    response = login(client)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client
