"""Japanese and English through Flask-Babel: the .po files are the only dictionaries.

``*.mo`` files are not committed; :func:`compile_translations` builds them at app start when they
are missing or older than their ``.po`` (into the package, or into the instance folder when the
package is read-only).
"""

from __future__ import annotations

import os
import pathlib

from flask import Flask, request, session
from flask_babel import Babel, get_locale

LANGUAGES = ("ja", "en")
PACKAGE_TRANSLATIONS = pathlib.Path(__file__).parent / "translations"


def init_app(app: Flask) -> None:
    """Compile the catalogues if needed and install Flask-Babel with our locale choice."""
    directory = compile_translations(PACKAGE_TRANSLATIONS, pathlib.Path(app.instance_path))
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(directory)
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "ja")
    Babel(app, locale_selector=select_locale)


def select_locale() -> str:
    """The language chosen with the switch, else the browser's best match, else Japanese."""
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or "ja"


def current_lang() -> str:
    """"ja" or "en": the language of the current request (for catalogue texts)."""
    locale = get_locale()
    return "en" if locale is not None and locale.language == "en" else "ja"


def compile_translations(source: pathlib.Path, home: pathlib.Path) -> pathlib.Path:
    """Compile every ``*.po`` under ``source`` whose ``.mo`` is missing or stale; returns the
    translations directory to use."""
    if _compile_into(source, source):
        return source
    fallback = home / "translations"
    _compile_into(source, fallback)
    return fallback


def _compile_into(source: pathlib.Path, target: pathlib.Path) -> bool:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    try:
        for po in source.glob("*/LC_MESSAGES/*.po"):
            mo = target / po.relative_to(source).with_suffix(".mo")
            if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
                continue
            mo.parent.mkdir(parents=True, exist_ok=True)
            with po.open("rb") as f:
                catalog = read_po(f)
            tmp = mo.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as f:
                write_mo(f, catalog)
            os.replace(tmp, mo)  # atomic: a second process never reads half a file
        return True
    except OSError:
        return False
