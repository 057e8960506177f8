"""What the forms share: the settings forms' validation by core.settings (the one set of rules
the CLI uses too), reported as field errors in the page's language; the refusal of control
characters in the other text fields."""

from __future__ import annotations


from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import ValidationError

from admin.i18n import current_lang
from core.display import UNPRINTABLE
from core.settings import SECRET_FIELDS, apply_changes, validate_settings


class SettingsFormBase(FlaskForm):
    """A form whose fields are named after settings; ``setting_names`` lists them."""

    setting_names: tuple[str, ...] = ()

    def values(self) -> dict:
        """The submitted settings; strings stripped of surrounding spaces except secrets."""
        values = {}
        for name in self.setting_names:
            data = getattr(self, name).data
            if isinstance(data, str) and name not in SECRET_FIELDS:
                data = data.strip()
            values[name] = data
        return values

    def validate(self, extra_validators=None) -> bool:
        """WTForms' checks, then the shared settings rules; each problem lands on its field."""
        valid = super().validate(extra_validators)
        for name, message in validate_settings(self.values(), current_lang()).items():
            field = getattr(self, name)
            if message not in field.errors:
                field.errors = list(field.errors) + [message]
            valid = False
        return valid

    def applied_to(self, stored):
        """The stored settings with the submitted values over them; a blank secret keeps its own."""
        return apply_changes(stored, self.values())

    def fill(self, settings) -> None:
        """Show the stored settings; secrets stay blank (the page says whether one is stored)."""
        for name in self.setting_names:
            if name not in SECRET_FIELDS:
                getattr(self, name).data = getattr(settings, name)


def choice(value: str, label) -> object:
    """A select/radio option: WTForms 3.3's SelectChoice where available (tuples are
    deprecated there), a tuple on older versions."""
    try:
        from wtforms import SelectChoice
    except ImportError:
        return (value, label)
    return SelectChoice(value, label)


CONTROL_CHARACTERS_ERROR = _l("Must not contain line breaks, control characters or text-direction "
                              "characters.")


def printable_text(form, field) -> None:
    """Refuse what the settings refuse too (core.display.UNPRINTABLE): nobody types it, nothing
    stored holds it, and PostgreSQL cannot even take a NUL as a query parameter."""
    if isinstance(field.data, str) and UNPRINTABLE.search(field.data):
        raise ValidationError(CONTROL_CHARACTERS_ERROR)
