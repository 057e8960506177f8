"""Alert e-mails about integration failures (DESIGN.md §5).

The error log is the source of truth: a *kind* of failure is ``integration:code`` with at least
one open incident. :meth:`Alerts.check` compares the open kinds with ``alert_state`` and queues,
in the same transaction, one mail when a kind starts, a reminder at most every
``alert_reminder_hours`` while it lasts, and one mail when it recovers (no open incident left).
The mails go through :class:`core.mail.Outbox`, so none is lost while SMTP is down.

Late screens (``SCREEN_LATE``) are mailed only once their incident counts
``slow_alert_threshold`` of them.

Two kinds of incident never cause mails: SMTP failures (the mail about them could not be sent
anyway; the error log shows them) and failures of the admin's own "Test connection and save",
which the admin is looking at on the page.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import urllib.parse

from core.errors import CONNECTION_TEST, SCREEN_LATE, entry_for, open_incident_kinds
from core.mail import Clock, Outbox, utcnow
from core.settings import load_settings, recipient_list
from core.store import now_iso

log = logging.getLogger(__name__)

SILENT_INTEGRATIONS = ("smtp",)
SILENT_OPERATIONS = (CONNECTION_TEST,)


class Alerts:
    """Decides which alert mails to send and queues them; :meth:`tick` also sends them."""

    def __init__(self, store, clock: Clock = utcnow, smtp_timeout: float = 10.0):
        self.store = store
        self.clock = clock
        self.outbox = Outbox(store, clock, smtp_timeout)

    def check(self) -> int:
        """Queue the mails the current error log calls for; returns how many were queued.

        Does nothing while alert e-mail is not configured, so a failure still open when the
        admin configures it gets its "started" mail then.
        """
        settings = load_settings(self.store)
        if not settings.alerts_configured():
            return 0
        recipients = recipient_list(settings.alert_recipients)
        now = self.clock()
        queued = 0
        with self.store.transaction() as db:  # one process decides at a time
            open_kinds = open_incident_kinds(self.store, SILENT_INTEGRATIONS, SILENT_OPERATIONS)
            states = {row["kind"]: row for row in db.query("SELECT * FROM alert_state")}
            for kind, incident in open_kinds.items():
                queued += self._on_open(db, kind, incident, states.get(kind), now, settings, recipients)
            for kind, state in states.items():
                if kind not in open_kinds and not state["recovered_at"]:
                    queued += self._on_recovered(db, kind, state, now, settings, recipients)
        return queued

    def tick(self) -> tuple[int, int, int]:
        """:meth:`check`, then send what is due; returns (queued, sent, failed)."""
        queued = self.check()
        if not self.outbox.pending():
            return queued, 0, 0
        settings = load_settings(self.store)
        if not settings.smtp_host:
            return queued, 0, 0
        sent, failed = self.outbox.flush(settings)
        return queued, sent, failed

    # -- deciding ----------------------------------------------------------------------------

    def _on_open(self, db, kind, incident, state, now, settings, recipients) -> int:
        if state is None or state["recovered_at"]:
            if (incident["count"] or 0) < mail_threshold(incident["code"], settings):
                return 0   # not yet an incident worth a mail (a few late screens)
            db.execute(
                "INSERT INTO alert_state (kind, started_at, last_mail_at, recovered_at) "
                "VALUES (?, ?, ?, NULL) ON CONFLICT (kind) DO UPDATE SET "
                "started_at = excluded.started_at, last_mail_at = excluded.last_mail_at, "
                "recovered_at = NULL", [kind, now_iso(now), now_iso(now)])
            self._queue(recipients, *compose("started", incident, settings))
            return 1
        interval = dt.timedelta(hours=settings.alert_reminder_hours)
        if now - dt.datetime.fromisoformat(state["last_mail_at"]) < interval:
            return 0
        db.execute("UPDATE alert_state SET last_mail_at = ? WHERE kind = ?", [now_iso(now), kind])
        self._queue(recipients, *compose("reminder", incident, settings, state["started_at"]))
        return 1

    def _on_recovered(self, db, kind, state, now, settings, recipients) -> int:
        db.execute("UPDATE alert_state SET recovered_at = ? WHERE kind = ?", [now_iso(now), kind])
        integration, _, code = kind.partition(":")
        incident = {"integration": integration, "code": code, "first_at": state["started_at"],
                    "last_at": now_iso(now), "count": None, "detail": ""}
        self._queue(recipients, *compose("recovered", incident, settings, state["started_at"]))
        return 1

    def _queue(self, recipients, subject, body) -> None:
        self.outbox.enqueue(recipients, subject, body)


def mail_threshold(code: str, settings) -> int:
    """How many occurrences an open incident of ``code`` needs before its "started" mail: the
    ``slow_alert_threshold`` setting for late screens (a slow moment is no failure), else one."""
    return settings.slow_alert_threshold if code == SCREEN_LATE else 1


# -- the mail text ----------------------------------------------------------------------------

_SUBJECTS = {
    "started": ("障害発生", "Failure"),
    "reminder": ("障害継続中", "Still failing"),
    "recovered": ("復旧", "Recovered"),
}


def compose(event: str, incident: dict, settings, started_at: str | None = None) -> tuple[str, str]:
    """(subject, body) of an alert mail, Japanese then English, with the remedy and a link to
    the error log filtered on this kind of failure."""
    entry = entry_for(incident["code"])
    ja, en = _SUBJECTS[event]
    subject = f"[sfcti] {ja} / {en}: {incident['integration']} {entry.code}"
    link = error_log_link(settings.admin_base_url, incident["integration"], entry.code)
    since = started_at or incident["first_at"]
    count = incident.get("count")
    body = "\n".join([
        _body("ja", event, entry, since, count, link),
        "",
        "-" * 60,
        "",
        _body("en", event, entry, since, count, link),
        "",
    ])
    return subject, body


_BODY_TEXTS = {
    "ja": {"started": "外部連携でエラーが発生しました。",
           "reminder": "外部連携のエラーが続いています。",
           "recovered": "外部連携のエラーは復旧しました。",
           "message": "内容", "code": "エラーコード", "since": "発生時刻 (UTC)", "count": "発生回数",
           "remedy": "対処方法", "link": "外部連携エラーログ"},
    "en": {"started": "An external integration started failing.",
           "reminder": "An external integration is still failing.",
           "recovered": "An external integration has recovered.",
           "message": "What happened", "code": "Error code", "since": "Since (UTC)",
           "count": "Occurrences", "remedy": "What to do", "link": "Error log"},
}


def _body(lang, event, entry, since, count, link) -> str:
    text = _BODY_TEXTS[lang]
    lines = [text[event], "", f"{text['message']}: {entry.message(lang)}",
             f"{text['code']}: {entry.code}", f"{text['since']}: {since}"]
    if count:
        lines.append(f"{text['count']}: {count}")
    if event != "recovered":
        lines += ["", f"{text['remedy']}: {entry.remedy(lang)}"]
    lines += ["", f"{text['link']}: {link}"]
    return "\n".join(lines)


def error_log_link(base_url: str, integration: str, code: str) -> str:
    """The admin's error-log URL filtered on one kind of failure."""
    query = urllib.parse.urlencode({"integration": integration, "code": code})
    return f"{base_url.rstrip('/')}/errors/?{query}"


# -- running it -------------------------------------------------------------------------------

class AlertWorker(threading.Thread):
    """The one alert sender: a daemon thread running :meth:`Alerts.tick` every ``interval``
    seconds until stopped.

    Every host process (core.runtime) and the admin (`sfcti admin`) run one, so alerts go out
    whichever of them is up. They never send a mail twice: deciding takes the database's write
    lock, and the outbox claims each mail before sending it.
    """

    def __init__(self, store, interval: float = 60.0, clock: Clock = utcnow):
        super().__init__(name="sfcti-alerts", daemon=True)
        self.alerts = Alerts(store, clock)
        self.interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Tick until stopped; a failing tick is logged and the next one comes anyway."""
        while not self._stop_event.is_set():
            try:
                self.alerts.tick()
            except Exception:  # the worker must outlive a locked database or a bad setting
                log.exception("alert check failed")
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        """Ask the thread to end after its current tick."""
        self._stop_event.set()
