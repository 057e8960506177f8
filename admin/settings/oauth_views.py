"""Connect with Salesforce: the OAuth 2.0 web-server flow with PKCE for the settings page.

``/settings/oauth/start`` keeps a fresh ``state`` and PKCE verifier (encrypted) in the admin's
session and sends the browser to the org's authorize page; ``/settings/oauth/callback`` takes
them out again (single use), checks ``state``, trades the code for tokens, tests the connection
and only then stores the refresh token (encrypted). Every failure is an error-log row and a
message with the catalogue's remedy on the settings page; nothing is stored then.

The browser leaves for Salesforce through a small page with a meta refresh, not a 302 answer to
the form: the admin's CSP allows forms to submit to 'self' only, and Chromium applies that to
every redirect a form submission follows.
"""

from __future__ import annotations

import logging
import secrets

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from simple_salesforce import format_soql

from admin import get_store
from admin.auth import login_required
from admin.helpers import failure_shown
from admin.settings import bp
from core import errors, oauth
from core.salesforce import ConnectionTestFailed, connect_and_save
from core.settings import Settings, load_settings, save_settings

log = logging.getLogger(__name__)

PENDING = "oauth_pending"
OPERATION = "oauth_connect"


@bp.route("/oauth/start")
@login_required
def oauth_start():
    """Keep a fresh state and PKCE verifier, then send the browser to Salesforce."""
    settings = load_settings(get_store())
    if not settings.oauth_client_id:
        flash(_("Enter the consumer key of the connected app."), "error")
        return redirect(url_for("settings.salesforce"))
    pkce, state = oauth.new_pkce(), oauth.new_state()
    redirect_uri = callback_url(settings)
    session[PENDING] = {"state": state, "verifier": get_store().encrypt(pkce.verifier),
                        "redirect_uri": redirect_uri}
    url = oauth.authorize_url(settings, redirect_uri, state, pkce.challenge)
    return render_template("settings/oauth_redirect.html", url=url)


def callback_url(settings) -> str:
    """The redirect_uri: from the admin URL setting once changed from its default, else this host."""
    # behind a reverse proxy the request's host is the proxy's upstream, not what the browser uses
    if settings.admin_base_url != Settings.admin_base_url:
        return oauth.callback_url(settings)
    return url_for("settings.oauth_callback", _external=True)


@bp.route("/oauth/callback")
@login_required
def oauth_callback():
    """Take the code Salesforce sends back, test the grant and store it."""
    store = get_store()
    pending = session.pop(PENDING, None)  # single use, whatever happens next
    try:
        token = _token_from_callback(store, pending, request.args)
        _connect(store, token)
    except ConnectionTestFailed as exc:  # logged by the test
        session["oauth_failure"] = failure_shown(exc.catalogue_entry, exc.problems)
    except Exception as exc:  # every failure ends as a message with its remedy, never a 500
        session["oauth_failure"] = failure_shown(errors.report_failure(store, OPERATION, exc))
    else:
        flash(_("Connected to Salesforce. The authorization is stored."), "success")
    return redirect(url_for("settings.salesforce"))


def _token_from_callback(store, pending, args) -> oauth.Token:
    """The tokens for the callback's code, after checking that it answers our own sign-in."""
    if args.get("error"):
        raise oauth.error_for(args["error"], errors.clean_text(args.get("error_description", ""), 300))
    if pending is None or not secrets.compare_digest(str(args.get("state", "")), pending["state"]):
        raise oauth.StateMismatch("invalid_state", "the state parameter does not match this sign-in")
    if not args.get("code"):
        raise oauth.OAuthError("invalid_request", "the callback carries no authorization code")
    settings = load_settings(store)
    return oauth.exchange_code(settings, _http(settings), args["code"], pending["redirect_uri"],
                               store.decrypt(pending["verifier"]))


def _connect(store, token: oauth.Token) -> None:
    """Test the new grant (login, permissions) and store it only when the test passes; the
    grant it replaces is revoked, a grant that fails the test too."""
    if not token.refresh_token:
        raise oauth.OAuthError("invalid_scope", "no refresh token: the connected app needs the "
                                                "refresh_token scope")
    stored = load_settings(store)
    try:
        connection = connect_and_save(store, {"auth_method": "oauth_web",
                                              "oauth_refresh_token": token.refresh_token})
    except Exception:
        _revoke_quietly(stored, token.refresh_token)  # a grant we do not keep must not linger
        raise
    save_settings(store, {"username": _user_name(connection, token.user_id)})
    forget_oauth_grant(store, stored, keep=token.refresh_token)
    errors.record_recovery(store, "salesforce", OPERATION)


def _user_name(connection, user_id: str) -> str:
    """The Salesforce user name the grant acts for (shown as "Connected as"); "" if unknown."""
    try:
        rows = connection.query(format_soql("SELECT Username FROM User WHERE Id = {}", user_id))
        return str(rows["records"][0]["Username"])[:80]
    except Exception:  # only a label: the connection itself works
        log.warning("cannot read the connected user's name", exc_info=True)
        return ""


def forget_oauth_grant(store, settings, keep: str | None = None) -> bool:
    """Revoke the stored refresh token (unless it is ``keep``); True when there was one."""
    token = settings.oauth_refresh_token
    if not token or token == keep:
        return False
    _revoke_quietly(settings, token)
    return True


def _revoke_quietly(settings, token: str) -> None:
    # Revoking is a courtesy to the org: an already invalid token must not block a disconnect.
    try:
        oauth.revoke(settings, _http(settings), token)
    except Exception as exc:
        log.warning("revoking the Salesforce refresh token failed: %s", errors.scrub(str(exc), [token]))


def _http(settings):
    return oauth.plain_session(settings.ca_bundle, (settings.connect_timeout, settings.read_timeout))
