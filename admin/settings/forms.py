"""The Salesforce settings form: the seed's items 1-5 plus what a real deployment needs."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, RadioField, StringField, SubmitField

from admin.forms_common import SettingsFormBase, choice


class SalesforceSettingsForm(SettingsFormBase):
    setting_names = ("username", "password", "security_token", "sandbox", "contact_fetch",
                     "login_url", "ca_bundle", "time_zone", "nightly_time", "screen_budget_ms")

    username = StringField(_l("Salesforce admin user name"))
    password = PasswordField(_l("Password"))
    security_token = PasswordField(_l("Security token"))
    sandbox = BooleanField(_l("Sandbox"))
    contact_fetch = RadioField(_l("Fetch contacts"), choices=[
        choice("nightly", _l("Nightly (around the nightly time)")),
        choice("after_call", _l("After each call")),
        choice("never", _l("Do not fetch contacts")),
    ], default="nightly")
    login_url = StringField(_l("Login URL (My Domain)"))
    ca_bundle = StringField(_l("CA bundle (PEM file path)"))
    time_zone = StringField(_l("Time zone"))
    nightly_time = StringField(_l("Nightly run time"))
    screen_budget_ms = StringField(_l("Screen time budget (ms)"))
    submit = SubmitField(_l("Test connection and save"))


class DisconnectForm(FlaskForm):
    disconnect = SubmitField(_l("Disconnect"))
