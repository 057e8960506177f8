"""The Lightning record page a record link opens: ``/lightning/r/<Object>/<Id>/view``.

Matches link to their record on the instance (``https://<instance>/lightning/r/Contact/003…/view``);
on the emulator that is this page, laid out like Salesforce's: the object's label and icon, the
record's name, its company (a Contact's account, a Lead's Company), the phone fields, and who
changed it last and when, in the emulator user's time zone. A Contact, Lead or Account also lists
its activity history (the Tasks logged against it, newest first); a Task shows its call fields
with links to whom and what it concerns. Unknown objects and Ids get a "record not available"
page with status 404.

No login is asked: the emulator is a local stand-in on loopback with made-up data, and a browser
following a link from the admin has no emulator session anyway. Every value is escaped (Jinja's
autoescape), so a name containing HTML shows as text.
"""
import re
import zoneinfo
from datetime import datetime

import jinja2

from emulator.soap import USER_TIME_ZONE

PREFIX = "/lightning/"
_RECORD_PATH = re.compile(r"^/lightning/r/([A-Za-z][A-Za-z0-9_]*)/"
                          r"([A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?)/view/?$")
_HTML = "text/html;charset=UTF-8"
# inline styles only, no scripts, nothing fetched from elsewhere
_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "frame-ancestors 'none'",
            "Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"}
_COMPANY_FIELDS = {"Contact": ("AccountId", "Account Name"), "Lead": ("Company", "Company")}
_ACTIVITY_OBJECTS = ("Account", "Contact", "Lead")
MAX_ACTIVITIES = 50                 # rows the activity history shows (the count shows them all)

_templates = jinja2.Environment(loader=jinja2.PackageLoader("emulator", "templates"),
                                autoescape=True, trim_blocks=True, lstrip_blocks=True)


def classify(path):
    """"record_page" for a path under /lightning/, else None."""
    return "record_page" if path.startswith(PREFIX) else None


def handle(org, method, path):
    """(status, content type, bytes, headers) for a request under /lightning/."""
    if method not in ("GET", "HEAD"):
        return 405, _HTML, _render("not_available.html", status=405), {**_HEADERS, "Allow": "GET, HEAD"}
    found = _record(org, path)
    if found is None:
        return 404, _HTML, _render("not_available.html", status=404), _HEADERS
    return 200, _HTML, _render("record.html", **record_view(org, *found)), _HEADERS


def _record(org, path):
    """(object name, record) the path names, or None when the path, object or Id is unknown."""
    match = _RECORD_PATH.match(path)
    if not match:
        return None
    found = org.get(match.group(2))
    if found is None or found[0].lower() != match.group(1).lower():
        return None
    return found


def record_view(org, object_name, record):
    """What the record page shows: object, name, company, phones and the last change."""
    sobject = org.schema[object_name]
    person_account = object_name == "Account" and bool(record.get("IsPersonAccount"))
    return {
        "object_name": object_name,
        "object_label": "Person Account" if person_account else sobject.label,
        "tab_label": sobject.label_plural,
        "name": record.get("Name") or record.get("Subject") or record["Id"],
        "company": _company(org, object_name, record),
        "phones": [(name, sobject.fields[name].label, record.get(name) or "")
                   for name in sobject.phone_fields()],
        "email": record.get("Email") or record.get("PersonEmail") or "",
        "owner": _user_name(org, record.get("OwnerId")),
        "modified_by": _user_name(org, record.get("LastModifiedById")),
        "modified_at": local_time(record.get("LastModifiedDate")),
        "modified_iso": record.get("LastModifiedDate") or "",
        "activities": activity_history(org, record) if object_name in _ACTIVITY_OBJECTS else None,
        "task": _task_view(org, record) if object_name == "Task" else None,
    }


def activity_history(org, record):
    """The Tasks logged against a Contact, Lead or Account (an account's also through its
    contacts), newest first: dicts of link, subject, date, call type, duration and owner."""
    ids = [record["Id"]]
    if record["Id"].startswith("001"):
        ids += [c["Id"] for c in org.lookup("Contact", "AccountId", ids)]
    found = {t["Id"]: t for field in ("WhoId", "WhatId") for t in org.lookup("Task", field, ids)}
    # Newest first: by due date, then by when logged; among equal stamps the later insert first.
    tasks = list(reversed(org.in_order(found.values())))
    tasks.sort(key=lambda t: (t.get("ActivityDate") or "", t.get("CreatedDate") or ""), reverse=True)
    return {"total": len(tasks), "rows": [_activity_row(org, t) for t in tasks[:MAX_ACTIVITIES]]}


def _activity_row(org, task):
    return {"link": _link("Task", task["Id"]), "subject": task.get("Subject") or "",
            "date": task.get("ActivityDate") or "", "call_type": task.get("CallType") or "",
            "duration": _duration(task.get("CallDurationInSeconds")),
            "owner": _user_name(org, task.get("OwnerId"))}


def _task_view(org, task):
    """The call fields of a Task's page: (label, text, link or None) in page order."""
    fields = [("Subject", task.get("Subject"), None), ("Status", task.get("Status"), None),
              ("Due Date", task.get("ActivityDate"), None), ("Call Type", task.get("CallType"), None),
              ("Call Duration", _duration(task.get("CallDurationInSeconds")), None),
              ("Call Object Identifier", task.get("CallObject"), None),
              ("Call Result", task.get("CallDisposition"), None)]
    fields += [(label, *_named_link(org, task.get(field))) for field, label in
               (("WhoId", "Name"), ("WhatId", "Related To"))]
    fields.append(("Assigned To", _user_name(org, task.get("OwnerId")), None))
    return {"fields": [(label, "" if text is None else str(text), link) for label, text, link in fields],
            "description": task.get("Description") or ""}


def _named_link(org, record_id):
    """(name, record page link) of a referenced record, or ("", None) when there is none."""
    found = org.get(record_id or "")
    if found is None:
        return "", None
    obj, record = found
    return record.get("Name") or record["Id"], _link(obj, record["Id"])


def _link(obj, record_id):
    return f"/lightning/r/{obj}/{record_id}/view"


def _duration(seconds):
    """Call duration as the page shows it ("125 s"), or "" when none was logged."""
    return "" if seconds is None else f"{seconds} s"


def _company(org, object_name, record):
    """(label, text, link or None) of the record's company, or None for objects without one."""
    if object_name not in _COMPANY_FIELDS:
        return None
    field, label = _COMPANY_FIELDS[object_name]
    if field != "AccountId":
        return label, record.get(field) or "", None
    account = org.get(record.get("AccountId") or "")
    if account is None:
        return label, "", None
    return label, account[1].get("Name") or "", _link("Account", account[1]["Id"])


def _user_name(org, user_id):
    found = org.get(user_id or "")
    if found is None or found[0] != "User":   # an org loaded without users points at the record
        return ""
    return found[1].get("Name") or found[1].get("Username") or ""


def local_time(stamp):
    """A Salesforce datetime as a ja_JP user sees it: "2024/05/21 5:49" in the user's time zone
    (the stored text itself when it is not a datetime)."""
    try:
        at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z")
    except (TypeError, ValueError):
        return stamp or ""
    at = at.astimezone(zoneinfo.ZoneInfo(USER_TIME_ZONE))
    return f"{at:%Y/%m/%d} {at.hour}:{at:%M}"


def _render(template, **values):
    return _templates.get_template(template).render(**values).encode("utf-8")
