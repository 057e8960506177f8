"""The error log (newest first, filtered, paginated) and the catalogue of common errors."""

from __future__ import annotations

from flask import current_app, render_template, request

from admin import get_store
from admin.auth import login_required
from admin.errors import bp
from admin.errors.forms import ErrorFilterForm
from admin.helpers import page_number, paginate
from core.errors import CATALOGUE, codes_in_log, count_errors, list_errors


@bp.route("/")
@login_required
def log():
    """The integration error log, newest first, filtered and paginated."""
    store = get_store()
    form = ErrorFilterForm(request.args, meta={"csrf": False})
    filters = {}
    if request.args and form.validate():
        filters = {"integration": form.integration.data or None, "code": form.code.data or None,
                   "day": form.day.data or None}
    size = current_app.config["PAGE_SIZE"]
    pages = paginate(count_errors(store, **filters), page_number(), size)
    rows = list_errors(store, limit=size, offset=pages["offset"], **filters)
    return render_template("errors/log.html", form=form, rows=rows, pages=pages,
                           codes=codes_in_log(store), filtered=any(filters.values()))


@bp.route("/common")
@login_required
def common():
    """The catalogue of errors with what to do, Salesforce first."""
    entries = sorted(CATALOGUE.values(), key=lambda e: (e.integration != "salesforce", e.integration))
    return render_template("errors/common.html", entries=entries)
