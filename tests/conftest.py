"""Every shared fixture, by what it gives: the local Salesforce emulator over real HTTPS; an
instance folder and the plugin as a host loads it; the admin app, its test client and the app
served to a real browser; a real SMTP server on loopback. Plain helpers are in tests/helpers.py.

Servers that are slow to start live for the session (or the module, when tests change their org)
and are made healthy again around each test.
"""

import os

import pytest

from helpers import (SmtpServer, admin_login, build_org, client_for, connect, make_app, make_host,
                     save_emu_settings)


# ---------------------------------------------------------------------------------------------
# the emulator: the sample org, shared by the session
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def emulator_server(tmp_path_factory):
    """One emulator (org without person accounts) for the whole test session."""
    from emulator import Emulator

    with Emulator(build_org(), cert_dir=str(tmp_path_factory.mktemp("emulator-ca"))) as emu:
        yield emu


@pytest.fixture(scope="session")
def pa_emulator_server(tmp_path_factory):
    """One emulator whose org has person accounts."""
    from emulator import Emulator

    with Emulator(build_org(person_accounts=True, name="個人取引先組織"),
                  cert_dir=str(tmp_path_factory.mktemp("pa-emulator-ca"))) as emu:
        yield emu


def _healthy(emu):
    emu.reset()
    emu.session_seconds = 7200
    emu.require_token = True


@pytest.fixture
def emulator(emulator_server):
    """The session's emulator, healthy: no faults, fresh counters and request log, full allowance."""
    _healthy(emulator_server)
    yield emulator_server
    _healthy(emulator_server)


@pytest.fixture
def pa_emulator(pa_emulator_server):
    """The person-account emulator, healthy."""
    _healthy(pa_emulator_server)
    yield pa_emulator_server
    _healthy(pa_emulator_server)


@pytest.fixture
def sf(emulator):
    """A simple-salesforce client logged in to the session emulator (login not in the counters)."""
    client = client_for(emulator)
    emulator.reset_counters()
    return client


@pytest.fixture
def pa_sf(pa_emulator):
    """A simple-salesforce client logged in to the person-account emulator."""
    client = client_for(pa_emulator)
    pa_emulator.reset_counters()
    return client


@pytest.fixture
def emu(emu_server):
    """The emulator of a module that defines ``emu_server`` (its own org), healthy before and
    after each test: no faults, validation rules or denied permissions; its records are kept."""
    emu_server.reset()
    yield emu_server
    emu_server.reset()


# ---------------------------------------------------------------------------------------------
# the emulator: empty orgs a module's tests add their own records to
# ---------------------------------------------------------------------------------------------

def _empty_org_emulator(person_accounts: bool):
    from emulator import Emulator, Org

    name = "sfcti test org (person accounts)" if person_accounts else "sfcti test org"
    return Emulator(Org(person_accounts=person_accounts, name=name))


@pytest.fixture(scope="module")
def sf_emu_server():
    """An emulator whose org has person accounts and no sample records, shared by a module (its
    tests add records with numbers nobody else uses)."""
    with _empty_org_emulator(person_accounts=True) as emu:
        yield emu


@pytest.fixture(scope="module")
def sf_plain_emu_server():
    """An emulator whose org has no person accounts and no sample records, shared by a module."""
    with _empty_org_emulator(person_accounts=False) as emu:
        yield emu


@pytest.fixture
def sf_emu(sf_emu_server):
    """The module's person-account emulator, healthy (its records are kept between tests)."""
    _healthy(sf_emu_server)
    yield sf_emu_server
    _healthy(sf_emu_server)


@pytest.fixture
def sf_plain_emu(sf_plain_emu_server):
    """The module's emulator without person accounts, healthy."""
    _healthy(sf_plain_emu_server)
    yield sf_plain_emu_server
    _healthy(sf_plain_emu_server)


@pytest.fixture
def sf_store(store, sf_emu):
    """The instance folder connected to ``sf_emu`` (short timeouts)."""
    from core.salesforce import forget_connection

    save_emu_settings(store, sf_emu)
    yield store
    forget_connection(store)


@pytest.fixture
def plain_store(tmp_path, sf_plain_emu):
    """A second instance folder, connected to ``sf_plain_emu`` (no person accounts)."""
    from core.salesforce import forget_connection
    from core.store import Store

    store = Store(tmp_path / "plain")
    save_emu_settings(store, sf_plain_emu)
    yield store
    forget_connection(store)
    store.close()


# ---------------------------------------------------------------------------------------------
# the database: SQLite in the instance folder, or a real PostgreSQL for the modules that run on
# both
# ---------------------------------------------------------------------------------------------

# the test modules whose tests run once per backend (each test using an instance folder)
BOTH_BACKENDS = ("test_store", "test_history", "test_jobs", "test_call_ids", "test_nightly_api_calls",
                 "test_admin_", "test_browser_admin")


def pytest_generate_tests(metafunc):
    module = metafunc.module.__name__.rpartition(".")[2]
    if ("backend" in metafunc.fixturenames and module.startswith(BOTH_BACKENDS)
            and not _parametrizes_backend(metafunc)):
        # per module: the instance folders a module shares (module_database) live once per backend
        metafunc.parametrize("backend", ["sqlite", "postgresql"], indirect=True, scope="module")


def _parametrizes_backend(metafunc) -> bool:
    """Whether the test names its own backends (``@pytest.mark.parametrize("backend",
    ["sqlite"], indirect=True)`` for a test about SQLite itself)."""
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if isinstance(names, str):
            names = [name.strip() for name in names.split(",")]
        if "backend" in names:
            return True
    return False


@pytest.fixture(scope="module")
def backend(request):
    """The database the test's instance folders use: "sqlite" unless the module runs on both
    (its tests then run grouped by backend)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def postgres_server():
    """The session's PostgreSQL server (unix socket in a temporary folder), started on first use."""
    from pgserver import shared_server

    return shared_server()


class Databases:
    """Points instance folders at fresh PostgreSQL databases of ``server`` (one shared by every
    folder, or one per folder), and closes and drops them at the end."""

    def __init__(self, server, shared: bool):
        self.server = server
        self.shared_url = server.create_database() if shared else None
        self.pointed: list[tuple] = []

    def point(self, folder) -> str:
        """Write the folder's ``database_url`` (mode 0600); returns the URL."""
        url = self.shared_url or self.server.create_database()
        self.pointed.append((folder, url))
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(folder / "database_url", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(url + "\n")
        return url

    def drop(self) -> None:
        """Close what uses the databases (shared stores, pools) and drop them."""
        from core.postgres import close_all
        from core.store import forget_store

        for folder, _ in self.pointed:
            forget_store(folder)
        made = {url for _, url in self.pointed} | ({self.shared_url} - {None})
        for url in made:
            close_all(url)
            self.server.drop_database(url)


@pytest.fixture
def database(backend, request):
    """``database(folder)`` points the instance folder at the test's database: nothing to do on
    SQLite; on PostgreSQL a fresh database (one per test, dropped at its end) whose URL goes into
    the folder's ``database_url``. Returns the URL (None on SQLite)."""
    if backend == "sqlite":
        yield lambda folder: None
        return
    databases = Databases(request.getfixturevalue("postgres_server"), shared=True)
    yield databases.point
    databases.drop()


# ---------------------------------------------------------------------------------------------
# an instance folder, and the plugin as a host loads it
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def home(tmp_path, monkeypatch, database):
    """A fresh instance folder as $SFCTI_HOME (on the test's backend); no scheduler and no Tasks
    sent in the background unless a test asks (a send finishing after its test would land in the
    next test's counters)."""
    from core.runtime import shutdown_all

    path = tmp_path / "instance"
    database(path)
    monkeypatch.setenv("SFCTI_HOME", str(path))
    monkeypatch.setenv("SFCTI_JOBS", "off")
    monkeypatch.setenv("SFCTI_SEND_TASKS", "off")
    yield path
    shutdown_all()


@pytest.fixture
def store(home):
    """The instance folder's Store: the one the plugin and the CLI share in this process."""
    from core.store import open_store

    store = open_store(home)
    yield store
    store.close()


@pytest.fixture
def connected(store, emulator):
    """The instance connected to the session emulator (registration: nightly, the default)."""
    connect(store, emulator)
    emulator.reset_counters()
    return store


@pytest.fixture
def host():
    """The plugin in a real PluginManager, loaded through its entry point."""
    return make_host()


@pytest.fixture
def logging_store(store, emu):
    """The instance connected to the module's emulator (``emu``); Tasks go out only when a test
    sends them (the ``home`` fixture turns the hosts' own sending off)."""
    from core.salesforce import forget_connection

    connect(store, emu, connect_timeout=2.0, read_timeout=2.0)
    yield store
    forget_connection(store)


# ---------------------------------------------------------------------------------------------
# the admin app
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def app(home):
    """The admin app on the instance folder, in testing mode, with the test admin account."""
    return make_app(home, TESTING=True, SMTP_TIMEOUT=3.0)


@pytest.fixture
def client(app):
    """Flask's test client of ``app``, not logged in."""
    return app.test_client()


@pytest.fixture
def admin_client(client):
    """Flask's test client, logged in as the test admin."""
    response = admin_login(client)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback that keeps the messages it receives."""
    server = SmtpServer().start()
    yield server
    server.stop()


# ---------------------------------------------------------------------------------------------
# the admin in a real browser (one Chromium for every browser test file: Playwright's sync API
# allows one at a time)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright, shared by tests/test_browser_*.py."""
    from playwright.sync_api import sync_playwright

    from admin.liveserver import launch_chromium

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, admin_server):
    """A fresh Japanese browser tab on the served admin; JavaScript dialogs (there should be
    none) are dismissed and kept in ``page.dialogs``. A module may define its own."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP",
                                  extra_http_headers={"Accept-Language": "ja"})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()


@pytest.fixture(scope="module")
def served_app(tmp_path_factory, module_database):
    """An admin app on its own instance folder (on the module's backend), one per test module (a
    server thread serves one app for the whole module)."""
    folder = tmp_path_factory.mktemp("served") / "instance"
    module_database(folder)
    return make_app(folder)


@pytest.fixture(scope="module")
def admin_server(served_app):
    """``served_app`` served by a real HTTP server thread; its address is ``admin_server.url``."""
    from admin.liveserver import LiveServer

    with LiveServer(served_app) as server:
        yield server


@pytest.fixture
def served_store(served_app):
    """The Store of ``served_app``'s instance folder."""
    from admin import get_store

    with served_app.app_context():
        return get_store()


# ---------------------------------------------------------------------------------------------
# the admin modules whose instance folder lives for the module (servers slow to start)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def module_database(backend, request):
    """``database`` for an instance folder a whole module shares: ``module_database(folder)``
    points it at a fresh PostgreSQL database kept for the module (nothing to do on SQLite)."""
    if backend == "sqlite":
        yield lambda folder: None
        return
    databases = Databases(request.getfixturevalue("postgres_server"), shared=False)
    yield databases.point
    databases.drop()
