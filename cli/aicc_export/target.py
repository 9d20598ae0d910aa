"""Where the CLI points: a deployed stack found by name, or a ``make serve`` stack's JSON line.

A deployed stack is found through its CloudFormation outputs with the default credential chain
(``--region``/``--profile`` as the AWS CLI has them); ``--local FILE`` reads the one JSON line that
``make serve`` prints (``-`` for standard input) and talks to its moto endpoint with its fake keys.
Every command works on a :class:`Target` and never cares which of the two it has.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import click
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["QUEUE_NAMES", "Target", "TargetError"]

# The queues every stack has, by the logical names the template and the local stack share.
QUEUE_NAMES = ("RequestQueue", "BillQueue", "RecordingQueue", "RequestDLQ", "BillDLQ", "RecordingDLQ", "ScheduleDLQ")
# CloudFormation output name -> the queue's logical name
_QUEUE_OUTPUTS = {f"{name}Url": name for name in QUEUE_NAMES}
_FUNCTION_OUTPUTS = {
    "RequestExportFunctionName": "RequestExportFunction",
    "CallbackFunctionName": "CallbackFunction",
    "DownloadFunctionName": "DownloadFunction",
}
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})


class TargetError(click.ClickException):
    """The stack could not be found or read; the message says what to do."""

    exit_code = 2


@dataclass
class Target:
    """One stack's resource names and a way to make clients for it."""

    region: str
    bucket: str
    jobs_table: str
    queues: dict[str, str]  # logical name -> queue URL
    callback_url: str = ""
    alarm_topic_arn: str = ""
    functions: dict[str, str] = field(default_factory=dict)  # logical id -> function name
    stack_name: str = ""
    endpoint_url: str | None = None  # the local stack's moto endpoint; None on AWS
    local: dict[str, Any] | None = None  # the whole `make serve` line, for --local only commands
    memo: dict[str, Any] = field(default_factory=dict, repr=False)  # what one command read of it, read once
    _session: boto3.session.Session | None = None

    def client(self, service: str, region: str | None = None) -> Any:
        """A boto3 client for this stack: its region unless ``region`` names another (a resource whose
        ARN is elsewhere), the same credentials; the moto endpoint when local."""
        if self._session is None:
            self._session = boto3.session.Session(region_name=self.region)
        return self._session.client(
            service, region_name=region or self.region, endpoint_url=self.endpoint_url, config=_CONFIG
        )

    @property
    def is_local(self) -> bool:
        return self.local is not None

    @classmethod
    def from_stack(cls, stack_name: str, region: str | None = None, profile: str | None = None) -> Target:
        """The deployed stack ``stack_name``, read from its CloudFormation outputs."""
        try:
            session = boto3.session.Session(region_name=region, profile_name=profile)
            if not session.region_name:
                raise TargetError("no AWS region: pass --region or set AWS_REGION (or a profile's region)")
            cfn = session.client("cloudformation", config=_CONFIG)
            stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
        except ClientError as exc:
            raise TargetError(
                f"stack {stack_name!r} not found in {session.region_name}: {exc.response['Error']['Message']}; "
                "pass --stack with the name you gave `sam deploy` (samconfig.toml's stack_name) and --region"
            ) from None
        except BotoCoreError as exc:
            raise TargetError(f"cannot reach CloudFormation: {exc}; check your AWS credentials (--profile)") from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        missing = [k for k in ("ExportBucketName", "JobsTableName", "RequestQueueUrl") if k not in outputs]
        if missing:
            raise TargetError(
                f"stack {stack_name!r} has no output(s) {', '.join(missing)}: is it an aicc-export stack, "
                "and is its deployment complete?"
            )
        target = cls(
            region=session.region_name,
            bucket=outputs["ExportBucketName"],
            jobs_table=outputs["JobsTableName"],
            queues={logical: outputs[key] for key, logical in _QUEUE_OUTPUTS.items() if key in outputs},
            callback_url=outputs.get("CallbackUrl", ""),
            alarm_topic_arn=outputs.get("AlarmTopicArn", ""),
            functions={lid: outputs[key] for key, lid in _FUNCTION_OUTPUTS.items() if key in outputs},
            stack_name=stack_name,
        )
        target._session = session
        return target

    @classmethod
    def from_local(cls, source: str) -> Target:
        """A ``make serve`` stack from its JSON line: a file path, or ``-`` for standard input."""
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise TargetError(
                f"cannot read --local {source}: {exc.strerror}; save `make serve`'s JSON line there"
            ) from None
        line = next((ln for ln in text.splitlines() if ln.lstrip().startswith("{")), "")
        try:
            info = json.loads(line)
            region = info.get("region", "us-east-1")
            target = cls(
                region=region,
                bucket=info["bucket"],
                jobs_table=info["jobs_table"],
                queues=dict(info["queues"]),
                callback_url=info.get("callback_url", ""),
                alarm_topic_arn=info.get("alarm_topic_arn", ""),
                functions=dict(info.get("functions", {})),
                stack_name="local",
                endpoint_url=info["endpoint_url"],
                local=info,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise TargetError(
                f"--local {source} is not the JSON line `make serve` prints ({type(exc).__name__}: {exc}); "
                "run `make serve` and save its first stdout line"
            ) from None
        creds = info.get("credentials") or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        target._session = boto3.session.Session(region_name=region, **creds)
        return target
