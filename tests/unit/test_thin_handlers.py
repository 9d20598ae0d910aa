"""Handlers stay thin (issue 13): parse → domain → respond, at most 60 lines of logic each (code
outside imports, docstrings, comments and blank lines); the work lives in ``layers/``."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LOGIC_LINES = 60
_NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


def logic_lines(source: str) -> int:
    """Lines holding code that is neither an import nor a docstring."""
    skipped: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            skipped.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        body = getattr(node, "body", None)
        for stmt in body if isinstance(body, list) else []:
            if (
                isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                skipped.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _NOT_CODE:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in skipped)
    return len(lines)


def test_the_counter_counts_code_only() -> None:
    source = '"""doc"""\nimport os\n\n# note\ndef f(x):\n    """doc\n    more"""\n    return (x +\n            1)\n'
    assert logic_lines(source) == 3


@pytest.mark.parametrize("app", sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py")))
def test_each_handler_has_at_most_60_lines_of_logic(app: str) -> None:
    count = logic_lines((ROOT / "functions" / app / "app.py").read_text(encoding="utf-8"))
    assert count <= MAX_LOGIC_LINES, f"functions/{app}/app.py: {count} lines of logic; move the work into layers/"


# The modules that may add to the Powertools ``metrics`` singleton: the handlers' wiring (which emits
# what the domain returned or tallied), the thread router that makes it safe in workers, the module
# that defines it, and the CC-FS client factory's unknown-result-code hook (a process-wide client's
# callback, with no caller to return a count to).
METRICS_EMITTERS = {"aws.py", "wiring.py", "batching.py", "ccfs_factory.py"}


def test_the_domain_returns_outcomes_and_never_touches_the_metrics_singleton() -> None:
    """Issue 13: the domain returns (or tallies) what happened and the handler emits it, so the
    domain runs the same in a test, a worker thread or the bench, without EMF."""
    offenders = []
    for path in sorted((ROOT / "layers" / "shared").rglob("*.py")):
        if path.name in METRICS_EMITTERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            imported = node.names if isinstance(node, ast.ImportFrom) and node.module == "exporter.aws" else []
            if any(alias.name == "metrics" for alias in imported):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_job_table_keys_are_spelled_only_in_the_keys_module() -> None:
    """Issue 13: the table's key prefixes appear as text only in ``exporter/jobs/keys.py``; the
    product (layers, handlers, the CLI) builds keys with its functions. The local stack and the
    simulator read the table on their own on purpose (a stand-in never borrows the product's view)."""
    from exporter.jobs import keys

    prefixes = (keys.JOB_PREFIX, keys.WINDOW_PREFIX, keys.TENANT_PREFIX, keys.REC_PREFIX)
    allowed = ROOT / "layers" / "shared" / "exporter" / "jobs" / "keys.py"
    offenders = []
    for folder in ("layers/shared", "functions", "cli"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == allowed:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    text = node.value
                    if any(text.startswith(p) and (text == p or not text[len(p)].isspace()) for p in prefixes):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text!r}")
    assert offenders == [], "use exporter.jobs.keys instead:\n" + "\n".join(offenders)
