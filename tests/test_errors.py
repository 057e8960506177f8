"""core/errors.py: the catalogue, failures classified from real exceptions, the error log.

Salesforce failures are produced by simple-salesforce's own code (``soap_login``, ``token_login``,
``exception_handler``) reading the real wire bodies (reference/salesforce-wire.md §2.2, §2.5)
from a loopback HTTP server; network failures are real ones.
"""

import http.server
import json
import multiprocessing
import re
import smtplib
import socket
import ssl
import threading
import time

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed, SalesforceExpiredSession, SalesforceGeneralError,
    SalesforceMalformedRequest, SalesforceRefusedRequest, SalesforceResourceNotFound,
)
from simple_salesforce.login import soap_login, token_login
from simple_salesforce.util import exception_handler

from core.errors import (
    CATALOGUE, DETAIL_MAX, CatalogueEntry, clean_text, codes_in_log, count_errors,
    describe_failure, entry_for, list_errors, normalize_code, record_failure, record_recovery,
    scrub,
)
from core.settings import save_settings
from core.store import Store

# ---------------------------------------------------------------------------------------------
# wire bodies
# ---------------------------------------------------------------------------------------------


def soap_fault(code, message, fault="LoginFault"):
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
        f'<faultcode>{code}</faultcode><faultstring>{code}: {message}</faultstring><detail>'
        f'<sf:{fault} xsi:type="sf:{fault}"><sf:exceptionCode>{code}</sf:exceptionCode>'
        f'<sf:exceptionMessage>{message}</sf:exceptionMessage></sf:{fault}></detail>'
        '</soapenv:Fault></soapenv:Body></soapenv:Envelope>'
    )


SOAP_FAULTS = {
    "INVALID_LOGIN": soap_fault(
        "INVALID_LOGIN", "Invalid username, password, security token; or user locked out."),
    "LOGIN_MUST_USE_SECURITY_TOKEN": soap_fault(
        "LOGIN_MUST_USE_SECURITY_TOKEN",
        "Invalid username, password, security token; or user locked out. Are you at a new "
        "location? When accessing Salesforce--either via a desktop client or the API--from "
        "outside of your company’s trusted networks, you must add a security token to your "
        "password to log in."),
    "API_DISABLED_FOR_ORG": soap_fault(
        "API_DISABLED_FOR_ORG", "API is not enabled for this Organization or Partner",
        "UnexpectedErrorFault"),
    "API_CURRENTLY_DISABLED": soap_fault(
        "API_CURRENTLY_DISABLED", "API is disabled for this User", "UnexpectedErrorFault"),
    "REQUEST_LIMIT_EXCEEDED": soap_fault(
        "REQUEST_LIMIT_EXCEEDED", "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
        "UnexpectedErrorFault"),
    "INSUFFICIENT_ACCESS": soap_fault(
        "INSUFFICIENT_ACCESS", "Use of login() requires the Use Any API Auth permission",
        "UnexpectedErrorFault"),
}

REST_ERRORS = {
    # name: (status, body, expected code, simple-salesforce exception class)
    "expired_session": (401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                        "INVALID_SESSION_ID", SalesforceExpiredSession),
    "expired_password": (401, [{"message": "The users password has expired, you must call SetPassword "
                                "before attempting any other API operations",
                                "errorCode": "INVALID_OPERATION_WITH_EXPIRED_PASSWORD"}],
                         "INVALID_OPERATION_WITH_EXPIRED_PASSWORD", SalesforceExpiredSession),
    "limit": (403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
              "REQUEST_LIMIT_EXCEEDED", SalesforceRefusedRequest),
    "api_disabled": (403, [{"message": "The REST API is not enabled for this Organization.",
                            "errorCode": "API_DISABLED_FOR_ORG"}],
                     "API_DISABLED_FOR_ORG", SalesforceRefusedRequest),
    "api_user_disabled": (403, [{"message": "API is disabled for this User",
                                 "errorCode": "API_CURRENTLY_DISABLED"}],
                          "API_CURRENTLY_DISABLED", SalesforceRefusedRequest),
    "insufficient": (403, [{"message": "insufficient access rights on object id",
                            "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY"}],
                     "INSUFFICIENT_ACCESS", SalesforceRefusedRequest),
    "no_object_access": (400, [{"message": "\nSELECT Id FROM Lead\n ^\nERROR at Row:1:Column:16\n"
                                "sObject type 'Lead' is not supported.",
                                "errorCode": "INVALID_TYPE"}],
                         "INSUFFICIENT_ACCESS", SalesforceMalformedRequest),
    "refused_no_body": (403, "Forbidden", "INSUFFICIENT_ACCESS", SalesforceRefusedRequest),
    "invalid_field": (400, [{"message": "\nSELECT IsPersonAccount FROM Account\n       ^\nERROR at "
                             "Row:1:Column:8\nNo such column 'IsPersonAccount' on entity 'Account'.",
                             "errorCode": "INVALID_FIELD"}],
                      "INVALID_FIELD", SalesforceMalformedRequest),
    "malformed": (400, [{"message": "unexpected token: 'FORM'", "errorCode": "MALFORMED_QUERY"}],
                  "MALFORMED_QUERY", SalesforceMalformedRequest),
    "not_found": (404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
                  "NOT_FOUND", SalesforceResourceNotFound),
    "server_500": (500, [{"message": "An unexpected error occurred. Please include this ErrorId "
                          "if you contact support: 1234-5678", "errorCode": "UNKNOWN_EXCEPTION"}],
                   "SERVER_ERROR", SalesforceGeneralError),
    "server_503_html": (503, "<html><body>Service Unavailable</body></html>",
                        "SERVER_ERROR", SalesforceGeneralError),
    "server_502_empty": (502, "", "SERVER_ERROR", SalesforceGeneralError),
    "uri_too_long": (414, "URI Too Long", "MALFORMED_QUERY", SalesforceGeneralError),
}

OAUTH_ERRORS = {
    "invalid_grant": ("expired access/refresh token", "OAUTH_INVALID_GRANT"),
    "invalid_client": ("invalid client credentials", "OAUTH_INVALID_CLIENT"),
    "invalid_client_id": ("client identifier invalid", "OAUTH_INVALID_CLIENT"),
    "redirect_uri_mismatch": ("redirect_uri must match configuration", "OAUTH_REDIRECT_URI_MISMATCH"),
    "unsupported_grant_type": ("grant type not supported", "OAUTH_ERROR"),
}


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, body, content_type):
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        kind, _, name = self.path.strip("/").partition("/")
        if kind == "rest":
            status, body, _, _ = REST_ERRORS[name]
            if isinstance(body, str):
                self._send(status, body, "text/html")
            else:
                self._send(status, json.dumps(body), "application/json;charset=UTF-8")
        elif kind == "hang":
            time.sleep(2)
            self._send(200, "{}", "application/json")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind, _, name = self.path.strip("/").partition("/")
        if kind == "soap":
            self._send(500, SOAP_FAULTS[name], "text/xml;charset=UTF-8")
        elif kind == "soap-not-xml":
            self._send(int(name), "<html>Bad gateway", "text/html")
        elif kind == "oauth":
            body = {"error": name, "error_description": OAUTH_ERRORS[name][0]}
            self._send(400, json.dumps(body), "application/json")


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def raised(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except BaseException as exc:  # noqa: B902 - the point is to capture it
        return exc
    raise AssertionError("nothing raised")


LOGIN_BODY = "<env:Envelope><n1:password>hunter2TOKEN</n1:password></env:Envelope>"
HEADERS = {"content-type": "text/xml", "charset": "UTF-8", "SOAPAction": "login"}


# ---------------------------------------------------------------------------------------------
# the catalogue
# ---------------------------------------------------------------------------------------------

REQUIRED_CODES = [
    "INVALID_LOGIN", "LOGIN_MUST_USE_SECURITY_TOKEN", "API_DISABLED_FOR_ORG",
    "INVALID_OPERATION_WITH_EXPIRED_PASSWORD", "INVALID_SESSION_ID", "INSUFFICIENT_ACCESS",
    "REQUEST_LIMIT_EXCEEDED", "API_CURRENTLY_DISABLED", "TIMEOUT", "CONNECTION_ERROR",
    "TLS_ERROR", "SERVER_ERROR", "INVALID_FIELD", "MALFORMED_QUERY", "NOT_CONFIGURED",
    "SMTP_AUTH", "SMTP_CONNECTION", "SMTP_TLS", "SMTP_RECIPIENTS_REFUSED", "SMTP_ERROR",
    "OAUTH_INVALID_GRANT", "OAUTH_INVALID_CLIENT", "OAUTH_REDIRECT_URI_MISMATCH",
    "OAUTH_STATE_MISMATCH", "OAUTH_ERROR", "UNKNOWN",
]
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@pytest.mark.parametrize("code", REQUIRED_CODES)
def test_required_code_present(code):
    assert CATALOGUE[code].code == code


@pytest.mark.parametrize("entry", CATALOGUE.values(), ids=list(CATALOGUE))
def test_entry_texts(entry):
    assert isinstance(entry, CatalogueEntry)
    assert entry.integration in {"salesforce", "smtp", "any"}
    for text in (entry.message_ja, entry.remedy_ja):
        assert text.strip() and JAPANESE.search(text)
    for text in (entry.message_en, entry.remedy_en):
        assert text.strip() and not JAPANESE.search(text) and text[0].isupper()
    assert entry.message("en") == entry.message_en and entry.remedy("ja") == entry.remedy_ja
    assert entry.remedy_en != entry.message_en and len(entry.remedy_en) > 20


@pytest.mark.parametrize("code,words", [
    ("INVALID_LOGIN", ["password", "security token", "locked"]),
    ("LOGIN_MUST_USE_SECURITY_TOKEN", ["security token", "trusted IP"]),
    ("API_DISABLED_FOR_ORG", ["Professional", "Essentials", "Enterprise", "Unlimited", "Developer"]),
    ("INSUFFICIENT_ACCESS", ["Lead", "Contact", "Account", "Task"]),
    ("REQUEST_LIMIT_EXCEEDED", ["24-hour", "buy"]),
    ("TLS_ERROR", ["proxy", "CA bundle"]),
    ("OAUTH_INVALID_GRANT", ["Reconnect"]),
    ("INVALID_FIELD", ["bug"]),
])
def test_entries_are_specific(code, words):
    text = CATALOGUE[code].message_en + " " + CATALOGUE[code].remedy_en
    for word in words:
        assert word in text


@pytest.mark.parametrize("code,expected", [
    ("INVALID_LOGIN", "INVALID_LOGIN"), ("INSUFFICIENT_ACCESS_OR_READONLY", "INSUFFICIENT_ACCESS"),
    ("invalid_grant", "OAUTH_INVALID_GRANT"), (None, "UNKNOWN"), ("", "UNKNOWN"),
])
def test_entry_for(code, expected):
    assert entry_for(code).code == expected


def test_entry_for_unknown_code_is_generic():
    entry = entry_for("SOME_NEW_CODE")
    assert entry.code == "SOME_NEW_CODE"
    assert "SOME_NEW_CODE" in entry.message_en and entry.remedy_en == CATALOGUE["UNKNOWN"].remedy_en


@pytest.mark.parametrize("raw,expected", [
    ("sf:INVALID_LOGIN", "INVALID_LOGIN"), (500, "SERVER_ERROR"), (404, "NOT_FOUND"),
    (418, "UNKNOWN"), ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "FIELD_CUSTOM_VALIDATION_EXCEPTION"),
    ("weird_oauth_thing", "OAUTH_ERROR"), ("<script>", "UNKNOWN"), (True, "UNKNOWN"),
])
def test_normalize_code(raw, expected):
    assert normalize_code(raw) == expected


# ---------------------------------------------------------------------------------------------
# describe_failure: Salesforce, through simple-salesforce's own code
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", sorted(SOAP_FAULTS))
def test_soap_login_faults(server, code):
    exc = raised(soap_login, f"{server}/soap/{code}", LOGIN_BODY, HEADERS, None)
    assert type(exc) is SalesforceAuthenticationFailed and exc.code == code
    got, detail = describe_failure(exc)
    assert got == code
    assert code in detail and "hunter2" not in detail


@pytest.mark.parametrize("status,expected", [(500, "SERVER_ERROR"), (502, "SERVER_ERROR"),
                                             (404, "NOT_FOUND")])
def test_soap_login_non_xml_answer(server, status, expected):
    exc = raised(soap_login, f"{server}/soap-not-xml/{status}", LOGIN_BODY, HEADERS, None)
    assert type(exc) is SalesforceAuthenticationFailed and exc.code == status
    assert describe_failure(exc)[0] == expected


@pytest.mark.parametrize("name", sorted(REST_ERRORS))
def test_rest_errors(server, name):
    status, _, expected, exc_class = REST_ERRORS[name]
    response = requests.get(f"{server}/rest/{name}", timeout=5)
    assert response.status_code == status
    exc = raised(exception_handler, response, "query")
    assert type(exc) is exc_class
    assert describe_failure(exc)[0] == expected


@pytest.mark.parametrize("error", sorted(OAUTH_ERRORS))
def test_oauth_token_errors(server, error):
    exc = raised(token_login, f"{server}/oauth/{error}", {"grant_type": "refresh_token"},
                 "login", "consumer-key", None, None)
    assert type(exc) is SalesforceAuthenticationFailed and exc.code == error
    assert describe_failure(exc)[0] == OAUTH_ERRORS[error][1]


def test_expired_password_text_kept_in_detail(server):
    exc = raised(exception_handler, requests.get(f"{server}/rest/expired_password", timeout=5))
    code, detail = describe_failure(exc)
    assert code == "INVALID_OPERATION_WITH_EXPIRED_PASSWORD"
    assert detail.startswith("SalesforceExpiredSession: ") and "password has expired" in detail


def test_direct_construction_matches_simple_salesforce(server):
    # the shapes documented in reference §1.5 / §1.8, built directly
    assert describe_failure(SalesforceAuthenticationFailed(
        "INVALID_LOGIN", "Invalid username, password, security token; or user locked out."))[0] \
        == "INVALID_LOGIN"
    assert describe_failure(SalesforceAuthenticationFailed(None, None))[0] == "UNKNOWN"
    assert describe_failure(SalesforceExpiredSession("u", 401, "query", "not json"))[0] \
        == "INVALID_SESSION_ID"


# ---------------------------------------------------------------------------------------------
# describe_failure: network, TLS, SMTP, our own exceptions
# ---------------------------------------------------------------------------------------------

def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_read_timeout(server):
    exc = raised(requests.get, f"{server}/hang/", timeout=(2, 0.2))
    assert isinstance(exc, requests.exceptions.ReadTimeout)
    assert describe_failure(exc)[0] == "TIMEOUT"


def test_connect_timeout():
    exc = requests.exceptions.ConnectTimeout("Connection to 10.255.255.1 timed out.")
    assert describe_failure(exc)[0] == "TIMEOUT"


def test_connection_refused():
    exc = raised(requests.get, f"http://127.0.0.1:{closed_port()}/", timeout=5)
    assert type(exc) is requests.exceptions.ConnectionError
    assert describe_failure(exc)[0] == "CONNECTION_ERROR"


def test_name_resolution_failure():
    exc = raised(requests.get, "https://no-such-host.invalid/", timeout=5)
    assert describe_failure(exc)[0] == "CONNECTION_ERROR"


def test_tls_failure(server):
    # TLS spoken to a plain-HTTP port: a real handshake failure
    exc = raised(requests.get, server.replace("http://", "https://"), timeout=5)
    assert isinstance(exc, requests.exceptions.SSLError)
    assert describe_failure(exc)[0] == "TLS_ERROR"


def test_missing_ca_bundle(server):
    exc = raised(requests.get, server.replace("http://", "https://"), timeout=5,
                 verify="/nonexistent/ca.pem")
    assert describe_failure(exc)[0] == "TLS_ERROR"


@pytest.mark.parametrize("exc,expected", [
    (ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate"), "TLS_ERROR"),
    (ssl.SSLError(1, "wrong version number"), "TLS_ERROR"),
    (TimeoutError("timed out"), "TIMEOUT"),
    (socket.timeout("timed out"), "TIMEOUT"),
    (ConnectionRefusedError(111, "Connection refused"), "CONNECTION_ERROR"),
    (ConnectionResetError(104, "Connection reset by peer"), "CONNECTION_ERROR"),
    (socket.gaierror(-2, "Name or service not known"), "CONNECTION_ERROR"),
    (OSError(101, "Network is unreachable"), "CONNECTION_ERROR"),
    (OSError(2, "No such file"), "UNKNOWN"),
    (ValueError("bad"), "UNKNOWN"),
    (KeyboardInterrupt(), "UNKNOWN"),
])
def test_builtin_exceptions(exc, expected):
    assert describe_failure(exc)[0] == expected


@pytest.mark.parametrize("exc,expected", [
    (smtplib.SMTPAuthenticationError(535, b"5.7.8 Username and Password not accepted"), "SMTP_AUTH"),
    (smtplib.SMTPRecipientsRefused({"x@example.com": (550, b"5.1.1 User unknown")}),
     "SMTP_RECIPIENTS_REFUSED"),
    (smtplib.SMTPSenderRefused(553, b"5.7.1 Sender address rejected", "a@example.com"),
     "SMTP_SENDER_REFUSED"),
    (smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server."), "SMTP_TLS"),
    (smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server."), "SMTP_AUTH"),
    (smtplib.SMTPConnectError(421, b"Service not available"), "SMTP_CONNECTION"),
    (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), "SMTP_CONNECTION"),
    (smtplib.SMTPDataError(554, b"Message rejected"), "SMTP_ERROR"),
    (smtplib.SMTPHeloError(501, b"bad helo"), "SMTP_ERROR"),
])
def test_smtp_exceptions(exc, expected):
    assert describe_failure(exc, "smtp")[0] == expected
    assert describe_failure(exc)[0] == expected


def test_smtp_connection_refused_for_real():
    exc = raised(smtplib.SMTP, "127.0.0.1", closed_port(), timeout=5)
    assert describe_failure(exc)[0] == "CONNECTION_ERROR"
    assert describe_failure(exc, "smtp")[0] == "SMTP_CONNECTION"


@pytest.mark.parametrize("code,smtp_code", [("TIMEOUT", "SMTP_CONNECTION"),
                                            ("TLS_ERROR", "SMTP_TLS"), ("UNKNOWN", "SMTP_ERROR")])
def test_smtp_equivalents(code, smtp_code):
    exc = {"TIMEOUT": TimeoutError(), "TLS_ERROR": ssl.SSLError(), "UNKNOWN": ValueError()}[code]
    assert describe_failure(exc, "smtp")[0] == smtp_code


class NotConfigured(Exception):
    """Like core.salesforce's exceptions: carries a catalogue code."""

    code = "NOT_CONFIGURED"


class WithForeignCode(Exception):
    code = 42


class LoginFailed(Exception):
    def __init__(self, code):
        super().__init__(f"login fault {code}")
        self.code = code


def test_own_exception_code():
    assert describe_failure(NotConfigured("Salesforce is not connected."))[0] == "NOT_CONFIGURED"
    assert describe_failure(LoginFailed("INSUFFICIENT_ACCESS_OR_READONLY"))[0] == "INSUFFICIENT_ACCESS"
    assert describe_failure(LoginFailed("SOME_FAULT_CODE"))[0] == "SOME_FAULT_CODE"
    assert describe_failure(LoginFailed("lower case"))[0] == "UNKNOWN"
    assert describe_failure(WithForeignCode())[0] == "UNKNOWN"


def test_cause_chain_is_followed():
    try:
        try:
            raise requests.exceptions.ReadTimeout("read timed out")
        except requests.exceptions.ReadTimeout as inner:
            raise RuntimeError("lookup failed") from inner
    except RuntimeError as outer:
        code, detail = describe_failure(outer)
    assert code == "TIMEOUT" and detail == "RuntimeError: lookup failed"


def test_broken_exception_never_breaks_reporting():
    class Broken(Exception):
        def __str__(self):
            raise RuntimeError("no")

        @property
        def code(self):
            raise RuntimeError("no")

    code, detail = describe_failure(Broken())
    assert code == "UNKNOWN" and "Broken" in detail


# ---------------------------------------------------------------------------------------------
# scrubbing
# ---------------------------------------------------------------------------------------------

SESSION = "00D5g000004ABCD!AQ4AQPm3bRWbvL1nVxCzT6z.kYx_Hh9fE2oQ-tK0pWs"


@pytest.mark.parametrize("text,secret", [
    (f"Authorization: Bearer {SESSION}", SESSION),
    (f"Authorization: Bearer abc.DEF-123_xyz", "abc.DEF-123_xyz"),
    (f"session {SESSION} expired", "AQ4AQPm3bRWbvL1nVxCzT6z"),
    ("<n1:password>hunter2TOKEN</n1:password>", "hunter2TOKEN"),
    ("<sessionId>SESSIONSECRET</sessionId>", "SESSIONSECRET"),
    ('{"access_token": "ACC3SS", "instance_url": "https://x"}', "ACC3SS"),
    ('{"refresh_token":"5Aep861REFRESH"}', "5Aep861REFRESH"),
    ("grant_type=password&client_secret=CS3CR3T&password=PW123", "CS3CR3T"),
    ("grant_type=password&client_secret=CS3CR3T&password=PW123", "PW123"),
    ("https://x/services/oauth2/token?refresh_token=RTOKEN99", "RTOKEN99"),
    ("{'sid': 'SID-VALUE-1'}", "SID-VALUE-1"),
])
def test_scrub_patterns(text, secret):
    assert secret not in scrub(text)


def test_scrub_keeps_ordinary_text():
    text = "Invalid username, password, security token; or user locked out."
    assert scrub(text) == text


def test_scrub_known_secrets():
    assert scrub("login as u with pass Tr0ub4dor&3 failed", ["Tr0ub4dor&3", "", "ab"]) == \
        "login as u with pass [removed] failed"


def test_detail_never_holds_a_session_id():
    exc = SalesforceExpiredSession(
        f"https://acme.my.salesforce.com/services/data/v59.0/query/?sid={SESSION}", 401, "query",
        [{"message": f"Session {SESSION} expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    code, detail = describe_failure(exc)
    assert code == "INVALID_SESSION_ID"
    assert "AQ4AQPm3bRWbvL1nVxCzT6z" not in detail


@pytest.mark.parametrize("text,expected", [
    ("a\r\nb", "a b"), ("a\x00b\x1b[31mc", "ab[31mc"), ("\tx\t", "x"), ("a\u2028b", "ab"),
    ("日本語", "日本語"),
])
def test_clean_text(text, expected):
    assert clean_text(text) == expected


def test_clean_text_truncates():
    assert len(clean_text("x" * 10_000)) == DETAIL_MAX


# ---------------------------------------------------------------------------------------------
# the error log
# ---------------------------------------------------------------------------------------------

def rows(store):
    return list(store.db.query("SELECT * FROM error_log ORDER BY id"))


def test_record_failure_returns_entry_and_writes_a_row(store):
    exc = SalesforceAuthenticationFailed("INVALID_LOGIN", "Invalid username, password, security "
                                         "token; or user locked out.")
    entry = record_failure(store, "salesforce", "login", exc, call_id="call-1")
    assert entry is CATALOGUE["INVALID_LOGIN"]
    (row,) = rows(store)
    assert (row["integration"], row["operation"], row["code"], row["count"], row["open"],
            row["call_id"]) == ("salesforce", "login", "INVALID_LOGIN", 1, 1, "call-1")
    assert row["message"] == entry.message_en
    assert row["detail"].startswith("SalesforceAuthenticationFailed: ")
    assert row["first_at"] == row["last_at"]


def test_repeat_raises_the_counter(store):
    for i in range(5):
        record_failure(store, "salesforce", "lookup", "TIMEOUT", detail=f"attempt {i}",
                       call_id=f"c{i}")
        time.sleep(0.002)
    (row,) = rows(store)
    assert row["count"] == 5
    assert row["last_at"] > row["first_at"]
    assert (row["detail"], row["call_id"]) == ("attempt 4", "c4")


@pytest.mark.parametrize("other", [
    ("smtp", "lookup", "TIMEOUT"), ("salesforce", "nightly", "TIMEOUT"),
    ("salesforce", "lookup", "CONNECTION_ERROR"),
])
def test_different_incidents_get_their_own_rows(store, other):
    record_failure(store, "salesforce", "lookup", "TIMEOUT")
    record_failure(store, *other)
    assert len(rows(store)) == 2


def test_code_given_as_string_is_normalised(store):
    entry = record_failure(store, "salesforce", "lookup", "INSUFFICIENT_ACCESS_OR_READONLY")
    assert entry.code == rows(store)[0]["code"] == "INSUFFICIENT_ACCESS"


def test_detail_combines_context_and_exception(store):
    record_failure(store, "salesforce", "lookup", TimeoutError("timed out"), detail="resolving")
    assert rows(store)[0]["detail"] == "resolving: TimeoutError: timed out"


def test_smtp_integration_codes(store):
    entry = record_failure(store, "smtp", "send", ConnectionRefusedError(111, "refused"))
    assert entry.code == "SMTP_CONNECTION"


def test_stored_secrets_are_scrubbed_from_detail(store):
    save_settings(store, {"username": "u@example.com", "password": "Pa55-word-xyz",
                          "security_token": "TokTok12345", "smtp_password": "mailpass99"})
    text = "login failed for u@example.com with Pa55-word-xyzTokTok12345; smtp mailpass99"
    record_failure(store, "salesforce", "login", ValueError(text), detail=f"Bearer {SESSION}")
    detail = rows(store)[0]["detail"]
    for secret in ("Pa55-word-xyz", "TokTok12345", "mailpass99", "AQ4AQPm3bRWbvL1nVxCzT6z"):
        assert secret not in detail
    assert "u@example.com" in detail


def test_detail_is_cleaned_and_truncated(store):
    record_failure(store, "salesforce", "lookup", "SERVER_ERROR",
                   detail="<script>alert(1)</script>\r\n\x00" + "y" * 5000)
    detail = rows(store)[0]["detail"]
    assert len(detail) == DETAIL_MAX
    assert detail.startswith("<script>alert(1)</script> y")  # escaping is the page's job
    assert not re.search(r"[\x00-\x1f]", detail)


def test_threads_recording_the_same_failure(store):
    barrier = threading.Barrier(50)
    errors = []

    def work():
        try:
            barrier.wait()
            record_failure(store, "salesforce", "lookup", requests.exceptions.ReadTimeout("slow"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    (row,) = rows(store)
    assert (row["code"], row["count"]) == ("TIMEOUT", 50)


def _record_in_child(home, barrier):
    s = Store(home)
    barrier.wait()
    for _ in range(25):
        record_failure(s, "salesforce", "lookup", "REQUEST_LIMIT_EXCEEDED")


def test_processes_recording_the_same_failure(store):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    children = [ctx.Process(target=_record_in_child, args=(str(store.home), barrier))
                for _ in range(4)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    (row,) = rows(store)
    assert row["count"] == 100


# -- recovery --------------------------------------------------------------------------------

def test_recovery_closes_and_a_new_failure_opens_a_new_row(store):
    record_failure(store, "salesforce", "lookup", "TIMEOUT")
    record_failure(store, "salesforce", "lookup", "TIMEOUT")
    closed = record_recovery(store, "salesforce")
    assert [(r["code"], r["count"]) for r in closed] == [("TIMEOUT", 2)]
    assert record_recovery(store, "salesforce") == []
    record_failure(store, "salesforce", "lookup", "TIMEOUT")
    assert [(r["count"], r["open"]) for r in rows(store)] == [(2, 0), (1, 1)]


def test_recovery_by_operation_and_integration(store):
    record_failure(store, "salesforce", "lookup", "TIMEOUT")
    record_failure(store, "salesforce", "nightly", "TIMEOUT")
    record_failure(store, "smtp", "send", "SMTP_AUTH")
    assert [r["operation"] for r in record_recovery(store, "salesforce", "nightly")] == ["nightly"]
    assert {(r["operation"], r["open"]) for r in rows(store)} == {
        ("lookup", 1), ("nightly", 0), ("send", 1)}
    record_recovery(store, "smtp")
    assert count_errors(store, open=True) == 1


# -- listing ---------------------------------------------------------------------------------

@pytest.fixture
def log(store):
    for i, (integration, code) in enumerate([
        ("salesforce", "TIMEOUT"), ("salesforce", "INVALID_LOGIN"), ("smtp", "SMTP_AUTH"),
        ("salesforce", "REQUEST_LIMIT_EXCEEDED"), ("smtp", "SMTP_CONNECTION"),
    ] * 3):
        record_failure(store, integration, f"op{i}", code)
    store.conn.execute("UPDATE error_log SET first_at = '2024-01-01T10:00:00.000000+00:00', "
                       "last_at = '2024-01-02T10:00:00.000000+00:00' WHERE id = 1")
    return store


@pytest.mark.parametrize("filters,expected", [
    ({}, 15), ({"integration": "smtp"}, 6), ({"code": "TIMEOUT"}, 3),
    ({"integration": "smtp", "code": "TIMEOUT"}, 0), ({"day": "2024-01-01"}, 1),
    ({"day": "2024-01-02"}, 1), ({"day": "2024-01-03"}, 0), ({"open": True}, 15),
    ({"open": False}, 0), ({"code": "'; DROP TABLE error_log; --"}, 0),
])
def test_filters(log, filters, expected):
    assert count_errors(log, **filters) == expected
    assert len(list_errors(log, limit=100, **filters)) == expected


def test_newest_first_and_paged(log):
    first = list_errors(log, limit=10)
    second = list_errors(log, limit=10, offset=10)
    assert len(first) == 10 and len(second) == 5
    stamps = [r["last_at"] for r in first + second]
    assert stamps == sorted(stamps, reverse=True)
    assert second[-1]["id"] == 1


def test_rows_carry_catalogue_texts(log):
    row = list_errors(log, code="INVALID_LOGIN", limit=1)[0]
    entry = CATALOGUE["INVALID_LOGIN"]
    assert (row["message_ja"], row["remedy_en"]) == (entry.message_ja, entry.remedy_en)


def test_codes_in_log(log):
    assert codes_in_log(log) == sorted(
        ["TIMEOUT", "INVALID_LOGIN", "SMTP_AUTH", "REQUEST_LIMIT_EXCEEDED", "SMTP_CONNECTION"])


# ---------------------------------------------------------------------------------------------
# the one failure path: report_failure
# ---------------------------------------------------------------------------------------------

def _raised(exc_factory):
    try:
        exc_factory()
    except Exception as exc:  # the real exception object, with its chain
        return exc


def _wrapped_network_error():
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except OSError as inner:
        raise RuntimeError("while sending") from inner


@pytest.mark.parametrize("make, expected, integration", [
    # our own faults are the plugin's, whatever integration the caller was talking to
    (lambda: {}["missing"], "salesforce", "plugin"),
    (lambda: None.attribute, "smtp", "plugin"),
    (lambda: int("x"), "salesforce", "plugin"),
    # failures raised by the integrations' libraries are theirs
    (lambda: (_ for _ in ()).throw(SalesforceGeneralError("https://x/", 503, "x", b"[]")), "smtp",
     "salesforce"),
    (lambda: (_ for _ in ()).throw(requests.exceptions.ReadTimeout("read timed out")), "smtp", "salesforce"),
    (lambda: (_ for _ in ()).throw(smtplib.SMTPAuthenticationError(535, b"no")), "salesforce", "smtp"),
    # a network error belongs to whoever the caller was talking to, also through a chain
    (lambda: (_ for _ in ()).throw(ConnectionRefusedError(111, "refused")), "smtp", "smtp"),
    (_wrapped_network_error, "salesforce", "salesforce"),
])
def test_report_failure_logs_under_the_integration_that_failed(store, make, expected, integration):
    from core.errors import report_failure

    entry = report_failure(store, "lookup", _raised(make), expected=expected, call_id="c-1")
    (row,) = list_errors(store)
    assert (row["integration"], row["operation"], row["code"], row["call_id"]) == \
        (integration, "lookup", entry.code, "c-1")


def test_our_salesforce_and_oauth_errors_declare_their_integration(store):
    from core.errors import report_failure
    from core.oauth import InvalidGrant
    from core.salesforce import Unavailable

    report_failure(store, "register", Unavailable("TIMEOUT"), expected="smtp")
    report_failure(store, "refresh", InvalidGrant("invalid_grant", "expired"), expected="smtp")
    assert {(r["integration"], r["code"]) for r in list_errors(store)} == \
        {("salesforce", "TIMEOUT"), ("salesforce", "OAUTH_INVALID_GRANT")}


def test_a_bare_code_belongs_to_the_expected_integration(store):
    from core.errors import report_failure

    assert report_failure(store, "connection_test", "INSUFFICIENT_ACCESS",
                          detail="Task: cannot be created").code == "INSUFFICIENT_ACCESS"
    (row,) = list_errors(store)
    assert row["integration"] == "salesforce" and "Task" in row["detail"]


def test_report_failure_never_raises_when_the_log_cannot_be_written(tmp_path):
    from core.errors import report_failure

    store = Store(tmp_path / "instance")
    store.conn.execute("DROP TABLE error_log")   # the error log itself is broken
    entry = report_failure(store, "lookup", TimeoutError("timed out"))
    assert entry.code == "TIMEOUT"
