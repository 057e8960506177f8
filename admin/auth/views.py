"""Login, logout, the admin's password change and the login guard.

A session holds the account's name and its session generation (core/accounts.py): logout and a
password change (or ``sfcti admin --reset-password``) move the account to the next generation,
so every cookie issued before, wherever it was copied to, no longer logs anyone in."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from admin import get_store
from admin.auth import bp
from admin.auth.forms import PASSWORD_MIN_LENGTH, LoginForm, LogoutForm, PasswordChangeForm
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
    """Put the logged-in admin's name in ``g.admin`` (None when logged out, or when the session
    belongs to an older generation of the account: logged out, password changed or reset)."""
    username = session.get("admin")
    generation = accounts.session_generation(get_store(), username) if username else None
    valid = generation is not None and session.get("admin_generation") == generation
    g.admin = username if valid else None


def _attempt_keys(username: str) -> list[str]:
    return [f"user:{username.lower()[:80]}", f"ip:{request.remote_addr or '-'}"]


def _brake() -> accounts.Brake:
    config = current_app.config
    return accounts.Brake(free=config["LOGIN_FREE_FAILURES"],
                          ceiling=config["LOGIN_MAX_DELAY_SECONDS"],
                          first_delay=config["LOGIN_FIRST_DELAY_SECONDS"])


def _checked_password(username: str, password: str) -> str | None:
    """None when ``password`` is the password of ``username``, else the message to show. The
    attempt is counted before the password is checked (see accounts.reserve_attempt)."""
    store, keys = get_store(), _attempt_keys(username)
    wait = accounts.reserve_attempt(store, keys, _brake())
    if wait:
        return _("Too many failed logins. Try again in %(seconds)d seconds.", seconds=wait)
    if not accounts.check_credentials(store, username, password):
        return _("Wrong user name or password.")
    accounts.note_success(store, keys)
    return None


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
        problem = _checked_password(form.username.data, form.password.data)
        if problem:
            flash(problem, "error")
        else:
            _start_session(form.username.data,
                           accounts.session_generation(get_store(), form.username.data))
            return redirect(safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=("POST",))
def logout():
    """End every session of the account (this one and any copy of its cookie), keeping only
    the chosen language."""
    form = LogoutForm()
    if form.validate_on_submit():
        if g.admin:
            accounts.end_sessions(get_store(), g.admin)
        _clear_session_keeping_language()
        flash(_("You are logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=("GET", "POST"))
@login_required
def change_password():
    """The logged-in admin's own password: every other session of the account ends, this
    browser goes on with a fresh one."""
    config = current_app.config
    min_length = config.get("PASSWORD_MIN_LENGTH", PASSWORD_MIN_LENGTH)
    form = PasswordChangeForm(min_length=min_length)
    if form.validate_on_submit():
        problem = _checked_password(g.admin, form.current_password.data)
        if problem:
            form.current_password.errors = [problem]
        else:
            generation = accounts.set_password(get_store(), g.admin, form.new_password.data,
                                               config["ADMIN_PASSWORD_METHOD"])
            _start_session(g.admin, generation)
            flash(_("Your password was changed. Other sessions of this account have ended."), "info")
            return redirect(url_for("main.index"))
    return render_template("auth/password.html", form=form, min_length=min_length)


def _start_session(username: str, generation: int) -> None:
    """A fresh session (no fixation) under the account's session ``generation``."""
    _clear_session_keeping_language()
    session["admin"] = username
    session["admin_generation"] = generation
    session.permanent = True


def _clear_session_keeping_language() -> None:
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
