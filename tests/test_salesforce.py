"""core/salesforce.py against the emulator over HTTPS, through the real simple-salesforce."""

from __future__ import annotations

import socket
import threading
import time

import certifi
import pytest

from core import errors
from core.salesforce import (AccessDenied, Connection, LimitExceeded, LoginFailed, NotConfigured,
                             SalesforceError, Unavailable, _permission_problems, connection_for,
                             request_kind)
from core.settings import Settings, load_settings, save_settings
from core.store import Store
from helpers import emu_settings, rest_calls


# ---------------------------------------------------------------------------------------------
# login
# ---------------------------------------------------------------------------------------------

def test_login_reads_org_from_the_login_answer(sf_emu, sf_store):
    connection = Connection(load_settings(sf_store), sf_store)
    assert connection.org.org_id == sf_emu.org.org_id
    assert connection.org.org_name == sf_emu.org.name
    assert connection.org.user_name == sf_emu.username
    assert connection.org.instance_url == f"https://{sf_emu.instance}"
    assert connection.org.person_accounts is True
    # person accounts came from the login's userInfo: no describe, no REST call at all
    assert dict(sf_emu.api_calls) == {"login": 1}


def test_org_without_person_accounts_is_detected(sf_plain_emu, plain_store):
    connection = Connection(load_settings(plain_store), plain_store)
    assert connection.org.person_accounts is False
    assert dict(sf_plain_emu.api_calls) == {"login": 1}


def test_not_configured_without_credentials():
    with pytest.raises(NotConfigured) as info:
        Connection(Settings())
    assert info.value.code == "NOT_CONFIGURED"
    assert errors.describe_failure(info.value)[0] == "NOT_CONFIGURED"


@pytest.mark.parametrize("changes, code", [
    ({"password": "wrong"}, "INVALID_LOGIN"),
    ({"username": "nobody@example.com"}, "INVALID_LOGIN"),
    ({"security_token": ""}, "LOGIN_MUST_USE_SECURITY_TOKEN"),
])
def test_login_faults_carry_their_code(sf_emu, changes, code):
    with pytest.raises(LoginFailed) as info:
        Connection(emu_settings(sf_emu, **changes))
    assert info.value.code == code
    assert sf_emu.password not in str(info.value)


@pytest.mark.parametrize("fault, cls", [
    ("API_DISABLED_FOR_ORG", LoginFailed),
    ("API_CURRENTLY_DISABLED", LoginFailed),
    ("REQUEST_LIMIT_EXCEEDED", LimitExceeded),
    ("INSUFFICIENT_ACCESS", AccessDenied),
])
def test_forced_login_faults(sf_emu, fault, cls):
    sf_emu.faults.login_fault = fault
    with pytest.raises(cls) as info:
        Connection(emu_settings(sf_emu))
    assert info.value.code == fault
    assert errors.entry_for(info.value.code).remedy_ja


def test_expired_password_is_a_login_failure(sf_emu):
    sf_emu.faults.password_expired = True
    with pytest.raises(LoginFailed) as info:
        Connection(emu_settings(sf_emu))
    assert info.value.code == "INVALID_OPERATION_WITH_EXPIRED_PASSWORD"


def test_non_latin1_password_is_a_clear_failure(sf_emu):
    with pytest.raises(LoginFailed) as info:
        Connection(emu_settings(sf_emu, password="パスワード"))
    assert info.value.code == "INVALID_LOGIN"


# ---------------------------------------------------------------------------------------------
# TLS and the network
# ---------------------------------------------------------------------------------------------

def test_ca_bundle_setting_wins_over_requests_ca_bundle(sf_emu, monkeypatch):
    # The machine points REQUESTS_CA_BUNDLE elsewhere; without trust_env=False requests would
    # use that file instead of the setting and the emulator's certificate would not verify.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    connection = Connection(emu_settings(sf_emu))
    assert connection.http.verify == sf_emu.ca_path
    assert connection.query("SELECT Id FROM User")["totalSize"] >= 1


def test_without_the_ca_bundle_the_certificate_is_refused(sf_emu, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sf_emu.ca_path)  # must be ignored
    with pytest.raises(Unavailable) as info:
        Connection(emu_settings(sf_emu, ca_bundle=""))
    assert info.value.code == "TLS_ERROR"


def test_connection_refused(sf_emu):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Unavailable) as info:
        Connection(emu_settings(sf_emu, login_url=f"https://127.0.0.1:{port}"))
    assert info.value.code == "CONNECTION_ERROR"


def test_hanging_login_times_out(sf_emu):
    sf_emu.faults.set(hang=True, kinds={"login"})
    started = time.monotonic()
    with pytest.raises(Unavailable) as info:
        Connection(emu_settings(sf_emu, read_timeout=0.5))
    assert info.value.code == "TIMEOUT"
    assert time.monotonic() - started < 3


def test_hanging_query_times_out(sf_emu):
    connection = Connection(emu_settings(sf_emu, read_timeout=0.5))
    sf_emu.faults.hang = True
    started = time.monotonic()
    with pytest.raises(Unavailable) as info:
        connection.query("SELECT Id FROM Contact")
    assert info.value.code == "TIMEOUT"
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors(sf_emu, status):
    connection = Connection(emu_settings(sf_emu))
    sf_emu.faults.http_status = status
    with pytest.raises(Unavailable) as info:
        connection.query("SELECT Id FROM Contact")
    assert info.value.code == "SERVER_ERROR"


def test_connection_reset(sf_emu):
    connection = Connection(emu_settings(sf_emu))
    sf_emu.faults.set(reset=True, kinds={"query"})
    with pytest.raises(Unavailable) as info:
        connection.query("SELECT Id FROM Contact")
    assert info.value.code == "CONNECTION_ERROR"


# ---------------------------------------------------------------------------------------------
# session expiry and limits
# ---------------------------------------------------------------------------------------------

def test_expired_session_logs_in_once_and_retries(sf_emu, sf_store):
    connection = Connection(load_settings(sf_store), sf_store)
    sf_emu.expire_sessions()
    assert connection.query("SELECT Id FROM User")["totalSize"] >= 1
    assert sf_emu.api_calls["login"] == 2
    assert [e["status"] for e in sf_emu.calls("query")] == [401, 200]


def test_session_that_stays_invalid_gives_up_after_one_retry(sf_emu):
    connection = Connection(emu_settings(sf_emu))
    sf_emu.session_seconds = -1  # every session is expired as soon as it is used
    with pytest.raises(LoginFailed) as info:
        connection.query("SELECT Id FROM User")
    assert info.value.code == "INVALID_SESSION_ID"
    assert sf_emu.api_calls["login"] == 2
    assert sf_emu.api_calls["query"] == 2


def test_relogin_that_fails_reports_the_login_fault(sf_emu):
    connection = Connection(emu_settings(sf_emu))
    sf_emu.expire_sessions()
    sf_emu.faults.login_fault = "INVALID_LOGIN"  # e.g. the password was changed meanwhile
    with pytest.raises(LoginFailed) as info:
        connection.query("SELECT Id FROM User")
    assert info.value.code == "INVALID_LOGIN"


def test_threads_share_one_relogin(sf_emu):
    connection = Connection(emu_settings(sf_emu))
    sf_emu.expire_sessions()
    results, failures = [], []

    def work():
        try:
            results.append(connection.query("SELECT Id FROM User")["totalSize"])
        except Exception as exc:  # collected, asserted below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and len(results) == 16
    # one re-login serves every thread that saw the expired session
    assert sf_emu.api_calls["login"] == 2


def test_limit_exhausted(sf_emu, sf_store):
    connection = Connection(load_settings(sf_store), sf_store)
    sf_emu.exhaust_daily_limit()
    with pytest.raises(LimitExceeded) as info:
        connection.query("SELECT Id FROM Contact")
    assert info.value.code == "REQUEST_LIMIT_EXCEEDED"


def test_malformed_query_is_a_plain_salesforce_error(sf_emu):
    connection = Connection(emu_settings(sf_emu))
    with pytest.raises(SalesforceError) as info:
        connection.query("SELECT Nope FROM Contact")
    assert type(info.value) is SalesforceError
    assert info.value.code == "INVALID_FIELD"


# ---------------------------------------------------------------------------------------------
# API usage accounting
# ---------------------------------------------------------------------------------------------

def test_calls_are_counted_and_org_usage_recorded(sf_emu, sf_store):
    sf_emu.set_daily_limit(15000, used=100)
    connection = Connection(load_settings(sf_store), sf_store)
    connection.query("SELECT Id FROM User")
    connection.composite([connection.query_subrequest("q", "SELECT Id FROM Lead")])
    usage = sf_store.api_usage()
    assert usage["own_calls"] == 2
    assert usage["by_kind"] == {"login": 1, "query": 1, "composite": 1}
    assert (usage["org_used"], usage["org_max"]) == (102, 15000)


def test_query_follows_pages(sf_emu):
    connection = Connection(emu_settings(sf_emu))
    for i in range(2100):
        sf_emu.add_record("Lead", {"LastName": f"頁{i}", "Company": "ページ株式会社",
                                   "Phone": "03-9999-0000"})
    result = connection.query("SELECT Id FROM Lead WHERE Phone = '03-9999-0000'")
    assert result["totalSize"] == 2100 and len(result["records"]) == 2100
    assert sf_emu.api_calls["query"] == 1 and sf_emu.api_calls["query_more"] == 1


@pytest.mark.parametrize("url, kind", [
    ("https://h/services/Soap/u/59.0", "login"),
    ("https://h/services/data/v59.0/query/?q=x", "query"),
    ("https://h/services/data/v59.0/query/01gAB-2000", "query_more"),
    ("https://h/services/data/v59.0/composite", "composite"),
    ("https://h/services/data/v59.0/sobjects/Task/describe", "describe"),
    ("https://h/services/data/v59.0/sobjects/Task/", "sobjects"),
])
def test_request_kinds(url, kind):
    assert request_kind("GET", url) == kind


# ---------------------------------------------------------------------------------------------
# permissions, URLs, the shared connection
# ---------------------------------------------------------------------------------------------

def test_check_permissions_is_one_call(sf_emu):
    connection = Connection(emu_settings(sf_emu))
    assert connection.check_permissions() == []
    assert rest_calls(sf_emu) == 1 and sf_emu.api_calls["composite"] == 1


@pytest.mark.parametrize("name, response, expected", [
    ("Lead", {"httpStatusCode": 200, "body": {"queryable": False}}, "Lead: cannot be read"),
    ("Task", {"httpStatusCode": 200, "body": {"createable": False}}, "Task: cannot be created"),
    ("Lead", {"httpStatusCode": 404, "body": [{"errorCode": "NOT_FOUND"}]}, "Lead: not accessible"),
    ("Contact", {"httpStatusCode": 200, "body": {"queryable": True}}, None),
])
def test_permission_problems(name, response, expected):
    problems = _permission_problems(name, response)
    assert (problems[0].startswith(expected) if expected else problems == [])


def test_record_url_is_lightning(sf_emu):
    connection = Connection(emu_settings(sf_emu))
    assert connection.record_url("Contact", "003000000000001AAA") == (
        f"https://{sf_emu.instance}/lightning/r/Contact/003000000000001AAA/view")


def test_connection_for_is_shared_and_rebuilt_on_change(sf_emu, sf_store):
    first = connection_for(sf_store)
    assert connection_for(sf_store) is first
    save_settings(sf_store, {"read_timeout": 3.0})
    second = connection_for(sf_store)
    assert second is not first
    assert sf_emu.api_calls["login"] == 2


def test_connection_for_unconfigured_store(tmp_path):
    with pytest.raises(NotConfigured):
        connection_for(Store(tmp_path / "empty"))
