"""No secret in any log line: the whole in-process happy path (schedule tick → queryBillData →
signed callback → bill → recordings over pre-signed URLs → manifests) with every logger at DEBUG.

Captured: file descriptors 1 and 2 (``capfd``: the Powertools JSON lines, anything printed) and
every log record of every logger at DEBUG (``caplog``: the root logger and, explicitly,
``httpx``, ``httpcore``, ``botocore``, ``boto3``, ``urllib3``, ``s3transfer``, Powertools, the
product's ``ccfs``/``exporter`` loggers), message *and* traceback. Production runs at WARNING for
third-party loggers (Lambda's default), but an operator may switch ``ApplicationLogLevel`` to
DEBUG: nothing may leak even then.

Never allowed anywhere: the sk, any ``auth-v2/`` value (an Authorization header), and a pre-signed
URL's query (``Signature=``, ``AccessKeyId=``); the ak is allowed (it is an identifier).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from local.ccfs_simulator import TenantSpec
from tests.conftest import CurrentStdout
from tests.integration.pipeline_harness import ZONE, assert_s3_equals_truth, demo_day

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.pipeline_harness"]  # the pipeline_factory fixture

LOGGERS = (
    "",
    "httpx",
    "httpcore",
    "botocore",
    "boto3",
    "urllib3",
    "s3transfer",
    "aws_lambda_powertools",
    "ccfs",
    "exporter",
    "aicc-export",
)
FORBIDDEN_TEXT = ("auth-v2/", "Signature=", "AccessKeyId=")


@pytest.fixture
def everything_at_debug(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every logger at DEBUG into ``caplog``; the Powertools handlers (propagate=False, their own
    stdout stream bound at first import) write to the current, captured stdout."""
    from exporter.aws import logger as powertools_logger

    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    previous_level = powertools_logger.log_level
    powertools_logger.setLevel("DEBUG")
    # Only the Powertools handlers: after other tests in the same xdist worker, pytest's own
    # LogCaptureHandlers are found on "ccfs" and "exporter" too (seen), and swapping their stream
    # broke pytest's log report ("'_CurrentStdout' object has no attribute 'getvalue'").
    handlers = {h for lg in (logging.getLogger("aicc-export"), logging.getLogger("ccfs"), logging.getLogger("exporter"))
                for h in lg.handlers
                if isinstance(h.formatter, LambdaPowertoolsFormatter) and hasattr(h, "stream")}  # fmt: skip
    streams = {h: h.stream for h in handlers}
    for handler in handlers:
        handler.stream = CurrentStdout()  # type: ignore[attr-defined]
    yield
    for handler, stream in streams.items():
        handler.stream = stream  # type: ignore[attr-defined]
    powertools_logger.setLevel(previous_level)


def _record_text(record: logging.LogRecord) -> str:
    text = f"{record.name} {record.levelname} {record.getMessage()}"
    if record.exc_info:
        text += "\n" + "".join(traceback.format_exception(*record.exc_info))
    if record.exc_text:
        text += "\n" + record.exc_text
    return text


def test_happy_path_logs_no_secret_at_debug(
    pipeline_factory: Any,
    everything_at_debug: None,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    tenants = [TenantSpec("acct001", tz=ZONE, calls_per_day=15)]
    day = demo_day()
    pipe = pipeline_factory(tenants, day)  # test set-up (it writes the secret itself): not checked
    capfd.readouterr()
    caplog.clear()

    pipe.run()  # the product, from the schedule tick to the last recording

    out = capfd.readouterr()
    records = [_record_text(r) for r in caplog.records]
    lines = out.out.splitlines() + out.err.splitlines() + [ln for text in records for ln in text.splitlines()]
    counts = assert_s3_equals_truth(pipe, tenants, day)
    assert counts["recordings"] > 0

    # The capture really saw the whole run, the product's lines and the libraries' DEBUG lines.
    joined = "\n".join(lines)
    for expected in ("callback applied", "bill exported", "recording copied", "job completed"):
        assert expected in joined, f"capture is blind: no {expected!r} line"
    by_logger = {r.name.split(".")[0] for r in caplog.records}
    assert {"botocore", "httpx"} <= by_logger, by_logger

    secrets = {"sk": pipe.sim.sk}
    leaks = [
        (what, line[:300])
        for line in lines
        for what in (*FORBIDDEN_TEXT, *secrets)
        if (secrets.get(what) or what) in line
    ]
    assert leaks == [], "\n".join(f"{what}: {line}" for what, line in leaks[:20])
