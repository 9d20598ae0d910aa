"""The CC-FS "C2 auth-v2" request signature (shared/ccfs-protocol.md §2).

Header value: ``auth-v2/{ak}/{timestamp}/{signedHeaders}/{signature}``. The body itself is part
of the canonical request (not a hash of it), so a caller must sign exactly the bytes it sends.

Hand-written on purpose: the scheme is the vendor's own (not SigV4, not OAuth), and no library
implements it. The test vectors of the reference pin it byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta

__all__ = ["SCHEME", "SignatureError", "canonical_request", "pct", "sign", "verify"]

SCHEME = "auth-v2"
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# \Z, not $ ($ also matches before a trailing newline); ASCII, or \d would accept any Unicode digit.
_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z", re.ASCII)
_SIGNATURE_RE = re.compile(r"^[0-9a-f]{64}\Z")
_AK_RE = re.compile(r"^[A-Za-z0-9_.\-~+=@]{1,128}\Z")
_HEADER_NAME_RE = re.compile(r"^[a-z0-9!#$%&'*+\-.^_`|~]+\Z")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
Query = Mapping[str, str] | Iterable[tuple[str, str]]


class SignatureError(Exception):
    """An Authorization value was rejected.

    ``reason`` is a short machine-readable code (used as a metric dimension); the message says
    what was wrong without repeating the Authorization value or any secret.
    """

    REASONS = (
        "malformed",
        "unknown_ak",
        "stale_timestamp",
        "future_timestamp",
        "host_not_signed",
        "missing_signed_header",
        "content_length_mismatch",
        "signature_mismatch",
    )

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def pct(value: str | bytes) -> str:
    """Percent-encode every byte outside ``A-Z a-z 0-9 - . _ ~`` as upper-case ``%XX``."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in data)


def _hmac_hex(key: str, msg: str) -> str:
    return hmac.new(key.encode("utf-8"), msg.encode("utf-8"), hashlib.sha256).hexdigest()


def _pairs(items: Headers | Query | None) -> list[tuple[str, str]]:
    if items is None:
        return []
    if isinstance(items, Mapping):
        return [(str(k), str(v)) for k, v in items.items()]
    return [(str(k), str(v)) for k, v in items]


def _body_bytes(body: str | bytes | None) -> bytes:
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _format_timestamp(timestamp: datetime) -> str:
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware (e.g. datetime.now(UTC))")
    return timestamp.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)


def canonical_request(
    method: str,
    path: str,
    signed_headers: list[tuple[str, str]],
    body: bytes,
    query: list[tuple[str, str]] | None = None,
) -> tuple[str, str]:
    """Return ``(signedHeaders, canonicalRequest)`` for lower-cased, name-sorted headers."""
    names = ";".join(name for name, _ in signed_headers)
    parts = [method.upper(), path]
    if query:
        parts.append("&".join(sorted(f"{pct(k)}={pct(v)}" for k, v in query)))
    parts.append(names)
    parts.append("\n".join(f"{pct(name)}:{pct(value)}" for name, value in signed_headers))
    return names, "\n".join(parts) + "\n" + (pct(body) if body else "")


def _signature(ak: str, sk: str, timestamp: str, names: str, canonical: str) -> str:
    prefix = f"{SCHEME}/{ak}/{timestamp}/{names}"
    signing_key = _hmac_hex(sk, prefix)
    return _hmac_hex(signing_key, canonical)


def sign(
    ak: str,
    sk: str,
    method: str,
    path: str,
    headers: Headers,
    body: str | bytes | None,
    timestamp: datetime | None = None,
    query: Query | None = None,
) -> str:
    """Return the Authorization value for a request.

    ``headers`` are the headers to sign (names in any case; CC-FS expects at least ``host``).
    ``body`` is exactly what will be sent; a ``str`` is signed as its UTF-8 bytes.
    """
    if not _AK_RE.match(ak):
        raise ValueError("ak must be 1-128 characters without '/' or spaces")
    signed: dict[str, str] = {}
    for name, value in _pairs(headers):
        lower = name.lower()
        if not _HEADER_NAME_RE.match(lower):
            raise ValueError(f"invalid header name {name!r}: it could not be verified")
        if lower in signed:
            raise ValueError(f"header {lower!r} given twice")
        signed[lower] = value
    if not signed:
        raise ValueError("at least one header (host) must be signed")
    ts = _format_timestamp(timestamp or datetime.now(UTC))
    names, canonical = canonical_request(method, path, sorted(signed.items()), _body_bytes(body), _pairs(query) or None)
    return f"{SCHEME}/{ak}/{ts}/{names}/{_signature(ak, sk, ts, names, canonical)}"


def verify(
    authorization: str | None,
    method: str,
    path: str,
    headers: Headers,
    body: str | bytes | None,
    secret_for: Callable[[str], str | None],
    now: datetime | None = None,
    max_skew: int = 900,
    query: Query | None = None,
) -> str:
    """Check an Authorization value against the request as received; return its ak.

    ``headers`` are all received headers (names compared case-insensitively); ``path`` is the
    path as the sender addressed it (behind API Gateway: ``requestContext.path``).
    Raises :class:`SignatureError` with a specific reason.
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(UTC))")
    if not authorization:
        raise SignatureError("malformed", "no Authorization header")
    parts = authorization.split("/")
    if len(parts) != 5 or parts[0] != SCHEME:
        raise SignatureError("malformed", f"Authorization is not '{SCHEME}/ak/timestamp/signedHeaders/signature'")
    _, ak, ts, names, signature = parts
    if not _AK_RE.match(ak):
        raise SignatureError("malformed", "Authorization has an invalid ak")
    if not _TIMESTAMP_RE.match(ts):
        raise SignatureError("malformed", "Authorization timestamp is not yyyy-MM-ddTHH:mm:ssZ")
    if not _SIGNATURE_RE.match(signature):
        raise SignatureError("malformed", "Authorization signature is not 64 lower-case hex digits")
    header_names = names.split(";")
    if not all(_HEADER_NAME_RE.match(n) for n in header_names):
        raise SignatureError("malformed", "signedHeaders must be lower-case header names joined by ';'")
    if header_names != sorted(set(header_names)):
        raise SignatureError("malformed", "signedHeaders must be sorted and without duplicates")
    try:
        signed_at = datetime.strptime(ts, _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("malformed", "Authorization timestamp is not a valid date") from None

    sk = secret_for(ak)
    if not sk:
        raise SignatureError("unknown_ak", "unknown ak")

    current = now or datetime.now(UTC)
    skew = timedelta(seconds=max_skew)
    if signed_at < current - skew:
        raise SignatureError("stale_timestamp", f"timestamp {ts} is older than {max_skew} s")
    if signed_at > current + skew:
        raise SignatureError("future_timestamp", f"timestamp {ts} is more than {max_skew} s ahead")
    if "host" not in header_names:
        raise SignatureError("host_not_signed", "the host header is not among the signed headers")

    received: dict[str, str] = {}
    for name, value in _pairs(headers):
        received.setdefault(name.lower(), value)
    raw = _body_bytes(body)
    if "content-length" in header_names and "content-length" not in received:
        # API Gateway's REST proxy events carry no Content-Length (reported since 2017, still so in
        # 2025): the sender signed the length of the body it sent, which is the body received here.
        received["content-length"] = str(len(raw))
    missing = [n for n in header_names if n not in received]
    if missing:
        raise SignatureError("missing_signed_header", f"signed header(s) not received: {', '.join(missing)}")

    if "content-length" in header_names and received["content-length"].strip() != str(len(raw)):
        raise SignatureError(
            "content_length_mismatch",
            f"signed content-length {received['content-length'].strip()!r} != body length {len(raw)}",
        )

    try:
        _, canonical = canonical_request(
            method, path, [(n, received[n]) for n in header_names], raw, _pairs(query) or None
        )
        expected = _signature(ak, sk, ts, names, canonical)
    except UnicodeEncodeError:
        # A path, query or header value with a lone surrogate (a JSON event can carry one) has no
        # UTF-8 form, so no sender can have signed it: reject, never crash.
        raise SignatureError("malformed", "the request has text that is not valid UTF-8") from None
    if not hmac.compare_digest(expected, signature):
        raise SignatureError("signature_mismatch", "signature does not match the request")
    return ak
