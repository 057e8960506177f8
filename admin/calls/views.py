"""Call history, newest first, and re-fetching one call's Salesforce record."""

from __future__ import annotations

import base64
import re

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from admin import get_store
from admin.auth import login_required
from admin.calls import bp
from admin.calls.forms import LogAgainForm, RefetchForm
from admin.helpers import searched_page
from admin.i18n import current_lang
from core import activity, history as call_history, registration
from core.errors import ALIASES, CATALOGUE, entry_for, report_failure
from core.settings import load_settings


# An id made only of these is its own URL segment; any other (spaces, "/", "%", NUL, a leading
# "." that a browser would resolve as a path step, the "~" of the encoded form) is encoded.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")
ENCODED = "~"


@bp.app_template_filter("call_key")
def call_key(call_id: str) -> str:
    """The URL segment that names a call: its id when that is URL-safe as it is, else "~" and
    the unpadded base64url of its UTF-8 bytes, so that every stored id round-trips exactly."""
    if _PLAIN_KEY.match(call_id):
        return call_id
    encoded = base64.urlsafe_b64encode(call_id.encode("utf-8")).decode("ascii")
    return ENCODED + encoded.rstrip("=")


def call_id_of(key: str) -> str | None:
    """The call id a URL segment from :func:`call_key` names (any other segment is taken as the
    id itself); None for a "~" segment that does not decode, and for an id holding NUL, which
    names no call the history keeps on PostgreSQL (nor can be looked up there)."""
    call_id = key
    if key.startswith(ENCODED):
        body = key[len(ENCODED):]
        try:
            call_id = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_",
                                       validate=True).decode("utf-8")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return None
    return None if "\x00" in call_id else call_id


def status_label(status: str | None) -> str:
    """The screen status in the page's language."""
    labels = {"matched": _("Matched"), "not_registered": _("Not registered"),
              "withheld": _("Withheld"), "unavailable": _("Unavailable")}
    return labels.get(status or "", status or "")


def direction_label(direction: str | None) -> str:
    """Inbound / outbound in the page's language."""
    return {"inbound": _("Inbound"), "outbound": _("Outbound")}.get(direction or "", direction or "")


@bp.route("/")
@login_required
def history():
    """The call history, newest first, searchable and paginated."""
    store = get_store()
    page = searched_page(lambda search: call_history.count_calls(store, search),
                         lambda **query: call_history.list_calls(store, **query))
    tasks = activity.states_for(store, [row["call_id"] for row in page["rows"]])
    return render_template("calls/history.html", **page, refetch_form=RefetchForm(),
                           log_again_form=LogAgainForm(), tasks=tasks, task_label=task_label,
                           task_error=task_error, status_label=status_label,
                           direction_label=direction_label)


def task_label(state: str | None) -> str:
    """A call's Task logging state in the page's language (None: never queued)."""
    labels = {"waiting": _("Waiting"), "sending": _("Sending"), "logged": _("Logged"),
              "failed": _("Failed"), "skipped": _("Skipped"), None: _("Not logged")}
    return labels.get(state, state or "")


def task_error(code: str | None):
    """The catalogue entry explaining why Salesforce refused a call's Task: its own entry when
    the catalogue has one (a validation rule...), else the general "Salesforce refused the Task"."""
    return entry_for(code if code in CATALOGUE or code in ALIASES else "TASK_REJECTED")


@bp.route("/<path:key>/log-again", methods=("POST",))
@login_required
def log_again(key: str):
    """Queue one call's Task again (a failed, skipped or never logged call), then go back; the
    scheduler sends it within seconds. ``key`` names the call (:func:`call_key`)."""
    if LogAgainForm().validate_on_submit():
        _log_again(call_id_of(key))
    return redirect(request.referrer if _same_site(request.referrer) else url_for("calls.history"))


def _log_again(call_id: str | None) -> None:
    store = get_store()
    try:
        if call_id is None:
            raise call_history.CallNotFound()
        queued = activity.retry(store, call_id)
    except call_history.CallNotFound:
        flash(_("This call is not in the history."), "error")
        return
    if not queued:
        flash(_("This call is logged already or on its way to Salesforce."), "error")
    elif activity.wanted(load_settings(store)):
        flash(_("Queued: the call is logged in Salesforce within about 15 seconds."), "success")
    else:
        flash(_("Queued, but nothing is sent while Task logging is off or Salesforce is not "
                "connected: turn it on in the settings."), "error")


@bp.route("/<path:key>/refetch", methods=("POST",))
@login_required
def refetch(key: str):
    """Look one call's number up in Salesforce again, then go back. ``key`` names the call
    (:func:`call_key`)."""
    if RefetchForm().validate_on_submit():
        _refetch(call_id_of(key))
    return redirect(request.referrer if _same_site(request.referrer) else url_for("calls.history"))


def _same_site(url: str | None) -> bool:
    return bool(url) and url.startswith(request.host_url)


def _refetch(call_id: str | None) -> None:
    try:
        if call_id is None:
            raise call_history.CallNotFound()
        result = registration.refetch_call(get_store(), call_id)
    except registration.RefetchLocked as exc:
        flash(_("This number was re-fetched a moment ago. Try again in %(seconds)d seconds.",
                seconds=max(1, int(getattr(exc, "seconds", 15)))), "error")
    except call_history.CallNotFound:
        flash(_("This call is not in the history."), "error")
    except Exception as exc:  # Salesforce down: say what to do, never a 500
        entry = report_failure(get_store(), "refetch", exc, call_id=call_id)
        lang = current_lang()
        flash(f"{entry.message(lang)} {entry.remedy(lang)}", "error")
    else:
        flash(_("Re-fetched: %(label)s", label=(result or {}).get("label") or "-"), "success")
