"""Alert e-mail settings. "Send test e-mail" sends with the values on the form (stored password
when its field is blank) and saves nothing, so the admin can try before saving."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from admin import get_store
from admin.alerts import bp
from admin.alerts.forms import AlertMailForm
from admin.auth import login_required
from admin.helpers import failure_shown
from core import errors
from core.mail import MailNotConfigured, Outbox, send_test_message
from core.settings import load_settings, save_settings

OPERATION = "test_mail"


@bp.route("/", methods=("GET", "POST"))
@login_required
def mail():
    """The alert e-mail settings: save them, or send a test e-mail with them."""
    store = get_store()
    stored = load_settings(store)
    form = AlertMailForm()
    failure = None
    if form.validate_on_submit():
        if form.send_test.data:
            failure = _send_test(store, form.applied_to(stored))
            if failure is None:
                flash(_("The test e-mail was sent. Check the recipients' mailboxes."), "success")
        else:
            save_settings(store, form.values(), keep_blank_secrets=True)
            flash(_("The alert e-mail settings are saved."), "success")
            return redirect(url_for("alerts.mail"))
    elif not form.is_submitted():
        form.fill(stored)
    return render_template("alerts/mail.html", form=form, failure=failure,
                           stored=stored.secret_stored(), outbox=Outbox(store).pending())


def _send_test(store, settings) -> dict | None:
    """None when the test e-mail went out; else what the failure box shows."""
    try:
        send_test_message(settings, timeout=current_app.config["SMTP_TIMEOUT"])
    except MailNotConfigured:
        return {"code": "", "message": _("Enter the recipients and the SMTP host first."),
                "remedy": ""}
    except Exception as exc:
        return failure_shown(errors.report_failure(store, OPERATION, exc, expected="smtp"))
    errors.record_recovery(store, "smtp", OPERATION)
    return None
