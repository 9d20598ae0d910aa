"""Helpers for the CLI command tests (not a test module): a :class:`Target` on the moto resources of
``tests.conftest.create_resources``, and writers for job-table items built with the keys module."""

from __future__ import annotations

from typing import Any

import boto3

from aicc_export.target import Target
from exporter.jobs.keys import job_key, recording_key, window_key
from tests.conftest import AwsNames, app_env


def cli_target(names: AwsNames, *, callback_url: str = "https://127.0.0.1:1/v1/ccfs/callback", **env: str) -> Target:
    """The stack the CLI sees: the moto resources, RequestExportFunction's environment from ``app_env``."""
    sqs = boto3.client("sqs")
    schedule_dlq = sqs.create_queue(QueueName="aicc-schedule-dlq")["QueueUrl"]
    return Target(
        region="us-east-1",
        bucket=names.bucket,
        jobs_table=names.jobs_table,
        queues={
            "RequestQueue": names.request_queue_url,
            "BillQueue": names.bill_queue_url,
            "RecordingQueue": names.recording_queue_url,
            "RequestDLQ": names.request_dlq_url,
            "BillDLQ": names.bill_dlq_url,
            "RecordingDLQ": names.recording_dlq_url,
            "ScheduleDLQ": schedule_dlq,
        },
        callback_url=callback_url,
        stack_name="local",
        local={"function_env": {"RequestExportFunction": app_env(names, **env)}, "schedule": False},
    )


def put_item(table: str, item_key: dict[str, str], attributes: dict[str, Any]) -> None:
    boto3.resource("dynamodb").Table(table).put_item(Item={**item_key, **attributes})


def put_window(table: str, tenant: str, begin: str, end: str, **attributes: Any) -> None:
    put_item(table, window_key(tenant, begin, end), {"tenant": tenant, **attributes})


def put_job(table: str, response_id: str, **attributes: Any) -> None:
    put_item(table, job_key(response_id), {"response_id": response_id, **attributes})


def put_rec(table: str, response_id: str, call_id: str, stem: str, **attributes: Any) -> None:
    put_item(table, recording_key(response_id, call_id, stem), {"call_id": call_id, **attributes})
