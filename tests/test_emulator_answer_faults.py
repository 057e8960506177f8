"""The emulator's faults that spoil an answer on its way (body, content type, size) or the TLS
certificate: what a simple-salesforce client receives."""
import json

import pytest
import requests
from simple_salesforce.exceptions import SalesforceExpiredSession

from helpers import login

LOOKUP = "SELECT Id, Name FROM Contact WHERE Phone IN ('03-1234-5678') OR MobilePhone IN ('03-1234-5678')"


def _raw_query(sf):
    return sf.session.get(f"https://{sf.sf_instance}/services/data/v59.0/query/",
                          params={"q": LOOKUP}, headers=sf.headers, timeout=5)


def test_malformed_body_is_not_json_but_keeps_its_status(sf, emulator):
    emulator.faults.body = "malformed"
    answer = _raw_query(sf)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/json")
    assert b"totalSize: 1" in answer.content and b'"totalSize"' not in answer.content
    with pytest.raises(ValueError):
        sf.query(LOOKUP)
    assert emulator.request_log[-1]["body"] == "malformed"


def test_truncated_body_is_half_the_json_framed_correctly(sf, emulator):
    whole = _raw_query(sf).content
    emulator.faults.body = "truncated"
    answer = _raw_query(sf)
    assert answer.content == whole[: len(whole) // 2]
    with pytest.raises(ValueError):
        json.loads(answer.content)


def test_short_body_promises_more_than_it_sends(sf, emulator):
    emulator.faults.set(body="short", times=1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        _raw_query(sf)
    assert sf.query(LOOKUP)["totalSize"] == 1      # times=1: healthy again


def test_text_html_content_type_answers_a_page_instead_of_json(sf, emulator):
    emulator.faults.content_type = "text/html"
    answer = _raw_query(sf)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "text/html"
    assert answer.text.startswith("<!DOCTYPE html>")
    login(emulator)                                 # login is not REST: unaffected


def test_huge_answer_is_valid_json_of_the_size_asked(sf, emulator):
    emulator.faults.huge = 5_000_000
    answer = _raw_query(sf)
    assert len(answer.content) == 5_000_000 and answer.json()["totalSize"] == 1


def test_unknown_body_fault_is_refused(emulator):
    with pytest.raises(ValueError):
        emulator.faults.body = "sideways"


def test_untrusted_certificate_fails_new_connections_only_while_on(emulator):
    from helpers import trusting_session

    emulator.faults.untrusted_cert = True
    with pytest.raises(requests.exceptions.SSLError):
        login(emulator, trusting_session(emulator))
    emulator.faults.clear()
    assert login(emulator, trusting_session(emulator))[0]


def test_expired_password_answers_401_on_rest(emulator):
    from helpers import client_for

    emulator.faults.password_expired = True
    sf = client_for(emulator)
    with pytest.raises(SalesforceExpiredSession):
        sf.query(LOOKUP)
