"""Call logging against the emulator, over real HTTPS through the real simple-salesforce: Tasks
created one at a time and in sObject Collections (up to 200 in one API call, allOrNone), the
checks an org applies to them (inactive owner, validation rules, create permission), the faults
where Salesforce did the work but the answer never arrived, the user search, and the activity
history on the record pages."""
from __future__ import annotations

import html
import re
import time
import uuid

import pytest
import requests
from simple_salesforce.exceptions import SalesforceMalformedRequest

from helpers import client_for, trusting_session

ROLLED_BACK = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
               "message": "Record rolled back because not all records were valid and the request was "
                          "using AllOrNone header", "fields": []}
HOSTILE_SUBJECT = '<b>折り返し</b> & "至急" <script>alert(1)</script>'


@pytest.fixture(scope="module")
def emu_server(tmp_path_factory):
    """A generated demo org (its users included) plus records this module knows by Id."""
    from emulator import Emulator
    from emulator.datagen import generate_org

    org = generate_org(size=30, seed=5, person_accounts=False, name="タスク試験組織")
    with Emulator(org, cert_dir=str(tmp_path_factory.mktemp("tasks-ca"))) as emu:
        ids = emu.ids = {}
        ids["account"] = emu.add_record("Account", {"Name": "株式会社通話", "Phone": "03-5555-0001"})
        ids["contact"] = emu.add_record("Contact", {"LastName": "架電", "FirstName": "太郎",
                                                    "AccountId": ids["account"], "Phone": "03-5555-0002"})
        ids["lead"] = emu.add_record("Lead", {"LastName": "見込", "FirstName": "花子",
                                              "Company": "見込商事",
                                              "Phone": "06-5555-0003"})
        users = {u["Username"]: u for u in org.records["User"]}
        ids["active_user"] = users["yamada@demo.sfcti.example"]["Id"]
        ids["inactive_user"] = users["tanaka@demo.sfcti.example"]["Id"]
        yield emu



@pytest.fixture
def sf(emu):
    """A logged-in simple-salesforce client; the login is not in the counters."""
    client = client_for(emu)
    emu.reset_counters()
    return client


def new_call_id():
    return f"call-{uuid.uuid4()}"


def task(call_id, **fields):
    """A Task as an sObject Collections record, logging one call."""
    return {"attributes": {"type": "Task"}, "Subject": "着信", "Status": "Completed", "CallType": "Inbound",
            "TaskSubtype": "Call", "CallObject": call_id, "CallDurationInSeconds": 65,
            "ActivityDate": "2026-01-15", **fields}


def collections(sf, records, all_or_none=None, **kwargs):
    """POST composite/sobjects; the list of SaveResults."""
    body = {"records": records}
    if all_or_none is not None:
        body["allOrNone"] = all_or_none
    return sf.restful("composite/sobjects", method="POST", json=body, **kwargs)


def refused(sf, **kwargs):
    """The error list of a composite/sobjects request that must answer 400."""
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="POST", **kwargs)
    return caught.value.content


def tasks_logged(sf, *call_ids):
    """Tasks with these CallObject values, as a query finds them."""
    quoted = ", ".join(f"'{c}'" for c in call_ids)
    return sf.query(f"SELECT Id, CallObject, OwnerId, WhoId, WhatId FROM Task WHERE CallObject IN ({quoted})"
                    )["records"]


# ---- sObject Collections create -------------------------------------------------------------

def test_200_tasks_in_one_collection_are_one_api_call(sf, emu):
    call_ids = [new_call_id() for _ in range(200)]
    results = collections(sf, [task(c, WhoId=emu.ids["contact"]) for c in call_ids])
    assert len(results) == 200
    assert all(r["success"] is True and r["errors"] == [] and r["id"].startswith("00T") for r in results)
    assert emu.api_calls == {"collections": 1}
    assert sf.api_usage["api-usage"].used == 1 and emu.api_usage()[0] == 1
    assert emu.request_log[-1]["kind"] == "collections" and emu.request_log[-1]["status"] == 200
    found = {r["CallObject"]: r["Id"] for r in tasks_logged(sf, *call_ids[:100])}
    found.update({r["CallObject"]: r["Id"] for r in tasks_logged(sf, *call_ids[100:])})
    assert [found[c] for c in call_ids] == [r["id"] for r in results]      # results in request order


def test_201_records_are_refused_whole(sf, emu):
    call_ids = [new_call_id() for _ in range(201)]
    errors = refused(sf, json={"records": [task(c) for c in call_ids]})
    assert errors == [{"message": "record limit reached. cannot submit more than 200 records into this call",
                       "errorCode": "EXCEEDED_ID_LIMIT"}]
    assert tasks_logged(sf, *call_ids[:5]) == []
    assert emu.api_usage()[0] == 2          # the refused request counted too, then the query


def test_without_all_or_none_the_valid_records_are_created(sf, emu):
    good1, bad, good2 = new_call_id(), new_call_id(), new_call_id()
    results = collections(sf, [task(good1, WhoId=emu.ids["contact"], WhatId=emu.ids["account"]),
                               task(bad, WhoId=emu.ids["lead"], WhatId=emu.ids["account"]),
                               task(good2, WhoId=emu.ids["lead"])])
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1] == {"success": False, "errors": [{
        "statusCode": "FIELD_INTEGRITY_EXCEPTION",
        "message": "field integrity exception: WhoId, WhatId (Related To must be empty when Name is a lead)",
        "fields": ["WhoId", "WhatId"]}]}
    logged = {r["CallObject"]: r for r in tasks_logged(sf, good1, bad, good2)}
    assert set(logged) == {good1, good2}
    assert logged[good1]["WhatId"] == emu.ids["account"] and logged[good2]["WhoId"] == emu.ids["lead"]
    assert logged[good1]["OwnerId"] == emu.org.login_user()["Id"]


def test_all_or_none_rolls_every_record_back(sf, emu):
    call_ids = [new_call_id() for _ in range(3)]
    results = collections(sf, [task(call_ids[0]), task(call_ids[1], CallType="Sideways"),
                               task(call_ids[2])], all_or_none=True)
    assert results == [
        {"success": False, "errors": [ROLLED_BACK]},
        {"success": False, "errors": [{"statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                       "message": "Call Type: bad value for restricted picklist field: "
                                                  "Sideways",
                                       "fields": ["CallType"]}]},
        {"success": False, "errors": [ROLLED_BACK]},
    ]
    assert tasks_logged(sf, *call_ids) == []
    assert emu.api_calls["collections"] == 1


def test_all_or_none_true_with_every_record_valid_creates_them(sf):
    call_ids = [new_call_id(), new_call_id()]
    results = collections(sf, [task(c) for c in call_ids], all_or_none=True)
    assert [r["success"] for r in results] == [True, True]
    assert len(tasks_logged(sf, *call_ids)) == 2


@pytest.mark.parametrize("fields, code, field", [
    ({"Status": None}, "REQUIRED_FIELD_MISSING", "Status"),
    ({"Status": ""}, "REQUIRED_FIELD_MISSING", "Status"),
    ({"CallType": "inbound "}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "CallType"),
    ({"Subject": "長" * 256}, "STRING_TOO_LONG", "Subject"),
    ({"CallObject": "x" * 100_000}, "STRING_TOO_LONG", "CallObject"),
    ({"WhoId": "003NOTANID"}, "MALFORMED_ID", "WhoId"),
    ({"IsClosed": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", "IsClosed"),
])
def test_each_bad_record_gets_its_own_error(sf, fields, code, field):
    good, bad = new_call_id(), new_call_id()
    results = collections(sf, [task(good), task(bad, **fields)])
    assert results[0]["success"] is True
    assert results[1]["success"] is False and "id" not in results[1]
    [error] = results[1]["errors"]
    assert (error["statusCode"], error["fields"]) == (code, [field]) and error["message"]
    assert [r["CallObject"] for r in tasks_logged(sf, good, bad)] == [good]


def test_a_record_with_an_id_is_refused_alone(sf, emu):
    good, bad = new_call_id(), new_call_id()
    results = collections(sf, [task(good), task(bad, Id=emu.ids["contact"])])
    assert results[1] == {"success": False, "errors": [{
        "statusCode": "INVALID_FIELD", "message": "cannot specify Id in an insert call", "fields": ["Id"]}]}
    assert [r["CallObject"] for r in tasks_logged(sf, good, bad)] == [good]


def test_task_subtype_can_be_set_on_create_but_not_changed(sf):
    call_id = new_call_id()
    [result] = collections(sf, [task(call_id, TaskSubtype="Call")])
    assert sf.Task.get(result["id"])["TaskSubtype"] == "Call"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Task.update(result["id"], {"TaskSubtype": "Task"})
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert caught.value.content[0]["fields"] == ["TaskSubtype"]


def test_mixed_objects_in_one_collection(sf, emu):
    marker = new_call_id()
    results = collections(sf, [{"attributes": {"type": "Contact"}, "LastName": marker,
                                "AccountId": emu.ids["account"]}, task(marker)])
    assert [r["id"][:3] for r in results] == ["003", "00T"]
    assert sf.Contact.get(results[0]["id"])["LastName"] == marker


# ---- hostile bodies: clear 400s, never a 500 -------------------------------------------------

@pytest.mark.parametrize("body, code", [
    (b"", "JSON_PARSER_ERROR"),
    (b"{not json", "JSON_PARSER_ERROR"),
    (b'[{"attributes": {"type": "Task"}}]', "JSON_PARSER_ERROR"),
    (b'{"records": "Task"}', "JSON_PARSER_ERROR"),
    (b'{"records": {"attributes": {"type": "Task"}}}', "JSON_PARSER_ERROR"),
    (b'{"allOrNone": true}', "JSON_PARSER_ERROR"),
    (b'{"records": [1, "a", null]}', "JSON_PARSER_ERROR"),
    (b'{"records": [["Subject", "x"]]}', "JSON_PARSER_ERROR"),
    (b'{"records": [{"Subject": "no type", "Status": "Completed"}]}', "INVALID_TYPE"),
    (b'{"records": [{"attributes": "Task", "Status": "Completed"}]}', "INVALID_TYPE"),
    (b'{"records": [{"attributes": {"type": "Opportunity\'; DROP"}, "Name": "x"}]}', "INVALID_TYPE"),
    (b'{"records": [{"attributes": {"type": 7}}]}', "INVALID_TYPE"),
    (b'{"records": []}', "INVALID_INPUT"),
    (b'{"allOrNone": "yes", "records": [{"attributes": {"type": "Task"}, "Status": "Completed"}]}',
     "JSON_PARSER_ERROR"),
    ('{"records": [{"attributes": {"type": "Task"}, "Status": "Completed", "Subject": "a\x01b"}]}'.encode(),
     "JSON_PARSER_ERROR"),                                      # a raw control character is not JSON
])
def test_malformed_collection_bodies_get_a_clear_400(sf, emu, body, code):
    before = len(emu.org.records["Task"])
    errors = refused(sf, data=body)
    assert len(errors) == 1 and errors[0]["errorCode"] == code and errors[0]["message"]
    assert len(emu.org.records["Task"]) == before
    assert "error" not in emu.request_log[-1]                   # no emulator exception behind it


def test_escaped_control_characters_are_stored_as_sent(sf):
    call_id = new_call_id()
    description = "line1\nline2\ttab \x00nul \x1b[31mred\u2028"
    [result] = collections(sf, [task(call_id, Description=description)])
    assert sf.Task.get(result["id"])["Description"] == description


def test_huge_values_are_string_too_long_for_each_record(sf):
    call_ids = [new_call_id() for _ in range(3)]
    results = collections(sf, [task(c, Description="長" * 32_001) for c in call_ids])
    assert [r["errors"][0]["statusCode"] for r in results] == ["STRING_TOO_LONG"] * 3
    assert tasks_logged(sf, *call_ids) == []


# ---- what the org allows: owners, validation rules, permissions ------------------------------

def test_an_inactive_owner_is_refused_single_and_in_collections(sf, emu):
    inactive = emu.ids["inactive_user"]
    message = f"operation performed with inactive user [{inactive}] as owner of task"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Task.create({"Subject": "着信", "Status": "Completed", "OwnerId": inactive})
    assert caught.value.content == [{"message": message, "errorCode": "INACTIVE_OWNER_OR_USER",
                                     "fields": ["OwnerId"]}]
    good, bad = new_call_id(), new_call_id()
    results = collections(sf, [task(good, OwnerId=emu.ids["active_user"]), task(bad, OwnerId=inactive)])
    assert results[1] == {"success": False, "errors": [{"statusCode": "INACTIVE_OWNER_OR_USER",
                                                        "message": message, "fields": ["OwnerId"]}]}
    [logged] = tasks_logged(sf, good, bad)
    assert logged["OwnerId"] == emu.ids["active_user"]


def test_a_validation_rule_refuses_what_it_matches(sf, emu):
    emu.add_validation_rule("Task", "通話時間は 0 秒以上で入力してください",
                            lambda f: (f.get("CallDurationInSeconds") or 0) < 0,
                            field="CallDurationInSeconds")
    emu.add_validation_rule("task", "件名に「テスト」は使えません",
                            lambda f: "テスト" in (f.get("Subject") or ""))
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Task.create({"Subject": "着信", "Status": "Completed", "CallDurationInSeconds": -5})
    assert caught.value.content == [{"message": "通話時間は 0 秒以上で入力してください",
                                     "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                                     "fields": ["CallDurationInSeconds"]}]
    ok, negative, test_subject = new_call_id(), new_call_id(), new_call_id()
    results = collections(sf, [task(ok), task(negative, CallDurationInSeconds=-1),
                               task(test_subject, Subject="テスト通話")])
    assert [r["success"] for r in results] == [True, False, False]
    assert results[2]["errors"] == [{"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                                     "message": "件名に「テスト」は使えません", "fields": []}]
    emu.clear_validation_rules()
    again = new_call_id()
    assert collections(sf, [task(again, Subject="テスト通話")])[0]["success"] is True


def test_a_validation_rule_on_another_object_leaves_tasks_alone(sf, emu):
    emu.add_validation_rule("Contact", "never", lambda f: True)
    assert collections(sf, [task(new_call_id())])[0]["success"] is True
    with pytest.raises(ValueError):
        emu.add_validation_rule("Opportunity", "no such object", lambda f: True)


def test_a_validation_rule_sees_the_whole_record_on_update(sf, emu):
    [result] = collections(sf, [task(new_call_id(), CallType="Inbound")])
    emu.add_validation_rule("Task", "発信の通話時間は必須です", field="CallDurationInSeconds",
                            condition=lambda f: f.get("CallType") == "Outbound"
                            and not f.get("CallDurationInSeconds"))
    assert sf.Task.update(result["id"], {"CallType": "Outbound"}) == 204        # the duration is there
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Task.update(result["id"], {"CallDurationInSeconds": None})
    assert caught.value.content[0]["errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert sf.Task.get(result["id"])["CallDurationInSeconds"] == 65


def test_without_create_permission_describe_says_so_and_creates_fail(sf, emu):
    emu.deny_create("Task")
    assert sf.Task.describe()["createable"] is False
    described = {o["name"]: o["createable"] for o in sf.describe()["sobjects"]}
    assert described["Task"] is False and described["Contact"] is True
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Task.create({"Subject": "着信", "Status": "Completed"})
    assert caught.value.content == [{"message": "insufficient access rights on object id",
                                     "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY", "fields": []}]
    call_id = new_call_id()
    results = collections(sf, [task(call_id)])
    assert results == [{"success": False, "errors": [{"statusCode": "INSUFFICIENT_ACCESS_OR_READONLY",
                                                      "message": "insufficient access rights on object id",
                                                      "fields": []}]}]
    emu.allow_create("task")
    assert sf.Task.describe()["createable"] is True
    with pytest.raises(ValueError):
        emu.deny_create("Opportunity")
    assert collections(sf, [task(call_id)])[0]["success"] is True
    assert len(tasks_logged(sf, call_id)) == 1


def test_reset_gives_the_org_its_defaults_back(sf, emu):
    emu.deny_create("Task")
    emu.add_validation_rule("Task", "no", lambda f: True)
    emu.reset()
    assert collections(sf, [task(new_call_id())])[0]["success"] is True


# ---- the work is done but the answer is lost or late -----------------------------------------

def test_drop_after_creates_the_tasks_then_drops_the_connection(sf, emu):
    emu.faults.set(drop_after=True, kinds={"collections"}, times=1)
    sf.query("SELECT Id FROM User LIMIT 1")                   # another kind: answered
    call_ids = [new_call_id(), new_call_id()]
    with pytest.raises(requests.exceptions.ConnectionError):
        collections(sf, [task(c) for c in call_ids])
    assert emu.api_usage()[0] == 2                           # the query and the dropped request
    entry = emu.request_log[-1]
    assert entry["kind"] == "collections" and entry["status"] == 200 and entry["dropped"] is True
    assert sorted(r["CallObject"] for r in tasks_logged(sf, *call_ids)) == sorted(call_ids)
    assert collections(sf, [task(new_call_id())])[0]["success"] is True     # times=1: healed


def test_drop_after_on_a_single_create(sf, emu):
    emu.faults.set(drop_after=True, kinds={"sobject"}, times=1)
    call_id = new_call_id()
    with pytest.raises(requests.exceptions.ConnectionError):
        sf.Task.create({"Subject": "着信", "Status": "Completed", "CallObject": call_id})
    assert len(tasks_logged(sf, call_id)) == 1


def test_a_late_answer_times_the_client_out_although_the_task_exists(sf, emu):
    emu.faults.set(late=3.0, kinds={"collections"})
    call_id = new_call_id()
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        collections(sf, [task(call_id)], timeout=(2.0, 0.5))
    assert time.monotonic() - started < 2.5
    assert len(tasks_logged(sf, call_id)) == 1               # queries are not late
    assert emu.calls("collections")[-1]["late"] == 3.0


def test_a_late_answer_still_arrives_for_a_patient_client(sf, emu):
    emu.faults.set(late=0.6, kinds={"collections"}, times=1)
    started = time.monotonic()
    [result] = collections(sf, [task(new_call_id())], timeout=5)
    assert result["success"] is True and time.monotonic() - started >= 0.6


# ---- collections inside composite ------------------------------------------------------------

def composite(sf, subrequests, **options):
    return sf.restful("composite", method="POST", json={"compositeRequest": subrequests, **options})


def collection_subrequest(ref, records, **body):
    return {"method": "POST", "url": "/services/data/v59.0/composite/sobjects", "referenceId": ref,
            "body": {"records": records, **body}}


def test_collections_as_a_composite_subrequest(sf, emu):
    call_ids = [new_call_id(), new_call_id()]
    responses = composite(sf, [
        {"method": "GET", "referenceId": "who",
         "url": f"/services/data/v59.0/sobjects/Contact/{emu.ids['contact']}"},
        collection_subrequest("log", [task(c, WhoId="@{who.Id}") for c in call_ids]),
    ])["compositeResponse"]
    assert [r["httpStatusCode"] for r in responses] == [200, 200]
    assert [r["success"] for r in responses[1]["body"]] == [True, True]
    assert emu.api_calls == {"composite": 1}
    assert [s["kind"] for s in emu.request_log[-1]["subrequests"]] == ["sobject", "collections"]
    assert {r["WhoId"] for r in tasks_logged(sf, *call_ids)} == {emu.ids["contact"]}


def test_collections_count_toward_the_five_query_subrequests(sf):
    query = {"method": "GET", "url": "/services/data/v59.0/query/?q=SELECT+Id+FROM+User"}
    subrequests = [dict(query, referenceId=f"q{i}") for i in range(4)]
    subrequests += [collection_subrequest(f"c{i}", [task(new_call_id())]) for i in range(2)]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        composite(sf, subrequests)
    assert caught.value.content[0]["errorCode"] == "INVALID_INPUT"
    assert "received 6" in caught.value.content[0]["message"]


def test_a_composite_all_or_none_overrides_the_collections_own(sf, emu):
    good, bad, single = new_call_id(), new_call_id(), new_call_id()
    responses = composite(sf, [
        {"method": "POST", "url": "/services/data/v59.0/sobjects/Task", "referenceId": "single",
         "body": {"Subject": "x", "Status": "Completed", "CallObject": single}},
        collection_subrequest("log", [task(good), task(bad, Status=None)], allOrNone=False),
    ], allOrNone=True)["compositeResponse"]
    assert responses[0]["httpStatusCode"] == 400
    assert responses[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert responses[1]["body"][0] == {"success": False, "errors": [ROLLED_BACK]}
    assert responses[1]["body"][1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert tasks_logged(sf, good, bad, single) == []


# ---- the queries call logging makes -----------------------------------------------------------

USER_SEARCH = ("SELECT Id, Name, Username, Email, IsActive, UserType FROM User WHERE IsActive = true AND "
               "(Name LIKE '%{0}%' OR Username LIKE '%{0}%' OR Email LIKE '%{0}%') ORDER BY Name LIMIT 50")


def test_user_search_finds_active_users_by_name_username_or_email(sf):
    by_kanji = sf.query(USER_SEARCH.format("山"))["records"]
    assert {u["Name"] for u in by_kanji} == {"山田 花子", "山本 陽子"}
    assert [u["Name"] for u in by_kanji] == sorted(u["Name"] for u in by_kanji)
    yamada = next(u for u in by_kanji if u["Name"] == "山田 花子")
    assert yamada["Username"] == yamada["Email"] == "yamada@demo.sfcti.example"
    assert yamada["IsActive"] is True and yamada["UserType"] == "Standard" and yamada["Id"].startswith("005")
    assert [u["Name"] for u in sf.query(USER_SEARCH.format("SUZUKI"))["records"]] == ["鈴木 美咲"]
    # 田中 一郎 has left: inactive users are not offered, though 山田 matches 田 too
    assert [u["Name"] for u in sf.query(USER_SEARCH.format("田"))["records"]] == ["山田 花子"]
    everyone = sf.query("SELECT Name, IsActive FROM User")["records"]
    assert {"田中 一郎": False} == {u["Name"]: u["IsActive"] for u in everyone if not u["IsActive"]}


def test_the_login_user_stays_the_admin(sf, emu):
    assert emu.username == "admin@demo.sfcti.example"
    assert emu.org.login_user()["Username"] == emu.username


def test_contacts_by_200_ids(sf, emu):
    marker = new_call_id()
    results = collections(sf, [{"attributes": {"type": "Contact"}, "LastName": f"{marker}-{i}",
                                "AccountId": emu.ids["account"]} for i in range(200)])
    ids = [r["id"] for r in results]
    quoted = ", ".join(f"'{i}'" for i in ids)
    records = sf.query(f"SELECT Id, AccountId FROM Contact WHERE Id IN ({quoted})")["records"]
    assert sorted(r["Id"] for r in records) == sorted(ids)
    assert {r["AccountId"] for r in records} == {emu.ids["account"]}


# ---- record pages: activity history and the Task's own page ---------------------------------

def page_text(emu, path):
    response = trusting_session(emu).get(emu.login_url + path)
    assert response.status_code == 200
    return response.text


def text(fragment):
    """What a reader sees: tags dropped, entities decoded, spaces squeezed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def section(page, element_id):
    match = re.search(rf'<section class="card" id="{element_id}">(.*?)</section>', page, re.S)
    assert match, element_id
    return match.group(1)


def test_a_contacts_page_lists_its_calls_newest_first(sf, emu):
    contact = emu.add_record("Contact", {"LastName": "履歴", "FirstName": "一郎",
                                         "AccountId": emu.ids["account"]})
    results = collections(sf, [
        task(new_call_id(), WhoId=contact, Subject="古い着信", ActivityDate="2025-12-01",
             CallDurationInSeconds=30, OwnerId=emu.ids["active_user"]),
        task(new_call_id(), WhoId=contact, Subject=HOSTILE_SUBJECT, ActivityDate="2026-02-03",
             CallType="Outbound", CallDurationInSeconds=125),
    ])
    page = page_text(emu, f"/lightning/r/Contact/{contact}/view")
    history = section(page, "activity-history")
    assert "<script>" not in page and "<b>折り返し" not in page
    rows = [[text(cell) for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", history, re.S)[1:]]
    assert rows == [[HOSTILE_SUBJECT, "2026-02-03", "Outbound", "125 s", "管理 太郎"],
                    ["古い着信", "2025-12-01", "Inbound", "30 s", "山田 花子"]]
    assert text(history).startswith("Activity History (2)")
    assert f'href="/lightning/r/Task/{results[1]["id"]}/view"' in history


def test_an_accounts_page_shows_its_contacts_calls_and_a_leads_page_its_own(sf, emu):
    account = emu.add_record("Account", {"Name": "株式会社履歴"})
    contact = emu.add_record("Contact", {"LastName": "社員", "AccountId": account})
    lead = emu.add_record("Lead", {"LastName": "見込", "Company": "履歴商会"})
    collections(sf, [task(new_call_id(), WhoId=contact, Subject="社員への着信"),
                     task(new_call_id(), WhatId=account, Subject="代表への着信"),
                     task(new_call_id(), WhoId=lead, Subject="見込客への発信", CallType="Outbound")])
    account_page = page_text(emu, f"/lightning/r/Account/{account}/view")
    account_history = text(section(account_page, "activity-history"))
    assert "社員への着信" in account_history and "代表への着信" in account_history
    assert "見込客への発信" not in account_history
    lead_history = text(section(page_text(emu, f"/lightning/r/Lead/{lead}/view"), "activity-history"))
    assert lead_history.startswith("Activity History (1)") and "見込客への発信" in lead_history
    empty = emu.add_record("Contact", {"LastName": "未架電"})
    assert "No activities to show." in page_text(emu, f"/lightning/r/Contact/{empty}/view")


def test_a_tasks_page_shows_its_call_fields(sf, emu):
    call_id = new_call_id()
    [result] = collections(sf, [task(call_id, WhoId=emu.ids["contact"], WhatId=emu.ids["account"],
                                     Subject=HOSTILE_SUBJECT, Description="<i>メモ</i>\n二行目",
                                     CallDurationInSeconds=90, OwnerId=emu.ids["active_user"])])
    page = page_text(emu, f"/lightning/r/Task/{result['id']}/view")
    assert "<script>" not in page and "<i>メモ" not in page
    details = re.search(r'<dl class="details" id="call-details">(.*?)</dl>', page, re.S).group(1)
    pairs = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", details, re.S)
    shown = {text(label): text(value) for label, value in pairs}
    assert shown == {"Subject": HOSTILE_SUBJECT, "Status": "Completed", "Due Date": "2026-01-15",
                     "Call Type": "Inbound", "Call Duration": "90 s", "Call Object Identifier": call_id,
                     "Call Result": "", "Name": "架電 太郎", "Related To": "株式会社通話",
                     "Assigned To": "山田 花子"}
    assert f'href="/lightning/r/Contact/{emu.ids["contact"]}/view"' in details
    assert f'href="/lightning/r/Account/{emu.ids["account"]}/view"' in details
    description = re.search(r'id="description">(.*?)</p>', page, re.S).group(1)
    assert html.unescape(description) == "<i>メモ</i>\n二行目"      # shown with its line break
