"""The index page's buttons (one POST form: CSRF-protected like every form)."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SubmitField


class SyncForm(FlaskForm):
    sync_now = SubmitField(_l("Sync now"))
    full_sync = SubmitField(_l("Full re-sync"))
