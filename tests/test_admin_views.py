"""The admin through Flask's test client: access, CSRF, secrets, error log, pages, languages."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape

from core import errors
from core.settings import load_settings, save_settings
from helpers import (ADMIN_PASSWORD, ADMIN_USER, SmtpServer, admin_login, csrf_token, free_port, make_app,
                     field_has_error, insert_row, post_form)

PAGES = ["/", "/settings/", "/alerts/", "/errors/", "/errors/common", "/calls/", "/contacts/"]


# -- access ----------------------------------------------------------------------------------

@pytest.mark.parametrize("url", PAGES)
def test_every_page_but_login_requires_the_admin(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.location.startswith("/auth/login?next=")


@pytest.mark.parametrize("url", ["/settings/disconnect", "/calls/c1/refetch"])
def test_posts_require_the_admin_too(client, url):
    response = client.post(url, data={"csrf_token": csrf_token(client, "/auth/login")})
    assert response.status_code == 302 and "/auth/login" in response.location


def test_login_then_every_page_opens(admin_client):
    for url in PAGES:
        response = admin_client.get(url)
        assert response.status_code == 200, url


def test_login_redirects_to_next_but_never_off_site(client):
    url = "/auth/login?next=/errors/"
    response = post_form(client, url, {"username": ADMIN_USER, "password": ADMIN_PASSWORD})
    assert response.location == "/errors/"
    client.get("/auth/login")  # new page for a new token
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        url = f"/auth/login?next={target}"
        client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")})
        response = post_form(client, url, {"username": ADMIN_USER, "password": ADMIN_PASSWORD})
        assert response.location == "/", target


def test_wrong_password_is_refused(client):
    response = admin_login(client, password="wrong")
    assert response.status_code == 200
    assert "Wrong user name or password." in response.get_data(as_text=True) or \
        "ユーザー名またはパスワードが正しくありません" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_failed_logins_are_slowed_down(app, client, store):
    app.config["LOGIN_FIRST_DELAY_SECONDS"] = 60  # so a slow machine cannot outwait it
    for _ in range(5):
        admin_login(client, password="wrong")
    # the right password is refused too while the client must wait
    response = admin_login(client)
    assert response.status_code == 200
    assert re.search(r"(60|59) (seconds|秒)", response.get_data(as_text=True))
    assert client.get("/").status_code == 302
    with store.transaction() as db:  # the wait has passed
        db.execute("UPDATE login_attempts SET last_at = '2000-01-01T00:00:00+00:00'")
    assert admin_login(client).status_code == 302


def test_logout(admin_client):
    response = admin_client.post("/auth/logout", data={"csrf_token": csrf_token(admin_client, "/")})
    assert response.status_code == 302
    assert admin_client.get("/").status_code == 302


def test_session_cookie_is_httponly_and_samesite(client):
    response = admin_login(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def _input_tag(html: str, input_id: str) -> str:
    match = re.search(rf'<input[^>]*\bid="{input_id}"[^>]*>', html)
    assert match, input_id
    return match.group(0)


def test_login_form_lets_password_managers_fill_it(client):
    html = client.get("/auth/login").get_data(as_text=True)
    assert 'autocomplete="username"' in _input_tag(html, "username")
    assert 'autocomplete="current-password"' in _input_tag(html, "password")


def test_settings_secrets_are_not_filled_with_the_admin_password(admin_client):
    html = admin_client.get("/settings/").get_data(as_text=True)
    for secret in ("password", "security_token", "oauth_client_secret"):
        assert 'autocomplete="new-password"' in _input_tag(html, secret), secret


def test_favicon_is_served_without_login(client):
    response = client.get("/favicon.ico", follow_redirects=True)
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml" and b"<svg" in response.data


def test_pages_link_an_icon_that_loads(client, admin_client):
    for url in ("/auth/login", "/settings/"):
        html = admin_client.get(url).get_data(as_text=True)
        href = re.search(r'<link rel="icon"[^>]*href="([^"]+)"', html).group(1)
        assert client.get(href).status_code == 200, url


def test_password_is_stored_hashed(app, store):  # the app creates the admin account
    (row,) = store.conn.execute("SELECT password_hash FROM admin_users").fetchall()
    assert ADMIN_PASSWORD not in row[0] and row[0].startswith(("scrypt:", "pbkdf2:"))


def test_admin_created_from_the_environment(tmp_path, monkeypatch, database):
    from admin import create_app

    database(tmp_path / "env-home")
    monkeypatch.setenv("SFCTI_ADMIN_USER", "boss")
    monkeypatch.setenv("SFCTI_ADMIN_PASSWORD", "from the env")
    monkeypatch.setenv("SFCTI_HOME", str(tmp_path / "env-home"))
    client = create_app().test_client()
    assert admin_login(client, "boss", "from the env").status_code == 302


def test_generated_password_is_printed_once(tmp_path, capsys, database):
    from admin import create_app

    database(tmp_path / "gen")
    config = {"SFCTI_HOME": str(tmp_path / "gen"), "ADMIN_USERNAME": "admin", "ADMIN_PASSWORD": None}
    app = create_app(config)
    password = re.search(r"password '([^']+)'", capsys.readouterr().err).group(1)
    assert admin_login(app.test_client(), "admin", password).status_code == 302
    create_app(config)
    assert "password" not in capsys.readouterr().err


# -- CSRF --------------------------------------------------------------------------------------

@pytest.mark.parametrize("url,data", [
    ("/settings/", {"username": "a@example.com", "contact_fetch": "never"}),
    ("/settings/disconnect", {}),
    ("/alerts/", {"smtp_host": "smtp.example.com", "save": "1"}),
    ("/calls/c1/refetch", {}),
    ("/auth/logout", {}),
])
def test_forms_without_their_csrf_token_are_rejected(admin_client, store, url, data):
    save_settings(store, {"username": "kept@example.com", "password": "pw"})
    response = admin_client.post(url, data=data)
    assert response.status_code == 400
    assert load_settings(store).username == "kept@example.com"
    assert admin_client.get("/").status_code == 200  # still logged in: logout was refused too


def test_login_without_csrf_token_is_rejected(client):
    response = client.post("/auth/login", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


# -- secrets -----------------------------------------------------------------------------------

SECRETS = {"password": "Pa55-word-SECRET", "security_token": "TOKEN-secret-123",
           "smtp_password": "smtp-SECRET-pw"}


def test_stored_secrets_never_appear_in_any_page(admin_client, store):
    save_settings(store, {"username": "integration@example.com", "smtp_host": "smtp.example.com",
                          **SECRETS})
    errors.record_failure(store, "salesforce", "lookup", "INVALID_LOGIN",
                          detail=f"login failed for password {SECRETS['password']}")
    for url in PAGES + ["/errors/?integration=salesforce", "/lang/en?next=/settings/"]:
        html = admin_client.get(url, follow_redirects=True).get_data(as_text=True)
        for secret in SECRETS.values():
            assert secret not in html, url
    html = admin_client.get("/settings/").get_data(as_text=True)
    assert html.count("A value is stored.") == 2


def test_blank_secret_fields_keep_the_stored_values(admin_client, store, smtp_server):
    save_settings(store, {"smtp_password": "keep-me"})
    response = post_form(admin_client, "/alerts/", {**smtp_server.settings(), "smtp_password": "",
                                                     "alert_reminder_hours": "4", "slow_alert_threshold": "5", "save": "1"})
    assert response.status_code == 302
    assert load_settings(store).smtp_password == "keep-me"
    assert load_settings(store).smtp_host == "127.0.0.1"


# -- error log ---------------------------------------------------------------------------------

def test_error_log_shows_message_remedy_and_count_newest_first(admin_client, store):
    admin_client.get("/lang/en")
    for _ in range(3):
        errors.record_failure(store, "salesforce", "lookup", "REQUEST_LIMIT_EXCEEDED")
    errors.record_failure(store, "smtp", "send_alert", "SMTP_AUTH")
    html = admin_client.get("/errors/").get_data(as_text=True)
    assert html.index("<code>SMTP_AUTH</code>") < html.index("<code>REQUEST_LIMIT_EXCEEDED</code>")
    entry = errors.entry_for("REQUEST_LIMIT_EXCEEDED")
    assert str(escape(entry.remedy_en)) in html
    assert '<td class="num">3</td>' in html


def test_error_log_escapes_what_it_shows(admin_client, store):
    with store.transaction() as db:
        db.execute("INSERT INTO error_log (first_at, last_at, integration, operation, code, "
                   "message, detail, call_id, count, open) VALUES ('2024-05-20T00:00:00+00:00', "
                   "'2024-05-20T00:00:00+00:00', 'salesforce', '<script>op()</script>', "
                   "'<script>code()</script>', '<script>alert(1)</script>', "
                   "'<script>detail()</script>', '<img src=x onerror=alert(2)>', 1, 1)")
    html = admin_client.get("/errors/").get_data(as_text=True)
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_error_log_filters(admin_client, store):
    errors.record_failure(store, "salesforce", "lookup", "TIMEOUT")
    errors.record_failure(store, "smtp", "send_alert", "SMTP_AUTH")
    html = admin_client.get("/errors/?integration=smtp").get_data(as_text=True)
    assert "SMTP_AUTH" in html and "<code>TIMEOUT</code>" not in html
    html = admin_client.get("/errors/?code=TIMEOUT").get_data(as_text=True)
    assert "<code>TIMEOUT</code>" in html and "<code>SMTP_AUTH</code>" not in html
    html = admin_client.get("/errors/?day=1999-01-01").get_data(as_text=True)
    assert "<code>TIMEOUT</code>" not in html
    assert "この条件に一致するエラーはありません。" in html and "エラーはありません" in html


def test_an_empty_error_log_is_not_called_a_filter_miss(admin_client):
    admin_client.get("/lang/en")
    html = admin_client.get("/errors/").get_data(as_text=True)
    assert "No errors." in html and "No error matches" not in html
    html = admin_client.get("/errors/?integration=smtp").get_data(as_text=True)
    assert "No error matches these filters." in html


def test_error_log_paginates(app, admin_client, store):
    app.config["PAGE_SIZE"] = 2
    for i in range(5):
        errors.record_failure(store, "salesforce", f"op{i}", "TIMEOUT")
    first = admin_client.get("/errors/").get_data(as_text=True)
    third = admin_client.get("/errors/?page=3").get_data(as_text=True)
    assert "op4" in first and "op0" not in first
    assert "op0" in third and "op4" not in third
    assert admin_client.get("/errors/?page=zzz").status_code == 200


@pytest.mark.parametrize("query", ["day=2024-13-45", "day=<script>", "integration=ftp",
                                   "code=" + "A" * 500, "code=%00%0a", "page=-5", "page=99999999999"])
def test_hostile_error_log_filters_never_500(admin_client, query):
    response = admin_client.get("/errors/?" + query)
    assert response.status_code == 200
    assert "<script>" not in response.get_data(as_text=True)


def test_common_errors_page_lists_the_catalogue(admin_client):
    html = admin_client.get("/errors/common").get_data(as_text=True)
    for code, entry in errors.CATALOGUE.items():
        assert f'id="{code}"' in html
    assert errors.CATALOGUE["INVALID_LOGIN"].remedy_ja in html or \
        errors.CATALOGUE["INVALID_LOGIN"].remedy_en in html


# -- history, contacts, usage -------------------------------------------------------------------

def _call(store, call_id, **values):
    row = {"call_id": call_id, "direction": "inbound", "remote_number": "+81312345678",
           "e164": "+81312345678", "display_number": "03-1234-5678", "agent_id": "agent-7",
           "started_at": "2024-05-20T01:00:00+00:00", "status": "matched",
           "company": "株式会社サンプル", "person": "山田 太郎", "object": "Contact",
           "record_id": "003000000000001AAA",
           "record_url": "https://example.lightning.force.com/lightning/r/Contact/003000000000001AAA/view",
           **values}
    insert_row(store, "calls", row)


def test_call_history_shows_the_columns(admin_client, store):
    _call(store, "c1")
    _call(store, "c2", direction="outbound", status="not_registered", company=None, person=None,
          record_url=None, started_at="2024-05-20T02:00:00+00:00", display_number="090-1111-2222")
    admin_client.get("/lang/ja")
    html = admin_client.get("/calls/").get_data(as_text=True)
    assert html.index("090-1111-2222") < html.index("03-1234-5678")  # newest first
    for text in ("2024-05-20 10:00:00", "着信", "発信", "株式会社サンプル", "山田 太郎", "一致", "未登録",
                 "agent-7", "/lightning/r/Contact/003000000000001AAA/view", "再取得"):
        assert text in html, text


def test_call_history_does_not_link_non_https_record_urls(admin_client, store):
    _call(store, "c1", record_url="javascript:alert(1)")
    assert "javascript:alert" not in admin_client.get("/calls/").get_data(as_text=True)


def test_call_history_search(admin_client, store):
    _call(store, "c1")
    _call(store, "c2", company="Other Co", display_number="06-0000-0000", e164="+81600000000")
    html = admin_client.get("/calls/?q=Other").get_data(as_text=True)
    assert "Other Co" in html and "株式会社サンプル" not in html
    assert admin_client.get("/calls/?q=%25_%5C").status_code == 200


def test_contacts_page(admin_client, store):
    store.upsert_contact("+81312345678", object="Account", company="株式会社サンプル", person=None,
                         record_url="https://example.lightning.force.com/lightning/r/Account/001/view")
    html = admin_client.get("/contacts/").get_data(as_text=True)
    assert "+81312345678" in html and "株式会社サンプル" in html
    assert "株式会社サンプル" not in admin_client.get("/contacts/?q=nothing").get_data(as_text=True)


EMPTY_LISTS = {
    # page: (language, nothing yet, nothing matched the term)
    "/calls/": [("en", "No calls yet.", "No call matches “{}”."),
                ("ja", "応対履歴はまだありません。", "「{}」に一致する応対履歴はありません。")],
    "/contacts/": [("en", "No contacts registered yet.", "No contact matches “{}”."),
                   ("ja", "登録された連絡先はまだありません。", "「{}」に一致する連絡先はありません。")],
}
EMPTY_CASES = [(url, *texts) for url, cases in EMPTY_LISTS.items() for texts in cases]


def _one_call_and_contact(store):
    _call(store, "c1")
    store.upsert_contact("+81312345678", object="Contact", company="株式会社サンプル", person="山田 太郎",
                         record_url="https://example.lightning.force.com/lightning/r/Contact/003/view")


@pytest.mark.parametrize("url,lang,nothing_yet,no_match", EMPTY_CASES)
def test_a_search_without_result_says_nothing_matched_the_term(admin_client, store, url, lang,
                                                               nothing_yet, no_match):
    _one_call_and_contact(store)
    admin_client.get(f"/lang/{lang}")
    term = '<b>"zz"</b>&'
    html = admin_client.get(url, query_string={"q": term}).get_data(as_text=True)
    assert no_match.format(escape(term)) in html
    assert "<b>" not in html and nothing_yet not in html


@pytest.mark.parametrize("url,lang,nothing_yet,no_match", EMPTY_CASES)
def test_an_empty_list_without_search_says_nothing_yet(admin_client, url, lang, nothing_yet, no_match):
    admin_client.get(f"/lang/{lang}")
    html = admin_client.get(url).get_data(as_text=True)
    assert nothing_yet in html
    assert no_match.split("{}")[1] not in html


@pytest.mark.parametrize("url", EMPTY_LISTS)
def test_an_oversized_search_is_ignored_and_the_list_shown(admin_client, store, url):
    _one_call_and_contact(store)
    admin_client.get("/lang/en")
    html = admin_client.get(url, query_string={"q": "x" * 101}).get_data(as_text=True)
    assert "株式会社サンプル" in html and "matches" not in html


@pytest.mark.parametrize("url", EMPTY_LISTS)
@pytest.mark.parametrize("term", ["サンプル\x00", "\x00"])
def test_a_search_with_a_nul_is_refused_saying_why_and_the_list_shown(admin_client, store, url, term):
    # PostgreSQL cannot take a NUL in a query: the search box says why, as for other control
    # characters, and the page lists everything
    _one_call_and_contact(store)
    admin_client.get("/lang/ja")
    response = admin_client.get(url, query_string={"q": term})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert field_has_error(html, "q") and "改行、制御文字、文字方向の制御文字は使えません。" in html
    assert "株式会社サンプル" in html


def test_overview_shows_api_usage_today(admin_client, store):
    store.count_api_call("rest", 7)
    store.count_api_call("login", 2)
    store.record_org_usage(1200, 15000)
    html = admin_client.get("/").get_data(as_text=True)
    assert '<td id="own-calls">7</td>' in html      # logins are not counted in it...
    assert '<td id="logins">2</td>' in html           # ...but shown apart
    assert "1200 / 15000 (8.0%)" in html


# -- languages ---------------------------------------------------------------------------------

def test_language_follows_the_browser(client):
    assert "ログイン" in client.get("/auth/login", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    html = client.get("/auth/login", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    assert "Log in" in html and "ログイン" not in html.replace("日本語", "")


def test_language_switch_overrides_the_browser(admin_client):
    response = admin_client.get("/lang/en?next=/settings/", headers={"Accept-Language": "ja"})
    assert response.location == "/settings/"
    html = admin_client.get("/settings/", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "Test connection and save" in html and '<html lang="en">' in html
    admin_client.get("/lang/ja")
    html = admin_client.get("/settings/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "接続をテストして保存" in html


def test_language_switch_keeps_redirects_on_site(client):
    assert client.get("/lang/en?next=https://evil.example/").location == "/"


def test_unknown_page_is_a_friendly_404(admin_client):
    response = admin_client.get("/nope")
    assert response.status_code == 404 and "<h1>404</h1>" in response.get_data(as_text=True)


def test_a_server_error_is_a_friendly_500_without_the_traceback(home):
    app = make_app(home)  # not TESTING: exceptions reach the error page as in production

    @app.route("/boom")
    def boom():
        raise RuntimeError("password=hunter2 in a stack frame")

    response = app.test_client().get("/boom")
    page = response.get_data(as_text=True)
    assert response.status_code == 500 and "<h1>500</h1>" in page
    assert "Traceback" not in page and "hunter2" not in page


# -- alert e-mail page -------------------------------------------------------------------------

def test_send_test_email_reaches_the_smtp_server_and_saves_nothing(admin_client, store, smtp_server):
    form = {**smtp_server.settings(), "alert_reminder_hours": "4", "slow_alert_threshold": "5", "send_test": "1"}
    html = post_form(admin_client, "/alerts/", form).get_data(as_text=True)
    assert "テストメールを送信しました" in html or "The test e-mail was sent" in html
    (mail,) = smtp_server.wait_for(1)
    assert mail["Subject"] == "[sfcti] テストメール / Test e-mail"
    assert load_settings(store).smtp_host == ""


def test_send_test_email_with_smtp_down_shows_the_remedy(admin_client, store):

    down = SmtpServer(free_port())
    admin_client.get("/lang/en")
    form = {**down.settings(), "alert_reminder_hours": "4", "slow_alert_threshold": "5", "send_test": "1"}
    html = post_form(admin_client, "/alerts/", form).get_data(as_text=True)
    entry = errors.entry_for("SMTP_CONNECTION")
    assert str(escape(entry.message_en)) in html and str(escape(entry.remedy_en)) in html
    (row,) = errors.list_errors(store)
    assert (row["integration"], row["operation"], row["code"]) == ("smtp", "test_mail", "SMTP_CONNECTION")


def test_outbox_is_listed_on_the_alert_page(admin_client, store):
    from core.mail import Outbox

    Outbox(store).enqueue(["ops@example.com"], "[sfcti] queued <b>subject</b>", "body")
    html = admin_client.get("/alerts/").get_data(as_text=True)
    assert "[sfcti] queued &lt;b&gt;subject&lt;/b&gt;" in html


# -- command line ------------------------------------------------------------------------------

def test_reset_password_command(app, home):
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, ["--home", str(home), "admin", "--reset-password", ADMIN_USER])
    assert result.exit_code == 0, result.output
    new_password = result.output.rsplit(": ", 1)[1].strip()
    client = app.test_client()
    assert admin_login(client, ADMIN_USER, ADMIN_PASSWORD).status_code == 200  # the old one is gone
    assert admin_login(client, ADMIN_USER, new_password).status_code == 302


def test_pages_forbid_framing_and_scripts(client):
    response = client.get("/auth/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'none'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_login_wait_doubles_with_each_failure_up_to_a_ceiling(store):
    import datetime as dt

    from core import accounts

    keys = ["user:someone", "ip:192.0.2.1"]
    waits = []
    for _ in range(16):
        accounts.note_failure(store, keys)
        (last_at,) = store.conn.execute(
            "SELECT last_at FROM login_attempts WHERE key = 'user:someone'").fetchone()
        waits.append(accounts.wait_seconds(store, keys, free=5, ceiling=900,
                                           now=dt.datetime.fromisoformat(last_at)))
    assert waits[:4] == [0, 0, 0, 0] and waits[4:9] == [1, 2, 4, 8, 16] and waits[-1] == 900
    # another user name from the same address is slowed down as well
    assert accounts.wait_seconds(store, ["user:other", "ip:192.0.2.1"], free=5, ceiling=900) > 0
    accounts.note_success(store, keys)
    assert accounts.wait_seconds(store, keys, free=5, ceiling=900) == 0


def test_instance_config_file_is_read(tmp_path, database):
    from admin import create_app

    home = tmp_path / "cfg-home"
    home.mkdir()
    database(home)
    (home / "admin.cfg").write_text("PAGE_SIZE = 7\nSESSION_COOKIE_SECURE = True\n")
    app = create_app(home=str(home), admin_password="x")
    assert app.config["PAGE_SIZE"] == 7 and app.config["SESSION_COOKIE_SECURE"] is True
    assert create_app({"SFCTI_HOME": str(home)}).config["PAGE_SIZE"] == 50  # test_config wins
