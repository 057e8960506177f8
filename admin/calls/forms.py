"""The per-row re-fetch button and the history search."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import Length, Optional

from admin.forms_common import printable_text


class RefetchForm(FlaskForm):
    submit = SubmitField(_l("Re-fetch"))


class LogAgainForm(FlaskForm):
    """"Log again" on a call whose Task failed, was skipped or was never queued."""

    submit = SubmitField(_l("Log again"))


class CallSearchForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(_l("Number, company or person"),
                    validators=[Optional(), Length(max=100), printable_text])
    submit = SubmitField(_l("Search"))

    def search_term(self) -> str | None:
        """The text to search for; None when none, or an invalid one, was given."""
        return self.q.data if self.q.data and self.validate() else None
