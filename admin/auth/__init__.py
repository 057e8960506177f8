"""Access: the admin account, login and logout, and the guard every other page uses."""
from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/auth")

from admin.auth import views  # noqa: E402,F401  (registers the routes)
from admin.auth.views import login_required  # noqa: E402,F401
