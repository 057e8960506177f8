"""The error-log filter (a GET form: it changes nothing, so it carries no CSRF token)."""

import datetime as dt

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField, ValidationError
from wtforms.validators import Length, Optional, Regexp

from admin.forms_common import choice


class ErrorFilterForm(FlaskForm):
    class Meta:
        csrf = False

    integration = SelectField(_l("Integration"), choices=[
        choice("", _l("All")), choice("salesforce", "Salesforce"), choice("smtp", "SMTP"),
        choice("plugin", "Plugin")], default="",
        validate_choice=True)
    code = StringField(_l("Error code"), validators=[
        Optional(), Length(max=64), Regexp(r"^[A-Za-z0-9_:]*$", message=_l("Letters, digits and _ only."))])
    day = StringField(_l("Date"), validators=[Optional(), Length(max=10)])
    submit = SubmitField(_l("Filter"))

    def validate_day(self, field) -> None:
        """The date must be YYYY-MM-DD."""
        try:
            dt.date.fromisoformat(field.data)
        except (TypeError, ValueError):
            raise ValidationError(_l("Enter a date as YYYY-MM-DD.")) from None
