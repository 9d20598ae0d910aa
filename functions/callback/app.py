"""callback: CC-FS tells us a bill file is ready (``POST /ccfs/callback`` behind API Gateway REST).

Checks run cheapest first and any rejection writes nothing and sends nothing:
method (405) → body size (413) → Content-Type (415) → auth-v2 signature over the path as CC-FS
addressed it, stage included, with the sk of the ak it names (401) → JSON shape (400) → bound to the
signing developer account: the job (and a non-empty accountId) must be a tenant of that ak (403).
An authentic, valid callback is applied by ``exporter.callbacks.process_callback`` and always
answered ``200 {"resultCode":"0"}``, duplicates included, so CC-FS stops repeating it.
Heavy work (the download) happens on the BillQueue.

Never logged: the Authorization value, the sk, the body. Rejections log a reason code only.
The cold path imports only what this function needs (no Tracer, no CC-FS HTTP client).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from ccfs.auth import SignatureError, verify
from ccfs.models import BillCallback
from exporter import ccfs_factory
from exporter.aws import client, logger, metrics
from exporter.callbacks import OUTCOME_METRICS, CallbackOutcome, process_callback
from exporter.config import ConfigError, get_settings
from exporter.jobs.store import JobStore
from exporter.tenants import TenantKeys

CALLBACK_PATH = "/ccfs/callback"
MAX_BODY_BYTES = 16 * 1024
MAX_SKEW_SECONDS = 900
_MAX_BASE64_CHARS = 4 * ((MAX_BODY_BYTES + 2) // 3)
_OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_JSON = "application/json"

app = APIGatewayRestResolver()


class _Rejected(Exception):
    def __init__(self, status: int, desc: str, reason: str) -> None:
        super().__init__(desc)
        self.status = status
        self.desc = desc
        self.reason = reason


def utc_now() -> datetime:
    return datetime.now(UTC)


def _answer(status: int, code: str, desc: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=_JSON,
        body=json.dumps({"resultCode": code, "resultDesc": desc}, separators=(",", ":")),
        headers=headers,
    )


def _reject(
    status: int,
    desc: str,
    reason: str,
    headers: dict[str, str] | None = None,
    log_extra: dict[str, Any] | None = None,
) -> Response:
    metrics.add_metric(name="CallbackRejected", unit=MetricUnit.Count, value=1)
    if status == 401:
        metrics.add_metric(name="CallbackSignatureRejected", unit=MetricUnit.Count, value=1)
    metrics.add_metadata(key="rejectReason", value=reason)
    logger.warning("callback rejected", extra={"status": status, "reason": reason, **(log_extra or {})})
    return _answer(status, str(status), desc, headers)


def _header(headers: dict[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return None if value is None else str(value)
    return None


def _raw_body(event: dict[str, Any]) -> bytes:
    """The body exactly as CC-FS sent it; 413 before decoding anything large."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        if len(body) > _MAX_BASE64_CHARS:
            raise _Rejected(413, "body too large", "body_too_large")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise _Rejected(400, "body is not valid base64", "bad_base64") from None
    else:
        if len(body) > MAX_BODY_BYTES:  # a str never has more characters than UTF-8 bytes
            raise _Rejected(413, "body too large", "body_too_large")
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise _Rejected(413, "body too large", "body_too_large")
    return raw


def _check_content_type(value: str | None) -> None:
    media, _, params = (value or "").partition(";")
    if media.strip().lower() != _JSON:
        raise _Rejected(415, "Content-Type must be application/json", "content_type")
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise _Rejected(415, "charset must be UTF-8", "charset")


def _query(event: dict[str, Any]) -> list[tuple[str, str]] | None:
    multi = event.get("multiValueQueryStringParameters") or {}
    if multi:
        return [(k, v) for k, values in multi.items() for v in values or []]
    single = event.get("queryStringParameters") or {}
    return list(single.items()) or None


def _verify(event: dict[str, Any], raw: bytes, keys: TenantKeys) -> str:
    """Verify with the sk of the ak the Authorization value names (any configured tenant's); return the ak."""
    context = event.get("requestContext") or {}
    path = context.get("path") or event.get("path") or ""
    try:
        return verify(
            _header(event.get("headers"), "authorization"),
            str(event.get("httpMethod") or "POST"),
            path,
            list((event.get("headers") or {}).items()),
            raw,
            secret_for=keys.sk_for,
            now=utc_now(),
            max_skew=MAX_SKEW_SECONDS,
            query=_query(event),
        )
    except SignatureError as exc:
        raise _Rejected(401, "signature rejected", exc.reason) from None


def _validation_message(exc: ValidationError) -> str:
    """Which field and what is wrong, never the received value."""
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    ctx = first.get("ctx") or {}
    what = first["type"].replace("_", " ") if "value" in ctx else first["msg"]
    return f"invalid callback: {where}: {what}"


def _parse(raw: bytes) -> BillCallback:
    try:
        data = json.loads(raw)
    except ValueError:
        raise _Rejected(400, "body is not JSON", "not_json") from None
    try:
        return BillCallback.model_validate(data)
    except ValidationError as exc:
        raise _Rejected(400, _validation_message(exc), "invalid_body") from None


def _send_bill(message: dict[str, str]) -> None:
    queue_url = get_settings().bill_queue_url
    if not queue_url:
        raise ConfigError("BILL_QUEUE_URL is not set")
    client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(message, separators=(",", ":")))


@app.post(CALLBACK_PATH)
def callback() -> Response:
    event = app.current_event.raw_event
    settings = get_settings()
    try:
        raw = _raw_body(event)
        _check_content_type(_header(event.get("headers"), "content-type"))
        keys = ccfs_factory.tenant_keys(settings)
        ak = _verify(event, raw, keys)
        parsed = _parse(raw)
    except _Rejected as rejected:
        return _reject(rejected.status, rejected.desc, rejected.reason)

    body = parsed.msgBody
    owned = keys.tenants_of(ak)
    outcome = process_callback(
        JobStore(settings.jobs_table, settings.retention_days),
        _send_bill,
        body,
        allow_unsolicited=settings.allow_unsolicited,
        now=utc_now(),
        owned=owned,
    )
    if outcome is CallbackOutcome.FOREIGN:
        # Authentic, but signed by another tenant's developer account: nothing was written or sent.
        # The ak is an identifier, not a secret; the tenants say whose account signed it.
        metrics.add_metric(name="CallbackTenantMismatch", unit=MetricUnit.Count, value=1)
        return _reject(
            403,
            "callback is not for a request of the signing developer account",
            "tenant_mismatch",
            log_extra={"responseId": body.responseId, "signedFor": sorted(owned)},
        )
    for name in OUTCOME_METRICS[outcome]:  # FOREIGN returned above
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    logger.info("callback applied", extra={"responseId": body.responseId, "outcome": outcome.value})
    return _answer(200, "0", "success")


@app.route(CALLBACK_PATH, method=_OTHER_METHODS)
def wrong_method() -> Response:
    return _reject(405, "method not allowed", "method", {"Allow": "POST"})


@app.not_found
def not_found(_: Exception) -> Response:
    return _reject(404, "not found", "path")


@app.exception_handler(Exception)
def internal_error(exc: Exception) -> Response:
    # Fail the invocation (the function-errors alarm sees it; API Gateway answers 502 and CC-FS calls
    # back again, which resumes where this one stopped). Logged by type: no request content.
    logger.error("callback failed; CC-FS will call back again", extra={"error": type(exc).__name__})
    raise exc


@logger.inject_lambda_context(log_event=False, correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
