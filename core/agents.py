"""Agents and their Salesforce users: who owns the Task of a call (issue 12, docs/activity.md).

A host names the agent who took or placed a call by an id of its own (``call.agent_id``; for the
Kamailio bridge the agent's SIP user). The admin maps each agent id to an active Salesforce user;
the Task of that agent's answered calls is then owned by that user, and by the connection user
otherwise. This module owns the ``agent_users`` table:

- :func:`search_users` and :func:`find_users` ask Salesforce for active users (one query each);
- :func:`map_agent`, :func:`unmap_agent`, :func:`list_mappings`, :func:`owners_for` keep the map;
- :func:`export_csv` and :func:`import_csv` move it in bulk, all or nothing;
- :func:`unknown_agents` lists the agents seen in calls that nobody mapped yet.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from typing import Iterable

from simple_salesforce.format import format_soql

from core import errors, history
from core.display import UNPRINTABLE, printable
from core.store import now_iso, select_in, substring_filter

AGENT_ID_MAX = 200               # the call history keeps agent ids up to this length
SEARCH_LIMIT = 50
CSV_MAX_ROWS = 10_000
CSV_MAX_BYTES = 2_000_000
CSV_HEADER = ("agent_id", "username", "email", "name", "user_id")
_USER_FIELDS = "Id, Name, Username, Email, IsActive"
_ID = re.compile(r"^005[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?$")
# a spreadsheet runs a cell that starts with one of these as a formula
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LOOKUP_CHUNK = 100               # keys per User query: keeps the query URL short
# the error-log operation of an agent mapped to a user who can no longer own Tasks; a change of
# the map closes it (the next Task of a still-wrong mapping opens it again)
OWNER_OPERATION = "agent_owner"


# ---------------------------------------------------------------------------------------------
# exceptions: the docstring is the message
# ---------------------------------------------------------------------------------------------

class AgentError(ValueError):
    "The agent mapping could not be changed."

    def __init__(self, detail: str | None = None):
        self.detail = detail or ""
        super().__init__(f"{self.__doc__} {self.detail}".strip())


class InvalidAgentId(AgentError):
    "An agent id must be 1 to 200 printable characters."


class UserNotFound(AgentError):
    "No active Salesforce user has this id, username or e-mail address."


# why a CSV file or row is refused: (English, Japanese), filled with the problem's values
CSV_PROBLEMS = {
    "agent_id": ("An agent id must be 1 to 200 printable characters.",
                 "担当者 ID は 1〜200 文字の表示できる文字で指定してください。"),
    "no_user": ("No username, e-mail address or user id.",
                "ユーザー名・メールアドレス・ユーザー ID のいずれもありません。"),
    "duplicate": ("Agent {agent} already appears on line {line}.",
                  "担当者 {agent} は {line} 行目にもあります。"),
    "unknown_user": ("No active Salesforce user has the username, e-mail address or id {key}.",
                     "ユーザー名・メールアドレス・ID が {key} の有効な Salesforce ユーザーはいません。"),
    "too_large": ("The file is larger than {mb} MB.", "ファイルが {mb} MB を超えています。"),
    "encoding": ("The file is neither UTF-8 nor Shift_JIS text.",
                 "ファイルが UTF-8 でも Shift_JIS のテキストでもありません。"),
    "binary": ("The file is not a CSV text file (it holds NUL characters).",
               "CSV のテキストファイルではありません（NUL 文字を含みます）。"),
    "header": ("The first line must name the columns: agent_id and one of username, email or user_id.",
               "1 行目に列名（agent_id と、username・email・user_id のいずれか）が必要です。"),
    "too_many": ("More than {rows} rows.", "{rows} 行を超えています。"),
    "not_csv": ("Not valid CSV: {error}", "CSV として読めません: {error}"),
    "empty": ("The file has no rows below the header.", "見出し行の下に行がありません。"),
}


@dataclasses.dataclass(frozen=True)
class CsvProblem:
    """Why one line of a CSV file (0: the whole file) was refused."""

    line: int
    key: str
    params: tuple = ()

    def message(self, lang: str = "en") -> str:
        """The reason in ``lang`` ("en" or "ja")."""
        en, ja = CSV_PROBLEMS[self.key]
        return (ja if lang == "ja" else en).format(**dict(self.params))


class CsvRejected(AgentError):
    "The CSV file was not imported: fix the rows listed and import it again. Nothing was changed."

    def __init__(self, found: list[CsvProblem]):
        self.found = sorted(found, key=lambda p: p.line)
        self.problems = [(p.line, p.message("en")) for p in self.found]
        super().__init__(f"({len(found)} rows)")

    def reasons(self, lang: str = "en") -> list[tuple[int, str]]:
        """(line, reason in ``lang``) for every refused line."""
        return [(p.line, p.message(lang)) for p in self.found]


# ---------------------------------------------------------------------------------------------
# Salesforce users
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SalesforceUser:
    """An active Salesforce user that can own Tasks."""

    user_id: str
    name: str
    username: str
    email: str

    @classmethod
    def from_record(cls, record: dict) -> "SalesforceUser":
        """The user from a User record of a query answer."""
        return cls(user_id=str(record.get("Id") or ""), name=str(record.get("Name") or ""),
                   username=str(record.get("Username") or ""), email=str(record.get("Email") or ""))


def search_users(connection, text: str, limit: int = SEARCH_LIMIT) -> list[SalesforceUser]:
    """Active users whose name, username or e-mail contains ``text`` (all of them, up to
    ``limit``, for an empty text), by name; one query.

    :raises core.salesforce.SalesforceError: as Connection.query
    """
    text = printable(text, marker="")[:80]
    if text:
        soql = format_soql(
            "SELECT " + _USER_FIELDS + " FROM User WHERE IsActive = true AND UserType = 'Standard' "
            "AND (Name LIKE '%{text:like}%' OR Username LIKE '%{text:like}%' "
            "OR Email LIKE '%{text:like}%') ORDER BY Name LIMIT {limit}",
            text=text, limit=int(limit))
    else:
        soql = format_soql("SELECT " + _USER_FIELDS + " FROM User WHERE IsActive = true "
                           "AND UserType = 'Standard' ORDER BY Name LIMIT {limit}", limit=int(limit))
    return [SalesforceUser.from_record(r) for r in connection.query(soql).get("records", [])]


def find_users(connection, keys: Iterable[str]) -> dict[str, SalesforceUser]:
    """The active users named by ``keys`` (user ids, usernames or e-mail addresses), keyed by
    the key as given, lower-cased; keys no active user has are missing. One query per 100 keys.

    An e-mail address several active users share is left out: it does not name one user.
    """
    wanted = sorted({k.strip() for k in keys if k and k.strip()})
    found: dict[str, SalesforceUser] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start:start + LOOKUP_CHUNK]
        ids = [k for k in chunk if _ID.match(k)]
        soql = format_soql(
            "SELECT " + _USER_FIELDS + " FROM User WHERE IsActive = true AND UserType = 'Standard' "
            "AND (Id IN {ids} OR Username IN {names} OR Email IN {names})",
            ids=ids or ["000000000000000"], names=chunk)
        users = [SalesforceUser.from_record(r) for r in connection.query(soql).get("records", [])]
        found.update(_match_keys(chunk, users))
    return found


def _match_keys(keys: list[str], users: list[SalesforceUser]) -> dict[str, SalesforceUser]:
    by_id = {u.user_id[:15]: u for u in users}
    by_username = {u.username.lower(): u for u in users}
    by_email: dict[str, list[SalesforceUser]] = {}
    for user in users:
        by_email.setdefault(user.email.lower(), []).append(user)
    matched = {}
    for key in keys:
        lowered = key.lower()
        user = by_id.get(key[:15]) if _ID.match(key) else None
        user = user or by_username.get(lowered)
        if user is None and len(by_email.get(lowered, [])) == 1:
            user = by_email[lowered][0]
        if user is not None:
            matched[lowered] = user
    return matched


# ---------------------------------------------------------------------------------------------
# the map
# ---------------------------------------------------------------------------------------------

MAPPING_COLUMNS = ("agent_id", "user_id", "user_name", "username", "email", "mapped_at")


def clean_agent_id(value) -> str:
    """``value`` as an agent id: the text the history keeps for it (trimmed).

    :raises InvalidAgentId: when it is not text, empty, longer than 200 characters or holds
        control or text-direction characters
    """
    if not isinstance(value, str):
        raise InvalidAgentId()
    text = value.strip()
    if not text or len(text) > AGENT_ID_MAX or UNPRINTABLE.search(text):
        raise InvalidAgentId()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        raise InvalidAgentId() from None
    return text


def map_agent(store, agent_id: str, user: SalesforceUser) -> dict:
    """Map ``agent_id`` to ``user`` (replacing an earlier mapping); returns the row.

    :raises InvalidAgentId: see :func:`clean_agent_id`
    """
    row = _mapping_row(clean_agent_id(agent_id), user)
    with store.transaction() as db:
        _upsert(db, [row])
    errors.record_recovery(store, "salesforce", OWNER_OPERATION)
    return row


def _mapping_row(agent_id: str, user: SalesforceUser) -> dict:
    return {"agent_id": agent_id, "user_id": user.user_id, "user_name": user.name,
            "username": user.username, "email": user.email, "mapped_at": now_iso()}


def _upsert(db, rows: list[dict]) -> None:
    db.conn.executemany(
        f"INSERT INTO agent_users ({', '.join(MAPPING_COLUMNS)}) "
        f"VALUES ({', '.join(':' + c for c in MAPPING_COLUMNS)}) "
        "ON CONFLICT (agent_id) DO UPDATE SET user_id = excluded.user_id, "
        "user_name = excluded.user_name, username = excluded.username, email = excluded.email, "
        "mapped_at = excluded.mapped_at", rows)


def unmap_agent(store, agent_id: str) -> bool:
    """Forget the mapping of ``agent_id``; False when there was none."""
    with store.transaction() as db:
        return db.execute("DELETE FROM agent_users WHERE agent_id = ?", [agent_id]).rowcount == 1


SEARCHED_COLUMNS = ("agent_id", "user_name", "username", "email")


def list_mappings(store, search: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
    """The mappings by agent id; ``search`` matches agent, name, username or e-mail."""
    where, params = substring_filter(search, SEARCHED_COLUMNS)
    cursor = store.conn.execute(
        f"SELECT {', '.join(MAPPING_COLUMNS)} FROM agent_users{where} ORDER BY agent_id "
        "LIMIT :limit OFFSET :offset", dict(params, limit=int(limit), offset=int(offset)))
    return [dict(zip(MAPPING_COLUMNS, row)) for row in cursor.fetchall()]


def count_mappings(store, search: str | None = None) -> int:
    """How many mappings :func:`list_mappings` pages through."""
    where, params = substring_filter(search, SEARCHED_COLUMNS)
    return store.conn.execute(f"SELECT count(*) FROM agent_users{where}", params).fetchone()[0]


def owners_for(store, agent_ids: Iterable[str | None]) -> dict[str, dict]:
    """``{agent_id: mapping row}`` for those of ``agent_ids`` that are mapped."""
    rows = select_in(store.conn, f"SELECT {', '.join(MAPPING_COLUMNS)} FROM agent_users "
                                 "WHERE agent_id IN ({marks})", sorted({a for a in agent_ids if a}))
    return {row[0]: dict(zip(MAPPING_COLUMNS, row)) for row in rows}


def unknown_agents(store, limit: int = 100) -> list[dict]:
    """Agents seen in calls and not mapped: ``{"agent_id", "calls", "last_call_at"}``, the most
    recent first."""
    seen = history.agents_seen(store)
    mapped = owners_for(store, [a["agent_id"] for a in seen])
    return [a for a in seen if a["agent_id"] not in mapped][:limit]


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------

def export_csv(store) -> str:
    """Every mapping as CSV (header ``agent_id,username,email,name,user_id``), safe to open in a
    spreadsheet: a cell that would start a formula gets a leading apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in list_mappings(store, limit=10**9):
        writer.writerow([_cell(row[c]) for c in ("agent_id", "username", "email", "user_name", "user_id")])
    return out.getvalue()


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


@dataclasses.dataclass
class ImportReport:
    """What :func:`import_csv` did."""

    mapped: int = 0
    unchanged: int = 0


def import_csv(store, data: bytes | str, connection) -> ImportReport:
    """Map the agents of a CSV file: a column ``agent_id`` and one naming the user (``username``,
    ``email`` or ``user_id``; the first filled one of these counts). Either every row is mapped or
    none: a file with any bad row raises :class:`CsvRejected` listing each bad row (its line
    number and why) and changes nothing. A file exported by :func:`export_csv` imports as is.

    :raises CsvRejected: when the file or any row is bad
    :raises core.salesforce.SalesforceError: when Salesforce cannot be asked for the users
    """
    rows = _read_rows(data)
    problems: list[CsvProblem] = []
    wanted: dict[str, tuple[int, str]] = {}
    for line, row in rows:
        try:
            agent_id = clean_agent_id(_uncell(row.get("agent_id")))
        except InvalidAgentId:
            problems.append(CsvProblem(line, "agent_id"))
            continue
        key = _user_key(row)
        if not key:
            problems.append(CsvProblem(line, "no_user"))
        elif agent_id in wanted:
            problems.append(CsvProblem(line, "duplicate", (("agent", agent_id), ("line", wanted[agent_id][0]))))
        else:
            wanted[agent_id] = (line, key)
    users = find_users(connection, [key for _, key in wanted.values()]) if wanted else {}
    mappings = []
    for agent_id, (line, key) in wanted.items():
        user = users.get(key.lower())
        if user is None:
            problems.append(CsvProblem(line, "unknown_user", (("key", key),)))
        else:
            mappings.append(_mapping_row(agent_id, user))
    if problems:
        raise CsvRejected(problems)
    return _apply(store, mappings)


def _apply(store, mappings: list[dict]) -> ImportReport:
    before = owners_for(store, [m["agent_id"] for m in mappings])
    changed = [m for m in mappings if (before.get(m["agent_id"]) or {}).get("user_id") != m["user_id"]]
    with store.transaction() as db:
        _upsert(db, changed)
    errors.record_recovery(store, "salesforce", OWNER_OPERATION)
    return ImportReport(mapped=len(changed), unchanged=len(mappings) - len(changed))


def _read_rows(data: bytes | str) -> list[tuple[int, dict]]:
    if isinstance(data, bytes):
        if len(data) > CSV_MAX_BYTES:
            raise CsvRejected([CsvProblem(0, "too_large", (("mb", CSV_MAX_BYTES // 1_000_000),))])
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                data = data.decode("cp932")   # what Excel on Japanese Windows saves
            except UnicodeDecodeError:
                raise CsvRejected([CsvProblem(0, "encoding")]) from None
    if "\x00" in data:
        raise CsvRejected([CsvProblem(0, "binary")])
    reader = csv.DictReader(io.StringIO(data.lstrip("\ufeff")))
    fields = [(f or "").strip().lower() for f in reader.fieldnames or []]
    if "agent_id" not in fields or not {"username", "email", "user_id"} & set(fields):
        raise CsvRejected([CsvProblem(1, "header")])
    reader.fieldnames = fields
    rows = []
    try:
        for row in reader:
            if len(rows) >= CSV_MAX_ROWS:
                raise CsvRejected([CsvProblem(reader.line_num, "too_many", (("rows", CSV_MAX_ROWS),))])
            if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise CsvRejected([CsvProblem(reader.line_num, "not_csv", (("error", str(exc)),))]) from None
    if not rows:
        raise CsvRejected([CsvProblem(1, "empty")])
    return rows


def _uncell(value) -> str:
    text = value if isinstance(value, str) else ""
    # undo export_csv's guard: "'=x" was written for "=x"
    return text[1:] if text.startswith("'") and text[1:2] in _FORMULA_START and text[1:] else text


def _user_key(row: dict) -> str:
    for column in ("username", "email", "user_id"):
        value = printable(_uncell(row.get(column)), marker="")
        if value:
            return value[:128]
    return ""

