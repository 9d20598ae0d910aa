"""Helpers shared by test modules (one copy, imported): fast boto3 clients and seeding a job item."""

from __future__ import annotations

import functools
from typing import Any

import boto3
import pytest

from exporter import aws as exporter_aws
from exporter.jobs.keys import job_key

RID = "9239cb50a8384bb0ab503441bf089446"  # the protocol reference's example responseId


def seed_job(names: Any, status: str = "DOWNLOADING", rid: str = RID, **extra: Any) -> None:
    """Put :func:`job_item` into the moto jobs table of ``names``."""
    exporter_aws.resource("dynamodb").Table(names.jobs_table).put_item(Item=job_item(status, rid, **extra))


def job_item(status: str = "DOWNLOADING", rid: str = RID, **extra: Any) -> dict[str, Any]:
    """A job item of the protocol reference's example window, in ``status``, with ``extra``."""
    item = {
        **job_key(rid),
        "response_id": rid,
        "tenant": "acct001",
        "account_id": "acct001",
        "begin_time": "2018-07-02 09:00:00",
        "end_time": "2018-07-02 09:59:59",
        "data_type": "call_record",
        "job_status": status,
        "status_at": "2018-07-02T02:00:00Z",
        "bill_file_name": f"20180702_{rid}.zip",
        "recordings_total": 0,
        "recordings_done": 0,
        "recordings_failed": 0,
    }
    item.update(extra)
    return item


def fast_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the app's boto3 clients from boto3's default session, so all services share one loader
    (``exporter.aws.client`` makes a new session per client: each parses its JSON models again, ≈0.1 s
    a client a test). Same config and endpoints; tests' helpers use the same cached clients."""

    @functools.cache
    def client(service: str) -> Any:
        return boto3.client(service, config=exporter_aws._CONFIG)  # type: ignore[call-overload]

    @functools.cache
    def resource(service: str) -> Any:
        return boto3.resource(service, config=exporter_aws._CONFIG)  # type: ignore[call-overload]

    monkeypatch.setattr(exporter_aws, "client", client)
    monkeypatch.setattr(exporter_aws, "resource", resource)
