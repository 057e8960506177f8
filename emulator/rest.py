"""The REST API behind /services/data: query, search, composite, sobjects, describe, limits."""
import json
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field as dc_field
from datetime import date
from urllib.parse import parse_qs, urlsplit

from emulator import bulk, replication, soql, sosl
from emulator.org import to_id18
from emulator.schema import KEY_PREFIXES, STRING_TYPES

DATA_PREFIX = "/services/data"
_VERSION_RE = re.compile(r"^/services/data/v(\d{2}\.\d)(/.*)?$")
SUPPORTED_VERSIONS = [f"{v}.0" for v in range(20, 67)]
BATCH_SIZE = 2000
MAX_SUBREQUESTS = 25
MAX_QUERY_SUBREQUESTS = 5
MAX_COLLECTION_RECORDS = 200
_REFERENCE_RE = re.compile(r"@\{([A-Za-z][A-Za-z0-9_]*)\.([^}]+)\}")
_HALTED = [{"errorCode": "PROCESSING_HALTED",
            "message": "The transaction was rolled back since another operation in the same transaction "
                       "failed."}]
_ROLLED_BACK = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using "
                           "AllOrNone header", "fields": []}


class ApiError(Exception):
    """A REST failure: HTTP status and Salesforce's JSON error list."""

    def __init__(self, status, code, message, fields=None):
        super().__init__(f"{status} {code}: {message}")
        entry = {"message": message, "errorCode": code}
        if fields is not None:
            entry["fields"] = list(fields)
        self.status, self.body = status, [entry]


def not_found():
    """The 404 Salesforce gives for an unknown resource."""
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


@dataclass
class Call:
    """One REST request, already authenticated."""
    method: str
    path: str                           # without query string
    params: dict                        # first value per name
    body: bytes = b""
    user_id: str | None = None
    headers: dict = dc_field(default_factory=dict)
    version: str = ""
    rest: str = ""                      # the path after /services/data/vXX.X/, no trailing slash
    log: dict = dc_field(default_factory=dict)
    all_or_none: bool = False           # a composite's allOrNone, which overrides a collection's


def split_url(url):
    """(path, params) of a request target; params keep the first value of each name."""
    parts = urlsplit(url)
    params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return parts.path, params


def classify(method, path, params):
    """The kind of a request, for counters, the request log and fault filters."""
    if path.startswith("/services/Soap/"):
        return "login"
    m = _VERSION_RE.match(path)
    if not m:
        return "versions" if path.rstrip("/") == DATA_PREFIX else "other"
    rest = (m.group(2) or "").strip("/")
    head, _, tail = rest.partition("/")
    if head in ("query", "queryAll"):
        return "query_more" if tail else "query"
    if head == "search":
        return "search"
    if head == "composite":
        return "collections" if tail.split("/")[0] == "sobjects" else "composite"
    if head == "limits":
        return "limits"
    if head == "jobs":
        return "bulk_query"
    if head == "sobjects":
        segments = [s for s in tail.split("/") if s]
        if len(segments) == 2 and segments[1] in ("deleted", "updated"):
            return "replication"
        if len(segments) <= 1 and method == "GET" or segments[-1:] == ["describe"]:
            return "describe"
        return "sobject"
    return "resources" if not rest else "other"


class RestApi:
    """Answers REST calls against an Org (HTTP, auth and limits are the server's business)."""

    def __init__(self, org, usage=lambda: (0, 0), batch_size=BATCH_SIZE):
        self.org = org
        self.usage = usage                     # () -> (used, max) of the daily API allowance
        self.batch_size = batch_size
        self._cursors = OrderedDict()          # locator -> (obj, records, fields, version, batch, head)
        self._cursor_lock = threading.Lock()
        self.jobs = bulk.QueryJobs(org)
        self.validation_rules = []             # ValidationRule, checked on create and update
        self.create_denied = set()             # objects the login user may not create

    # ---- org controls: validation rules and object permissions ----------------------------

    def add_validation_rule(self, object_name, error_message, condition, field=None):
        """An org validation rule: `condition(fields)` true means the save fails with
        FIELD_CUSTOM_VALIDATION_EXCEPTION and `error_message` (on `field`, when given)."""
        obj = self._known_object(object_name)
        if not callable(condition):
            raise TypeError("condition must be a callable(fields dict) -> bool")
        found = self.org.schema[obj].field(field) if field is not None else None
        if field is not None and found is None:
            raise ValueError(f"No field {field!r} on {obj}")
        self.validation_rules.append(ValidationRule(obj, str(error_message), condition,
                                                    found.name if found else None))

    def clear_validation_rules(self):
        """Remove every validation rule."""
        self.validation_rules.clear()

    def deny_create(self, object_name):
        """The login user loses create permission on the object (describe: createable false)."""
        self.create_denied.add(self._known_object(object_name))

    def allow_create(self, object_name):
        """Give create permission on the object back."""
        self.create_denied.discard(self._known_object(object_name))

    def _known_object(self, name):
        for obj in self.org.schema:
            if obj.lower() == str(name).lower():
                return obj
        raise ValueError(f"Unknown object {name!r}; known: {', '.join(self.org.schema)}")

    def handle(self, call):
        """(status, body, headers) for one call; ApiError becomes its status and error list."""
        try:
            return self._route(call)
        except ApiError as exc:
            return exc.status, exc.body, {}
        except (soql.QueryError, replication.ReplicationError) as exc:
            return exc.status, [{"message": exc.message, "errorCode": exc.code}], {}

    # ---- routing --------------------------------------------------------------------------

    def _route(self, call):
        m = _VERSION_RE.match(call.path)
        if not m or m.group(1) not in SUPPORTED_VERSIONS:
            raise not_found()
        call.version = m.group(1)
        call.rest = (m.group(2) or "").strip("/")
        head, _, tail = call.rest.partition("/")
        routes = {"": self._resources, "query": self._query_route, "queryAll": self._query_route,
                  "search": self._search, "composite": self._composite, "limits": self._limits,
                  "sobjects": self._sobjects, "jobs": self._jobs}
        if head not in routes:
            raise not_found()
        return routes[head](call, tail)

    def _only(self, call, *methods):
        if call.method not in methods:
            raise ApiError(405, "METHOD_NOT_ALLOWED",
                           f"HTTP Method '{call.method}' not allowed. Allowed are {','.join(methods)}")

    def _resources(self, call, _tail):
        self._only(call, "GET")
        base = f"/services/data/v{call.version}"
        names = ("sobjects", "query", "queryAll", "search", "composite", "limits")
        return 200, {name: f"{base}/{name}" for name in names}, {}

    # ---- query ----------------------------------------------------------------------------

    def _query_route(self, call, tail):
        self._only(call, "GET")
        if tail:
            return self._query_more(call, tail)
        text = call.params.get("q")
        if text is None:
            raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        call.log["soql"] = text
        head = call.rest.partition("/")[0]
        return 200, self.query(text, call.version, self._batch_size(call), head == "queryAll"), {}

    def _batch_size(self, call):
        options = call.headers.get("sforce-query-options", "")
        m = re.search(r"batchSize=(\d+)", options)
        return max(200, min(int(m.group(1)), BATCH_SIZE)) if m else self.batch_size

    def query(self, text, version, batch_size=None, include_deleted=False):
        """The first page of a SOQL query's result, as /query (or, with `include_deleted`,
        /queryAll) returns it."""
        plan = soql.parse(text, self.org)
        records = soql.execute(self.org, plan, include_deleted)
        if plan.count_only:
            return {"totalSize": len(records), "done": True, "records": []}
        head = "queryAll" if include_deleted else "query"
        cursor = (plan.obj, records, plan.fields, version, batch_size or self.batch_size, head)
        return self._page(cursor, 0, None)

    def _page(self, cursor, start, locator):
        # The cursor keeps references to the matching records, never copies of them.
        obj, records, fields, version, batch_size, head = cursor
        end = start + batch_size
        page = [soql.project(self.org, r, obj, fields, version) for r in records[start:end]]
        result = {"totalSize": len(records), "done": end >= len(records)}
        if not result["done"]:
            locator = locator or self._remember(cursor)
            result["nextRecordsUrl"] = f"/services/data/v{version}/{head}/{locator}-{end}"
        result["records"] = page
        return result

    def _remember(self, cursor):
        locator = "01g" + secrets.token_hex(8)[:12] + "AAA"
        with self._cursor_lock:
            self._cursors[locator] = cursor
            while len(self._cursors) > 50:      # each may hold a whole org's rows
                self._cursors.popitem(last=False)
        return locator

    def _query_more(self, call, tail):
        locator, _, start = tail.partition("-")
        with self._cursor_lock:
            cursor = self._cursors.get(locator)
        if cursor is None or not start.isdigit():
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        cursor = cursor[:3] + (call.version,) + cursor[4:]
        return 200, self._page(cursor, int(start), locator), {}

    # ---- search ---------------------------------------------------------------------------

    def _search(self, call, tail):
        self._only(call, "GET")
        if tail:
            raise not_found()
        text = call.params.get("q")
        if text is None:
            raise ApiError(400, "MALFORMED_SEARCH", "A search string has to be specified")
        call.log["sosl"] = text
        plan = sosl.parse_search(text, self.org)
        return 200, {"searchRecords": sosl.run_search(self.org, plan, call.version)}, {}

    # ---- limits ---------------------------------------------------------------------------

    def _limits(self, call, _tail):
        self._only(call, "GET")
        used, maximum = self.usage()
        return 200, {
            "DailyApiRequests": {"Max": maximum, "Remaining": max(0, maximum - used)},
            "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
            "FileStorageMB": {"Max": 1024, "Remaining": 1024},
            "SingleEmail": {"Max": 5000, "Remaining": 5000},
        }, {}

    # ---- sobjects -------------------------------------------------------------------------

    def _sobjects(self, call, tail):
        segments = [s for s in tail.split("/") if s]
        if not segments:
            self._only(call, "GET")
            return 200, self._describe_global(call.version), {}
        obj = self._object(segments[0])
        if len(segments) == 1:
            self._only(call, "GET", "POST")
            if call.method == "POST":
                return self._create(call, obj)
            return 200, {"objectDescribe": self._object_info(obj, call.version), "recentItems": []}, {}
        if segments[1] == "describe" and len(segments) == 2:
            self._only(call, "GET")
            return 200, self.describe(obj, call.version), {}
        if len(segments) == 2 and segments[1] in ("deleted", "updated"):
            self._only(call, "GET")
            answer = replication.get_deleted if segments[1] == "deleted" else replication.get_updated
            return 200, answer(self.org, obj, call.params), {}
        if len(segments) == 2:
            return self._record(call, obj, segments[1])
        raise not_found()

    def _object(self, name):
        try:
            return self._known_object(name)
        except ValueError:
            raise not_found() from None

    def _object_info(self, obj, version):
        base = f"/services/data/v{version}/sobjects/{obj}"
        return {"activateable": False, "createable": obj not in self.create_denied, "custom": False,
                "customSetting": False, "deletable": True, "keyPrefix": KEY_PREFIXES[obj], "label": self.org.schema[obj].label,
                "labelPlural": self.org.schema[obj].label_plural, "layoutable": True, "mergeable": False,
                "name": obj, "queryable": True, "retrieveable": True, "searchable": obj != "Task",
                "triggerable": True, "undeletable": True, "updateable": True,
                "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}}

    def _describe_global(self, version):
        return {"encoding": "UTF-8", "maxBatchSize": 200,
                "sobjects": [self._object_info(obj, version) for obj in self.org.schema]}

    def describe(self, obj, version):
        """describe() of one object: its info plus every field with name/type/length and flags."""
        info = self._object_info(obj, version)
        info["fields"] = [f.describe() for f in self.org.schema[obj].fields.values()]
        info["childRelationships"] = []
        info["recordTypeInfos"] = []
        return info

    def _record(self, call, obj, record_id):
        self._only(call, "GET", "PATCH", "DELETE")
        found = self.org.get(record_id)
        if found is None or found[0] != obj:
            deleted = self.org.get_deleted(record_id)
            if deleted and deleted[0] == obj and call.method != "GET":
                raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
            raise not_found()
        if call.method == "PATCH":
            if obj == "Lead" and found[1].get("IsConverted"):
                raise ApiError(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead",
                               [])
            fields = self._validated(obj, self._json_body(call), creating=False)
            self._check_rules(obj, {**found[1], **fields})
            self.org.update_record(obj, record_id, fields)
            return 204, None, {}
        if call.method == "DELETE":
            self.org.recycle(record_id)
            return 204, None, {}
        return 200, self._whole_record(obj, found[1], call), {}

    def _whole_record(self, obj, record, call):
        wanted = call.params.get("fields")
        sobject = self.org.schema[obj]
        if wanted:
            names = []
            for name in wanted.split(","):
                f = sobject.field(name.strip())
                if f is None:
                    raise ApiError(400, "INVALID_FIELD", f"No such column '{name.strip()}' on sobject of "
                                   f"type {obj}")
                names.append(f.name)
        else:
            names = list(sobject.fields)
        out = {"attributes": {"type": obj,
                              "url": f"/services/data/v{call.version}/sobjects/{obj}/{record['Id']}"}}
        out.update((name, record.get(name)) for name in names)
        return out

    # ---- Bulk API 2.0 query jobs ----------------------------------------------------------

    def _jobs(self, call, tail):
        kind, _, rest = tail.partition("/")
        if kind != "query":
            raise not_found()
        try:
            return self.jobs.handle(call, rest)
        except bulk.BulkError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None

    # ---- create / validate ----------------------------------------------------------------

    def _json_body(self, call):
        try:
            data = json.loads(call.body or b"null")
        except ValueError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "JSON_PARSER_ERROR",
                           "Cannot deserialize instance of sObject from non-object value")
        data.pop("attributes", None)
        return data

    def _create(self, call, obj):
        new_id = self._insert(call, obj, self._json_body(call))
        location = f"/services/data/v{call.version}/sobjects/{obj}/{new_id}"
        return 201, {"id": new_id, "success": True, "errors": []}, {"Location": location}

    def _insert(self, call, obj, data):
        """Create one record of `obj` from request fields as the calling user; its new Id, or
        ApiError. Shared by the single create and sObject Collections."""
        if obj in self.create_denied:
            raise ApiError(400, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id",
                           [])
        fields = self._validated(obj, data, creating=True)
        if call.user_id and obj != "User":
            fields.setdefault("OwnerId", call.user_id)
        self._check_rules(obj, fields)
        new_id = self.org.add_record(obj, fields)
        call.log.setdefault("created", []).append((obj, new_id))
        return new_id

    def _check_rules(self, obj, fields):
        for rule in list(self.validation_rules):
            if rule.object_name == obj and rule.condition(dict(fields)):
                raise ApiError(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.error_message,
                               [rule.field] if rule.field else [])

    def _validated(self, obj, data, creating):
        """`data` with canonical field names, or ApiError as Salesforce would answer."""
        sobject = self.org.schema[obj]
        out = {}
        for name, value in data.items():
            f = sobject.field(name)
            if f is None:
                raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj}")
            if f.name == "Id":
                raise ApiError(400, "INVALID_FIELD", "The Id field should not be specified in the sobject "
                               "data.")
            if not (f.createable if creating else f.updateable):
                raise ApiError(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                               f"Unable to create/update fields: {f.name}. Please check the security "
                               "settings of this field and verify that it is read/write for your profile "
                               "or permission set.", [f.name])
            out[f.name] = self._checked_value(f, value)
        if creating:
            self._check_required(sobject, out)
        self._check_references(sobject, out)
        self._check_owner_active(obj, out)
        if obj == "Task":
            self._check_task(out)
        return out

    def _checked_value(self, f, value):
        if value is None:
            return None
        kind = _json_kind(f.type)
        if kind == "str" and not isinstance(value, str) or kind == "bool" and not isinstance(value, bool) \
                or kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of {_java_type(f.type)} "
                           f"from {_token_name(value)} value {value} or request may be missing a required "
                           "field")
        if f.type == "date":
            _check_date(f, value)
        if f.type in STRING_TYPES and f.length and len(value) > f.length:
            raise ApiError(400, "STRING_TOO_LONG", f"{f.label}: data value too large: {value[:40]} "
                           f"(max length={f.length})", [f.name])
        if f.restricted and value not in f.picklist:
            raise ApiError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                           f"{f.label}: bad value for restricted picklist field: {value}", [f.name])
        return value

    def _check_required(self, sobject, data):
        missing = [f.name for f in sobject.fields.values() if f.required and data.get(f.name) in (None, "")]
        if missing:
            raise ApiError(400, "REQUIRED_FIELD_MISSING",
                           f"Required fields are missing: [{', '.join(missing)}]", missing)

    def _check_references(self, sobject, data):
        for name, value in data.items():
            f = sobject.fields[name]
            if f.type != "reference" or value in (None, ""):
                continue
            id18 = to_id18(value)
            if id18 is None:
                raise ApiError(400, "MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}",
                               [f.name])
            target = self.org.object_of(id18)
            if target is not None and target not in f.reference_to:
                raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION",
                               f"{f.label}: id value of incorrect type: {value}", [f.name])
            if self.org.get(id18) is None:
                raise ApiError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])
            data[name] = id18

    def _check_owner_active(self, obj, data):
        owner = self.org.get(data.get("OwnerId") or "")
        if owner is not None and owner[0] == "User" and owner[1].get("IsActive") is False:
            raise ApiError(400, "INACTIVE_OWNER_OR_USER", f"operation performed with inactive user "
                           f"[{owner[1]['Id']}] as owner of {obj.lower()}", ["OwnerId"])

    def _check_task(self, data):
        # Salesforce: "If the WhoId refers to a lead, then the WhatId field must be empty."
        if data.get("WhatId") and self.org.object_of(data.get("WhoId") or "") == "Lead":
            raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION", "field integrity exception: WhoId, WhatId "
                           "(Related To must be empty when Name is a lead)", ["WhoId", "WhatId"])
        if data.get("Status"):
            data["IsClosed"] = data["Status"] == "Completed"

    # ---- composite ------------------------------------------------------------------------

    def _composite(self, call, tail):
        self._only(call, "POST")
        if tail == "sobjects":
            return self._collections(call)
        if tail:
            raise not_found()
        payload = self._json_body(call)
        subrequests = payload.get("compositeRequest")
        if not isinstance(subrequests, list) or not subrequests:
            raise ApiError(400, "JSON_PARSER_ERROR", "compositeRequest: a non-empty list is required")
        _check_composite_size(subrequests)
        runner = _CompositeRun(self, call, bool(payload.get("allOrNone", False)))
        return 200, {"compositeResponse": runner.run(subrequests)}, {}

    # ---- sObject Collections: create ------------------------------------------------------

    def _collections(self, call):
        all_or_none, records = self._collection_request(call)
        with self.org.lock:                 # no other change interleaves with a batch and its roll-back
            results = [self._save_result(call, obj, data) for obj, data in records]
            created = [(i, obj, r["id"]) for i, ((obj, _), r) in enumerate(zip(records, results))
                       if r["success"]]
            if created and (all_or_none or call.all_or_none) and len(created) < len(records):
                self._roll_back_collection(call, created, results)
        return 200, results, {}

    def _save_result(self, call, obj, data):
        """The SaveResult of creating one record of a collection."""
        try:
            if "id" in {name.lower() for name in data}:
                raise ApiError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            return {"id": self._insert(call, obj, data), "success": True, "errors": []}
        except ApiError as exc:
            return {"success": False, "errors": [_save_error(exc)]}

    def _collection_request(self, call):
        """(allOrNone, [(object, fields)]) of a collection create body, or a 400 ApiError."""
        try:
            data = json.loads(call.body or b"null")
        except ValueError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("records"), list):
            raise ApiError(400, "JSON_PARSER_ERROR", 'The request body must be an object with a "records" '
                           "list of sObjects")
        all_or_none = data.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean from "
                           f"{_token_name(all_or_none)} value (allOrNone)")
        records = data["records"]
        if not records:
            raise ApiError(400, "INVALID_INPUT", "records: at least one sObject is required")
        if len(records) > MAX_COLLECTION_RECORDS:
            raise ApiError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than "
                           f"{MAX_COLLECTION_RECORDS} records into this call")
        return all_or_none, [self._collection_record(i, record) for i, record in enumerate(records)]

    def _collection_record(self, index, record):
        if not isinstance(record, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of SObject from "
                           f"{_token_name(record)} value (records[{index}])")
        fields = dict(record)
        attributes = fields.pop("attributes", None)
        type_name = attributes.get("type") if isinstance(attributes, dict) else None
        if not isinstance(type_name, str) or not type_name:
            raise ApiError(400, "INVALID_TYPE", f'records[{index}]: every sObject needs "attributes": '
                           '{"type": ...}')
        try:
            return self._known_object(type_name), fields
        except ValueError:
            raise ApiError(400, "INVALID_TYPE", f"sObject type '{type_name[:80]}' is not supported.") \
                from None

    def _roll_back_collection(self, call, created, results):
        for _, obj, record_id in reversed(created):
            self.org.delete_record(obj, record_id)
        gone = {record_id for _, _, record_id in created}
        call.log["created"] = [c for c in call.log.get("created", []) if c[1] not in gone]
        for index, _, _ in created:
            results[index] = {"success": False, "errors": [dict(_ROLLED_BACK)]}


@dataclass
class ValidationRule:
    """An org validation rule: a save of `object_name` whose fields make `condition` true fails."""
    object_name: str
    error_message: str
    condition: object                   # callable(fields dict) -> bool, True = error
    field: str | None = None


def _save_error(exc):
    """An ApiError as an entry of a SaveResult's errors (statusCode, not errorCode)."""
    entry = exc.body[0]
    return {"statusCode": entry["errorCode"], "message": entry["message"], "fields": entry.get("fields", [])}


def _check_composite_size(subrequests):
    if len(subrequests) > MAX_SUBREQUESTS:
        raise ApiError(400, "INVALID_INPUT", f"Composite API supports a maximum of {MAX_SUBREQUESTS} "
                       f"subrequests; received {len(subrequests)}.")
    limited = ("query", "query_more", "collections")
    queries = sum(1 for s in subrequests if isinstance(s, dict) and classify(
        s.get("method", ""), split_url(str(s.get("url", "")))[0], {}) in limited)
    if queries > MAX_QUERY_SUBREQUESTS:
        raise ApiError(400, "INVALID_INPUT", f"Composite API supports a maximum of "
                       f"{MAX_QUERY_SUBREQUESTS} query or sObject Collections subrequests; received "
                       f"{queries}.")


class _CompositeRun:
    """One composite request: sub-requests in order, references resolved, allOrNone honoured."""

    def __init__(self, api, call, all_or_none):
        self.api, self.call, self.all_or_none = api, call, all_or_none
        self.results = {}                    # referenceId -> body
        self.created = []
        self.call.log["subrequests"] = []

    def run(self, subrequests):
        """The compositeResponse list."""
        responses = []
        for sub in subrequests:
            response = self._one(sub)
            responses.append(response)
            if self.all_or_none and _failed(response):
                return self._roll_back(responses, subrequests)
        return responses

    def _one(self, sub):
        ref = sub.get("referenceId") if isinstance(sub, dict) else None
        try:
            method, url, body = self._resolved(sub)
        except ApiError as exc:
            return {"body": exc.body, "httpHeaders": {}, "httpStatusCode": exc.status, "referenceId": ref}
        path, params = split_url(url)
        inner = Call(method, path, params, body, self.call.user_id, self.call.headers,
                     all_or_none=self.all_or_none)
        status, out, headers = self.api.handle(inner)
        if isinstance(out, bulk.Raw):
            out = out.data.decode("utf-8")
        self.created += inner.log.get("created", [])
        entry = {"method": method, "url": url, "kind": classify(method, path, params), "status": status}
        entry.update({k: v for k, v in inner.log.items() if k in ("soql", "sosl")})
        self.call.log["subrequests"].append(entry)
        if status < 300:
            self.results[ref] = out
        return {"body": out, "httpHeaders": headers, "httpStatusCode": status, "referenceId": ref}

    def _resolved(self, sub):
        if not isinstance(sub, dict) or not sub.get("referenceId") or not sub.get("url"):
            raise ApiError(400, "INVALID_INPUT", "Each subrequest needs method, url and referenceId")
        method = sub.get("method")
        if method not in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            raise ApiError(400, "INVALID_INPUT", f"Invalid HTTP method: {method}")
        url = self._substitute(sub["url"])
        if not url.startswith(DATA_PREFIX + "/v"):
            raise ApiError(400, "INVALID_INPUT", f"The url must start with {DATA_PREFIX}/vXX.X: {url}")
        body = sub.get("body")
        body = json.dumps(body, ensure_ascii=False) if body is not None else ""
        return method, url, self._substitute(body).encode()

    def _substitute(self, text):
        def value(m):
            ref, path = m.group(1), m.group(2)
            if ref not in self.results:
                raise ApiError(400, "PROCESSING_HALTED", f"Invalid reference specified. No value for "
                               f"{ref}.{path} found in {ref}. Provided referenceId ('{ref}') must match "
                               "a previous subrequest's referenceId.")
            return str(_walk(self.results[ref], path))
        return _REFERENCE_RE.sub(value, text)

    def _roll_back(self, responses, subrequests):
        for obj, record_id in reversed(self.created):
            if self.api.org.get(record_id):
                self.api.org.delete_record(obj, record_id)
        failed = responses[-1]
        out = []
        for i, sub in enumerate(subrequests):
            if i == len(responses) - 1:
                out.append(failed)
                continue
            ref = sub.get("referenceId") if isinstance(sub, dict) else None
            out.append({"body": _HALTED, "httpHeaders": {}, "httpStatusCode": 400, "referenceId": ref})
        return out


def _failed(response):
    """True for a failed sub-request: an error status, or a collection with a failed record."""
    body = response["body"]
    return response["httpStatusCode"] >= 400 or isinstance(body, list) and any(
        isinstance(r, dict) and r.get("success") is False for r in body)


def _walk(data, path):
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        try:
            data = data[int(part[1:-1])] if part.startswith("[") else data[part]
        except (KeyError, IndexError, TypeError) as exc:
            raise ApiError(400, "PROCESSING_HALTED", f"Invalid reference specified. No value for {path} "
                           "found.") from exc
    return data


def _json_kind(ftype):
    if ftype in STRING_TYPES or ftype in ("date", "datetime"):
        return "str"
    return {"boolean": "bool", "int": "int"}.get(ftype, "any")


def _java_type(ftype):
    return {"boolean": "boolean", "int": "int", "date": "date", "datetime": "datetime"}.get(ftype, "String")


def _token_name(value):
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, (int, float)):
        return "VALUE_NUMBER_INT" if isinstance(value, int) else "VALUE_NUMBER_FLOAT"
    if isinstance(value, str):
        return "VALUE_STRING"
    return "START_OBJECT" if isinstance(value, dict) else "START_ARRAY"


def _check_date(f, value):
    try:
        date.fromisoformat(value)
        if len(value) != 10:
            raise ValueError(value)
    except ValueError as exc:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of date from VALUE_STRING "
                       f"value {value} or request may be missing a required field") from exc
