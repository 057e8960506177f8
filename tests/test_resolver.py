"""core/resolver.py against the emulator over HTTPS (real simple-salesforce, real SQLite).

Every test adds its own records with numbers nobody else uses, so tests share one emulator per
module and still do not see each other's data. API calls are read from the emulator's counters.
"""

from __future__ import annotations

import json
import time

import pytest

from core.display import MATCHED, NOT_REGISTERED, UNAVAILABLE, display_for
from core.phone import parse_phone
from core.resolver import Resolver, build_query
from core.salesforce import LimitExceeded, LoginFailed, Unavailable
from core.settings import save_settings
from helpers import DISPLAY_KEYS, HOSTILE, emu_settings, fresh, rest_calls


def stamp(day: int, second: int = 0) -> str:
    return f"2024-05-{day:02d}T10:00:{second:02d}.000+0000"


@pytest.fixture
def resolver(sf_store):
    return Resolver(sf_store)


def assert_one_call(emu):
    assert rest_calls(emu) == 1 and emu.api_calls["composite"] == 1, dict(emu.api_calls)


# ---------------------------------------------------------------------------------------------
# formats: any dialled format finds any stored format, in one call
# ---------------------------------------------------------------------------------------------

STORED_FORMATS = {
    "hyphenated": lambda d: f"{d[:2]}-{d[2:6]}-{d[6:]}",
    "bare": lambda d: d,
    "e164": lambda d: "+81" + d[1:],
    "e164 spaces": lambda d: f"+81 {d[1]} {d[2:6]} {d[6:]}",
    "e164 hyphen": lambda d: f"+81 {d[1]}-{d[2:6]}-{d[6:]}",
    "brackets": lambda d: f"({d[:2]}) {d[2:6]}-{d[6:]}",
    "brackets tight": lambda d: f"({d[:2]}){d[2:6]}-{d[6:]}",
    "spaces": lambda d: f"{d[:2]} {d[2:6]} {d[6:]}",
    "full-width": lambda d: "－".join(p.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
                                     for p in (d[:2], d[2:6], d[6:])),
    "full-width bare": lambda d: d.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
    "odd hyphens 3-3-4": lambda d: f"{d[:3]}-{d[3:6]}-{d[6:]}",
    "odd hyphens 4-2-4": lambda d: f"{d[:4]}-{d[4:6]}-{d[6:]}",
    "odd hyphen one": lambda d: f"{d[:5]}-{d[5:]}",
    "katakana dash": lambda d: f"{d[:2]}ー{d[2:6]}ー{d[6:]}",
}
DIALLED_FORMATS = {
    "e164": lambda d: "+81" + d[1:],
    "hyphenated": lambda d: f"{d[:2]}-{d[2:6]}-{d[6:]}",
    "bare": lambda d: d,
    "full-width": lambda d: d.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
}


@pytest.mark.parametrize("dialled", DIALLED_FORMATS)
@pytest.mark.parametrize("stored", STORED_FORMATS)
def test_any_format_finds_any_stored_format(sf_emu, resolver, stored, dialled):
    national, e164 = fresh()
    digits = national.replace("-", "")
    record_id = sf_emu.add_record("Contact", {"LastName": "書式", "Phone": STORED_FORMATS[stored](digits)})
    display = resolver.resolve(DIALLED_FORMATS[dialled](digits))
    assert display["status"] == MATCHED, (stored, dialled, display)
    assert display["record_id"] == record_id and display["number"] == e164
    assert_one_call(sf_emu)


@pytest.mark.parametrize("field", ["Phone", "MobilePhone"])
def test_mobile_numbers(sf_emu, resolver, field):
    national, e164 = fresh("090-")
    record_id = sf_emu.add_record("Contact", {"LastName": "携帯", field: national.replace("-", " ")})
    assert resolver.resolve(e164)["record_id"] == record_id


def test_lead_mobile(sf_emu, resolver):
    national, e164 = fresh("090-")
    record_id = sf_emu.add_record("Lead", {"LastName": "携帯", "Company": "見込み社",
                                           "MobilePhone": national})
    display = resolver.resolve(e164)
    assert (display["object"], display["record_id"]) == ("Lead", record_id)


def test_a_different_number_does_not_match(sf_emu, resolver):
    national, e164 = fresh()
    # the same subscriber digits in another area code (outside the numbers fresh() hands out)
    sf_emu.add_record("Contact", {"LastName": "近い", "Phone": national.replace("03-6", "03-5", 1)})
    assert resolver.resolve(e164)["status"] == NOT_REGISTERED


# ---------------------------------------------------------------------------------------------
# which record wins
# ---------------------------------------------------------------------------------------------

def test_contact_beats_account_beats_lead(sf_emu, resolver):
    national, e164 = fresh()
    lead = sf_emu.add_record("Lead", {"LastName": "見込", "Company": "L社", "Phone": national,
                                      "LastModifiedDate": stamp(30)})
    account = sf_emu.add_record("Account", {"Name": "A社", "Phone": national.replace("-", ""),
                                            "LastModifiedDate": stamp(20)})
    contact = sf_emu.add_record("Contact", {"LastName": "担当", "Phone": e164,
                                            "LastModifiedDate": stamp(1)})
    assert resolver.resolve(e164)["record_id"] == contact
    sf_emu.org.delete_record("Contact", contact)
    resolver.store.forget_no_match()
    assert resolver.resolve(e164)["record_id"] == account
    sf_emu.org.delete_record("Account", account)
    assert resolver.resolve(e164)["record_id"] == lead


def test_newest_record_wins(sf_emu, resolver):
    national, e164 = fresh()
    sf_emu.add_record("Contact", {"LastName": "古い", "Phone": national, "LastModifiedDate": stamp(1)})
    newer = sf_emu.add_record("Contact", {"LastName": "新しい", "MobilePhone": e164,
                                          "LastModifiedDate": stamp(9)})
    sf_emu.add_record("Contact", {"LastName": "中間", "Phone": national, "LastModifiedDate": stamp(5)})
    assert resolver.resolve(national)["record_id"] == newer


def test_ties_break_on_id(sf_emu, resolver):
    national, e164 = fresh()
    ids = [sf_emu.add_record("Contact", {"LastName": f"同時{i}", "Phone": national,
                                         "LastModifiedDate": stamp(3, 3)}) for i in range(3)]
    sf_emu.add_record("Contact", {"LastName": "古い", "Phone": national, "LastModifiedDate": stamp(2)})
    assert resolver.resolve(e164)["record_id"] == min(ids)


def test_converted_leads_are_ignored(sf_emu, resolver):
    national, e164 = fresh()
    sf_emu.add_record("Lead", {"LastName": "変換済", "Company": "済", "Phone": national,
                               "IsConverted": True, "LastModifiedDate": stamp(9)})
    assert resolver.resolve(e164)["status"] == NOT_REGISTERED
    other_national, other = fresh()
    sf_emu.add_record("Lead", {"LastName": "変換済", "Company": "済", "Phone": other_national,
                               "IsConverted": True, "LastModifiedDate": stamp(9)})
    open_lead = sf_emu.add_record("Lead", {"LastName": "未変換", "Company": "未", "Phone": other_national,
                                           "LastModifiedDate": stamp(1)})
    assert resolver.resolve(other)["record_id"] == open_lead


# ---------------------------------------------------------------------------------------------
# what the screen shows
# ---------------------------------------------------------------------------------------------

def test_contact_shows_its_account_and_name(sf_emu, resolver):
    national, e164 = fresh()
    account = sf_emu.add_record("Account", {"Name": "株式会社サンプル"})
    contact = sf_emu.add_record("Contact", {"LastName": "山田", "FirstName": "太郎",
                                            "AccountId": account, "Phone": national})
    display = resolver.resolve(e164)
    assert set(display) == DISPLAY_KEYS
    assert display == {
        "status": MATCHED, "label": "株式会社サンプル / 山田 太郎", "company": "株式会社サンプル",
        "person": "山田 太郎", "object": "Contact", "record_id": contact,
        "record_url": f"https://{sf_emu.instance}/lightning/r/Contact/{contact}/view",
        "number": e164}


def test_business_account_shows_company_only(sf_emu, resolver):
    national, e164 = fresh()
    sf_emu.add_record("Account", {"Name": "有限会社テスト", "Phone": national})
    display = resolver.resolve(e164)
    assert (display["object"], display["company"], display["person"], display["label"]) == (
        "Account", "有限会社テスト", None, "有限会社テスト")


def test_lead_shows_company_and_name(sf_emu, resolver):
    national, e164 = fresh()
    sf_emu.add_record("Lead", {"LastName": "佐藤", "FirstName": "花子", "Company": "見込み株式会社",
                               "Phone": national})
    display = resolver.resolve(e164)
    assert (display["company"], display["person"], display["label"]) == (
        "見込み株式会社", "佐藤 花子", "見込み株式会社 / 佐藤 花子")


def test_not_registered_shows_the_formatted_number(sf_emu, resolver):
    national, e164 = fresh()
    display = resolver.resolve(e164)
    assert display["status"] == NOT_REGISTERED and display["number"] == e164
    assert display["label"] == f"{national} 未登録"
    assert set(display) == DISPLAY_KEYS


def test_unavailable_display():
    display = display_for(parse_phone("0312345678"), UNAVAILABLE)
    assert display["status"] == UNAVAILABLE and display["label"] == "03-1234-5678"
    assert set(display) == DISPLAY_KEYS


# ---------------------------------------------------------------------------------------------
# person accounts
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["Phone", "PersonMobilePhone"])
def test_person_account_matches_as_account_with_person_name(sf_emu, resolver, field):
    national, e164 = fresh("090-")
    account = sf_emu.add_record("Account", {"LastName": "個人", "FirstName": "一郎",
                                            "IsPersonAccount": True, field: national})
    display = resolver.resolve(e164)
    assert (display["object"], display["record_id"]) == ("Account", account)
    assert (display["company"], display["person"], display["label"]) == (None, "個人 一郎", "個人 一郎")


def test_person_account_queries_name_person_fields(sf_emu, resolver):
    resolver.resolve(fresh()[1])
    soql = " ".join(sub["soql"] for sub in sf_emu.calls("composite")[0]["subrequests"])
    assert "PersonMobilePhone" in soql and "IsPersonAccount = false" in soql


def test_org_without_person_accounts_never_names_their_fields(sf_plain_emu, plain_store):
    resolver = Resolver(plain_store)
    national, e164 = fresh()
    account = sf_plain_emu.add_record("Account", {"Name": "法人", "Phone": national})
    assert resolver.resolve(e164)["record_id"] == account
    assert resolver.resolve(fresh()[1])["status"] == NOT_REGISTERED
    national, e164 = fresh()
    contact = sf_plain_emu.add_record("Contact", {"LastName": "担当", "MobilePhone": national})
    assert resolver.resolve(e164)["record_id"] == contact
    resolver.resolve_many([fresh()[1] for _ in range(20)])
    log = json.dumps(sf_plain_emu.request_log, ensure_ascii=False)
    assert "Person" not in log and "IsPersonAccount" not in log
    assert all(e["status"] == 200 for e in sf_plain_emu.request_log if e["kind"] != "login")


# ---------------------------------------------------------------------------------------------
# what costs nothing
# ---------------------------------------------------------------------------------------------

def test_registered_contact_costs_nothing(sf_emu, resolver):
    national, e164 = fresh()
    sf_emu.add_record("Contact", {"LastName": "登録", "Phone": national})
    display = resolver.resolve(e164)
    resolver.register(display)
    sf_emu.reset_counters()
    for dialled in (e164, national, national.replace("-", "")):
        assert resolver.resolve(dialled) == display
    assert not sf_emu.request_log


def test_resolve_does_not_register_by_itself(sf_emu, resolver):
    national, e164 = fresh()
    sf_emu.add_record("Contact", {"LastName": "未登録", "Phone": national})
    assert resolver.resolve(e164)["status"] == MATCHED
    assert resolver.store.get_contact(e164) is None
    assert resolver.resolve(e164)["status"] == MATCHED
    assert sf_emu.api_calls["composite"] == 2


def test_register_keeps_last_modified(sf_emu, resolver):
    national, e164 = fresh()
    sf_emu.add_record("Contact", {"LastName": "日付", "Phone": national, "LastModifiedDate": stamp(7)})
    row = resolver.register(resolver.resolve(e164))
    assert row["last_modified"] == stamp(7) and row["object"] == "Contact"
    assert resolver.register(display_for(parse_phone(fresh()[1]), NOT_REGISTERED)) is None


def test_no_match_is_remembered(sf_emu, resolver):
    e164 = fresh()[1]
    assert resolver.resolve(e164)["status"] == NOT_REGISTERED
    assert_one_call(sf_emu)
    for _ in range(5):
        assert resolver.resolve(e164)["status"] == NOT_REGISTERED
    assert_one_call(sf_emu)


def test_no_match_ttl_setting(sf_emu, sf_store):
    save_settings(sf_store, {"no_match_ttl_seconds": 1})
    resolver = Resolver(sf_store)
    e164 = fresh()[1]
    resolver.resolve(e164)
    resolver.resolve(e164)
    assert sf_emu.api_calls["composite"] == 1
    time.sleep(1.1)
    resolver.resolve(e164)
    assert sf_emu.api_calls["composite"] == 2


def test_no_match_ttl_zero_remembers_nothing(sf_emu, sf_store):
    save_settings(sf_store, {"no_match_ttl_seconds": 0})
    resolver = Resolver(sf_store)
    e164 = fresh()[1]
    resolver.resolve(e164)
    resolver.resolve(e164)
    assert sf_emu.api_calls["composite"] == 2


INJECTION_MARKERS = ["OR", "'", "FIND", "script", "img", "{", "%", "_", "\\"]


@pytest.mark.parametrize("raw, status", HOSTILE)
def test_unmatchable_numbers_cost_nothing(sf_emu, resolver, raw, status):
    display = resolver.resolve(raw)
    assert display["status"] == status
    assert set(display) == DISPLAY_KEYS and display["number"] is None
    assert len(display["label"]) <= 60
    assert not any(ch in display["label"] for ch in "\x00\r\n\x1b")
    assert not sf_emu.request_log


def test_no_injection_string_reaches_salesforce(sf_emu, resolver):
    raws = [raw for raw, _ in HOSTILE] + ["03-1234-5678", "+81 3 1234 5678"]
    resolver.resolve_many(raws)
    for raw in raws:
        resolver.resolve(raw)
    sent = json.dumps(sf_emu.request_log, ensure_ascii=False)
    for raw, _ in HOSTILE:
        if raw and len(raw.strip()) > 3:
            assert raw not in sent
    for sub in (s for e in sf_emu.calls("composite") for s in e["subrequests"]):
        values = sub["soql"].split(" IN ", 1)[1]
        assert "OR Name" not in values and "script" not in values and "FIND" not in values


def test_soql_is_built_with_quoting():
    soql = build_query("Lead", ["03-1234-5678", "x' OR Name != '"], person_accounts=False)
    assert "'x\\' OR Name != \\''" in soql


# ---------------------------------------------------------------------------------------------
# failures
# ---------------------------------------------------------------------------------------------

def test_expired_session_relogs_in_and_still_costs_one_call(sf_emu, resolver):
    national, e164 = fresh()
    record_id = sf_emu.add_record("Contact", {"LastName": "再", "Phone": national})
    resolver.resolve(fresh()[1])  # logged in
    sf_emu.expire_sessions()
    sf_emu.reset_counters()
    assert resolver.resolve(e164)["record_id"] == record_id
    assert sf_emu.api_calls["login"] == 1
    assert [e["status"] for e in sf_emu.calls("composite")] == [401, 200]


def test_limit_exhausted(sf_emu, resolver):
    resolver.resolve(fresh()[1])
    sf_emu.exhaust_daily_limit()
    with pytest.raises(LimitExceeded):
        resolver.resolve(fresh()[1])


def test_salesforce_down(sf_emu, resolver):
    resolver.resolve(fresh()[1])
    sf_emu.faults.http_status = 503
    with pytest.raises(Unavailable) as info:
        resolver.resolve(fresh()[1])
    assert info.value.code == "SERVER_ERROR"


def test_salesforce_hanging_times_out(sf_emu, sf_store):
    save_settings(sf_store, {"read_timeout": 0.5})
    resolver = Resolver(sf_store)
    resolver.resolve(fresh()[1])
    sf_emu.faults.hang = True
    started = time.monotonic()
    with pytest.raises(Unavailable) as info:
        resolver.resolve(fresh()[1])
    assert info.value.code == "TIMEOUT" and time.monotonic() - started < 3


def test_failure_is_not_remembered_as_no_match(sf_emu, resolver):
    e164 = fresh()[1]
    resolver.resolve(fresh()[1])
    sf_emu.faults.http_status = 500
    with pytest.raises(Unavailable):
        resolver.resolve(e164)
    sf_emu.faults.clear()
    assert not resolver.store.is_remembered_no_match(e164)


def test_login_failure(sf_emu, tmp_path):
    from core.store import Store

    store = Store(tmp_path / "bad")
    save_settings(store, dict(vars(emu_settings(sf_emu, password="wrong"))))
    with pytest.raises(LoginFailed):
        Resolver(store).resolve(fresh()[1])


# ---------------------------------------------------------------------------------------------
# many numbers
# ---------------------------------------------------------------------------------------------

def test_resolve_many_agrees_with_resolve(sf_emu, resolver):
    numbers, expected = [], {}
    objects = ["Contact", "Account", "Lead"]
    for i in range(300):
        national, e164 = fresh()
        stored = [national, national.replace("-", ""), "+81 " + national[1:]][i % 3]
        if i % 4 == 3:
            expected[e164] = None  # nobody has this number
        else:
            obj = objects[i % 3]
            fields = {"LastName": f"多{i}", "Phone": stored}
            if obj == "Account":
                fields = {"Name": f"多{i}", "Phone": stored}
            if obj == "Lead":
                fields["Company"] = "多数"
            expected[e164] = sf_emu.add_record(obj, fields)
        numbers.append([national, e164, national.replace("-", "")][i % 3])
    results = resolver.resolve_many(numbers + ["anonymous", "", "' OR 1=1"])
    assert set(results) == set(expected)
    for e164, record_id in expected.items():
        assert results[e164]["record_id"] == record_id
        assert results[e164]["status"] == (MATCHED if record_id else NOT_REGISTERED)
    # 300 numbers, three objects each, in no more than 1 call per 100 numbers
    assert rest_calls(sf_emu) <= 3
    for e164 in list(expected)[:12]:
        assert resolver.resolve(e164)["record_id"] == results[e164]["record_id"]


def test_resolve_many_splits_under_the_soql_limit(sf_emu, resolver):
    numbers = [fresh()[1] for _ in range(2500)]
    matched = numbers[::250]
    for e164 in matched:
        sf_emu.add_record("Contact", {"LastName": "大量", "Phone": e164})
    results = resolver.resolve_many(numbers)
    assert len(results) == 2500
    assert {e for e, d in results.items() if d["status"] == MATCHED} == set(matched)
    soqls = [s["soql"] for e in sf_emu.calls("composite") for s in e["subrequests"]]
    assert max(len(s) for s in soqls) <= 100_000
    assert all(len(e["subrequests"]) <= 5 for e in sf_emu.calls("composite"))
    assert rest_calls(sf_emu) <= 25  # at most 1 call per 100 numbers


def test_resolve_many_follows_pages(sf_emu, resolver):
    national, e164 = fresh()
    for i in range(2050):
        sf_emu.add_record("Contact", {"LastName": f"頁{i}", "Phone": national,
                                      "LastModifiedDate": stamp(1)})
    newest = sf_emu.add_record("Contact", {"LastName": "最新", "Phone": national,
                                           "LastModifiedDate": stamp(2)})
    results = resolver.resolve_many([e164, fresh()[1]])
    assert results[e164]["record_id"] == newest
    assert sf_emu.api_calls["query_more"] >= 1


def test_resolve_many_with_cache(sf_emu, resolver):
    national, e164 = fresh()
    resolver.store.upsert_contact(e164, object="Contact", record_id="003000000000000AAA",
                                  company="登録済", person="人")
    results = resolver.resolve_many([e164], use_cache=True)
    assert results[e164]["company"] == "登録済" and not sf_emu.request_log


def test_resolve_many_finds_odd_hyphenations(sf_emu, resolver):
    national, e164 = fresh()
    digits = national.replace("-", "")
    odd = f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"
    record_id = sf_emu.add_record("Lead", {"LastName": "変", "Company": "変則", "Phone": odd})
    numbers = [e164] + [fresh()[1] for _ in range(50)]
    results = resolver.resolve_many(numbers)
    assert results[e164]["record_id"] == record_id
    assert sum(d["status"] == MATCHED for d in results.values()) == 1
    assert rest_calls(sf_emu) <= 3


@pytest.mark.parametrize("count", [1, 150, 700])
def test_resolve_many_keeps_to_its_budget_when_nobody_is_known(sf_emu, resolver, count):
    results = resolver.resolve_many([fresh()[1] for _ in range(count)])
    assert len(results) == count
    assert all(d["status"] == NOT_REGISTERED for d in results.values())
    assert rest_calls(sf_emu) <= max(3, -(-count // 100))
    assert all(e["status"] == 200 for e in sf_emu.request_log if e["kind"] != "login")


def test_resolve_many_of_a_few_numbers_is_one_call(sf_emu, resolver):
    national, e164 = fresh()
    digits = national.replace("-", "")
    contact = sf_emu.add_record("Contact", {"LastName": "少", "Phone": f"{digits[:4]}-{digits[4:]}"})
    results = resolver.resolve_many([e164] + [fresh()[1] for _ in range(9)])
    assert results[e164]["record_id"] == contact
    assert_one_call(sf_emu)


def test_threads_share_one_resolver(sf_emu, resolver):
    import threading

    expected = {}
    for i in range(24):
        national, e164 = fresh()
        expected[e164] = sf_emu.add_record("Contact", {"LastName": f"並{i}", "Phone": national})
    numbers = list(expected) * 3
    results, failures = [], []

    def work(chunk):
        for e164 in chunk:
            try:
                results.append((e164, resolver.resolve(e164)["record_id"]))
            except Exception as exc:  # collected, asserted below
                failures.append(exc)

    threads = [threading.Thread(target=work, args=(numbers[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and len(results) == len(numbers)
    assert all(expected[e164] == record_id for e164, record_id in results)
    assert sf_emu.api_calls["login"] == 1  # one shared connection
    assert sf_emu.api_calls["composite"] == len(numbers)  # nothing registered: each asks once
