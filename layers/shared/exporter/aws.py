"""boto3 clients and Powertools singletons shared by the handlers.

Clients are created lazily once per process (module scope in effect) so a cold start pays only for
what that function uses, and every client honours ``AWS_ENDPOINT_URL`` (the local stack's moto).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from botocore.config import Config

from exporter import log_redaction

if TYPE_CHECKING:
    from exporter.jobs.freshness import Freshness

__all__ = ["client", "emit_freshness", "logger", "metrics", "resource"]

log_redaction.install()  # before any client exists: botocore and httpx log credentials otherwise
# Every line of the product's logger is scrubbed as its last step (exc_info, extra= fields included).
logger = Logger(logger_formatter=log_redaction.RedactingFormatter())
metrics = Metrics()

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)


@cache
def _session() -> boto3.session.Session:
    # One session per process: each new Session re-reads and parses the service models (tens of ms
    # per client on a cold start, and most of the time of a moto-backed test).
    return boto3.session.Session()


@cache
def client(service: str, region: str | None = None) -> Any:
    """A cached boto3 client (``s3``, ``sqs``, ``dynamodb``, ``secretsmanager``, ``ssm``), in the
    function's region unless ``region`` names another (a resource whose ARN is elsewhere)."""
    if region is None:
        return _session().client(service, config=_CONFIG)
    if region == _session().region_name:
        return client(service)  # the shared one
    return _session().client(service, region_name=region, config=_CONFIG)


@cache
def resource(service: str) -> Any:
    return _session().resource(service, config=_CONFIG)


def emit_freshness(freshness: Sequence[Freshness]) -> None:
    """``ExportFreshnessHours`` of a schedule tick: the stalest tenant's with the function's
    dimensions (``service``; FreshnessAlarm watches it), and each tenant's with ``tenant`` added (the
    dashboard). A separate EMF document per tenant: the singleton has one dimension set per flush."""
    if not freshness:
        return
    metrics.add_metric(name="ExportFreshnessHours", unit=MetricUnit.NoUnit, value=max(f.hours for f in freshness))
    per_tenant = EphemeralMetrics()
    for point in freshness:
        per_tenant.add_dimension(name="tenant", value=point.tenant)
        per_tenant.add_metric(name="ExportFreshnessHours", unit=MetricUnit.NoUnit, value=point.hours)
        per_tenant.flush_metrics()
