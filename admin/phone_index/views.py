"""The index page: state, records, numbers, freshness, cost, per-object progress, the last error
with its remedy, and "sync now" / "full re-sync" run in the background."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from admin import get_store
from admin.auth import login_required
from admin.phone_index import bp
from admin.phone_index.forms import SyncForm
from admin.phone_index.runner import background_sync
from core import index
from core.errors import entry_for


def state_label(state: str) -> str:
    """The index state in the page's language."""
    return {"off": _("Off"), "not connected": _("Salesforce not connected"),
            "empty": _("Not built yet"), "building": _("Building"), "ready": _("Ready"),
            "stale": _("Stale")}.get(state, state)


def phase_label(phase: str | None) -> str:
    """An object's sync phase in the page's language."""
    return {"initial": _("Reading all records"), "ready": _("Up to date")}.get(phase or "", phase or "-")


def age_text(seconds: float | None) -> str:
    """How long ago, in the largest whole unit ("3 minutes", "2 hours")."""
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return _("%(n)d seconds", n=seconds)
    if seconds < 3600:
        return _("%(n)d minutes", n=seconds // 60)
    if seconds < 2 * 86400:
        return _("%(n)d hours", n=seconds // 3600)
    return _("%(n)d days", n=seconds // 86400)


@bp.route("/")
@login_required
def status():
    """The index as it is now, and the last sync started from this page. A failed sync shows
    what it means (INDEX_STALE) and its cause, each from the catalogue."""
    store = get_store()
    shown = index.status(store)
    runner = background_sync(current_app, store)
    return render_template(
        "phone_index/status.html", status=shown, form=SyncForm(), running=runner.running,
        last_run=runner.last, stale=entry_for(index.STALE),
        error=entry_for(shown.last_error) if shown.last_error else None,
        state_label=state_label, phase_label=phase_label, age_text=age_text)


@bp.route("/sync", methods=("POST",))
@login_required
def sync():
    """Start a sync (or a full re-sync) in the background and go back to the page."""
    form = SyncForm()
    if form.validate_on_submit():
        _start(form.full_sync.data)
    return redirect(url_for("phone_index.status"))


def _start(full: bool) -> None:
    store = get_store()
    shown = index.status(store)
    if shown.state in ("off", "not connected"):
        flash(_("Nothing to sync: turn the index on and connect Salesforce first."), "error")
    elif background_sync(current_app, store).start(full):
        flash(_("The full re-sync has started. Reload this page to follow it.") if full
              else _("The sync has started. Reload this page to follow it."), "success")
    else:
        flash(_("A sync is already running. Reload this page to follow it."), "error")
