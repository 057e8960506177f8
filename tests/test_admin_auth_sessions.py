"""Admin sessions can be ended: a session cookie copied before a logout, a password reset
(`sfcti admin --reset-password`) or a password change no longer opens any page; the
password-change page refuses hostile input with a clear message."""

from __future__ import annotations

import re

import pytest

from helpers import ADMIN_PASSWORD, ADMIN_USER, admin_login, csrf_token, make_app, post_form

NEW_PASSWORD = "a brand new passphrase"


def session_cookie(client) -> str:
    """The value of ``client``'s session cookie, as an attacker would copy it."""
    return client.get_cookie("session").value


def replayed(app, cookie: str):
    """A fresh client (another machine) sending only the copied session cookie to /settings/."""
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief.get("/settings/")


def change_password(client, current=ADMIN_PASSWORD, new=NEW_PASSWORD, confirm=None,
                    lang="en"):
    return post_form(client, "/auth/password",
                     {"current_password": current, "new_password": new,
                      "confirm_password": new if confirm is None else confirm},
                     headers={"Accept-Language": lang})


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and response.location.startswith("/auth/login")


def test_a_cookie_copied_before_logout_no_longer_opens_settings(app, admin_client):
    cookie = session_cookie(admin_client)
    assert replayed(app, cookie).status_code == 200  # the copy is a working login...
    admin_client.post("/auth/logout", data={"csrf_token": csrf_token(admin_client, "/")})
    assert is_login_redirect(replayed(app, cookie))  # ...until the admin logs out
    # the browser that logged out, given its old cookie back, is out too
    admin_client.set_cookie("session", cookie)
    assert is_login_redirect(admin_client.get("/settings/"))


def test_logout_ends_every_session_of_the_account_only(app, admin_client, store):
    from core.accounts import set_password

    other_browser = app.test_client()
    assert admin_login(other_browser).status_code == 302
    set_password(store, "auditor", "auditor's own password", "pbkdf2:sha256:1000")
    auditor = app.test_client()
    assert admin_login(auditor, "auditor", "auditor's own password").status_code == 302
    admin_client.post("/auth/logout", data={"csrf_token": csrf_token(admin_client, "/")})
    assert is_login_redirect(other_browser.get("/settings/"))
    assert auditor.get("/settings/").status_code == 200  # another account keeps its sessions
    assert admin_login(other_browser).status_code == 302  # logging in again works


@pytest.mark.parametrize("run", ["click", "subprocess"])
def test_a_cookie_copied_before_reset_password_no_longer_opens_settings(app, admin_client, home, run):
    import subprocess
    import sys

    from click.testing import CliRunner

    from cli import main
    from helpers import ROOT

    cookie = session_cookie(admin_client)
    assert replayed(app, cookie).status_code == 200
    args = ["--home", str(home), "admin", "--reset-password", ADMIN_USER]
    if run == "click":
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        output = result.output
    else:
        output = subprocess.run([sys.executable, "-c", "from cli import main; main()", *args],
                                cwd=ROOT, capture_output=True, text=True, check=True,
                                timeout=60).stdout
    new_password = output.rsplit(": ", 1)[1].strip()
    assert is_login_redirect(replayed(app, cookie))
    assert is_login_redirect(admin_client.get("/settings/"))
    assert admin_login(app.test_client(), ADMIN_USER, new_password).status_code == 302


def test_password_change_keeps_this_browser_and_ends_the_others(app, admin_client):
    other_browser = app.test_client()
    assert admin_login(other_browser).status_code == 302
    cookie_before = session_cookie(admin_client)
    response = change_password(admin_client)
    assert response.status_code == 302, response.get_data(as_text=True)
    page = admin_client.get(response.location).get_data(as_text=True)
    assert "Your password was changed. Other sessions of this account have ended." in page
    assert admin_client.get("/settings/").status_code == 200       # this browser: a fresh session
    assert session_cookie(admin_client) != cookie_before
    assert is_login_redirect(other_browser.get("/settings/"))      # the others are out
    assert is_login_redirect(replayed(app, cookie_before))         # and so is the old cookie
    assert admin_login(app.test_client(), ADMIN_USER, ADMIN_PASSWORD).status_code == 200
    assert admin_login(app.test_client(), ADMIN_USER, NEW_PASSWORD).status_code == 302


def test_every_page_links_the_password_change(admin_client):
    html = admin_client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert re.search(r'<a href="/auth/password" id="change-password"[^>]*>Change password</a>', html)
    assert admin_client.get("/auth/password").status_code == 200


def test_the_password_change_page_requires_the_admin(client):
    assert is_login_redirect(client.get("/auth/password"))


HOSTILE = [
    # (what, current, new, confirm, the message shown)
    ("empty current", "", NEW_PASSWORD, None, "Enter your current password."),
    ("empty new", ADMIN_PASSWORD, "", "", "Enter a new password."),
    ("empty confirmation", ADMIN_PASSWORD, NEW_PASSWORD, "", "Enter the new password again."),
    ("too short", ADMIN_PASSWORD, "short", None, "Use at least 12 characters."),
    ("huge", ADMIN_PASSWORD, "x" * 100_000, None, "Use at most 255 characters."),
    ("huge current", "x" * 100_000, NEW_PASSWORD, None, "Field cannot be longer than 255 characters."),
    ("NUL", ADMIN_PASSWORD, "long enough\x00password", None,
     "The password must not contain control characters."),
    ("CR LF", ADMIN_PASSWORD, "long enough\r\npassword", None,
     "The password must not contain control characters."),
    ("escape", ADMIN_PASSWORD, "long enough\x1b[2Jpassword", None,
     "The password must not contain control characters."),
    ("mismatch", ADMIN_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "The two new passwords differ."),
    ("unchanged", ADMIN_PASSWORD, ADMIN_PASSWORD, None,
     "The new password must differ from the current one."),
    ("wrong current", "<script>alert(1)</script>", NEW_PASSWORD, None, "Wrong user name or password."),
]


@pytest.mark.parametrize("what, current, new, confirm, message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_password_change_is_refused_with_a_clear_message(app, admin_client, what, current,
                                                                new, confirm, message):
    response = change_password(admin_client, current, new, confirm)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'<div class="error" role="alert">{message}</div>' in html
    assert "<script>" not in html and "Traceback" not in html
    # nothing changed: the old password still logs in, this browser is still in
    assert admin_client.get("/settings/").status_code == 200
    assert admin_login(app.test_client(), ADMIN_USER, ADMIN_PASSWORD).status_code == 302


def test_an_html_password_is_a_password_and_is_never_shown(app, admin_client):
    html_password = '<b onmouseover="x">"&amp;</b>'
    response = change_password(admin_client, new=html_password)
    assert response.status_code == 302
    assert html_password not in admin_client.get("/auth/password").get_data(as_text=True)
    assert admin_login(app.test_client(), ADMIN_USER, html_password).status_code == 302


def test_wrong_current_passwords_are_braked_like_logins(app, admin_client):
    app.config["LOGIN_FIRST_DELAY_SECONDS"] = 60
    for n in range(5):
        html = change_password(admin_client, current=f"guess {n}").get_data(as_text=True)
        assert "Wrong user name or password." in html
    html = change_password(admin_client).get_data(as_text=True)  # the right one, too soon
    assert re.search(r"Too many failed logins\. Try again in (60|59) seconds\.", html)
    assert admin_login(app.test_client(), ADMIN_USER, NEW_PASSWORD).status_code == 200


def test_password_change_without_csrf_token_is_refused(app, admin_client):
    response = admin_client.post("/auth/password", data={
        "current_password": ADMIN_PASSWORD, "new_password": NEW_PASSWORD,
        "confirm_password": NEW_PASSWORD})
    assert response.status_code == 400
    assert admin_login(app.test_client(), ADMIN_USER, ADMIN_PASSWORD).status_code == 302


def test_password_change_page_in_japanese(admin_client):
    html = change_password(admin_client, new="短い", lang="ja").get_data(as_text=True)
    assert "パスワードの変更" in html and "現在のパスワード" in html
    assert "12 文字以上にしてください。" in html


def test_migration_gives_existing_accounts_a_session_generation(tmp_path, monkeypatch, database):
    """An instance from before the session generation: its admin logs in with the old password."""
    from core import store as store_module

    home = tmp_path / "old"
    database(home)
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:3])
    # the code of that time had no key check either (its table, store_meta, came with migration 5)
    monkeypatch.setattr(store_module.Store, "_check_secret_key", lambda self: None)
    old = store_module.Store(home)
    from werkzeug.security import generate_password_hash
    with old.transaction() as db:
        db.execute("INSERT INTO admin_users (username, password_hash, created_at) VALUES (?, ?, ?)",
                   [ADMIN_USER, generate_password_hash(ADMIN_PASSWORD, "pbkdf2:sha256:1000"), "x"])
    old.close()
    monkeypatch.undo()
    app = make_app(home)
    client = app.test_client()
    assert admin_login(client).status_code == 302
    assert client.get("/settings/").status_code == 200
