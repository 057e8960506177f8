"""Hostile form input gives a field error (and saves nothing), never a 500."""

from __future__ import annotations

import pytest

from core.settings import Settings, load_settings
from helpers import field_has_error, form_values, post_form

SETTINGS_FORM = {"username": "integration@example.com", "password": "", "security_token": "",
                 "contact_fetch": "nightly", "login_url": "", "ca_bundle": "",
                 "time_zone": "Asia/Tokyo", "nightly_time": "22:00", "screen_budget_ms": "800"}
ALERT_FORM = {"alert_recipients": "ops@example.com", "smtp_host": "smtp.example.com",
              "smtp_port": "587", "smtp_security": "starttls", "smtp_user": "", "smtp_password": "",
              "smtp_sender": "sfcti@example.com", "alert_reminder_hours": "4", "slow_alert_threshold": "5",
              "admin_base_url": "http://127.0.0.1:5000"}


HOSTILE_SETTINGS = [
    ("username", "a" * 10_000 + "@example.com"),
    ("username", "admin@example.com\r\nX-Injected: 1"),
    ("username", "admin@example.com\x00"),
    ("username", "not an address"),
    ("password", "pass\x00word"),
    ("password", "p" * 5000),
    ("security_token", "tok\nen"),
    ("login_url", "javascript:alert(1)"),
    ("login_url", "not a url"),
    ("login_url", "http://login.salesforce.com"),
    ("login_url", "https://user:pw@login.salesforce.com"),
    ("login_url", "https://login.salesforce.com\r\n.evil"),
    ("login_url", "https://" + "a" * 3000 + ".com"),
    ("ca_bundle", "/nonexistent/ca.pem"),
    ("ca_bundle", "/etc\x00/passwd"),
    ("time_zone", "../../etc/passwd"),
    ("time_zone", "Mars/Olympus"),
    ("nightly_time", "25:00"),
    ("nightly_time", "２２:００"),
    ("screen_budget_ms", "abc"),
    ("screen_budget_ms", "１２３"),
    ("screen_budget_ms", "9" * 400),
    ("screen_budget_ms", "-1"),
    ("screen_budget_ms", "1e3"),
    ("contact_fetch", "sometimes"),
]


@pytest.mark.parametrize("name,value", HOSTILE_SETTINGS)
def test_hostile_settings_give_a_field_error_and_save_nothing(admin_client, store, name, value):
    response = post_form(admin_client, "/settings/", {**form_values(admin_client, "/settings/"),
                                                      **SETTINGS_FORM, name: value})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert field_has_error(html, name)
    assert load_settings(store) == Settings()
    if "\x00" not in value and len(value) < 200 and name not in ("password", "security_token"):
        assert "<script" not in html


HOSTILE_ALERTS = [
    ("alert_recipients", "ops@example.com\r\nBcc: victim@example.com"),
    ("alert_recipients", "ops@example.com, <script>@x"),
    ("alert_recipients", ",".join(f"u{i}@example.com" for i in range(200))),
    ("smtp_sender", "sfcti@example.com\nBcc: victim@example.com"),
    ("smtp_sender", "Mallory <m@example.com>"),
    ("smtp_host", "smtp.example.com\r\nRCPT TO:<x@y>"),
    ("smtp_host", "host name with spaces"),
    ("smtp_host", "h" * 300),
    ("smtp_port", "0"),
    ("smtp_port", "70000"),
    ("smtp_port", "25; rm -rf /"),
    ("smtp_security", "tls13"),
    ("smtp_user", "user\r\nAUTH PLAIN"),
    ("smtp_password", "pw\r\n"),
    ("alert_reminder_hours", "0"),
    ("alert_reminder_hours", "many"),
    ("slow_alert_threshold", "0"),
    ("slow_alert_threshold", "１０"),
    ("slow_alert_threshold", "10001"),
    ("admin_base_url", "ftp://example.com"),
    ("admin_base_url", "javascript:alert(1)"),
    ("admin_base_url", ""),
    ("admin_base_url", "http://exa mple.com"),
]


@pytest.mark.parametrize("button", ["save", "send_test"])
@pytest.mark.parametrize("name,value", HOSTILE_ALERTS)
def test_hostile_alert_settings_give_a_field_error(admin_client, store, smtp_server, name, value, button):
    form = {**form_values(admin_client, "/alerts/"), **ALERT_FORM, "smtp_host": "127.0.0.1",
            "smtp_port": str(smtp_server.port),
            "smtp_security": "none", name: value, button: "1"}
    response = post_form(admin_client, "/alerts/", form)
    assert response.status_code == 200
    assert field_has_error(response.get_data(as_text=True), name)
    assert load_settings(store) == Settings()
    assert smtp_server.messages == []  # the test e-mail was not sent either


def test_oversized_post_is_refused_not_crashed(admin_client):
    response = post_form(admin_client, "/settings/", {**SETTINGS_FORM, "username": "x" * 300_000})
    assert response.status_code == 413


def test_unexpected_fields_and_methods_are_harmless(admin_client, store):
    response = post_form(admin_client, "/alerts/", {**form_values(admin_client, "/alerts/"),
                                                    **ALERT_FORM, "save": "1",
                                                    "smtp_password": "s", "admin_password": "x",
                                                    "username": "evil@example.com"})
    assert response.status_code == 302
    assert load_settings(store).username == ""  # only the form's own settings are written
    assert admin_client.put("/settings/").status_code == 405
    assert admin_client.get("/settings/disconnect").status_code == 405


# ---------------------------------------------------------------------------------------------
# the hostile corpus (tests/hostile_corpus.py): every GET page's query parameters, the other
# forms, call ids in paths, uploaded CSV files. One logged-in client for the module: no entry
# changes what another sees.
# ---------------------------------------------------------------------------------------------

import dataclasses  # noqa: E402
import io  # noqa: E402
import re  # noqa: E402
from urllib.parse import quote  # noqa: E402

import hostile_corpus as corpus  # noqa: E402
from helpers import admin_login, csrf_token, make_app  # noqa: E402
from hostile_corpus import entry_ids  # noqa: E402

RAW_MARKUP = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")


def instance_folder(tmp_path_factory, module_database, name: str):
    """A new instance folder on the module's backend."""
    folder = tmp_path_factory.mktemp(name) / "instance"
    module_database(folder)
    return folder


@pytest.fixture(scope="module")
def corpus_client(tmp_path_factory, module_database):
    """A logged-in test client of an admin app on its own instance folder."""
    app = make_app(instance_folder(tmp_path_factory, module_database, "admin-corpus"), TESTING=True)
    client = app.test_client()
    assert admin_login(client).status_code == 302
    return client


def assert_page(response) -> str:
    """A page a person can read: no 500, no traceback, no markup from the input unescaped;
    a refusal (4xx) says something."""
    html = response.get_data(as_text=True)
    assert response.status_code < 500, html[:500]
    assert "Traceback" not in html
    for markup in RAW_MARKUP:
        assert markup not in html
    if response.status_code >= 400:
        assert len(html.strip()) > 20, html
    return html


def query_value(value) -> str:
    """``value`` percent-encoded for a URL (a lone surrogate as its UTF-8 bytes)."""
    return quote(value, safe="", errors="surrogatepass")


@pytest.mark.parametrize("entry", corpus.ADMIN_QUERY_ENTRIES, ids=entry_ids(corpus.ADMIN_QUERY_ENTRIES))
def test_hostile_query_parameters(corpus_client, entry):
    _, path, param, name = entry
    value = corpus.HOSTILE_VALUES.get(name, name)
    response = corpus_client.get(f"{path}?{param}={query_value(value)}")
    html = assert_page(response)
    if response.status_code in (301, 302, 303):
        location = response.headers["Location"]
        assert location.startswith("/") and not location.startswith("//"), location
    elif response.status_code == 200 and f'name="{param}"' in html and 'class="field has-error"' in html:
        assert '<div class="error" role="alert">' in html    # the refused field says why


def refusal_said(html: str) -> bool:
    """Whether the page tells why something was refused: a field error, an error notice or a
    failure box."""
    return any(mark in html for mark in ('<div class="error" role="alert">', 'class="flash error"',
                                         '<div class="failure" role="alert"'))


def valid_form(fields) -> dict:
    """The default settings as a form would post them (booleans as checked boxes)."""
    defaults = dataclasses.asdict(Settings())
    return {f: ("y" if defaults[f] else "") if isinstance(defaults[f], bool) else str(defaults[f])
            for f in fields if f in defaults}


@pytest.mark.parametrize("entry", corpus.ADMIN_FORM_ENTRIES, ids=entry_ids(corpus.ADMIN_FORM_ENTRIES))
def test_hostile_form_fields(corpus_client, entry):
    _, form, field, name = entry
    page, url, button, fields = corpus.ADMIN_FORMS[form]
    data = {**valid_form(fields), "csrf_token": csrf_token(corpus_client, page), button: "1",
            field: corpus.HOSTILE_VALUES.get(name, name)}
    response = corpus_client.post(url, data=data, follow_redirects=True)
    html = assert_page(response)
    assert response.status_code == 200
    assert refusal_said(html) or 'class="flash success"' in html, "the admin was told nothing"
    if 'class="field has-error"' in html:
        assert '<div class="error" role="alert">' in html


@pytest.mark.parametrize("entry", corpus.ADMIN_CALL_ID_ENTRIES, ids=entry_ids(corpus.ADMIN_CALL_ID_ENTRIES))
def test_hostile_call_ids_in_paths(corpus_client, entry):
    _, action, name = entry
    call_id = query_value(corpus.HOSTILE_VALUES[name])
    response = corpus_client.post(f"/calls/{call_id}/{action}",
                                  data={"csrf_token": csrf_token(corpus_client, "/calls/")},
                                  follow_redirects=True)
    html = assert_page(response)
    assert response.status_code in (200, 404)
    assert response.status_code == 404 or refusal_said(html)


@pytest.mark.parametrize("entry", corpus.ADMIN_LANG_ENTRIES, ids=entry_ids(corpus.ADMIN_LANG_ENTRIES))
def test_hostile_language_codes(corpus_client, entry):
    response = corpus_client.get("/lang/" + query_value(corpus.HOSTILE_VALUES[entry[1]]))
    assert_page(response)
    corpus_client.get("/lang/en")


@pytest.mark.parametrize("entry", corpus.ADMIN_CSV_FILES, ids=entry_ids(corpus.ADMIN_CSV_FILES))
def test_hostile_csv_uploads_are_refused_with_reasons(corpus_client, entry):
    _, content = entry
    data = {"csrf_token": csrf_token(corpus_client, "/agents/"), "import_csv": "1",
            "csv_file": (io.BytesIO(content), "agents.csv")}
    response = corpus_client.post("/agents/import", data=data, content_type="multipart/form-data",
                                  follow_redirects=True)
    html = assert_page(response)
    assert response.status_code == 200
    assert refusal_said(html)        # refused (nothing is connected), saying why


@pytest.fixture(scope="module")
def login_client(tmp_path_factory, module_database):
    """A client of an admin app of its own, not logged in (its refused logins throttle nobody else)."""
    return make_app(instance_folder(tmp_path_factory, module_database, "admin-login"),
                    TESTING=True).test_client()


@pytest.mark.parametrize("entry", corpus.ADMIN_LOGIN_ENTRIES, ids=entry_ids(corpus.ADMIN_LOGIN_ENTRIES))
def test_hostile_logins_are_refused_saying_why(login_client, entry):
    _, field, name = entry
    form = {"username": "admin", "password": "wrong password", field: corpus.HOSTILE_VALUES[name]}
    response = login_client.post("/auth/login", data={"csrf_token": csrf_token(login_client, "/auth/login"),
                                                      **form})
    html = assert_page(response)
    assert response.status_code in (200, 400, 429)
    assert refusal_said(html) or 'role="status"' in html, html[-2000:]
    assert login_client.get("/settings/").status_code == 302        # still not logged in


def post_routes(app) -> list[str]:
    """Every POST route of ``app``, with "x" for each path argument."""
    return sorted(re.sub(r"<[^>]+>", "x", rule.rule) for rule in app.url_map.iter_rules()
                  if "POST" in rule.methods)


@pytest.mark.parametrize("name", corpus.ADMIN_CSRF_TOKENS)
def test_posts_without_a_valid_csrf_token_are_refused_saying_why(corpus_client, name):
    token = corpus.ADMIN_CSRF_TOKENS[name]
    data = {} if token is None else {"csrf_token": token}
    routes = post_routes(corpus_client.application)
    assert len(routes) >= 10 and "/auth/logout" in routes
    for route in routes:
        response = corpus_client.post(route, data={**data, "save": "1", "submit": "1"})
        html = assert_page(response)
        assert response.status_code == 400, (route, html[:300])
        # the form was refused, and why (in the language the client chose last)
        assert "フォームを受け付けられませんでした" in html or "The form could not be accepted" in html, route
    assert corpus_client.get("/settings/").status_code == 200       # and the session lives on
