"""Shared test set-up: a fake AWS environment (moto) shaped like template.yaml, and handler loading.

Environment variables are set at import, before any handler or Powertools module is imported, as
Powertools reads them at import time.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

TEST_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credentials, not a secret
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_SERVICE_NAME": "aicc-export",
    "POWERTOOLS_METRICS_NAMESPACE": "AiccExport",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}
for _key, _value in TEST_ENV.items():
    os.environ[_key] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

from moto import mock_aws  # noqa: E402  (after the environment above)


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    remaining_ms: int = 600_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def emf_totals(output: str, namespace: str | None = None) -> dict[str, float]:
    """Every EMF metric Powertools printed in ``output``, summed by name (the local stack's
    ``emf_sum``); with ``namespace``, every metric directive must be in it."""
    from local.stack.report import emf_sum

    docs = []
    for line in output.splitlines():
        try:
            docs.append(json.loads(line))
        except ValueError:
            continue
    if namespace is not None:
        for doc in docs:
            for directive in doc["_aws"]["CloudWatchMetrics"] if isinstance(doc, dict) and "_aws" in doc else []:
                assert directive["Namespace"] == namespace, directive
    return emf_sum(docs)


class CurrentStdout:
    """A stream writing to whatever ``sys.stdout`` is now: the Powertools log handler is bound to the
    stdout of its first import, and pytest swaps ``sys.stdout`` between tests and phases."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext(aws_request_id=str(uuid.uuid4()))


def load_handler(name: str) -> types.ModuleType:
    """Import ``functions/<name>/app.py`` afresh as module ``handler_<name>``.

    Every function's module is called ``app`` (SAM convention), so they are loaded by path under
    distinct names; a fresh import re-creates module-scope Powertools objects for each test.
    """
    path = ROOT / "functions" / name / "app.py"
    module_name = f"handler_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class AwsNames:
    jobs_table: str = "aicc-jobs"
    idempotency_table: str = "aicc-idempotency"
    bucket: str = "aicc-export-bucket"
    secret_name: str = "aicc/ccfs"
    ca_param: str = ""
    request_queue_url: str = ""
    bill_queue_url: str = ""
    recording_queue_url: str = ""
    request_dlq_url: str = ""
    bill_dlq_url: str = ""
    recording_dlq_url: str = ""
    secret_arn: str = ""


def create_resources(names: AwsNames, ak: str, sk: str, ca_pem: str | None = None) -> AwsNames:
    """Create, in the active moto mock, the data resources of template.yaml with the same shapes."""
    import boto3

    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName=names.jobs_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "job_status", "AttributeType": "S"},
            {"AttributeName": "status_at", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-status",
                "KeySchema": [
                    {"AttributeName": "job_status", "KeyType": "HASH"},
                    {"AttributeName": "status_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    ddb.create_table(
        TableName=names.idempotency_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    boto3.client("s3").create_bucket(Bucket=names.bucket)
    sqs = boto3.client("sqs")
    for kind in ("request", "bill", "recording"):
        dlq = sqs.create_queue(QueueName=f"aicc-{kind}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue = sqs.create_queue(
            QueueName=f"aicc-{kind}",
            Attributes={
                "VisibilityTimeout": "30",
                "RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"5"}}',
            },
        )["QueueUrl"]
        setattr(names, f"{kind}_queue_url", queue)
        setattr(names, f"{kind}_dlq_url", dlq)
    names.secret_arn = boto3.client("secretsmanager").create_secret(
        Name=names.secret_name, SecretString=f'{{"ak": "{ak}", "sk": "{sk}"}}'
    )["ARN"]
    if ca_pem:
        names.ca_param = "/aicc/ccfs-ca"
        boto3.client("ssm").put_parameter(Name=names.ca_param, Value=ca_pem, Type="String")
    return names


def app_env(names: AwsNames, **overrides: str) -> dict[str, str]:
    """The function environment template.yaml would set, pointing at ``names``."""
    env = {
        "CCFS_BASE_URL": "https://ccfs.test:28443",
        "CCFS_SECRET_ARN": names.secret_arn,
        "CCFS_CA_BUNDLE_PARAM": names.ca_param,
        "TENANT_ACCOUNT_IDS": "acct001",
        "TENANT_TIMEZONE": "Asia/Shanghai",
        "JOBS_TABLE": names.jobs_table,
        "IDEMPOTENCY_TABLE": names.idempotency_table,
        "EXPORT_BUCKET": names.bucket,
        "REQUEST_QUEUE_URL": names.request_queue_url,
        "BILL_QUEUE_URL": names.bill_queue_url,
        "RECORDING_QUEUE_URL": names.recording_queue_url,
        "RECORDING_DLQ_URL": names.recording_dlq_url,
        "REQUEST_DLQ_URL": names.request_dlq_url,
        "WINDOW_MINUTES": "60",
        "SETTLE_MINUTES": "30",
        "CALLBACK_TIMEOUT_MINUTES": "120",
        "MAX_ATTEMPTS": "3",
        "EXPORT_START_TIME": "",
        "RECORDING_URL_HOST_SUFFIXES": "127.0.0.1,.myhuaweicloud.com",
        "ALLOW_UNSOLICITED": "false",
        "RETENTION_DAYS": "365",
        "CALLBACK_URL": "https://api.test/v1/ccfs/callback",
    }
    env.update(overrides)
    return env


def reset_process_caches() -> None:
    """Forget cached settings, boto3 clients, Powertools parameters and the CC-FS client."""
    from aws_lambda_powertools.utilities import parameters

    import exporter.ccfs_factory as factory
    from exporter import aws
    from exporter.config import get_settings

    get_settings.cache_clear()
    aws.client.cache_clear()
    aws.resource.cache_clear()
    parameters.clear_caches()
    factory.clear_caches()
    factory.close_clients()


@functools.cache
def _botocore_loader() -> Any:
    import botocore.loaders

    return botocore.loaders.create_loader()


def shared_botocore_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test's fresh boto3 clients (``reset_process_caches``) come from fresh sessions, each of
    which would read botocore's JSON service models again (~0.1 s a test): let them share one loader
    (the models are read-only data)."""
    import botocore.session

    loader = _botocore_loader()
    monkeypatch.setattr(botocore.session, "create_loader", lambda *args, **kwargs: loader)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsNames]:
    """moto-backed AWS with the template's tables, bucket, queues and the CC-FS secret (ak/sk of
    the simulator default: ``demo-ak``/``demo-sk``); the app environment points at them."""
    shared_botocore_loader(monkeypatch)
    with mock_aws():
        names = create_resources(AwsNames(), ak="demo-ak", sk="demo-sk")
        for key, value in app_env(names).items():
            monkeypatch.setenv(key, value)
        reset_process_caches()
        yield names
        reset_process_caches()


def sqs_messages(queue_url: str, max_messages: int = 100) -> list[dict[str, Any]]:
    """Receive (and delete) up to ``max_messages`` messages; bounded loop."""
    import boto3

    sqs = boto3.client("sqs")
    out: list[dict[str, Any]] = []
    for _ in range(max_messages // 10 + 2):
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            break
        for msg in batch:
            out.append(msg)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])
    return out
