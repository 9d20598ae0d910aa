"""One conditional write of the jobs table, alone or as one item of a transaction.

Every state change of the table is "change these attributes, only if the item still looks like
this". :func:`update` builds that once, from attribute names and plain values (it makes the
``#name``/``:value`` placeholders, so reserved words such as ``error`` need no care at the call
site); :class:`Update` and :class:`Put` run alone (``apply``: ``False`` when the condition refused
it) or together (:func:`transact`: the per-item cancellation codes, see ``exporter.jobs.table``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from exporter.jobs.items import epoch
from exporter.jobs.table import JobsTable

__all__ = ["MAX_ERROR_CHARS", "IfAbsent", "Put", "TableWriter", "Update", "error_text", "transact", "update"]

MAX_ERROR_CHARS = 500


def error_text(error: str) -> str:
    """``error`` cut to what an item keeps of it."""
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"


@dataclass(frozen=True)
class IfAbsent:
    """A ``set`` value that keeps the stored one if any: ``SET a = if_not_exists(a, value)``."""

    value: Any


@dataclass(frozen=True)
class Update:
    """One conditional UpdateItem in plain values."""

    key: Mapping[str, str]
    expression: str
    condition: str
    names: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, table: JobsTable) -> bool:
        """Run it alone: False when the condition refused it."""
        return table.update(
            self.key,
            update=self.expression,
            condition=self.condition,
            values=self.values or None,
            names=self.names or None,
        )

    def action(self) -> dict[str, dict[str, Any]]:
        """It as one ``TransactItems`` entry."""
        spec: dict[str, Any] = {
            "Key": dict(self.key),
            "UpdateExpression": self.expression,
            "ConditionExpression": self.condition,
        }
        if self.names:
            spec["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            spec["ExpressionAttributeValues"] = dict(self.values)
        return {"Update": spec}


@dataclass(frozen=True)
class Put:
    """One conditional PutItem (by default: only if no item has its key)."""

    item: Mapping[str, Any]
    condition: str = "attribute_not_exists(pk)"
    values: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, table: JobsTable) -> bool:
        return table.put(self.item, self.condition, self.values or None)

    def action(self) -> dict[str, dict[str, Any]]:
        spec: dict[str, Any] = {"Item": dict(self.item), "ConditionExpression": self.condition}
        if self.values:
            spec["ExpressionAttributeValues"] = dict(self.values)
        return {"Put": spec}


class TableWriter:
    """What every part of the job store shares: the table, how long items live, how long a lease
    lasts (``exporter.jobs.store.JobStore`` composes the parts over one of these)."""

    def __init__(self, table: JobsTable, *, retention_days: int, lease_seconds: int) -> None:
        self._table = table
        self.retention_days = retention_days
        self.lease_seconds = lease_seconds

    def _expires_at(self, now: datetime) -> int:
        return epoch(now + timedelta(days=self.retention_days))

    def _take_lease(self, key: Mapping[str, str], expect: Mapping[str, Any], now: datetime) -> bool:
        """Set ``lease_until`` while the item holds ``expect`` and nobody holds an unexpired lease."""
        return update(
            key,
            expect=expect,
            when="attribute_not_exists(lease_until) OR lease_until < :now",
            when_values={":now": epoch(now)},
            set={"lease_until": epoch(now) + self.lease_seconds},
        ).apply(self._table)


def transact(table: JobsTable, *writes: Update | Put) -> list[str] | None:
    """All of ``writes`` or none, in one ``TransactWriteItems``: None when applied, else one
    cancellation code per write, in order."""
    return table.transact([write.action() for write in writes])


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def update(
    key: Mapping[str, str],
    *,
    expect: Mapping[str, Any] | None = None,
    when: str = "",
    when_values: Mapping[str, Any] | None = None,
    set: Mapping[str, Any] | None = None,  # the expression's own word (shadows the builtin here only)
    remove: Iterable[str] = (),
    add: Mapping[str, int] | None = None,
) -> Update:
    """The conditional update of ``key``: ``set`` (attribute → value, or :class:`IfAbsent`),
    ``remove`` and ``add`` (numbers), applied only while every ``expect`` attribute holds its value
    and ``when`` (a raw condition with its own ``when_values`` placeholders) is true."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}

    def name(attribute: str) -> str:
        alias = next((a for a, n in names.items() if n == attribute), None)
        if alias is None:
            alias = f"#n{len(names)}"
            names[alias] = attribute
        return alias

    def value(v: Any) -> str:
        placeholder = f":v{len(values)}"
        values[placeholder] = _plain(v)
        return placeholder

    clauses = []
    sets = []
    for attribute, v in (set or {}).items():
        if isinstance(v, IfAbsent):
            sets.append(f"{name(attribute)} = if_not_exists({name(attribute)}, {value(v.value)})")
        else:
            sets.append(f"{name(attribute)} = {value(v)}")
    if sets:
        clauses.append("SET " + ", ".join(sets))
    removed = [name(attribute) for attribute in remove]
    if removed:
        clauses.append("REMOVE " + ", ".join(removed))
    added = [f"{name(attribute)} {value(n)}" for attribute, n in (add or {}).items()]
    if added:
        clauses.append("ADD " + ", ".join(added))
    conditions = [f"{name(attribute)} = {value(v)}" for attribute, v in (expect or {}).items()]
    if when:
        conditions.append(f"({when})" if conditions else when)
        values.update({k: _plain(v) for k, v in (when_values or {}).items()})
    if not clauses or not conditions:
        raise ValueError("a jobs-table update needs at least one change and a condition")
    return Update(key, " ".join(clauses), " AND ".join(conditions), names, values)
