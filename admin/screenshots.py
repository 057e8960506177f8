"""Render every admin page at 1280x800 with Debian's Chromium: ``python -m admin.screenshots DIR``.

A throw-away instance folder gets sample data (calls, contacts, errors, API usage); the
Salesforce settings are entered through the page against the local emulator, exactly as an admin
would, so the settings shot shows the real success message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import pathlib
import sys
import tempfile

USER, PASSWORD = "admin", "screenshots-only"
VIEWPORT = {"width": 1280, "height": 800}

SAMPLE_CALLS = [
    # minutes ago, direction, display, e164, company, person, object, status, agent
    (3, "inbound", "03-1234-5678", "+81312345678", "株式会社サンプル", "山田 太郎", "Contact", "matched", "sato"),
    (11, "outbound", "06-6123-4567", "+81661234567", "大阪精機株式会社", "田中 花子", "Contact", "matched", "suzuki"),
    (26, "inbound", "090-1234-0001", "+819012340001", None, None, None, "not_registered", "sato"),
    (41, "inbound", "非通知", None, None, None, None, "withheld", "takahashi"),
    (65, "inbound", "045-222-3333", "+81452223333", "横浜ロジスティクス", None, "Account", "matched", "suzuki"),
    (92, "outbound", "052-987-6543", "+81529876543", "名古屋食品 合同会社", "伊藤 健", "Lead", "matched", "sato"),
    (130, "inbound", "+1 415-555-1212", "+14155551212", "Example Inc.", "Jane Smith", "Contact", "matched", "takahashi"),
    (180, "inbound", "011-555-7777", "+81115557777", None, None, None, "unavailable", "suzuki"),
]


def populate(store, now: dt.datetime | None = None) -> None:
    """Fill ``store`` with sample calls, contacts, errors, API usage and a queued alert."""
    from core import errors, history
    from core.display import Contact
    from core.mail import Outbox
    from plugin.call import Call

    now = now or dt.datetime.now(dt.timezone.utc)
    for i, (ago, direction, display, e164, company, person, obj, status, agent) in enumerate(SAMPLE_CALLS):
        record_id = f"003000000000{i:03d}AAA" if obj else None
        url = (f"https://sample.lightning.force.com/lightning/r/{obj}/{record_id}/view"
               if obj else None)
        contact = Contact(obj, record_id, company, person, url) if company else None
        call = Call(f"call-{i}", direction, display, agent_id=agent,
                    started_at=now - dt.timedelta(minutes=ago)).end(answered=True, duration=240)
        shown = {"number": e164, "status": status, "label": display}
        history.record_call(store, history.call_facts(call), shown, display, contact)
        if contact is not None:
            store.upsert_contact(e164, **dataclasses.asdict(contact))
    for _ in range(3):
        errors.record_failure(store, "salesforce", "lookup", "TIMEOUT",
                              detail="ReadTimeout: read timed out after 10.0 s")
    errors.record_recovery(store, "salesforce", "lookup")
    for _ in range(12):
        errors.record_failure(store, "salesforce", "nightly_registration", "REQUEST_LIMIT_EXCEEDED",
                              detail="REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.")
    errors.record_failure(store, "smtp", "send_alert", "SMTP_AUTH",
                          detail="SMTPAuthenticationError: (535, b'5.7.8 Authentication failed')")
    store.count_api_call("rest", 41)
    store.count_api_call("login", 2)
    store.record_org_usage(1873, 15000)
    Outbox(store).enqueue(["ops@example.com"], "[sfcti] 障害発生 / Failure: salesforce REQUEST_LIMIT_EXCEEDED",
                          "(sample)")


@contextlib.contextmanager
def emulator_or_none():
    """The local Salesforce emulator when it can start, else None (settings are then stored
    directly and the success message is not shown)."""
    try:
        from emulator import Emulator, Org
    except ImportError:
        yield None
        return
    try:  # records for the phone index page; the settings page only needs a login to succeed
        from emulator import generate_org
        org = generate_org(size=300, seed=1)
    except (ImportError, AttributeError):
        org = Org()
    with Emulator(org, port=0) as emu:
        yield emu


def shoot(outdir: pathlib.Path) -> list[pathlib.Path]:
    """Write the screenshots into ``outdir``; returns their paths."""
    from playwright.sync_api import sync_playwright

    from admin import create_app, get_store
    from admin.liveserver import LiveServer, launch_chromium

    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, emulator_or_none() as emu:
        app = create_app({"SFCTI_HOME": tmp, "ADMIN_USERNAME": USER, "ADMIN_PASSWORD": PASSWORD})
        with app.app_context():
            populate(get_store())
        with LiveServer(app) as server, sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                page = browser.new_page(viewport=VIEWPORT, locale="ja-JP",
                                        extra_http_headers={"Accept-Language": "ja"})
                return _pages(page, server.url, outdir, emu, app)
            finally:
                browser.close()


def _pages(page, base: str, outdir: pathlib.Path, emu, app) -> list[pathlib.Path]:
    shots = []

    def snap(name: str) -> None:
        path = outdir / f"{name}.png"
        page.screenshot(path=str(path))
        shots.append(path)

    page.goto(base + "/auth/login")
    snap("01-login")
    page.fill("#username", USER)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    _fail_then_connect(page, base, emu, app, snap)
    for name, path in [("04-overview", "/"), ("05-call-history", "/calls/"),
                       ("06-contacts", "/contacts/"), ("07-error-log", "/errors/"),
                       ("08-common-errors", "/errors/common"), ("09-alert-email", "/alerts/")]:
        page.goto(base + path)
        snap(name)
    if emu is not None:
        _sync_index(page, base)
        snap("12-phone-index")
        _map_an_agent(page, base)
        snap("13-agents")
    page.click("#lang-en")
    page.goto(base + "/settings/")
    snap("10-settings-en")
    page.goto(base + "/errors/")
    snap("11-error-log-en")
    return shots


def _fail_then_connect(page, base, emu, app, snap) -> None:
    page.goto(base + "/settings/")
    if emu is None:
        _store_settings_directly(app)
        page.goto(base + "/settings/")
        snap("03-settings-connected")
        return
    page.fill("#username", emu.username)
    page.fill("#password", "wrong-password")
    page.fill("#security_token", emu.security_token)
    page.click("summary")
    page.fill("#login_url", emu.login_url)
    page.fill("#ca_bundle", str(emu.ca_path))
    _submit(page)
    snap("02-settings-failed")
    page.fill("#password", emu.password)
    page.fill("#security_token", emu.security_token)
    _submit(page)
    snap("03-settings-connected")


def _sync_index(page, base: str) -> None:
    """Press "sync now" on the index page and reload until the index is built."""
    import time

    page.goto(base + "/index/")
    page.click("#sync_now")
    deadline = time.monotonic() + 60
    while page.locator("#index-running").count() and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    page.goto(base + "/index/")   # without the "started" message


def _map_an_agent(page, base: str) -> None:
    """Map one agent of the sample calls through the user search, then search for another."""
    page.goto(base + "/agents/?agent_id=suzuki&q=suzuki")
    if page.locator("#users button").count():   # the generated org has the demo users
        page.locator("#users button").first.click()
    page.goto(base + "/agents/?agent_id=sato&q=sato")


def _submit(page) -> None:
    # the connection test takes a moment: a screenshot taken mid-navigation fails
    with page.expect_navigation():
        page.click("#submit")


def _store_settings_directly(app) -> None:
    from admin import get_store
    from core.settings import save_settings

    with app.app_context():
        save_settings(get_store(), {"username": "integration@sample.example.com",
                                    "password": "sample", "security_token": "sample"})


def main(argv: list[str]) -> int:
    """Command line entry: ``python -m admin.screenshots OUTDIR``."""
    outdir = pathlib.Path(argv[1] if len(argv) > 1 else "docs/screenshots")
    for path in shoot(outdir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
