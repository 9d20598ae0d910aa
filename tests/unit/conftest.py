"""Fixtures shared by tests/unit modules: pytest finds them here, so no test module imports another's.

``harness``: the real callback handler on moto with its clock pinned (``callback_helpers.NOW``);
``logs_to_capsys``: the Powertools log lines in ``capsys``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import CurrentStdout, load_handler
from tests.unit.callback_helpers import Harness


@pytest.fixture
def harness(aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Harness:
    from exporter.config import get_settings

    module = load_handler("callback")
    h = Harness(module, lambda_context, get_settings(), aws.bill_queue_url)
    monkeypatch.setattr(module, "utc_now", lambda: h.now[0])
    return h


@pytest.fixture
def logs_to_capsys(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Point the Powertools log handler (created at the first import, bound to the stdout of that
    moment) at the current stdout, so ``capsys`` sees the JSON log lines."""
    from exporter.aws import logger

    handler = logger.registered_handler
    previous = handler.stream  # type: ignore[attr-defined]
    handler.stream = CurrentStdout()  # type: ignore[attr-defined]
    yield
    handler.stream = previous  # type: ignore[attr-defined]
