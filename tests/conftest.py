"""Shared fixtures. The emulator's come first: a small hand-built org served over real HTTPS, reset
between tests, and real simple-salesforce clients that trust only the emulator's CA."""
import pytest
import requests

# ---------------------------------------------------------------------------------------------
# emulator
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


# ---------------------------------------------------------------------------------------------
# browser (one Chromium for every browser test file: Playwright's sync API allows one at a time)
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
