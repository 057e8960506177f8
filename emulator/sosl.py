"""A SOSL subset: FIND {term} [IN group FIELDS] [RETURNING Obj(fields WHERE ... ORDER BY ... LIMIT n), ...]."""
import re
from dataclasses import dataclass, field as dc_field

from emulator.org import phone_digits
from emulator.soql import (Parser, Query, QueryError, Token, compile_where, located, project,
                           sort_records)

GROUPS = ("ALL", "NAME", "EMAIL", "PHONE", "SIDEBAR")
DEFAULT_OBJECTS = ("Account", "Contact", "Lead")
MAX_ROWS = 2000
_NAME_FIELDS = ("Name", "FirstName", "LastName", "Company", "Username")
_SEARCH_TEXT_TYPES = ("string", "email", "phone", "url", "picklist", "combobox")


@dataclass
class Search:
    term: str
    group: str = "ALL"
    returning: list = dc_field(default_factory=list)     # [Query] (fields default to Id)
    limit: int = MAX_ROWS


def parse_search(text, org):
    """Parse SOSL `text` into a Search; raises QueryError with MALFORMED_SEARCH/INVALID_FIELD/...."""
    try:
        return _parse(text, org)
    except QueryError as exc:
        if exc.code == "MALFORMED_QUERY":
            exc.code = "MALFORMED_SEARCH"
        raise


def _parse(text, org):
    m = re.match(r"\s*FIND\s*\{", text or "", re.I)
    if not m:
        words = (text or "").split()
        raise QueryError("MALFORMED_SEARCH", f"unexpected token: '{words[0]}'" if words
                         else "unexpected token: <EOF>")
    term, end = _brace_term(text, m.end())
    search = Search(term)
    parser = Parser(text, org, start=end)
    _parse_group(parser, search)
    _parse_returning(parser, search, org)
    if parser.is_kw("LIMIT"):
        parser.next()
        search.limit = min(parser.integer(), MAX_ROWS)
    if parser.peek().kind != "eof":
        raise parser.unexpected()
    if not search.returning:
        search.returning = [_id_only(parser, obj) for obj in DEFAULT_OBJECTS]
    _check_term(text, search.term)
    return search


def _brace_term(text, pos):
    out = []
    while pos < len(text):
        ch = text[pos]
        if ch == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
            continue
        if ch == "}":
            return "".join(out), pos + 1
        out.append(ch)
        pos += 1
    raise located(text, len(text), "MALFORMED_SEARCH", "unexpected token: <EOF>")


def _check_term(text, term):
    if len(re.sub(r"[\s*?\"]", "", term)) < 2:
        raise QueryError("MALFORMED_SEARCH", "search term must be longer than one character: " + term)


def _is_ident(parser, word):
    tok = parser.peek()
    return tok.kind == "ident" and tok.value.upper() == word


def _parse_group(parser, search):
    if not parser.is_kw("IN"):
        return
    parser.next()
    tok = parser.next()
    if tok.kind != "ident" or tok.value.upper() not in GROUPS:
        raise parser.unexpected(tok)
    search.group = tok.value.upper()
    if not _is_ident(parser, "FIELDS"):
        raise parser.unexpected()
    parser.next()


def _parse_returning(parser, search, org):
    if not _is_ident(parser, "RETURNING"):
        return
    parser.next()
    search.returning.append(_returning_item(parser, org))
    while parser.peek().kind == "punct" and parser.peek().value == ",":
        parser.next()
        search.returning.append(_returning_item(parser, org))


def _returning_item(parser, org):
    obj_tok = parser.next()
    if obj_tok.kind != "ident":
        raise parser.unexpected(obj_tok)
    obj = parser.resolve_object(obj_tok)
    query = Query(obj)
    if parser.peek().kind == "punct" and parser.peek().value == "(":
        parser.next()
        names, _ = parser.select_list()
        query.fields = parser.resolve_fields(obj, names)
        parser.clauses(query)
        parser.expect_punct(")")
    else:
        query.fields = parser.resolve_fields(obj, [_fake_token("Id")])
    return query


def _id_only(parser, obj):
    return Query(obj, fields=parser.resolve_fields(obj, [_fake_token("Id")]))


def _fake_token(name):
    return Token("ident", name, 0, name)


def _matches(org, obj, search):
    """Records of `obj` the search term finds in the chosen field group, in insertion order."""
    found = {}
    if search.group in ("PHONE", "ALL", "SIDEBAR"):
        digits = phone_digits(search.term)
        if digits:
            for record in org.search_digits(obj, digits):
                found[record["Id"]] = record
    if search.group != "PHONE":
        for record in _text_matches(org, obj, search):
            found[record["Id"]] = record
    return org.in_order(found.values())


def _text_matches(org, obj, search):
    words = [w.lower() for w in re.split(r"\s+", search.term.replace("*", "").replace('"', "")) if w]
    sobject = org.schema[obj]
    if search.group == "NAME":
        names = [n for n in _NAME_FIELDS if sobject.field(n)]
    elif search.group == "EMAIL":
        names = [f.name for f in sobject.fields.values() if f.type == "email"]
    else:
        names = [f.name for f in sobject.fields.values() if f.type in _SEARCH_TEXT_TYPES]
    for record in org.records[obj]:
        text = " ".join(str(record.get(n) or "") for n in names).lower()
        if all(w in text for w in words):
            yield record


def run_search(org, search, version):
    """The searchRecords list: each RETURNING object's matches, filtered, ordered, limited."""
    out = []
    for query in search.returning:
        pool = _matches(org, query.obj, search)
        if query.where is not None:
            pred = compile_where(org, query.where)
            pool = [r for r in pool if pred(r)]
        pool = sort_records(org, pool, query.order)
        end = None if query.limit is None else query.offset + query.limit
        for record in pool[query.offset:end]:
            if len(out) >= search.limit:
                return out
            out.append(project(org, record, query.obj, query.fields, version))
    return out
