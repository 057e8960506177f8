"""The standard objects the emulator knows: fields, types, lengths and flags, as describe shows them."""
from dataclasses import dataclass, field as dc_field

# Types whose values are strings on the wire; SOQL compares them case-insensitively.
STRING_TYPES = frozenset({"id", "reference", "string", "phone", "picklist", "email", "textarea",
                          "url", "combobox"})
KEY_PREFIXES = {"Account": "001", "Contact": "003", "Lead": "00Q", "Task": "00T", "User": "005"}
PREFIX_OBJECTS = {prefix: name for name, prefix in KEY_PREFIXES.items()}


@dataclass
class Field:
    """One field of an object, with the describe flags that matter to clients."""
    name: str
    type: str
    length: int = 0
    label: str = ""
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    required: bool = False                   # required on create (REQUIRED_FIELD_MISSING)
    reference_to: tuple = ()
    relationship_name: str | None = None
    picklist: tuple = ()
    restricted: bool = False
    person_account_only: bool = False

    def describe(self):
        """This field as an entry of describe()["fields"]."""
        return {
            "name": self.name, "label": self.label or self.name, "type": self.type,
            "length": self.length, "byteLength": self.length * 3 if self.type in STRING_TYPES else 0,
            "createable": self.createable, "updateable": self.updateable,
            "nillable": self.nillable, "filterable": self.type != "textarea",
            "sortable": self.type != "textarea", "groupable": self.type not in ("textarea", "datetime"),
            "queryable": True, "custom": False, "calculated": False,
            "defaultedOnCreate": self.name in ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp",
                                                "IsDeleted", "OwnerId"),
            "referenceTo": list(self.reference_to), "relationshipName": self.relationship_name,
            "restrictedPicklist": self.restricted,
            "picklistValues": [{"active": True, "defaultValue": False, "label": v, "validFor": None,
                                "value": v} for v in self.picklist],
            "soapType": _soap_type(self.type),
        }


@dataclass
class SObject:
    """One object: its fields by canonical name plus a lower-case lookup for SOQL."""
    name: str
    label: str
    label_plural: str
    fields: dict = dc_field(default_factory=dict)

    def __post_init__(self):
        self.by_lower = {name.lower(): f for name, f in self.fields.items()}

    def field(self, name):
        """The Field called `name` (any case), or None."""
        return self.by_lower.get(name.lower())

    def relationship(self, name):
        """The reference Field whose relationship name is `name` (any case), or None."""
        lowered = name.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == lowered:
                return f
        return None

    def add_field(self, f):
        """Add a field found in loaded data but not in the standard schema."""
        self.fields[f.name] = f
        self.by_lower[f.name.lower()] = f

    def phone_fields(self):
        """Names of this object's phone fields (indexed for lookups)."""
        return [f.name for f in self.fields.values() if f.type == "phone"]


def _soap_type(type_):
    return {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int",
            "double": "xsd:double", "date": "xsd:date", "datetime": "xsd:dateTime"}.get(type_, "xsd:string")


def _system_fields():
    ro = dict(createable=False, updateable=False)
    return [
        Field("Id", "id", 18, "Record ID", nillable=False, **ro),
        Field("IsDeleted", "boolean", 0, "Deleted", nillable=False, **ro),
        Field("OwnerId", "reference", 18, "Owner ID", reference_to=("User",), relationship_name="Owner",
              nillable=False),
        Field("CreatedDate", "datetime", 0, "Created Date", nillable=False, **ro),
        Field("CreatedById", "reference", 18, "Created By ID", reference_to=("User",),
              relationship_name="CreatedBy", nillable=False, **ro),
        Field("LastModifiedDate", "datetime", 0, "Last Modified Date", nillable=False, **ro),
        Field("LastModifiedById", "reference", 18, "Last Modified By ID", reference_to=("User",),
              relationship_name="LastModifiedBy", nillable=False, **ro),
        Field("SystemModstamp", "datetime", 0, "System Modstamp", nillable=False, **ro),
    ]


def _name_fields():
    return [
        Field("FirstName", "string", 40, "First Name"),
        Field("LastName", "string", 80, "Last Name", nillable=False, required=True),
        Field("Name", "string", 121, "Full Name", nillable=False, createable=False, updateable=False),
    ]


def _account_fields(person_accounts):
    fields = [
        Field("Name", "string", 255, "Account Name", nillable=False, required=True),
        Field("Type", "picklist", 255, "Account Type",
              picklist=("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other")),
        Field("Phone", "phone", 40, "Account Phone"),
        Field("Fax", "phone", 40, "Account Fax"),
        Field("Website", "url", 255, "Website"),
        Field("Industry", "picklist", 255, "Industry"),
        Field("BillingState", "string", 80, "Billing State/Province"),
        Field("BillingCity", "string", 40, "Billing City"),
        Field("BillingStreet", "textarea", 255, "Billing Street"),
        Field("BillingPostalCode", "string", 20, "Billing Zip/Postal Code"),
        Field("Description", "textarea", 32000, "Account Description"),
    ]
    if person_accounts:
        pa = dict(person_account_only=True)
        fields += [
            Field("IsPersonAccount", "boolean", 0, "Is Person Account", createable=False,
                  updateable=False, nillable=False, **pa),
            Field("FirstName", "string", 40, "First Name", **pa),
            Field("LastName", "string", 80, "Last Name", **pa),
            Field("PersonMobilePhone", "phone", 40, "Mobile", **pa),
            Field("PersonHomePhone", "phone", 40, "Home Phone", **pa),
            Field("PersonOtherPhone", "phone", 40, "Other Phone", **pa),
            Field("PersonEmail", "email", 80, "Email", **pa),
            Field("PersonContactId", "reference", 18, "Person Contact ID", reference_to=("Contact",),
                  relationship_name="PersonContact", createable=False, updateable=False, **pa),
        ]
    return fields


def _contact_fields(person_accounts):
    fields = [
        Field("AccountId", "reference", 18, "Account ID", reference_to=("Account",),
              relationship_name="Account"),
        *_name_fields(),
        Field("Title", "string", 128, "Title"),
        Field("Department", "string", 80, "Department"),
        Field("Phone", "phone", 40, "Business Phone"),
        Field("MobilePhone", "phone", 40, "Mobile Phone"),
        Field("HomePhone", "phone", 40, "Home Phone"),
        Field("OtherPhone", "phone", 40, "Other Phone"),
        Field("AssistantPhone", "phone", 40, "Asst. Phone"),
        Field("Fax", "phone", 40, "Business Fax"),
        Field("Email", "email", 80, "Email"),
        Field("Description", "textarea", 32000, "Contact Description"),
    ]
    if person_accounts:
        fields.append(Field("IsPersonAccount", "boolean", 0, "Is Person Account", createable=False,
                            updateable=False, nillable=False, person_account_only=True))
    return fields


def _lead_fields():
    return [
        *_name_fields(),
        Field("Company", "string", 255, "Company", nillable=False, required=True),
        Field("Title", "string", 128, "Title"),
        Field("Phone", "phone", 40, "Phone"),
        Field("MobilePhone", "phone", 40, "Mobile Phone"),
        Field("Fax", "phone", 40, "Fax"),
        Field("Email", "email", 80, "Email"),
        Field("Status", "picklist", 255, "Lead Status", nillable=False,
              picklist=("Open - Not Contacted", "Working - Contacted", "Closed - Converted",
                        "Closed - Not Converted")),
        Field("LeadSource", "picklist", 255, "Lead Source"),
        Field("IsConverted", "boolean", 0, "Converted", nillable=False, createable=False,
              updateable=False),
        Field("ConvertedDate", "date", 0, "Converted Date", createable=False, updateable=False),
        Field("ConvertedContactId", "reference", 18, "Converted Contact ID", reference_to=("Contact",),
              relationship_name="ConvertedContact", createable=False, updateable=False),
        Field("ConvertedAccountId", "reference", 18, "Converted Account ID", reference_to=("Account",),
              relationship_name="ConvertedAccount", createable=False, updateable=False),
        Field("Description", "textarea", 32000, "Description"),
    ]


def _task_fields():
    return [
        Field("WhoId", "reference", 18, "Name ID", reference_to=("Contact", "Lead"),
              relationship_name="Who"),
        Field("WhatId", "reference", 18, "Related To ID", reference_to=("Account",),
              relationship_name="What"),
        Field("Subject", "combobox", 255, "Subject"),
        Field("ActivityDate", "date", 0, "Due Date Only"),
        Field("Status", "picklist", 255, "Status", nillable=False, required=True,
              picklist=("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")),
        Field("Priority", "picklist", 255, "Priority", picklist=("High", "Normal", "Low")),
        Field("IsClosed", "boolean", 0, "Closed", nillable=False, createable=False, updateable=False),
        Field("Description", "textarea", 32000, "Description"),
        Field("Type", "picklist", 255, "Type", picklist=("Call", "Email", "Meeting", "Other")),
        Field("TaskSubtype", "picklist", 255, "Task Subtype", updateable=False,
              picklist=("Task", "Email", "ListEmail", "Cadence", "Call")),
        Field("CallType", "picklist", 40, "Call Type", picklist=("Inbound", "Internal", "Outbound"),
              restricted=True),
        Field("CallDurationInSeconds", "int", 8, "Call Duration"),
        Field("CallObject", "string", 255, "Call Object Identifier"),
        Field("CallDisposition", "string", 255, "Call Result"),
    ]


def _user_fields():
    return [
        Field("Username", "string", 80, "Username", nillable=False, required=True),
        *_name_fields(),
        Field("Alias", "string", 8, "Alias"),
        Field("Email", "email", 128, "Email"),
        Field("IsActive", "boolean", 0, "Active", nillable=False),
        Field("Phone", "phone", 40, "Phone"),
        Field("MobilePhone", "phone", 40, "Mobile"),
        Field("TimeZoneSidKey", "picklist", 40, "Time Zone"),
        Field("LocaleSidKey", "picklist", 40, "Locale"),
        Field("LanguageLocaleKey", "picklist", 40, "Language"),
        Field("UserType", "picklist", 40, "User Type", createable=False, updateable=False),
    ]


def build_schema(person_accounts):
    """The objects of an org, keyed by name; person-account fields exist only when enabled."""
    specs = {
        "Account": ("Account", "Accounts", _account_fields(person_accounts)),
        "Contact": ("Contact", "Contacts", _contact_fields(person_accounts)),
        "Lead": ("Lead", "Leads", _lead_fields()),
        "Task": ("Task", "Tasks", _task_fields()),
        "User": ("User", "Users", _user_fields()),
    }
    schema = {}
    for name, (label, plural, own) in specs.items():
        fields = {f.name: f for f in _system_fields()}
        if name == "User":
            fields.pop("OwnerId")          # users have no owner
        for f in own:
            fields[f.name] = f
        schema[name] = SObject(name, label, plural, fields)
    return schema
