"""core/settings.py: defaults, round trip through a real store, secrets, shared validation."""

import dataclasses

import pytest

from core.settings import (
    CONTACT_FETCH, SECRET_FIELDS, InvalidSettings, Settings, clean_settings, clear_credentials,
    load_settings, save_settings, validate_settings,
)
from core.store import Store


DEFAULTS = {
    "username": "", "password": "", "security_token": "", "sandbox": False, "login_url": "",
    "ca_bundle": "", "contact_fetch": "nightly", "time_zone": "Asia/Tokyo", "nightly_time": "22:00",
    "screen_budget_ms": 800, "default_region": "JP", "no_match_ttl_seconds": 3600,
    "connect_timeout": 5.0, "read_timeout": 10.0, "api_version": "59.0", "alert_recipients": "",
    "smtp_host": "", "smtp_port": 587, "smtp_security": "starttls", "smtp_user": "",
    "smtp_password": "", "smtp_sender": "", "alert_reminder_hours": 4, "slow_alert_threshold": 5,
    "admin_base_url": "http://127.0.0.1:5000", "auth_method": "password", "oauth_client_id": "",
    "oauth_client_secret": "", "oauth_refresh_token": "",
    "phone_index": True, "index_minutes": 15, "index_full_days": 7, "index_bulk_threshold": 200_000,
    "activity_logging": True, "activity_unmatched": "skip", "activity_language": "ja",
    "activity_subject": "", "call_url_template": "", "activity_api_share": 20,
}


# -- defaults --------------------------------------------------------------------------------

def test_fields_are_exactly_the_documented_ones():
    assert {f.name for f in dataclasses.fields(Settings)} == set(DEFAULTS)


@pytest.mark.parametrize("name,default", sorted(DEFAULTS.items()))
def test_default(name, default):
    value = getattr(Settings(), name)
    assert value == default
    assert type(value) is type(default)


@pytest.mark.parametrize("name,default", sorted(DEFAULTS.items()))
def test_empty_store_gives_defaults(store, name, default):
    assert getattr(load_settings(store), name) == default


def test_defaults_are_valid():
    assert validate_settings(Settings()) == {}


def test_secret_fields():
    assert SECRET_FIELDS == {"password", "security_token", "smtp_password",
                             "oauth_client_secret", "oauth_refresh_token"}


def test_repr_hides_secrets():
    s = Settings(username="u@example.com", password="hunter2-pass", security_token="tok123456",
                 smtp_password="smtp-pass", oauth_client_secret="cs-1234",
                 oauth_refresh_token="5Aep861refresh")
    text = repr(s) + str(s.public_dict())
    for secret in ("hunter2-pass", "tok123456", "smtp-pass", "cs-1234", "5Aep861refresh"):
        assert secret not in text
    assert "u@example.com" in text
    assert s.secret_stored() == {name: True for name in SECRET_FIELDS}


# -- round trip ------------------------------------------------------------------------------

CHANGES = {
    "username": "admin@example.com", "password": "p@ss'w\"ord<&>", "security_token": "AbC123",
    "sandbox": True, "login_url": "https://acme.my.salesforce.com", "contact_fetch": "after_call",
    "time_zone": "America/New_York", "nightly_time": "21:30", "screen_budget_ms": 1200,
    "default_region": "US", "no_match_ttl_seconds": 0, "connect_timeout": 2.5,
    "read_timeout": 30.0, "api_version": "62.0", "alert_recipients": "a@example.com, b@example.jp",
    "smtp_host": "smtp.example.com", "smtp_port": 465, "smtp_security": "ssl",
    "smtp_user": "mailer", "smtp_password": "パスワード", "smtp_sender": "sfcti@example.com",
    "alert_reminder_hours": 12, "slow_alert_threshold": 10_000,
    "admin_base_url": "https://admin.example.com:8443",
    "auth_method": "oauth_web", "oauth_client_id": "3MVG9client", "oauth_client_secret": "secret9",
    "oauth_refresh_token": "5Aep861token", "activity_logging": False, "activity_unmatched": "log",
    "activity_language": "en", "activity_subject": "{direction}: {company} {person} ({number}, {agent})",
    "call_url_template": "https://pbx.example.com/cdr?id={call_id}&agent={agent}",
    "activity_api_share": 5,
}


@pytest.mark.parametrize("name,value", sorted(CHANGES.items()))
def test_round_trip_each_field(store, name, value):
    saved = save_settings(store, {name: value})
    loaded = load_settings(Store(store.home))
    assert getattr(saved, name) == getattr(loaded, name) == value
    assert type(getattr(loaded, name)) is type(DEFAULTS[name])


def test_round_trip_dataclass(store):
    settings = Settings(**CHANGES)
    save_settings(store, settings)
    assert load_settings(store) == settings


@pytest.mark.parametrize("given,expected", [
    ({"sandbox": "on"}, True), ({"sandbox": "off"}, False), ({"sandbox": "1"}, True),
    ({"sandbox": 0}, False), ({"smtp_port": "25"}, 25), ({"smtp_port": " 25 "}, 25),
    ({"connect_timeout": "3"}, 3.0), ({"connect_timeout": 7}, 7.0),
])
def test_values_are_coerced(store, given, expected):
    (name, _), = given.items()
    value = getattr(save_settings(store, given), name)
    assert value == expected and type(value) is type(DEFAULTS[name])


def test_secrets_are_encrypted_in_the_table(store):
    save_settings(store, {"password": "pw-123456", "username": "u@example.com"})
    rows = {name: (value, enc) for name, value, enc in
            store.conn.execute("SELECT name, value, encrypted FROM settings")}
    assert rows["username"] == ("u@example.com", 0)
    assert rows["password"][1] == 1 and "pw-123456" not in rows["password"][0]
    assert store.decrypt(rows["password"][0]) == "pw-123456"


def test_unknown_stored_names_ignored(store):
    store.conn.execute("INSERT INTO settings (name, value, encrypted) VALUES ('retired', 'x', 0)")
    assert load_settings(store) == Settings()


def test_unreadable_stored_values_fall_back(store):
    store.conn.execute("INSERT INTO settings VALUES ('smtp_port', 'abc', 0)")
    store.conn.execute("INSERT INTO settings VALUES ('password', 'not-a-token', 1)")
    settings = load_settings(store)
    assert settings.smtp_port == 587
    assert settings.password == ""


def test_unknown_name_rejected_on_save(store):
    with pytest.raises(InvalidSettings) as info:
        save_settings(store, {"bogus": 1})
    assert set(info.value.errors) == {"bogus"}


def test_invalid_save_saves_nothing(store):
    with pytest.raises(InvalidSettings):
        save_settings(store, {"username": "u@example.com", "smtp_port": "x"})
    assert store.conn.execute("SELECT count(*) FROM settings").fetchone()[0] == 0


# -- blank keeps a secret --------------------------------------------------------------------

@pytest.mark.parametrize("secret", sorted(SECRET_FIELDS))
@pytest.mark.parametrize("blank", [None, ""])
def test_blank_keeps_secret(store, secret, blank):
    save_settings(store, {secret: "stored-value-1"})
    settings = save_settings(store, {secret: blank, "username": "new@example.com"})
    assert getattr(settings, secret) == "stored-value-1"
    assert settings.username == "new@example.com"


@pytest.mark.parametrize("secret", sorted(SECRET_FIELDS))
def test_blank_clears_secret_when_asked(store, secret):
    save_settings(store, {secret: "stored-value-1"})
    assert getattr(save_settings(store, {secret: ""}, keep_blank_secrets=False), secret) == ""


def test_blank_keeps_secret_from_a_dataclass(store):
    save_settings(store, {"password": "stored-value-1"})
    settings = dataclasses.replace(load_settings(store), password="", username="x@example.com")
    assert save_settings(store, settings).password == "stored-value-1"


# -- disconnect ------------------------------------------------------------------------------

def test_clear_credentials(store):
    save_settings(store, CHANGES)
    clear_credentials(store)
    settings = load_settings(store)
    for name in ("username", "password", "security_token", "oauth_refresh_token"):
        assert getattr(settings, name) == ""
    assert settings.login_url == CHANGES["login_url"]
    assert settings.sandbox is True
    assert settings.oauth_client_id == CHANGES["oauth_client_id"]
    assert settings.smtp_password == CHANGES["smtp_password"]
    assert not settings.is_configured()


# -- derived values --------------------------------------------------------------------------

@pytest.mark.parametrize("values,expected", [
    ({}, "https://login.salesforce.com"),
    ({"sandbox": True}, "https://test.salesforce.com"),
    ({"login_url": "https://acme.my.salesforce.com/"}, "https://acme.my.salesforce.com"),
    ({"login_url": "https://127.0.0.1:8443", "sandbox": True}, "https://127.0.0.1:8443"),
])
def test_login_host(values, expected):
    assert Settings(**values).login_host() == expected


@pytest.mark.parametrize("values,expected", [
    ({}, False),
    ({"username": "u@example.com"}, False),
    ({"username": "u@example.com", "password": "pw"}, True),
    ({"auth_method": "oauth_web", "oauth_client_id": "id"}, False),
    ({"auth_method": "oauth_web", "oauth_client_id": "id", "oauth_refresh_token": "r"}, True),
    ({"auth_method": "oauth_client_credentials", "oauth_client_id": "id"}, False),
    ({"auth_method": "oauth_client_credentials", "oauth_client_id": "id",
      "oauth_client_secret": "s"}, True),
])
def test_is_configured(values, expected):
    assert Settings(**values).is_configured() is expected


# -- validation ------------------------------------------------------------------------------

LONG = "a" * 10_000
STRING_FIELDS = [name for name, default in DEFAULTS.items() if isinstance(default, str)]


@pytest.mark.parametrize("name", STRING_FIELDS)
@pytest.mark.parametrize("hostile", ["a\r\nBcc: evil@example.com", "a\nb", "a\rb", "a\x00b",
                                     "a\tb", "a\x1bb", "a\u2028b", "a\u202eb", "a\u2066b", "a\u200fb",
                                     "a\ud800b", LONG])
def test_hostile_text_rejected_everywhere(name, hostile):
    errors = validate_settings({name: hostile})
    assert set(errors) == {name}
    assert errors[name]


VALID = [
    ("username", "user@example.com"), ("username", ""), ("security_token", "AbC123"),
    ("login_url", ""), ("login_url", "https://acme.my.salesforce.com"),
    ("login_url", "https://127.0.0.1:8443"), ("login_url", "https://[::1]:8443"),
    ("contact_fetch", "never"), ("contact_fetch", "after_call"),
    ("time_zone", "UTC"), ("time_zone", "Europe/Paris"), ("nightly_time", "00:00"),
    ("nightly_time", "23:59"), ("smtp_port", 1), ("smtp_port", "65535"), ("smtp_port", 587.0),
    ("screen_budget_ms", "800"), ("no_match_ttl_seconds", 0), ("connect_timeout", "0.5"),
    ("alert_recipients", "a@example.com; b@example.jp c@example.org"), ("alert_recipients", ""),
    ("smtp_host", "smtp.example.com"), ("smtp_host", "127.0.0.1"), ("smtp_host", "::1"),
    ("smtp_sender", "Sfcti.Alerts+1@example.co.jp"), ("admin_base_url", "http://localhost:5000"),
    ("default_region", "us"), ("api_version", "64.0"), ("sandbox", "yes"),
    ("activity_subject", "{name}"), ("activity_subject", "通話 {duration} {{literal}}"),
    ("call_url_template", "http://pbx.local/call/{call_id}"), ("activity_api_share", "100"),
]


@pytest.mark.parametrize("name,value", VALID)
def test_valid_values(name, value):
    assert validate_settings({name: value}) == {}


INVALID = [
    ("smtp_port", ""), ("smtp_port", "５８７"), ("smtp_port", "587a"), ("smtp_port", 0),
    ("smtp_port", 65536), ("smtp_port", -1), ("smtp_port", True), ("smtp_port", "1e3"),
    ("smtp_port", 3.5), ("smtp_port", None), ("smtp_port", "٥٨٧"),
    ("screen_budget_ms", "８００"), ("screen_budget_ms", 10), ("screen_budget_ms", 10**9),
    ("no_match_ttl_seconds", -5), ("alert_reminder_hours", 0),
    ("connect_timeout", "nan"), ("connect_timeout", float("inf")), ("connect_timeout", 0),
    ("connect_timeout", "５"), ("read_timeout", "fast"),
    ("login_url", "javascript:alert(1)"), ("login_url", "JAVASCRIPT:alert(1)"),
    ("login_url", "http://acme.my.salesforce.com"), ("login_url", "https://"),
    ("login_url", "https:///path"), ("login_url", "acme.my.salesforce.com"),
    ("login_url", "https://user:pw@acme.my.salesforce.com"), ("login_url", "ftp://x.example.com"),
    ("login_url", "https://exa mple.com"), ("login_url", "https://x.com:99999"),
    ("login_url", "https://x.com/#frag"), ("login_url", "data:text/html,<script>"),
    ("login_url", "//evil.example.com"), ("login_url", "https://<script>.com"),
    ("admin_base_url", "javascript:alert(1)"), ("admin_base_url", ""),
    ("time_zone", ""), ("time_zone", "Mars/Olympus"), ("time_zone", "../../etc/passwd"),
    ("time_zone", "/etc/localtime"), ("time_zone", "Asia/Tokyo\x00"), ("time_zone", "asia tokyo"),
    ("nightly_time", ""), ("nightly_time", "24:00"), ("nightly_time", "22:60"),
    ("nightly_time", "2200"), ("nightly_time", "２２:００"), ("nightly_time", "22:00:00"),
    ("nightly_time", "9:00"),
    ("contact_fetch", ""), ("contact_fetch", "always"), ("contact_fetch", "NIGHTLY"),
    ("smtp_security", "tls"), ("auth_method", "jwt"),
    ("username", "not an email"), ("username", "a@b"), ("username", "a" * 81 + "@example.com"),
    ("smtp_sender", "sfcti"), ("smtp_sender", "a@b.com\r\nBcc: x@y.com"),
    ("smtp_sender", "<a@b.com>"),
    ("alert_recipients", "a@example.com, not-an-address"), ("alert_recipients", "a@example.com\nb@x.com"),
    ("smtp_host", "smtp example com"), ("smtp_host", "-bad.example.com"), ("smtp_host", "a/b"),
    ("default_region", "JPN"), ("default_region", "ZZ"), ("default_region", ""),
    ("api_version", "v59.0"), ("api_version", "59"), ("api_version", "59.0; DROP"),
    ("sandbox", "maybe"), ("sandbox", 2),
    ("ca_bundle", "/nonexistent/ca.pem"), ("username", 12345),
    # a template may name only its placeholders: never an attribute, an index or a conversion
    ("activity_subject", "{name.__class__}"), ("activity_subject", "{0}"), ("activity_subject", "{}"),
    ("activity_subject", "{name!r}"), ("activity_subject", "{name:>300}"), ("activity_subject", "{"),
    ("activity_subject", "{secret}"), ("activity_subject", "x" * 256),
    ("call_url_template", "javascript:alert('{call_id}')"), ("call_url_template", "{call_id}"),
    ("call_url_template", "https://pbx/{call_id.__init__}"), ("call_url_template", "https://pbx/{password}"),
    ("activity_unmatched", "maybe"), ("activity_language", "fr"), ("activity_api_share", 0),
    ("activity_api_share", 101), ("activity_api_share", "２０"),
]


@pytest.mark.parametrize("name,value", INVALID)
def test_invalid_values(name, value):
    errors = validate_settings({name: value})
    assert list(errors) == [name]
    assert errors[name].strip()


@pytest.mark.parametrize("lang,japanese", [("en", False), ("ja", True)])
def test_messages_in_both_languages(lang, japanese):
    errors = validate_settings({"smtp_port": "x", "nightly_time": "x", "bogus": 1}, lang=lang)
    assert set(errors) == {"smtp_port", "nightly_time", "bogus"}
    assert all(message.endswith("。" if japanese else ".") for message in errors.values())
    assert all(message.isascii() is not japanese for message in errors.values())


def test_ca_bundle_must_exist(tmp_path):
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    assert validate_settings({"ca_bundle": str(pem)}) == {}
    assert "ca_bundle" in validate_settings({"ca_bundle": str(tmp_path)})


def test_clean_settings_converts():
    cleaned = clean_settings({"smtp_port": "25", "sandbox": "on", "alert_recipients": "a@x.com;b@y.org",
                              "login_url": "https://acme.my.salesforce.com/"})
    assert cleaned == {"smtp_port": 25, "sandbox": True, "alert_recipients": "a@x.com, b@y.org",
                       "login_url": "https://acme.my.salesforce.com"}


@pytest.mark.parametrize("value", CONTACT_FETCH)
def test_contact_fetch_choices(value):
    assert validate_settings({"contact_fetch": value}) == {}


# -- the one settings cache ---------------------------------------------------------------------

def test_unchanged_settings_are_not_rebuilt(store):
    save_settings(store, {"password": "stored-value-1", "smtp_port": 2525})
    first = load_settings(store)
    assert load_settings(store) is first          # secrets not decrypted again
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.smtp_port = 1                       # shared by every thread: nobody may change it


def test_a_change_by_another_process_is_seen_at_once(tmp_path):
    """Two Stores on one folder stand for two processes: each reads through its own connection."""
    host, admin = Store(tmp_path / "i"), Store(tmp_path / "i")
    assert load_settings(host).screen_budget_ms == 800
    save_settings(admin, {"screen_budget_ms": 1500})
    assert load_settings(host).screen_budget_ms == 1500
    clear_credentials(admin)                      # a deletion changes the rows too
    save_settings(admin, {"username": "a@example.com", "password": "pw-12345"})
    before = load_settings(host)
    clear_credentials(admin)
    after = load_settings(host)
    assert (before.username, after.username, after.password) == ("a@example.com", "", "")


def test_the_fallback_time_zone_is_the_default_setting():
    from core.settings import DEFAULTS, zone_named

    assert str(zone_named("No/Such_Zone")) == DEFAULTS.time_zone == "Asia/Tokyo"
    assert str(zone_named("")) == DEFAULTS.time_zone
    assert str(Settings(time_zone="Europe/Paris").zone()) == "Europe/Paris"
