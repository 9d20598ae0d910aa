"""Keep credentials out of log lines written by the libraries the handlers use.

The product's own log lines never carry a secret (``ccfs.errors.redact`` / ``redact_url``), but its
libraries log on their own: ``httpx`` logs every request URL at INFO, so a pre-signed recording
URL's query (``AccessKeyId``, ``Signature``: a credential for 8 hours) reaches the log as soon as
the root logger is at INFO; ``botocore`` at DEBUG logs every signed request (the SigV4
``Authorization`` and session token) and every reply, the ak/sk secret of ``GetSecretValue``
included. Lambda's ``ApplicationLogLevel`` sets exactly that root level, so one setting would put
credentials in CloudWatch.

:func:`install` wraps the process's log-record factory: every record, from any logger, is
rewritten before any handler sees it when its text holds an ``auth-v2`` value, a URL query, an
``Authorization``/security-token header value or a Secrets Manager secret. Records without such
text are left exactly as they were.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ccfs.errors import redact

__all__ = ["install", "scrub"]

_REDACTED = "<redacted>"
# A Secrets Manager reply, however it is quoted or escaped: everything after the secret's key.
_SECRET_VALUE = re.compile(r"(\"?Secret(?:String|Binary)\"?)[\s\S]*")
# A header value in a repr'd dict: 'Authorization': b'AWS4-HMAC-SHA256 ... Signature=...'
_QUOTED_HEADER = re.compile(
    r"((?:authorization|x-amz-security-token)['\"]?\s*[:=]\s*b?)(['\"])(?:(?!\2).)*\2", re.IGNORECASE
)
# The same headers in a canonical request or a plain "name: value" line.
_PLAIN_HEADER = re.compile(r"^((?:authorization|x-amz-security-token)\s*[:=]\s*)\S.*$", re.IGNORECASE | re.MULTILINE)
# A query parameter of a pre-signed URL outside a full URL (redact() handles URLs): name and value.
_QUERY_CREDENTIAL = re.compile(
    r"(?:AccessKeyId|Signature|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=[^&\s'\"]*", re.IGNORECASE
)
_MARKER = "_aicc_redacting"


def scrub(text: str) -> str:
    """``text`` without credentials (see the module docstring)."""
    text = _SECRET_VALUE.sub(rf"\1 {_REDACTED}", text)
    text = _QUOTED_HEADER.sub(rf"\1\2{_REDACTED}\2", text)
    text = _PLAIN_HEADER.sub(rf"\1{_REDACTED}", text)
    text = redact(text)
    return _QUERY_CREDENTIAL.sub(_REDACTED, text)


def install() -> None:
    """Wrap the log-record factory once per process (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, _MARKER, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken log call is logging's to report, not ours
            return record
        clean = scrub(text)
        if clean != text:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return record

    setattr(factory, _MARKER, True)
    logging.setLogRecordFactory(factory)
