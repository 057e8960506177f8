"""Call history (応対履歴一覧) with a re-fetch button per row."""
from flask import Blueprint

bp = Blueprint("calls", __name__, url_prefix="/calls")

from admin.calls import views  # noqa: E402,F401
