"""The layout of docs/ARCHITECTURE.md, read off the imports of the product's own code.

* ``venues/`` and ``tracing/`` import from ``checkin`` only ``checkin.platform``;
* ``checkin.platform`` imports nothing else of the product;
* no product code imports ``loadtest`` or ``tests``;
* the ingest rooms of ``checkin`` never import ``tracing`` or a ClickHouse client (only the
  ``checkin`` command and launcher name the tracing side's commands);
* every package opens with a docstring saying what it owns;
* no test module imports another (shared helpers live in ``tests/support``).

Every import counts, module level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("checkin", "venues", "tracing")
COMMAND_MODULES = {"checkin.cli", "checkin.launcher"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imports_of(path: Path) -> set[str]:
    """Every module named by an import in the file (``from a.b import c`` names ``a.b`` and
    ``a.b.c``, since ``c`` may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(packages: tuple[str, ...], forbidden: callable) -> list[str]:  # type: ignore[valid-type]
    out = []
    for package in packages:
        for path in modules(package):
            me = module_name(path)
            for name in sorted(imports_of(path)):
                if forbidden(me, name):
                    out.append(f"{me} imports {name}")
    return out


def test_venues_and_tracing_import_only_the_platform_of_checkin() -> None:
    def forbidden(me: str, name: str) -> bool:
        return within(name, "checkin") and name != "checkin" and not within(name, "checkin.platform")

    assert violations(("venues", "tracing"), forbidden) == []


def test_the_platform_imports_nothing_else_of_the_product() -> None:
    def forbidden(me: str, name: str) -> bool:
        if not within(me, "checkin.platform"):
            return False
        if within(name, "checkin"):
            return name != "checkin" and not within(name, "checkin.platform")
        return any(within(name, p) for p in ("venues", "tracing", "loadtest", "tests"))

    assert violations(("checkin",), forbidden) == []


def test_product_code_never_imports_the_load_test_kit_or_the_tests() -> None:
    def forbidden(me: str, name: str) -> bool:
        return within(name, "loadtest") or within(name, "tests")

    assert violations(PRODUCT, forbidden) == []


def test_no_test_module_imports_another() -> None:
    found = [
        f"{path.name} imports {name}"
        for path in sorted((ROOT / "tests").glob("test_*.py"))
        for name in sorted(imports_of(path))
        if within(name, "tests") and name.split(".")[1].startswith("test_")
    ]
    assert found == []


def test_the_ingest_rooms_never_reach_clickhouse() -> None:
    def forbidden(me: str, name: str) -> bool:
        if me in COMMAND_MODULES:
            return False
        return within(name, "tracing") or within(name, "clickhouse_connect") or within(name, "chdb")

    assert violations(("checkin", "venues"), forbidden) == []


def test_the_tracing_workers_never_import_the_http_layer() -> None:
    workers = ("tracing.streams", "tracing.sink", "tracing.notices", "tracing.rules", "tracing.workers")

    def forbidden(me: str, name: str) -> bool:
        return any(within(me, w) for w in workers) and within(name, "tracing.api")

    assert violations(("tracing",), forbidden) == []


@pytest.mark.parametrize(
    "package",
    sorted(module_name(p) for name in (*PRODUCT, "loadtest") for p in (ROOT / name).rglob("__init__.py")),
)
def test_every_package_says_what_it_owns(package: str) -> None:
    path = ROOT / Path(*package.split(".")) / "__init__.py"
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert doc and len(doc) > 40, f"{package} has no docstring saying what it owns"


def test_the_check_catches_a_wrong_edge(tmp_path: Path) -> None:
    """The reader sees imports inside functions too (the rules above would miss them otherwise)."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from checkin.residents.service import register\n", encoding="utf-8")
    assert "checkin.residents.service" in imports_of(sample)
