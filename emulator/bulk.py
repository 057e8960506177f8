"""Bulk API 2.0 query jobs (/services/data/vXX.X/jobs/query): create, poll, page CSV results, abort,
delete. A job runs its query once its processing time is over and keeps references to the matching
records (never copies), so results page over that snapshot of rows."""
import base64
import binascii
import itertools
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field as dc_field

from emulator import soql
from emulator.org import make_id

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
DEFAULT_PAGE = 50_000                # rows of a results page when the client sets no maxRecords
MAX_JOBS = 100                       # jobs kept; the oldest go first
_OPEN_STATES = ("UploadComplete", "InProgress")


class BulkError(Exception):
    """A refused Bulk API 2.0 request: HTTP status, error code and message."""

    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass
class Raw:
    """A response body that is not JSON (the CSV of a results page)."""
    content_type: str
    data: bytes


@dataclass
class _Job:
    id: str
    operation: str
    plan: object
    created_by: str
    created: str
    started: float                   # time.monotonic() at creation
    version: str
    delimiter: str
    line_ending: str
    state: str = "UploadComplete"
    modstamp: str = ""
    records: list = dc_field(default_factory=list)
    processing_ms: int = 0


class QueryJobs:
    """The org's query jobs. `seconds` is how long a job takes to complete (clients must poll);
    a job is InProgress from a third of that time on."""

    def __init__(self, org, seconds=0.5, page_size=DEFAULT_PAGE):
        self.org = org
        self.seconds = seconds
        self.page_size = page_size
        self._jobs = OrderedDict()
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)

    def handle(self, call, rest):
        """(status, body, headers) of one request under jobs/query; raises BulkError or QueryError."""
        parts = [p for p in rest.split("/") if p]
        if not parts:
            if call.method == "POST":
                return 200, self._create(call), {}
            _only(call, "GET", "POST")
            return 200, {"done": True, "records": [self._info(j) for j in self._all()],
                         "nextRecordsUrl": None}, {}
        job = self._job(parts[0])
        if len(parts) == 2 and parts[1] == "results":
            _only(call, "GET")
            return self._results(job, call.params)
        if len(parts) != 1:
            raise BulkError(404, "NOT_FOUND", "The requested resource does not exist")
        _only(call, "GET", "PATCH", "DELETE")
        if call.method == "PATCH":
            return 200, self._abort(job, call.body), {}
        if call.method == "DELETE":
            self._delete(job)
            return 204, None, {}
        return 200, self._info(job), {}

    # ---- create ---------------------------------------------------------------------------

    def _create(self, call):
        body = _json_object(call.body)
        operation = body.get("operation")
        if operation not in ("query", "queryAll"):
            raise BulkError(400, "INVALIDJOB", f"Invalid value for operation: {operation}; a query job "
                            "takes query or queryAll")
        text = body.get("query")
        if not isinstance(text, str) or not text.strip():
            raise BulkError(400, "INVALIDJOB", "A SOQL query is required for a query job")
        delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if delimiter not in DELIMITERS or line_ending not in LINE_ENDINGS \
                or body.get("contentType", "CSV") != "CSV":
            raise BulkError(400, "INVALIDJOB", "Invalid columnDelimiter, lineEnding or contentType")
        call.log["soql"] = text
        plan = soql.parse(text, self.org)
        if plan.count_only or plan.offset:
            raise BulkError(400, "INVALIDJOB", "Bulk API 2.0 does not support aggregate functions such as "
                            "COUNT() or the OFFSET clause in a query job")
        stamp = self.org.stamp()
        with self._lock:
            job = _Job(make_id("750", next(self._numbers)), operation, plan, call.user_id, stamp,
                       time.monotonic(), call.version, delimiter, line_ending, modstamp=stamp)
            self._jobs[job.id] = job
            while len(self._jobs) > MAX_JOBS:
                self._jobs.popitem(last=False)
        return self._summary(job)

    # ---- state ----------------------------------------------------------------------------

    def _job(self, job_id):
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise BulkError(404, "NOT_FOUND", "The requested resource does not exist")
        self._advance(job)
        return job

    def _all(self):
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            self._advance(job)
        return jobs

    def _advance(self, job):
        """Move a job along its states by elapsed time; the query runs when it completes."""
        with self._lock:
            if job.state not in _OPEN_STATES:
                return
            elapsed = time.monotonic() - job.started
            if elapsed < self.seconds:
                if elapsed >= self.seconds / 3 and job.state == "UploadComplete":
                    job.state, job.modstamp = "InProgress", self.org.stamp()
                return
            began = time.perf_counter()
            job.records = soql.execute(self.org, job.plan, job.operation == "queryAll")
            job.processing_ms = round((time.perf_counter() - began) * 1000) + round(self.seconds * 1000)
            job.state, job.modstamp = "JobComplete", self.org.stamp()

    def _abort(self, job, body):
        wanted = _json_object(body).get("state")
        if wanted != "Aborted":
            raise BulkError(400, "INVALIDJOBSTATE", f"Invalid state for a query job: {wanted}; only "
                            "Aborted can be set")
        with self._lock:
            if job.state not in _OPEN_STATES:
                done = "Completed" if job.state == "JobComplete" else job.state
                raise BulkError(400, "INVALIDJOBSTATE", f"Aborting already {done} Job not allowed")
            job.state, job.modstamp = "Aborted", self.org.stamp()
        return self._summary(job)

    def _delete(self, job):
        with self._lock:
            if job.state == "InProgress":
                raise BulkError(400, "INVALIDJOBSTATE", "A job in the InProgress state cannot be deleted; "
                                "abort it or wait until it completes")
            self._jobs.pop(job.id, None)
            job.records = []

    # ---- answers --------------------------------------------------------------------------

    def _summary(self, job):
        return {"id": job.id, "operation": job.operation, "object": job.plan.obj,
                "createdById": job.created_by, "createdDate": job.created,
                "systemModstamp": job.modstamp, "state": job.state, "concurrencyMode": "Parallel",
                "contentType": "CSV", "apiVersion": float(job.version), "lineEnding": job.line_ending,
                "columnDelimiter": job.delimiter}

    def _info(self, job):
        info = self._summary(job)
        done = job.state == "JobComplete"
        info.update({"jobType": "V2Query", "numberRecordsProcessed": len(job.records) if done else 0,
                     "retries": 0, "totalProcessingTime": job.processing_ms if done else 0,
                     "isPkChunkingSupported": True})
        return info

    def _results(self, job, params):
        if job.state != "JobComplete":
            raise BulkError(400, "INVALIDJOBSTATE", f"Results are not available: the job is in the "
                            f"{job.state} state")
        size = _max_records(params.get("maxRecords"), self.page_size)
        start = _offset(params.get("locator"), len(job.records))
        rows = job.records[start:start + size]
        end = start + len(rows)
        next_locator = _encode_locator(end) if end < len(job.records) else "null"
        data = render_csv(self.org, job.plan, rows, DELIMITERS[job.delimiter], LINE_ENDINGS[job.line_ending])
        headers = {"Sforce-Locator": next_locator, "Sforce-NumberOfRecords": str(len(rows))}
        return 200, Raw("text/csv", data), headers


def render_csv(org, plan, records, delimiter=",", line_ending="\n"):
    """A results page as Bulk API 2.0 writes it: a header row of field paths (Account.Name), every
    value in double quotes (inner quotes doubled), nothing at all for null, UTF-8."""
    columns = [".".join([hop[0] for hop in path.hops] + [path.field.name]) for path in plan.fields]
    lines = [delimiter.join(_quoted(c) for c in columns)]
    for record in records:
        lines.append(delimiter.join(_cell(soql.value_of(org, record, path), path.field.type)
                                    for path in plan.fields))
    return (line_ending.join(lines) + line_ending).encode("utf-8")


def _cell(value, ftype):
    if value is None:
        return ""
    if isinstance(value, bool):
        return _quoted("true" if value else "false")
    if ftype == "datetime" and isinstance(value, str) and value.endswith("+0000"):
        return _quoted(value[:-5] + "Z")         # Bulk CSV writes UTC datetimes with Z
    return _quoted(str(value))


def _quoted(text):
    return '"' + text.replace('"', '""') + '"'


def _max_records(raw, default):
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise BulkError(400, "API_ERROR", f"Invalid value for maxRecords: {raw[:40]}; it must be a "
                        "positive integer")
    return int(raw)


def _encode_locator(offset):
    # Salesforce's locators look like MTAwMDA: base64 of the position, unpadded.
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator, total):
    if locator is None or locator == "":
        return 0
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.isdigit() or int(text) > total:
        raise BulkError(400, "API_ERROR", f"Invalid locator: {locator[:40]}")
    return int(text)


def _json_object(body):
    try:
        data = json.loads(body or b"null")
    except ValueError as exc:
        raise BulkError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from None
    if not isinstance(data, dict):
        raise BulkError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    return data


def _only(call, *methods):
    if call.method not in methods:
        raise BulkError(405, "METHOD_NOT_ALLOWED",
                        f"HTTP Method '{call.method}' not allowed. Allowed are {','.join(methods)}")
