"""A SOQL subset: parse a SELECT into a plan, run it against an Org, project records as REST does."""
import re
from dataclasses import dataclass, field as dc_field
from datetime import timezone

from emulator.org import index_key, parse_datetime, to_id18
from emulator.schema import STRING_TYPES

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
""", re.X)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}
KEYWORDS = frozenset("""SELECT FROM WHERE AND OR NOT IN LIKE NULL TRUE FALSE ORDER BY ASC DESC NULLS
    FIRST LAST LIMIT OFFSET GROUP HAVING WITH FOR COUNT""".split())
_INVALID_FIELD_TAIL = (" If you are attempting to use a custom field, be sure to append the '__c' after the "
                       "custom field name. Please reference your WSDL or the describe call for the "
                       "appropriate names.")
_INVALID_REL_TAIL = (" If you are attempting to use a custom relationship, be sure to append the '__r' after "
                     "the custom relationship name. Please reference your WSDL or the describe call for the "
                     "appropriate names.")
MAX_OFFSET = 2000


class QueryError(Exception):
    """A query Salesforce would reject: `code` (MALFORMED_QUERY, INVALID_FIELD...) and `message`."""

    def __init__(self, code, message, status=400):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


@dataclass
class Token:
    kind: str                  # string, datetime, date, number, op, punct, ident, keyword, eof
    value: object
    pos: int
    text: str


def tokenize(text, start=0):
    """Tokens of `text` from `start`; raises QueryError(MALFORMED_QUERY) on a stray character."""
    tokens, pos = [], start
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            bad = text[pos:pos + 1]
            if bad == "'":
                raise located(text, pos, "MALFORMED_QUERY", "line 1:%d no viable alternative at character "
                              "'%s'" % (pos, bad))
            raise located(text, pos, "MALFORMED_QUERY", f"unexpected token: '{bad}'")
        kind = m.lastgroup
        if kind != "ws":
            tokens.append(_make_token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("eof", None, len(text), "<EOF>"))
    return tokens


def _make_token(kind, raw, pos):
    if kind == "string":
        return Token(kind, re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)),
                                  raw[1:-1]), pos, raw)
    if kind == "ident" and raw.upper() in KEYWORDS:
        return Token("keyword", raw.upper(), pos, raw)
    if kind == "number":
        return Token(kind, float(raw) if "." in raw else int(raw), pos, raw)
    return Token(kind, raw, pos, raw)


def located(text, pos, code, message):
    """A QueryError whose message points at `pos` the way Salesforce's parser errors do."""
    row = text.count("\n", 0, pos) + 1
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start:line_end if line_end >= 0 else len(text)]
    col = pos - line_start
    start = max(0, col - 35)
    snippet = line[start:col + 45]
    return QueryError(code, f"\n{snippet}\n{' ' * (col - start)}^\nERROR at Row:{row}:Column:{col + 1}\n"
                            f"{message}")


# ---- plan -------------------------------------------------------------------------------------

@dataclass
class FieldPath:
    """A selected or filtered field: relationship hops then the final field."""
    hops: list                 # [(relationship name, reference Field, target object name)]
    field: object              # schema.Field
    obj: str                   # object that owns `field`

    @property
    def direct(self):
        return not self.hops


@dataclass
class Query:
    obj: str
    fields: list = dc_field(default_factory=list)
    count_only: bool = False
    where: object = None
    order: list = dc_field(default_factory=list)    # [(FieldPath, desc, nulls_first)]
    limit: int | None = None
    offset: int = 0


class Parser:
    """Recursive-descent parser for SELECT ... FROM ... [WHERE] [ORDER BY] [LIMIT] [OFFSET]."""

    def __init__(self, text, org, start=0):
        self.text, self.org = text, org
        self.tokens = tokenize(text, start)
        self.i = 0

    def peek(self, offset=0):
        """The token `offset` places ahead (EOF at the end)."""
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def next(self):
        """Consume and return the current token."""
        tok = self.peek()
        self.i += 1
        return tok

    def is_kw(self, *words, offset=0):
        """True when the token `offset` ahead is one of the keywords `words`."""
        tok = self.peek(offset)
        return tok.kind == "keyword" and tok.value in words

    def expect_kw(self, word):
        """Consume keyword `word` or raise MALFORMED_QUERY."""
        if not self.is_kw(word):
            raise self.unexpected()
        return self.next()

    def expect_punct(self, char):
        """Consume punctuation `char` or raise MALFORMED_QUERY."""
        tok = self.peek()
        if tok.kind != "punct" or tok.value != char:
            raise self.unexpected()
        return self.next()

    def unexpected(self, tok=None):
        """The MALFORMED_QUERY error Salesforce gives for `tok` (default: the current token)."""
        tok = tok or self.peek()
        shown = "<EOF>" if tok.kind == "eof" else tok.text
        return located(self.text, tok.pos, "MALFORMED_QUERY", f"unexpected token: {shown}"
                       if tok.kind == "eof" else f"unexpected token: '{shown}'")

    def parse(self):
        """The Query plan; raises QueryError as Salesforce would."""
        self.expect_kw("SELECT")
        select_tokens, count_only = self.select_list()
        self.expect_kw("FROM")
        obj_tok = self.next()
        if obj_tok.kind != "ident":
            raise self.unexpected(obj_tok)
        query = Query(self.resolve_object(obj_tok), count_only=count_only)
        query.fields = self.resolve_fields(query.obj, select_tokens)
        self.clauses(query)
        if self.peek().kind != "eof":
            raise self.unexpected()
        return query

    def clauses(self, query):
        """Parse WHERE, ORDER BY, LIMIT and OFFSET into `query`."""
        if self.is_kw("WHERE"):
            self.next()
            query.where = self.condition(query.obj)
        if self.is_kw("ORDER"):
            self.next()
            self.expect_kw("BY")
            query.order = self.order_list(query.obj)
        if self.is_kw("LIMIT"):
            self.next()
            query.limit = self.integer()
        if self.is_kw("OFFSET"):
            self.next()
            query.offset = self.integer()
            if query.offset > MAX_OFFSET:
                raise QueryError("NUMBER_OUTSIDE_VALID_RANGE",
                                 f"Maximum SOQL offset allowed is {MAX_OFFSET}")

    def select_list(self):
        """(field tokens, count_only) of a SELECT list."""
        if self.is_kw("COUNT") and self.peek(1).value == "(" and self.peek(2).value == ")":
            self.i += 3
            return [], True
        names = [self.field_token()]
        while self.peek().kind == "punct" and self.peek().value == ",":
            self.next()
            names.append(self.field_token())
        return names, False

    def field_token(self):
        """Consume a field name or path token."""
        tok = self.next()
        if tok.kind != "ident":
            raise self.unexpected(tok)
        return tok

    def integer(self):
        """Consume an integer literal."""
        tok = self.next()
        if tok.kind != "number" or not isinstance(tok.value, int):
            raise self.unexpected(tok)
        return tok.value

    def resolve_object(self, tok):
        """The canonical object name of `tok`, or INVALID_TYPE."""
        if tok.value.lower() not in {name.lower(): name for name in self.org.schema}:
            raise located(self.text, tok.pos, "INVALID_TYPE",
                          f"sObject type '{tok.value}' is not supported. If you are attempting to use a "
                          "custom object, be sure to append the '__c' after the entity name. Please "
                          "reference your WSDL or the describe call for the appropriate names.")
        return {name.lower(): name for name in self.org.schema}[tok.value.lower()]

    def resolve_fields(self, obj, tokens):
        """FieldPaths of `tokens`, duplicates dropped."""
        paths, seen = [], set()
        for tok in tokens:
            path = self.resolve_path(obj, tok)
            key = tuple(h[0] for h in path.hops) + (path.field.name,)
            if key not in seen:
                seen.add(key)
                paths.append(path)
        return paths

    def resolve_path(self, obj, tok):
        """The FieldPath for `Name` or `Account.Owner.Name`; INVALID_FIELD when it does not exist."""
        parts = tok.value.split(".")
        if len(parts) > 1 and parts[0].lower() == obj.lower():
            parts = parts[1:]                   # "Contact.Phone" FROM Contact is allowed
        hops, current = [], obj
        for part in parts[:-1]:
            ref = self.org.schema[current].relationship(part)
            if ref is None or len(ref.reference_to) != 1:
                raise located(self.text, tok.pos, "INVALID_FIELD",
                              f"Didn't understand relationship '{part}' in field path."
                              + _INVALID_REL_TAIL)
            hops.append((ref.relationship_name, ref, ref.reference_to[0]))
            current = ref.reference_to[0]
        f = self.org.schema[current].field(parts[-1])
        if f is None:
            entity = current
            raise located(self.text, tok.pos, "INVALID_FIELD",
                          f"No such column '{parts[-1]}' on entity '{entity}'." + _INVALID_FIELD_TAIL)
        return FieldPath(hops, f, current)

    def order_list(self, obj):
        """The ORDER BY items."""
        items = [self.order_item(obj)]
        while self.peek().kind == "punct" and self.peek().value == ",":
            self.next()
            items.append(self.order_item(obj))
        return items

    def order_item(self, obj):
        """(FieldPath, desc, nulls_first) of one ORDER BY item."""
        path = self.resolve_path(obj, self.field_token())
        desc = False
        if self.is_kw("ASC", "DESC"):
            desc = self.next().value == "DESC"
        nulls_first = not desc
        if self.is_kw("NULLS"):
            self.next()
            if not self.is_kw("FIRST", "LAST"):
                raise self.unexpected()
            nulls_first = self.next().value == "FIRST"
        return path, desc, nulls_first

    # WHERE: SOQL refuses AND and OR mixed at one level without parentheses.
    def condition(self, obj):
        """A WHERE condition: one term, or terms joined by only AND or only OR."""
        first = self.unary(obj)
        if not self.is_kw("AND", "OR"):
            return first
        op = self.peek().value
        children = [first]
        while self.is_kw("AND", "OR"):
            tok = self.next()
            if tok.value != op:
                raise self.unexpected(tok)
            children.append(self.unary(obj))
        return (op.lower(), children)

    def unary(self, obj):
        """NOT, a parenthesised condition, or a comparison."""
        if self.is_kw("NOT"):
            self.next()
            return ("not", self.unary(obj))
        if self.peek().kind == "punct" and self.peek().value == "(":
            self.next()
            node = self.condition(obj)
            self.expect_punct(")")
            return node
        return self.comparison(obj)

    def comparison(self, obj):
        """One field comparison: =, !=, <, <=, >, >=, [NOT] IN, LIKE."""
        ftok = self.field_token()
        path = self.resolve_path(obj, ftok)
        if self.is_kw("NOT") and self.is_kw("IN", offset=1):
            self.i += 2
            return ("in", path, self.value_list(path), True)
        if self.is_kw("IN"):
            self.next()
            return ("in", path, self.value_list(path), False)
        if self.is_kw("LIKE"):
            self.next()
            tok = self.next()
            if tok.kind != "string":
                raise self.unexpected(tok)
            return ("like", path, _like_regex(tok.value))
        op_tok = self.next()
        if op_tok.kind != "op":
            raise self.unexpected(op_tok)
        op = "!=" if op_tok.value == "<>" else op_tok.value
        return ("cmp", path, op, self.literal(path))

    def value_list(self, path):
        """The parenthesised literals of IN."""
        self.expect_punct("(")
        values = [self.literal(path)]
        while self.peek().kind == "punct" and self.peek().value == ",":
            self.next()
            values.append(self.literal(path))
        self.expect_punct(")")
        return values

    def literal(self, path):
        """The next literal, checked against the field's type as Salesforce checks it."""
        tok = self.next()
        if tok.kind == "keyword" and tok.value == "NULL":
            return None
        ftype = path.field.type
        if tok.kind == "keyword" and tok.value in ("TRUE", "FALSE"):
            value, given = tok.value == "TRUE", "boolean"
        elif tok.kind in ("string", "number", "date", "datetime"):
            value, given = tok.value, tok.kind
        else:
            raise self.unexpected(tok)
        return self.typed(path, ftype, value, given, tok)

    def typed(self, path, ftype, value, given, tok):
        """`value` converted for the field, or the error Salesforce gives for a mistyped literal."""
        wanted = ("string" if ftype in STRING_TYPES else "number" if ftype in ("int", "double")
                  else ftype)
        if wanted != given:
            quoted = "and should be enclosed in quotes" if wanted == "string" else \
                "and should not be enclosed in quotes"
            type_name = {"datetime": "dateTime", "number": ftype}.get(wanted, wanted)
            raise located(self.text, tok.pos, "INVALID_FIELD",
                          f"value of filter criterion for field '{path.field.name}' must be of type "
                          f"{type_name} {quoted}")
        if ftype in ("id", "reference"):
            id18 = to_id18(value)
            if id18 is None and value != "":
                raise located(self.text, tok.pos, "INVALID_QUERY_FILTER_OPERATOR",
                              f"invalid ID field: {value}")
            return id18 or value
        if ftype == "datetime":
            try:
                datetime_key(value)
            except (ValueError, OverflowError):     # no such day, or beyond year 1..9999 in UTC
                raise located(self.text, tok.pos, "MALFORMED_QUERY",
                              f"line 1:{tok.pos} no viable alternative at character '{value}'") from None
        return value


def _like_regex(pattern):
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.I | re.S)


def datetime_key(value):
    """A datetime (stored value or SOQL literal, any offset) as a UTC text that sorts and compares
    chronologically: 2024-05-20T20:49:32.000."""
    if value is None:
        return None
    if type(value) is str and len(value) == 28 and value.endswith("+0000"):
        return value[:23]              # what the org stores: already UTC
    moment = parse_datetime(value).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def parse(text, org):
    """Parse SOQL `text` against `org`'s schema into a Query; raises QueryError."""
    if not text or not text.strip():
        raise QueryError("MALFORMED_QUERY", "unexpected token: <EOF>")
    return Parser(text, org).parse()


# ---- evaluation -------------------------------------------------------------------------------

def value_of(org, record, path):
    """The value of `path` on `record`, following parent relationships (None when a hop is empty)."""
    for _, ref, _target in path.hops:
        found = org.get(record.get(ref.name))
        if found is None:
            return None
        record = found[1]
    return record.get(path.field.name)


def compile_where(org, node):
    """A predicate record -> bool for a WHERE tree."""
    kind = node[0]
    if kind in ("and", "or"):
        preds = [compile_where(org, child) for child in node[1]]
        if kind == "and":
            return lambda r: all(p(r) for p in preds)
        return lambda r: any(p(r) for p in preds)
    if kind == "not":
        inner = compile_where(org, node[1])
        return lambda r: not inner(r)
    path = node[1]
    get = (lambda r: r.get(path.field.name)) if path.direct else (lambda r: value_of(org, r, path))
    if kind == "in":
        return _in_predicate(get, path, node[2], node[3])
    if kind == "like":
        regex = node[2]
        return lambda r: isinstance(get(r), str) and regex.fullmatch(get(r)) is not None
    return _cmp_predicate(get, path, node[2], node[3])


def _norm(path, value):
    if value is None:
        return None
    if path.field.type == "datetime" and isinstance(value, str):
        return datetime_key(value)
    return index_key(value)


def _in_predicate(get, path, values, negate):
    wanted = {_norm(path, v) for v in values}
    if negate:
        return lambda r: _norm(path, get(r)) not in wanted
    return lambda r: _norm(path, get(r)) in wanted


def _cmp_predicate(get, path, op, literal):
    want = _norm(path, literal)
    if op == "=":
        return lambda r: _norm(path, get(r)) == want
    if op == "!=":
        return lambda r: _norm(path, get(r)) != want
    compare = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
               ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[op]

    def ordered(r):
        have = _norm(path, get(r))
        return have is not None and want is not None and compare(have, want)
    return ordered


def candidates(org, obj, node):
    """Records that can possibly match, from indexes; None when a scan is needed."""
    if node is None:
        return None
    kind = node[0]
    if kind == "or":
        parts = [candidates(org, obj, child) for child in node[1]]
        if any(p is None for p in parts):
            return None
        merged = {r["Id"]: r for part in parts for r in part}
        return org.in_order(merged.values())
    if kind == "and":
        parts = [p for p in (candidates(org, obj, child) for child in node[1]) if p is not None]
        return min(parts, key=len) if parts else None
    if kind == "cmp" and node[2] == "=" and node[1].direct and org.indexable(obj, node[1].field.name):
        return org.lookup(obj, node[1].field.name, [node[3]])
    if kind == "in" and not node[3] and node[1].direct and org.indexable(obj, node[1].field.name):
        return org.lookup(obj, node[1].field.name, node[2])
    return None


def execute(org, query, include_deleted=False):
    """All records matching `query`, ordered, offset and limited (not yet projected); with
    `include_deleted` (queryAll) the recycle bin's records too."""
    if include_deleted:
        # Under the org's lock: a record moving to or from the recycle bin meanwhile would
        # otherwise be seen twice or not at all.
        with org.lock:
            pool = _pool(org, query) + org.recycle_bin(query.obj)
    else:
        pool = _pool(org, query)
    if query.where is not None:
        pred = compile_where(org, query.where)
        pool = [r for r in pool if pred(r)]
    pool = sort_records(org, pool, query.order)
    end = None if query.limit is None else query.offset + query.limit
    return pool[query.offset:end]


def _pool(org, query):
    pool = candidates(org, query.obj, query.where)
    return list(org.records[query.obj]) if pool is None else pool


def sort_records(org, records, order):
    """`records` sorted by ORDER BY items (stable, nulls placed as asked)."""
    for path, desc, nulls_first in reversed(order):
        null_rank = 0 if nulls_first != desc else 2

        def key(r, path=path, null_rank=null_rank):
            v = _norm(path, value_of(org, r, path))
            return (null_rank, "") if v is None else (1, v)
        records = sorted(records, key=key, reverse=desc)
    return records


def project(org, record, obj, paths, version):
    """A record as REST returns it: attributes, then the selected fields, parents nested."""
    out = {"attributes": {"type": obj, "url": f"/services/data/v{version}/sobjects/{obj}/{record['Id']}"}}
    for path in paths:
        _place(org, out, record, path, 0, version)
    return out


def _place(org, out, record, path, depth, version):
    if depth == len(path.hops):
        out[path.field.name] = record.get(path.field.name)
        return
    rel, ref, target = path.hops[depth]
    parent = org.get(record.get(ref.name))
    if parent is None:
        out.setdefault(rel, None)
        return
    nested = out.get(rel)
    if nested is None:
        pid = parent[1]["Id"]
        nested = out[rel] = {"attributes": {"type": target,
                                            "url": f"/services/data/v{version}/sobjects/{target}/{pid}"}}
    _place(org, nested, parent[1], path, depth + 1, version)
