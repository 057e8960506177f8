"""The agents page's forms: the user search (GET), map and unmap buttons, the CSV import."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField, StringField, SubmitField
from wtforms.validators import Length, Optional, ValidationError

from admin.forms_common import printable_text
from core import agents

AGENT_ID_ERROR = _l("An agent id must be 1 to 200 characters, without line breaks, control "
                    "characters or text-direction characters.")


def checked_agent_id(value) -> str | None:
    """``value`` as an agent id, or None when it is not one."""
    try:
        return agents.clean_agent_id(value)
    except agents.InvalidAgentId:
        return None


class UserSearchForm(FlaskForm):
    """Which agent to map, and the text to look the Salesforce user up by (a GET form)."""

    class Meta:
        csrf = False

    agent_id = StringField(_l("Agent id"))
    q = StringField(_l("Name, username or e-mail address"), validators=[Optional(), Length(max=80)])
    find_user = SubmitField(_l("Search Salesforce users"))

    def validate_agent_id(self, field) -> None:
        """Blank is fine while searching; anything else must be an agent id."""
        if field.data and checked_agent_id(field.data) is None:
            raise ValidationError(AGENT_ID_ERROR)


class MappingSearchForm(FlaskForm):
    """The search box of the mappings table (a GET form)."""

    class Meta:
        csrf = False

    find = StringField(_l("Agent, name, username or e-mail"),
                       validators=[Optional(), Length(max=100), printable_text])
    search = SubmitField(_l("Search"))

    def search_term(self) -> str | None:
        """The text to search for; None when none, or an invalid one, was given."""
        return self.find.data if self.find.data and self.validate() else None


class MapForm(FlaskForm):
    """"Map to this user": the agent and the chosen user's id."""

    agent_id = HiddenField()
    user_id = HiddenField()
    map_user = SubmitField(_l("Map to this user"))


class UnmapForm(FlaskForm):
    """"Unmap" on a row of the mappings table."""

    agent_id = HiddenField()
    unmap = SubmitField(_l("Unmap"))


class ImportForm(FlaskForm):
    """A CSV file of mappings."""

    csv_file = FileField(_l("CSV file"), validators=[FileRequired(_l("Choose a CSV file."))])
    import_csv = SubmitField(_l("Import"))
