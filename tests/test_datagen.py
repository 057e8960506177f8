"""emulator/datagen.py: a reproducible, realistic Japanese org with every stored format the resolver must handle."""
import collections
import re
import time

import pytest

from core.phone import index_keys, parse_phone, stored_variants
from emulator.datagen import (
    DEMO_USERS, PHONE_FIELDS, Number, dump_org, every_form, generate_org, generate_records,
    generate_records_and_truth, load_org, org_phone_catalogue, record_id,
)

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000$")


@pytest.fixture(scope="module")
def org():
    return generate_org(size=3000, seed=5, person_accounts=True)


@pytest.fixture(scope="module")
def catalogue(org):
    return org_phone_catalogue(org)


def phone_values(org):
    return [record[field] for obj, fields in PHONE_FIELDS.items() for record in org.records[obj]
            for field in fields if record.get(field)]


def test_same_seed_same_org_other_seed_other_org():
    assert generate_records(500, seed=3) == generate_records(500, seed=3)
    other = generate_records(500, seed=4)
    assert other != generate_records(500, seed=3)
    assert other["Contact"][0]["Id"] != generate_records(500, seed=3)["Contact"][0]["Id"]


@pytest.mark.parametrize("size", [3, 10, 1000, 5000])
def test_size_is_the_number_of_business_records(size):
    records = generate_records(size, seed=1)
    assert sum(len(records[obj]) for obj in ("Account", "Contact", "Lead")) == size
    assert len(records["User"]) == 1 + len(DEMO_USERS)      # the admin and the sales users


def test_demo_org_shape(org):
    counts = org.count()
    assert counts["User"] == 1 + len(DEMO_USERS)
    assert counts["Account"] >= 500 and counts["Contact"] >= 1300 and counts["Lead"] >= 900
    assert org.name == "株式会社デモ組織" and org.person_accounts


def test_ids_have_key_prefixes_and_are_unique(org):
    seen = set()
    for obj, prefix in (("Account", "001"), ("Contact", "003"), ("Lead", "00Q"), ("User", "005")):
        for record in org.records[obj]:
            assert len(record["Id"]) == 18 and record["Id"].startswith(prefix)
            seen.add(record["Id"])
    assert len(seen) == sum(len(org.records[o]) for o in ("Account", "Contact", "Lead", "User"))


def test_ids_survive_the_orgs_own_normalisation():
    # The Org rewrites an Id whose case-safety suffix is wrong; ours must come through unchanged.
    records = generate_records(50, seed=9)
    org = generate_org(50, seed=9)
    assert [r["Id"] for r in records["Lead"]] == [r["Id"] for r in org.records["Lead"]]
    assert record_id("003", 1) != record_id("003", 2)


def test_timestamps_spread_over_two_years_with_ties(org):
    stamps = [r["LastModifiedDate"] for obj in ("Account", "Contact", "Lead") for r in org.records[obj]]
    assert all(STAMP.match(s) for s in stamps)
    years = {s[:4] for s in stamps}
    assert {"2023", "2024", "2025"} <= years
    ties = [s for s, n in collections.Counter(stamps).items() if n > 1]
    assert len(ties) > 20


def numbers_of(org, record, field):
    return [n.e164 for n in org.phone_truth.get((record["Id"], field), ())]


def test_every_phone_value_has_its_recorded_numbers(org, catalogue):
    values = [(record, field) for obj, fields in PHONE_FIELDS.items() for record in org.records[obj]
              for field in fields if record.get(field)]
    assert len(org.phone_truth) == len(values)
    assert all(numbers_of(org, record, field) for record, field in values)
    assert len(catalogue) == sum(len(numbers) for numbers in org.phone_truth.values())


def test_the_recorded_number_is_in_the_stored_digits(org):
    # The truth is the number the generator wrote: its national digits are in the value, in
    # ASCII or full-width digits, whatever else surrounds them.
    wide = str.maketrans("０１２３４５６７８９", "0123456789")
    for (rid, field), numbers in org.phone_truth.items():
        digits = "".join(ch for ch in org.get(rid)[1][field].translate(wide) if ch.isdigit())
        for number in numbers:
            assert "".join(number.groups)[1:] in digits if number.cc == "81" else \
                "".join(number.groups) in digits


def test_the_parser_reads_every_form_the_generator_writes(org):
    # core/phone.py checked against the generator's recorded truth, not against itself.
    unread = [(org.get(rid)[1][field], [n.e164 for n in numbers])
              for (rid, field), numbers in org.phone_truth.items()
              if index_keys(org.get(rid)[1][field]) != [n.e164 for n in numbers]]
    assert unread == []


ODD_FORMS = {
    "other dashes": lambda v: re.search("[‐‑‒–—―−ｰ﹣]", v),
    "full-width brackets": lambda v: re.search("[（［【〔]", v),
    "ideographic or no-break spaces": lambda v: re.search("[\u3000\u00a0\u2009\u202f]", v),
    "full-width plus": lambda v: re.search("[＋﹢]", v),
    "labels": lambda v: re.search("TEL|Tel|ＴＥＬ|電話|☎|℡|Phone|携帯|Mobile|自宅", v),
    "notes": lambda v: re.search("代表|直通", v),
    "extensions": lambda v: re.search("内線|ext|EXT|x[0-9]", v),
    "(0) after +81": lambda v: "+81-(0)" in v,
    "trunk 0 after +81": lambda v: re.match(r"\+81 0", v),
    "00 international prefix": lambda v: v.startswith("00"),
    "010 international prefix": lambda v: v.startswith("010-"),
    "bare country code": lambda v: re.fullmatch(r"81\d{9,10}", v),
    "two numbers": lambda v: re.search("[/／・、,] ?0", v),
}


def test_stored_formats_are_mixed(org, catalogue):
    values = phone_values(org)
    region = {e164: parse_phone(e164).region for e164, _, _, _ in catalogue}
    numbers = {e164 for e164, _, _, _ in catalogue}
    checks = {
        "hyphenated": lambda v: re.fullmatch(r"0\d{1,4}-\d{1,4}-\d{4}", v),
        "bare digits": lambda v: re.fullmatch(r"0\d{9,10}", v),
        "e164": lambda v: re.fullmatch(r"\+81\d{9,10}", v),
        "+81 with spaces": lambda v: v.startswith("+81 "),
        "+81 with hyphens": lambda v: v.startswith("+81-"),
        "brackets": lambda v: "(" in v,
        "spaces": lambda v: re.fullmatch(r"0\d+ \d+ \d+", v),
        "full-width": lambda v: re.search("[０-９]", v),
        "full-width hyphen": lambda v: "－" in v,
        "long vowel mark": lambda v: "ー" in v,
        "odd hyphens": lambda v: (re.fullmatch(r"0[0-9-]+", v) and "-" in v
                                  and v not in stored_variants(parse_phone(v))),
        **ODD_FORMS,
    }
    missing = [name for name, check in checks.items() if not any(check(v) for v in values)]
    assert missing == []
    for prefix in ("+8190", "+8180", "+8170", "+81120", "+8150"):
        assert any(n.startswith(prefix) for n in numbers), prefix
    assert any(region[n] != "JP" for n in numbers)


def test_odd_forms_are_a_minority(org):
    values = phone_values(org)
    odd = [v for v in values if any(check(v) for check in ODD_FORMS.values())]
    assert 0.04 < len(odd) / len(values) < 0.2


def test_every_form_lists_each_style_once():
    tokyo = Number("+81312345678", ("03", "1234", "5678"), "81")
    forms = every_form(tokyo)
    assert len(forms) == len(set(forms)) >= 25
    assert {"03-1234-5678", "+81312345678", "0081-3-1234-5678", "+81-(0)3-1234-5678"} <= set(forms)
    assert all(len(form) <= 40 for form in forms)     # a Salesforce Phone field holds 40
    assert every_form(Number("+14155550123", ("415", "555", "0123"), "1"))[0] == "+1 415-555-0123"


def test_stored_values_fit_a_salesforce_phone_field(org):
    assert max(len(v) for v in phone_values(org)) <= 40


def test_truth_comes_with_the_records():
    records, truth = generate_records_and_truth(500, seed=3)
    assert records == generate_records(500, seed=3)
    ids = {r["Id"] for obj in ("Account", "Contact", "Lead") for r in records[obj]}
    assert {rid for rid, _ in truth} <= ids


def test_an_org_without_recorded_truth_has_no_catalogue(tmp_path):
    path = tmp_path / "records.json"
    path.write_text('{"Account": [{"Name": "株式会社テスト", "Phone": "03-1234-5678"}]}', encoding="utf-8")
    with pytest.raises(ValueError):
        org_phone_catalogue(load_org(path))


def test_numbers_are_shared_the_way_real_orgs_share_them(org, catalogue):
    objects_by_number = collections.defaultdict(set)
    contacts_by_number = collections.Counter()
    for e164, obj, _, _ in catalogue:
        objects_by_number[e164].add(obj)
        contacts_by_number[e164] += obj == "Contact"
    assert sum({"Contact", "Lead"} <= objs for objs in objects_by_number.values()) > 20
    assert sum(n >= 3 for n in contacts_by_number.values()) > 10


def test_same_number_is_typed_differently_on_different_records(catalogue):
    forms = collections.defaultdict(set)
    for e164, _, _, stored in catalogue:
        forms[e164].add(stored)
    assert sum(len(f) > 1 for f in forms.values()) > 50


def test_converted_leads_point_at_their_contact_and_share_its_number(org):
    contacts = {r["Id"]: r for r in org.records["Contact"]}
    converted = [r for r in org.records["Lead"] if r["IsConverted"]]
    assert len(converted) > 50
    for lead in converted:
        contact = contacts[lead["ConvertedContactId"]]
        assert lead["ConvertedAccountId"] == contact["AccountId"]
        contact_numbers = {n for f in ("Phone", "MobilePhone") for n in numbers_of(org, contact, f)}
        assert set(numbers_of(org, lead, "Phone")) & contact_numbers or not contact_numbers
    open_leads = [r for r in org.records["Lead"] if not r["IsConverted"]]
    assert all(r["ConvertedContactId"] is None for r in open_leads)


def test_names_are_japanese(org):
    contact = org.records["Contact"][0]
    assert contact["Name"] == f"{contact['LastName']} {contact['FirstName']}"
    companies = [r["Name"] for r in org.records["Account"] if not r.get("IsPersonAccount")]
    assert all(re.search("株式会社|有限会社|合同会社", name) for name in companies)
    assert all("Company" in r and r["Company"] for r in org.records["Lead"])


def test_person_accounts_on(org):
    person = [r for r in org.records["Account"] if r.get("IsPersonAccount")]
    business = [r for r in org.records["Account"] if not r.get("IsPersonAccount")]
    assert person and business
    assert all(r["IsPersonAccount"] is False for r in business)
    for record in person:
        assert record["Name"] == f"{record['LastName']} {record['FirstName']}"
        assert numbers_of(org, record, "PersonMobilePhone")


def test_person_accounts_off_leave_no_person_fields():
    records = generate_records(1000, seed=2, person_accounts=False)
    for record in records["Account"] + records["Contact"]:
        assert "IsPersonAccount" not in record and "PersonMobilePhone" not in record
    org = generate_org(1000, seed=2, person_accounts=False)
    assert not org.person_accounts
    assert all("IsPersonAccount" not in r for r in org.records["Account"])


def test_json_round_trip(org, tmp_path):
    path = tmp_path / "org.json"
    dump_org(org, path)
    loaded = load_org(path)
    assert (loaded.name, loaded.person_accounts) == (org.name, org.person_accounts)
    assert loaded.count() == org.count()
    for obj in ("Account", "Contact", "Lead", "User"):
        assert loaded.records[obj] == org.records[obj]
    assert loaded.phone_truth == org.phone_truth


def test_load_org_accepts_bare_records(tmp_path):
    path = tmp_path / "records.json"
    path.write_text('{"Account": [{"Name": "株式会社テスト", "Phone": "03-1234-5678"}]}', encoding="utf-8")
    org = load_org(path)
    assert org.records["Account"][0]["Phone"] == "03-1234-5678"
    assert not org.person_accounts


def test_catalogue_sample_is_reproducible(org):
    sample = org_phone_catalogue(org, sample=100, seed=3)
    assert sample == org_phone_catalogue(org, sample=100, seed=3)
    assert len({(rid, stored) for _, _, rid, stored in sample}) == 100   # values, not numbers
    for e164, obj, rid, stored in sample:
        record = org.get(rid)[1]
        assert org.get(rid)[0] == obj and stored in {record.get(f) for f in PHONE_FIELDS[obj]}
        recorded = {n.e164 for f in PHONE_FIELDS[obj] for n in org.phone_truth.get((rid, f), ())}
        assert e164 in recorded


def test_large_org_is_quick():
    started = time.perf_counter()
    records = generate_records(60_000, seed=1)
    assert time.perf_counter() - started < 10
    assert sum(len(records[o]) for o in ("Account", "Contact", "Lead")) == 60_000
