"""SOQL through sf.query(): the subset real clients send, exact phone matching, paging, errors."""
import pytest
from simple_salesforce import format_soql
from simple_salesforce.exceptions import SalesforceError, SalesforceMalformedRequest

from helpers import BULK_CONTACTS, SAMPLE_ACCOUNT_ID


def names(result):
    return [r.get("Name") for r in result["records"]]


def test_records_carry_attributes_and_nested_parent_fields(sf, emulator):
    result = sf.query("SELECT Id, Name, Phone, Account.Name FROM Contact WHERE LastName = '山田'")
    record = result["records"][0]
    assert result["totalSize"] == 1 and result["done"] is True and "nextRecordsUrl" not in result
    assert list(record) == ["attributes", "Id", "Name", "Phone", "Account"]
    assert record["attributes"] == {"type": "Contact", "url": f"/services/data/v59.0/sobjects/Contact/{record['Id']}"}
    assert len(record["Id"]) == 18 and record["Id"].startswith("003")
    assert record["Name"] == "山田 太郎"
    assert record["Account"]["Name"] == "株式会社サンプル"
    assert record["Account"]["attributes"]["type"] == "Account"
    assert record["Account"]["attributes"]["url"].rsplit("/", 1)[1][:15] == SAMPLE_ACCOUNT_ID


def test_empty_parent_is_null(sf):
    record = sf.query("SELECT Account.Name FROM Contact WHERE LastName = '鈴木'")["records"][0]
    assert record["Account"] is None


def test_field_names_come_back_canonical(sf):
    record = sf.query("select id, lastname, account.name from contact where lastname = 'Smith'")["records"][0]
    assert list(record) == ["attributes", "Id", "LastName", "Account"]


def test_15_character_ids_match_their_18_character_form(sf):
    result = sf.query(f"SELECT Id FROM Account WHERE Id = '{SAMPLE_ACCOUNT_ID}'")
    assert result["totalSize"] == 1 and result["records"][0]["Id"][:15] == SAMPLE_ACCOUNT_ID


WHERE_CASES = [
    ("Phone = '03-1234-5678'", ["山田 太郎"]),
    ("Phone = '0312345678'", []),                                  # no normalisation, as Salesforce
    ("Phone IN ('0312345678', '(03) 1234-5678')", ["佐藤 花子"]),
    ("Phone IN ('03-1234-5678') OR MobilePhone IN ('０９０-３３３３-４４４４')", ["山田 太郎", "鈴木 一郎"]),
    ("MobilePhone = '090-3333-4444'", []),                         # full-width stays full-width
    ("LastName = 'smith'", ["Smith John"]),                        # strings compare case-insensitively
    ("LastName != 'Smith' AND Department = null", ["山田 太郎", "佐藤 花子", "鈴木 一郎"]),
    ("Phone = null AND Department != 'bulk'", ["鈴木 一郎"]),
    ("NOT (Phone LIKE '03%' OR Department = 'bulk')", ["佐藤 花子", "鈴木 一郎", "Smith John"]),
    ("Phone LIKE '%555-1212'", ["Smith John"]),
    ("LastName LIKE '_田'", ["山田 太郎"]),
    ("LastName NOT IN ('山田', '佐藤') AND (Department = null)", ["鈴木 一郎", "Smith John"]),
    ("AccountId = null AND Department = null", ["鈴木 一郎", "Smith John"]),
    (f"AccountId = '{SAMPLE_ACCOUNT_ID}'", ["山田 太郎", "佐藤 花子"]),
    ("Account.Name = '株式会社サンプル' AND Phone != null", ["山田 太郎", "佐藤 花子"]),
    ("LastModifiedDate > 2024-05-01T00:00:00Z AND Department = null", ["山田 太郎", "鈴木 一郎"]),
    ("LastModifiedDate <= 2022-12-01T10:00:00.000+0000 AND Department = null", ["Smith John"]),
]


@pytest.mark.parametrize("where, expected", WHERE_CASES)
def test_where_clauses(sf, where, expected):
    result = sf.query(f"SELECT Name FROM Contact WHERE {where}")
    assert names(result) == expected


def test_booleans_filter_leads(sf):
    assert names(sf.query("SELECT Name FROM Lead WHERE IsConverted = false")) == ["田中 次郎"]
    assert names(sf.query("SELECT Name FROM Lead WHERE IsConverted = TRUE")) == ["高橋 三郎"]


def test_format_soql_quoting_round_trips(sf):
    query = format_soql("SELECT Name FROM Contact WHERE Phone IN {} OR LastName = {}",
                        ["03-1234-5678", "x' OR Name != '"], "O'Brien")
    assert names(sf.query(query)) == ["山田 太郎"]


def test_order_by_several_fields_with_nulls(sf):
    where = "WHERE Department = null"
    assert names(sf.query(f"SELECT Name FROM Contact {where} ORDER BY AccountId NULLS LAST, LastName DESC")) == \
        ["山田 太郎", "佐藤 花子", "鈴木 一郎", "Smith John"]
    assert names(sf.query(f"SELECT Name FROM Contact {where} ORDER BY Phone ASC NULLS FIRST")) == \
        ["鈴木 一郎", "佐藤 花子", "Smith John", "山田 太郎"]
    assert names(sf.query(f"SELECT Name FROM Contact {where} ORDER BY Phone DESC")) == \
        ["山田 太郎", "Smith John", "佐藤 花子", "鈴木 一郎"]
    assert names(sf.query(f"SELECT Name FROM Contact {where} ORDER BY LastModifiedDate DESC LIMIT 2")) == \
        ["鈴木 一郎", "山田 太郎"]


def test_limit_and_offset(sf):
    query = "SELECT LastName FROM Contact WHERE Department = 'bulk' ORDER BY LastName"
    result = sf.query(query + " LIMIT 3 OFFSET 10")
    assert [r["LastName"] for r in result["records"]] == ["一括0010", "一括0011", "一括0012"]
    assert result["totalSize"] == 3


def test_count(sf):
    assert sf.query("SELECT COUNT() FROM Contact WHERE Department = 'bulk'") == \
        {"totalSize": BULK_CONTACTS, "done": True, "records": []}


def test_paging_through_next_records_url(sf, emulator):
    first = sf.query("SELECT Id, LastName FROM Contact WHERE Department = 'bulk'")
    assert first["totalSize"] == BULK_CONTACTS and first["done"] is False
    assert len(first["records"]) == 2000
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert first["nextRecordsUrl"].endswith("-2000")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(second["records"]) == 2000 and second["nextRecordsUrl"].endswith("-4000")
    third = sf.query_more(second["nextRecordsUrl"].rsplit("/", 1)[1])
    assert len(third["records"]) == BULK_CONTACTS - 4000 and third["done"] is True
    assert "nextRecordsUrl" not in third
    assert emulator.api_calls == {"query": 1, "query_more": 2}


def test_query_all_collects_every_page(sf, emulator):
    everything = sf.query_all("SELECT Id FROM Contact WHERE Department = 'bulk'")
    assert everything["totalSize"] == BULK_CONTACTS
    assert len({r["Id"] for r in everything["records"]}) == BULK_CONTACTS
    assert emulator.api_usage()[0] == 3


def test_query_all_endpoint_answers_like_query(sf):
    assert sf.query("SELECT Id FROM Lead", include_deleted=True)["totalSize"] == 2


def test_unknown_locator(sf):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query_more("01gDOESNOTEXIST-2000")
    assert info.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def error_of(sf, query):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query(query)
    assert info.value.status == 400
    return info.value.content[0]


def test_unknown_field_is_invalid_field_with_salesforces_message(sf):
    error = error_of(sf, "SELECT Id, Foo FROM Account")
    assert error == {"message": "\nSELECT Id, Foo FROM Account\n           ^\nERROR at Row:1:Column:12\n"
                                "No such column 'Foo' on entity 'Account'. If you are attempting to use a "
                                "custom field, be sure to append the '__c' after the custom field name. "
                                "Please reference your WSDL or the describe call for the appropriate names.",
                     "errorCode": "INVALID_FIELD"}


@pytest.mark.parametrize("query, code, text", [
    ("SELECT Id FROM Contact WHERE Foo = 'x'", "INVALID_FIELD", "No such column 'Foo' on entity 'Contact'"),
    ("SELECT Owner.Foo FROM Contact", "INVALID_FIELD", "No such column 'Foo' on entity 'User'"),
    ("SELECT Bogus.Name FROM Contact", "INVALID_FIELD", "Didn't understand relationship 'Bogus'"),
    ("SELECT Id FROM Opportunity", "INVALID_TYPE", "sObject type 'Opportunity' is not supported"),
    ("SELECT Id, FROM Contact", "MALFORMED_QUERY", "unexpected token: 'FROM'"),
    ("SELEC Id FROM Contact", "MALFORMED_QUERY", "unexpected token: 'SELEC'"),
    ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY", "unexpected token: <EOF>"),
    ("SELECT Id FROM Contact WHERE Phone = 'a' AND Phone = 'b' OR Phone = 'c'", "MALFORMED_QUERY",
     "unexpected token: 'OR'"),
    ("SELECT Id FROM Contact WHERE Phone = 0312345678", "INVALID_FIELD",
     "value of filter criterion for field 'Phone' must be of type string and should be enclosed in quotes"),
    ("SELECT Id FROM Lead WHERE IsConverted = 'false'", "INVALID_FIELD",
     "value of filter criterion for field 'IsConverted' must be of type boolean"),
    ("SELECT Id FROM Contact WHERE Id = 'garbage'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: garbage"),
    ("SELECT Id FROM Contact WHERE Phone = 'unterminated", "MALFORMED_QUERY", ""),
    ("SELECT Id FROM Contact LIMIT 5 OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset"),
])
def test_errors(sf, query, code, text):
    error = error_of(sf, query)
    assert error["errorCode"] == code
    assert text in error["message"]


@pytest.mark.parametrize("query", [
    "SELECT Id, IsPersonAccount FROM Account",
    "SELECT Id FROM Account WHERE PersonMobilePhone = '080-5555-6666'",
    "SELECT Id FROM Contact WHERE IsPersonAccount = false",
])
def test_person_account_fields_do_not_exist_without_person_accounts(sf, query):
    assert error_of(sf, query)["errorCode"] == "INVALID_FIELD"


def test_person_accounts_are_queryable_where_enabled(pa_sf):
    result = pa_sf.query("SELECT Name, IsPersonAccount, PersonMobilePhone FROM Account "
                         "WHERE Phone IN ('045-111-2222') OR PersonMobilePhone IN ('080-5555-6666')")
    assert [(r["Name"], r["IsPersonAccount"]) for r in result["records"]] == [("伊藤 健", True)]
    business = pa_sf.query("SELECT Name FROM Account WHERE IsPersonAccount = false")
    assert names(business) == ["株式会社サンプル", "山田商事", "Acme Inc"]


def test_person_accounts_have_their_hidden_contact(pa_sf):
    result = pa_sf.query("SELECT Name, IsPersonAccount, Account.Name FROM Contact "
                         "WHERE MobilePhone = '080-5555-6666'")
    record = result["records"][0]
    assert (record["Name"], record["IsPersonAccount"], record["Account"]["Name"]) == ("伊藤 健", True, "伊藤 健")


def test_a_person_account_added_later_gets_its_hidden_contact():
    from emulator import Org

    org = Org(person_accounts=True)
    account_id = org.add_record("Account", {"LastName": "追加", "FirstName": "個人", "IsPersonAccount": True,
                                            "PersonMobilePhone": "080-7777-8888"})
    (contact,) = org.lookup("Contact", "AccountId", [account_id])
    assert (contact["Name"], contact["IsPersonAccount"], contact["MobilePhone"]) == ("追加 個人", True,
                                                                                    "080-7777-8888")
    assert org.get(account_id)[1]["PersonContactId"] == contact["Id"]


def test_urls_over_16384_bytes_get_414(sf, emulator):
    numbers = ", ".join(f"'03-{i:04d}-{i:04d}'" for i in range(1000))
    with pytest.raises(SalesforceError) as info:
        sf.query(f"SELECT Id FROM Contact WHERE Phone IN ({numbers})")
    assert info.value.status == 414
    assert emulator.api_usage()[0] == 0


def test_long_in_lists_fit_under_the_limit(sf):
    numbers = ", ".join(f"'03-{i:04d}-{i:04d}'" for i in range(300)) + ", '03-1234-5678'"
    assert names(sf.query(f"SELECT Name FROM Contact WHERE Phone IN ({numbers})")) == ["山田 太郎"]
