"""The registered contacts, searchable and paginated."""

from flask import current_app, render_template, request

from admin import get_store
from admin.auth import login_required
from admin.calls.forms import CallSearchForm
from admin.contacts import bp
from admin.helpers import page_number, paginate


@bp.route("/")
@login_required
def index():
    """The registered contacts, searchable and paginated."""
    store = get_store()
    form = CallSearchForm(request.args)
    search = form.search_term()
    size = current_app.config["PAGE_SIZE"]
    pages = paginate(store.count_contacts(search), page_number(), size)
    rows = store.list_contacts(limit=size, offset=pages["offset"], search=search)
    return render_template("contacts/index.html", rows=rows, pages=pages, form=form,
                           search=search)
