"""The settings page. "Test connection and save" logs in with the submitted values, checks the
user's permissions and saves only when both succeed; a failure saves nothing and shows the
catalogue's message and remedy (and lands in the error log, as the seed's product does)."""

from __future__ import annotations

from flask import flash, redirect, render_template, session, url_for
from flask_babel import gettext as _

from admin import get_store
from admin.auth import login_required
from admin.helpers import failure_shown
from admin.settings import bp
from admin.settings.forms import (ActivitySettingsForm, DisconnectForm, IndexSettingsForm,
                                  SalesforceSettingsForm)
from admin.settings.oauth_views import callback_url, forget_oauth_grant
from core import index
from core.salesforce import ConnectionTestFailed, connect_and_save
from core.settings import clear_credentials, load_settings, save_settings


@bp.route("/", methods=("GET", "POST"))
@login_required
def salesforce():
    """The Salesforce settings; saved only after a successful connection test."""
    store = get_store()
    stored = load_settings(store)
    form = SalesforceSettingsForm()
    failure = session.pop("oauth_failure", None)
    if form.validate_on_submit():
        candidate = form.applied_to(stored)
        if _needs_browser_sign_in(form, candidate):
            # the refresh token comes from the callback; until then only the app settings change
            save_settings(store, form.values(), keep_blank_secrets=True)
            return redirect(url_for("settings.oauth_start"))
        try:
            connect_and_save(store, form.values(), keep_blank_secrets=True)
        except ConnectionTestFailed as exc:
            failure = failure_shown(exc.catalogue_entry, exc.problems)
        else:
            flash(_("Connected to Salesforce. The settings are saved."), "success")
            return redirect(url_for("settings.salesforce"))
    elif not form.is_submitted():
        form.fill(stored)
    return _settings_page(stored, failure, form=form)


@bp.route("/index", methods=("POST",))
@login_required
def index_settings():
    """Save the phone index's settings (a form of its own: they need no connection test)."""
    store = get_store()
    stored = load_settings(store)
    form = IndexSettingsForm()
    if form.validate_on_submit():
        save_settings(store, form.values())
        flash(_("The phone index settings are saved."), "success")
        return redirect(url_for("settings.salesforce", _anchor="phone-index"))
    return _settings_page(stored, None, index_form=form)


@bp.route("/activity", methods=("POST",))
@login_required
def activity_settings():
    """Save the Task logging settings (a form of its own, like the index's)."""
    store = get_store()
    stored = load_settings(store)
    form = ActivitySettingsForm()
    if form.validate_on_submit():
        save_settings(store, form.values())
        flash(_("The activity settings are saved."), "success")
        return redirect(url_for("settings.salesforce", _anchor="activity"))
    return _settings_page(stored, None, activity_form=form)


def _filled(form_class, stored):
    """A form of the settings page showing the stored values (not the posted ones: the other
    form was submitted)."""
    form = form_class(formdata=None)
    form.fill(stored)
    return form


SETTINGS_FORMS = {"form": SalesforceSettingsForm, "index_form": IndexSettingsForm,
                  "activity_form": ActivitySettingsForm}


def _settings_page(stored, failure, **submitted):
    """The settings page: the ``submitted`` form as posted, the others with the stored values."""
    forms = {name: submitted[name] if name in submitted else _filled(form_class, stored)
             for name, form_class in SETTINGS_FORMS.items()}
    return render_template("settings/salesforce.html", **forms, failure=failure, stored=stored.secret_stored(),
                           connected=stored.is_configured(), disconnect_form=DisconnectForm(),
                           username=stored.username, auth_method=stored.auth_method,
                           callback_url=callback_url(stored))


def _needs_browser_sign_in(form, candidate) -> bool:
    """"Connect with Salesforce" pressed, or the web flow chosen with no refresh token yet."""
    if candidate.auth_method != "oauth_web":
        return False
    return bool(form.connect.data) or not candidate.oauth_refresh_token


@bp.route("/disconnect", methods=("POST",))
@login_required
def disconnect():
    """Revoke and remove the stored Salesforce credentials."""
    if DisconnectForm().validate_on_submit():
        store = get_store()
        stored = load_settings(store)
        revoked = forget_oauth_grant(store, stored)
        clear_credentials(store)
        index.clear(store)   # the index is the org's data: it goes with the connection
        if stored.auth_method == "oauth_client_credentials":  # its secret is its credential
            save_settings(store, {"oauth_client_secret": None}, keep_blank_secrets=False)
            revoked = True
        if revoked:
            flash(_("Disconnected. The Salesforce authorization is revoked and removed."), "success")
        else:
            flash(_("Disconnected. The stored user name, password and security token are removed."),
                  "success")
    return redirect(url_for("settings.salesforce"))
