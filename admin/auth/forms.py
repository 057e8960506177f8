"""Login, logout and password-change forms."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField, ValidationError
from wtforms.validators import DataRequired, EqualTo, Length

from admin.forms_common import printable_text

PASSWORD_MAX_LENGTH = 255
PASSWORD_MIN_LENGTH = 12   # a new password; admin.cfg may raise it (PASSWORD_MIN_LENGTH)
USERNAME_MAX_LENGTH = 80


class LoginForm(FlaskForm):
    username = StringField(_l("User name"),
                           validators=[DataRequired(), Length(max=USERNAME_MAX_LENGTH), printable_text])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)])
    submit = SubmitField(_l("Log in"))


class LogoutForm(FlaskForm):
    submit = SubmitField(_l("Log out"))


def printable_only(form, field) -> None:
    """Refuse control characters: they cannot be typed at the login form, so a password holding
    one would lock its owner out (and often comes from a paste gone wrong)."""
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in field.data or ""):
        raise ValidationError(_l("The password must not contain control characters."))


class PasswordChangeForm(FlaskForm):
    """The logged-in admin's own password: the current one, then the new one twice. The minimum
    length is set per app (``PASSWORD_MIN_LENGTH``) through :meth:`with_min_length`."""

    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(_l("Enter your current password.")),
                    Length(max=PASSWORD_MAX_LENGTH)])
    new_password = PasswordField(
        _l("New password"),
        validators=[DataRequired(_l("Enter a new password.")), printable_only])
    confirm_password = PasswordField(
        _l("New password again"),
        validators=[DataRequired(_l("Enter the new password again.")),
                    EqualTo("new_password", _l("The two new passwords differ."))])
    submit = SubmitField(_l("Change password"))

    def __init__(self, min_length: int, **kwargs):
        super().__init__(**kwargs)
        self.min_length = min_length

    def validate_new_password(self, field) -> None:
        """At least ``min_length`` characters, at most PASSWORD_MAX_LENGTH, not the current one."""
        if len(field.data) < self.min_length:
            raise ValidationError(_l("Use at least %(count)d characters.", count=self.min_length))
        if len(field.data) > PASSWORD_MAX_LENGTH:
            raise ValidationError(_l("Use at most %(count)d characters.", count=PASSWORD_MAX_LENGTH))
        if field.data == self.current_password.data:
            raise ValidationError(_l("The new password must differ from the current one."))
