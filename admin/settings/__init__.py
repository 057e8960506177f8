"""Salesforce connection settings: "Test connection and save" and "Disconnect"."""
from flask import Blueprint

bp = Blueprint("settings", __name__, url_prefix="/settings")

from admin.settings import oauth_views, views  # noqa: E402,F401
