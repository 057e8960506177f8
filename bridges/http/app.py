"""The lookup service: a Flask app that loads the plugin as a host and answers over HTTP.

- ``GET /v1/lookup?number=...`` rings (or dials) a call through the hooks and answers the
  display as JSON, or its label alone with ``format=text`` (what Asterisk's ``CURL()`` and
  FreeSWITCH's ``mod_cidlookup`` put into the caller's name);
- ``POST /v1/calls/<call_id>/ended`` ends the call through ``on_call_ended``: recorded once;
- ``GET /v1/health`` answers without touching Salesforce or the database.

Every answer comes within the screen budget: the hooks bound their own Salesforce wait, and this
service runs them in worker threads it waits for at most the budget (plus a little), so even a
database locked by another process cannot hold a phone system's request longer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import pathlib
import re
import secrets
import stat
import threading
import time
import unicodedata
from typing import Any, Callable
from urllib.parse import unquote_to_bytes

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from bridges.host import BoundedScreens, load_host
from core import history
from core.runtime import fallback_display, runtime_for
from core.store import ENV_HOME, home_path
from plugin.call import Call, new_call_id

log = logging.getLogger(__name__)

NUMBER_MAX = 64          # characters; E.164 has 15 digits, a SIP user part rarely more than 40
CALL_ID_MAX = 128        # Asterisk's UNIQUEID and FreeSWITCH's uuid are far shorter
TEXT_MAX = 100           # agent ids
BODY_MAX = 4096          # bytes of an ended-call POST (a few hundred in practice)
GRACE_SECONDS = 0.025    # beyond the budget: the hook's own timeout answers first
GUARD_THREADS = 32
LOCK_STRIPES = 64
TOKEN_ENV = "SFCTI_SERVE_TOKEN"
TOKEN_FILE = "serve.token"
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")   # RFC 6750's b64token characters
DIRECTIONS = ("inbound", "outbound")
FORMATS = ("json", "text")
LOOKUP_PARAMETERS = ("number", "format", "direction", "call_id", "agent_id")
ENDED_FIELDS = ("direction", "remote_number", "local_number", "agent_id", "started_at",
                "ended_at", "answered")
# ASCII punctuation phone numbers and caller ids are written with ("sip:anonymous@x.invalid",
# "+81 (3) 1234-5678", "0312345678;ext=12"); letters, digits, spaces and dashes of any script too
NUMBER_PUNCTUATION = set("+-().#*,;:=@/_~ ")
ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
                          r"(?P<offset>Z|[+-]\d{2}:?\d{2})", re.ASCII)


# ---------------------------------------------------------------------------------------------
# exceptions: the docstring is the message
# ---------------------------------------------------------------------------------------------

class BadRequest(Exception):
    "The request is not valid."

    status = 400

    def __init__(self, message: str | None = None, status: int | None = None):
        super().__init__(message or self.__doc__)
        self.status = status or self.status


class TokenError(Exception):
    "The bearer token cannot be used."


# ---------------------------------------------------------------------------------------------
# the bearer token: where it comes from
# ---------------------------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or a name) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(home: str | os.PathLike, host: str) -> tuple[str | None, str]:
    """The bearer token the service requires, and where it came from (never the token itself).

    ``$SFCTI_SERVE_TOKEN`` first, then ``serve.token`` in the instance folder; on a non-loopback
    ``host`` without either, a new token is written to ``serve.token`` (mode 0600). None on
    loopback without a token: only this machine can connect then.

    :raises TokenError: the token is malformed, or its file is readable by other users
    """
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return _checked(from_env, TOKEN_ENV), TOKEN_ENV
    path = pathlib.Path(home_path(home)) / TOKEN_FILE
    if path.exists():
        return _read_token_file(path), str(path)
    if is_loopback(host):
        return None, "none (loopback clients only)"
    _create_token_file(path)
    return _read_token_file(path), \
        f"{path} (created now, mode 0600; give its content to the phone system)"


def _checked(token: str, source: str) -> str:
    if not TOKEN_PATTERN.fullmatch(token):
        raise TokenError(f"The token in {source} must be 16 to 256 letters, digits or "
                         "- . _ ~ + / =.")
    return token


def _read_token_file(path: pathlib.Path) -> str:
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"Cannot read the token file {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenError(f"The token file {path} is open to other users; run: chmod 600 {path}")
    return _checked(token, str(path))


def _create_token_file(path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two services starting together keep the first one's token
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")


# ---------------------------------------------------------------------------------------------
# reading the request: the query string, the ended call's JSON
# ---------------------------------------------------------------------------------------------

def query_parameters(raw_query: str) -> dict[str, str]:
    """The query string's parameters, percent-decoded as UTF-8 but with ``+`` kept as a plus.

    Form decoding would turn ``+`` into a space, and phone systems send the plus of an E.164
    number unencoded: FreeSWITCH expands ``${caller_id_number}`` as it is, and Asterisk users
    forget ``URIENCODE()``. A space is written ``%20``.

    :raises BadRequest: a parameter is not UTF-8, unknown or given twice
    """
    try:
        raw = raw_query.encode("latin-1")   # WSGI hands over the raw bytes as latin-1
    except UnicodeEncodeError:
        raw = raw_query.encode("utf-8")
    params: dict[str, str] = {}
    for pair in raw.split(b"&"):
        if not pair:
            continue
        name_raw, _, value_raw = pair.partition(b"=")
        name = _decoded(name_raw, "a parameter name")
        if name not in LOOKUP_PARAMETERS:
            raise BadRequest(f"Unknown parameter {name[:40]!r}; "
                             f"use {', '.join(LOOKUP_PARAMETERS)}.")
        if name in params:
            raise BadRequest(f"The parameter {name} is given twice.")
        params[name] = _decoded(value_raw, name)
    return params


def _decoded(raw: bytes, what: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{what} is not UTF-8 text.") from None


def _codepoint(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def _refuse_invisible(value: str, field: str) -> None:
    """Control characters, and format characters (bidi overrides, zero-width) that would make
    what an agent reads differ from what is stored."""
    for ch in value:
        category = unicodedata.category(ch)
        if category == "Cc":
            raise BadRequest(f"{field} contains a control character ({_codepoint(ch)}).")
        if category in ("Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise BadRequest(f"{field} contains an invisible or text-direction character "
                             f"({_codepoint(ch)}).")


def check_number(value: str, field: str = "number") -> str:
    """``value`` when it reads as a phone number as delivered (any script's digits, letters as
    in "anonymous", the punctuation numbers are written with); an empty one is a withheld caller.

    :raises BadRequest: too long, invisible characters, or characters no number has
    """
    if len(value) > NUMBER_MAX:
        raise BadRequest(f"{field} is too long ({len(value)} characters; at most {NUMBER_MAX}).")
    _refuse_invisible(value, field)
    for ch in value:
        category = unicodedata.category(ch)
        if category[0] in "LN" or category in ("Zs", "Pd") or ch == "\u2212":
            continue
        if unicodedata.normalize("NFKC", ch) not in NUMBER_PUNCTUATION:
            raise BadRequest(f"{field} contains {ch!r} ({_codepoint(ch)}), which phone numbers "
                             "do not have.")
    return value


def check_call_id(value: str) -> str:
    """``value`` when it is 1 to 128 visible ASCII characters (Asterisk's UNIQUEID, a uuid).

    :raises BadRequest: otherwise
    """
    if len(value) > CALL_ID_MAX:
        raise BadRequest(f"call_id is too long ({len(value)} characters; at most {CALL_ID_MAX}).")
    _refuse_invisible(value, "call_id")
    if not re.fullmatch(r"[!-~]+", value):
        raise BadRequest("call_id must be visible ASCII characters (letters, digits, . - _ ...).")
    return value


def check_text(value: str, field: str) -> str:
    """``value`` when it is printable text of at most 100 characters.

    :raises BadRequest: otherwise
    """
    if len(value) > TEXT_MAX:
        raise BadRequest(f"{field} is too long ({len(value)} characters; at most {TEXT_MAX}).")
    _refuse_invisible(value, field)
    return value


def check_choice(value: str, field: str, choices: tuple[str, ...]) -> str:
    """``value`` when it is one of ``choices``.

    :raises BadRequest: otherwise
    """
    if value not in choices:
        raise BadRequest(f"{field} must be {' or '.join(choices)}.")
    return value


def parse_datetime(value: Any, field: str) -> dt.datetime:
    """An ISO 8601 date and time with its UTC offset ("2024-05-20T10:00:00+09:00", "...+0900",
    "...Z"), as an aware datetime.

    :raises BadRequest: not a string, no offset, or not a real date
    """
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string (ISO 8601 with offset).")
    match = ISO_DATETIME.fullmatch(value)
    if match is None:
        raise BadRequest(f"{field} must be ISO 8601 with a UTC offset, e.g. "
                         "2024-05-20T10:00:00+09:00.")
    offset = match.group("offset")
    text = value[: match.start("offset")] + _offset_with_colon(offset)
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{field} is not a real date and time.") from None


def _offset_with_colon(offset: str) -> str:
    if offset == "Z":
        return "+00:00"
    return offset if ":" in offset else f"{offset[:3]}:{offset[3:]}"


def ended_call(call_id: str, body: bytes) -> Call:
    """The ended call described by the JSON ``body`` (DESIGN §2's attributes).

    Required: ``direction``, ``remote_number`` (may be "" for a withheld caller), ``started_at``.
    Optional: ``local_number``, ``agent_id``, ``answered`` (true/false/null), ``ended_at``
    (default: now, the POST being sent when the call ends).

    :raises BadRequest: malformed JSON, unknown fields, wrong types or values
    """
    fields = _json_object(body)
    unknown = sorted(set(fields) - set(ENDED_FIELDS))
    if unknown:
        raise BadRequest(f"Unknown field {unknown[0][:40]!r}; use {', '.join(ENDED_FIELDS)}.")
    for required in ("direction", "remote_number", "started_at"):
        if required not in fields:
            raise BadRequest(f"{required} is missing.")
    started = parse_datetime(fields["started_at"], "started_at")
    ended = _optional(fields, "ended_at", lambda v: parse_datetime(v, "ended_at"))
    ended = ended or dt.datetime.now(dt.timezone.utc)
    if ended < started:
        raise BadRequest("ended_at is before started_at.")
    return Call(
        call_id=call_id,
        direction=check_choice(_string(fields["direction"], "direction"), "direction", DIRECTIONS),
        remote_number=check_number(_string(fields["remote_number"], "remote_number"),
                                   "remote_number"),
        local_number=_optional(fields, "local_number",
                               lambda v: check_number(_string(v, "local_number"), "local_number")),
        agent_id=_optional(fields, "agent_id",
                           lambda v: check_text(_string(v, "agent_id"), "agent_id")),
        started_at=started, ended_at=ended, answered=_optional(fields, "answered", _boolean),
    )


def _json_object(body: bytes) -> dict:
    try:
        fields = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadRequest("The body is not UTF-8.") from None
    except ValueError as exc:  # json.JSONDecodeError, and NaN / Infinity
        raise BadRequest(f"The body is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(fields, dict):
        raise BadRequest("The body must be a JSON object.")
    return fields


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _optional(fields: dict, name: str, convert: Callable[[Any], Any]) -> Any:
    value = fields.get(name)
    return None if value is None or value == "" else convert(value)


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string.")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRequest("answered must be true, false or null.")
    return value


# ---------------------------------------------------------------------------------------------
# the host: the plugin, called in worker threads waited for within the budget
# ---------------------------------------------------------------------------------------------

class LookupService:
    """The plugin loaded through its entry point, and the calls this service hands it."""

    def __init__(self, home: str):
        self.pm = load_host()
        self.runtime = runtime_for(home)
        self.screens = BoundedScreens(self.pm, self.runtime.settings, "sfcti-http", GUARD_THREADS,
                                      grace=GRACE_SECONDS)
        # read now: a long-running host starts its scheduler before the first call comes
        self.screens.budget = self.runtime.settings().screen_budget_ms / 1000.0
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]

    def screen(self, call: Call, started: float) -> dict:
        """The call's display from its hook, or the fallback display if the hook (or anything
        under it) has not answered by the budget."""
        try:
            display = self.screens.screen(call, started)
        except Exception:  # timed out, or failed past the hook's own guard
            display = None
        return display or fallback_display(call)

    def end(self, call: Call, started: float) -> tuple[str, dict | None]:
        """End the call through ``on_call_ended``: ("recorded", row) when this request recorded
        it, ("repeat", row) when it was recorded before, ("failed", None) when it could not be
        (the error log says why), ("pending", None) when that is not known within the budget."""
        future = self.screens.submit(self._end_task, call)
        try:
            return future.result(timeout=self.screens.remaining(started))
        except TimeoutError:  # still writing (a busy database): the worker carries on
            return "pending", None
        except Exception:  # the history could not be read: the error is the service log's
            log.exception("sfcti serve: ending call %s failed", call.call_id)
            return "failed", None

    def _end_task(self, call: Call) -> tuple[str, dict | None]:
        # one request per call id at a time, so "recorded" and "repeat" are told apart
        stripe = int(hashlib.sha1(call.call_id.encode("utf-8")).hexdigest()[:8], 16)
        with self._stripes[stripe % LOCK_STRIPES]:
            before = self._history_row(call.call_id)
            if before is not None:
                return "repeat", before
            self.pm.hook.on_call_ended(call=call)
            after = self._history_row(call.call_id)
        return ("recorded", after) if after is not None else ("failed", None)

    def _history_row(self, call_id: str) -> dict | None:
        try:
            return history.get_call(self.runtime.store, call_id)
        except history.CallNotFound:
            return None

    def close(self) -> None:
        """Let the worker threads end."""
        self.screens.stop()


# ---------------------------------------------------------------------------------------------
# the app
# ---------------------------------------------------------------------------------------------

def create_app(home: str | os.PathLike | None = None, token: str | None = None,
               test_config: dict | None = None) -> Flask:
    """The lookup service for the instance folder ``home`` (default ``$SFCTI_HOME``).

    ``token``: the bearer token every request but the health check must carry; without one,
    only loopback clients are answered. The plugin reads ``$SFCTI_HOME``, so it is set here: one
    instance folder per process.
    """
    home = str(home_path(home))
    os.environ[ENV_HOME] = home
    app = Flask(__name__)
    app.config.from_mapping(SFCTI_HOME=home, SERVE_TOKEN=token, MAX_CONTENT_LENGTH=BODY_MAX)
    app.config.from_mapping(test_config or {})
    app.extensions["sfcti_lookup"] = LookupService(home)
    app.before_request(_authorize)
    app.after_request(_no_store)
    app.register_error_handler(BadRequest, _bad_request)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.add_url_rule("/v1/health", "health", _health, methods=["GET"])
    app.add_url_rule("/v1/lookup", "lookup", _lookup, methods=["GET"])
    app.add_url_rule("/v1/calls/<call_id>/ended", "ended", _ended, methods=["POST"])
    return app


def _service() -> LookupService:
    return current_app.extensions["sfcti_lookup"]


def _health() -> Response:
    return _json({"status": "ok"})


def _lookup() -> Response:
    started = time.monotonic()
    params = query_parameters(request.environ.get("QUERY_STRING", ""))
    if "number" not in params:
        raise BadRequest("number is missing (number=... ; an empty value is a withheld caller).")
    as_text = check_choice(params.get("format") or "json", "format", FORMATS) == "text"
    call = Call(
        call_id=check_call_id(params["call_id"]) if params.get("call_id") else new_call_id(),
        direction=check_choice(params.get("direction") or "inbound", "direction", DIRECTIONS),
        remote_number=check_number(params["number"]),
        agent_id=check_text(params["agent_id"], "agent_id") if params.get("agent_id") else None,
    )
    display = _service().screen(call, started)
    if as_text:
        response = _text(display.get("label") or "")
        response.headers["X-Sfcti-Status"] = str(display.get("status"))
        response.headers["X-Sfcti-Call-Id"] = call.call_id
        return response
    return _json(dict(display, call_id=call.call_id))


def _ended(call_id: str) -> Response:
    started = time.monotonic()
    check_call_id(call_id)
    if request.mimetype != "application/json":
        raise BadRequest("Send the call as JSON (Content-Type: application/json).", 415)
    call = ended_call(call_id, request.get_data(cache=False))
    outcome, row = _service().end(call, started)
    if outcome == "failed":
        return _json({"error": "The call could not be recorded; the error log (sfcti errors) "
                               "says why. Send it again later.", "call_id": call_id}, 503)
    if outcome == "pending":
        return _json({"call_id": call_id, "recorded": None,
                      "message": "Accepted; still being recorded."}, 202)
    answer = {"call_id": call_id, "recorded": outcome == "recorded",
              "status": row["status"], "label": row["label"]}
    if outcome == "repeat":
        answer["message"] = "Already recorded; nothing changed."
    return _json(answer, 201 if outcome == "recorded" else 200)


# ---------------------------------------------------------------------------------------------
# authorization, answers and errors
# ---------------------------------------------------------------------------------------------

def _authorize() -> Response | None:
    """Every request but the health check carries the token, when there is one; without one,
    only loopback clients are answered."""
    if request.endpoint == "health":
        return None
    expected = current_app.config.get("SERVE_TOKEN")
    if expected is None:
        if is_loopback(request.remote_addr or ""):
            return None
        return _error("This service answers loopback clients only until a token is set "
                      f"({TOKEN_ENV} or {TOKEN_FILE}).", 403)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return _unauthorized("Send the token: Authorization: Bearer <token>.", None)
    given_bytes = given.strip().encode("latin-1", "replace")   # headers arrive as latin-1
    if not hmac.compare_digest(given_bytes, expected.encode("ascii")):
        return _unauthorized("The token is not valid.", "invalid_token")
    return None


def _unauthorized(message: str, error: str | None) -> Response:
    response = _error(message, 401)
    challenge = 'Bearer realm="sfcti"' + (f', error="{error}"' if error else "")
    response.headers["WWW-Authenticate"] = challenge
    return response


def _wants_text() -> bool:
    """True for a lookup asking for format=text (its errors are text too)."""
    if request.endpoint != "lookup":
        return False
    try:
        return query_parameters(request.environ.get("QUERY_STRING", "")).get("format") == "text"
    except BadRequest:
        return "format=text" in request.environ.get("QUERY_STRING", "")


def _json(payload: dict, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status,
                    content_type="application/json; charset=utf-8")


def _text(text: str, status: int = 200) -> Response:
    return Response(text, status, content_type="text/plain; charset=utf-8")


def _error(message: str, status: int) -> Response:
    if _wants_text():
        return _text(message, status)
    return _json({"error": message, "status": status}, status)


def _bad_request(exc: BadRequest) -> Response:
    return _error(str(exc), exc.status)


def _http_error(exc: HTTPException) -> Response:
    messages = {404: "No such path; see docs/http-lookup.md (/v1/lookup, /v1/calls/<id>/ended, "
                     "/v1/health).",
                405: f"{request.method[:20]} is not allowed here.",
                413: f"The body is too large (at most {BODY_MAX} bytes)."}
    response = _error(messages.get(exc.code or 400, exc.description or exc.name), exc.code or 400)
    if exc.code == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _unexpected(exc: Exception) -> Response:
    current_app.logger.exception("sfcti serve: unexpected failure")
    return _error("Unexpected failure in the lookup service; its log has the details.", 500)


def _no_store(response: Response) -> Response:
    """Names of callers are personal data: no cache keeps them; no browser guesses the type."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
