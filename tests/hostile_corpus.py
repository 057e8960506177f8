"""The hostile corpus: what an attacker, a broken host or a broken Salesforce may hand sfcti, as
data. tests/test_hostile_corpus.py (hooks, CLI, settings, SIP, HTTP service, emulator answers) and
tests/test_admin_hostile.py (admin forms and query parameters) run every entry.

Each area is a list of entries ``(id, ...)``; the id names the entry in the test report. What each
entry must give (no 500, no traceback, no exception into the host, a refusal that says why) is
asserted by the runners; an entry only says what goes in and, for a refusal, which words the
message must hold.
"""

from __future__ import annotations

import datetime as dt

MB = 1_000_000

# ---------------------------------------------------------------------------------------------
# hostile values
# ---------------------------------------------------------------------------------------------


class RaisingStr(str):
    """A str whose every method raises (a host's 'smart' string type gone wrong)."""

    def _boom(self, *args, **kwargs):
        raise RuntimeError("RaisingStr refuses")

    __str__ = __repr__ = __len__ = __iter__ = __getitem__ = __hash__ = __eq__ = _boom
    strip = lower = upper = encode = replace = translate = split = startswith = _boom


class RaisingObject:
    """An object whose conversions all raise."""

    def __str__(self):
        raise RuntimeError("no str for you")

    __repr__ = __format__ = __bool__ = __int__ = __float__ = __index__ = __len__ = __str__


class Nested:
    """An object nesting another call-like object and itself."""

    def __init__(self):
        self.inner = self
        self.remote_number = "03-1234-5678"

    def __str__(self):
        return "<nested " + "x" * 10_000 + ">"


# Text a person or a carrier could type or send; also used for CLI, admin, SIP and HTTP values.
HOSTILE_TEXT = {
    "empty": "",
    "spaces": "   ",
    "1MB digits": "9" * MB,
    "1MB kana": "あ" * (MB // 3),
    "NUL": "03-1234-5678\x00",
    "NUL only": "\x00",
    "CR LF": "03-1234\r\n-5678",
    "header injection": "x\r\nX-Injected: 1",
    "lone surrogate": "\ud800",
    "surrogate in number": "03\udfff12345678",
    "RTL override": "\u202e8765-4321-30",
    "RTL override name": "agent\u202egnp.exe",
    "bidi isolate": "\u2066admin\u2069",
    "full-width digits": "０３－１２３４－５６７８",
    "full-width plain": "０３１２３４５６７８",
    "SOQL quote": "' OR '1'='1",
    "SOQL in number": "03-1234-5678' OR Name != '",
    "SOQL paren": "0312345678') OR (Phone != null",
    "SOSL": "FIND {*} IN ALL FIELDS RETURNING Contact",
    "SOSL brace": "03-1234-5678} OR {*",
    "HTML script": "<script>alert(1)</script>",
    "HTML attribute": "\"><img src=x onerror=alert(1)>",
    "ANSI escape": "\x1b[2J\x1b[31m0312345678",
    "zero width": "03\u200b12345678",
    "emoji": "☎️📞",
    "LIKE wildcards": "%_%",
    "format string": "%s%n{0}{call_id!r}",
    "path traversal": "../../etc/passwd",
    "line separator": "03\u20281234\u20295678",
    "DEL and C1": "03\x7f\x85\x9b1234",
    "10k line": "x" * 10_000,
    "backslashes": "\\\\'\"\\",
}

# Values of any type a host may put in a call attribute.
HOSTILE_VALUES = {
    **HOSTILE_TEXT,
    "None": None,
    "huge int": 10 ** 5000,
    "negative int": -1,
    "int number": 312345678,
    "NaN": float("nan"),
    "infinity": float("inf"),
    "True": True,
    "bytes": b"0312345678",
    "bad UTF-8 bytes": b"\xff\xfe\x00\xc0",
    "1MB bytes": b"1" * MB,
    "bytearray": bytearray(b"0312345679"),
    "list": ["03-1234-5678"],
    "dict": {"number": "03-1234-5678"},
    "set": {1, 2},
    "object": object(),
    "nested object": Nested(),
    "raising object": RaisingObject(),
    "raising str subclass": RaisingStr("03-1234-5678"),
    "naive datetime": dt.datetime(2024, 5, 20, 10, 0),
    "far datetime": dt.datetime.max,
    "date": dt.date(2024, 5, 20),
    "timedelta": dt.timedelta(days=-1),
    "ISO text date": "2024-05-20T10:00:00+09:00",
    "garbage date text": "9999-99-99T99:99",
}

CALL_ATTRIBUTES = ("call_id", "direction", "remote_number", "local_number", "agent_id",
                   "started_at", "ended_at", "answered")

# ---------------------------------------------------------------------------------------------
# hooks: one attribute of an otherwise ordinary call made hostile
# ---------------------------------------------------------------------------------------------

# Every hostile value in remote_number, agent_id and call_id; the others get the non-text values
# (their text is read the same way) and a few texts.
_TEXT_SAMPLE = ("empty", "1MB digits", "NUL", "lone surrogate", "RTL override", "HTML script",
                "full-width digits", "SOQL quote")
_OTHER_TYPES = [name for name in HOSTILE_VALUES if name not in HOSTILE_TEXT]

HOOK_ENTRIES = (
    [(f"{attr}={name}", attr, name) for attr in ("remote_number", "agent_id", "call_id")
     for name in HOSTILE_VALUES]
    + [(f"{attr}={name}", attr, name)
       for attr in ("direction", "local_number", "started_at", "ended_at", "answered")
       for name in [*_OTHER_TYPES, *_TEXT_SAMPLE]]
)

# Call-like objects that are not calls at all, or whose attributes raise.
WEIRD_CALLS = ["None", "object()", "int", "str", "dict", "every attribute raises",
               "attribute raises RecursionError", "getattr raises MemoryError",
               "missing attributes", "slots without values"]

# What passes through a hook into the host, by design.
PASS_THROUGH = ["KeyboardInterrupt", "SystemExit"]

# ---------------------------------------------------------------------------------------------
# settings (core.settings validation): (id, field, value, words the refusal must hold or None when
# the value may be accepted)
# ---------------------------------------------------------------------------------------------

_TEXT_FIELDS = ("username", "password", "security_token", "login_url", "ca_bundle", "contact_fetch",
                "time_zone", "nightly_time", "default_region", "api_version", "alert_recipients",
                "smtp_host", "smtp_user", "smtp_password", "smtp_sender", "admin_base_url",
                "auth_method", "oauth_client_id", "oauth_client_secret", "oauth_refresh_token",
                "activity_unmatched", "activity_language", "activity_subject", "call_url_template")
_NUMBER_FIELDS = ("screen_budget_ms", "no_match_ttl_seconds", "connect_timeout", "read_timeout",
                  "smtp_port", "alert_reminder_hours", "index_minutes", "index_full_days",
                  "index_bulk_threshold", "activity_api_share")
_BOOL_FIELDS = ("sandbox", "phone_index", "activity_logging")

SETTINGS_ENTRIES = (
    [(f"{f}=NUL", f, "a\x00b", "control") for f in _TEXT_FIELDS]
    + [(f"{f}=CRLF", f, "a\r\nb", "control") for f in _TEXT_FIELDS]
    + [(f"{f}=1MB", f, "a" * MB, None) for f in _TEXT_FIELDS]
    + [(f"{f}=lone surrogate", f, "\ud800", None) for f in _TEXT_FIELDS]
    + [(f"{f}=raising str", f, "raising str subclass", None) for f in _TEXT_FIELDS[:6]]
    + [(f"{f}=full-width", f, "１２３", None) for f in _NUMBER_FIELDS]
    + [(f"{f}=huge int", f, "huge int", "between") for f in _NUMBER_FIELDS]
    + [(f"{f}=NaN", f, "NaN", None) for f in _NUMBER_FIELDS]
    + [(f"{f}=SOQL", f, "' OR 1=1", "number") for f in _NUMBER_FIELDS]
    + [(f"{f}=list", f, "list", None) for f in _NUMBER_FIELDS + _BOOL_FIELDS]
    + [(f"{f}=maybe", f, "maybe", "on or off") for f in _BOOL_FIELDS]
    + [("unknown field", "admin_password", "x", "Unknown setting"),
       ("unknown field with NUL name", "user\x00name", "x", "Unknown setting")]
)

# ---------------------------------------------------------------------------------------------
# the command line: (id, arguments, the words the refusal must hold or None when it may run)
# Commands that start servers (admin, serve, emulator, demo) are only given arguments they must
# refuse before starting anything.
# ---------------------------------------------------------------------------------------------

_H = HOSTILE_TEXT
CLI_ENTRIES = (
    [(f"lookup {name}", ["lookup", "--", value], None)
     for name, value in _H.items() if name not in ("1MB kana",)]
    + [(f"call agent {name}", ["call", "inbound", "03-1234-5678", "--agent", value], None)
       for name, value in _H.items() if name in _TEXT_SAMPLE + ("CR LF", "bidi isolate")]
    + [(f"call outbound {name}", ["call", "outbound", "--", value], None)
       for name, value in _H.items() if name in _TEXT_SAMPLE + ("SOSL", "zero width")]
    + [(f"settings set {name}", ["settings", "set", "smtp_host", value], "smtp_host")
       for name, value in _H.items() if name in ("NUL", "CR LF", "1MB digits", "HTML script",
                                                 "SOQL quote", "RTL override", "header injection")]
    + [(f"settings set name {name}", ["settings", "set", value, "x"], "")
       for name, value in _H.items() if name in ("NUL", "HTML script", "SOQL quote", "empty",
                                                 "path traversal")]
    + [(f"refetch {name}", ["refetch", "--", value], "") for name, value in _H.items()
       if name in _TEXT_SAMPLE]
    + [(f"activity retry {name}", ["activity", "retry", "--", value], "")
       for name, value in _H.items() if name in _TEXT_SAMPLE]
    + [(f"agents search {name}", ["agents", "search", "--", value], None)
       for name, value in _H.items() if name in _TEXT_SAMPLE + ("LIKE wildcards",)]
    + [(f"agents list --search {name}", ["agents", "list", "--search", value], None)
       for name, value in _H.items() if name in ("NUL", "LIKE wildcards", "HTML script")]
    + [(f"agents map {name}", ["agents", "map", value, "005000000000001AAA"], "")
       for name, value in _H.items() if name in ("empty", "NUL", "1MB digits", "RTL override")]
    + [(f"agents map user {name}", ["agents", "map", "agent-1", value], "")
       for name, value in _H.items() if name in ("empty", "SOQL quote", "HTML script", "NUL")]
    + [(f"agents unmap {name}", ["agents", "unmap", value], None)
       for name, value in _H.items() if name in ("NUL", "SOQL quote", "1MB digits")]
    + [(f"agents list --limit {v!r}", ["agents", "list", "--limit", v], "limit")
       for v in ("-1", "0", "9" * 400, "abc", "０")]
    + [(f"connect --login-url {name}", ["connect", "--username", "u@example.com", "--password",
                                        "p", "--token", "", "--login-url", value], "login-url")
       for name, value in _H.items() if name in ("NUL", "HTML script", "header injection",
                                                 "path traversal", "RTL override")]
    + [(f"connect --username {name}", ["connect", "--username", value, "--password", "p", "--token", ""],
        "username") for name, value in _H.items() if name in ("NUL", "SOQL quote", "1MB digits")]
    # a login URL nobody answers on: an entry wrongly accepted cannot reach the internet
    + [(f"connect {option} {name}", ["connect", "--username", "u@example.com", "--password", "p",
                                     "--token", "", "--login-url", "https://127.0.0.1:1",
                                     option, value], option.lstrip("-"))
       for option in ("--password", "--token", "--ca-bundle")
       for name, value in _H.items() if name in ("NUL", "CR LF", "1MB digits")]
    + [("connect --ca-bundle missing file", ["connect", "--username", "u@example.com", "--password", "p",
                                             "--token", "", "--login-url", "https://127.0.0.1:1",
                                             "--ca-bundle", "/nonexistent/ca.pem"], "ca-bundle")]
    + [(f"fetch-contacts --date {v!r}", ["fetch-contacts", "--date", v], "")
       for v in ("２０２４-０１-０１", "2024-13-01", "' OR 1=1", "\x00")]
    + [(f"serve --port {v!r}", ["serve", "--port", v], "port") for v in ("0", "70000", "x")]
    + [(f"serve --threads {v!r}", ["serve", "--threads", v], "threads") for v in ("0", "-5")]
    + [(f"serve --host {name}", ["serve", "--host", value], "host")
       for name, value in _H.items() if name in ("NUL", "HTML script", "RTL override")]
    + [(f"admin --port {v!r}", ["admin", "--port", v], "port") for v in ("-1", "７００００")]
    + [(f"admin --host {name}", ["admin", "--host", value], "host")
       for name, value in _H.items() if name in ("NUL", "SOQL quote")]
    + [(f"emulator --size {v!r}", ["emulator", "--size", v], "size") for v in ("-1", "x")]
    + [(f"kamailio-config --listen {name}", ["kamailio-config", "--listen", value], "")
       for name, value in _H.items() if name in ("NUL", "CR LF", "HTML script", "empty")]
    + [(f"kamailio-config --agent-header {name}", ["kamailio-config", "--agent-header", value], "")
       for name, value in _H.items() if name in ("NUL", "CR LF", "header injection")]
    + [(f"kamailio-config --children {v!r}", ["kamailio-config", "--children", v], "children")
       for v in ("0", "100000")]
    + [(f"agents import {name}", ["agents", "import", value], "")
       for name, value in _H.items() if name in ("NUL", "path traversal", "empty")]
    + [(f"unknown command {name}", [value], "") for name, value in _H.items()
       if name in ("NUL", "HTML script", "RTL override")]
    + [(f"emulator --port {v!r}", ["emulator", "--port", v], "port") for v in ("99999", "-1")]
    + [(f"emulator --seed {v[:12]!r}", ["emulator", "--seed", v], "seed")
       for v in ("abc", "1e9", "9" * 5000, "\x00")]
    + [(f"emulator --daily-limit {v!r}", ["emulator", "--daily-limit", v], "daily-limit")
       for v in ("0", "-1")]
    + [(f"emulator --org-json {name}", ["emulator", "--org-json", value], "")
       for name, value in _H.items() if name in ("NUL", "path traversal", "empty", "CR LF")]
    + [(f"kamailio-config --agent-address {name}", ["kamailio-config", "--agent-address", value], "")
       for name, value in _H.items() if name in ("NUL", "HTML script", "CR LF", "SOQL quote")]
    + [("kamailio-config --agent-address 999.1.1.1/33", ["kamailio-config", "--agent-address",
                                                         "999.1.1.1/33"], "agent-address")]
    + [(f"kamailio-config --agent-user {name}", ["kamailio-config", "--agent-user", value], "")
       for name, value in _H.items() if name in ("NUL", "HTML script", "CR LF", "spaces")]
    + [(f"kamailio-config --ring-timeout {v!r}", ["kamailio-config", "--ring-timeout", v],
        "ring-timeout") for v in ("4", "601", "x")]
    + [(f"admin --reset-password {name}", ["admin", "--reset-password", value], None)
       for name, value in _H.items() if name in ("NUL", "1MB digits", "HTML script", "RTL override",
                                                 "CR LF")]
    + [(f"agents export {name}", ["agents", "export", value], "")
       for name, value in _H.items() if name in ("NUL", "CR LF")]
    + [("agents export to a folder", ["agents", "export", "/tmp"], ""),
       ("agents export to a missing folder", ["agents", "export", "/nonexistent/dir/agents.csv"], "")]
    + [(f"fresh instance: {' '.join(args)}", args, None)
       for args in (["status"], ["settings", "show", "--json"], ["index", "status", "--json"],
                    ["index", "sync", "--json"], ["index", "clear"], ["agents", "unknown", "--json"],
                    ["activity", "status", "--json"], ["activity", "send", "--json"],
                    ["errors", "--json"], ["history", "--json"])]
)

# ---------------------------------------------------------------------------------------------
# SIP headers through the Kamailio bridge: (id, pseudo-variable or header, value)
# ---------------------------------------------------------------------------------------------

SIP_FIELDS = ("$fU", "$ai", "$ci", "$rU", "$tU", "Privacy")
_SIP_VALUES = ("empty", "1MB digits", "NUL", "CR LF", "header injection", "lone surrogate",
               "RTL override", "full-width digits", "SOQL quote", "SOSL", "HTML script",
               "ANSI escape", "format string", "backslashes")
SIP_ENTRIES = [(f"{field}={name}", field, name) for field in SIP_FIELDS for name in _SIP_VALUES]
SIP_ENTRIES += [("$ai=sip uri with HTML", "$ai", "<sip:<script>@evil>"),
                ("$ai=tel uri with CRLF", "$ai", "tel:03\r\n1234"),
                ("$ai=nested angle brackets", "$ai", "<<<sip:0312345678@x>>>")]

# ---------------------------------------------------------------------------------------------
# the HTTP lookup service: (id, method, path with query, JSON body or None)
# ---------------------------------------------------------------------------------------------

_HTTP_VALUES = ("1MB digits", "NUL", "CR LF", "lone surrogate", "RTL override", "full-width digits",
                "SOQL quote", "SOSL", "HTML script", "zero width", "bidi isolate", "DEL and C1")
HTTP_LOOKUP_ENTRIES = [(f"lookup {param}={name}", param, name)
                       for param in ("number", "call_id", "agent_id", "direction", "format")
                       for name in _HTTP_VALUES]
HTTP_ENDED_ENTRIES = [(f"ended {field}={name}", field, name)
                      for field in ("remote_number", "agent_id", "local_number", "direction",
                                    "started_at", "answered")
                      for name in ("NUL", "HTML script", "RTL override", "huge int", "list",
                                   "None", "dict", "1MB digits")]

# ---------------------------------------------------------------------------------------------
# emulator answers: records Salesforce (or a broken org) may hold, found through the resolver
# (id, object, fields besides the phone)
# ---------------------------------------------------------------------------------------------

EMULATOR_RECORDS = [
    ("HTML last name", "Contact", {"LastName": "<script>alert(1)</script>"}),
    ("HTML first name", "Contact", {"LastName": "x", "FirstName": "\"><img src=x onerror=alert(1)>"}),
    ("control characters", "Contact", {"LastName": "山田\x00\x1b[2J\r\n太郎"}),
    ("RTL override", "Contact", {"LastName": "\u202eevil"}),
    ("10k name", "Contact", {"LastName": "長" * 10_000}),
    ("number as name", "Contact", {"LastName": 12345}),
    ("list as name", "Contact", {"LastName": ["a", "b"]}),
    ("object as name", "Contact", {"LastName": {"first": "x"}}),
    ("true as name", "Contact", {"LastName": True}),
    ("null name", "Contact", {"LastName": None}),
    ("huge number as name", "Contact", {"LastName": 10 ** 300}),
    ("float as name", "Contact", {"LastName": 1.5e308}),
    ("HTML account", "Account", {"Name": "<b>株式会社</b><script>x</script>"}),
    ("number account", "Account", {"Name": 42}),
    ("list account", "Account", {"Name": [1, 2]}),
    ("HTML lead company", "Lead", {"LastName": "田中", "Company": "<iframe src=//evil>"}),
    ("number lead company", "Lead", {"LastName": "田中", "Company": 7}),
    ("object lead name", "Lead", {"LastName": {"a": 1}, "Company": "c"}),
    ("SOQL in name", "Contact", {"LastName": "' OR Name != '"}),
    ("format string name", "Contact", {"LastName": "%s%n{0}"}),
    ("C1 control and line separator name", "Contact", {"LastName": "山田\x85\u2028太郎"}),
    ("bidi isolate name", "Contact", {"LastName": "\u2066admin\u2069"}),
    ("object as company", "Lead", {"LastName": "x", "Company": {"Name": "<b>x</b>"}}),
]


def entry_ids(entries) -> list[str]:
    """The ids of ``entries`` (their first item), for pytest's report."""
    return [entry[0] for entry in entries]

# ---------------------------------------------------------------------------------------------
# the admin (run by tests/test_admin_hostile.py, logged in): query parameters of every GET page,
# the forms not covered by its settings and alert lists, call ids in paths, uploaded CSV files
# ---------------------------------------------------------------------------------------------

ADMIN_VALUES = ("empty", "10k line", "NUL", "CR LF", "lone surrogate", "RTL override",
                "full-width digits", "SOQL quote", "SOSL", "HTML script", "HTML attribute",
                "format string", "path traversal", "LIKE wildcards")
ADMIN_QUERIES = {
    "/": ("x",), "/calls/": ("q", "page"), "/contacts/": ("q", "page"),
    "/errors/": ("integration", "code", "day", "page"), "/errors/common": ("lang",),
    "/agents/": ("q", "agent_id", "find", "page"), "/index/": ("page",), "/settings/": ("tab",),
    "/alerts/": ("x",), "/agents/export.csv": ("x",), "/lang/ja": ("next",),
    "/settings/oauth/callback": ("code", "state", "error", "error_description"),
}
ADMIN_QUERY_ENTRIES = [(f"GET {path}?{param}={name}", path, param, name)
                       for path, params in ADMIN_QUERIES.items() for param in params
                       for name in ADMIN_VALUES]
ADMIN_QUERY_ENTRIES += [("GET /calls/?page=5000 digits", "/calls/", "page", "9" * 5000),
                        ("GET /calls/?q=1MB", "/calls/", "q", "1MB digits")]

# (form's page, the URL it posts to, its submit button)
ADMIN_FORMS = {
    "index": ("/settings/", "/settings/index", "save_index",
              ("phone_index", "index_minutes", "index_full_days", "index_bulk_threshold")),
    "activity": ("/settings/", "/settings/activity", "save_activity",
                 ("activity_logging", "activity_unmatched", "activity_language", "activity_subject",
                  "call_url_template", "activity_api_share")),
    "map": ("/agents/", "/agents/map", "map_user", ("agent_id", "user_id")),
    "unmap": ("/agents/", "/agents/unmap", "unmap", ("agent_id",)),
}
_FORM_VALUES = ("empty", "10k line", "NUL", "CR LF", "RTL override", "full-width digits",
                "SOQL quote", "HTML script", "format string")
ADMIN_FORM_ENTRIES = [(f"POST {form} {field}={name}", form, field, name)
                      for form, (_, _, _, fields) in ADMIN_FORMS.items() for field in fields
                      for name in _FORM_VALUES]

ADMIN_CALL_ID_ENTRIES = [(f"POST /calls/<{name}>/{action}", action, name)
                         for action in ("refetch", "log-again")
                         for name in ("10k line", "NUL", "CR LF", "RTL override", "SOQL quote",
                                      "HTML script", "path traversal", "format string")]
ADMIN_LANG_ENTRIES = [(f"GET /lang/<{name}>", name)
                      for name in ("NUL", "HTML script", "path traversal", "10k line", "SOQL quote")]

ADMIN_CSV_FILES = [
    ("empty file", b""),
    ("not CSV", b"\x00\x01\x02\xff\xfe"),
    ("UTF-16", "agent,user\r\na1,005\r\n".encode("utf-16")),
    ("header only", b"agent_id,user_id\r\n"),
    ("HTML in a row", b"agent_id,user_id\r\n<script>alert(1)</script>,005000000000001AAA\r\n"),
    ("NUL in a row", b"agent_id,user_id\r\na\x00b,005000000000001AAA\r\n"),
    ("formula injection", b"agent_id,user_id\r\n=cmd|' /C calc'!A0,005000000000001AAA\r\n"),
    ("10k columns", b"agent_id,user_id" + b",x" * 10_000 + b"\r\n"),
    ("unterminated quote", b'agent_id,user_id\r\n"a1,005000000000001AAA\r\n'),
    ("RTL override", "agent_id,user_id\r\n\u202ea1,005000000000001AAA\r\n".encode()),
]

# Logging in (a fresh client; after a few refusals the throttle answers, which must say why too)
ADMIN_LOGIN_ENTRIES = [(f"login {field}={name}", field, name)
                       for field in ("username", "password")
                       for name in ("empty", "10k line", "NUL", "CR LF", "RTL override",
                                    "SOQL quote", "HTML script", "SOSL")]

# CSRF tokens sent with every POST route of the admin (the routes are read from its url_map)
ADMIN_CSRF_TOKENS = {"missing": None, "garbage": "x", "NUL": "\x00", "HTML": "<script>alert(1)</script>",
                     "10k": "a" * 10_000}
