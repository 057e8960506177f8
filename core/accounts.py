"""The admin app's accounts (``admin_users``) and the failed-login brake (``login_attempts``).

Passwords are stored as werkzeug hashes. Failed logins are slowed down per user name and per
client address: after a few free failures each further attempt must wait twice as long as the
one before, up to a ceiling. Waiting is enforced by refusing early attempts, never by sleeping,
so an attacker cannot tie up the server's threads.
"""

from __future__ import annotations

import datetime as dt
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

from core.store import now_iso

DEFAULT_METHOD = "scrypt"  # werkzeug's default; tests may pass a cheaper one through the config

# a real hash to compare against when the user does not exist, so both cases take the same time
_DUMMY_HASH = generate_password_hash("sfcti-no-such-user")


def ensure_admin(store, username: str, password: str | None, method: str = DEFAULT_METHOD) -> str | None:
    """Create the admin account when there is none; returns the generated password when
    ``password`` was not given (to be shown once), else None."""
    if store.conn.execute("SELECT count(*) FROM admin_users").fetchone()[0]:
        return None
    generated = None if password else secrets.token_urlsafe(12)
    with store.transaction() as db:
        if db.execute("SELECT count(*) FROM admin_users").fetchone()[0]:
            return None  # another process created it first
        _insert(db, username, password or generated, method)
    return generated


def set_password(store, username: str, password: str, method: str = DEFAULT_METHOD) -> None:
    """Create ``username`` or replace its password."""
    with store.transaction() as db:
        _insert(db, username, password, method)


def _insert(db, username: str, password: str, method: str) -> None:
    db.execute(
        "INSERT OR REPLACE INTO admin_users (username, password_hash, created_at) VALUES (?, ?, ?)",
        [username, generate_password_hash(password, method=method), now_iso()],
    )


def check_credentials(store, username: str, password: str) -> bool:
    """True when ``username`` exists and ``password`` is its password."""
    row = store.conn.execute(
        "SELECT password_hash FROM admin_users WHERE username = ?", (username,)
    ).fetchone()
    valid = check_password_hash(row[0] if row else _DUMMY_HASH, password)
    return bool(row) and valid


def user_exists(store, username: str) -> bool:
    """True when ``username`` is an admin account."""
    return store.conn.execute(
        "SELECT 1 FROM admin_users WHERE username = ?", (username,)
    ).fetchone() is not None


# -- slowing down failed logins ------------------------------------------------------------------

def wait_seconds(store, keys: list[str], free: int, ceiling: int, now: dt.datetime | None = None,
                 first_delay: float = 1.0) -> int:
    """Seconds the client must still wait before its next attempt (0: it may try now): after
    ``free`` failures, ``first_delay`` doubling with each further failure, at most ``ceiling``."""
    now = now or dt.datetime.now(dt.timezone.utc)
    longest = 0
    for key in keys:
        row = store.conn.execute(
            "SELECT failures, last_at FROM login_attempts WHERE key = ?", (key,)
        ).fetchone()
        if not row or row[0] < free:
            continue
        delay = min(first_delay * 2 ** (row[0] - free), ceiling)
        ready = dt.datetime.fromisoformat(row[1]) + dt.timedelta(seconds=delay)
        longest = max(longest, int((ready - now).total_seconds() + 0.999))
    return longest


def note_failure(store, keys: list[str]) -> None:
    """Count a failed attempt against every key (user name and client address)."""
    with store.transaction() as db:
        for key in keys:
            db.execute(
                "INSERT INTO login_attempts (key, failures, last_at) VALUES (?, 1, ?) "
                "ON CONFLICT(key) DO UPDATE SET failures = failures + 1, last_at = excluded.last_at",
                [key, now_iso()],
            )


def note_success(store, keys: list[str]) -> None:
    """Forget the failures of these keys."""
    with store.transaction() as db:
        db.execute(f"DELETE FROM login_attempts WHERE key IN ({','.join('?' * len(keys))})", keys)
