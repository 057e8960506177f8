"""Run-time fault injection: what the emulator does wrong, on purpose, until told to stop."""
import threading
import time

# Login faults the emulator can force, with Salesforce's fault element and message.
LOGIN_FAULTS = {
    "INVALID_LOGIN": ("LoginFault", "Invalid username, password, security token; or user locked out."),
    "LOGIN_MUST_USE_SECURITY_TOKEN": (
        "LoginFault",
        "Invalid username, password, security token; or user locked out. Are you at a new location? "
        "When accessing Salesforce--either via a desktop client or the API--from outside of your "
        "company’s trusted networks, you must add a security token to your password to log in. To get "
        "your new security token, log in to Salesforce. From your personal settings, enter Reset My "
        "Security Token in the Quick Find box, then select Reset My Security Token."),
    "API_DISABLED_FOR_ORG": ("UnexpectedErrorFault", "API is not enabled for this Organization or Partner"),
    "API_CURRENTLY_DISABLED": ("UnexpectedErrorFault", "API is disabled for this User"),
    "REQUEST_LIMIT_EXCEEDED": ("UnexpectedErrorFault",
                               "ConcurrentRequests (Concurrent API Requests) Limit exceeded."),
    "INSUFFICIENT_ACCESS": ("UnexpectedErrorFault", "user does not have the Use Any API Auth permission"),
    # Orgs created from Winter '26 have SOAP login() off; Salesforce does not publish the fault
    # text, so this message is an assumption (the code is the one its API uses for a disabled call).
    "INVALID_OPERATION": ("UnexpectedErrorFault",
                          "SOAP API login() is disabled by default in this org. Use OAuth 2.0, or enable "
                          "SOAP API login() in Setup > User Interface."),
}
_REQUEST_FAULTS = ("latency", "hang", "http_status", "reset", "drop_after", "late", "body",
                   "content_type", "huge")
# What `body` does to a REST answer (see Faults).
BODY_FAULTS = ("malformed", "truncated", "short")


class Faults:
    """Faults applied to incoming requests; set attributes (or call set()) at run time.

    latency: seconds added to each request. hang: requests block until cleared (or the emulator
    stops). http_status: 500 or 503 answered to REST requests. reset: the connection is reset
    (RST) instead of answered. drop_after: the request is handled in full (records created, the
    API call counted), then the connection is reset instead of answered. late: seconds the answer
    of a fully handled request is held back (a client with a shorter read timeout gives up
    although the work is done). password_expired: logins succeed with passwordExpired=true and
    REST answers INVALID_OPERATION_WITH_EXPIRED_PASSWORD. login_fault: a code of LOGIN_FAULTS
    every login fails with. kinds: request kinds the request faults apply to (None: all).
    times: how many requests latency/http_status/reset/drop_after/late/body/content_type/huge
    hit before clearing themselves (None: forever); a hang lasts until cleared.

    Answers gone wrong on the way (REST answers only; login is unaffected): body "malformed"
    (JSON keys unquoted, as a JavaScript literal), "truncated" (the JSON cut in half, framed
    correctly) or "short" (Content-Length promises the whole answer, half arrives, the connection
    closes). content_type: REST answers carry this Content-Type; "text/html" answers 200 with an
    HTML page instead of JSON (a proxy's block page or a maintenance page). huge: the JSON answer
    padded with spaces to this many bytes (still valid JSON). untrusted_cert: new connections
    get a certificate of another CA, which clients of ``ca_path`` do not trust (connection-wide:
    kinds and times do not apply).
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._stopping = False
        self._clears = 0                     # bumped by clear(): releases answers held by `late`
        self.clear()

    def clear(self):
        """Back to a healthy emulator (releases hung requests)."""
        with self._cond:
            self.latency = 0.0
            self._hang = False
            self.http_status = None
            self.reset = False
            self.drop_after = False
            self.late = 0.0
            self._body = None
            self.content_type = None
            self.huge = 0
            self.untrusted_cert = False
            self.password_expired = False
            self._login_fault = None
            self.kinds = None
            self.times = None
            self._clears += 1
            self._cond.notify_all()

    def set(self, **kwargs):
        """Set several faults at once, e.g. set(http_status=503, kinds={"query"}, times=1)."""
        for name, value in kwargs.items():
            if not hasattr(self, name) or name.startswith("_"):
                raise AttributeError(f"Unknown fault: {name}")
            setattr(self, name, value)
        return self

    @property
    def hang(self):
        """True while requests block."""
        return self._hang

    @hang.setter
    def hang(self, value):
        with self._cond:
            self._hang = bool(value)
            self._cond.notify_all()

    @property
    def body(self):
        """What happens to REST answers' bodies: None or one of BODY_FAULTS."""
        return self._body

    @body.setter
    def body(self, value):
        if value is not None and value not in BODY_FAULTS:
            raise ValueError(f"Unknown body fault {value!r}; known: {', '.join(BODY_FAULTS)}")
        self._body = value

    @property
    def login_fault(self):
        """The code every login fails with, or None."""
        return self._login_fault

    @login_fault.setter
    def login_fault(self, code):
        if code is not None and code not in LOGIN_FAULTS:
            raise ValueError(f"Unknown login fault {code!r}; known: {', '.join(LOGIN_FAULTS)}")
        self._login_fault = code

    def stop(self):
        """Release every hung request for good (the emulator is stopping)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def restart(self):
        """Allow hangs again after a stop."""
        with self._cond:
            self._stopping = False

    def for_request(self, kind):
        """The request faults that hit a request of `kind`: dict of latency/hang/http_status/reset/
        drop_after/late/body/content_type/huge."""
        with self._cond:
            if self.kinds is not None and kind not in self.kinds:
                return {}
            active = {name: getattr(self, name) for name in _REQUEST_FAULTS if getattr(self, name)}
            if active and self.times is not None:
                self.times -= 1
                if self.times <= 0:
                    self.latency, self.http_status, self.reset = 0.0, None, False
                    self.drop_after, self.late = False, 0.0
                    self._body, self.content_type, self.huge = None, None, 0
                    self.times = None
            return active

    def wait_while_hung(self, active):
        """Sleep the latency, then block while a hang applies (until cleared or stopped)."""
        if active.get("latency"):
            time.sleep(active["latency"])
        if active.get("hang"):
            with self._cond:
                while self._hang and not self._stopping:
                    self._cond.wait(0.5)

    def hold_answer(self, seconds):
        """Sleep `seconds` before a late answer goes out; clear() or stop releases it early."""
        deadline = time.monotonic() + seconds
        with self._cond:
            clears = self._clears
            while not self._stopping and self._clears == clears:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(min(left, 0.5))
