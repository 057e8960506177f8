"""The Salesforce settings form: the seed's items 1-5 plus what a real deployment needs."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, RadioField, StringField, SubmitField
from wtforms.validators import ValidationError

from admin.forms_common import SettingsFormBase, choice


class SalesforceSettingsForm(SettingsFormBase):
    # The parts of the page each authentication method uses, as CSS classes of its radio:
    # style.css shows only those parts (the page has no JavaScript).
    METHOD_PARTS = {"oauth_web": "method uses-oauth uses-oauth-web",
                    "oauth_client_credentials": "method uses-oauth",
                    "password": "method uses-legacy"}
    setting_names = ("auth_method", "oauth_client_id", "oauth_client_secret",
                     "username", "password", "security_token", "sandbox", "contact_fetch",
                     "login_url", "ca_bundle", "time_zone", "nightly_time", "screen_budget_ms")

    auth_method = RadioField(_l("Authentication"), choices=[
        choice("oauth_web", _l("Connect with Salesforce (OAuth 2.0, recommended)")),
        choice("oauth_client_credentials", _l("Client credentials (OAuth 2.0, server to server)")),
        choice("password", _l("User name, password and security token (legacy)")),
    ], default="password")
    oauth_client_id = StringField(_l("Consumer key"))
    oauth_client_secret = PasswordField(_l("Consumer secret"))

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
    connect = SubmitField(_l("Connect with Salesforce"))

    def validate_oauth_client_id(self, field) -> None:
        """OAuth needs the connected app's consumer key."""
        if self.auth_method.data != "password" and not (field.data or "").strip():
            raise ValidationError(_l("Enter the consumer key of the connected app."))


class DisconnectForm(FlaskForm):
    disconnect = SubmitField(_l("Disconnect"))


class IndexSettingsForm(SettingsFormBase):
    """The phone index's settings: saved as they are (no connection test needed)."""

    setting_names = ("phone_index", "index_minutes", "index_full_days", "index_bulk_threshold")

    phone_index = BooleanField(_l("Answer from the local phone index"))
    index_minutes = StringField(_l("Sync every (minutes)"))
    index_full_days = StringField(_l("Full re-sync every (days)"))
    index_bulk_threshold = StringField(_l("Bulk API above (records per object)"))
    save_index = SubmitField(_l("Save the index settings"))


class ActivitySettingsForm(SettingsFormBase):
    """Logging calls as Salesforce Tasks: saved as they are (no connection test needed)."""

    setting_names = ("activity_logging", "activity_unmatched", "activity_language",
                     "activity_subject", "call_url_template", "activity_api_share")

    activity_logging = BooleanField(_l("Log each ended call in Salesforce as an activity (Task)"))
    activity_unmatched = RadioField(_l("Calls with no matched record"), choices=[
        choice("skip", _l("Do not log them")),
        choice("log", _l("Log them without a related record")),
    ], default="skip")
    activity_language = RadioField(_l("Language of the Task's subject and description"), choices=[
        choice("ja", _l("Japanese")), choice("en", _l("English")),
    ], default="ja")
    activity_subject = StringField(_l("Subject template"))
    call_url_template = StringField(_l("Link to the call in the phone system"))
    activity_api_share = StringField(_l("Share of the daily API limit (percent)"))
    save_activity = SubmitField(_l("Save the activity settings"))
