"""Overview (connection status, today's API usage) and the language switch."""
from flask import Blueprint

bp = Blueprint("main", __name__)

from admin.main import views  # noqa: E402,F401
