"""callback: CC-FS tells us a bill file is ready (``POST /ccfs/callback`` behind API Gateway REST).

Checks run cheapest first and any rejection writes nothing and sends nothing:
method (405) → body size (413) → Content-Type (415) → auth-v2 signature over the path as CC-FS
addressed it, stage included, with the sk of the ak it names (401) → JSON shape (400) (all in
``exporter.callback_http``) → bound to the signing developer account: the job (and a non-empty
accountId) must be a tenant of that ak (403).
An authentic, valid callback is applied by ``exporter.callbacks.process_callback`` and always
answered ``200 {"resultCode":"0"}``, duplicates included, so CC-FS stops repeating it.
Heavy work (the download) happens on the BillQueue.

Never logged: the Authorization value, the sk, the body. Rejections log a reason code only.
The cold path imports only what this function needs (no Tracer, no CC-FS HTTP client).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from exporter import ccfs_factory
from exporter.aws import logger, metrics
from exporter.callback_http import Rejected, answer, authenticate
from exporter.callbacks import OUTCOME_METRICS, CallbackOutcome, process_callback
from exporter.config import get_settings
from exporter.jobs.store import JobStore
from exporter.messages import BillMessage
from exporter.queues import QueueSender

CALLBACK_PATH = "/ccfs/callback"
_OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

app = APIGatewayRestResolver()


def utc_now() -> datetime:
    return datetime.now(UTC)


def _reject(status: int, desc: str, reason: str, headers: dict[str, str] | None = None, **log: Any) -> Response:
    metrics.add_metric(name="CallbackRejected", unit=MetricUnit.Count, value=1)
    if status == 401:
        metrics.add_metric(name="CallbackSignatureRejected", unit=MetricUnit.Count, value=1)
    metrics.add_metadata(key="rejectReason", value=reason)
    logger.warning("callback rejected", extra={"status": status, "reason": reason, **log})
    return answer(status, str(status), desc, headers)


def _send_bill(message: BillMessage) -> None:
    QueueSender(get_settings().bill_queue_url, "BILL_QUEUE_URL").send(message)


@app.post(CALLBACK_PATH)
def callback() -> Response:
    settings = get_settings()
    try:
        callback = authenticate(app.current_event.raw_event, lambda: ccfs_factory.tenant_keys(settings), utc_now())
    except Rejected as rejected:
        return _reject(rejected.status, rejected.desc, rejected.reason)
    rid = callback.body.responseId
    store = JobStore(settings.jobs_table, settings.retention_days)
    outcome = process_callback(
        store,
        _send_bill,
        callback.body,
        allow_unsolicited=settings.allow_unsolicited,
        now=utc_now(),
        owned=callback.owned,
    )
    if outcome is CallbackOutcome.FOREIGN:
        # Authentic, but signed by another tenant's developer account: nothing was written or sent.
        # The ak is an identifier, not a secret; the tenants say whose account signed it.
        metrics.add_metric(name="CallbackTenantMismatch", unit=MetricUnit.Count, value=1)
        desc = "callback is not for a request of the signing developer account"
        return _reject(403, desc, "tenant_mismatch", responseId=rid, signedFor=sorted(callback.owned))
    for name in OUTCOME_METRICS[outcome]:  # FOREIGN returned above
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    logger.info("callback applied", extra={"responseId": rid, "outcome": outcome.value})
    return answer(200, "0", "success")


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
