"""Placeholder: the handler arrives with issue 4."""

from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise NotImplementedError("handler not built yet (issue 4)")
