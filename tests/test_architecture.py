"""The shape of the code, checked: each table has one owner module, core/ has no import cycle,
imports neither Flask nor pluggy, and explains every function-local import.

These rules are what lets a second database backend (or any later change) touch one module per
concern instead of hunting SQL through the tree (docs/architecture.md).
"""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCANNED = ("core", "admin", "cli", "plugin", "bench", "bridges", "emulator")

# table -> the one module allowed to name it in SQL (docs/architecture.md)
OWNERS = {
    "settings": "core/settings.py",
    "contacts": "core/store.py",
    "no_match": "core/store.py",
    "api_usage": "core/store.py",
    "store_meta": "core/store.py",
    "error_log": "core/errors.py",
    "calls": "core/history.py",
    "registration_queue": "core/registration.py",
    "refetch_locks": "core/registration.py",
    "job_runs": "core/jobs.py",
    "outbox": "core/mail.py",
    "alert_state": "core/alerts.py",
    "admin_users": "core/accounts.py",
    "login_attempts": "core/accounts.py",
    "index_records": "core/index.py",
    "index_phones": "core/index.py",
    "index_sync": "core/index.py",
    "agent_users": "core/agents.py",
    "task_outbox": "core/activity.py",
}
# the schema is created by the store's migrations, which name every table once
SCHEMA_FUNCTIONS = re.compile(r"^_migration_\d+$")
SQL_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE(?: IF NOT EXISTS)?|ON)\s+\"?([a-z_]+)\b")


def python_files():
    """Every module of the scanned packages, as (path relative to the root, source)."""
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")


def tables_named(source: str) -> list[tuple[int, str]]:
    """(line, table) for every table of OWNERS a module names in SQL text or as a sqlite-utils
    table (``db["calls"]``, ``db.table("calls")``), outside the store's schema functions."""
    tree = ast.parse(source)
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and SCHEMA_FUNCTIONS.match(node.name):
            skipped.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [(node.lineno, t) for t in SQL_TABLE.findall(node.value) if t in OWNERS]
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and node.slice.value in OWNERS:
            found.append((node.lineno, node.slice.value))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "table" and node.args \
                and isinstance(node.args[0], ast.Constant) and node.args[0].value in OWNERS:
            found.append((node.lineno, node.args[0].value))
    return found


def test_the_checker_sees_sql_and_sqlite_utils_access():
    planted = (
        'def f(db):\n'
        '    db.execute("SELECT count(*) FROM calls WHERE e164 = ?", [1])\n'
        '    db.execute(f"INSERT OR IGNORE INTO outbox (id) VALUES ({1})")\n'
        '    db["contacts"].insert({})\n'
        '    db.table("error_log").count\n'
        '    return "rows from the calls of the day"  # prose, not SQL\n'
        'def _migration_9(db):\n'
        '    db["settings"].create({})\n'
    )
    assert sorted(t for _, t in tables_named(planted)) == ["calls", "contacts", "error_log", "outbox"]


def test_every_owner_module_exists_and_names_its_tables():
    named = {path: {t for _, t in tables_named(source)} for path, source in python_files()}
    for table, owner in OWNERS.items():
        assert table in named.get(owner, set()), f"{owner} should own {table}"


def test_no_module_names_a_table_it_does_not_own():
    trespass = [f"{path}:{line} names {table} (owner: {OWNERS[table]})"
                for path, source in python_files()
                for line, table in tables_named(source) if OWNERS[table] != path]
    assert trespass == []


def test_the_architecture_page_names_each_owner():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for table, owner in OWNERS.items():
        assert re.search(rf"`{table}`.*{re.escape(owner)}|{re.escape(owner)}.*`{table}`", page), table


# ---------------------------------------------------------------------------------------------
# imports of core/
# ---------------------------------------------------------------------------------------------

def core_imports(source: str) -> list[tuple[ast.AST, str]]:
    """(import node, imported core module) for every import of a core module, anywhere."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "core":
                found += [(node, f"core.{alias.name}") for alias in node.names]
            elif node.module.startswith("core."):
                found.append((node, node.module))
        elif isinstance(node, ast.Import):
            found += [(node, a.name) for a in node.names
                      if a.name == "core" or a.name.startswith("core.")]
    return found


def test_the_core_import_finder_sees_every_form():
    source = ("import core\nimport core.phone as p\nfrom core import phone\n"
              "from core.phone import x\ndef f():\n    from core.resolver import Resolver\n"
              "import corelib\nfrom emulator import org\n")
    assert sorted(target for _, target in core_imports(source)) == [
        "core", "core.phone", "core.phone", "core.phone", "core.resolver"]


@pytest.mark.parametrize("path", sorted((ROOT / "emulator").rglob("*.py")),
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_emulator_never_imports_core(path):
    # The emulator stands in for Salesforce and produces the ground truth tests compare against;
    # reading numbers with our own parser there would make a test agree with itself.
    source = path.read_text(encoding="utf-8")
    assert [(node.lineno, target) for node, target in core_imports(source)] == []


def core_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted((ROOT / "core").glob("*.py")):
        name = f"core.{path.stem}"
        graph[name] = {target for _, target in core_imports(path.read_text(encoding="utf-8"))
                       if target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle (each found once from its first module) by depth-first search."""
    found, done = [], set()

    def visit(node, path):
        if node in path:
            found.append(path[path.index(node):] + [node])
            return
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            visit(target, path + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_core_has_no_import_cycle():
    assert cycles(core_graph()) == []


@pytest.mark.parametrize("path", sorted((ROOT / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_imports_neither_flask_nor_pluggy(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"flask", "flask_wtf", "flask_babel", "pluggy"}


def local_imports_without_reason(source: str) -> list[int]:
    """Lines of imports inside functions with no comment on them or just above their block."""
    lines = source.splitlines()
    missing = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                first = node.lineno - 1
                while first > 0 and lines[first - 1].lstrip().startswith(("import ", "from ")):
                    first -= 1
                block = lines[first - 1: node.end_lineno]
                if not any("#" in line for line in block):
                    missing.append(node.lineno)
    return missing


def test_the_local_import_check_wants_a_comment():
    source = ("def f():\n    import json\n\n"
              "def g():\n    # json only when asked: it is slow to import\n    import json\n    import csv\n")
    assert local_imports_without_reason(source) == [2]


@pytest.mark.parametrize("path", sorted((ROOT / "core").glob("*.py")), ids=lambda p: p.name)
def test_every_function_local_import_in_core_says_why(path):
    assert local_imports_without_reason(path.read_text(encoding="utf-8")) == []
