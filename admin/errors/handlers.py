"""Error pages through app_errorhandler, in the page's language, never a traceback."""

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError


def register_error_pages(app) -> None:
    """Install the 400 (expired or missing form token), 404, 405, 413 and 500 pages."""
    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return _page(400, _("The form could not be accepted: it has expired or was not sent "
                            "from this site. Reload the page and try again.")), 400

    @app.errorhandler(404)
    def not_found(error):
        return _page(404, _("This page does not exist.")), 404

    @app.errorhandler(405)
    def not_allowed(error):
        return _page(405, _("This page cannot be used that way.")), 405

    @app.errorhandler(413)
    def too_large(error):
        view = current_app.view_functions.get(request.endpoint or "")
        if getattr(view, "upload_back_to", None):   # an upload page says it on the page itself
            flash(_("The file is too large: at most %(mb)d MB.",
                    mb=max(1, view.max_upload_bytes // 1_000_000)), "error")
            return redirect(url_for(view.upload_back_to))
        return _page(413, _("The form sent too much data.")), 413

    @app.errorhandler(500)
    def internal(error):
        return _page(500, _("Something went wrong on the server. Try again; if it keeps "
                            "happening, check the server's log.")), 500


def _page(status: int, message: str) -> str:
    return render_template("error.html", status=status, message=message)
