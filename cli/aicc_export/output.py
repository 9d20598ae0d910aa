"""Output for people and for scripts: one checklist shape, rendered as text or as ``--json``.

Every command builds a :class:`Result` (named checks, each pass/fail with what to do, plus free-form
data) and calls :func:`finish`, which prints it and exits non-zero when a check failed — so scripts can
rely on the exit code and on ``--json``'s ``{"ok": ..., "checks": [...], "data": {...}}``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import click

__all__ = ["Check", "Result", "finish"]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    fix: str = ""  # what to do when it failed


@dataclass
class Result:
    command: str
    checks: list[Check] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # the human rendering's body (tables, listings)

    def check(self, name: str, ok: bool, detail: str = "", fix: str = "") -> Check:
        c = Check(name, bool(ok), detail, fix)
        self.checks.append(c)
        return c

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {"command": self.command, "ok": self.ok, "checks": [asdict(c) for c in self.checks], "data": self.data}


def finish(ctx: click.Context, result: Result) -> None:
    """Print ``result`` (text, or JSON with ``--json``) and exit 1 if any check failed, else 0."""
    if ctx.find_root().obj.get("json"):
        click.echo(json.dumps(result.as_json(), indent=2, default=str, ensure_ascii=False))
    else:
        for line in result.lines:
            click.echo(line)
        for c in result.checks:
            mark = click.style("PASS", fg="green") if c.ok else click.style("FAIL", fg="red")
            click.echo(f"[{mark}] {c.name}" + (f": {c.detail}" if c.detail else ""))
            if not c.ok and c.fix:
                click.echo(f"       -> {c.fix}")
    ctx.exit(0 if result.ok else 1)
