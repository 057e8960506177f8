"""The overview page and the language switch."""

from __future__ import annotations

from flask import redirect, render_template, request, session

from admin import get_store
from admin.auth import login_required
from admin.auth.views import safe_next
from admin.i18n import LANGUAGES
from admin.main import bp
from core import activity
from core.errors import count_errors
from core.history import count_calls
from core.mail import Outbox
from core.settings import load_settings


@bp.route("/")
@login_required
def index():
    """The overview: connection, API usage and what needs attention."""
    store = get_store()
    settings = load_settings(store)
    usage = store.api_usage()
    return render_template(
        "main/index.html", settings=settings, usage=usage,
        open_errors=count_errors(store, open=True),
        calls_total=count_calls(store),
        contacts_total=store.count_contacts(),
        outbox_waiting=Outbox(store).waiting_count(),
        activity=activity.status(store),
    )


@bp.route("/lang/<code>")
def switch_language(code: str):
    """Remember the chosen language and go back to the page the switch was clicked on."""
    if code in LANGUAGES:
        session["lang"] = code
    return redirect(safe_next(request.args.get("next")))
