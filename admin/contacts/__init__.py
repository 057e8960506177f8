"""Contacts (連絡先): the Salesforce records registered locally."""
from flask import Blueprint

bp = Blueprint("contacts", __name__, url_prefix="/contacts")

from admin.contacts import views  # noqa: E402,F401
