"""The emulator's HTTPS server: TLS with a throw-away CA, SOAP login, bearer auth, limits, faults."""
import gc
import io
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import trustme

from emulator import bulk, oauth, record_page, soap
from emulator.faults import Faults
from emulator.org import Org
from emulator.rest import Call, RestApi, SUPPORTED_VERSIONS, classify, split_url

DEMO_PASSWORD = "demo-password"
DEMO_TOKEN = "DEMOtoken0123456789abcd"
MAX_URI_BYTES = 16384          # Salesforce: longer URIs get 414, URI + headers 431
_SOAP_PATH = re.compile(r"^/services/Soap/u/(\d{2}\.\d)/?$")
_JSON = "application/json;charset=UTF-8"
_INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
_EXPIRED_PASSWORD = [{"message": "The users password has expired, you must call SetPassword before "
                                 "attempting any other API operations",
                      "errorCode": "INVALID_OPERATION_WITH_EXPIRED_PASSWORD"}]
_LIMIT_EXCEEDED = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
_UNQUOTED_KEY = re.compile(rb'"(\w+)":')
_HTML_PAGE = (b"<!DOCTYPE html><html><head><title>Salesforce - Maintenance</title></head><body>"
              b"<h1>Down for maintenance</h1><p>This page is not the API you asked for.</p></body></html>")
_PAD_CHUNK = 1 << 20
_SERVER_ERRORS = {
    500: [{"message": "An unexpected error occurred. Please include this ErrorId if you contact support: "
                      "1234567890-12345 (-1234567890)", "errorCode": "UNKNOWN_EXCEPTION"}],
    503: [{"message": "Server temporarily unavailable.", "errorCode": "SERVER_UNAVAILABLE"}],
}


class _Reset(Exception):
    """Raised inside a handler to drop the connection with a TCP reset."""


@dataclass
class _Session:
    user_id: str
    last_used: float
    password_expired: bool


class Emulator:
    """A local Salesforce over HTTPS on loopback; use as a context manager or start()/stop()."""

    def __init__(self, org=None, port=0, host="127.0.0.1", *, username=None, password=DEMO_PASSWORD,
                 security_token=DEMO_TOKEN, require_token=True, session_seconds=7200,
                 daily_limit=100000, cert_dir=None):
        self.org = org if org is not None else Org()
        self.host, self.port = host, port
        self.username = username or self.org.login_user()["Username"]
        self.password, self.security_token = password, security_token
        self.require_token = require_token
        self.session_seconds = session_seconds
        self.default_daily_limit = daily_limit
        self.faults = Faults()
        self.request_log = []
        self.api_calls = Counter()
        self.rest = RestApi(self.org, usage=self.api_usage)
        self.ca_path = None
        self._cert_dir, self._own_cert_dir = cert_dir, False
        self._lock = threading.Lock()
        self._sessions = {}
        self._used, self._max = 0, daily_limit
        self._server = self._thread = None
        self._untrusted = None
        self.oauth = oauth.OAuthServer(self)

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self):
        """Generate the CA and certificate, bind the port and serve in a background thread."""
        context = self._tls_context()
        # A big org is hundreds of thousands of long-lived dicts; keep them out of GC passes so a
        # full collection cannot add tens of milliseconds to a lookup.
        gc.freeze()
        self._server = _Server((self.host, self.port), _Handler, self, context)
        self.port = self._server.server_address[1]
        self.faults.restart()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"sf-emulator-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _tls_context(self):
        ca = trustme.CA(organization_name="sfcti emulator CA")
        cert = ca.issue_cert(self.host, "localhost")
        if self._cert_dir is None:
            self._cert_dir, self._own_cert_dir = tempfile.mkdtemp(prefix="sfcti-emulator-"), True
        os.makedirs(self._cert_dir, exist_ok=True)
        self.ca_path = os.path.join(self._cert_dir, "emulator-ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return context

    def tls_context_for_new_connection(self, trusted):
        """The TLS context a new connection is served with: ``trusted`` unless the
        untrusted_cert fault is on (then a certificate of a CA nobody was given)."""
        if not self.faults.untrusted_cert:
            return trusted
        if self._untrusted is None:
            cert = trustme.CA(organization_name="untrusted CA").issue_cert(self.host, "localhost")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            self._untrusted = context
        return self._untrusted

    def stop(self):
        """Stop serving, release hung requests and remove a temporary CA folder."""
        self.faults.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None
        if self._own_cert_dir and self._cert_dir:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir, self._own_cert_dir = None, False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- what clients are told ------------------------------------------------------------

    @property
    def login_url(self):
        """Where clients log in: https://127.0.0.1:PORT (SalesforceLogin(scratch_url=...))."""
        return f"https://{self.host}:{self.port}"

    @property
    def instance(self):
        """host:port, what simple-salesforce derives as sf_instance after login."""
        return f"{self.host}:{self.port}"

    # ---- sessions, limits and counters ----------------------------------------------------

    @property
    def oauth_client_id(self):
        """The consumer key of the demo connected app (its callback: register_oauth_app)."""
        return oauth.DEMO_CLIENT_ID

    @property
    def oauth_client_secret(self):
        """The consumer secret of the demo connected app."""
        return oauth.DEMO_CLIENT_SECRET

    def register_oauth_app(self, client_id=oauth.DEMO_CLIENT_ID, client_secret=oauth.DEMO_CLIENT_SECRET,
                           callback_url=oauth.DEMO_CALLBACK, run_as=None):
        """Register a connected app (by default: the demo app with another callback URL)."""
        run_as = run_as or self.org.login_user()["Id"]
        return self.oauth.register_app(client_id, client_secret, callback_url, run_as)

    @property
    def soap_login_disabled(self):
        """True for an org that allows OAuth only: SOAP login() answers INVALID_OPERATION."""
        return self.oauth.soap_login_disabled

    @soap_login_disabled.setter
    def soap_login_disabled(self, value):
        self.oauth.soap_login_disabled = bool(value)

    def expire_sessions(self):
        """Invalidate every session: the next REST call gets 401 INVALID_SESSION_ID."""
        with self._lock:
            self._sessions.clear()

    def exhaust_daily_limit(self):
        """Spend the daily API allowance: REST calls get 403 REQUEST_LIMIT_EXCEEDED."""
        with self._lock:
            self._used = self._max

    def set_daily_limit(self, maximum, used=None):
        """Set the daily API maximum (and optionally the calls already used)."""
        with self._lock:
            self._max = maximum
            if used is not None:
                self._used = used

    def api_usage(self):
        """(used, max) of the daily API allowance, as Sforce-Limit-Info reports it."""
        with self._lock:
            return self._used, self._max

    def reset_counters(self):
        """Empty the request log and counters and give back the daily allowance."""
        with self._lock:
            self.request_log.clear()
            self.api_calls.clear()
            self._used = 0

    def reset(self):
        """Healthy again: no faults, fresh counters, default daily limit, default org flags, no
        validation rules, every object createable (sessions are kept)."""
        self.faults.clear()
        self.oauth.reset()
        self.clear_validation_rules()
        self.rest.create_denied.clear()
        self.set_daily_limit(self.default_daily_limit, used=0)
        self.reset_counters()

    def add_record(self, object_name, fields):
        """Insert a record into the org while running; returns its Id."""
        return self.org.add_record(object_name, fields)

    # ---- what the org allows: validation rules and object permissions -------------------

    def add_validation_rule(self, object_name, error_message, condition, field=None):
        """Add an org validation rule: a create or update of `object_name` whose fields make
        `condition(fields)` true answers 400 FIELD_CUSTOM_VALIDATION_EXCEPTION `error_message`
        (with fields [field], or [] when no field is given)."""
        self.rest.add_validation_rule(object_name, error_message, condition, field)

    def clear_validation_rules(self):
        """Remove every validation rule added with add_validation_rule."""
        self.rest.clear_validation_rules()

    def deny_create(self, object_name):
        """Take create permission on an object from the login user: describe says createable
        false, a create answers 400 INSUFFICIENT_ACCESS_OR_READONLY."""
        self.rest.deny_create(object_name)

    def allow_create(self, object_name):
        """Give create permission on an object back (undoes deny_create)."""
        self.rest.allow_create(object_name)

    # ---- changing the org while clients sync it (thread-safe; see Org) -------------------

    def edit_record(self, record_id, **fields):
        """Edit a live record as a user would (edit_record(id, Phone="03-...")): LastModifiedDate
        and SystemModstamp move to now. Returns the record."""
        return self.org.edit(record_id, **fields)

    def delete_record(self, record_id):
        """Delete a record into the recycle bin (an account with its contacts); returns the Ids."""
        return self.org.recycle(record_id)

    def undelete_record(self, record_id):
        """Restore a record (and what was deleted with it) from the recycle bin; returns the Ids."""
        return self.org.undelete(record_id)

    def convert_lead(self, lead_id, account_id=None):
        """Convert a Lead into a Contact (and an Account unless given): (account Id, contact Id)."""
        return self.org.convert_lead(lead_id, account_id)

    def advance_clock(self, seconds):
        """Move the org's clock forward: timestamps written later are that much later."""
        self.org.advance_clock(seconds)

    @property
    def bulk_job_seconds(self):
        """How long a Bulk API 2.0 query job takes to reach JobComplete."""
        return self.rest.jobs.seconds

    @bulk_job_seconds.setter
    def bulk_job_seconds(self, seconds):
        self.rest.jobs.seconds = float(seconds)

    def calls(self, kind=None):
        """Entries of the request log, optionally only those of one kind."""
        with self._lock:
            return [e for e in self.request_log if kind is None or e["kind"] == kind]

    # ---- used by the handler --------------------------------------------------------------

    def _record(self, entry):
        with self._lock:
            self.request_log.append(entry)
            self.api_calls[entry["kind"]] += 1

    def _spend(self):
        with self._lock:
            if self._used >= self._max:
                return False, self._used, self._max
            self._used += 1
            return True, self._used, self._max

    def _new_session(self, user_id, password_expired):
        sid = f"{self.org.org_id[:15]}!AQ{secrets.token_urlsafe(72)}"
        with self._lock:
            self._sessions[sid] = _Session(user_id, time.monotonic(), password_expired)
        return sid

    def _drop_sessions(self, session_ids):
        with self._lock:
            for sid in session_ids:
                self._sessions.pop(sid, None)

    def _session(self, authorization):
        m = re.match(r"^(?:Bearer|OAuth)\s+(\S+)$", authorization or "")
        if not m:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(m.group(1))
            if session is None or now - session.last_used > self.session_seconds:
                self._sessions.pop(m.group(1), None)
                return None
            session.last_used = now
            return session

    def _login(self, body, version):
        """(status, xml bytes) for a SOAP login body."""
        try:
            request = soap.parse_login(body)
        except soap.SoapParseError as exc:
            return 500, soap.client_fault(str(exc))
        code = (self.faults.login_fault or (oauth.SOAP_LOGIN_DISABLED if self.soap_login_disabled else None)
                or self._credentials_fault(request))
        if code:
            return 500, soap.login_fault(code)
        user = self.org.login_user()
        expired = bool(self.faults.password_expired)
        sid = self._new_session(user["Id"], expired)
        org15 = self.org.org_id[:15]
        return 200, soap.login_response(
            sid, f"{self.login_url}/services/Soap/u/{version}/{org15}",
            f"{self.login_url}/services/Soap/m/{version}/{org15}", expired, user, self.org,
            self.session_seconds)

    def _credentials_fault(self, request):
        if request.username.lower() != self.username.lower():
            return "INVALID_LOGIN"
        if secrets.compare_digest(request.password.encode(), (self.password + self.security_token).encode()):
            return None
        if secrets.compare_digest(request.password.encode(), self.password.encode()):
            return "LOGIN_MUST_USE_SECURITY_TOKEN" if self.require_token else None
        return "INVALID_LOGIN"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address, handler, emulator, context):
        self.emulator, self.context = emulator, context
        super().__init__(address, handler)

    def finish_request(self, request, client_address):
        # TLS handshake here, in the connection's own thread, so one slow client cannot stall accept().
        request.settimeout(30)
        # Headers and body leave in one segment anyway, but Nagle + delayed ACK would add 40 ms.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            context = self.emulator.tls_context_for_new_connection(self.context)
            conn = context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except _Reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def handle_error(self, request, client_address):
        """Client disconnects are normal; stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sfdcedge"
    sys_version = ""
    timeout = 120
    wbufsize = -1             # buffered: a response goes out in one write, flushed per request

    def log_message(self, format, *args):
        """The request log is emu.request_log; no stderr noise."""

    def do_GET(self):
        self._serve()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = do_GET

    # ---- one request ----------------------------------------------------------------------

    def _serve(self):
        emu = self.server.emulator
        started = time.perf_counter()
        path, params = split_url(self.path)
        kind = oauth.classify(path) or record_page.classify(path) or classify(self.command, path, params)
        entry = self._entry = {"time": datetime.now(timezone.utc).isoformat(), "method": self.command,
                               "path": path, "kind": kind, "status": None}
        body = self._read_body()
        self._answer_faults = {}
        emu._record(entry)
        active = emu.faults.for_request(kind)
        emu.faults.wait_while_hung(active)
        if active.get("reset"):
            entry["status"] = "reset"
            self.close_connection = True
            raise _Reset()
        withheld = active.get("drop_after") or active.get("late")
        if withheld:
            # The work is done in full; only the answer is lost or late: keep it aside.
            self.wfile, answer = io.BytesIO(), self.wfile
        try:
            status = self._dispatch(emu, kind, path, params, body, active, entry)
        except (OSError, ssl.SSLError):
            raise
        except Exception as exc:            # an emulator bug must look like Salesforce's 500, not a hang-up
            entry["error"] = repr(exc)
            status = self._json(500, _SERVER_ERRORS[500])
        entry["status"] = status
        entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        if withheld:
            self._answer_late_or_never(emu, active, entry, answer)

    def _answer_late_or_never(self, emu, active, entry, answer):
        held, self.wfile = self.wfile.getvalue(), answer
        if active.get("drop_after"):
            entry["dropped"] = True
            self.close_connection = True
            raise _Reset()
        entry["late"] = active["late"]
        emu.faults.hold_answer(active["late"])
        self.wfile.write(held)

    def _dispatch(self, emu, kind, path, params, body, active, entry):
        if len(self.path.encode()) > MAX_URI_BYTES:
            return self._send(414, b"<html><body>414 URI Too Long</body></html>", "text/html")
        header_bytes = sum(len(k) + len(v) + 4 for k, v in self.headers.items())
        if len(self.path.encode()) + header_bytes > MAX_URI_BYTES:
            return self._send(431, b"<html><body>431 Request Header Fields Too Large</body></html>",
                              "text/html")
        if kind == "login":
            return self._soap(emu, path, body)
        if kind.startswith("oauth_"):
            status, content_type, data, headers = emu.oauth.handle(
                self.command, path, params, body, self.headers.get("Content-Type", ""))
            return self._send(status, data, content_type, headers)
        if kind == "record_page":
            status, content_type, data, headers = record_page.handle(emu.org, self.command, path)
            return self._send(status, data, content_type, headers)
        if kind == "versions":
            return self._json(200, _versions())
        # from here on REST answers: the faults that spoil an answer on its way apply
        self._answer_faults = active
        if active.get("http_status"):
            status = int(active["http_status"])
            return self._json(status, _SERVER_ERRORS.get(status, _SERVER_ERRORS[500]))
        return self._rest(emu, path, params, body, entry)

    def _soap(self, emu, path, body):
        m = _SOAP_PATH.match(path)
        if not m or self.command != "POST":
            return self._send(404, b"<html><body>404 Not Found</body></html>", "text/html")
        status, xml = emu._login(body, m.group(1))
        return self._send(status, xml, "text/xml;charset=UTF-8")

    def _rest(self, emu, path, params, body, entry):
        session = emu._session(self.headers.get("Authorization"))
        if session is None:
            return self._json(401, _INVALID_SESSION)
        if session.password_expired:
            return self._json(401, _EXPIRED_PASSWORD)
        allowed, used, maximum = emu._spend()
        usage = {"Sforce-Limit-Info": f"api-usage={used}/{maximum}"}
        if not allowed:
            return self._json(403, _LIMIT_EXCEEDED, usage)
        headers = {k.lower(): v for k, v in self.headers.items()}
        call = Call(self.command, path, params, body, session.user_id, headers)
        status, out, extra = emu.rest.handle(call)
        entry.update(call.log)
        entry.pop("created", None)
        if isinstance(out, bulk.Raw):
            return self._send(status, out.data, out.content_type, {**extra, **usage})
        return self._json(status, out, {**extra, **usage})

    # ---- I/O ------------------------------------------------------------------------------

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self):
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _json(self, status, body, headers=None):
        if status == 204 or body is None:
            return self._send(status, b"", None, headers)
        pretty = self.headers.get("X-PrettyPrint") == "1"
        data = json.dumps(body, ensure_ascii=False, indent=2 if pretty else None).encode("utf-8")
        return self._send(status, data, _JSON, headers)

    def _send(self, status, data, content_type, headers=None):
        # Logged before the bytes leave: a client reading the log after its answer sees the status.
        self._entry["status"] = status
        status, data, content_type, length, padding = self._spoil(status, data, content_type)
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)
            self._pad(padding)
        return status

    def _spoil(self, status, data, content_type):
        """(status, bytes, content type, Content-Length, padding) after the answer faults."""
        faults = getattr(self, "_answer_faults", None) or {}
        length = len(data)
        if faults.get("content_type"):
            content_type = faults["content_type"]
            if content_type.split(";")[0].strip().lower() == "text/html":
                status, data = 200, _HTML_PAGE
                length = len(data)
        body_fault = faults.get("body")
        if body_fault and data:
            self._entry["body"] = body_fault
            if body_fault == "malformed":
                data = _UNQUOTED_KEY.sub(rb"\1:", data)
            elif body_fault == "truncated":
                data = data[: len(data) // 2]
            else:  # short: the whole length promised, half sent, then the connection closes
                self.close_connection = True
                length, data = len(data), data[: len(data) // 2]
                return status, data, content_type, length, 0
            length = len(data)
        padding = max(0, int(faults.get("huge") or 0) - length) if data else 0
        return status, data, content_type, length + padding, padding

    def _pad(self, padding):
        """Write ``padding`` spaces after a JSON answer (the huge fault), a megabyte at a time."""
        chunk = b" " * min(padding, _PAD_CHUNK)
        while padding > 0:
            piece = chunk[:padding]
            self.wfile.write(piece)
            self.wfile.flush()
            padding -= len(piece)


def _versions():
    return [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in SUPPORTED_VERSIONS]
