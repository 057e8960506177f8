"""The data-replication resources: sObject Get Updated and Get Deleted (/sobjects/X/updated|deleted)."""
from datetime import timedelta

from emulator.org import format_datetime, parse_datetime

WINDOW_DAYS = 30                     # start may not be further back than this
MAX_IDS = 600_000                    # more than this: EXCEEDED_ID_LIMIT


class ReplicationError(Exception):
    """A request Salesforce refuses: HTTP status, error code and message."""

    def __init__(self, code, message, status=400):
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


def get_updated(org, obj, params):
    """{"ids", "latestDateCovered"}: live records whose SystemModstamp is in [start, end)."""
    start, covered = _window(org, params)
    ids = [r["Id"] for r in sorted(_between(org.records[obj], start, covered),
                                   key=lambda r: r["SystemModstamp"])]
    _check_count(ids)
    return {"ids": ids, "latestDateCovered": covered}


def get_deleted(org, obj, params):
    """{"deletedRecords", "earliestDateAvailable", "latestDateCovered"} of the recycle bin."""
    start, covered = _window(org, params)
    deleted = sorted(_between(org.recycle_bin(obj), start, covered), key=lambda r: r["SystemModstamp"])
    _check_count(deleted)
    return {"deletedRecords": [{"id": r["Id"], "deletedDate": r["SystemModstamp"]} for r in deleted],
            "earliestDateAvailable": org.earliest_date_available(obj), "latestDateCovered": covered}


def _between(records, start, end):
    # Stored datetimes are UTC texts of one fixed format, so text order is time order.
    return [r for r in records if start <= r["SystemModstamp"] < end]


def _check_count(items):
    if len(items) > MAX_IDS:
        raise ReplicationError("EXCEEDED_ID_LIMIT", f"Number of IDs exceeded the limit of {MAX_IDS}; "
                               "choose start and end dates that are closer together")


def _window(org, params):
    """(start, latestDateCovered) as stored-format texts, both at whole minutes."""
    start, end = _minute(params, "start"), _minute(params, "end")
    now = org.now().replace(second=0)
    if start >= end:
        raise ReplicationError("INVALID_REPLICATION_DATE", "startDate must chronologically precede "
                               "endDate by more than one minute")
    if start < now - timedelta(days=WINDOW_DAYS):
        raise ReplicationError("INVALID_REPLICATION_DATE",
                               f"startDate cannot be more than {WINDOW_DAYS} days ago")
    return format_datetime(start), format_datetime(min(end, now))


def _minute(params, name):
    value = params.get(name)
    if not value:
        raise ReplicationError("MISSING_ARGUMENT", f"Missing required parameter: {name}")
    try:
        moment = parse_datetime(value)
    except ValueError:
        raise ReplicationError("INVALID_INPUT", f"{name}: '{value[:80]}' is not a valid date and time "
                               "in ISO 8601 format (YYYY-MM-DDThh:mm:ss+hh:mm)") from None
    return moment.replace(second=0, microsecond=0)
