"""The local phone index of the org: its state, what it holds and costs, and "sync now"."""
from flask import Blueprint

bp = Blueprint("phone_index", __name__, url_prefix="/index")

from admin.phone_index import views  # noqa: E402,F401
