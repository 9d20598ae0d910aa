"""No secret in any log line: the whole in-process happy path (schedule tick → queryBillData →
signed callback → bill → recordings over pre-signed URLs → manifests) with every logger at DEBUG.

Captured: file descriptors 1 and 2 (``capfd``: the Powertools JSON lines, anything printed) and
every log record of every logger at DEBUG (``caplog``: the root logger and, explicitly,
``httpx``, ``httpcore``, ``botocore``, ``boto3``, ``urllib3``, ``s3transfer``, Powertools, the
product's ``ccfs``/``exporter`` loggers), message *and* traceback. Production runs at WARNING for
third-party loggers (Lambda's default), but an operator may switch ``ApplicationLogLevel`` to
DEBUG: nothing may leak even then.

The product's own call sites are checked too, including careless ones that no review may catch: a
``logger.exception`` whose exception quotes a real pre-signed URL, a real Authorization value and the
sk, and a line whose ``extra=`` fields carry the same (the Powertools formatter renders both itself,
after any record-level redaction).

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
    """What a stdlib handler (Lambda's own, pytest's) prints for the record: like
    ``logging.Formatter.format``, the cached ``exc_text`` when there is one, else the traceback
    rendered from ``exc_info``. (An exception object may hold a secret, as in
    ``_careless_call_sites``: what must never hold one is a line that leaves the process.)"""
    text = f"{record.name} {record.levelname} {record.getMessage()}"
    if record.exc_text:
        text += "\n" + record.exc_text
    elif record.exc_info:
        text += "\n" + "".join(traceback.format_exception(*record.exc_info))
    return text


CARELESS = ("careless exception line", "careless extra line")


def _careless_call_sites(pipe: Any) -> None:
    """Log, through the product's logger, what a careless call site could: a real pre-signed URL of
    this run, a real auth-v2 Authorization value and the sk, in an exception and in ``extra=``."""
    from datetime import datetime, time, timedelta

    from ccfs.auth import sign
    from exporter.aws import logger
    from exporter.ccfs_factory import ccfs_client
    from exporter.config import get_settings

    call = next(c for c in pipe.sim.calls("acct001", demo_day()) if c.recordings)
    begin = datetime.combine(call.begin.date(), time.min)
    (url, *_) = ccfs_client(get_settings(), "acct001").get_record_file_urls(
        call.call_id, begin, begin + timedelta(days=1)
    )
    assert "Signature=" in url  # a real credential-bearing URL, or this test proves nothing
    authorization = sign(pipe.sim.ak, pipe.sim.sk, "POST", "/CCFS/x", {"host": "ccfs"}, b"{}")
    try:
        raise RuntimeError(f"GET {url} failed (Authorization: {authorization}, sk={pipe.sim.sk})")
    except RuntimeError:
        logger.exception(CARELESS[0])
    logger.warning(
        CARELESS[1],
        extra={
            "url": url,
            "headers": {"Authorization": authorization},
            "credentials": {"ak": pipe.sim.ak, "sk": pipe.sim.sk},
            "note": f"signed with {pipe.sim.sk}",
        },
    )


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
    _careless_call_sites(pipe)

    out = capfd.readouterr()
    records = [_record_text(r) for r in caplog.records]
    lines = out.out.splitlines() + out.err.splitlines() + [ln for text in records for ln in text.splitlines()]
    counts = assert_s3_equals_truth(pipe, tenants, day)
    assert counts["recordings"] > 0

    # The capture really saw the whole run, the product's lines and the libraries' DEBUG lines.
    joined = "\n".join(lines)
    for expected in ("callback applied", "bill exported", "recording copied", "job completed", *CARELESS):
        assert expected in joined, f"capture is blind: no {expected!r} line"
    by_logger = {r.name.split(".")[0] for r in caplog.records}
    assert {"botocore", "httpx"} <= by_logger, by_logger

    secrets = {"sk": pipe.sim.sk}
    leaks = [
        (what, line[:300])
        for line in lines
        for what in (*FORBIDDEN_TEXT, *secrets)
        if (secrets.get(what) or what) in line.replace("auth-v2/<redacted>", "")
    ]
    assert leaks == [], "\n".join(f"{what}: {line}" for what, line in leaks[:20])
