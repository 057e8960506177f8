"""Alert e-mail settings and the "send test e-mail" button."""
from flask import Blueprint

bp = Blueprint("alerts", __name__, url_prefix="/alerts")

from admin.alerts import views  # noqa: E402,F401
