"""The record page a record link opens on the emulator (/lightning/r/<Object>/<Id>/view), over real
HTTPS: laid out like Salesforce's (object, name, company, phones, last change), everything escaped,
404 for what does not exist, no login, no API call spent."""
from __future__ import annotations

import html
import re

import pytest

from helpers import trusting_session

HOSTILE_NAME = '<script>alert("name")</script>'
HOSTILE_COMPANY = "<img src=x onerror=alert(1)>&Co'"
HOSTILE_PHONE = '"><b>03</b>-1234'


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    """An emulator whose records this module knows by the Ids ``add_record`` gave back."""
    from emulator import Emulator, Org

    owner = {"Username": "owner@example.jp", "LastName": "管理", "FirstName": "花子"}
    org = Org(records={"User": [owner]})
    with Emulator(org, cert_dir=str(tmp_path_factory.mktemp("record-page-ca"))) as emu:
        ids = emu.ids = {}
        ids["account"] = emu.add_record("Account", {
            "Name": "株式会社テスト", "Phone": "03-1111-2222", "Fax": "03-1111-2223",
            "LastModifiedDate": "2024-05-20T20:49:32.000+0000"})
        ids["contact"] = emu.add_record("Contact", {
            "LastName": "山田", "FirstName": "太郎", "AccountId": ids["account"],
            "Phone": "03-1111-2222", "MobilePhone": "090-1111-2222", "Email": "taro@example.jp",
            "LastModifiedDate": "2024-12-31T15:00:00.000+0000"})
        ids["lead"] = emu.add_record("Lead", {
            "LastName": "田中", "FirstName": "次郎", "Company": "田中工業", "Phone": "06-1111-2222",
            "LastModifiedDate": "2024-02-02T10:00:00.000+0000"})
        ids["hostile_lead"] = emu.add_record("Lead", {
            "LastName": HOSTILE_NAME, "Company": HOSTILE_COMPANY, "Phone": HOSTILE_PHONE})
        ids["hostile_account"] = emu.add_record("Account", {"Name": HOSTILE_COMPANY})
        ids["hostile_contact"] = emu.add_record("Contact", {
            "LastName": "佐藤", "AccountId": ids["hostile_account"]})
        yield emu


def open_page(emu, path, method="GET"):
    """The page as a browser without any Salesforce session gets it."""
    response = trusting_session(emu).request(method, emu.login_url + path, allow_redirects=False)
    assert "Authorization" not in response.request.headers
    return response


def record_path(obj, record_id):
    return f"/lightning/r/{obj}/{record_id}/view"


def text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, entities decoded, spaces squeezed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def shown_title(page: str) -> str:
    """The page's heading: the record's name, or what went wrong."""
    return text(re.search(r'<h1 id="record-name">(.*?)</h1>', page, re.S).group(1))


def shown(page: str) -> dict:
    """The page's object label, record name, and its Details as {label: value}."""
    details = re.search(r'<dl class="details" id="details">(.*?)</dl>', page, re.S).group(1)
    return {"object": text(re.search(r'id="object-label">(.*?)<', page, re.S).group(1)),
            "name": shown_title(page),
            "details": {text(dt): text(dd) for dt, dd in
                        re.findall(r"<dt>(.*?)</dt>\s*<dd[^>]*>(.*?)</dd>", details, re.S)}}


def test_contact_page_shows_name_account_phones_and_last_change(emu):
    response = open_page(emu, record_path("Contact", emu.ids["contact"]))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = shown(response.text)
    assert page["object"] == "Contact" and page["name"] == "山田 太郎"
    details = page["details"]
    assert details["Account Name"] == "株式会社テスト"
    assert (details["Business Phone"], details["Mobile Phone"], details["Home Phone"]) == \
        ("03-1111-2222", "090-1111-2222", "")
    assert details["Email"] == "taro@example.jp" and details["Owner"] == "管理 花子"
    # 2024-12-31 15:00 UTC is New Year's midnight for the emulator's Asia/Tokyo user
    assert details["Last Modified By"] == "管理 花子, 2025/01/01 0:00"
    assert "<title>山田 太郎 | Contact | Salesforce</title>" in response.text
    account_link = record_path("Account", emu.ids["account"])
    assert f'<a href="{account_link}">株式会社テスト</a>' in response.text
    assert shown(open_page(emu, account_link).text)["name"] == "株式会社テスト"


def test_lead_and_account_pages(emu):
    lead = shown(open_page(emu, record_path("Lead", emu.ids["lead"])).text)
    assert (lead["object"], lead["name"], lead["details"]["Company"], lead["details"]["Phone"]) == \
        ("Lead", "田中 次郎", "田中工業", "06-1111-2222")
    assert lead["details"]["Last Modified By"] == "管理 花子, 2024/02/02 19:00"
    account = shown(open_page(emu, record_path("Account", emu.ids["account"])).text)
    assert (account["object"], account["name"]) == ("Account", "株式会社テスト")
    assert (account["details"]["Account Phone"], account["details"]["Account Fax"]) == \
        ("03-1111-2222", "03-1111-2223")
    assert account["details"]["Last Modified By"] == "管理 花子, 2024/05/21 5:49"


def test_a_15_character_id_opens_the_same_record(emu):
    page = shown(open_page(emu, record_path("Contact", emu.ids["contact"][:15])).text)
    assert page["name"] == "山田 太郎"


@pytest.mark.parametrize("key,obj", [("hostile_lead", "Lead"), ("hostile_contact", "Contact")])
def test_html_in_a_record_shows_as_text(emu, key, obj):
    response = open_page(emu, record_path(obj, emu.ids[key]))
    assert response.status_code == 200
    for markup in ("<script", "<img", "<b>"):
        assert markup not in response.text
    page = shown(response.text)
    if obj == "Lead":
        assert page["name"] == HOSTILE_NAME
        assert page["details"]["Company"] == HOSTILE_COMPANY
        assert page["details"]["Phone"] == HOSTILE_PHONE
    else:
        assert page["details"]["Account Name"] == HOSTILE_COMPANY
    assert "script-src" not in response.headers["Content-Security-Policy"]   # no script may run
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", [
    "/lightning/r/Contact/003ZZZZZZZZZZZZ/view",                   # no such record
    "/lightning/r/Opportunity/006000000000001/view",               # an object the org lacks
    "/lightning/r/Contact/%3Cscript%3Ealert(1)%3C%2Fscript%3E/view",  # not an Id
    "/lightning/page/home",
    "/lightning/r/Contact/",
])
def test_what_does_not_exist_is_a_404_page(emu, path):
    response = open_page(emu, path)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert shown_title(response.text) == "Record Not Available"
    assert "alert(" not in response.text


def test_a_record_under_another_objects_url_is_a_404(emu):
    response = open_page(emu, record_path("Account", emu.ids["contact"]))
    assert response.status_code == 404 and "山田" not in response.text


def test_the_page_is_only_viewed(emu):
    response = open_page(emu, record_path("Contact", emu.ids["contact"]), method="POST")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"


def test_viewing_records_needs_no_login_and_spends_no_api_call(emu):
    emu.reset_counters()
    for _ in range(3):
        assert open_page(emu, record_path("Lead", emu.ids["lead"])).status_code == 200
    assert emu.api_usage()[0] == 0
    assert emu.api_calls == {"record_page": 3}


def test_the_link_the_resolver_builds_opens_the_record(emu, tmp_path):
    from core.resolver import Resolver
    from core.salesforce import forget_connection
    from core.settings import save_settings
    from core.store import Store

    store = Store(tmp_path / "instance")
    save_settings(store, {"username": emu.username, "password": emu.password,
                          "security_token": emu.security_token, "login_url": emu.login_url,
                          "ca_bundle": emu.ca_path})
    try:
        display = Resolver(store).lookup("06-1111-2222")
    finally:
        forget_connection(store)
    assert display["record_url"].startswith(emu.login_url + "/lightning/r/Lead/")
    response = open_page(emu, display["record_url"][len(emu.login_url):])
    page = shown(response.text)
    assert (page["name"], page["details"]["Company"]) == ("田中 次郎", "田中工業")
