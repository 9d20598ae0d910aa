"""An in-memory jobs table: ``exporter.jobs.table.JobsTable`` without DynamoDB (or moto).

The fake replaces the one class through which the product touches the table, so the real
``JobStore`` and ``Progress`` run on it unchanged: their condition, update and key-condition
expressions are evaluated here, for the subset of DynamoDB's expression language the product
uses (comparisons, AND/OR/NOT, parentheses, ``attribute_exists``, ``attribute_not_exists``,
``contains``, ``begins_with``; ``SET`` with ``if_not_exists``, ``REMOVE``, ``ADD``). Anything else
raises ``NotImplementedError`` rather than answering wrongly. Values go through the product's
serialisation both ways (``to_ddb``/``from_ddb``), so what a test reads back is typed exactly as
it would be from DynamoDB (ints, sets; ``None`` attributes left out).

``tests/unit/test_jobs_table_fake.py`` runs the same scenarios on this fake and on moto.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any

from exporter.jobs.keys import STATUS_INDEX
from exporter.jobs.table import CONDITION_FAILED, from_ddb, to_ddb

__all__ = ["FakeJobsTable"]

_TOKEN = re.compile(r"\s*(<>|<=|>=|=|<|>|\(|\)|,|[#:]?[A-Za-z_][\w.]*|-?\d+)")
_KEYWORDS = {"AND", "OR", "NOT", "SET", "REMOVE", "ADD", "DELETE"}
_MISSING = object()


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise NotImplementedError(f"fake jobs table cannot parse {text[pos:]!r} in {text!r}")
        out.append(match.group(1))
        pos = match.end()
    return out


class _Expr:
    """One expression's tokens with its names and values; reads attributes of ``item``."""

    def __init__(self, text: str, names: Mapping[str, str], values: Mapping[str, Any]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.names = names
        self.values = values

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token.upper() != expected):
            raise NotImplementedError(f"fake jobs table: expected {expected!r}, got {token!r} in {self.tokens}")
        self.pos += 1
        return token

    def name(self, token: str) -> str:
        return self.names[token] if token.startswith("#") else token

    def operand(self, item: Mapping[str, Any]) -> Any:
        token = self.take()
        if token.startswith(":"):
            return self.values[token]
        return item.get(self.name(token), _MISSING)

    # ------------------------------------------------------------------ conditions

    def condition(self, item: Mapping[str, Any]) -> bool:
        result = self._and(item)
        while (self.peek() or "").upper() == "OR":
            self.take()
            right = self._and(item)
            result = result or right
        return result

    def _and(self, item: Mapping[str, Any]) -> bool:
        result = self._not(item)
        while (self.peek() or "").upper() == "AND":
            self.take()
            right = self._not(item)
            result = result and right
        return result

    def _not(self, item: Mapping[str, Any]) -> bool:
        if (self.peek() or "").upper() == "NOT":
            self.take()
            return not self._not(item)
        return self._primary(item)

    def _primary(self, item: Mapping[str, Any]) -> bool:
        token = self.peek()
        if token == "(":
            self.take()
            result = self.condition(item)
            self.take(")")
            return result
        if token in ("attribute_exists", "attribute_not_exists", "contains", "begins_with"):
            self.take()
            self.take("(")
            value = item.get(self.name(self.take()), _MISSING)
            arg = None
            if token in ("contains", "begins_with"):
                self.take(",")
                arg = self.operand(item)
            self.take(")")
            if token == "attribute_exists":
                return value is not _MISSING
            if token == "attribute_not_exists":
                return value is _MISSING
            if value is _MISSING:
                return False
            if token == "contains":
                return arg in value
            return isinstance(value, str) and value.startswith(str(arg))
        left = self.operand(item)
        op = self.take()
        right = self.operand(item)
        if left is _MISSING or right is _MISSING:
            return op == "<>"
        comparisons = {
            "=": lambda a, b: a == b,
            "<>": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        if op not in comparisons:
            raise NotImplementedError(f"fake jobs table: operator {op!r}")
        return bool(comparisons[op](left, right))

    # ------------------------------------------------------------------ updates

    def apply_update(self, item: dict[str, Any]) -> None:
        """Apply an update expression to ``item`` (every operand read before any change, as DynamoDB)."""
        before = copy.deepcopy(item)
        while self.peek() is not None:
            clause = self.take().upper()
            if clause not in ("SET", "REMOVE", "ADD"):
                raise NotImplementedError(f"fake jobs table: update clause {clause!r}")
            while True:
                self._update_action(clause, before, item)
                if self.peek() != ",":
                    break
                self.take(",")

    def _update_action(self, clause: str, before: Mapping[str, Any], item: dict[str, Any]) -> None:
        path = self.name(self.take())
        if clause == "REMOVE":
            item.pop(path, None)
            return
        if clause == "ADD":
            value = self.operand(before)
            current = before.get(path, _MISSING)
            if isinstance(value, set):
                item[path] = (set() if current is _MISSING else set(current)) | value
            else:
                item[path] = (0 if current is _MISSING else current) + value
            return
        self.take("=")
        if self.peek() == "if_not_exists":
            self.take()
            self.take("(")
            existing = before.get(self.name(self.take()), _MISSING)
            self.take(",")
            fallback = self.operand(before)
            self.take(")")
            item[path] = fallback if existing is _MISSING else existing
            return
        value = self.operand(before)
        if value is _MISSING:
            raise NotImplementedError(f"fake jobs table: SET {path} from a missing attribute")
        item[path] = value


def _plain(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Values as DynamoDB would hand them back (the product's own serialisation, both ways)."""
    return from_ddb(to_ddb(values or {}))


class FakeJobsTable:
    """Drop-in for ``JobsTable`` (same methods, same answers); ``items`` is the whole table."""

    def __init__(self, name: str = "jobs") -> None:
        self.name = name
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[str] = []
        """The operation of every call, in order (``GetItem``, ``TransactWriteItems``, ...)."""

    @staticmethod
    def _key(key: Mapping[str, Any]) -> tuple[str, str]:
        return str(key["pk"]), str(key["sk"])

    def _holds(self, condition: str | None, item: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
        if not condition:
            return True
        names = spec.get("ExpressionAttributeNames") or spec.get("names") or {}
        values = _plain(spec.get("ExpressionAttributeValues") or spec.get("values"))
        expr = _Expr(condition, names, values)
        result = expr.condition(item)
        if expr.peek() is not None:
            raise NotImplementedError(f"fake jobs table: trailing tokens in {condition!r}")
        return result

    def _updated(self, key: Mapping[str, Any], update: str, names: Mapping[str, str], values: Any) -> dict[str, Any]:
        item = copy.deepcopy(self.items.get(self._key(key), dict(key)))
        _Expr(update, names, _plain(values)).apply_update(item)
        return item

    # ------------------------------------------------------------------ JobsTable's interface

    def get(self, key: Mapping[str, str]) -> dict[str, Any] | None:
        self.requests.append("GetItem")
        item = self.items.get(self._key(key))
        return copy.deepcopy(item) if item is not None else None

    def put(self, item: Mapping[str, Any], condition: str, values: Mapping[str, Any] | None = None) -> bool:
        self.requests.append("PutItem")
        current = self.items.get(self._key(item), {})
        if not self._holds(condition, current, {"values": values}):
            return False
        self.items[self._key(item)] = _plain(item)
        return True

    def update(
        self,
        key: Mapping[str, str],
        *,
        update: str,
        condition: str,
        values: Mapping[str, Any] | None = None,
        names: Mapping[str, str] | None = None,
    ) -> bool:
        self.requests.append("UpdateItem")
        current = self.items.get(self._key(key), {})
        if not self._holds(condition, current, {"values": values, "names": names}):
            return False
        self.items[self._key(key)] = self._updated(key, update, names or {}, values)
        return True

    def transact(self, actions: list[dict[str, dict[str, Any]]]) -> list[str] | None:
        self.requests.append("TransactWriteItems")
        reasons: list[str] = []
        planned: list[tuple[tuple[str, str], dict[str, Any]]] = []
        for action in actions:
            ((kind, spec),) = action.items()
            key = spec["Item"] if kind == "Put" else spec["Key"]
            current = self.items.get(self._key(key), {})
            if not self._holds(spec.get("ConditionExpression"), current, spec):
                reasons.append(CONDITION_FAILED)
                continue
            reasons.append("None")
            if kind == "Put":
                planned.append((self._key(key), _plain(spec["Item"])))
            elif kind == "Update":
                names = spec.get("ExpressionAttributeNames") or {}
                values = spec.get("ExpressionAttributeValues")
                planned.append((self._key(key), self._updated(key, spec["UpdateExpression"], names, values)))
            else:
                raise NotImplementedError(f"fake jobs table: transaction action {kind}")
        if CONDITION_FAILED in reasons:
            return reasons  # all or nothing
        for key, item in planned:
            self.items[key] = item
        return None

    def query_items(self, *, max_pages: int | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.requests.append("Query")
        index = kwargs.get("IndexName")
        if index not in (None, STATUS_INDEX):
            raise NotImplementedError(f"fake jobs table: index {index!r}")
        sort_key = "status_at" if index else "sk"
        partition = "job_status" if index else "pk"
        candidates = [i for i in self.items.values() if partition in i and sort_key in i]
        found = [i for i in candidates if self._holds(kwargs["KeyConditionExpression"], i, kwargs)]
        found.sort(key=lambda i: i[sort_key], reverse=kwargs.get("ScanIndexForward") is False)
        limit = kwargs.get("Limit") or len(found) or 1
        pages = [found[n : n + limit] for n in range(0, len(found), limit)]
        for page in pages if max_pages is None else pages[:max_pages]:
            for item in page:
                yield copy.deepcopy(item)
