"""Alert e-mail: building messages safely, sending them, and the outbox that never loses one.

Every alert goes into the ``outbox`` table first (inside the caller's transaction, so deciding to
alert and queueing the mail happen together). :meth:`Outbox.flush` sends what is due; a mail that
cannot be sent stays queued with ``attempts`` raised and ``next_attempt_at`` pushed back
exponentially, and is sent later, also by another process, another node or after a restart. A
mail is claimed (its ``next_attempt_at`` moved past a lease, the row read ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL) before sending, so two processes or nodes flushing together do not both
send it.

Headers are built with :class:`email.message.EmailMessage`, whose default policy refuses CR/LF in
header values: no header injection, whatever the settings or error texts contain.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import smtplib
import socket
import ssl
from email.message import EmailMessage
from typing import Callable

from core import errors
from core.settings import load_settings, recipient_list
from core.store import now_iso

CLAIM_SECONDS = 120          # a sender has this long before another process may retry its mail
BACKOFF_FIRST_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    """The current aware UTC time (the default clock)."""
    return dt.datetime.now(dt.timezone.utc)


class MailNotConfigured(Exception):
    "Alert e-mail is not configured: set recipients and an SMTP host."

    integration = "smtp"


def build_message(sender: str, recipients: list[str], subject: str, body: str,
                  message_id: str | None = None) -> EmailMessage:
    """A UTF-8 text message. Header values with line breaks raise ValueError (the policy)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = message_id or email.utils.make_msgid(domain=_domain(sender))
    msg.set_content(body)
    return msg


def _domain(sender: str) -> str:
    return sender.rpartition("@")[2] or "sfcti.invalid"


def sender_of(settings) -> str:
    """The From address: the configured sender, else the SMTP user if it is an address."""
    if settings.smtp_sender:
        return settings.smtp_sender
    if "@" in settings.smtp_user:
        return settings.smtp_user
    return f"sfcti@{socket.getfqdn() or 'localhost'}"


def send_message(settings, msg: EmailMessage, timeout: float = 10.0,
                 on_accepted: Callable[[dict], None] | None = None) -> dict:
    """Send ``msg`` through the configured SMTP server (STARTTLS, SSL or plain); returns the
    recipients the server refused while it took the others (``{address: (code, reply)}``).
    ``on_accepted(refused)`` runs as soon as the server has taken the message, before saying
    goodbye, so the caller can note it before anything else can go wrong.

    :raises smtplib.SMTPException, OSError, ssl.SSLError: when the server cannot take it
    :raises MailNotConfigured: when there is no SMTP host
    """
    if not settings.smtp_host:
        raise MailNotConfigured(MailNotConfigured.__doc__)
    context = _tls_context(settings)
    if settings.smtp_security == "ssl":
        client = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout,
                                  context=context)
    else:
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    with client:
        if settings.smtp_security == "starttls":
            client.starttls(context=context)
        if settings.smtp_user:
            client.login(settings.smtp_user, settings.smtp_password)
        refused = client.send_message(msg)
        if on_accepted is not None:
            on_accepted(refused)
        return refused


def _tls_context(settings) -> ssl.SSLContext:
    # the CA bundle setting serves corporate CAs for SMTP too
    return ssl.create_default_context(cafile=settings.ca_bundle or None)


def send_test_message(settings, timeout: float = 10.0) -> None:
    """Send the "test e-mail" of the admin's button directly (not through the outbox).

    :raises MailNotConfigured: when recipients or the SMTP host are missing
    """
    recipients = recipient_list(settings.alert_recipients)
    if not recipients:
        raise MailNotConfigured(MailNotConfigured.__doc__)
    subject = "[sfcti] テストメール / Test e-mail"
    body = ("sfcti の通知メール設定のテストです。このメールが届いていれば、障害の通知を受け取れます。\n\n"
            "This is a test of the sfcti alert e-mail settings. If you can read it, alerts will "
            f"reach you.\n\n{settings.admin_base_url}\n")
    send_message(settings, build_message(sender_of(settings), recipients, subject, body), timeout)


class Outbox:
    """The queue of alert mails in the instance database."""

    def __init__(self, store, clock: Clock = utcnow, timeout: float = 10.0):
        self.store = store
        self.clock = clock
        self.timeout = timeout

    def enqueue(self, recipients: list[str], subject: str, body: str) -> int:
        """Queue a mail, due now; returns its id. Joins the caller's transaction if any."""
        now = now_iso(self.clock())
        with self.store.transaction() as db:
            cursor = db.execute(
                "INSERT INTO outbox (created_at, recipients, subject, body, attempts, "
                "next_attempt_at) VALUES (?, ?, ?, ?, 0, ?) RETURNING id",
                [now, ", ".join(recipients), subject, body, now],
            )
            return cursor.fetchone()[0]

    def waiting_count(self) -> int:
        """How many mails are not sent yet."""
        return self.store.conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]

    def pending(self) -> list[dict]:
        """Mails not sent yet, oldest first."""
        return list(self.store.db.query(
            "SELECT * FROM outbox WHERE sent_at IS NULL ORDER BY id"))

    def flush(self, settings=None) -> tuple[int, int]:
        """Send every due mail; returns (sent, failed). Stops at the first failure, since the
        server is then down for the rest too; failures are logged as SMTP errors."""
        settings = settings or load_settings(self.store)
        sent = 0
        while (row := self._claim_next()) is not None:
            taken: dict = {}
            try:
                # noted the moment the server takes it: a goodbye that fails or hangs cannot send it twice
                send_message(settings, self._message(settings, row), self.timeout,
                             on_accepted=lambda refused, row=row: taken.update(
                                 refused=self._settle(row, refused)))
            except Exception as exc:
                if "refused" not in taken:   # not taken (after taking it, only the goodbye failed)
                    self._postpone(row, exc)
                    errors.report_failure(self.store, "send_alert", exc, expected="smtp")
                    return sent, 1
            if taken.get("refused"):
                errors.report_failure(self.store, "send_alert",
                                      smtplib.SMTPRecipientsRefused(taken["refused"]), expected="smtp")
                return sent, 1
            sent += 1
        if sent:
            errors.record_recovery(self.store, "smtp", "send_alert")
        return sent, 0

    def _claim_next(self) -> dict | None:
        now = self.clock()
        # skip_locked: nodes flushing together each take a different mail, without waiting for
        # the store-wide writer lock (on SQLite the transaction itself keeps them apart)
        with self.store.transaction(serialized=False) as db:
            row = db.execute(
                "SELECT id, created_at, recipients, subject, body, attempts FROM outbox "
                "WHERE sent_at IS NULL AND next_attempt_at <= ? ORDER BY id LIMIT 1"
                f"{self.store.skip_locked}",
                [now_iso(now)],
            ).fetchone()
            if row is None:
                return None
            lease = now_iso(now + dt.timedelta(seconds=CLAIM_SECONDS))
            db.execute("UPDATE outbox SET next_attempt_at = ? WHERE id = ?", [lease, row[0]])
        keys = ("id", "created_at", "recipients", "subject", "body", "attempts")
        return dict(zip(keys, row))

    def _message(self, settings, row: dict) -> EmailMessage:
        # a stable Message-ID per queued mail lets mail clients fold a rare duplicate
        message_id = f"<sfcti-alert-{row['id']}-{row['created_at'][:19].replace(':', '')}@{_domain(sender_of(settings))}>"
        return build_message(sender_of(settings), recipient_list(row["recipients"]),
                             row["subject"], row["body"], message_id)

    def _settle(self, row: dict, refused: dict) -> dict:
        """The server took ``row``'s mail: sent, or kept for the recipients it ``refused`` (the
        others have it). Returns ``refused``."""
        if refused:
            self._postpone(row, smtplib.SMTPRecipientsRefused(refused), list(refused))
        else:
            self._mark_sent(row)
        return refused

    def _postpone(self, row: dict, exc: Exception, recipients: list[str] | None = None) -> None:
        """Retry later (backing off), to ``recipients`` only when given."""
        attempts = row["attempts"] + 1
        delay = min(BACKOFF_FIRST_SECONDS * 2 ** (attempts - 1), BACKOFF_MAX_SECONDS)
        retry_at = now_iso(self.clock() + dt.timedelta(seconds=delay))
        with self.store.transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?, "
                "recipients = ? WHERE id = ?",
                [attempts, retry_at, errors.describe_failure(exc, "smtp")[1][:500],
                 ", ".join(recipients) if recipients else row["recipients"], row["id"]],
            )

    def _mark_sent(self, row: dict) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = NULL "
                       "WHERE id = ?", [now_iso(self.clock()), row["id"]])
