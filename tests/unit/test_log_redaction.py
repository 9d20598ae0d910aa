"""exporter.log_redaction: library log lines lose their credentials, other records stay as they were.

The lines below are what botocore 1.44 and httpx 0.28 actually log (shapes copied from a DEBUG run
of tests/integration/test_no_secrets_in_logs.py, values replaced).
"""

from __future__ import annotations

import logging

import pytest

from exporter import aws  # noqa: F401  (importing it installs the redaction)
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
