"""emulator/datagen.py: a reproducible, realistic Japanese org with every stored format the resolver must handle."""
import collections
import re
import time

import pytest

from core.phone import NumberKind, parse_phone, stored_variants
from emulator.datagen import (
    PHONE_FIELDS, dump_org, generate_org, generate_records, load_org, org_phone_catalogue, record_id,
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
    assert len(records["User"]) == 1


def test_demo_org_shape(org):
    counts = org.count()
    assert counts["User"] == 1
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


def test_every_stored_number_parses(org, catalogue):
    values = phone_values(org)
    assert len(catalogue) == len(values)
    assert all(parse_phone(v).kind is NumberKind.VALID for v in values)


def test_stored_formats_are_mixed(org):
    values = phone_values(org)
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
        "mobile 090": lambda v: parse_phone(v).e164.startswith("+8190"),
        "mobile 080": lambda v: parse_phone(v).e164.startswith("+8180"),
        "mobile 070": lambda v: parse_phone(v).e164.startswith("+8170"),
        "toll-free 0120": lambda v: parse_phone(v).e164.startswith("+81120"),
        "IP phone 050": lambda v: parse_phone(v).e164.startswith("+8150"),
        "foreign": lambda v: parse_phone(v).region not in ("JP", None),
        "odd hyphens": lambda v: (v[:1] == "0" and "-" in v
                                  and v not in stored_variants(parse_phone(v))),
    }
    missing = [name for name, check in checks.items() if not any(check(v) for v in values)]
    assert missing == []


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
        contact_numbers = {parse_phone(contact.get(f)).e164 for f in ("Phone", "MobilePhone")} - {None}
        assert parse_phone(lead["Phone"]).e164 in contact_numbers or not contact_numbers
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
        assert parse_phone(record["PersonMobilePhone"]).kind is NumberKind.VALID


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


def test_load_org_accepts_bare_records(tmp_path):
    path = tmp_path / "records.json"
    path.write_text('{"Account": [{"Name": "株式会社テスト", "Phone": "03-1234-5678"}]}', encoding="utf-8")
    org = load_org(path)
    assert org.records["Account"][0]["Phone"] == "03-1234-5678"
    assert not org.person_accounts


def test_catalogue_sample_is_reproducible(org):
    sample = org_phone_catalogue(org, sample=100, seed=3)
    assert sample == org_phone_catalogue(org, sample=100, seed=3)
    assert len(sample) == 100
    for e164, obj, rid, stored in sample:
        assert org.get(rid)[0] == obj and parse_phone(stored).e164 == e164


def test_large_org_is_quick():
    started = time.perf_counter()
    records = generate_records(60_000, seed=1)
    assert time.perf_counter() - started < 10
    assert sum(len(records[o]) for o in ("Account", "Contact", "Lead")) == 60_000
