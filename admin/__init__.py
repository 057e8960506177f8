"""The sfcti admin: a Flask app factory in the flaskr style.

Configuration comes from, in order: the defaults below, ``admin.cfg`` in the instance folder
(``SFCTI_HOME``), then ``test_config``. The instance folder is the one the host plugin and the CLI
share, so the admin reads and writes the same settings, error log and call history.
"""

from __future__ import annotations

import hashlib
import os
import sys

from flask import Flask, current_app, redirect, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from jinja2 import pass_context
from werkzeug.middleware.proxy_fix import ProxyFix

from core.display import printable
from core.store import Store, home_path

from admin import i18n


def create_app(test_config: dict | None = None, *, home: str | None = None,
               admin_password: str | None = None) -> Flask:
    """Build the admin app: config, store, admin account, translations and blueprints.

    ``home`` is the instance folder (default ``$SFCTI_HOME``, else ``./instance``);
    ``admin_password`` is the password of the admin account if it has to be created.
    """
    home = _home(test_config, home)
    app = Flask(__name__, instance_path=home, instance_relative_config=True)
    app.config.from_mapping(_defaults(home))
    if admin_password:
        app.config["ADMIN_PASSWORD"] = admin_password
    if test_config is None:
        app.config.from_pyfile("admin.cfg", silent=True)
    else:
        app.config.from_mapping(test_config)
    _trust_proxies(app)
    app.session_interface = HttpsSessionInterface()
    store = Store(app.config["SFCTI_HOME"])
    app.extensions["sfcti_store"] = store
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _session_key(store)
    _ensure_admin_account(app, store)
    # before CSRFProtect's check, which reads the form: an upload page's own limit must apply to it
    app.before_request(_upload_limit)
    # every POST, including login and logout, must carry the form's token
    CSRFProtect(app)
    i18n.init_app(app)
    _register_blueprints(app)
    _register_template_helpers(app)
    # browsers ask for /favicon.ico whatever the page links; no login needed for an icon
    app.add_url_rule("/favicon.ico", "favicon", _favicon)
    app.after_request(_security_headers)
    return app


def _security_headers(response):
    """No framing (clickjacking), no inline or foreign scripts: a missed escape still cannot run."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'none'; object-src 'none'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


class HttpsSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie sessions, with ``Secure`` on the cookie whenever the request came
    over HTTPS (directly, or through a trusted proxy: see ``TRUSTED_PROXIES``)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """``SESSION_COOKIE_SECURE``, or this request is HTTPS."""
        return super().get_cookie_secure(app) or request.is_secure


def _trust_proxies(app: Flask) -> None:
    """Behind the reverse proxies the operator declares (``TRUSTED_PROXIES`` in admin.cfg), take
    the client's address, scheme and host from their X-Forwarded-For/-Proto/-Host headers.
    Without it those headers are ignored: any client could send them."""
    hops = app.config["TRUSTED_PROXIES"]
    if not isinstance(hops, int) or hops < 0:
        raise ValueError(f"TRUSTED_PROXIES in admin.cfg must be the number of reverse proxies in "
                         f"front of the admin (0: none), not {hops!r}")
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def _upload_limit() -> None:
    """A view marked with :func:`admin.helpers.accepts_upload` takes a larger request body than
    ``MAX_CONTENT_LENGTH`` (the limit of every other form)."""
    view = current_app.view_functions.get(request.endpoint or "")
    limit = getattr(view, "max_upload_bytes", None)
    if limit:
        request.max_content_length = limit


def _favicon():
    return redirect(url_for("static", filename="favicon.svg"))


def _home(test_config: dict | None, home: str | None) -> str:
    return str(home_path((test_config or {}).get("SFCTI_HOME") or home))


def _defaults(home: str) -> dict:
    return {
        "SFCTI_HOME": home,
        "SECRET_KEY": None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # the cookie is Secure on every HTTPS request anyway (HttpsSessionInterface); True forces it
        "SESSION_COOKIE_SECURE": False,
        # reverse proxies whose X-Forwarded-* headers are believed; 0: none (direct clients)
        "TRUSTED_PROXIES": 0,
        "PERMANENT_SESSION_LIFETIME": 8 * 3600,
        "WTF_CSRF_TIME_LIMIT": 8 * 3600,
        "MAX_CONTENT_LENGTH": 256 * 1024,
        "ADMIN_USERNAME": os.environ.get("SFCTI_ADMIN_USER") or "admin",
        "ADMIN_PASSWORD": os.environ.get("SFCTI_ADMIN_PASSWORD") or None,
        "ADMIN_PASSWORD_METHOD": "scrypt",
        "LOGIN_FREE_FAILURES": 5,
        "LOGIN_FIRST_DELAY_SECONDS": 1.0,
        "LOGIN_MAX_DELAY_SECONDS": 900,
        "PAGE_SIZE": 50,
        "SMTP_TIMEOUT": 10.0,
    }


def _session_key(store: Store) -> str:
    """A session-signing key derived from the instance key: stable across restarts and shared by
    every admin process on the instance, without a second key file to protect."""
    store.fernet  # creates secret.key on first use
    return hashlib.sha256(b"sfcti-admin-session\0" + store.key_path.read_bytes()).hexdigest()


def _ensure_admin_account(app: Flask, store: Store) -> None:
    from core.accounts import ensure_admin

    username = app.config["ADMIN_USERNAME"]
    generated = ensure_admin(store, username, app.config["ADMIN_PASSWORD"],
                             app.config["ADMIN_PASSWORD_METHOD"])
    if generated:
        # shown once: only the hash is stored
        print(f"sfcti admin: created the admin account {username!r} with the password "
              f"{generated!r}. Log in and keep it safe; it is not shown again.",
              file=sys.stderr, flush=True)


def _register_blueprints(app: Flask) -> None:
    from admin import agents, alerts, auth, calls, contacts, errors, main, phone_index, settings

    for module in (auth, main, settings, phone_index, alerts, errors, calls, contacts, agents):
        app.register_blueprint(module.bp)
    errors.register_error_pages(app)


def _register_template_helpers(app: Flask) -> None:
    from admin import helpers

    app.jinja_env.filters["localtime"] = helpers.localtime
    app.jinja_env.globals["lang"] = i18n.current_lang
    app.jinja_env.globals["page_url"] = helpers.page_url
    # text from a host, Salesforce or a user reaches a page's text through two doors: a {{ }}
    # output, or a value formatted into a translated text (Markup by then, so finalize skips
    # it). A form field renders itself as Markup and keeps its value exact: saving must keep it.
    app.jinja_env.finalize = shown
    for name in ("gettext", "ngettext", "pgettext", "npgettext"):
        if name in app.jinja_env.globals:
            app.jinja_env.globals[name] = _with_shown_values(app.jinja_env.globals[name])


def shown(value):
    """What a page shows for ``value``: plain text (exactly ``str``) through
    :func:`core.display.printable`, so no control or text-direction character reaches the page
    (what is stored stays exact); Markup (escaped already, or a macro's HTML) and anything else
    as it is."""
    return printable(value) if type(value) is str else value


def _with_shown_values(gettext):
    """``gettext`` whose ``%(name)s`` values are :func:`shown` first: Jinja formats them into the
    translated Markup, which the finalize hook then leaves alone."""

    @pass_context
    def translated(context, *args, **values):
        return context.call(gettext, *args, **{k: shown(v) for k, v in values.items()})

    return translated


def get_store() -> Store:
    """The instance Store of the running app."""
    return current_app.extensions["sfcti_store"]
