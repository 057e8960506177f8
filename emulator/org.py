"""An in-memory Salesforce org: records per object, with the indexes that make lookups fast."""
import gc
import hashlib
import itertools
import re
import threading
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from emulator.schema import KEY_PREFIXES, PREFIX_OBJECTS, STRING_TYPES, Field, build_schema

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")
_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
_NON_DIGITS = re.compile(r"[^0-9]")
# Field types worth an equality index: selective ones. Booleans and picklists would only
# produce huge buckets, so queries on them scan instead.
_INDEXABLE = STRING_TYPES - {"picklist", "textarea"}
SYSTEM_STAMPS = ("CreatedDate", "LastModifiedDate", "SystemModstamp")
RECYCLE_BIN_DAYS = 15               # Salesforce keeps deleted records this long
_SF_DATETIME = "%Y-%m-%dT%H:%M:%S.000+0000"


class UnknownObject(ValueError):
    """The records name an object the emulator does not know."""


def now_stamp():
    """The current time as Salesforce writes datetimes: 2024-05-20T20:49:32.000+0000."""
    return format_datetime(datetime.now(timezone.utc))


def format_datetime(moment):
    """A datetime as the REST API writes it (UTC, whole seconds): 2024-05-20T20:49:32.000+0000."""
    return moment.astimezone(timezone.utc).strftime(_SF_DATETIME)


def parse_datetime(text):
    """An aware datetime from ISO 8601 text (Z, +hh:mm or +hhmm offsets), or ValueError."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"no time zone in {text!r}")
    return moment


def canonical_datetime(value):
    """`value` (a datetime text in any ISO 8601 form) as the REST API writes it; None stays None."""
    if value is None or (type(value) is str and len(value) == 28 and value.endswith(".000+0000")):
        return value
    return format_datetime(parse_datetime(value))


_UPPER_BITS = str.maketrans({c: ("1" if "A" <= c <= "Z" else "0") for c in BASE62})


def id_suffix(id15):
    """The three case-safety characters Salesforce appends to a 15-character Id."""
    bits = id15.translate(_UPPER_BITS)
    # Bit i of each 5-character chunk is set when character i is upper case.
    return "".join(_SUFFIX_CHARS[int(bits[i + 4:i - 1 if i else None:-1], 2)] for i in (0, 5, 10))


def to_id18(value):
    """The 18-character form of a 15- or 18-character Id, or None when `value` is not an Id."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        return None
    if len(value) == 15:
        return value + id_suffix(value)
    return value[:15] + value[15:].upper()


def make_id(prefix, number):
    """An 18-character Id with the object's key prefix, unique per `number`."""
    # Hex keeps the generated part lower case, so only the first chunk decides the suffix.
    head = prefix + "5g0"
    first = _FIRST_SUFFIX.get(head)
    if first is None:
        first = _FIRST_SUFFIX[head] = id_suffix(head + "000000000")[0]
    return f"{head}{number:09x}{first}AA"


_FIRST_SUFFIX = {}


def phone_digits(value):
    """The ASCII digits of a phone value (full-width digits folded), for SOSL phone search."""
    if not isinstance(value, str):
        return ""
    return _NON_DIGITS.sub("", value.translate(_FULLWIDTH))


def index_key(value):
    """How a value is compared by SOQL equality: strings case-insensitively."""
    return value.lower() if isinstance(value, str) else value


class Org:
    """Records of Account, Contact, Lead, Task and User, with Id, phone and digits indexes."""

    def __init__(self, records=None, person_accounts=False, name="sfcti demo org"):
        self.name = name
        self.person_accounts = bool(person_accounts)
        self.schema = build_schema(self.person_accounts)
        self.org_id = make_id("00D", int(hashlib.sha1(name.encode()).hexdigest()[:12], 16))
        self.records = {obj: [] for obj in self.schema}
        self._lock = threading.RLock()
        self.lock = self._lock               # held by changes; readers needing a consistent view take it
        self._numbers = itertools.count(1)
        self._by_id = {}                     # id18 -> (object name, record)
        self._seq = {}                       # id18 -> insertion order, for stable results
        self._eq = {obj: {} for obj in self.schema}        # obj -> field -> key -> [records]
        self._digits = {obj: defaultdict(list) for obj in self.schema}
        self._phones = {obj: self.schema[obj].phone_fields() for obj in self.schema}
        self._refs = {obj: [f.name for f in self.schema[obj].fields.values() if f.type == "reference"]
                      for obj in self.schema}
        for obj in self.schema:
            for fname in self._phones[obj]:
                self._eq[obj][fname] = defaultdict(list)
            self._eq[obj]["Id"] = defaultdict(list)
        self._stamp = None                   # one timestamp for a whole load
        self._clock_offset = timedelta(0)
        self._recycle_bin = {obj: {} for obj in self.schema}   # obj -> id18 -> record, in deletion order
        self._deleted_with = {}              # id18 -> ids deleted with it (an account's contacts)
        self._load(records or {})
        opened = self.now().replace(second=0, microsecond=0)
        self._earliest_available = {obj: format_datetime(opened) for obj in self.schema}

    # ---- loading ------------------------------------------------------------------------

    def _load(self, records):
        unknown = set(records) - set(self.schema)
        if unknown:
            raise UnknownObject(f"Unknown objects in org data: {', '.join(sorted(unknown))}")
        self._stamp = self.stamp()
        # Hundreds of thousands of new dicts would trigger full collections over and over.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for obj in ("User", "Account", "Contact", "Lead", "Task"):
                for record in records.get(obj, ()):
                    self._adopt_fields(obj, record)
                    self._insert(obj, dict(record))
        finally:
            self._stamp = None
            if collecting:
                gc.enable()
        if not self.records["User"]:
            self._insert("User", {"Username": "admin@sfcti.example", "FirstName": "太郎",
                                  "LastName": "管理", "Email": "admin@sfcti.example"})
        if self.person_accounts:
            self._add_person_contacts()

    def _adopt_fields(self, obj, record):
        # Data may carry fields the standard schema lacks; make them queryable rather than lose them.
        sobject = self.schema[obj]
        for key, value in record.items():
            if key not in sobject.fields and sobject.field(key) is None and not self._is_person_field_without_pa(obj, key):
                type_ = ("boolean" if isinstance(value, bool) else "int" if isinstance(value, int)
                         else "double" if isinstance(value, float) else "string")
                sobject.add_field(Field(key, type_, 255 if type_ == "string" else 0))

    def _is_person_field_without_pa(self, obj, key):
        return (not self.person_accounts and obj in ("Account", "Contact")
                and key in ("IsPersonAccount", "PersonMobilePhone", "PersonHomePhone",
                            "PersonOtherPhone", "PersonEmail", "PersonContactId"))

    def _fill_defaults(self, obj, record):
        stamp = self._stamp or self.stamp()
        record["Id"] = to_id18(record.get("Id")) or make_id(KEY_PREFIXES[obj], next(self._numbers))
        record["IsDeleted"] = False
        for name in SYSTEM_STAMPS:
            if record.get(name) is not None:
                record[name] = canonical_datetime(record[name])
        record.setdefault("CreatedDate", record.get("LastModifiedDate") or stamp)
        record.setdefault("LastModifiedDate", record["CreatedDate"])
        record.setdefault("SystemModstamp", record["LastModifiedDate"])
        owner = self.records["User"][0]["Id"] if self.records["User"] else None
        record.setdefault("CreatedById", owner or record["Id"])
        record.setdefault("LastModifiedById", record["CreatedById"])
        if obj != "User":
            record.setdefault("OwnerId", owner)
        self._fill_object_defaults(obj, record)

    def _fill_object_defaults(self, obj, record):
        for fname in self._refs[obj]:
            value = record.get(fname)
            if type(value) is str and len(value) == 15:
                record[fname] = to_id18(value) or value
        if obj in ("Contact", "Lead", "User") or (obj == "Account" and record.get("IsPersonAccount")):
            if not record.get("Name") and record.get("LastName"):
                # Japanese locale order (family name first), as a ja org displays Name.
                record["Name"] = " ".join(p for p in (record.get("LastName"), record.get("FirstName")) if p)
        if obj == "Lead":
            record.setdefault("IsConverted", False)
            record.setdefault("Status", "Open - Not Contacted")
        if obj == "User":
            record.setdefault("IsActive", True)
            record.setdefault("UserType", "Standard")
        if obj == "Task":
            record.setdefault("IsClosed", record.get("Status") == "Completed")
        if self.person_accounts and obj in ("Account", "Contact"):
            record.setdefault("IsPersonAccount", False)

    def _insert(self, obj, record):
        with self._lock:
            self._fill_defaults(obj, record)
            rid = record["Id"]
            if rid in self._by_id:
                raise ValueError(f"Duplicate Id {rid}")
            self.records[obj].append(record)
            self._by_id[rid] = (obj, record)
            self._seq[rid] = next(self._numbers)
            self._index(obj, record)
        return rid

    def _add_person_contacts(self):
        # Salesforce keeps a hidden Contact behind every person account; SOQL on Contact sees it.
        for account in list(self.records["Account"]):
            if not account.get("IsPersonAccount"):
                continue
            contact_id = to_id18(account.get("PersonContactId"))
            if contact_id and contact_id in self._by_id:
                continue
            contact = {"Id": contact_id, "AccountId": account["Id"], "IsPersonAccount": True,
                       "FirstName": account.get("FirstName"), "LastName": account.get("LastName"),
                       "Name": account.get("Name"), "Phone": account.get("Phone"),
                       "MobilePhone": account.get("PersonMobilePhone"),
                       "HomePhone": account.get("PersonHomePhone"),
                       "OtherPhone": account.get("PersonOtherPhone"),
                       "Email": account.get("PersonEmail"), "OwnerId": account.get("OwnerId"),
                       "CreatedDate": account.get("CreatedDate"),
                       "LastModifiedDate": account.get("LastModifiedDate")}
            account["PersonContactId"] = self._insert("Contact", contact)

    # ---- indexes ------------------------------------------------------------------------

    def _index(self, obj, record):
        for fname, index in self._eq[obj].items():
            value = record.get(fname)
            index[value.lower() if type(value) is str else value].append(record)
        seen = set()
        digits_index = self._digits[obj]
        for fname in self._phones[obj]:
            value = record.get(fname)
            if value:
                digits = phone_digits(value)
                if digits and digits not in seen:
                    seen.add(digits)
                    digits_index[digits].append(record)

    def _unindex(self, obj, record):
        for fname, index in self._eq[obj].items():
            bucket = index.get(index_key(record.get(fname)))
            if bucket is not None:
                _remove_identity(bucket, record)
        for fname in self._phones[obj]:
            bucket = self._digits[obj].get(phone_digits(record.get(fname)))
            if bucket is not None:
                _remove_identity(bucket, record)

    def indexable(self, obj, fname):
        """True when equality on this field may be answered from an index."""
        f = self.schema[obj].field(fname)
        return f is not None and f.type in _INDEXABLE

    def lookup(self, obj, fname, values):
        """Records of `obj` whose field equals one of `values` (SOQL equality), in insertion order."""
        index = self._eq[obj].get(fname)
        if index is None:
            index = self._build_index(obj, fname)
        found = {}
        for value in values:
            for record in index.get(index_key(value), ()):
                found[record["Id"]] = record
        return self.in_order(found.values())

    def _build_index(self, obj, fname):
        with self._lock:
            if fname not in self._eq[obj]:
                index = defaultdict(list)
                for record in self.records[obj]:
                    index[index_key(record.get(fname))].append(record)
                self._eq[obj][fname] = index
            return self._eq[obj][fname]

    def search_digits(self, obj, digits):
        """Records of `obj` with a phone field whose digits equal `digits`."""
        return list(self._digits[obj].get(digits, ()))

    def in_order(self, records):
        """`records` sorted by insertion order (the order a full scan would give)."""
        seq = self._seq
        return sorted(records, key=lambda r: seq.get(r["Id"], 0))

    # ---- records ------------------------------------------------------------------------

    def get(self, record_id):
        """(object name, record) for an Id in 15- or 18-character form, or None."""
        rid = to_id18(record_id)
        return self._by_id.get(rid) if rid else None

    def object_of(self, record_id):
        """The object an Id belongs to, by its key prefix (whether or not the record exists)."""
        return PREFIX_OBJECTS.get(record_id[:3]) if isinstance(record_id, str) else None

    def add_record(self, obj, fields):
        """Insert a record of `obj`, filling Id, system fields and Name; returns the new Id.
        A person account gets its hidden Contact at once, as Salesforce creates one with it."""
        if obj not in self.schema:
            raise UnknownObject(obj)
        self._adopt_fields(obj, fields)
        with self._lock:
            record_id = self._insert(obj, dict(fields))
            if self.person_accounts and obj == "Account" and fields.get("IsPersonAccount"):
                self._add_person_contacts()
        return record_id

    def update_record(self, obj, record_id, fields):
        """Change fields of an existing record (indexes follow, LastModifiedDate and
        SystemModstamp move to now); returns the record."""
        with self._lock:
            _, record = self._by_id[to_id18(record_id)]
            self._unindex(obj, record)
            record.update(fields)
            if "FirstName" in fields or "LastName" in fields:
                record["Name"] = None
                self._fill_object_defaults(obj, record)
            record["LastModifiedDate"] = record["SystemModstamp"] = self.stamp()
            self._index(obj, record)
            return record

    def edit(self, record_id, **fields):
        """Change fields of a live record as a user edit would (e.g. edit(id, Phone="03-...")).
        Raises LookupError for an unknown or deleted Id."""
        obj, _ = self._live(record_id)
        return self.update_record(obj, record_id, fields)

    def touch(self, record_id):
        """A system-only change (a recalculation, a sharing update): SystemModstamp moves,
        LastModifiedDate does not."""
        with self._lock:
            _, record = self._live(record_id)
            record["SystemModstamp"] = self.stamp()
            return record

    def delete_record(self, obj, record_id):
        """Remove a record for good, without the recycle bin (a hard delete; roll-backs use it)."""
        with self._lock:
            rid = to_id18(record_id)
            _, record = self._by_id.pop(rid)
            self._unindex(obj, record)
            _remove_identity(self.records[obj], record)
            self._seq.pop(rid, None)

    def recycle(self, record_id):
        """Delete a record as Salesforce does: IsDeleted = true, into the recycle bin (queryAll and
        getDeleted see it; query does not). An account takes its contacts with it. Returns the
        Ids deleted. Raises LookupError for an unknown or already deleted Id."""
        with self._lock:
            obj, record = self._live(record_id)
            victims = [(obj, record)]
            if obj == "Account":
                victims += [("Contact", c) for c in self.lookup("Contact", "AccountId", [record["Id"]])]
            stamp = self.stamp()
            for victim_obj, victim in victims:
                self._unindex(victim_obj, victim)
                _remove_identity(self.records[victim_obj], victim)
                del self._by_id[victim["Id"]]
                victim["IsDeleted"] = True
                victim["LastModifiedDate"] = victim["SystemModstamp"] = stamp
                self._recycle_bin[victim_obj][victim["Id"]] = victim
            self._deleted_with[record["Id"]] = [v["Id"] for _, v in victims[1:]]
            return [v["Id"] for _, v in victims]

    def undelete(self, record_id):
        """Restore a record from the recycle bin (with what was deleted with it); returns the Ids.
        Raises LookupError when the Id is not in the recycle bin."""
        with self._lock:
            found = self.get_deleted(record_id)
            if found is None:
                raise LookupError(f"{record_id} is not in the recycle bin")
            ids = [found[1]["Id"]] + self._deleted_with.pop(found[1]["Id"], [])
            stamp = self.stamp()
            for rid in ids:
                for obj, bin_ in self._recycle_bin.items():
                    record = bin_.pop(rid, None)
                    if record is not None:
                        record["IsDeleted"] = False
                        record["LastModifiedDate"] = record["SystemModstamp"] = stamp
                        self.records[obj].append(record)
                        self._by_id[rid] = (obj, record)
                        self._index(obj, record)
            return ids

    def convert_lead(self, lead_id, account_id=None, status="Closed - Converted"):
        """Convert a Lead as Salesforce's convertLead does: a Contact (and an Account unless
        `account_id` names one) from the lead's fields; the lead becomes IsConverted with
        ConvertedContactId/ConvertedAccountId/ConvertedDate. Returns (account Id, contact Id)."""
        with self._lock:
            obj, lead = self._live(lead_id)
            if obj != "Lead" or lead.get("IsConverted"):
                raise ValueError(f"{lead_id} is not an unconverted lead")
            owner = {"OwnerId": lead.get("OwnerId")}
            if account_id is None:
                account_id = self.add_record("Account", {"Name": lead.get("Company") or lead.get("Name"),
                                                         "Phone": lead.get("Phone"), **owner})
            elif self.object_of(to_id18(account_id) or "") != "Account" or not self.get(account_id):
                raise LookupError(f"No account {account_id}")
            contact = {name: lead.get(name) for name in
                       ("FirstName", "LastName", "Title", "Phone", "MobilePhone", "Fax", "Email")}
            contact_id = self.add_record("Contact", {**contact, "AccountId": to_id18(account_id), **owner})
            self.update_record("Lead", lead["Id"], {
                "IsConverted": True, "Status": status, "ConvertedDate": self.now().date().isoformat(),
                "ConvertedContactId": contact_id, "ConvertedAccountId": to_id18(account_id)})
            return to_id18(account_id), contact_id

    def _live(self, record_id):
        found = self.get(record_id)
        if found is None:
            raise LookupError(f"No live record {record_id}")
        return found

    def get_deleted(self, record_id):
        """(object name, record) of a record in the recycle bin, or None."""
        rid = to_id18(record_id)
        obj = self.object_of(rid or "")
        record = self._recycle_bin[obj].get(rid) if obj in self._recycle_bin else None
        return (obj, record) if record is not None else None

    def recycle_bin(self, obj):
        """The deleted records of `obj` still in the recycle bin (older ones purged first)."""
        self._expire_recycle_bin(obj)
        return list(self._recycle_bin[obj].values())

    def purge_recycle_bin(self, obj=None):
        """Empty the recycle bin (of one object, or all): the records are gone for good and
        getDeleted's earliestDateAvailable moves to the newest purged deletion."""
        with self._lock:
            for name in [obj] if obj else list(self._recycle_bin):
                self._purge(name, list(self._recycle_bin[name]))

    def earliest_date_available(self, obj):
        """getDeleted's earliestDateAvailable for `obj`: before it, deletions are no longer known."""
        self._expire_recycle_bin(obj)
        return self._earliest_available[obj]

    def _expire_recycle_bin(self, obj):
        cutoff = format_datetime(self.now() - timedelta(days=RECYCLE_BIN_DAYS))
        with self._lock:
            self._purge(obj, [rid for rid, r in self._recycle_bin[obj].items()
                              if r["SystemModstamp"] < cutoff])

    def _purge(self, obj, ids):
        newest = None
        for rid in ids:
            record = self._recycle_bin[obj].pop(rid)
            self._seq.pop(rid, None)
            self._deleted_with.pop(rid, None)
            newest = max(newest or "", record["SystemModstamp"])
        if newest:
            moment = parse_datetime(newest).replace(second=0)
            self._earliest_available[obj] = max(self._earliest_available[obj], format_datetime(moment))

    # ---- the org's clock ----------------------------------------------------------------

    def now(self):
        """The org's current time (UTC, whole seconds): the real clock plus advance_clock()."""
        return (datetime.now(timezone.utc) + self._clock_offset).replace(microsecond=0)

    def stamp(self):
        """now() as the REST API writes datetimes."""
        return format_datetime(self.now())

    def advance_clock(self, seconds):
        """Move the org's clock forward (tests: a later minute, the 15/30-day windows)."""
        with self._lock:
            self._clock_offset += timedelta(seconds=seconds)

    def login_user(self):
        """The user the emulator's demo credentials log in as (the first active user)."""
        for user in self.records["User"]:
            if user.get("IsActive", True):
                return user
        return self.records["User"][0]

    def count(self):
        """Number of records per object."""
        return {obj: len(recs) for obj, recs in self.records.items()}


def _remove_identity(items, record):
    for i, item in enumerate(items):
        if item is record:
            del items[i]
            return
