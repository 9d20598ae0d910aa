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

That factory sees the message and the traceback text of a record, but not what the Powertools
formatter renders later: it formats ``exc_info`` again itself, and ``extra=`` fields are never part
of the message. So the product's Logger (``exporter.aws.logger``, and the stdlib loggers it shares
its handler with) writes through :class:`RedactingFormatter`, which scrubs every field of the
finished log record — keys, values, the exception and its stack trace — right before it becomes
the JSON line: whatever a call site passes, the line that leaves the process is clean.

Secrets without a recognisable shape (the CC-FS ``sk``) are registered with :func:`mask` where they
are read and replaced by value wherever they appear.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.types import LogRecord

from ccfs.errors import redact

__all__ = ["RedactingFormatter", "install", "mask", "scrub"]

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
# Structured fields whose whole value is a credential, whatever it looks like (lower case).
_SECRET_KEYS = frozenset({"authorization", "x-amz-security-token", "secretstring", "secretbinary", "password"})
_MIN_MASKED = 8  # shorter values would mask ordinary words
_masked: set[str] = set()


def mask(secret: str) -> None:
    """Replace ``secret`` by ``<redacted>`` in every log line from now on (e.g. the CC-FS sk, which
    has no shape a pattern could find). Values under 8 characters are ignored."""
    if len(secret) >= _MIN_MASKED:
        _masked.add(secret)


def scrub(text: str) -> str:
    """``text`` without credentials (see the module docstring)."""
    for secret in tuple(_masked):
        if secret in text:
            text = text.replace(secret, _REDACTED)
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


def _secret_field(key: object, siblings: dict[Any, Any]) -> bool:
    """A field whose value is a credential: by its name, or the ``sk`` of an ``{ak, sk}`` pair (a
    lone ``sk`` is the jobs table's sort key, not a secret)."""
    if not isinstance(key, str):
        return False
    name = key.lower()
    return name in _SECRET_KEYS or (name == "sk" and any(str(k).lower() == "ak" for k in siblings))


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter that scrubs the finished record before it is serialised.

    ``format`` builds the record (message, ``extra=`` keys, appended keys, the re-rendered
    ``exception`` and ``stack_trace``) and hands it to :meth:`serialize`, the one exit every line
    takes: every string in it, at any depth, goes through :func:`scrub`, and values the JSON encoder
    would turn into text (``json_default``) are turned into text here first, so they are scrubbed
    too. Lines without credentials serialise exactly as before.
    """

    def serialize(self, log: LogRecord) -> str:
        return super().serialize(self._clean(log))

    def _clean(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            return scrub(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if depth > 20:  # a pathological structure: its text, scrubbed
            return scrub(str(value))
        if isinstance(value, dict):
            return {
                (scrub(k) if isinstance(k, str) else k): _REDACTED
                if _secret_field(k, value) and v
                else self._clean(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._clean(v, depth + 1) for v in value]
        converted = self.json_default(value)
        if isinstance(converted, (str, dict, list, tuple)):
            return self._clean(converted, depth + 1)
        return scrub(str(converted))
