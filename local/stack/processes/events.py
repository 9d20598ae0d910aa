"""The events AWS would hand the functions, and a Lambda context object.

Shapes follow what the services send (SQS event source mapping, EventBridge scheduled rule,
API Gateway REST proxy integration, Lambda on-failure destination record) so that the handlers run
their real parsing code locally.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.stack.cfn import ACCOUNT_ID, REGION

__all__ = [
    "LambdaContext",
    "api_gateway_event",
    "failure_destination_record",
    "scheduled_event",
    "sqs_event",
]


@dataclass
class LambdaContext:
    """The attributes of ``awslambdaric``'s context that handlers and Powertools read."""

    function_name: str
    timeout_s: int
    memory_limit_in_mb: int = 128
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_stream_name: str = field(default_factory=lambda: f"local/[$LATEST]{secrets.token_hex(16)}")
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not self._deadline:
            self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def identity(self) -> None:
        return None

    @property
    def client_context(self) -> None:
        return None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - SQS's checksum, not security


def _message_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """SQS ReceiveMessage attributes -> the Lambda event's camel-case form."""
    out = {}
    for name, value in attributes.items():
        binary = value.get("BinaryValue")
        out[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if isinstance(binary, bytes) else binary,
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": [
                base64.b64encode(b).decode() if isinstance(b, bytes) else b for b in value.get("BinaryListValues") or []
            ],
            "dataType": value.get("DataType", "String"),
        }
        if out[name]["binaryValue"] is None:
            del out[name]["binaryValue"]
        if out[name]["stringValue"] is None:
            del out[name]["stringValue"]
    return out


def sqs_event(messages: Iterable[Mapping[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS event source mapping's event for ReceiveMessage results (AttributeNames=All)."""
    records = []
    for message in messages:
        attrs = message.get("Attributes") or {}
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {
                key: str(attrs[key])
                for key in (
                    "ApproximateReceiveCount",
                    "SentTimestamp",
                    "SenderId",
                    "ApproximateFirstReceiveTimestamp",
                    "SequenceNumber",
                    "MessageGroupId",
                    "MessageDeduplicationId",
                    "AWSTraceHeader",
                    "DeadLetterQueueSourceArn",
                )
                if key in attrs
            },
            "messageAttributes": _message_attributes(message.get("MessageAttributes") or {}),
            "md5OfBody": message.get("MD5OfBody") or _md5(message["Body"]),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": REGION,
        }
        if message.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


def scheduled_event(rule_arn: str, now: datetime | None = None) -> dict[str, Any]:
    """An EventBridge "Scheduled Event" as a schedule rule delivers it."""
    when = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


def failure_destination_record(
    function_name: str, event: Any, error: BaseException, request_id: str, attempts: int = 1
) -> dict[str, Any]:
    """What Lambda sends to an asynchronous invocation's OnFailure destination."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__, "stackTrace": []},
    }


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"


_NOT_FORWARDED = frozenset(
    {
        "content-length",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


_SET_BY_GATEWAY = frozenset({"host", "x-forwarded-port", "x-forwarded-proto", "x-amzn-trace-id"})


def api_gateway_event(
    *,
    method: str,
    raw_path: str,
    resource: str,
    stage: str,
    headers: Sequence[tuple[str, str]],
    query: Mapping[str, list[str]],
    body: bytes,
    source_ip: str,
    host: str,
    protocol: str = "HTTP/1.1",
    api_id: str = "local",
    public_port: int = 443,
) -> dict[str, Any]:
    """A REST API (v1) Lambda proxy integration event, as API Gateway builds it.

    ``raw_path`` is what the client requested (``/{stage}/ccfs/callback``); ``event.path`` is the
    resource path without the stage and ``requestContext.path`` keeps the stage, as on a default
    execute-api endpoint. ``host`` is the API's domain (``{api_id}.execute-api.{region}.amazonaws.com``
    or a custom domain): the ``Host`` header and ``domainName`` are that name whatever the client's
    connection looked like — API Gateway is only reached through it, on https, port ``public_port``.
    """
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    names: dict[str, str] = {}  # lower-case -> first spelling seen
    added = [
        ("X-Forwarded-For", source_ip),
        ("X-Forwarded-Port", str(public_port)),
        ("X-Forwarded-Proto", "https"),
        ("X-Amzn-Trace-Id", _trace_id()),
    ]
    # What API Gateway does not pass on to a REST proxy integration: the body's length (the event
    # carries the body itself) and the hop-by-hop headers of the client's connection. It sets the
    # forwarding headers itself (a client's X-Forwarded-For chain is kept and the caller appended).
    spelled = {n.lower(): n for n, _ in headers}
    headers = [(n, v) for n, v in headers if n.lower() not in _NOT_FORWARDED and n.lower() not in _SET_BY_GATEWAY]
    headers.insert(0, (spelled.get("host", "Host"), host))
    present = {name.lower() for name, _ in headers}
    if "x-forwarded-for" in present:  # API Gateway appends the caller to an existing chain
        headers = [(n, f"{v}, {source_ip}" if n.lower() == "x-forwarded-for" else v) for n, v in headers]
    for name, value in [*headers, *((n, v) for n, v in added if n.lower() not in present)]:
        key = names.setdefault(name.lower(), name)
        multi.setdefault(key, []).append(value)
        single[key] = value
    now = datetime.now(UTC)
    text: str | None
    encoded = False
    if not body:
        text = None
    else:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
    request_id = str(uuid.uuid4())
    path = raw_path[len(stage) + 1 :] if raw_path.startswith(f"/{stage}/") else raw_path
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": {k: list(v) for k, v in query.items()} or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": hashlib.sha256(resource.encode()).hexdigest()[:6],
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": base64.b64encode(secrets.token_bytes(12)).decode(),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": raw_path,
            "accountId": ACCOUNT_ID,
            "protocol": protocol,
            "stage": stage,
            "domainPrefix": host.split(".", 1)[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": single.get(names.get("user-agent", "User-Agent")),
                "user": None,
            },
            "domainName": host,
            "apiId": api_id,
        },
        "body": text,
        "isBase64Encoded": encoded,
    }
