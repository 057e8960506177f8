"""HTTPS and reverse proxies: the session cookie is Secure on every HTTPS request, and the
X-Forwarded-* headers count only when the operator declared the proxies (TRUSTED_PROXIES)."""

from __future__ import annotations

import re

import pytest

from helpers import ADMIN_PASSWORD, ADMIN_USER, make_app

PROXIED_HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "admin.example.com",
                 "X-Forwarded-For": "203.0.113.7"}


def log_in(client, headers=None, base_url="http://localhost", password=ADMIN_PASSWORD,
           username=ADMIN_USER):
    """The login form as a browser sends it (token from the page, Referer of the page)."""
    page_url = f"{base_url}/auth/login"
    headers = {"Accept-Language": "en", **(headers or {})}
    html = client.get("/auth/login", base_url=base_url, headers=headers).get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    return client.post("/auth/login", base_url=base_url,
                       headers={**headers, "Referer": page_url},
                       data={"csrf_token": token, "username": username, "password": password})


def session_cookie(response) -> str:
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    return cookie


def test_plain_http_cookie_is_not_secure(home):
    response = log_in(make_app(home).test_client())
    assert response.status_code == 302
    assert "; Secure" not in session_cookie(response)


def test_direct_https_cookie_is_secure(home):
    response = log_in(make_app(home).test_client(), base_url="https://localhost")
    assert response.status_code == 302
    assert "; Secure" in session_cookie(response)


def test_behind_a_declared_proxy_https_makes_the_cookie_secure(home):
    client = make_app(home, TRUSTED_PROXIES=1).test_client()
    response = log_in(client, PROXIED_HTTPS, base_url="https://admin.example.com")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert "; Secure" in session_cookie(response)
    # the OAuth callback the settings page shows is the address the browser uses
    html = client.get("/settings/", base_url="https://admin.example.com",
                      headers=PROXIED_HTTPS).get_data(as_text=True)
    assert 'value="https://admin.example.com/settings/oauth/callback"' in html


def test_behind_a_declared_proxy_plain_http_stays_plain(home):
    client = make_app(home, TRUSTED_PROXIES=1).test_client()
    response = log_in(client, {"X-Forwarded-Proto": "http"})
    assert response.status_code == 302
    assert "; Secure" not in session_cookie(response)


def test_forwarded_headers_are_ignored_without_the_option(home):
    client = make_app(home).test_client()
    response = log_in(client, PROXIED_HTTPS)
    assert response.status_code == 302
    assert "; Secure" not in session_cookie(response)
    html = client.get("/settings/", headers=PROXIED_HTTPS).get_data(as_text=True)
    assert 'value="http://localhost/settings/oauth/callback"' in html
    assert "admin.example.com" not in html


def test_behind_a_declared_proxy_failed_logins_slow_down_only_their_client(home):
    client = make_app(home, TRUSTED_PROXIES=1, LOGIN_FREE_FAILURES=1,
                      LOGIN_FIRST_DELAY_SECONDS=60).test_client()
    attacker = {"X-Forwarded-For": "203.0.113.66"}
    for _ in range(2):
        log_in(client, attacker, username="guess", password="wrong")
    refused = log_in(client, attacker, username="guess2", password="wrong")
    assert "Too many failed logins" in refused.get_data(as_text=True)
    # the admin behind the same proxy, from another address, is not locked out
    assert log_in(client, {"X-Forwarded-For": "198.51.100.5"}).status_code == 302


@pytest.mark.parametrize("value", [-1, "1", 1.5, None])
def test_a_malformed_proxy_count_is_refused_with_a_clear_message(home, value):
    with pytest.raises(ValueError, match="TRUSTED_PROXIES in admin.cfg must be the number"):
        make_app(home, TRUSTED_PROXIES=value)


def test_the_option_is_read_from_admin_cfg(home, monkeypatch):
    from admin import create_app

    monkeypatch.delenv("SFCTI_ADMIN_USER", raising=False)
    home.mkdir(exist_ok=True)  # the database fixture may have made it
    (home / "admin.cfg").write_text("TRUSTED_PROXIES = 1\n")
    client = create_app(home=str(home), admin_password=ADMIN_PASSWORD).test_client()
    response = log_in(client, PROXIED_HTTPS, base_url="https://admin.example.com")
    assert response.status_code == 302
    assert "; Secure" in session_cookie(response)
