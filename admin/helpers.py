"""Small view helpers shared by the blueprints."""

from __future__ import annotations

import datetime as dt

from typing import Callable

from flask import current_app, g, request, url_for

from admin.i18n import current_lang
from core.settings import format_local_time, load_settings


def localtime(value: str | None, with_seconds: bool = True) -> str:
    """An ISO-8601 UTC timestamp shown in the configured time zone ("2024-05-20 21:49:32")."""
    return format_local_time(value, admin_zone(), with_seconds)


def admin_zone() -> dt.tzinfo:
    """The time zone the admin configured, read once per request."""
    from admin import get_store

    if "admin_zone" not in g:
        g.admin_zone = load_settings(get_store()).zone()
    return g.admin_zone


def failure_shown(entry, problems=()) -> dict:
    """What the failure box shows for a catalogue entry, in the page's language."""
    lang = current_lang()
    return {"code": entry.code, "message": entry.message(lang), "remedy": entry.remedy(lang),
            "problems": list(problems)}


def page_url(page: int) -> str:
    """The current page's URL with ``page`` replaced, keeping the other query arguments."""
    args = request.args.to_dict()
    args["page"] = page
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def page_number() -> int:
    """The ``page`` query argument as a positive int (1 when missing or malformed)."""
    try:
        return max(1, min(int(request.args.get("page", "1")), 1_000_000))
    except ValueError:
        return 1


def paginate(total: int, page: int, size: int) -> dict:
    """Pagination facts for the template: page, pages, has_prev, has_next, offset."""
    pages = max(1, (total + size - 1) // size)
    page = min(page, pages)
    return {"page": page, "pages": pages, "total": total, "offset": (page - 1) * size,
            "has_prev": page > 1, "has_next": page < pages}


def searched_page(count: Callable[[str | None], int], fetch: Callable[..., list]) -> dict:
    """What a searchable, paginated list page renders: ``form``, ``search``, ``pages`` and
    ``rows``, from ``count(search)`` and ``fetch(limit=, offset=, search=)``."""
    # the history's search form serves the contacts too; admin.calls imports this module
    from admin.calls.forms import CallSearchForm

    form = CallSearchForm(request.args)
    search = form.search_term()
    size = current_app.config["PAGE_SIZE"]
    pages = paginate(count(search), page_number(), size)
    rows = fetch(limit=size, offset=pages["offset"], search=search)
    return {"form": form, "search": search, "pages": pages, "rows": rows}


def accepts_upload(max_bytes: int, back_to: str) -> Callable:
    """Mark a view that takes a file upload of up to ``max_bytes`` (more than the other forms'
    ``MAX_CONTENT_LENGTH``); a larger one is sent back to the page ``back_to`` (an endpoint) with
    a message instead of the bare 413 page."""
    def mark(view):
        view.max_upload_bytes = max_bytes
        view.upload_back_to = back_to
        return view
    return mark
