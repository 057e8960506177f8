"""Alert e-mails against a real SMTP server on loopback: one mail when a kind of failure starts,
a reminder after the interval, one on recovery; and none lost while SMTP is down, across a
restart."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from core import errors
from core.alerts import Alerts, compose, error_log_link
from core.mail import Outbox, build_message
from core.settings import Settings, save_settings
from core.store import Store
from helpers import SmtpServer, free_port


class Clock:
    """An injectable clock the test moves by hand."""

    def __init__(self):
        self.now = dt.datetime(2024, 5, 20, 9, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock():
    return Clock()


def subjects(server) -> list[str]:
    return [str(m["Subject"]) for m in server.messages]


def test_one_mail_per_incident_then_reminder_then_recovery(store, clock, smtp_server):
    save_settings(store, smtp_server.settings(alert_reminder_hours=4))
    alerts = Alerts(store, clock)
    for _ in range(5):  # the failure repeats: still one incident, one mail
        errors.record_failure(store, "salesforce", "lookup", "INVALID_LOGIN")
        alerts.tick()
        clock.advance(minutes=10)
    assert subjects(smtp_server) == ["[sfcti] 障害発生 / Failure: salesforce INVALID_LOGIN"]

    clock.advance(hours=3)  # 3 h 50 min after the first mail: not yet
    alerts.tick()
    assert len(smtp_server.messages) == 1
    clock.advance(minutes=10)
    alerts.tick()
    alerts.tick()
    assert subjects(smtp_server)[1:] == ["[sfcti] 障害継続中 / Still failing: salesforce INVALID_LOGIN"]

    errors.record_recovery(store, "salesforce")
    alerts.tick()
    alerts.tick()
    assert subjects(smtp_server)[2:] == ["[sfcti] 復旧 / Recovered: salesforce INVALID_LOGIN"]


def test_mail_text_has_both_languages_remedy_and_link(store, clock, smtp_server):
    save_settings(store, smtp_server.settings())
    errors.record_failure(store, "salesforce", "lookup", "LOGIN_MUST_USE_SECURITY_TOKEN")
    Alerts(store, clock).tick()
    (mail,) = smtp_server.wait_for(1)
    body = mail.get_content()
    entry = errors.entry_for("LOGIN_MUST_USE_SECURITY_TOKEN")
    for text in (entry.message_ja, entry.message_en, entry.remedy_ja, entry.remedy_en):
        assert text in body
    assert ("http://admin.example.com:5000/errors/?integration=salesforce"
            "&code=LOGIN_MUST_USE_SECURITY_TOKEN") in body
    assert mail["From"] == "sfcti@example.com"
    assert set(a.strip() for a in str(mail["To"]).split(",")) == {"ops@example.com", "admin@example.com"}


def test_a_new_incident_after_recovery_alerts_again(store, clock, smtp_server):
    save_settings(store, smtp_server.settings())
    alerts = Alerts(store, clock)
    for _ in range(2):
        errors.record_failure(store, "salesforce", "lookup", "TIMEOUT")
        alerts.tick()
        errors.record_recovery(store, "salesforce")
        alerts.tick()
    assert [s.split(":")[0] for s in subjects(smtp_server)] == [
        "[sfcti] 障害発生 / Failure", "[sfcti] 復旧 / Recovered",
        "[sfcti] 障害発生 / Failure", "[sfcti] 復旧 / Recovered"]


def test_each_kind_of_failure_has_its_own_alert(store, clock, smtp_server):
    save_settings(store, smtp_server.settings())
    errors.record_failure(store, "salesforce", "lookup", "TIMEOUT")
    errors.record_failure(store, "salesforce", "nightly", "TIMEOUT")  # same kind, other operation
    errors.record_failure(store, "salesforce", "lookup", "REQUEST_LIMIT_EXCEEDED")
    Alerts(store, clock).tick()
    assert sorted(subjects(smtp_server)) == [
        "[sfcti] 障害発生 / Failure: salesforce REQUEST_LIMIT_EXCEEDED",
        "[sfcti] 障害発生 / Failure: salesforce TIMEOUT"]


def test_connection_tests_and_smtp_failures_send_no_alert(store, clock, smtp_server):
    save_settings(store, smtp_server.settings())
    errors.record_failure(store, "salesforce", "connection_test", "INVALID_LOGIN")
    errors.record_failure(store, "smtp", "send_alert", "SMTP_CONNECTION")
    assert Alerts(store, clock).tick() == (0, 0, 0)
    assert smtp_server.messages == []


def test_nothing_is_sent_until_configured_then_the_ongoing_failure_is(store, clock, smtp_server):
    errors.record_failure(store, "salesforce", "lookup", "INVALID_LOGIN")
    alerts = Alerts(store, clock)
    assert alerts.tick() == (0, 0, 0)
    save_settings(store, smtp_server.settings())
    alerts.tick()
    assert subjects(smtp_server) == ["[sfcti] 障害発生 / Failure: salesforce INVALID_LOGIN"]


def test_smtp_down_then_back_across_a_restart_every_alert_arrives_once(tmp_path, clock):
    home = tmp_path / "instance"
    server = SmtpServer(free_port())  # not started: SMTP is down
    store = Store(home)
    save_settings(store, server.settings())
    alerts = Alerts(store, clock, smtp_timeout=2)

    errors.record_failure(store, "salesforce", "lookup", "INVALID_LOGIN")
    assert alerts.tick() == (1, 0, 1)
    clock.advance(minutes=1)
    errors.record_failure(store, "salesforce", "lookup", "REQUEST_LIMIT_EXCEEDED")
    alerts.tick()
    assert len(Outbox(store).pending()) == 2
    assert errors.count_errors(store, integration="smtp", open=True) == 1

    # restart: new objects on the same instance folder
    store.close()
    store = Store(home)
    alerts = Alerts(store, clock, smtp_timeout=2)
    errors.record_recovery(store, "salesforce", "lookup")
    clock.advance(minutes=1)
    alerts.tick()  # queues the recovery mails; SMTP still down
    assert len(Outbox(store).pending()) == 4

    server.start()
    try:
        clock.advance(hours=2)  # past every backoff
        alerts.tick()
        alerts.tick()
        got = sorted(subjects(server))
    finally:
        server.stop()
    assert got == sorted([
        "[sfcti] 障害発生 / Failure: salesforce INVALID_LOGIN",
        "[sfcti] 障害発生 / Failure: salesforce REQUEST_LIMIT_EXCEEDED",
        "[sfcti] 復旧 / Recovered: salesforce INVALID_LOGIN",
        "[sfcti] 復旧 / Recovered: salesforce REQUEST_LIMIT_EXCEEDED",
    ])
    assert len({m["Message-ID"] for m in server.messages}) == 4
    assert Outbox(store).pending() == []
    assert errors.count_errors(store, integration="smtp", open=True) == 0  # SMTP recovered


def test_retries_back_off_while_smtp_is_down(store, clock):
    server = SmtpServer(free_port())
    save_settings(store, server.settings())
    alerts = Alerts(store, clock, smtp_timeout=2)
    errors.record_failure(store, "salesforce", "lookup", "TIMEOUT")
    alerts.tick()
    first = Outbox(store).pending()[0]
    assert first["attempts"] == 1 and first["last_error"]
    assert alerts.tick() == (0, 0, 0)  # not due yet: no new attempt
    clock.advance(seconds=31)
    alerts.tick()
    second = Outbox(store).pending()[0]
    assert second["attempts"] == 2 and second["next_attempt_at"] > first["next_attempt_at"]


def test_two_processes_ticking_together_send_each_mail_once(tmp_path, clock, smtp_server):
    home = tmp_path / "instance"
    save_settings(Store(home), smtp_server.settings())
    errors.record_failure(Store(home), "salesforce", "lookup", "TIMEOUT")
    barrier = threading.Barrier(4)

    def run():
        alerts = Alerts(Store(home), clock)
        barrier.wait()
        alerts.tick()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert subjects(smtp_server) == ["[sfcti] 障害発生 / Failure: salesforce TIMEOUT"]


@pytest.mark.parametrize("field", ["subject", "sender", "recipient"])
def test_headers_refuse_line_breaks(field):
    values = {"sender": "a@example.com", "recipient": "b@example.com", "subject": "hello"}
    values[field] += "\r\nBcc: victim@example.com"
    with pytest.raises(ValueError):
        build_message(values["sender"], [values["recipient"]], values["subject"], "body").as_bytes()


def test_hostile_error_codes_cannot_inject_headers(store, clock, smtp_server):
    save_settings(store, smtp_server.settings())
    with store.transaction() as db:  # a row written by something less careful than errors.py
        db.execute("INSERT INTO error_log (first_at, last_at, integration, operation, code, "
                   "message, count, open) VALUES ('2024-01-01', '2024-01-01', 'salesforce', "
                   "'lookup', ?, 'x', 1, 1)", ["EVIL\r\nBcc: victim@example.com"])
    Alerts(store, clock).tick()
    (mail,) = smtp_server.wait_for(1)
    assert mail["Bcc"] is None
    assert "\n" not in str(mail["Subject"])


def test_compose_and_link():
    settings = Settings(admin_base_url="https://admin.example.com/")
    subject, body = compose("started", {"integration": "smtp", "code": "SMTP_AUTH",
                                         "first_at": "2024-05-20T00:00:00+00:00", "count": 3},
                            settings)
    assert subject == "[sfcti] 障害発生 / Failure: smtp SMTP_AUTH"
    assert "発生回数: 3" in body and "Occurrences: 3" in body
    assert error_log_link("https://a/", "smtp", "X Y") == "https://a/errors/?integration=smtp&code=X+Y"
