"""The settings page against the local Salesforce emulator, through Flask's test client:
"Test connection and save" saves only after a real login and permission check."""

from __future__ import annotations

import pytest
from markupsafe import escape

from core import errors
from core.settings import Settings, load_settings, save_settings
from helpers import connect, csrf_token, insert_row, post_form


@pytest.fixture(scope="module")
def emu():
    from emulator import Emulator, Org

    with Emulator(Org()) as emu:
        yield emu


@pytest.fixture(autouse=True)
def healthy(emu):
    emu.faults.clear()
    yield
    emu.faults.clear()


def form_for(emu, **changes) -> dict:
    return {"username": emu.username, "password": emu.password,
            "security_token": emu.security_token, "contact_fetch": "after_call",
            "login_url": emu.login_url, "ca_bundle": str(emu.ca_path), "time_zone": "Asia/Tokyo",
            "nightly_time": "21:30", "screen_budget_ms": "700", **changes}


def test_success_saves_and_shows_the_seed_message(admin_client, store, emu):
    admin_client.get("/lang/ja")
    response = post_form(admin_client, "/settings/", form_for(emu), follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "Salesforce との接続に成功しました。設定を保存しました。" in html
    saved = load_settings(store)
    assert (saved.username, saved.password, saved.security_token, saved.contact_fetch,
            saved.nightly_time, saved.screen_budget_ms) == (
        emu.username, emu.password, emu.security_token, "after_call", "21:30", 700)
    assert emu.password not in html and emu.security_token not in html
    assert errors.count_errors(store, open=True) == 0


@pytest.mark.parametrize("change,code", [
    ({"password": "wrong"}, "INVALID_LOGIN"),
    ({"security_token": "wrongtoken"}, "INVALID_LOGIN"),
    ({"login_url": "https://127.0.0.1:1"}, "CONNECTION_ERROR"),
])
def test_failure_shows_message_and_remedy_and_saves_nothing(admin_client, store, emu, change, code):
    admin_client.get("/lang/en")
    response = post_form(admin_client, "/settings/", form_for(emu, **change))
    html = response.get_data(as_text=True)
    entry = errors.entry_for(code)
    assert response.status_code == 200
    assert str(escape(entry.message_en)) in html and str(escape(entry.remedy_en)) in html
    assert "Nothing was saved." in html
    assert load_settings(store) == Settings()
    (row,) = errors.list_errors(store)
    assert (row["integration"], row["operation"], row["code"]) == ("salesforce", "connection_test", code)


@pytest.mark.parametrize("fault", ["LOGIN_MUST_USE_SECURITY_TOKEN", "API_DISABLED_FOR_ORG",
                                   "API_CURRENTLY_DISABLED"])
def test_login_faults_show_their_remedy(admin_client, store, emu, fault):
    emu.faults.set(login_fault=fault)
    admin_client.get("/lang/ja")
    html = post_form(admin_client, "/settings/", form_for(emu)).get_data(as_text=True)
    assert str(escape(errors.entry_for(fault).remedy_ja)) in html
    assert load_settings(store) == Settings()


def test_expired_password_shows_its_remedy(admin_client, store, emu):
    emu.faults.set(password_expired=True)
    html = post_form(admin_client, "/settings/", form_for(emu)).get_data(as_text=True)
    entry = errors.entry_for("INVALID_OPERATION_WITH_EXPIRED_PASSWORD")
    assert str(escape(entry.remedy_ja)) in html or str(escape(entry.remedy_en)) in html
    assert load_settings(store) == Settings()


def test_blank_secrets_test_and_keep_the_stored_ones(admin_client, store, emu):
    save_settings(store, {"username": emu.username, "password": emu.password,
                          "security_token": emu.security_token})
    response = post_form(admin_client, "/settings/",
                         form_for(emu, password="", security_token="", nightly_time="23:00"))
    assert response.status_code == 302
    saved = load_settings(store)
    assert (saved.password, saved.security_token, saved.nightly_time) == (
        emu.password, emu.security_token, "23:00")


def test_a_later_success_closes_the_failed_test_in_the_error_log(admin_client, store, emu):
    post_form(admin_client, "/settings/", form_for(emu, password="wrong"))
    assert errors.count_errors(store, open=True) == 1
    post_form(admin_client, "/settings/", form_for(emu))
    assert errors.count_errors(store, open=True) == 0
    assert errors.count_errors(store) == 1  # the history of the failure stays


def test_disconnect_removes_the_stored_credentials(admin_client, store, emu):
    post_form(admin_client, "/settings/", form_for(emu))
    response = post_form(admin_client, "/settings/disconnect", {"disconnect": "1"},
                         follow_redirects=True)
    saved = load_settings(store)
    assert (saved.username, saved.password, saved.security_token) == ("", "", "")
    assert saved.login_url == emu.login_url  # connection options stay
    html = response.get_data(as_text=True)
    assert 'name="disconnect"' not in html  # nothing left to disconnect


# -- re-fetch from the call history (needs a connected emulator) ------------------------------

@pytest.fixture
def emu_connected(store, emu):
    """The instance connected to this module's emulator, registering after each call."""
    connect(store, emu, contact_fetch="after_call")
    return store


def _call(store, call_id, remote):
    insert_row(store, "calls", {"call_id": call_id, "direction": "inbound", "remote_number": remote,
                                "e164": remote, "display_number": remote, "status": "not_registered",
                                "started_at": "2024-05-20T01:00:00+00:00"})


def test_refetch_registers_the_record_and_is_locked_for_15_seconds(admin_client, emu_connected, emu):
    account = emu.add_record("Account", {"Name": "株式会社リフェッチ", "Phone": "03-5555-0101"})
    assert account
    _call(emu_connected, "c-refetch", "+81355550101")
    admin_client.get("/lang/ja")
    token = csrf_token(admin_client, "/calls/")
    first = admin_client.post("/calls/c-refetch/refetch", data={"csrf_token": token},
                              follow_redirects=True).get_data(as_text=True)
    assert "再取得しました" in first and "株式会社リフェッチ" in first
    assert emu_connected.get_contact("+81355550101")["company"] == "株式会社リフェッチ"
    second = admin_client.post("/calls/c-refetch/refetch", data={"csrf_token": token},
                               follow_redirects=True).get_data(as_text=True)
    assert "この番号は直前に再取得されました" in second


def test_refetch_while_salesforce_fails_shows_the_remedy_and_logs_it(admin_client, emu_connected, emu):
    _call(emu_connected, "c-down", "+81355550199")
    emu.faults.set(http_status=503)
    token = csrf_token(admin_client, "/calls/")
    html = admin_client.post("/calls/c-down/refetch", data={"csrf_token": token},
                             follow_redirects=True).get_data(as_text=True)
    assert response_ok(html)
    rows = errors.list_errors(emu_connected, integration="salesforce")
    assert [(r["operation"], r["call_id"]) for r in rows] == [("refetch", "c-down")]
    assert str(escape(errors.entry_for(rows[0]["code"]).remedy_ja)) in html


def test_refetch_of_an_unknown_call(admin_client, emu_connected):
    token = csrf_token(admin_client, "/calls/")
    html = admin_client.post("/calls/nope/refetch", data={"csrf_token": token},
                             follow_redirects=True).get_data(as_text=True)
    assert "この通話は応対履歴にありません" in html or "This call is not in the history" in html


def response_ok(html: str) -> bool:
    return "<h1>応対履歴一覧</h1>" in html or "<h1>Call history</h1>" in html
