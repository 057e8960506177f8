"""The alert e-mail form."""

from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, SelectField, StringField, SubmitField

from admin.forms_common import SettingsFormBase, choice


class AlertMailForm(SettingsFormBase):
    setting_names = ("alert_recipients", "smtp_host", "smtp_port", "smtp_security", "smtp_user",
                     "smtp_password", "smtp_sender", "alert_reminder_hours", "slow_alert_threshold",
                     "admin_base_url")

    alert_recipients = StringField(_l("Recipients (separated by commas)"))
    smtp_host = StringField(_l("SMTP host"))
    smtp_port = StringField(_l("SMTP port"))
    smtp_security = SelectField(_l("Encryption"), choices=[
        choice("starttls", "STARTTLS"), choice("ssl", "SSL/TLS"), choice("none", _l("None"))], default="starttls")
    smtp_user = StringField(_l("SMTP user"))
    smtp_password = PasswordField(_l("SMTP password"))
    smtp_sender = StringField(_l("Sender address"))
    alert_reminder_hours = StringField(_l("Reminder interval while a failure lasts (hours)"))
    slow_alert_threshold = StringField(_l("Late screens before a slow-Salesforce alert"))
    admin_base_url = StringField(_l("Admin URL (for links in e-mails and the OAuth callback)"))
    save = SubmitField(_l("Save"))
    send_test = SubmitField(_l("Send test e-mail"))
