"""The Salesforce connection: login, the REST calls the resolver makes, and what they cost.

``Connection(settings, store)`` logs in with username + password + security token through
simple-salesforce's ``SalesforceLogin`` (login URL: My Domain, test.salesforce.com for a sandbox,
or the emulator) and then talks REST through a session-id client. Every HTTP request goes through
one ``requests.Session`` that:

- ignores the environment (``trust_env = False``): ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE``
  would otherwise silently replace the CA-bundle setting;
- applies the connect and read timeouts of the settings to every request;
- counts itself in the store (``count_api_call``) and records the org-wide usage read from the
  ``Sforce-Limit-Info`` header (``record_org_usage``).

A session-id client never logs in again by itself, so :class:`Connection` does: on a 401
INVALID_SESSION_ID it logs in once, retries once, and then gives up with :class:`LoginFailed`.
Failures leave as the named exceptions below, whose ``.code`` is a catalogue code
(core/errors.py), so every caller shows the same message and remedy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import re
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from typing import Any, Callable, Iterator
from xml.sax.saxutils import escape

import requests
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce import exceptions as sfx

from core import errors, oauth
from core.settings import Settings, apply_changes, load_settings, save_settings

log = logging.getLogger(__name__)

REQUIRED_READ = ("Contact", "Account", "Lead")
REQUIRED_CREATE = ("Task",)
OAUTH_METHODS = ("oauth_web", "oauth_client_credentials")
REFRESH_LOCK = "oauth-refresh"   # the store's named lock around a refresh-token login
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
ACCOUNTING_WAIT_SECONDS = 0.25   # the longest a request waits for its usage count to be written


# ---------------------------------------------------------------------------------------------
# exceptions: the docstring is the message, ``.code`` the catalogue code
# ---------------------------------------------------------------------------------------------

class SalesforceError(Exception):
    "Salesforce could not be used."

    code = "UNKNOWN"
    integration = "salesforce"

    def __init__(self, code: str | None = None, detail: str | None = None):
        self.code = code or type(self).code
        self.detail = detail or ""
        message = self.__doc__ or ""
        super().__init__(f"{message} [{self.code}] {self.detail}".strip())

    def entry(self) -> errors.CatalogueEntry:
        """The catalogue entry (message and remedy in Japanese and English) for this failure."""
        return errors.entry_for(self.code)


class NotConfigured(SalesforceError):
    "Salesforce is not connected."

    code = "NOT_CONFIGURED"


class LoginFailed(SalesforceError):
    "Logging in to Salesforce failed."

    code = "INVALID_LOGIN"


class Unavailable(SalesforceError):
    "Salesforce cannot be reached or did not answer in time."

    code = "CONNECTION_ERROR"


class LimitExceeded(SalesforceError):
    "The Salesforce org has used up its API request limit."

    code = "REQUEST_LIMIT_EXCEEDED"


class AccessDenied(SalesforceError):
    "The Salesforce user lacks a permission it needs."

    code = "INSUFFICIENT_ACCESS"


class ConnectionTestFailed(SalesforceError):
    "The connection test failed; nothing was saved."

    def __init__(self, entry: errors.CatalogueEntry, detail: str | None = None,
                 problems: list[str] = ()):
        super().__init__(entry.code, detail)
        self.catalogue_entry = entry
        self.problems = list(problems)


_UNAVAILABLE = {"TIMEOUT", "CONNECTION_ERROR", "TLS_ERROR", "SERVER_ERROR", "BAD_RESPONSE"}
_ACCESS = {"INSUFFICIENT_ACCESS", "API_DISABLED_FOR_ORG", "API_CURRENTLY_DISABLED"}
_SESSION = {"INVALID_SESSION_ID", "INVALID_OPERATION_WITH_EXPIRED_PASSWORD"}


def translate(exc: BaseException, during_login: bool = False) -> SalesforceError:
    """The named exception for a failure raised by simple-salesforce, requests or ssl."""
    if isinstance(exc, SalesforceError):
        return exc
    code, detail = errors.describe_failure(exc, "salesforce")
    cls = _class_for(code)
    # while logging in, a refusal (API disabled, expired password...) is a failed login
    if (during_login or code in _SESSION) and cls in (SalesforceError, AccessDenied) \
            and code != "INSUFFICIENT_ACCESS":
        cls = LoginFailed
    return cls(code, detail)


def _class_for(code: str) -> type[SalesforceError]:
    if code == "REQUEST_LIMIT_EXCEEDED":
        return LimitExceeded
    if code in _UNAVAILABLE:
        return Unavailable
    if code in _ACCESS:
        return AccessDenied
    return SalesforceError


# ---------------------------------------------------------------------------------------------
# the HTTP session
# ---------------------------------------------------------------------------------------------

def request_kind(method: str, url: str) -> str:
    """What an HTTP request is, for the per-kind API usage count."""
    path = urllib.parse.urlsplit(url).path
    # An OAuth token request is a login: Salesforce does not charge it to the daily API limit.
    if "/services/Soap/" in path or "/services/oauth2/" in path:
        return "login"
    rest = re.sub(r"^/services/data/v[\d.]+/?", "", path).strip("/")
    head, _, tail = rest.partition("/")
    if head in ("query", "queryAll"):
        return "query_more" if tail else "query"
    if head == "sobjects" and tail.endswith("describe"):
        return "describe"
    return head or "rest"


class ApiSession(oauth.PinnedSession):
    """A PinnedSession (CA bundle pinned, timeouts on every request) with a hook that sees
    every response (API usage accounting, the login body)."""

    def __init__(self, ca_bundle: str, timeout: tuple[float, float],
                 on_response: Callable[[str, str, requests.Response], None]):
        super().__init__(ca_bundle, timeout)
        self._on_response = on_response

    def request(self, method, url, *args, **kwargs):  # noqa: D401 - requests' signature
        response = super().request(method, url, *args, **kwargs)
        try:
            self._on_response(method, url, response)
        except Exception:  # accounting must never break a lookup
            log.exception("API usage accounting failed")
        return response


def _account(store, kind: str, org_usage: tuple[int, int] | None) -> None:
    store.count_api_call(kind)
    if org_usage:
        store.record_org_usage(*org_usage)


class _Accountant:
    """Writes the API usage counts in a daemon thread of its own, each request waiting for its
    count at most ACCOUNTING_WAIT_SECONDS: a database locked by another process must not hold
    a lookup (the count is written once the lock is gone)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pid = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()

    def write(self, fn: Callable, *args) -> None:
        """Run ``fn(*args)`` in the accounting thread; wait for it only briefly."""
        done = threading.Event()
        self._running().put((fn, args, done))
        if not done.wait(ACCOUNTING_WAIT_SECONDS):
            log.warning("API usage accounting is waiting for the database; the lookup goes on")

    def _running(self) -> queue.SimpleQueue:
        with self._lock:
            if self._pid != os.getpid():   # first use, or a forked child: threads do not survive a fork
                self._pid, self._queue = os.getpid(), queue.SimpleQueue()
                threading.Thread(target=self._work, args=(self._queue,), name="sfcti-accounting",
                                 daemon=True).start()
            return self._queue

    @staticmethod
    def _work(jobs: queue.SimpleQueue) -> None:
        while True:
            fn, args, done = jobs.get()
            try:
                fn(*args)
            except Exception:  # accounting must never break a lookup
                log.exception("API usage accounting failed")
            finally:
                done.set()


_ACCOUNTANT = _Accountant()


# ---------------------------------------------------------------------------------------------
# the login answer
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class OrgInfo:
    """What the login told about the org and the user."""

    org_id: str = ""
    org_name: str = ""
    user_name: str = ""
    instance_url: str = ""
    person_accounts: bool = False
    password_expired: bool = False


def parse_login_info(body: bytes | None) -> dict[str, str]:
    """The ``result`` and ``userInfo`` elements of a SOAP loginResponse, by local name."""
    values: dict[str, str] = {}
    if not body:
        return values
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return values
    for element in root.iter():
        name = element.tag.rsplit("}", 1)[-1]
        if len(element) == 0 and name not in values:
            values[name] = (element.text or "").strip()
    return values


# ---------------------------------------------------------------------------------------------
# the connection
# ---------------------------------------------------------------------------------------------

class Connection:
    """A logged-in Salesforce connection; safe to share between threads.

    :raises NotConfigured: when the settings lack the credentials of their auth method
    :raises LoginFailed: the login was refused (``.code``: INVALID_LOGIN,
        LOGIN_MUST_USE_SECURITY_TOKEN, API_DISABLED_FOR_ORG, INVALID_OPERATION_WITH_EXPIRED_PASSWORD...)
    :raises Unavailable: timeout, connection, TLS or server error
    :raises LimitExceeded: REQUEST_LIMIT_EXCEEDED
    :raises AccessDenied: INSUFFICIENT_ACCESS
    """

    def __init__(self, settings: Settings, store=None, follows_store: bool = False):
        if not settings.is_configured():
            raise NotConfigured()
        self.settings = settings
        self.store = store
        self.follows_store = follows_store   # the store's own settings, not ones under test
        self.version = settings.api_version
        self._lock = threading.RLock()
        self._local = threading.local()
        self.http = ApiSession(settings.ca_bundle,
                               (settings.connect_timeout, settings.read_timeout),
                               self._on_response)
        self._sf: Salesforce | None = None
        self.org = OrgInfo()
        self._login()

    def __repr__(self) -> str:
        return f"<Connection {self.settings.username} at {self.org.instance_url}>"

    # -- login ---------------------------------------------------------------------------------

    def _login(self) -> None:
        """Log in by the settings' auth method: OAuth 2.0 token, or legacy SOAP login()."""
        if self.settings.auth_method in OAUTH_METHODS:
            self._oauth_login()
        else:
            self._soap_login()

    def _oauth_login(self) -> None:
        """Get a fresh access token (refresh token or client credentials), build the client on it;
        the org is learnt on the first login only."""
        with self._lock, self._refresh_turn():
            self._follow_stored_refresh_token()
            try:
                token = oauth.fetch_token(self.settings, self.http)
            except oauth.OAuthError as exc:
                raise LoginFailed(exc.code, errors.clean_text(errors.scrub(str(exc)))) from exc
            except Exception as exc:
                raise translate(exc, during_login=True) from exc
            if token.refresh_token and token.refresh_token != self.settings.oauth_refresh_token:
                self._keep_rotated_refresh_token(token.refresh_token)
            self._sf = Salesforce(session_id=token.access_token, instance_url=token.instance_url,
                                  session=self.http, version=self.version)
            if not self.org.instance_url:
                self.org = OrgInfo(org_id=token.org_id, user_name=self.settings.username,
                                   instance_url=token.instance_url.rstrip("/"))
                self.org = dataclasses.replace(self.org,
                                               person_accounts=self._account_has_person_fields())

    def _refresh_turn(self) -> contextlib.AbstractContextManager:
        """Around a refresh-token login: the store's lock "oauth-refresh", so that of the
        processes and nodes sharing a rotating refresh token one at a time uses it and stores its
        successor before the next reads it."""
        if self.store is None or self.settings.auth_method == "oauth_client_credentials":
            return contextlib.nullcontext()
        return self.store.named_lock(REFRESH_LOCK)

    def _follow_stored_refresh_token(self) -> None:
        """Log in with the refresh token stored now when this connection runs on the stored one:
        another process or node may have rotated it since (its predecessor is then revoked). A
        connection testing new settings keeps its own."""
        if not self.follows_store or self.store is None:
            return
        stored = load_settings(self.store).oauth_refresh_token
        if stored and stored != self.settings.oauth_refresh_token:
            self.settings = dataclasses.replace(self.settings, oauth_refresh_token=stored)

    def _keep_rotated_refresh_token(self, refresh_token: str) -> None:
        """Store and use from now on the refresh token Salesforce answered in place of ours.

        With refresh token rotation the one just used is dead: the store must hold its successor
        or the next process or node cannot log in.
        """
        if self.store is not None:
            save_settings(self.store, {"oauth_refresh_token": refresh_token})
        self.settings = dataclasses.replace(self.settings, oauth_refresh_token=refresh_token)

    def _soap_login(self) -> None:
        """Log in (SOAP), build the session-id client, learn the org; raises the named errors."""
        with self._lock:
            self._local.login_body = None
            try:
                session_id, instance = SalesforceLogin(
                    username=self.settings.username, password=self.settings.password,
                    # simple-salesforce escapes the password but not the token
                    security_token=escape(self.settings.security_token or ""),
                    session=self.http, sf_version=self.version,
                    scratch_url=self.settings.login_host(),
                )
            except UnicodeEncodeError as exc:  # http.client sends the body as Latin-1
                raise LoginFailed("INVALID_LOGIN", f"credentials are not Latin-1: {exc.reason}") from exc
            except Exception as exc:
                raise translate(exc, during_login=True) from exc
            info = parse_login_info(self._local.login_body)
            if info.get("passwordExpired") == "true":
                raise LoginFailed("INVALID_OPERATION_WITH_EXPIRED_PASSWORD")
            self._sf = Salesforce(session_id=session_id, instance=instance, session=self.http,
                                  version=self.version)
            self.org = self._org_info(info, instance)

    def _org_info(self, info: dict[str, str], instance: str) -> OrgInfo:
        person = info.get("orgHasPersonAccounts")
        if person is None:  # not in this login answer: ask Account's describe once
            person = "true" if self._account_has_person_fields() else "false"
        return OrgInfo(org_id=info.get("organizationId", ""), org_name=info.get("organizationName", ""),
                       user_name=info.get("userName", self.settings.username),
                       instance_url=f"https://{instance}", person_accounts=person == "true")

    def _account_has_person_fields(self) -> bool:
        describe = self._call(lambda sf: sf.Account.describe())
        return any(f.get("name") == "IsPersonAccount" for f in describe.get("fields", []))

    def _relogin(self, stale: Salesforce) -> None:
        """Log in again unless another thread already replaced the stale client."""
        with self._lock:
            if self._sf is stale:
                self._login()

    # -- accounting ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def counted_as(self, kind: str) -> Iterator[None]:
        """Count this thread's requests made inside the block as ``kind`` (not by their URL), so
        that a job can tell what it spent of the daily limit (core/activity.py's share)."""
        before = getattr(self._local, "kind", None)
        self._local.kind = kind
        try:
            yield
        finally:
            self._local.kind = before

    def _on_response(self, method: str, url: str, response: requests.Response) -> None:
        kind = request_kind(method, url)
        if kind != "login":
            kind = getattr(self._local, "kind", None) or kind
        if kind == "login":
            self._local.login_body = response.content
        # An unauthenticated request (401) is not charged to the org: Salesforce cannot tell
        # whose it is. Everything else, failures included, counts as a call.
        if self.store is None or response.status_code == 401:
            return
        match = _LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        _ACCOUNTANT.write(_account, self.store, kind,
                          (int(match.group(1)), int(match.group(2))) if match else None)

    # -- calls ---------------------------------------------------------------------------------

    def _call(self, operation: Callable[[Salesforce], Any]) -> Any:
        """Run ``operation`` on the client; on INVALID_SESSION_ID log in once and retry once."""
        client = self._sf
        try:
            return operation(client)
        except sfx.SalesforceExpiredSession as exc:
            if errors.describe_failure(exc)[0] != "INVALID_SESSION_ID":
                raise translate(exc) from exc
            self._relogin(client)
        except Exception as exc:
            raise translate(exc) from exc
        try:
            return operation(self._sf)
        except Exception as exc:
            raise translate(exc) from exc

    def query(self, soql: str) -> dict:
        """The records of ``soql``: one call, plus one per further page of 2,000.

        Returns ``{"totalSize", "done": True, "records"}``.
        """
        return self._call(lambda sf: sf.query_all(soql))

    def query_more(self, next_records_url: str) -> dict:
        """The next page of a query result (``nextRecordsUrl``): one call."""
        return self._call(lambda sf: sf.query_more(next_records_url, identifier_is_url=True))

    def composite(self, subrequests: list[dict], all_or_none: bool = False) -> list[dict]:
        """The sub-responses of one composite request (one API call), in order.

        Each sub-response is a dict with ``body``, ``httpStatusCode`` and ``referenceId``;
        sub-request failures do not raise (check ``httpStatusCode``).
        """
        payload = {"allOrNone": all_or_none, "compositeRequest": subrequests}
        result = self._call(lambda sf: sf.restful("composite", method="POST", json=payload))
        return list((result or {}).get("compositeResponse", []))

    def create_records(self, records: list[dict], all_or_none: bool = False) -> list[dict]:
        """Create up to 200 records in one sObject Collections request (one API call); returns
        Salesforce's SaveResults in order (``{"id", "success", "errors": [{"statusCode",
        "message", "fields"}]}``). A refused record does not raise: check ``success``.

        :raises SalesforceError: (and its subclasses) when the request as a whole fails
        """
        payload = {"allOrNone": all_or_none, "records": records}
        result = self._call(lambda sf: sf.restful("composite/sobjects", method="POST", json=payload))
        if not isinstance(result, list) or len(result) != len(records):
            raise SalesforceError("SERVER_ERROR", errors.clean_text(
                f"composite/sobjects answered {type(result).__name__} for {len(records)} records"))
        return result

    def rest_response(self, method: str, path: str, **kwargs) -> requests.Response:
        """A REST request to ``path`` under /services/data/vXX.X/ (e.g. "jobs/query"): one call,
        the raw response (Bulk API 2.0's results are CSV, not JSON). Failures raise as above."""
        return self._call(lambda sf: sf._call_salesforce(method, sf.base_url + path, **kwargs))

    def query_subrequest(self, reference_id: str, soql: str, all_rows: bool = False) -> dict:
        """A composite GET sub-request running ``soql`` (build ``soql`` with format_soql);
        with ``all_rows`` through queryAll (the recycle bin's rows too, with IsDeleted)."""
        resource = "queryAll" if all_rows else "query"
        url = f"/services/data/v{self.version}/{resource}/?" + urllib.parse.urlencode({"q": soql})
        return {"method": "GET", "url": url, "referenceId": reference_id}

    def check_permissions(self) -> list[str]:
        """Problems with the user's permissions ([] when fine): Contact, Account and Lead must be
        queryable and Task createable. One composite call holding the four describes."""
        names = REQUIRED_READ + REQUIRED_CREATE
        subrequests = [{"method": "GET", "referenceId": name,
                        "url": f"/services/data/v{self.version}/sobjects/{name}/describe"}
                       for name in names]
        problems = []
        for name, response in zip(names, self.composite(subrequests)):
            problems += _permission_problems(name, response)
        return problems

    def record_url(self, object_name: str, record_id: str) -> str:
        """The Lightning URL of a record."""
        return lightning_url(self.org.instance_url, object_name, record_id)


def lightning_url(instance_url: str, object_name: str, record_id: str) -> str:
    """The Lightning URL of a record of the org at ``instance_url``."""
    host = urllib.parse.urlsplit(instance_url).netloc
    return f"https://{host}/lightning/r/{object_name}/{record_id}/view"


def _permission_problems(name: str, response: dict) -> list[str]:
    status, body = response.get("httpStatusCode"), response.get("body")
    if status != 200 or not isinstance(body, dict):
        return [f"{name}: not accessible (HTTP {status}, {_body_code(body)})"]
    if name in REQUIRED_READ and not body.get("queryable"):
        return [f"{name}: cannot be read (not queryable)"]
    if name in REQUIRED_CREATE and not body.get("createable"):
        return [f"{name}: cannot be created"]
    return []


def _body_code(body: Any) -> str:
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("errorCode", "error"))
    return "error"


def error_code(response: dict) -> str:
    """The catalogue code of a failed composite sub-response."""
    status = response.get("httpStatusCode")
    raw = _body_code(response.get("body"))
    return errors.normalize_code(raw if raw != "error" else status)


def raise_for_subresponse(response: dict) -> None:
    """Raise the named exception for a failed composite sub-response (status >= 300)."""
    status = response.get("httpStatusCode") or 0
    if status < 300:
        return
    code = error_code(response)
    detail = errors.clean_text(f"{response.get('referenceId')}: HTTP {status} {response.get('body')}")
    raise _class_for(code)(code, detail)


# ---------------------------------------------------------------------------------------------
# the shared connection
# ---------------------------------------------------------------------------------------------

_CONNECTIONS: dict[str, tuple[tuple, Connection]] = {}
_CONNECTIONS_LOCK = threading.RLock()


def _settings_key(settings: Settings) -> tuple:
    # Not the refresh token: with rotation every login (on any node) stores a new one, and
    # rebuilding on it would make the nodes log each other out in turn. The shared connection
    # reads the stored token at each login instead; a grant replaced in the admin is revoked,
    # so the next request fails with INVALID_SESSION_ID and logs in with the new one.
    return (settings.username, settings.password, settings.security_token, settings.login_host(),
            settings.ca_bundle, settings.connect_timeout, settings.read_timeout,
            settings.api_version, settings.auth_method, settings.oauth_client_id,
            settings.oauth_client_secret)


def connection_for(store) -> Connection:
    """The shared connection for ``store``'s settings, logged in on first use and rebuilt when
    the connection settings change. Thread-safe.

    :raises NotConfigured, LoginFailed, Unavailable, LimitExceeded, AccessDenied: as Connection
    """
    settings = load_settings(store)
    home = str(store.home)
    with _CONNECTIONS_LOCK:
        cached = _CONNECTIONS.get(home)
        if cached and cached[0] == _settings_key(settings):
            return cached[1]
        connection = Connection(settings, store, follows_store=True)
        _CONNECTIONS[home] = (_settings_key(connection.settings), connection)
        return connection


def forget_connection(store) -> None:
    """Drop the shared connection of ``store`` (the next connection_for logs in again)."""
    with _CONNECTIONS_LOCK:
        _CONNECTIONS.pop(str(store.home), None)


# ---------------------------------------------------------------------------------------------
# test the connection, then save
# ---------------------------------------------------------------------------------------------

def connect_and_save(store, values: dict, keep_blank_secrets: bool = True) -> Connection:
    """"Test connection and save": log in with the stored settings under ``values``, check the
    user's permissions, and only then save ``values``; returns the tested connection. The admin
    and `sfcti connect` both go through here.

    A failure is written to the error log (operation "connection_test", never alerted: the
    person testing sees it) and nothing is saved.

    :raises core.settings.InvalidSettings: when a value is invalid
    :raises ConnectionTestFailed: with the catalogue entry (and the permission problems)
    """
    settings = apply_changes(load_settings(store), values, keep_blank_secrets)
    try:
        connection = Connection(settings, store)
        problems = connection.check_permissions()
    except Exception as exc:  # any failure must end as a message, never a traceback
        entry = errors.report_failure(store, errors.CONNECTION_TEST, exc)
        raise ConnectionTestFailed(entry, errors.describe_failure(exc, "salesforce")[1]) from exc
    if problems:
        # only Task create missing: calls cannot be logged, and that remedy is the precise one
        code = "TASK_CREATE_DENIED" if all(p.startswith("Task:") for p in problems) \
            else "INSUFFICIENT_ACCESS"
        entry = errors.report_failure(store, errors.CONNECTION_TEST, code, detail="; ".join(problems))
        raise ConnectionTestFailed(entry, problems=problems)
    if "oauth_refresh_token" in values:   # its login may have rotated the one tested
        values = {**values, "oauth_refresh_token": connection.settings.oauth_refresh_token}
    save_settings(store, values, keep_blank_secrets=keep_blank_secrets)
    errors.record_recovery(store, "salesforce", errors.CONNECTION_TEST)
    forget_connection(store)
    return connection
