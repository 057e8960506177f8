"""Login, logout and the login guard."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from admin import get_store
from admin.auth import bp
from admin.auth.forms import LoginForm, LogoutForm
from core import accounts


def login_required(view):
    """Redirect to the login page unless the admin is logged in."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("admin") is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)
    return wrapped


@bp.before_app_request
def load_logged_in_admin() -> None:
    """Put the logged-in admin's name in ``g.admin`` (None when logged out)."""
    username = session.get("admin")
    g.admin = username if username and accounts.user_exists(get_store(), username) else None


def _attempt_keys(username: str) -> list[str]:
    return [f"user:{username.lower()[:80]}", f"ip:{request.remote_addr or '-'}"]


def safe_next(target: str | None) -> str:
    """Only a path on this site: an open redirect would help phishing."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("main.index")
    parts = urlsplit(target)
    return url_for("main.index") if parts.scheme or parts.netloc else target


@bp.route("/login", methods=("GET", "POST"))
def login():
    """The login form; a failed login slows the next attempts down."""
    form = LoginForm()
    if form.validate_on_submit():
        store, keys = get_store(), _attempt_keys(form.username.data)
        config = current_app.config
        wait = accounts.wait_seconds(store, keys, config["LOGIN_FREE_FAILURES"],
                                     config["LOGIN_MAX_DELAY_SECONDS"],
                                     first_delay=config["LOGIN_FIRST_DELAY_SECONDS"])
        if wait:
            flash(_("Too many failed logins. Try again in %(seconds)d seconds.", seconds=wait), "error")
        elif accounts.check_credentials(store, form.username.data, form.password.data):
            accounts.note_success(store, keys)
            _clear_session_keeping_language()  # a fresh session: no fixation
            session["admin"] = form.username.data
            session.permanent = True
            return redirect(safe_next(request.args.get("next")))
        else:
            accounts.note_failure(store, keys)
            flash(_("Wrong user name or password."), "error")
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=("POST",))
def logout():
    """End the session, keeping only the chosen language."""
    form = LogoutForm()
    if form.validate_on_submit():
        _clear_session_keeping_language()
        flash(_("You are logged out."), "info")
    return redirect(url_for("auth.login"))


def _clear_session_keeping_language() -> None:
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
