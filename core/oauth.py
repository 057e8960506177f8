"""Salesforce OAuth 2.0: the web-server flow with PKCE, refresh, client credentials and revoke.

Salesforce retires SOAP ``login()`` in Summer '27 (and new orgs have it off), so this is the way
that lasts. Endpoints, on the login host of the settings (login.salesforce.com,
test.salesforce.com for a sandbox, or the My Domain / emulator URL):

- ``GET  /services/oauth2/authorize?response_type=code&client_id&redirect_uri&state&scope
  &code_challenge&code_challenge_method=S256`` (the admin's browser goes there);
- ``POST /services/oauth2/token`` with ``grant_type`` authorization_code (+ ``code_verifier``),
  refresh_token or client_credentials (My Domain only);
- ``POST /services/oauth2/revoke`` with ``token``.

Token errors are HTTP 400 with ``{"error": ..., "error_description": ...}``; they leave as
:class:`OAuthError` whose ``.code`` is a catalogue code (core/errors.py). Network failures leave
as the ``requests`` exceptions they are (core/salesforce translates them). No Flask here.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
import urllib.parse

import requests

from core import errors

SCOPES = "api refresh_token"
CALLBACK_PATH = "/settings/oauth/callback"


# ---------------------------------------------------------------------------------------------
# exceptions: the docstring is the message, ``.code`` the catalogue code
# ---------------------------------------------------------------------------------------------

class OAuthError(Exception):
    "Salesforce refused the OAuth request."

    code = "OAUTH_ERROR"
    integration = "salesforce"

    def __init__(self, error: str = "", description: str = "", code: str | None = None):
        self.error, self.description = error, description
        self.code = code or type(self).code
        detail = f"{error}: {description}" if error else description
        super().__init__(f"{self.__doc__} [{self.code}] {detail}".strip())


class InvalidGrant(OAuthError):
    "The authorization code or refresh token is invalid, expired or revoked."

    code = "OAUTH_INVALID_GRANT"


class InvalidClient(OAuthError):
    "Salesforce rejected the consumer key or secret."

    code = "OAUTH_INVALID_CLIENT"


class RedirectUriMismatch(OAuthError):
    "The callback URL does not match the connected app's."

    code = "OAUTH_REDIRECT_URI_MISMATCH"


class StateMismatch(OAuthError):
    "The answer from Salesforce does not belong to a sign-in this admin started."

    code = "OAUTH_STATE_MISMATCH"


_BY_CODE = {cls.code: cls for cls in (InvalidGrant, InvalidClient, RedirectUriMismatch, StateMismatch)}


def error_for(error: str, description: str = "") -> OAuthError:
    """The named exception for Salesforce's ``error`` / ``error_description``."""
    code = errors.normalize_code(error) if error else "OAUTH_ERROR"
    if code == "UNKNOWN" or not code.startswith("OAUTH_"):
        code = "OAUTH_ERROR"
    return _BY_CODE.get(code, OAuthError)(error, description, code)


# ---------------------------------------------------------------------------------------------
# PKCE and the authorize URL
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Pkce:
    """A PKCE pair: the verifier kept by the admin session, the challenge sent to Salesforce."""

    verifier: str
    challenge: str


def code_challenge(verifier: str) -> str:
    """The S256 challenge of ``verifier``: base64url(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_pkce() -> Pkce:
    """A fresh verifier (86 characters of base64url, within RFC 7636's 43-128) and its challenge."""
    verifier = secrets.token_urlsafe(64)
    return Pkce(verifier, code_challenge(verifier))


def new_state() -> str:
    """An unguessable ``state`` value binding the callback to the sign-in that started it."""
    return secrets.token_urlsafe(32)


def authorize_url(settings, redirect_uri: str, state: str, challenge: str, scope: str = SCOPES) -> str:
    """The Salesforce authorize URL the admin's browser is sent to (login host of the settings)."""
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": settings.oauth_client_id, "redirect_uri": redirect_uri,
        "state": state, "scope": scope, "code_challenge": challenge, "code_challenge_method": "S256",
    })
    return f"{settings.login_host()}/services/oauth2/authorize?{query}"


def callback_url(settings) -> str:
    """The callback URL to register in the connected app: the admin base URL + CALLBACK_PATH."""
    return settings.admin_base_url.rstrip("/") + CALLBACK_PATH


# ---------------------------------------------------------------------------------------------
# the token endpoint
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Token:
    """A token answer. ``id`` is the identity URL ``.../id/<org id>/<user id>``."""

    access_token: str = dataclasses.field(repr=False)
    instance_url: str
    id: str = ""
    issued_at: str = ""
    scope: str = ""
    token_type: str = "Bearer"
    signature: str = dataclasses.field(default="", repr=False)
    refresh_token: str = dataclasses.field(default="", repr=False)

    @property
    def org_id(self) -> str:
        """The org Id from the identity URL."""
        return self._id_part(-2)

    @property
    def user_id(self) -> str:
        """The user Id from the identity URL."""
        return self._id_part(-1)

    def _id_part(self, index: int) -> str:
        parts = urllib.parse.urlsplit(self.id).path.rstrip("/").split("/")
        return parts[index] if len(parts) >= 3 and parts[-3] == "id" else ""


def _token_request(settings, session: requests.Session, form: dict) -> Token:
    """POST the token endpoint; the Token, or the named OAuthError."""
    response = session.post(f"{settings.login_host()}/services/oauth2/token", data=form,
                            headers={"Accept": "application/json"})
    body = _json(response)
    if response.status_code != 200 or "access_token" not in body:
        raise _refusal(response, body)
    fields = {f.name for f in dataclasses.fields(Token)}
    return Token(**{k: str(v) for k, v in body.items() if k in fields})


def _refusal(response: requests.Response, body: dict) -> OAuthError:
    return error_for(str(body.get("error") or f"http_{response.status_code}"),
                     errors.clean_text(str(body.get("error_description") or ""), 300))


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _client(settings) -> dict:
    form = {"client_id": settings.oauth_client_id}
    if settings.oauth_client_secret:
        form["client_secret"] = settings.oauth_client_secret
    return form


def exchange_code(settings, session, code: str, redirect_uri: str, verifier: str) -> Token:
    """Trade an authorization code (single use) for tokens.

    :raises InvalidGrant: the code is unknown, used or expired (or the verifier is missing)
    :raises OAuthError: e.g. ``invalid_request`` for a wrong PKCE verifier
    """
    return _token_request(settings, session, {"grant_type": "authorization_code", "code": code,
                                              "redirect_uri": redirect_uri, "code_verifier": verifier,
                                              **_client(settings)})


def refresh(settings, session) -> Token:
    """A new access token from the stored refresh token.

    :raises InvalidGrant: the refresh token was revoked or has expired ("reconnect")
    """
    return _token_request(settings, session, {"grant_type": "refresh_token",
                                              "refresh_token": settings.oauth_refresh_token,
                                              **_client(settings)})


def client_credentials(settings, session) -> Token:
    """An access token for the connected app's run-as user (My Domain login URL only).

    :raises InvalidClient: wrong consumer key or secret
    :raises OAuthError: code OAUTH_CLIENT_CREDENTIALS when there is no run-as user or the
        login URL is not a My Domain
    """
    try:
        return _token_request(settings, session, {"grant_type": "client_credentials", **_client(settings)})
    except InvalidGrant as exc:  # not a revoked grant: the flow itself is not set up
        raise OAuthError(exc.error, exc.description, "OAUTH_CLIENT_CREDENTIALS") from exc


def fetch_token(settings, session) -> Token:
    """An access token by the settings' OAuth method (refresh or client credentials)."""
    if settings.auth_method == "oauth_client_credentials":
        return client_credentials(settings, session)
    return refresh(settings, session)


def revoke(settings, session, token: str) -> None:
    """Revoke ``token`` (a refresh token revokes its access tokens too).

    :raises OAuthError: Salesforce refused (e.g. the token is already invalid)
    """
    response = session.post(f"{settings.login_host()}/services/oauth2/revoke", data={"token": token})
    if response.status_code != 200:
        raise _refusal(response, _json(response))


class PinnedSession(requests.Session):
    """A requests.Session that trusts only the CA-bundle setting and times out every request."""

    def __init__(self, ca_bundle: str, timeout: tuple[float, float]):
        super().__init__()
        # Without this, REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE / *_PROXY from the environment
        # override `verify` per request, and the CA-bundle setting silently stops working.
        self.trust_env = False
        self.verify = ca_bundle or True
        self.timeout = timeout

    def request(self, method, url, *args, **kwargs):  # noqa: D401 - requests' signature
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def plain_session(ca_bundle: str = "", timeout: tuple[float, float] = (5.0, 10.0)) -> requests.Session:
    """A session for token requests that trusts only the CA-bundle setting (not the environment)."""
    return PinnedSession(ca_bundle, timeout)
