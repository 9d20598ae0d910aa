"""Parameter types the commands share (click converts and refuses them before a command runs)."""

from __future__ import annotations

from datetime import date
from typing import Any

import click

__all__ = ["DAY"]


class Day(click.ParamType):  # type: ignore[type-arg]  # generic in the stubs only
    """A tenant-local calendar day, ``YYYY-MM-DD``."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date: use YYYY-MM-DD (the tenant's local day)", param, ctx)


DAY = Day()
