"""exporter.log_redaction: library log lines lose their credentials, other records stay as they were.

The lines below are what botocore 1.44 and httpx 0.28 actually log (shapes copied from a DEBUG run
of tests/integration/test_no_secrets_in_logs.py, values replaced).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from exporter import aws  # importing it installs the redaction
from exporter.log_redaction import install, scrub

SK = "5dada6bf7eb02a2e923a8963321c0ffe"
SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=ASIAXXXXXXXX/20261121/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=9e1f00ab"
)
LINES = {
    "botocore.parsers": 'Response body:\nb\'{"ARN": "arn:aws:secretsmanager:us-east-1:1:secret:aicc/ccfs-x", '
    '"Name": "aicc/ccfs", "SecretString": "{\\\\"ak\\\\": \\\\"demo-ak\\\\", \\\\"sk\\\\": \\\\"' + SK + '\\\\"}"}\'',
    "botocore.endpoint": "Sending http request: <AWSPreparedRequest stream_output=False, method=POST, "
    "url=https://dynamodb.us-east-1.amazonaws.com/, headers={'X-Amz-Target': b'DynamoDB_20120810.GetItem', "
    f"'X-Amz-Security-Token': b'IQoJb3JpZ2luX2VjEXAMPLETOKEN', 'Authorization': b'{SIGV4}', "
    "'Content-Length': '95'}>",
    "botocore.auth": "CanonicalRequest:\nPOST\n/\n\ncontent-type:application/x-amz-json-1.0\n"
    "host:dynamodb.us-east-1.amazonaws.com\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLETOKEN\n",
    "httpx": "HTTP Request: GET https://bucket.obs.myhuaweicloud.com/rec/0903379.wav?AccessKeyId=AKEXAMPLE"
    '&Expires=1795280000&Signature=c2lnbmF0dXJl "HTTP/1.1 200 OK"',
    "urllib3.connectionpool": 'https://s3.amazonaws.com:443 "GET /b/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=abc '
    'HTTP/1.1" 200 3',
    "ccfs.client": "CC-FS retrying: Authorization: auth-v2/demo-ak/2026-11-21T10:00:00Z/host/" + "a" * 64,
}
NEVER = (
    SK,
    "Signature=",
    "AccessKeyId=",
    "X-Amz-Signature",
    "X-Amz-Credential=",
    "auth-v2/demo-ak",
    "IQoJb3J",
    "9e1f00ab",
)


@pytest.mark.parametrize(("name", "text"), LINES.items(), ids=LINES.keys())
def test_library_lines_lose_their_credentials(name: str, text: str) -> None:
    clean = scrub(text)
    for secret in NEVER:
        assert secret not in clean, (secret, clean)
    assert "<redacted>" in clean


@pytest.mark.parametrize(("name", "text"), LINES.items(), ids=LINES.keys())
def test_records_of_any_logger_are_scrubbed_before_handlers_see_them(
    name: str, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=name)
    logging.getLogger(name).debug("%s", text)
    logging.getLogger(name).debug(text.replace("%", "%%"))
    assert len(caplog.records) == 2
    for record in caplog.records:
        for secret in NEVER:
            assert secret not in record.getMessage()
    assert caplog.text.count("<redacted>") >= 2


def test_tracebacks_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise RuntimeError(LINES["httpx"])
    except RuntimeError:
        logging.getLogger("httpx").exception("request failed")
    assert "Signature=" not in caplog.text and "AccessKeyId=" not in caplog.text
    assert "request failed" in caplog.text


def test_records_without_credentials_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="exporter.test")
    message = {"response_id": "9239cb50", "key": "recordings/account_id=acct001/x.wav"}
    logging.getLogger("exporter.test").info(message)
    logging.getLogger("exporter.test").info("copied %s (%d bytes) from %s", "k", 3, "https://obs.example/r.wav")
    first, second = caplog.records
    assert first.msg is message  # a dict message stays a dict (Powertools renders it as JSON)
    assert second.args == ("k", 3, "https://obs.example/r.wav")


def test_install_is_idempotent() -> None:
    factory = logging.getLogRecordFactory()
    install()
    install()
    assert logging.getLogRecordFactory() is factory


# -------------------------------------------------------------- the product logger's JSON lines
# Powertools renders ``exc_info`` itself and writes ``extra=`` fields as keys: what the record
# factory above cleaned never covered those. The line that leaves the process must be clean anyway.

PRESIGNED = (
    "https://bucket.obs.myhuaweicloud.com/rec/0903379.wav?AccessKeyId=AKEXAMPLE&Expires=1795280000"
    "&Signature=c2lnbmF0dXJl"
)
S3_PRESIGNED = "https://b.s3.amazonaws.com/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=abc&X-Amz-Security-Token=IQoJb3J"
AUTH_V2 = "auth-v2/demo-ak/2026-11-21T10:00:00Z/host/" + "a" * 64


@pytest.fixture
def product_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines ``exporter.aws.logger`` writes, parsed (its handler's stream swapped)."""
    handler = aws.logger.registered_handler
    stream = io.StringIO()
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


def _assert_clean(line: dict[str, Any]) -> str:
    text = json.dumps(line, ensure_ascii=False)
    for secret in (*NEVER, "c2lnbmF0dXJl", "AKEXAMPLE", "a" * 64):
        assert secret not in text, (secret, text)
    return text


def test_an_exception_carrying_a_presigned_url_is_scrubbed_in_the_json_line(product_lines: Any) -> None:
    try:
        raise RuntimeError(f"GET {PRESIGNED} failed; headers {{'Authorization': '{SIGV4}'}}; {AUTH_V2}")
    except RuntimeError:
        aws.logger.exception("recording copy failed")
    (line,) = product_lines()
    text = _assert_clean(line)
    assert line["message"] == "recording copy failed"
    assert line["exception_name"] == "RuntimeError"
    assert "https://bucket.obs.myhuaweicloud.com/rec/0903379.wav?<redacted>" in line["exception"]
    assert "<redacted>" in json.dumps(line["stack_trace"])
    assert "test_an_exception_carrying_a_presigned_url" in text  # the traceback itself is kept


def test_extra_fields_are_scrubbed_in_the_json_line(product_lines: Any) -> None:
    import httpx

    aws.logger.warning(
        "request failed",
        extra={
            "url": PRESIGNED,
            "request": {"headers": {"Authorization": SIGV4, "X-Amz-Security-Token": "IQoJb3JpZ2luX2Vj"}},
            "urls": [S3_PRESIGNED, httpx.URL(PRESIGNED)],  # a non-JSON value is rendered, then scrubbed
            "ccfs_auth": AUTH_V2,
            "secret": {"ak": "demo-ak", "sk": SK},
            "SecretString": f'{{"ak": "demo-ak", "sk": "{SK}"}}',
            "key": {"pk": "JOB#9239cb50", "sk": "REC#1637742300-27#0903379"},  # a table key stays readable
        },
    )
    (line,) = product_lines()
    _assert_clean(line)
    assert line["url"] == "https://bucket.obs.myhuaweicloud.com/rec/0903379.wav?<redacted>"
    assert line["request"]["headers"] == {"Authorization": "<redacted>", "X-Amz-Security-Token": "<redacted>"}
    assert line["urls"][1] == "https://bucket.obs.myhuaweicloud.com/rec/0903379.wav?<redacted>"
    assert line["secret"] == {"ak": "demo-ak", "sk": "<redacted>"}  # the ak is an identifier
    assert line["key"] == {"pk": "JOB#9239cb50", "sk": "REC#1637742300-27#0903379"}


def test_a_masked_value_never_appears_whatever_its_shape(product_lines: Any) -> None:
    from exporter.log_redaction import mask

    sk = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
    mask(sk)
    mask("short")  # too short to mask without damaging ordinary text
    aws.logger.info(f"rotated to {sk}", extra={"note": ("old", sk), "nested": [{"x": sk}]})
    (line,) = product_lines()
    assert sk not in json.dumps(line) and line["message"] == "rotated to <redacted>"
    assert scrub("a short word") == "a short word"


def test_lines_without_credentials_serialise_exactly_as_before() -> None:
    from exporter.log_redaction import RedactingFormatter

    record = logging.LogRecord("aicc-export", logging.INFO, __file__, 1, "copied %s", ("k",), None)
    record.__dict__.update({"size": 3, "when": __import__("datetime").date(2026, 11, 21), "keys": ["a", 1, None]})
    product = aws.logger.registered_handler.formatter
    assert isinstance(product, RedactingFormatter)
    assert RedactingFormatter(service="x").format(record) == LambdaPowertoolsFormatter(service="x").format(record)
