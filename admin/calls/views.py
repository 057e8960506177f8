"""Call history, newest first, and re-fetching one call's Salesforce record."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from admin import get_store
from admin.auth import login_required
from admin.calls import bp
from admin.calls.forms import RefetchForm
from admin.helpers import searched_page
from admin.i18n import current_lang
from core import history as call_history, registration
from core.errors import report_failure


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
    return render_template("calls/history.html", **page, refetch_form=RefetchForm(),
                           status_label=status_label, direction_label=direction_label)


@bp.route("/<path:call_id>/refetch", methods=("POST",))
@login_required
def refetch(call_id: str):
    """Look one call's number up in Salesforce again, then go back."""
    if RefetchForm().validate_on_submit():
        _refetch(call_id)
    return redirect(request.referrer if _same_site(request.referrer) else url_for("calls.history"))


def _same_site(url: str | None) -> bool:
    return bool(url) and url.startswith(request.host_url)


def _refetch(call_id: str) -> None:
    try:
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
