"""The per-row re-fetch button and the history search."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import Length, Optional


class RefetchForm(FlaskForm):
    submit = SubmitField(_l("Re-fetch"))


class CallSearchForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(_l("Number, company or person"), validators=[Optional(), Length(max=100)])
    submit = SubmitField(_l("Search"))
