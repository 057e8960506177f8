"""What the benchmarks share: percentiles, and writing their section of docs/benchmarks.md."""

from __future__ import annotations

import pathlib

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def replace_section(section: str) -> None:
    """Replace the section of docs/benchmarks.md whose heading is ``section``'s first line (from
    it to the next ``## `` heading), or append it; the other sections are kept."""
    heading = section.split("\n", 1)[0]
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n\n"
    section = section.rstrip("\n") + "\n"
    start = text.find("\n" + heading + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start + 1] + section + ("\n" + text[end + 1:] if end != -1 else "")
    DOC.write_text(text, encoding="utf-8")


class Emu:
    """An emulator running in a child process, as a bench talks to it over a pipe: a command
    and its arguments go out, the child's answer comes back."""

    def __init__(self, pipe, env: dict):
        self.pipe, self.env = pipe, env

    def ask(self, command: str, *args):
        """The child's answer to ``command``."""
        self.pipe.send((command, *args))
        return self.pipe.recv()

    def counters(self) -> dict:
        """Requests by kind since the last reset, login left out (not an API call)."""
        return {k: v for k, v in self.ask("counters").items() if k != "login"}

    def calls(self) -> int:
        """API calls since the last reset."""
        return sum(self.counters().values())

    def reset(self) -> None:
        """Reset the child emulator's counters and faults."""
        self.ask("reset")


def answer(pipe, emu, commands: dict) -> None:
    """The child side of :class:`Emu`: answer each command from the pipe until "stop" (or one
    not known): "counters" and "reset" for every bench, the rest from ``commands`` (name ->
    function of the command's arguments, returning the answer)."""
    builtin = {"counters": lambda: dict(emu.api_calls), "reset": lambda: emu.reset_counters() or True}
    while True:
        command, *args = pipe.recv()
        handler = builtin.get(command) or commands.get(command)
        if handler is None:
            return
        pipe.send(handler(*args))


def replace_marked(begin: str, end: str, text: str, introduction: str) -> None:
    """Put ``text`` between the markers ``begin`` and ``end`` of docs/benchmarks.md (other
    sections kept); a document without them gets ``introduction`` (its heading and first
    paragraphs) and the marked text appended."""
    import re

    body = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    section = f"{begin}\n{text}\n{end}"
    if begin in body and end in body:
        body = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, body, flags=re.S)
    else:
        body = body.rstrip() + "\n\n" + introduction.strip() + "\n\n" + section + "\n"
    DOC.write_text(body, encoding="utf-8")


def main(description: str, run, report) -> None:
    """A benchmark's command line: measure with ``run()``, print ``report(figures)`` (its
    markdown section) and, with ``--write-docs``, put it into docs/benchmarks.md."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    section = report(run())
    print(section)
    if args.write_docs:
        replace_section(section)
