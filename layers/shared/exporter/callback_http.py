"""The callback's HTTP edge: is this API Gateway event an authentic, well-formed CC-FS bill callback?

Checks run cheapest first and stop at the first failure, which is raised as :class:`Rejected`
(status, the description answered to CC-FS, a reason code for the logs and the metric metadata):
body size (413, before decoding anything large) → base64 (400) → Content-Type (415) → auth-v2
signature over the path as CC-FS addressed it, stage included, with the sk of the ak it names (401)
→ JSON shape (400). Nothing here writes or sends anything, and nothing here reads the body, the
Authorization value or the sk into a message: a rejection names what was wrong, never the value.

API Gateway REST delivers no ``Content-Length`` (engineering notes): the signature covers the raw
body's length, which is why the raw bytes are rebuilt exactly as CC-FS sent them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools.event_handler import Response
from pydantic import ValidationError

from ccfs.auth import SignatureError, verify
from ccfs.models import BillCallback, BillCallbackBody
from exporter.tenants import TenantKeys

__all__ = ["MAX_BODY_BYTES", "MAX_SKEW_SECONDS", "AuthenticCallback", "Rejected", "answer", "authenticate"]

MAX_BODY_BYTES = 16 * 1024
MAX_SKEW_SECONDS = 900
_MAX_BASE64_CHARS = 4 * ((MAX_BODY_BYTES + 2) // 3)
_JSON = "application/json"


class Rejected(Exception):
    """The callback is refused: answer ``status`` with ``desc``; ``reason`` is the logged code."""

    def __init__(self, status: int, desc: str, reason: str) -> None:
        super().__init__(desc)
        self.status = status
        self.desc = desc
        self.reason = reason


@dataclass(frozen=True)
class AuthenticCallback:
    """A callback signed by ``ak``, which signs for the tenants ``owned``, with a valid body."""

    ak: str
    owned: frozenset[str]
    body: BillCallbackBody


def answer(status: int, code: str, desc: str, headers: dict[str, str] | None = None) -> Response[str]:
    """CC-FS's reply shape: ``{"resultCode", "resultDesc"}``."""
    return Response(
        status_code=status,
        content_type=_JSON,
        body=json.dumps({"resultCode": code, "resultDesc": desc}, separators=(",", ":")),
        headers=headers,
    )


def header(headers: dict[str, Any] | None, name: str) -> str | None:
    """A request header by lower-case name (API Gateway keeps the sender's case)."""
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return None if value is None else str(value)
    return None


def raw_body(event: dict[str, Any]) -> bytes:
    """The body exactly as CC-FS sent it; 413 before decoding anything large."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        if len(body) > _MAX_BASE64_CHARS:
            raise Rejected(413, "body too large", "body_too_large")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise Rejected(400, "body is not valid base64", "bad_base64") from None
    else:
        if len(body) > MAX_BODY_BYTES:  # a str never has more characters than UTF-8 bytes
            raise Rejected(413, "body too large", "body_too_large")
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise Rejected(413, "body too large", "body_too_large")
    return raw


def check_content_type(value: str | None) -> None:
    media, _, params = (value or "").partition(";")
    if media.strip().lower() != _JSON:
        raise Rejected(415, "Content-Type must be application/json", "content_type")
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise Rejected(415, "charset must be UTF-8", "charset")


def query(event: dict[str, Any]) -> list[tuple[str, str]] | None:
    """The query string as received (every value of a repeated parameter), None when there is none."""
    multi = event.get("multiValueQueryStringParameters") or {}
    if multi:
        return [(k, v) for k, values in multi.items() for v in values or []]
    single = event.get("queryStringParameters") or {}
    return list(single.items()) or None


def verify_signature(event: dict[str, Any], raw: bytes, keys: TenantKeys, now: datetime) -> str:
    """Verify with the sk of the ak the Authorization value names (any configured tenant's); return the ak."""
    context = event.get("requestContext") or {}
    path = context.get("path") or event.get("path") or ""
    try:
        return verify(
            header(event.get("headers"), "authorization"),
            str(event.get("httpMethod") or "POST"),
            path,
            list((event.get("headers") or {}).items()),
            raw,
            secret_for=keys.sk_for,
            now=now,
            max_skew=MAX_SKEW_SECONDS,
            query=query(event),
        )
    except SignatureError as exc:
        raise Rejected(401, "signature rejected", exc.reason) from None


def _validation_message(exc: ValidationError) -> str:
    """Which field and what is wrong, never the received value."""
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    ctx = first.get("ctx") or {}
    what = first["type"].replace("_", " ") if "value" in ctx else first["msg"]
    return f"invalid callback: {where}: {what}"


def parse(raw: bytes) -> BillCallback:
    try:
        data = json.loads(raw)
    except ValueError:
        raise Rejected(400, "body is not JSON", "not_json") from None
    try:
        return BillCallback.model_validate(data)
    except ValidationError as exc:
        raise Rejected(400, _validation_message(exc), "invalid_body") from None


def authenticate(event: dict[str, Any], keys: Callable[[], TenantKeys], now: datetime) -> AuthenticCallback:
    """Every check of the module docstring, in order; raises :class:`Rejected` at the first failure.
    ``keys`` is called only once the cheap checks passed (it may read the CC-FS secret)."""
    raw = raw_body(event)
    check_content_type(header(event.get("headers"), "content-type"))
    tenant_keys = keys()
    ak = verify_signature(event, raw, tenant_keys, now)
    parsed = parse(raw)
    return AuthenticCallback(ak, tenant_keys.tenants_of(ak), parsed.msgBody)
