"""Settings have one home: the :class:`Settings` dataclass, read from the store in one place.

- :func:`load_settings` reads the ``settings`` table (unknown names ignored, secrets decrypted);
- :func:`save_settings` validates, coerces and writes changes (secrets encrypted; a blank secret
  keeps the stored one, as the admin form promises);
- :func:`validate_settings` is the one validation the CLI and the admin share;
- :func:`clear_credentials` is "Disconnect".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import logging
import math
import os
import re
import string
import threading
import urllib.parse
import weakref
import zoneinfo
from typing import Any, Callable, Mapping

import phonenumbers

from core.display import UNPRINTABLE

log = logging.getLogger(__name__)

SECRET_FIELDS = frozenset(
    {"password", "security_token", "smtp_password", "oauth_client_secret", "oauth_refresh_token"}
)
CREDENTIAL_FIELDS = ("username", "password", "security_token", "oauth_refresh_token")
CONTACT_FETCH = ("nightly", "after_call", "never")
NIGHTLY, AFTER_CALL, NEVER = CONTACT_FETCH
SMTP_SECURITY = ("starttls", "ssl", "none")
AUTH_METHODS = ("password", "oauth_web", "oauth_client_credentials")
ACTIVITY_UNMATCHED = ("skip", "log")     # a call with no matched record: no Task, or one without Who/What
ACTIVITY_LANGUAGES = ("ja", "en")
# what a Task subject template and the call link template may name (core/activity.py fills them)
SUBJECT_FIELDS = ("direction", "name", "company", "person", "number", "agent", "duration")
CALL_URL_FIELDS = ("call_id", "agent", "number")
LOGIN_URL = "https://login.salesforce.com"
SANDBOX_LOGIN_URL = "https://test.salesforce.com"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting with its default. Secrets never appear in ``repr()``. Frozen: the loaded
    settings are shared by every thread (use ``dataclasses.replace`` for a changed copy)."""

    username: str = ""
    password: str = dataclasses.field(default="", repr=False)
    security_token: str = dataclasses.field(default="", repr=False)
    sandbox: bool = False
    login_url: str = ""
    ca_bundle: str = ""
    contact_fetch: str = NIGHTLY
    time_zone: str = "Asia/Tokyo"
    nightly_time: str = "22:00"
    screen_budget_ms: int = 800
    default_region: str = "JP"
    no_match_ttl_seconds: int = 3600
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    api_version: str = "59.0"
    alert_recipients: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str = ""
    smtp_password: str = dataclasses.field(default="", repr=False)
    smtp_sender: str = ""
    alert_reminder_hours: int = 4
    slow_alert_threshold: int = 5     # late screens (SCREEN_LATE) in an incident before its alert mail
    admin_base_url: str = "http://127.0.0.1:5000"
    auth_method: str = "password"
    oauth_client_id: str = ""
    oauth_client_secret: str = dataclasses.field(default="", repr=False)
    oauth_refresh_token: str = dataclasses.field(default="", repr=False)
    phone_index: bool = True          # answer from the local phone index (core/index.py)
    index_minutes: int = 15           # an incremental sync round of the index every N minutes
    index_full_days: int = 7          # a full re-sync of the index every N days
    index_bulk_threshold: int = 200_000   # an object with more records is read by Bulk API 2.0 (0: never)
    activity_logging: bool = True     # log each ended call as a Task (core/activity.py)
    activity_unmatched: str = "skip"  # a call with no matched record: "skip" or "log" it without one
    activity_language: str = "ja"     # the language of the built-in Task subject and description
    activity_subject: str = ""        # a subject template ({direction} {name} ...); blank: built-in
    call_url_template: str = ""       # a link to the call in the phone system, e.g. https://pbx/cdr?id={call_id}
    activity_api_share: int = 20      # percent of the org's daily API limit Task logging may spend

    def zone(self) -> dt.tzinfo:
        """The configured time zone; the default one when the stored name is unknown here."""
        return zone_named(self.time_zone)

    def local_day(self, at: dt.datetime) -> str:
        """The calendar day (YYYY-MM-DD) of the aware time ``at`` in the configured time zone."""
        return at.astimezone(self.zone()).date().isoformat()

    def local_time(self, value: str | dt.datetime | None, with_seconds: bool = True) -> str:
        """A stored UTC time (ISO-8601 text or datetime) in the configured time zone, as
        "2024-05-20 21:49:32"; "" for None, the text itself when it is not a time."""
        return format_local_time(value, self.zone(), with_seconds)

    def login_host(self) -> str:
        """The login URL without a trailing slash: ``login_url`` when set, else
        https://test.salesforce.com for a sandbox, else https://login.salesforce.com."""
        if self.login_url:
            return self.login_url.rstrip("/")
        return SANDBOX_LOGIN_URL if self.sandbox else LOGIN_URL

    def is_configured(self) -> bool:
        """True when the chosen auth method has the credentials it needs."""
        if self.auth_method == "oauth_web":
            return bool(self.oauth_client_id and self.oauth_refresh_token)
        if self.auth_method == "oauth_client_credentials":
            return bool(self.oauth_client_id and self.oauth_client_secret)
        return bool(self.username and self.password)

    def alerts_configured(self) -> bool:
        """True when alert e-mails can be sent (recipients and an SMTP host)."""
        return bool(recipient_list(self.alert_recipients) and self.smtp_host)

    def secret_stored(self) -> dict[str, bool]:
        """``{secret field: whether a value is stored}``: what a page may show instead of the value."""
        return {name: bool(getattr(self, name)) for name in sorted(SECRET_FIELDS)}

    def public_dict(self) -> dict[str, Any]:
        """Every field except secrets (safe to render, log or e-mail)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in SECRET_FIELDS}


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Settings)}
DEFAULTS = Settings()


def zone_named(name: str | None) -> dt.tzinfo:
    """The IANA zone ``name``; the default setting's zone when ``name`` is unknown here."""
    try:
        return zoneinfo.ZoneInfo(name or DEFAULTS.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return zoneinfo.ZoneInfo(DEFAULTS.time_zone)


def format_local_time(value: str | dt.datetime | None, zone: dt.tzinfo,
                      with_seconds: bool = True) -> str:
    """A UTC time (ISO-8601 text, naive taken as UTC) shown in ``zone``; "" for None, the text
    itself when it is not a time."""
    if not value:
        return ""
    at = value
    if isinstance(value, str):
        try:
            at = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(at, dt.datetime):
        return str(value)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


# ---------------------------------------------------------------------------------------------
# exceptions: the docstring is the message
# ---------------------------------------------------------------------------------------------

class SettingsError(Exception):
    "The settings could not be saved."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.__doc__)


class InvalidSettings(SettingsError):
    "Some settings are not valid."

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        detail = "; ".join(f"{name}: {message}" for name, message in sorted(errors.items()))
        super().__init__(f"{self.__doc__} {detail}")


# ---------------------------------------------------------------------------------------------
# validation: one table of rules, bilingual messages
# ---------------------------------------------------------------------------------------------

MESSAGES = {
    "unknown": ("Unknown setting.", "不明な設定項目です。"),
    "control": ("Must not contain line breaks, control characters or text-direction characters.",
                "改行、制御文字、文字方向の制御文字は使えません。"),
    "too_long": ("Too long (at most {max} characters).", "長すぎます（最大 {max} 文字）。"),
    "not_text": ("Must be text.", "文字列で入力してください。"),
    "bool": ("Must be on or off.", "オンかオフを指定してください。"),
    "int": ("Must be a whole number (half-width digits 0-9).",
            "整数を半角数字で入力してください。"),
    "float": ("Must be a number (half-width digits).", "数値を半角数字で入力してください。"),
    "range": ("Must be between {min} and {max}.", "{min} から {max} の範囲で入力してください。"),
    "choice": ("Must be one of: {choices}.", "次のいずれかを選んでください: {choices}。"),
    "https_url": ("Must be an https:// URL with a host name, e.g. https://example.my.salesforce.com.",
                  "https:// で始まりホスト名を含む URL を入力してください（例: https://example.my.salesforce.com）。"),
    "http_url": ("Must be an http:// or https:// URL with a host name.",
                 "http:// または https:// で始まりホスト名を含む URL を入力してください。"),
    "time_zone": ("Unknown time zone; use an IANA name such as Asia/Tokyo.",
                  "不明なタイムゾーンです。Asia/Tokyo のような IANA 名を入力してください。"),
    "hhmm": ("Must be a time as HH:MM (00:00 to 23:59).",
             "時刻を HH:MM 形式（00:00〜23:59）で入力してください。"),
    "email": ("Must be an e-mail address.", "メールアドレスを入力してください。"),
    "emails": ("Must be e-mail addresses separated by commas.",
               "メールアドレスをカンマ区切りで入力してください。"),
    "host": ("Must be a host name or IP address.", "ホスト名または IP アドレスを入力してください。"),
    "region": ("Must be a two-letter region code such as JP or US.",
               "JP や US のような 2 文字の地域コードを入力してください。"),
    "api_version": ("Must be a Salesforce API version such as 59.0.",
                    "59.0 のような Salesforce API バージョンを入力してください。"),
    "file": ("File not found or not readable.", "ファイルが見つからないか読み取れません。"),
    "template": ("Unknown placeholder or format; use only {fields} in braces, e.g. {{name}}.",
                 "使えない差し込み項目か書式です。{fields} だけを {{name}} のように波かっこで囲んで使えます。"),
}


class _Invalid(ValueError):
    def __init__(self, key: str, **params: Any):
        super().__init__(key)
        self.key = key
        self.params = params

    def message(self, lang: str) -> str:
        en, ja = MESSAGES[self.key]
        params = {k: ", ".join(v) if isinstance(v, (tuple, list)) else v
                  for k, v in self.params.items()}
        return (ja if lang == "ja" else en).format(**params)


_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_HHMM = re.compile(r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$")
_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")


def _text(value: Any, max_len: int = 255) -> str:
    """A string with no control characters, at most ``max_len`` long."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Invalid("not_text")
    value = str.__str__(value)  # a str subclass may override every method: read it as a plain str
    if UNPRINTABLE.search(value):
        raise _Invalid("control")
    if len(value) > max_len:
        raise _Invalid("too_long", max=max_len)
    return value


def _stripped(value: Any, max_len: int = 255) -> str:
    return _text(value, max_len).strip(" ")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = _text(value, 10).strip(" ").lower()
        if lowered in ("1", "true", "on", "yes", "y"):
            return True
        if lowered in ("0", "false", "off", "no", "n", ""):
            return False
    raise _Invalid("bool")


def _int(minimum: int, maximum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool):
            raise _Invalid("int")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            text = _stripped(value, 20)
            if not _INT.match(text):  # ASCII only: int("５８７") would accept full-width digits
                raise _Invalid("int")
            value = int(text)
        if not isinstance(value, int):
            raise _Invalid("int")
        if not minimum <= value <= maximum:
            raise _Invalid("range", min=minimum, max=maximum)
        return value
    return check


def _float(minimum: float, maximum: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool):
            raise _Invalid("float")
        if isinstance(value, str):
            text = _stripped(value, 20)
            if not _FLOAT.match(text):
                raise _Invalid("float")
            value = float(text)
        # an int is finite however large (math.isfinite would overflow converting it)
        if not isinstance(value, (int, float)) or isinstance(value, float) and not math.isfinite(value):
            raise _Invalid("float")
        if not minimum <= value <= maximum:
            raise _Invalid("range", min=minimum, max=maximum)
        return float(value)
    return check


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _stripped(value, 40)
        if text not in choices:
            raise _Invalid("choice", choices=choices)
        return text
    return check


def _url(schemes: tuple[str, ...], key: str, optional: bool = True) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _stripped(value, 2048)
        if not text and optional:
            return ""
        try:
            parts = urllib.parse.urlsplit(text)
            port = parts.port  # raises ValueError on a bad port
        except ValueError:
            raise _Invalid(key) from None
        host = parts.hostname or ""
        if (parts.scheme.lower() not in schemes or not host or parts.username is not None
                or parts.password is not None or parts.fragment or port == 0
                or not _is_host(host) or any(c.isspace() for c in text)):
            raise _Invalid(key)
        return text.rstrip("/")
    return check


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host))


def _host(value: Any) -> str:
    text = _stripped(value, 253)
    if text and not _is_host(text):
        raise _Invalid("host")
    return text


def _email(value: Any, max_len: int = 254) -> str:
    text = _stripped(value, max_len)
    if text and not _EMAIL.match(text):
        raise _Invalid("email")
    return text


def recipient_list(value: str) -> list[str]:
    """The addresses in a recipients setting (separated by commas, semicolons or spaces)."""
    return [part for part in re.split(r"[,;\s]+", value or "") if part]


def _emails(value: Any) -> str:
    addresses = recipient_list(_text(value, 2000))
    if len(addresses) > 50 or any(not _EMAIL.match(a) or len(a) > 254 for a in addresses):
        raise _Invalid("emails")
    return ", ".join(addresses)


def _time_zone(value: Any) -> str:
    text = _stripped(value, 64)
    if not text or text.startswith(("/", ".")) or ".." in text:
        raise _Invalid("time_zone")
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise _Invalid("time_zone") from None
    return text


def _hhmm(value: Any) -> str:
    text = _stripped(value, 5)
    if not _HHMM.match(text):
        raise _Invalid("hhmm")
    return text


def _region(value: Any) -> str:
    text = _stripped(value, 2).upper()
    if text not in phonenumbers.SUPPORTED_REGIONS:
        raise _Invalid("region")
    return text


def _api_version(value: Any) -> str:
    text = _stripped(value, 6)
    if not re.fullmatch(r"[1-9][0-9]{1,2}\.0", text):
        raise _Invalid("api_version")
    return text


def _file(value: Any) -> str:
    text = _stripped(value, 4096)
    if text and not (os.path.isfile(text) and os.access(text, os.R_OK)):
        raise _Invalid("file")
    return text


def _template(fields: tuple[str, ...], max_len: int, url: bool = False) -> Callable[[Any], str]:
    """A text template naming only ``fields`` as ``{name}`` (no attribute, index, conversion or
    format spec: a template must never reach into the objects it is filled from)."""
    def check(value: Any) -> str:
        text = _stripped(value, max_len)
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError:
            raise _Invalid("template", fields=fields) from None
        for _, name, spec, conversion in parts:
            if name is not None and (name not in fields or spec or conversion):
                raise _Invalid("template", fields=fields)
        if url and text:
            _url(("http", "https"), "http_url")(text.format_map({f: "x" for f in fields}))
        return text
    return check


RULES: dict[str, Callable[[Any], Any]] = {
    # Salesforce usernames have the form of an e-mail address, at most 80 characters
    "username": lambda v: _email(v, 80),
    "password": lambda v: _text(v, 255),
    "security_token": lambda v: _stripped(v, 255),
    "sandbox": _bool,
    "login_url": _url(("https",), "https_url"),
    "ca_bundle": _file,
    "contact_fetch": _choice(*CONTACT_FETCH),
    "time_zone": _time_zone,
    "nightly_time": _hhmm,
    "screen_budget_ms": _int(50, 60_000),
    "default_region": _region,
    "no_match_ttl_seconds": _int(0, 30 * 86_400),
    "connect_timeout": _float(0.1, 120.0),
    "read_timeout": _float(0.1, 600.0),
    "api_version": _api_version,
    "alert_recipients": _emails,
    "smtp_host": _host,
    "smtp_port": _int(1, 65_535),
    "smtp_security": _choice(*SMTP_SECURITY),
    "smtp_user": lambda v: _stripped(v, 255),
    "smtp_password": lambda v: _text(v, 255),
    "smtp_sender": _email,
    "alert_reminder_hours": _int(1, 24 * 7),
    "slow_alert_threshold": _int(1, 10_000),
    "admin_base_url": _url(("http", "https"), "http_url", optional=False),
    "auth_method": _choice(*AUTH_METHODS),
    "oauth_client_id": lambda v: _stripped(v, 1024),
    "oauth_client_secret": lambda v: _stripped(v, 1024),
    "oauth_refresh_token": lambda v: _stripped(v, 4096),
    "phone_index": _bool,
    "index_minutes": _int(1, 24 * 60),
    "index_full_days": _int(1, 30),
    "index_bulk_threshold": _int(0, 1_000_000_000),
    "activity_logging": _bool,
    "activity_unmatched": _choice(*ACTIVITY_UNMATCHED),
    "activity_language": _choice(*ACTIVITY_LANGUAGES),
    "activity_subject": _template(SUBJECT_FIELDS, 255),
    "call_url_template": _template(CALL_URL_FIELDS, 1024, url=True),
    "activity_api_share": _int(1, 100),
}
assert set(RULES) == set(FIELDS), "every setting needs a validation rule"


def _as_dict(values: Settings | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(values, Settings):
        return dataclasses.asdict(values)
    return dict(values)


def clean_settings(values: Settings | Mapping[str, Any], lang: str = "en") -> dict[str, Any]:
    """``values`` checked and converted to the field types.

    :raises InvalidSettings: with ``.errors`` (field -> message) when any value is invalid
    """
    cleaned, errors = {}, {}
    for name, value in _as_dict(values).items():
        rule = RULES.get(name)
        if rule is None:
            errors[name] = _Invalid("unknown").message(lang)
            continue
        try:
            cleaned[name] = rule(value)
        except _Invalid as exc:
            errors[name] = exc.message(lang)
    if errors:
        raise InvalidSettings(errors)
    return cleaned


def validate_settings(values: Settings | Mapping[str, Any], lang: str = "en") -> dict[str, str]:
    """``{field: message}`` for every invalid value in ``values`` (``{}`` when all are valid).

    The one validation shared by the CLI and the admin. ``lang`` is "en" or "ja".
    Rules: no control characters (CR, LF, NUL...) anywhere; lengths bounded; ints and floats in
    half-width digits and in range; URLs with a host (login URL https:// only); an existing IANA
    time zone; HH:MM; known choices; e-mail addresses.
    """
    try:
        clean_settings(values, lang)
    except InvalidSettings as exc:
        return exc.errors
    return {}


# ---------------------------------------------------------------------------------------------
# storage
# ---------------------------------------------------------------------------------------------

def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _from_text(name: str, text: str) -> Any:
    """The stored text as the field's type; the default when it does not convert."""
    kind = FIELDS[name].type
    try:
        if kind == "bool":
            return text in ("1", "true", "True")
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        log.warning("stored setting %s is not a %s; using the default", name, kind)
        return getattr(DEFAULTS, name)
    return text


def load_settings(store) -> Settings:
    """The settings stored in ``store``, defaults for the rest; the one settings cache.

    Freshness rule: one small query reads the stored rows on every call; the Settings are
    rebuilt (and secrets decrypted) only when those rows changed since the last call for this
    store, so a change made by any process is seen at once and the unchanged case costs one read.
    Unknown stored names are ignored. A secret that cannot be decrypted (the key was replaced)
    reads as blank, so the admin is asked for it again.
    """
    rows = tuple(store.conn.execute("SELECT name, value, encrypted FROM settings ORDER BY name"))
    with _CACHE_LOCK:
        cached = _CACHE.get(store)
    if cached is not None and cached[0] == rows:
        return cached[1]
    settings = _settings_from_rows(store, rows)
    with _CACHE_LOCK:
        _CACHE[store] = (rows, settings)
    return settings


_CACHE: "weakref.WeakKeyDictionary[Any, tuple[tuple, Settings]]" = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _settings_from_rows(store, rows: tuple) -> Settings:
    values: dict[str, Any] = {}
    for name, value, encrypted in rows:
        if name not in FIELDS or value is None:
            continue
        if encrypted:
            try:
                value = store.decrypt(value)
            except Exception:
                log.warning("stored secret %s cannot be decrypted; treating it as blank", name)
                value = ""
        values[name] = _from_text(name, value)
    return Settings(**values)


def apply_changes(stored: Settings, values: Mapping[str, Any],
                  keep_blank_secrets: bool = True) -> Settings:
    """``stored`` with ``values`` applied, as :func:`save_settings` would store them (with
    ``keep_blank_secrets``, the admin form's rule, a blank secret keeps the stored one).

    :raises InvalidSettings: when a value is invalid
    """
    given = {k: v for k, v in values.items()
             if not (keep_blank_secrets and k in SECRET_FIELDS and v in (None, ""))}
    return dataclasses.replace(stored, **clean_settings(given))


def save_settings(store, values: Settings | Mapping[str, Any], keep_blank_secrets: bool = True) -> Settings:
    """Validate and store ``values`` (a Settings or a dict of changes); returns the new settings.

    Secrets are encrypted. With ``keep_blank_secrets`` (the admin form's "a blank field keeps
    it"), a secret given as None or "" leaves the stored value untouched; otherwise it clears it.

    :raises InvalidSettings: when a value is invalid; nothing is saved then
    """
    raw = _as_dict(values)
    blank_secrets = {n for n in SECRET_FIELDS & set(raw) if raw[n] in (None, "")}
    cleaned = clean_settings({k: v for k, v in raw.items() if k not in blank_secrets})
    with store.transaction() as db:
        for name in blank_secrets:
            if not keep_blank_secrets:
                db.execute("DELETE FROM settings WHERE name = ?", [name])
        for name, value in cleaned.items():
            encrypted = name in SECRET_FIELDS
            text = store.encrypt(_to_text(value)) if encrypted else _to_text(value)
            db.execute(
                "INSERT INTO settings (name, value, encrypted) VALUES (?, ?, ?) ON CONFLICT "
                "(name) DO UPDATE SET value = excluded.value, encrypted = excluded.encrypted",
                [name, text, int(encrypted)],
            )
    return load_settings(store)


def clear_credentials(store) -> None:
    """Disconnect: remove the stored username, password, security token and OAuth refresh token.

    Connection options (login URL, sandbox, CA bundle, OAuth client id and secret) are kept.
    """
    with store.transaction() as db:
        db.execute(
            f"DELETE FROM settings WHERE name IN ({', '.join('?' for _ in CREDENTIAL_FIELDS)})",
            list(CREDENTIAL_FIELDS),
        )
