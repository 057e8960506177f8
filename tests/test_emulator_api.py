"""Composite, sobjects (Task create and its validation), describe, limits, SOSL and the daily
allowance, through the real simple-salesforce."""
from urllib.parse import urlencode

import pytest
from simple_salesforce.exceptions import (SalesforceMalformedRequest, SalesforceRefusedRequest,
                                          SalesforceResourceNotFound)

from helpers import SAMPLE_ACCOUNT_ID


def query_url(soql):
    return "/services/data/v59.0/query/?" + urlencode({"q": soql})


def lookup_subrequests(number):
    return [
        {"method": "GET", "referenceId": "contacts", "url": query_url(
            f"SELECT Id, Name, Account.Name FROM Contact WHERE Phone IN ('{number}') OR MobilePhone IN ('{number}')")},
        {"method": "GET", "referenceId": "accounts", "url": query_url(
            f"SELECT Id, Name FROM Account WHERE Phone IN ('{number}')")},
        {"method": "GET", "referenceId": "leads", "url": query_url(
            f"SELECT Id, Name, Company FROM Lead WHERE IsConverted = false AND (Phone IN ('{number}') "
            f"OR MobilePhone IN ('{number}'))")},
    ]


def composite(sf, subrequests, **options):
    return sf.restful("composite", method="POST", json={"compositeRequest": subrequests, **options})


def contact_id(sf, last_name):
    return sf.query(f"SELECT Id FROM Contact WHERE LastName = '{last_name}'")["records"][0]["Id"]


def lead_id(sf, last_name):
    return sf.query(f"SELECT Id FROM Lead WHERE LastName = '{last_name}'")["records"][0]["Id"]


# ---- composite --------------------------------------------------------------------------------

def test_composite_is_one_api_call_with_each_subresponse(sf, emulator):
    result = composite(sf, lookup_subrequests("03-1234-5678"))
    responses = result["compositeResponse"]
    assert [r["referenceId"] for r in responses] == ["contacts", "accounts", "leads"]
    assert [r["httpStatusCode"] for r in responses] == [200, 200, 200]
    assert [r["body"]["totalSize"] for r in responses] == [1, 1, 0]
    assert responses[0]["body"]["records"][0]["Account"]["Name"] == "株式会社サンプル"
    assert emulator.api_calls == {"composite": 1}
    assert emulator.api_usage()[0] == 1
    assert sf.api_usage["api-usage"].used == 1
    assert [s["kind"] for s in emulator.request_log[-1]["subrequests"]] == ["query"] * 3


def test_composite_subrequest_errors_come_back_inside_a_200(sf):
    subrequests = lookup_subrequests("03-1234-5678")
    subrequests[1]["url"] = query_url("SELECT Id, Nope FROM Account")
    responses = composite(sf, subrequests)["compositeResponse"]
    assert [r["httpStatusCode"] for r in responses] == [200, 400, 200]
    assert responses[1]["body"][0]["errorCode"] == "INVALID_FIELD"
    assert responses[1]["httpHeaders"] == {}


def test_composite_all_or_none_rolls_back(sf, emulator):
    who = contact_id(sf, "山田")
    subrequests = [
        {"method": "POST", "url": "/services/data/v59.0/sobjects/Task", "referenceId": "ok",
         "body": {"Subject": "call", "Status": "Completed", "WhoId": who}},
        {"method": "POST", "url": "/services/data/v59.0/sobjects/Task", "referenceId": "bad",
         "body": {"Subject": "call"}},
    ]
    before = len(emulator.org.records["Task"])
    responses = composite(sf, subrequests, allOrNone=True)["compositeResponse"]
    assert [r["httpStatusCode"] for r in responses] == [400, 400]
    assert responses[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert responses[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert len(emulator.org.records["Task"]) == before


def test_composite_references_earlier_results(sf):
    subrequests = [
        {"method": "GET", "referenceId": "who", "url": query_url("SELECT Id FROM Contact WHERE LastName = '佐藤'")},
        {"method": "POST", "url": "/services/data/v59.0/sobjects/Task", "referenceId": "task",
         "body": {"Subject": "call", "Status": "Completed", "WhoId": "@{who.records[0].Id}"}},
        {"method": "GET", "referenceId": "check", "url": "/services/data/v59.0/sobjects/Task/@{task.id}"},
    ]
    responses = composite(sf, subrequests)["compositeResponse"]
    assert [r["httpStatusCode"] for r in responses] == [200, 201, 200]
    assert responses[1]["httpHeaders"]["Location"].endswith(responses[1]["body"]["id"])
    assert responses[2]["body"]["WhoId"] == responses[0]["body"]["records"][0]["Id"]


def test_composite_allows_25_subrequests_of_which_5_queries(sf):
    task_gets = [{"method": "GET", "url": f"/services/data/v59.0/sobjects/Account/{SAMPLE_ACCOUNT_ID}",
                  "referenceId": f"a{i}"} for i in range(20)]
    queries = [{"method": "GET", "url": query_url("SELECT Id FROM Lead"), "referenceId": f"q{i}"}
               for i in range(5)]
    assert len(composite(sf, task_gets + queries)["compositeResponse"]) == 25


@pytest.mark.parametrize("gets, queries", [(26, 0), (0, 6)])
def test_composite_limits(sf, gets, queries):
    subrequests = [{"method": "GET", "url": "/services/data/v59.0/limits", "referenceId": f"l{i}"}
                   for i in range(gets)]
    subrequests += [{"method": "GET", "url": query_url("SELECT Id FROM Lead"), "referenceId": f"q{i}"}
                    for i in range(queries)]
    with pytest.raises(SalesforceMalformedRequest) as info:
        composite(sf, subrequests)
    assert info.value.content[0]["errorCode"] == "INVALID_INPUT"


# ---- Task create ------------------------------------------------------------------------------

def test_task_create_returns_the_new_id(sf, emulator):
    who = contact_id(sf, "山田")
    result = sf.Task.create({"Subject": "Inbound call", "WhoId": who, "WhatId": SAMPLE_ACCOUNT_ID,
                             "CallType": "Inbound", "CallDurationInSeconds": 125, "CallObject": "call-1",
                             "ActivityDate": "2024-05-01", "Status": "Completed", "TaskSubtype": "Call"})
    assert result["success"] is True and result["errors"] == [] and result["id"].startswith("00T")
    task = sf.Task.get(result["id"])
    assert (task["WhoId"], task["IsClosed"], task["CallDurationInSeconds"]) == (who, True, 125)
    assert task["OwnerId"] == emulator.org.login_user()["Id"]
    assert emulator.api_calls["sobject"] == 2


@pytest.mark.parametrize("fields, code, field_names", [
    ({"Subject": "call"}, "REQUIRED_FIELD_MISSING", ["Status"]),
    ({"Subject": "call", "Status": ""}, "REQUIRED_FIELD_MISSING", ["Status"]),
    ({"Status": "Completed", "CallType": "Sideways"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["CallType"]),
    ({"Status": "Completed", "Subject": "x" * 256}, "STRING_TOO_LONG", ["Subject"]),
    ({"Status": "Completed", "WhoId": "not-an-id"}, "MALFORMED_ID", ["WhoId"]),
    ({"Status": "Completed", "WhoId": SAMPLE_ACCOUNT_ID}, "FIELD_INTEGRITY_EXCEPTION", ["WhoId"]),
    ({"Status": "Completed", "WhoId": "003000000000001"}, "INVALID_CROSS_REFERENCE_KEY", ["WhoId"]),
    ({"Status": "Completed", "IsClosed": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsClosed"]),
])
def test_task_validation_errors(sf, fields, code, field_names):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Task.create(fields)
    error = info.value.content[0]
    assert (error["errorCode"], error["fields"]) == (code, field_names)


def test_required_status_message(sf):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Task.create({"Subject": "call"})
    assert info.value.content == [{"message": "Required fields are missing: [Status]",
                                   "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Status"]}]


def test_task_on_a_lead_must_not_have_what_id(sf):
    who = lead_id(sf, "田中")
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Task.create({"Status": "Completed", "WhoId": who, "WhatId": SAMPLE_ACCOUNT_ID})
    assert info.value.content[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert sf.Task.create({"Status": "Completed", "WhoId": who})["success"] is True


@pytest.mark.parametrize("fields, code", [
    ({"Status": "Completed", "Foo__c": 1}, "INVALID_FIELD"),
    ({"Status": "Completed", "Id": "00T000000000001"}, "INVALID_FIELD"),
    ({"Status": "Completed", "CallDurationInSeconds": "long"}, "JSON_PARSER_ERROR"),
    ({"Status": "Completed", "ActivityDate": "2024/05/01"}, "JSON_PARSER_ERROR"),
])
def test_task_field_errors(sf, fields, code):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Task.create(fields)
    assert info.value.content[0]["errorCode"] == code


def test_add_record_while_running_is_visible_at_once(sf, emulator):
    new_id = emulator.add_record("Lead", {"LastName": "新規", "Company": "新規株式会社", "Phone": "011-222-3333"})
    result = sf.query("SELECT Id, Name FROM Lead WHERE Phone = '011-222-3333'")
    assert [(r["Id"], r["Name"]) for r in result["records"]] == [(new_id, "新規")]
    emulator.org.delete_record("Lead", new_id)


# ---- sobjects, describe, limits ---------------------------------------------------------------

def test_get_record_by_id(sf):
    account = sf.Account.get(SAMPLE_ACCOUNT_ID)
    assert account["Name"] == "株式会社サンプル" and account["attributes"]["type"] == "Account"
    assert account["LastModifiedDate"] == "2024-05-20T20:49:32.000+0000"
    assert "IsPersonAccount" not in account


def test_get_unknown_record_is_not_found(sf):
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Contact.get("003000000000001")
    assert info.value.content == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]


@pytest.mark.parametrize("obj", ["Contact", "Account", "Lead", "Task", "User"])
def test_describe(sf, obj):
    described = getattr(sf, obj).describe()
    fields = {f["name"]: f for f in described["fields"]}
    assert described["name"] == obj and described["queryable"] is True
    assert fields["Id"]["type"] == "id" and fields["Id"]["createable"] is False
    assert fields["LastModifiedDate"]["type"] == "datetime"
    if obj != "Task":
        assert fields["Phone"]["type"] == "phone" and fields["Phone"]["length"] == 40


def test_describe_flags(sf):
    contact = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert contact["Name"]["createable"] is False and contact["LastName"]["createable"] is True
    assert contact["AccountId"]["referenceTo"] == ["Account"]
    assert contact["AccountId"]["relationshipName"] == "Account"
    task = {f["name"]: f for f in sf.Task.describe()["fields"]}
    assert task["Status"]["nillable"] is False and task["WhoId"]["referenceTo"] == ["Contact", "Lead"]
    assert "IsPersonAccount" not in {f["name"] for f in sf.Account.describe()["fields"]}


def test_describe_shows_person_account_fields_only_when_enabled(pa_sf):
    fields = {f["name"]: f for f in pa_sf.Account.describe()["fields"]}
    assert fields["IsPersonAccount"]["type"] == "boolean"
    assert fields["PersonMobilePhone"]["type"] == "phone"


def test_describe_counts_as_describe(sf, emulator):
    sf.Lead.describe()
    sf.describe()
    assert emulator.api_calls == {"describe": 2}


def test_limits_agree_with_the_header(sf, emulator):
    emulator.set_daily_limit(5000, used=120)
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 5000, "Remaining": 4879}
    assert sf.api_usage["api-usage"] == (121, 5000)


def test_every_rest_response_carries_the_usage_header(sf, emulator):
    session = sf.session
    response = session.get(f"https://{sf.sf_instance}/services/data/v59.0/sobjects/Lead/describe",
                           headers=sf.headers)
    assert response.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    response = session.get(f"https://{sf.sf_instance}/services/data/v59.0/query/?q=SELECT+Nope+FROM+Lead",
                           headers=sf.headers)
    assert response.status_code == 400 and response.headers["Sforce-Limit-Info"] == "api-usage=2/100000"


def test_request_limit_exceeded_once_the_allowance_is_spent(sf, emulator):
    emulator.set_daily_limit(3)
    for _ in range(3):
        sf.query("SELECT Id FROM Lead")
    with pytest.raises(SalesforceRefusedRequest) as info:
        sf.query("SELECT Id FROM Lead")
    assert info.value.status == 403
    assert info.value.content == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert sf.api_usage["api-usage"] == (3, 3)


def test_exhaust_daily_limit(sf, emulator):
    emulator.exhaust_daily_limit()
    with pytest.raises(SalesforceRefusedRequest):
        sf.restful("composite", method="POST", json={"compositeRequest": lookup_subrequests("x")})


def test_unknown_resource_is_not_found(sf):
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("nothing/here")


# ---- SOSL -------------------------------------------------------------------------------------

def search_names(result):
    return [(r["attributes"]["type"], r.get("Name")) for r in result["searchRecords"]]


def test_phone_search_compares_digits(sf, emulator):
    result = sf.search("FIND {0312345678} IN PHONE FIELDS RETURNING Contact(Id, Name, Phone), "
                       "Account(Id, Name), Lead(Id, Name WHERE IsConverted = false)")
    assert search_names(result) == [("Contact", "山田 太郎"), ("Contact", "佐藤 花子"),
                                    ("Account", "株式会社サンプル"), ("Account", "山田商事")]
    assert emulator.api_calls == {"search": 1}
    assert emulator.request_log[-1]["sosl"].startswith("FIND {0312345678}")


def test_phone_search_folds_full_width_digits_and_needs_the_same_digits(sf):
    assert search_names(sf.search("FIND {09033334444} IN PHONE FIELDS RETURNING Contact(Name)")) == \
        [("Contact", "鈴木 一郎")]
    # "+81 3-..." holds different digits from "03-...": SOSL does not know about country codes here.
    assert sf.search("FIND {81312345678} IN PHONE FIELDS RETURNING Contact(Name)")["searchRecords"] == []


def test_escaped_search_term(sf):
    result = sf.search(r"FIND {\+1 \(415\) 555\-1212} IN PHONE FIELDS RETURNING Contact(Name), Account(Name)")
    assert search_names(result) == [("Contact", "Smith John"), ("Account", "Acme Inc")]


def test_search_returning_order_and_limit(sf):
    result = sf.search("FIND {0312345678} IN PHONE FIELDS RETURNING Contact(Name ORDER BY LastModifiedDate "
                       "DESC LIMIT 1), Lead(Name, Company)")
    assert search_names(result) == [("Contact", "山田 太郎"), ("Lead", "高橋 三郎")]
    assert result["searchRecords"][1]["Company"] == "高橋物産"


def test_search_without_returning_gives_ids(sf):
    result = sf.search("FIND {0612345678}")
    assert result == {"searchRecords": []}
    record = sf.search("FIND {0611112222} IN PHONE FIELDS")["searchRecords"][0]
    assert set(record) == {"attributes", "Id"} and record["attributes"]["type"] == "Lead"


def test_name_search(sf):
    result = sf.search("FIND {サンプル} IN NAME FIELDS RETURNING Account(Name)")
    assert search_names(result) == [("Account", "株式会社サンプル")]


@pytest.mark.parametrize("sosl, code", [
    ("FIND 0312345678", "MALFORMED_SEARCH"),
    ("FIND {0312345678} IN PHONE", "MALFORMED_SEARCH"),
    ("FIND {0312345678} RETURNING Contact(Nope)", "INVALID_FIELD"),
    ("FIND {0312345678} RETURNING Widget", "INVALID_TYPE"),
    ("FIND {0} IN PHONE FIELDS", "MALFORMED_SEARCH"),
])
def test_search_errors(sf, sosl, code):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.search(sosl)
    assert info.value.content[0]["errorCode"] == code
