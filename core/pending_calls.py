"""Ended calls the database could not take in time (locked by another process, disk full,
read-only folder): each is appended to its process's journal file in the instance folder before
the host's end-of-call hook returns, so a crash (kill -9) before the database takes it cannot
lose it. The next process that starts on the folder writes a dead process's journal into the
history; a call already there is skipped (the history keeps one row per call id).

A journal is a file of JSON lines ``{"facts": CallFacts, "shown": display}`` named after its
process's holder id (core.holders), removed once every call in it is in the database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import pathlib
import threading
from typing import Callable, Iterator

from core.history import CallFacts
from core.holders import holder_alive, new_holder

log = logging.getLogger(__name__)

FOLDER = "pending-calls"
SUFFIX = ".jsonl"


class Journal:
    """This process's journal of ended calls not yet in the database."""

    def __init__(self, home: str | os.PathLike):
        self.folder = pathlib.Path(home) / FOLDER
        self.holder = new_holder()
        self.path = self.folder / f"{self.holder}{SUFFIX}"
        self._lock = threading.Lock()
        self._waiting = 0

    def add(self, facts: CallFacts, shown: dict | None) -> bool:
        """Append one ended call (one write, so a crash leaves whole lines); False when the
        file cannot be written either (the host's log says so)."""
        line = json.dumps({"facts": _plain(facts), "shown": shown or {}}, ensure_ascii=False) + "\n"
        try:
            with self._lock:
                self.folder.mkdir(mode=0o700, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode("utf-8", "surrogatepass"))
                finally:
                    os.close(fd)
                self._waiting += 1
            return True
        except OSError as exc:
            log.warning("sfcti: call %r cannot be kept on disk either (%s): it is lost if this "
                        "process ends before the database takes it", facts.call_id, exc)
            return False

    def written(self) -> None:
        """One call added here reached the database; the file goes when none is left."""
        with self._lock:
            self._waiting -= 1
            if self._waiting <= 0:
                self._waiting = 0
                self.path.unlink(missing_ok=True)

    def replay_dead(self, record: Callable[[CallFacts, dict], object]) -> int:
        """``record(facts, shown)`` every call in the journals of processes that are gone, then
        remove those journals; returns how many calls were handed over."""
        handed = 0
        for path in sorted(self.folder.glob(f"*{SUFFIX}")) if self.folder.is_dir() else []:
            if path == self.path or holder_alive(path.name[: -len(SUFFIX)]):
                continue
            for facts, shown in _entries(path):
                record(facts, shown)
                handed += 1
            path.unlink(missing_ok=True)
        if handed:
            log.warning("sfcti: %d ended calls of a stopped process recorded from its journal", handed)
        return handed


def _plain(facts: CallFacts) -> dict:
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v
            for k, v in dataclasses.asdict(facts).items()}


def _entries(path: pathlib.Path) -> Iterator[tuple[CallFacts, dict]]:
    """The whole lines of a journal as (facts, shown); a torn or foreign line is skipped."""
    try:
        text = path.read_text("utf-8", "surrogatepass")
    except OSError as exc:
        log.warning("sfcti: cannot read the journal %s: %s", path, exc)
        return
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            values = {k: dt.datetime.fromisoformat(v) if k.endswith("_at") and v else v
                      for k, v in entry["facts"].items()}
            yield CallFacts(**values), dict(entry.get("shown") or {})
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("sfcti: skipped a damaged line of the journal %s", path)
