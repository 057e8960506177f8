"""OAuth 2.0 on the emulator: /services/oauth2/authorize, /token and /revoke, as Salesforce answers.

- authorize (web-server flow): an HTML login page, then a consent page ("Allow" / "Deny"), then a
  redirect to the registered callback with ``code`` and ``state`` (or ``error=access_denied``).
  A redirect_uri that is not the registered callback gets an error page and no redirect.
- token: ``authorization_code`` (PKCE S256 checked, codes single-use and short-lived),
  ``refresh_token`` and ``client_credentials`` (My Domain only, with a run-as user).
- revoke: a refresh token (and every access token issued from it) or one access token.

Access tokens are ordinary emulator sessions, so REST accepts them as Bearer tokens exactly like
SOAP session ids (401 INVALID_SESSION_ID once expired or revoked).

Salesforce's token errors are 400 ``{"error": ..., "error_description": ...}``; the texts below
are those Salesforce sends where public reports show them, and plain descriptions elsewhere.
"""
import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

DEMO_CLIENT_ID = "3MVG9sfcti.emulator.demo.consumer.key"
DEMO_CLIENT_SECRET = "DEMOSECRET0123456789ABCDEF0123456789ABCDEF"
DEMO_CALLBACK = "http://127.0.0.1:5000/settings/oauth/callback"
CODE_SECONDS = 15 * 60          # Salesforce: an authorization code is valid for 15 minutes
SOAP_LOGIN_DISABLED = "INVALID_OPERATION"

ERRORS = {
    "invalid_client_id": "client identifier invalid",
    "invalid_client": "invalid client credentials",
    "redirect_uri_mismatch": "redirect_uri must match configuration",
    "unsupported_grant_type": "grant type not supported",
    "unsupported_response_type": "response type not supported",
    "invalid_request": "invalid code verifier",
    "invalid_grant": "authentication failure",
    "unsupported_token_type": "this token type is not supported",
}


class OAuthFailure(Exception):
    """An OAuth error answer: 400 with Salesforce's JSON body."""

    def __init__(self, error, description=None, status=400):
        super().__init__(error)
        self.error, self.status = error, status
        self.description = description or ERRORS.get(error, error)

    def body(self):
        """The JSON body Salesforce sends."""
        return {"error": self.error, "error_description": self.description}


@dataclass
class OAuthApp:
    """A connected app (or external client app) registered in the org."""

    client_id: str
    client_secret: str
    callback_url: str
    run_as: str | None = None           # client credentials run-as user Id; None: flow disabled
    scopes: str = "api refresh_token"


@dataclass
class _Grant:
    """What an authorization code or a refresh token stands for."""

    client_id: str
    user_id: str
    scope: str
    redirect_uri: str = ""
    challenge: str | None = None
    expires: float = 0.0
    access_tokens: set = field(default_factory=set)


def s256(verifier):
    """The PKCE S256 code challenge of a verifier (base64url, no padding)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OAuthServer:
    """The emulator's authorization server: apps, codes, refresh tokens, the three endpoints."""

    def __init__(self, emulator):
        self.emu = emulator
        self.apps = {}
        self._codes, self._refresh, self._access = {}, {}, {}
        self._pending = {}
        self._lock = threading.Lock()
        self.soap_login_disabled = False
        self.my_domain = True
        self.rotate_refresh_tokens = False   # the connected app's "refresh token rotation"
        self._register_demo_app()

    def _register_demo_app(self):
        with self._lock:
            self.apps.clear()
        self.register_app(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_CALLBACK,
                          run_as=self.emu.org.login_user()["Id"])

    # ---- configuration and test controls --------------------------------------------------

    def register_app(self, client_id, client_secret, callback_url, run_as=None):
        """Register (or replace) a connected app; returns it."""
        app = OAuthApp(client_id, client_secret, callback_url, run_as)
        with self._lock:
            self.apps[client_id] = app
        return app

    def reset(self):
        """Org flags back to their defaults and only the demo app registered, with its default
        callback, so one test's registration cannot leak into the next (tokens are kept)."""
        self.soap_login_disabled = False
        self.my_domain = True
        self.rotate_refresh_tokens = False
        self._register_demo_app()

    def expire_access_tokens(self):
        """Every OAuth access token becomes invalid (refresh tokens keep working)."""
        with self._lock:
            tokens = list(self._access)
            self._access.clear()
            for grant in self._refresh.values():
                grant.access_tokens.clear()
        self.emu._drop_sessions(tokens)

    def revoke_refresh_tokens(self):
        """Every refresh token (and its access tokens) is revoked, as an admin would in Setup."""
        with self._lock:
            grants = list(self._refresh.values())
            self._refresh.clear()
        for grant in grants:
            self._drop_access(grant)

    def refresh_tokens(self):
        """The refresh tokens currently valid."""
        with self._lock:
            return list(self._refresh)

    # ---- dispatch ---------------------------------------------------------------------------

    def handle(self, method, path, params, body, content_type=""):
        """(status, content type, bytes, headers) for a request under /services/oauth2/."""
        form = dict(params)
        if method == "POST" and "json" not in content_type:
            form.update({k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"),
                                                       keep_blank_values=True).items()})
        endpoint = path.rstrip("/").rsplit("/", 1)[-1]
        try:
            if endpoint == "authorize":
                return self._authorize(method, form)
            if endpoint == "token" and method == "POST":
                return _json(200, self._token(form))
            if endpoint == "revoke" and method in ("POST", "GET"):
                self._revoke(form.get("token", ""))
                return 200, None, b"", {}
        except OAuthFailure as exc:
            return _json(exc.status, exc.body())
        return 404, "text/html", b"<html><body>404 Not Found</body></html>", {}

    # ---- authorize ----------------------------------------------------------------------------

    def _authorize(self, method, form):
        step = form.get("step") if method == "POST" else None
        if step in ("login", "consent"):
            return self._authorize_step(step, form)
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            return _error_page(_error_text("invalid_client_id"))
        if form.get("redirect_uri") != app.callback_url:
            return _error_page(_error_text("redirect_uri_mismatch"))
        if form.get("response_type") != "code":
            return _redirect(app.callback_url, error="unsupported_response_type",
                             error_description=ERRORS["unsupported_response_type"],
                             state=form.get("state"))
        ticket = secrets.token_urlsafe(24)
        with self._lock:
            self._pending[ticket] = {k: form.get(k) for k in
                                     ("client_id", "redirect_uri", "state", "code_challenge",
                                      "code_challenge_method", "scope")}
        return _page(200, "Login | Salesforce", _login_form(ticket, self.emu.username))

    def _authorize_step(self, step, form):
        with self._lock:
            request = self._pending.get(form.get("ticket", ""))
        if request is None:
            return _error_page("This sign-in has expired. Start again from the application.")
        if step == "login":
            return self._login_step(form, request)
        return self._consent_step(form, request)

    def _login_step(self, form, request):
        if not self._password_ok(form.get("username", ""), form.get("password", "")):
            return _page(200, "Login | Salesforce", _login_form(
                form["ticket"], form.get("username", ""),
                "Please check your username and password. If you still can't log in, contact your "
                "Salesforce administrator."))
        with self._lock:
            request["user_id"] = self.emu.org.login_user()["Id"]
        return _page(200, "Allow Access? | Salesforce", _consent_form(form["ticket"], request))

    def _consent_step(self, form, request):
        with self._lock:
            self._pending.pop(form["ticket"], None)
        if "user_id" not in request:
            return _error_page("Log in first.")
        if form.get("decision") != "allow":
            return _redirect(request["redirect_uri"], error="access_denied",
                             error_description="end-user denied authorization", state=request.get("state"))
        code = "aPrx" + secrets.token_urlsafe(48)
        with self._lock:
            self._codes[code] = _Grant(request["client_id"], request["user_id"],
                                       request.get("scope") or "api refresh_token",
                                       request["redirect_uri"], request.get("code_challenge"),
                                       time.monotonic() + CODE_SECONDS)
        return _redirect(request["redirect_uri"], code=code, state=request.get("state"))

    def _password_ok(self, username, password):
        # The browser login takes the password alone: the security token is an API-only thing.
        return (username.lower() == self.emu.username.lower()
                and secrets.compare_digest(password.encode(), self.emu.password.encode()))

    # ---- token --------------------------------------------------------------------------------

    def _token(self, form):
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            return self._code_grant(form)
        if grant_type == "refresh_token":
            return self._refresh_grant(form)
        if grant_type == "client_credentials":
            return self._client_credentials_grant(form)
        raise OAuthFailure("unsupported_grant_type")

    def _client(self, form, secret_required):
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            raise OAuthFailure("invalid_client_id")
        secret = form.get("client_secret")
        if (secret_required or secret) and not secrets.compare_digest(
                (secret or "").encode(), app.client_secret.encode()):
            raise OAuthFailure("invalid_client")
        return app

    def _code_grant(self, form):
        app = self._client(form, secret_required=False)
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)   # single use, even when it fails
        if grant is None or grant.client_id != app.client_id or grant.expires < time.monotonic():
            raise OAuthFailure("invalid_grant", "invalid authorization code")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthFailure("redirect_uri_mismatch")
        self._check_verifier(grant, form.get("code_verifier"))
        refresh = None
        if "refresh_token" in grant.scope.split():
            refresh = "5Aep" + secrets.token_urlsafe(60)
            with self._lock:
                self._refresh[refresh] = grant
        return self._issue(app, grant, refresh)

    @staticmethod
    def _check_verifier(grant, verifier):
        if not grant.challenge:
            return
        if not verifier:
            raise OAuthFailure("invalid_grant", "code verifier is required")
        if not secrets.compare_digest(s256(verifier), grant.challenge):
            raise OAuthFailure("invalid_request", "invalid code verifier")

    def _refresh_grant(self, form):
        app = self._client(form, secret_required=False)
        token = form.get("refresh_token", "")
        with self._lock:
            grant = self._refresh.get(token)
            if grant is None or grant.client_id != app.client_id:
                raise OAuthFailure("invalid_grant", "expired access/refresh token")
            rotated = None
            if self.rotate_refresh_tokens:   # the used token dies; a new one stands for the grant
                rotated = "5Aep" + secrets.token_urlsafe(60)
                self._refresh[rotated] = self._refresh.pop(token)
        return self._issue(app, grant, rotated)

    def _client_credentials_grant(self, form):
        if not self.my_domain:
            raise OAuthFailure("invalid_grant", "request not supported on this domain")
        app = self._client(form, secret_required=True)
        if not app.run_as:
            raise OAuthFailure("invalid_grant", "no client credentials user enabled")
        return self._issue(app, _Grant(app.client_id, app.run_as, "api"), None)

    def _issue(self, app, grant, refresh):
        """The token response; the access token is a new emulator session."""
        access = self.emu._new_session(grant.user_id, False)
        with self._lock:
            self._access[access] = grant
            grant.access_tokens.add(access)
        issued_at = str(int(time.time() * 1000))
        identity = f"{self.emu.login_url}/id/{self.emu.org.org_id}/{grant.user_id}"
        signature = base64.b64encode(hmac.new(app.client_secret.encode(), (identity + issued_at).encode(),
                                              hashlib.sha256).digest()).decode()
        body = {"access_token": access, "signature": signature, "scope": grant.scope,
                "instance_url": self.emu.login_url, "id": identity, "token_type": "Bearer",
                "issued_at": issued_at}
        if refresh:
            body["refresh_token"] = refresh
        return body

    # ---- revoke -------------------------------------------------------------------------------

    def _revoke(self, token):
        with self._lock:
            grant = self._refresh.pop(token, None)
            single = None if grant else self._access.pop(token, None)
        if grant is not None:
            self._drop_access(grant)
        elif single is not None:
            single.access_tokens.discard(token)
            self.emu._drop_sessions([token])
        else:
            raise OAuthFailure("unsupported_token_type")

    def _drop_access(self, grant):
        with self._lock:
            tokens = list(grant.access_tokens)
            grant.access_tokens.clear()
            for token in tokens:
                self._access.pop(token, None)
        self.emu._drop_sessions(tokens)


# ---------------------------------------------------------------------------------------------
# answers
# ---------------------------------------------------------------------------------------------

def _json(status, body):
    return status, "application/json;charset=UTF-8", json.dumps(body).encode(), {
        "Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"}


def _redirect(uri, **params):
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if urlsplit(uri).query else "?"
    return 302, "text/html", b"", {"Location": f"{uri}{separator}{query}"}


def _error_text(error):
    return f"error={error}&error_description={ERRORS[error]}"


def _page(status, title, content):
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title></head><body><main><h1>{html.escape(title)}</h1>{content}</main></body></html>")
    return status, "text/html;charset=UTF-8", page.encode("utf-8"), {}


def _error_page(text):
    return _page(400, "OAuth Error", f"<p id='error' role='alert'>{html.escape(text)}</p>")


def _login_form(ticket, username, error=None):
    error_html = f"<p id='error' role='alert'>{html.escape(error)}</p>" if error else ""
    return (f"{error_html}<form method='post' action='/services/oauth2/authorize'>"
            f"<input type='hidden' name='step' value='login'>"
            f"<input type='hidden' name='ticket' value='{html.escape(ticket)}'>"
            f"<label>Username <input id='username' name='username' value='{html.escape(username)}'></label>"
            f"<label>Password <input id='password' name='password' type='password'></label>"
            f"<button id='Login' type='submit'>Log In</button></form>")


def _consent_form(ticket, request):
    scope = html.escape(request.get("scope") or "api refresh_token")
    return (f"<p>The app <b id='app'>{html.escape(request['client_id'])}</b> is asking to access your "
            f"Salesforce data (scopes: {scope}).</p>"
            f"<form method='post' action='/services/oauth2/authorize'>"
            f"<input type='hidden' name='step' value='consent'>"
            f"<input type='hidden' name='ticket' value='{html.escape(ticket)}'>"
            f"<button id='oaapprove' name='decision' value='allow' type='submit'>Allow</button>"
            f"<button id='oadeny' name='decision' value='deny' type='submit'>Deny</button></form>")


def classify(path):
    """The request kind of an OAuth path ("oauth_authorize", "oauth_token", ...), or None."""
    if not path.startswith("/services/oauth2/"):
        return None
    return "oauth_" + path.rstrip("/").rsplit("/", 1)[-1]
