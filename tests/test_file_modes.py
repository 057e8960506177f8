"""An instance folder made by an older version (folder 0755, database, WAL, shm 0644): opening it
warns, naming the files and the commands that fix them; a private instance opens silently."""

import logging
import os
import stat
import subprocess

import pytest

from core.store import Store


def old_instance(tmp_path, folder_mode=0o755, file_mode=0o644):
    """An instance whose database, WAL, shm and key exist, then chmod'ed as older versions left
    them (the Store that made it stays open, so the WAL and shm stay too)."""
    home = tmp_path / "old instance"
    store = Store(home)
    store.encrypt("x")                                        # secret.key exists now
    store.conn.execute("SELECT count(*) FROM calls").fetchone()   # and the WAL and shm
    for name in ("sfcti.db", "sfcti.db-wal", "sfcti.db-shm", "secret.key"):
        os.chmod(home / name, file_mode)
    os.chmod(home, folder_mode)
    return home


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == "core.store" and r.levelno == logging.WARNING]


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test sees the once-per-process warning anew."""
    from core import store

    monkeypatch.setattr(store, "_MODES_WARNED", set())


def test_an_old_instance_open_to_everyone_warns_with_the_fix(tmp_path, caplog):
    home = old_instance(tmp_path)
    with caplog.at_level(logging.WARNING, logger="core.store"):
        Store(home)
    [message] = warnings_of(caplog)
    for name in ("sfcti.db", "sfcti.db-wal", "sfcti.db-shm", "secret.key"):
        assert f"{home / name} (0644)" in message
    assert f"{home} (0755)" in message
    assert f"chmod 700 '{home}'; chmod 600 '{home}'/sfcti.db* '{home}'/secret.key" in message


def test_the_fix_it_names_works(tmp_path, caplog):
    home = old_instance(tmp_path)
    with caplog.at_level(logging.WARNING, logger="core.store"):
        Store(home)
    fix = warnings_of(caplog)[0].split("Fix: ", 1)[1]
    subprocess.run(["sh", "-c", fix], check=True)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert {stat.S_IMODE((home / n).stat().st_mode) for n in ("sfcti.db", "secret.key")} == {0o600}
    caplog.clear()
    from core import store
    store._MODES_WARNED.clear()
    with caplog.at_level(logging.WARNING, logger="core.store"):
        Store(home)
    assert warnings_of(caplog) == []


def test_only_the_wide_files_are_named(tmp_path, caplog):
    home = old_instance(tmp_path, folder_mode=0o700, file_mode=0o600)
    os.chmod(home / "sfcti.db-wal", 0o640)                       # group-readable is too wide
    with caplog.at_level(logging.WARNING, logger="core.store"):
        Store(home)
    [message] = warnings_of(caplog)
    assert f"{home / 'sfcti.db-wal'} (0640)" in message
    assert f"{home / 'sfcti.db'} (" not in message and f"{home} (" not in message


def test_a_private_instance_opens_without_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="core.store"):
        store = Store(tmp_path / "new")
        store.encrypt("x")
        Store(tmp_path / "new")
    assert warnings_of(caplog) == []


def test_the_warning_comes_once_per_process(tmp_path, caplog):
    home = old_instance(tmp_path)
    with caplog.at_level(logging.WARNING, logger="core.store"):
        Store(home)
        Store(home)
    assert len(warnings_of(caplog)) == 1


def test_the_host_entry_point_warns_too(tmp_path, caplog, monkeypatch):
    from core.runtime import runtime_for, shutdown_all

    home = old_instance(tmp_path)
    monkeypatch.setenv("SFCTI_JOBS", "off")
    try:
        with caplog.at_level(logging.WARNING, logger="core.store"):
            runtime_for(home)
    finally:
        shutdown_all()
    assert len(warnings_of(caplog)) == 1
