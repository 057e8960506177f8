"""Alert e-mail settings. "Send test e-mail" sends with the values on the form (stored password
when its field is blank) and saves nothing, so the admin can try before saving."""

from __future__ import annotations

import dataclasses

from flask import current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from admin import get_store
from admin.alerts import bp
from admin.alerts.forms import AlertMailForm
from admin.auth import login_required
from admin.i18n import current_lang
from core import errors
from core.mail import MailNotConfigured, Outbox, send_test_message
from core.settings import SECRET_FIELDS, clean_settings, load_settings, save_settings

OPERATION = "test_mail"


@bp.route("/", methods=("GET", "POST"))
@login_required
def mail():
    store = get_store()
    stored = load_settings(store)
    form = AlertMailForm()
    failure = None
    if form.validate_on_submit():
        if form.send_test.data:
            failure = _send_test(store, stored, form.values())
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


def _send_test(store, stored, values: dict) -> dict | None:
    given = {k: v for k, v in values.items() if not (k in SECRET_FIELDS and v in (None, ""))}
    settings = dataclasses.replace(stored, **clean_settings(given))
    try:
        send_test_message(settings, timeout=current_app.config["SMTP_TIMEOUT"])
    except MailNotConfigured:
        return {"code": "", "message": _("Enter the recipients and the SMTP host first."),
                "remedy": ""}
    except Exception as exc:
        entry = errors.record_failure(store, "smtp", OPERATION, exc)
        lang = current_lang()
        return {"code": entry.code, "message": entry.message(lang), "remedy": entry.remedy(lang)}
    errors.record_recovery(store, "smtp", OPERATION)
    return None
