"""The registered contacts, searchable and paginated."""

from flask import render_template

from admin import get_store
from admin.auth import login_required
from admin.contacts import bp
from admin.helpers import searched_page


@bp.route("/")
@login_required
def index():
    """The registered contacts, searchable and paginated."""
    store = get_store()
    return render_template("contacts/index.html",
                           **searched_page(store.count_contacts, store.list_contacts))
