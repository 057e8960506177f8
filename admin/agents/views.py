"""The agents page: the agent → Salesforce user map, a user search to map an agent, the agents
seen in calls but not mapped, and the map as a CSV file (export, all-or-nothing import).

Every Salesforce failure (not connected, login refused, down, limit) ends as the catalogue's
message and remedy on the page, never a 500.
"""

from __future__ import annotations

from flask import Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from admin import get_store
from admin.agents import bp
from admin.agents.forms import (AGENT_ID_ERROR, ImportForm, MapForm, MappingSearchForm, UnmapForm,
                                UserSearchForm, checked_agent_id)
from admin.auth import login_required
from admin.i18n import current_lang
from admin.helpers import accepts_upload, failure_shown, page_number, paginate
from core import agents, errors
from core.salesforce import NotConfigured, connection_for

OPERATION = "agents"              # error-log operation of the page's Salesforce failures
EXPORT_NAME = "sfcti-agents.csv"
# the file itself may be CSV_MAX_BYTES; the multipart envelope and the form's token come on top
UPLOAD_LIMIT = agents.CSV_MAX_BYTES + 64 * 1024


@bp.route("/")
@login_required
def index():
    """The mappings, the user search (when ``q`` is given) and the unknown agents."""
    search_form = UserSearchForm(request.args)
    found, failure = None, None
    if search_form.validate() and "q" in request.args:
        found, failure = _search_users(search_form.q.data or "")
    return _page(search_form=search_form, found=found, failure=failure)


def _search_users(text: str) -> tuple[list | None, dict | None]:
    """The active users matching ``text`` (one API call), or the failure to show."""
    try:
        return agents.search_users(connection_for(get_store()), text), None
    except Exception as exc:  # Salesforce not connected or failing: say what to do, never a 500
        return None, _failure(exc)


def _failure(exc: Exception) -> dict:
    """The failure box for ``exc``; written to the error log unless Salesforce is simply not
    connected yet (nothing is broken then)."""
    if isinstance(exc, NotConfigured):
        return failure_shown(errors.entry_for(exc.code))
    return failure_shown(errors.report_failure(get_store(), OPERATION, exc))


def _page(search_form=None, found=None, failure=None, import_form=None, rejected=None,
          import_failure=None, status: int = 200):
    """The agents page; ``rejected`` lists the rows of a refused CSV file."""
    store = get_store()
    search_form = search_form or UserSearchForm(formdata=None)
    agent_id = checked_agent_id(search_form.agent_id.data)
    mapping_form = MappingSearchForm(request.args)
    term = mapping_form.search_term()
    pages = paginate(agents.count_mappings(store, term), page_number(), current_app.config["PAGE_SIZE"])
    return render_template(
        "agents/index.html", search_form=search_form, found=found, failure=failure,
        agent_id=agent_id, current=agents.owners_for(store, [agent_id]).get(agent_id) if agent_id else None,
        map_form=MapForm(formdata=None), unmap_form=UnmapForm(formdata=None),
        mapping_form=mapping_form, term=term, pages=pages,
        mappings=agents.list_mappings(store, term, limit=current_app.config["PAGE_SIZE"],
                                      offset=pages["offset"]),
        unknown=agents.unknown_agents(store), import_form=import_form or ImportForm(formdata=None),
        rejected=rejected, import_failure=import_failure,
        max_mb=agents.CSV_MAX_BYTES // 1_000_000, max_rows=agents.CSV_MAX_ROWS), status


@bp.route("/map", methods=("POST",))
@login_required
def map_user():
    """Map the agent to the chosen user, after asking Salesforce that the user is active."""
    form = MapForm()
    if not form.validate_on_submit():
        return redirect(url_for("agents.index"))
    agent_id = checked_agent_id(form.agent_id.data)
    if agent_id is None:
        flash(str(AGENT_ID_ERROR), "error")
        return redirect(url_for("agents.index", _anchor="map"))
    try:
        user = _active_user(form.user_id.data or "")
    except Exception as exc:
        shown = _failure(exc)
        flash(f"{shown['message']} {shown['remedy']}", "error")
        return redirect(url_for("agents.index", agent_id=agent_id, _anchor="map"))
    if user is None:
        flash(_("No active Salesforce user has this id: search again and pick one from the list."), "error")
        return redirect(url_for("agents.index", agent_id=agent_id, _anchor="map"))
    agents.map_agent(get_store(), agent_id, user)
    flash(_("Agent %(agent)s is mapped to %(name)s (%(username)s).", agent=agent_id, name=user.name,
            username=user.username), "success")
    return redirect(url_for("agents.index"))


def _active_user(user_id: str) -> agents.SalesforceUser | None:
    """The active user with this id (one API call); None for anything that is not one."""
    user_id = agents.printable(user_id)
    if not (user_id.startswith("005") and len(user_id) in (15, 18) and user_id.isalnum() and user_id.isascii()):
        return None
    return agents.find_users(connection_for(get_store()), [user_id]).get(user_id.lower())


@bp.route("/unmap", methods=("POST",))
@login_required
def unmap():
    """Forget an agent's mapping (its calls' Tasks are then owned by the integration user)."""
    form = UnmapForm()
    if form.validate_on_submit():
        # what is not an agent id was never mapped (and PostgreSQL cannot even look up a NUL)
        agent_id = checked_agent_id(form.agent_id.data)
        if agent_id and agents.unmap_agent(get_store(), agent_id):
            flash(_("Agent %(agent)s is no longer mapped.", agent=agent_id), "success")
        else:
            flash(_("Agent %(agent)s was not mapped.", agent=agents.printable(form.agent_id.data)),
                  "error")
    return redirect(url_for("agents.index"))


@bp.route("/export.csv")
@login_required
def export_csv():
    """Every mapping as a CSV file (UTF-8 with a BOM, so spreadsheets read Japanese right)."""
    body = "\ufeff" + agents.export_csv(get_store())
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{EXPORT_NAME}"', "Cache-Control": "no-store"})


@bp.route("/import", methods=("POST",))
@login_required
@accepts_upload(UPLOAD_LIMIT, back_to="agents.index")
def import_csv():
    """Map the agents of a CSV file, all or nothing; a refused file lists every bad row."""
    form = ImportForm()
    if not form.validate_on_submit():
        return _page(import_form=form)
    data = form.csv_file.data.read(agents.CSV_MAX_BYTES + 1)
    try:
        report = agents.import_csv(get_store(), data, connection_for(get_store()))
    except agents.CsvRejected as exc:
        return _page(import_form=form, rejected=exc.reasons(current_lang()))
    except Exception as exc:  # Salesforce not connected or failing: nothing was changed
        return _page(import_form=form, import_failure=_failure(exc))
    flash(_("The CSV file is imported: %(mapped)d agents mapped, %(unchanged)d unchanged.",
            mapped=report.mapped, unchanged=report.unchanged), "success")
    return redirect(url_for("agents.index"))
