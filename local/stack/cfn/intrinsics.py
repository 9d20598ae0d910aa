"""The intrinsic-function resolver: ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::If`` and the other
functions the template's resources use, evaluated against parameter values and the physical
names created so far; and the reference walkers that order resources by what they refer to.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from local.stack.cfn.template import TemplateError

_NO_VALUE = object()


class Unresolvable(Exception):
    """An intrinsic function refers to something the local stack does not model."""


# ---------------------------------------------------------------------------- intrinsics


_SUB_VAR = re.compile(r"\$\{([^}]+)\}")


@dataclass
class Resolver:
    """Evaluates CloudFormation intrinsics against parameter values and created resources."""

    parameters: dict[str, Any]
    conditions: dict[str, Any]
    mappings: dict[str, Any] = field(default_factory=dict)
    physical: dict[str, str] = field(default_factory=dict)  # logical id -> Ref value
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)  # logical id -> GetAtt values
    _condition_cache: dict[str, bool] = field(default_factory=dict)

    def condition(self, name: str) -> bool:
        if name not in self._condition_cache:
            if name not in self.conditions:
                raise TemplateError(f"unknown condition {name}")
            self._condition_cache[name] = bool(self.resolve(self.conditions[name]))
        return self._condition_cache[name]

    def resolve(self, value: Any) -> Any:
        """The value with intrinsics evaluated; ``AWS::NoValue`` entries removed."""
        result = self._resolve(value)
        return None if result is _NO_VALUE else result

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self._resolve(v) for v in value]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = self._FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, arg)
        out = {}
        for key, item in value.items():
            resolved = self._resolve(item)
            if resolved is not _NO_VALUE:
                out[key] = resolved
        return out

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name]
        raise Unresolvable(f"Ref {name}")

    def _get_att(self, arg: Any) -> Any:
        logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
        attribute = self._resolve(attribute)
        try:
            return self.attributes[logical_id][attribute]
        except KeyError:
            raise Unresolvable(f"GetAtt {logical_id}.{attribute}") from None

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self._resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def _one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] not in self.parameters:
                return str(self._get_att(name.split(".", 1)))
            return str(self._ref(name))

        return _SUB_VAR.sub(_one, text)

    def _join(self, arg: list[Any]) -> str:
        sep, items = arg
        return str(sep).join(str(v) for v in self._resolve(items))

    def _if(self, arg: list[Any]) -> Any:
        name, when_true, when_false = arg
        return self._resolve(when_true if self.condition(name) else when_false)

    def _select(self, arg: list[Any]) -> Any:
        index, items = arg
        return self._resolve(items)[int(self._resolve(index))]

    def _split(self, arg: list[Any]) -> list[str]:
        sep, text = arg
        return str(self._resolve(text)).split(sep)

    def _find_in_map(self, arg: list[Any]) -> Any:
        name, top, second = (self._resolve(a) for a in arg)
        return self.mappings[name][top][second]

    def _equals(self, arg: list[Any]) -> bool:
        left, right = (self._resolve(a) for a in arg)
        return str(left) == str(right)

    def _not(self, arg: list[Any]) -> bool:
        return not self._resolve(arg[0])

    def _and(self, arg: list[Any]) -> bool:
        return all(self._resolve(a) for a in arg)

    def _or(self, arg: list[Any]) -> bool:
        return any(self._resolve(a) for a in arg)

    def _condition_ref(self, name: str) -> bool:
        return self.condition(name)

    def _unsupported(self, arg: Any) -> Any:
        raise Unresolvable(f"unsupported intrinsic {arg!r}")

    def _base64(self, arg: Any) -> str:
        import base64

        return base64.b64encode(str(self._resolve(arg)).encode()).decode()

    _FUNCTIONS: ClassVar[dict[str, Callable[[Resolver, Any], Any]]] = {
        "Ref": _ref,
        "Fn::GetAtt": _get_att,
        "Fn::Sub": _sub,
        "Fn::Join": _join,
        "Fn::If": _if,
        "Fn::Select": _select,
        "Fn::Split": _split,
        "Fn::FindInMap": _find_in_map,
        "Fn::Equals": _equals,
        "Fn::Not": _not,
        "Fn::And": _and,
        "Fn::Or": _or,
        "Condition": _condition_ref,
        "Fn::Base64": _base64,
        "Fn::ImportValue": _unsupported,
        "Fn::GetAZs": _unsupported,
        "Fn::Cidr": _unsupported,
        "Fn::Transform": _unsupported,
    }


def references(value: Any) -> set[str]:
    """Logical names (resources or parameters) a value refers to through Ref/GetAtt/Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" and isinstance(arg, str):
                return {arg}
            if key == "Fn::GetAtt":
                name = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
                return {name}
            if key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                local_vars = set(arg[1]) if isinstance(arg, list) else set()
                for match in _SUB_VAR.finditer(text):
                    name = match.group(1)
                    if not name.startswith("!") and name not in local_vars:
                        found.add(name.split(".", 1)[0])
                if isinstance(arg, list):
                    found |= references(arg[1])
                return found
        for item in value.values():
            found |= references(item)
    return found


def condition_references(value: Any) -> set[str]:
    """Condition names used by Fn::If / {"Condition": name} inside a value."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= condition_references(item)
    elif isinstance(value, dict):
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Fn::If" and isinstance(arg, list) and arg:
                found.add(arg[0])
            elif key == "Condition" and isinstance(arg, str):
                return {arg}
        for item in value.values():
            found |= condition_references(item)
    return found
