"""Typed CC-FS errors (shared/ccfs-protocol.md §7) and redaction of secrets in messages.

Every error names the operation and, where there is one, the result code. Messages never carry
an Authorization value or a pre-signed URL's query string: pass URLs through :func:`redact_url`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "PERMANENT_CODES",
    "RESULT_DESCRIPTIONS",
    "TRANSIENT_CODES",
    "CcfsAuthError",
    "CcfsError",
    "CcfsNotFound",
    "CcfsPermanentError",
    "CcfsProtocolError",
    "CcfsTransientError",
    "CcfsUnknownResultCode",
    "error_for_code",
    "is_documented_code",
    "redact",
    "redact_url",
]

SUCCESS = "0"
NOT_FOUND = "0300012"
TRANSIENT_CODES = frozenset({"0300008", "0300009"})
PERMANENT_CODES = frozenset({f"030000{i}" for i in range(1, 8)} | {"0300010"})

RESULT_DESCRIPTIONS: dict[str, str] = {
    "0300001": "a parameter is null",
    "0300002": "a parameter is empty",
    "0300003": "a parameter is too long",
    "0300004": "a parameter is malformed",
    "0300005": "a parameter is too short",
    "0300006": "wrong version",
    "0300007": "the request body is empty",
    "0300008": "download flow-control threshold reached",
    "0300009": "query flow-control threshold reached",
    "0300010": "a date inside a file name is invalid",
    "0300012": "no data found",
}


class CcfsError(Exception):
    """Base class: ``operation`` is the CC-FS operation, ``code`` the resultCode or HTTP status."""

    retryable = False

    def __init__(self, operation: str, message: str, code: str | None = None) -> None:
        self.operation = operation
        self.code = code
        detail = f" (resultCode {code})" if code and code.isdigit() and len(code) == 7 else ""
        super().__init__(f"{operation}: {message}{detail}")


class CcfsTransientError(CcfsError):
    """5xx, timeouts, resets, flow control (0300008/0300009): worth retrying later."""

    retryable = True


class CcfsUnknownResultCode(CcfsTransientError):
    """A resultCode the documentation does not list (§7: "retry a bounded number of times with
    backoff, alarm; never fail a window on first sight"). Transient, so the client retries it with
    backoff and callers treat it as CC-FS being unwell (the window stays CLAIMED for the reconciler,
    the recording message is redelivered by SQS up to maxReceiveCount); the client reports every
    sighting to its ``on_unknown_code`` hook, which the exporter turns into the alarmed metric
    ``CcfsUnknownResultCode``. Bounded: the reconciler gives a window up after STALLED_JOB_HOURS, a
    recording is recorded FAILED on its last delivery."""


class CcfsPermanentError(CcfsError):
    """0300001-0300007, 0300010: the request must be fixed, not retried."""


class CcfsNotFound(CcfsError):
    """0300012: no data for the request. Record it; do not retry forever."""


class CcfsAuthError(CcfsPermanentError):
    """HTTP 401: the signature was rejected (wrong ak/sk or clock skew). Alarm, don't retry."""


class CcfsProtocolError(CcfsError):
    """The reply did not match the protocol (wrong content type, undecodable JSON, bad shape)."""


def is_documented_code(code: str) -> bool:
    """Whether §7 documents this resultCode (``0`` included)."""
    return code == SUCCESS or code in RESULT_DESCRIPTIONS


def error_for_code(operation: str, code: str, desc: str = "") -> CcfsError:
    """Map a non-zero resultCode to its typed error (undocumented codes: :class:`CcfsUnknownResultCode`)."""
    meaning = RESULT_DESCRIPTIONS.get(code, "undocumented result code")
    message = f"{meaning}: {desc}" if desc and desc != meaning else meaning
    if code in TRANSIENT_CODES:
        return CcfsTransientError(operation, message, code)
    if code == NOT_FOUND:
        return CcfsNotFound(operation, message, code)
    if code in PERMANENT_CODES:
        return CcfsPermanentError(operation, message, code)
    return CcfsUnknownResultCode(operation, message, code)


def redact_url(url: str) -> str:
    """Drop the query string (the pre-signed credential) and any userinfo from a URL."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        return "<unparseable url>"
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6 literal: keep its brackets
        netloc = f"[{netloc}]"
    if port:
        netloc = f"{netloc}:{port}"
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


_URL_IN_TEXT = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)
_AUTH_IN_TEXT = re.compile(r"auth-v2/[^\s\"']+")


def redact(text: str) -> str:
    """Redact URLs' query strings and auth-v2 values found anywhere in ``text``."""
    text = _AUTH_IN_TEXT.sub("auth-v2/<redacted>", text)
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
