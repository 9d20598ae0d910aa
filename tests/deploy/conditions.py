"""Shared by the deploy tests: a CloudFormation value as it is once its conditions are known."""

from __future__ import annotations

from typing import Any

_NO_VALUE = object()


def pick_conditions(node: Any, conditions: dict[str, bool]) -> Any:
    """``node`` with each ``Fn::If`` replaced by the branch ``conditions`` select and every
    ``AWS::NoValue`` dropped (from a mapping: the key; from a list: the element)."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, when_true, when_false = node["Fn::If"]
            return pick_conditions(when_true if conditions[name] else when_false, conditions)
        if node == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        picked = {k: pick_conditions(v, conditions) for k, v in node.items()}
        return {k: v for k, v in picked.items() if v is not _NO_VALUE}
    if isinstance(node, list):
        return [v for v in (pick_conditions(item, conditions) for item in node) if v is not _NO_VALUE]
    return node
