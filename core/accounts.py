"""The admin app's accounts (``admin_users``) and the failed-login brake (``login_attempts``).

Passwords are stored as werkzeug hashes. Each account has a session generation: a session
carries the generation it was opened under, and logging out or changing the password moves the
account to the next one, which ends every session opened before.

Failed logins are slowed down per user name and per client address: after a few free failures
each further attempt must wait twice as long as the one before, up to a ceiling. Waiting is
enforced by refusing early attempts, never by sleeping, so an attacker cannot tie up the
server's threads. An attempt is counted as a failure *before* its password is checked, in the
same write transaction that checks the wait (:func:`reserve_attempt`), so parallel requests,
from any number of threads and processes, get no more password checks than one after another.
"""

from __future__ import annotations

import dataclasses
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


def set_password(store, username: str, password: str, method: str = DEFAULT_METHOD) -> int:
    """Create ``username`` or replace its password; every session of an existing account ends.
    Returns the account's session generation from now on."""
    with store.transaction() as db:
        _insert(db, username, password, method)
        return session_generation(store, username)


def _insert(db, username: str, password: str, method: str) -> None:
    # an existing account keeps its row and moves to the next session generation
    db.execute(
        "INSERT INTO admin_users (username, password_hash, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT(username) DO UPDATE SET password_hash = excluded.password_hash, "
        "session_generation = admin_users.session_generation + 1",
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
    return session_generation(store, username) is not None


# -- sessions ------------------------------------------------------------------------------------

def session_generation(store, username: str) -> int | None:
    """The generation a session of ``username`` must carry to be valid (None: no such account)."""
    row = store.conn.execute(
        "SELECT session_generation FROM admin_users WHERE username = ?", (username,)
    ).fetchone()
    return row[0] if row else None


def end_sessions(store, username: str) -> int | None:
    """End every session of ``username`` (logout, a stolen cookie); returns the new generation
    (None: no such account)."""
    with store.transaction() as db:
        db.execute("UPDATE admin_users SET session_generation = session_generation + 1 "
                   "WHERE username = ?", [username])
        return session_generation(store, username)


# -- slowing down failed logins ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Brake:
    """How failed logins are slowed down: ``free`` failures, then ``first_delay`` seconds doubling
    with each further failure, at most ``ceiling``."""

    free: int
    ceiling: float
    first_delay: float


def reserve_attempt(store, keys: list[str], brake: Brake, now: dt.datetime | None = None) -> int:
    """Ask to check a password for ``keys`` (user name and client address): the seconds still
    to wait (the attempt is refused), or 0: the attempt is counted as a failure now, and only
    :func:`note_success` takes it back.

    Checking the wait and counting the attempt are one ``BEGIN IMMEDIATE`` transaction, so
    parallel attempts (threads or processes) are let through one at a time."""
    now = now or dt.datetime.now(dt.timezone.utc)
    with store.transaction():
        wait = wait_seconds(store, keys, brake.free, brake.ceiling, now, brake.first_delay)
        if not wait:
            note_failure(store, keys, now)
        return wait


def wait_seconds(store, keys: list[str], free: int, ceiling: float, now: dt.datetime | None = None,
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


def note_failure(store, keys: list[str], at: dt.datetime | None = None) -> None:
    """Count a failed attempt against every key (user name and client address)."""
    with store.transaction() as db:
        for key in keys:
            db.execute(
                "INSERT INTO login_attempts (key, failures, last_at) VALUES (?, 1, ?) "
                "ON CONFLICT(key) DO UPDATE SET failures = login_attempts.failures + 1, "
                "last_at = excluded.last_at",
                [key, now_iso(at)],
            )


def note_success(store, keys: list[str]) -> None:
    """Forget the failures of these keys (the attempt reserved for this success among them)."""
    with store.transaction() as db:
        db.execute(f"DELETE FROM login_attempts WHERE key IN ({','.join('?' * len(keys))})", keys)
