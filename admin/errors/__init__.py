"""The external-integration error log, the common errors and remedies, and error pages."""
from flask import Blueprint

bp = Blueprint("errors", __name__, url_prefix="/errors")

from admin.errors import views  # noqa: E402,F401
from admin.errors.handlers import register_error_pages  # noqa: E402,F401
