"""Hostile form input gives a field error (and saves nothing), never a 500."""

from __future__ import annotations

import pytest

from core.settings import Settings, load_settings
from helpers import post_form

SETTINGS_FORM = {"username": "integration@example.com", "password": "", "security_token": "",
                 "contact_fetch": "nightly", "login_url": "", "ca_bundle": "",
                 "time_zone": "Asia/Tokyo", "nightly_time": "22:00", "screen_budget_ms": "800"}
ALERT_FORM = {"alert_recipients": "ops@example.com", "smtp_host": "smtp.example.com",
              "smtp_port": "587", "smtp_security": "starttls", "smtp_user": "", "smtp_password": "",
              "smtp_sender": "sfcti@example.com", "alert_reminder_hours": "4", "slow_alert_threshold": "5",
              "admin_base_url": "http://127.0.0.1:5000"}


def field_has_error(html: str, name: str) -> bool:
    """True when the form field ``name`` is shown with an error."""
    for chunk in html.split('<div class="field')[1:]:
        if f'name="{name}"' in chunk.split('<div class="field')[0]:
            return chunk.startswith(" has-error")
    raise AssertionError(f"field {name} not on the page")


HOSTILE_SETTINGS = [
    ("username", "a" * 10_000 + "@example.com"),
    ("username", "admin@example.com\r\nX-Injected: 1"),
    ("username", "admin@example.com\x00"),
    ("username", "not an address"),
    ("password", "pass\x00word"),
    ("password", "p" * 5000),
    ("security_token", "tok\nen"),
    ("login_url", "javascript:alert(1)"),
    ("login_url", "not a url"),
    ("login_url", "http://login.salesforce.com"),
    ("login_url", "https://user:pw@login.salesforce.com"),
    ("login_url", "https://login.salesforce.com\r\n.evil"),
    ("login_url", "https://" + "a" * 3000 + ".com"),
    ("ca_bundle", "/nonexistent/ca.pem"),
    ("ca_bundle", "/etc\x00/passwd"),
    ("time_zone", "../../etc/passwd"),
    ("time_zone", "Mars/Olympus"),
    ("nightly_time", "25:00"),
    ("nightly_time", "２２:００"),
    ("screen_budget_ms", "abc"),
    ("screen_budget_ms", "１２３"),
    ("screen_budget_ms", "9" * 400),
    ("screen_budget_ms", "-1"),
    ("screen_budget_ms", "1e3"),
    ("contact_fetch", "sometimes"),
]


@pytest.mark.parametrize("name,value", HOSTILE_SETTINGS)
def test_hostile_settings_give_a_field_error_and_save_nothing(admin_client, store, name, value):
    response = post_form(admin_client, "/settings/", {**SETTINGS_FORM, name: value})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert field_has_error(html, name)
    assert load_settings(store) == Settings()
    if "\x00" not in value and len(value) < 200 and name not in ("password", "security_token"):
        assert "<script" not in html


HOSTILE_ALERTS = [
    ("alert_recipients", "ops@example.com\r\nBcc: victim@example.com"),
    ("alert_recipients", "ops@example.com, <script>@x"),
    ("alert_recipients", ",".join(f"u{i}@example.com" for i in range(200))),
    ("smtp_sender", "sfcti@example.com\nBcc: victim@example.com"),
    ("smtp_sender", "Mallory <m@example.com>"),
    ("smtp_host", "smtp.example.com\r\nRCPT TO:<x@y>"),
    ("smtp_host", "host name with spaces"),
    ("smtp_host", "h" * 300),
    ("smtp_port", "0"),
    ("smtp_port", "70000"),
    ("smtp_port", "25; rm -rf /"),
    ("smtp_security", "tls13"),
    ("smtp_user", "user\r\nAUTH PLAIN"),
    ("smtp_password", "pw\r\n"),
    ("alert_reminder_hours", "0"),
    ("alert_reminder_hours", "many"),
    ("slow_alert_threshold", "0"),
    ("slow_alert_threshold", "１０"),
    ("slow_alert_threshold", "10001"),
    ("admin_base_url", "ftp://example.com"),
    ("admin_base_url", "javascript:alert(1)"),
    ("admin_base_url", ""),
    ("admin_base_url", "http://exa mple.com"),
]


@pytest.mark.parametrize("button", ["save", "send_test"])
@pytest.mark.parametrize("name,value", HOSTILE_ALERTS)
def test_hostile_alert_settings_give_a_field_error(admin_client, store, smtp_server, name, value, button):
    form = {**ALERT_FORM, "smtp_host": "127.0.0.1", "smtp_port": str(smtp_server.port),
            "smtp_security": "none", name: value, button: "1"}
    response = post_form(admin_client, "/alerts/", form)
    assert response.status_code == 200
    assert field_has_error(response.get_data(as_text=True), name)
    assert load_settings(store) == Settings()
    assert smtp_server.messages == []  # the test e-mail was not sent either


def test_oversized_post_is_refused_not_crashed(admin_client):
    response = post_form(admin_client, "/settings/", {**SETTINGS_FORM, "username": "x" * 300_000})
    assert response.status_code == 413


def test_unexpected_fields_and_methods_are_harmless(admin_client, store):
    response = post_form(admin_client, "/alerts/", {**ALERT_FORM, "save": "1",
                                                    "smtp_password": "s", "admin_password": "x",
                                                    "username": "evil@example.com"})
    assert response.status_code == 302
    assert load_settings(store).username == ""  # only the form's own settings are written
    assert admin_client.put("/settings/").status_code == 405
    assert admin_client.get("/settings/disconnect").status_code == 405
