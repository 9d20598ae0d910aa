"""The test suite's own layout (issue 13): test modules stand alone, and the unit tests share one
CC-FS fake.

A test module that imports another (``from tests.unit.test_callback import harness``) couples two
files nobody reads together: renaming a helper in one breaks the other, and pytest registers the
imported fixtures and tests twice over. Shared helpers live in ``tests/fakes/``, ``tests/helpers.py``,
a ``*_helpers.py`` module or a ``conftest.py``; this test reads every module's imports (ast, no
import) and names each that breaks the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _is_test_module(name: str) -> bool:
    return name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")


def imported_test_modules(source: str, package: str) -> list[str]:
    """The ``tests.*.test_*`` modules ``source`` imports (absolute, relative or ``from pkg import
    test_x``); ``package`` is the importing module's package, for relative imports."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _is_test_module(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            if _is_test_module(base):
                found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names if _is_test_module(f"{base}.{alias.name}")]
    return found


def test_the_checker_sees_every_form_of_import() -> None:
    source = "\n".join(
        [
            "import tests.unit.test_a",
            "from tests.unit.test_b import helper",
            "from tests.unit import test_c as c",
            "from .test_d import fixture",
            "from . import test_e",
            "from tests.unit.bill_helpers import RID",
            "from tests.fakes.ccfs import FakeCcfs",
            "from tests.conftest import load_handler",
        ]
    )
    assert imported_test_modules(source, "tests.unit") == [
        "tests.unit.test_a",
        "tests.unit.test_b",
        "tests.unit.test_c",
        "tests.unit.test_d",
        "tests.unit.test_e",
    ]


def test_no_test_module_imports_another() -> None:
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        imported = imported_test_modules(path.read_text(encoding="utf-8"), package)
        if imported:
            offenders[str(path.relative_to(ROOT))] = imported
    assert offenders == {}, (
        "test modules import other test modules; move the shared helper or fixture to tests/fakes/, "
        f"tests/helpers.py, a *_helpers.py module or a conftest.py: {offenders}"
    )


def test_unit_tests_share_one_ccfs_fake() -> None:
    """No unit test module defines its own CC-FS stand-in: ``tests.fakes.ccfs.FakeCcfs`` is configurable."""
    own = {}
    for path in sorted((TESTS / "unit").rglob("*.py")):
        classes = [
            node.name
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ClassDef) and "ccfs" in node.name.lower()
        ]
        if classes:
            own[path.name] = classes
    assert own == {}, f"use tests.fakes.ccfs.FakeCcfs instead of a module's own CC-FS fake: {own}"
