"""Agents (担当者): which Salesforce user owns the Tasks of each agent's calls."""
from flask import Blueprint

bp = Blueprint("agents", __name__, url_prefix="/agents")

from admin.agents import views  # noqa: E402,F401
