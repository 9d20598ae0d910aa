"""Static checks of template.yaml: the security, durability and operability properties that the
deployment relies on and that cfn-lint cannot know about.

Every property is a *checker*: a function from the parsed template to a list of problems. Each is
asserted empty on the real template, and ``test_checker_catches`` proves that each one fails on a
template broken in the way it guards against (a check that cannot fail protects nothing).

Conditional parts (``!If`` on HasKmsKey, HasCaBundle, ...) are checked in two scenarios: the
parameter defaults, and every optional feature switched on. What depends on the translated stack and
on parameter values (IAM against the code, alarms against emitted metrics, samconfig environments,
the README's parameter table) is in tests/deploy/test_deploy.py.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conditions import pick_conditions

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

FUNCTIONS = {"RequestExportFunction", "CallbackFunction", "DownloadFunction"}
REQUIRED_OUTPUTS = {
    "CallbackUrl",
    "ExportBucketName",
    "JobsTableName",
    "IdempotencyTableName",
    "RequestQueueUrl",
    "BillQueueUrl",
    "RecordingQueueUrl",
    "RequestDLQUrl",
    "BillDLQUrl",
    "RecordingDLQUrl",
    "AlarmTopicArn",
    "RequestExportFunctionName",
    "CallbackFunctionName",
    "DownloadFunctionName",
}
# The handlers read exactly these names.
GLOBAL_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "CCFS_BASE_URL",
    "CCFS_SECRET_ARN",
    "CCFS_CA_BUNDLE_PARAM",
    "TENANT_ACCOUNT_IDS",
    "TENANT_TIMEZONE",
    "JOBS_TABLE",
    "IDEMPOTENCY_TABLE",
    "EXPORT_BUCKET",
    "REQUEST_QUEUE_URL",
    "BILL_QUEUE_URL",
    "RECORDING_QUEUE_URL",
    "WINDOW_MINUTES",
    "SETTLE_MINUTES",
    "CALLBACK_TIMEOUT_MINUTES",
    "MAX_ATTEMPTS",
    "EXPORT_START_TIME",
    "RECORDING_URL_HOST_SUFFIXES",
    "ALLOW_UNSOLICITED",
    "RETENTION_DAYS",
    "MAX_RECEIVE_COUNT",
}
# The local stack builds these from the template, by logical id, as plain CloudFormation types.
DATA_RESOURCES = {
    "JobsTable": "AWS::DynamoDB::Table",
    "IdempotencyTable": "AWS::DynamoDB::Table",
    "ExportBucket": "AWS::S3::Bucket",
    "RequestQueue": "AWS::SQS::Queue",
    "RequestDLQ": "AWS::SQS::Queue",
    "BillQueue": "AWS::SQS::Queue",
    "BillDLQ": "AWS::SQS::Queue",
    "RecordingQueue": "AWS::SQS::Queue",
    "RecordingDLQ": "AWS::SQS::Queue",
    "ScheduleDLQ": "AWS::SQS::Queue",
}
CUSTOM_METRICS = {
    "PlanningLagMinutes",
    "ExportFreshnessHours",
    "BillEntriesUnrecognised",
    "CallbackSignatureRejected",
    "CallbackTenantMismatch",
    "CcfsUnknownResultCode",
    "JobsFailed",
    "JobsPartial",
    "RecordingsFailed",
}

# Allow statements that may use a wildcard action or resource, keyed by (resource, Sid).
IAM_EXCEPTIONS = {
    ("AlarmTopicKey", "EnableIamPolicies"): "a key policy's Resource is always '*' (= this key); this is "
    "AWS's default statement delegating the key's administration to IAM, without it the key is unmanageable",
    ("AlarmTopicKey", "AllowCloudWatchAlarms"): "a key policy's Resource is always '*' (= this key); lets "
    "CloudWatch alarms publish to the encrypted topic",
}
# DLQs that need no alarm of their own.
UNALARMED_DLQS = {"AlarmEmailDLQ": "holds undeliverable alarm e-mails: alarming on it would use the broken channel"}

SCENARIOS = {
    "defaults": {},
    "all-options": {
        "KmsKeyArn": "arn:aws:kms:ap-southeast-1:111122223333:key/0b1c2d3e-aaaa-bbbb-cccc-111122223333",
        "AlarmEmail": "ops@example.com",
        "CcfsCaBundleParameter": "/aicc-export/ccfs-ca",
        "RecordingCaBundleParameter": "/aicc-export/lss-ca",
        "ScheduleEnabled": "true",
        "ApiAccessLogging": "true",
        "CallbackWafRateLimit": "100",
        "VpcSubnetIds": "subnet-0123456789abcdef0",
        "VpcSecurityGroupIds": "sg-0123456789abcdef0",
        "ObjectLockMode": "COMPLIANCE",
    },
}
# Alarms that must treat missing data as breaching: the heartbeat (no tick reported = trouble).
HEARTBEAT_METRICS = {"PlanningLagMinutes"}

Template = dict[str, Any]
Checker = Callable[[Template], list[str]]


# --------------------------------------------------------------------------- loading


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags into their long form (!Ref x -> {"Ref": x})."""


def _construct_cfn_tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_cfn_tag)


@cache
def _load() -> Template:
    return yaml.load(TEMPLATE_PATH.read_text(encoding="utf-8"), Loader=CfnLoader)


@pytest.fixture
def template() -> Template:
    return copy.deepcopy(_load())


# --------------------------------------------------------------------------- helpers


def conditions_for(t: Template, overrides: dict[str, str]) -> dict[str, bool]:
    params = {name: str(spec.get("Default", "")) for name, spec in t.get("Parameters", {}).items()}
    params.update(overrides)
    conditions = t.get("Conditions", {})

    def value(x: Any) -> str:
        if isinstance(x, dict) and "Ref" in x:
            return params[x["Ref"]]
        return str(x)

    def evaluate(expr: Any) -> bool:
        (fn, arg), *_ = expr.items()
        if fn == "Fn::Equals":
            return value(arg[0]) == value(arg[1])
        if fn == "Fn::Not":
            return not evaluate(arg[0])
        if fn == "Fn::And":
            return all(evaluate(a) for a in arg)
        if fn == "Fn::Or":
            return any(evaluate(a) for a in arg)
        if fn == "Condition":
            return evaluate(conditions[arg])
        raise ValueError(f"unsupported condition function {fn}")

    return {name: evaluate(expr) for name, expr in conditions.items()}


def scenario(t: Template, name: str) -> Template:
    """The template as CloudFormation would see it for SCENARIOS[name]."""
    conditions = conditions_for(t, SCENARIOS[name])
    body = {k: v for k, v in t.items() if k != "Conditions"}
    resolved = pick_conditions(body, conditions)
    resolved["Resources"] = {
        k: r for k, r in resolved["Resources"].items() if conditions.get(r.get("Condition", ""), True)
    }
    return resolved


def scenarios(t: Template) -> Iterator[tuple[str, Template]]:
    for name in SCENARIOS:
        yield name, scenario(t, name)


def of_type(t: Template, type_: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in t["Resources"].items() if r["Type"] == type_}


def props(resource: dict[str, Any]) -> dict[str, Any]:
    return resource.get("Properties", {})


def ref(x: Any) -> str | None:
    return x["Ref"] if isinstance(x, dict) and set(x) == {"Ref"} else None


def getatt(x: Any) -> tuple[str, str] | None:
    if isinstance(x, dict) and set(x) == {"Fn::GetAtt"}:
        target, attribute = x["Fn::GetAtt"]
        return target, attribute
    return None


def function_props(t: Template, name: str) -> dict[str, Any]:
    """A function's effective properties: Globals.Function merged the way SAM merges them."""
    globals_ = copy.deepcopy(t.get("Globals", {}).get("Function", {}))
    own = props(t["Resources"][name])
    merged = {**globals_, **own}
    merged["Environment"] = {
        "Variables": {
            **globals_.get("Environment", {}).get("Variables", {}),
            **own.get("Environment", {}).get("Variables", {}),
        }
    }
    merged["Layers"] = globals_.get("Layers", []) + own.get("Layers", [])
    return merged


def as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else [x]


def statements(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every policy statement below ``node`` (IAM, resource, key and SAM inline policies)."""
    if isinstance(node, dict):
        for key in ("Statement", "CustomStatements"):
            for s in as_list(node.get(key, [])):
                if isinstance(s, dict) and "Effect" in s:
                    yield path, s
        for k, v in node.items():
            if k not in ("Statement", "CustomStatements"):
                yield from statements(v, (*path, k))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from statements(item, (*path, str(i)))


def is_dlq(name: str) -> bool:
    return name.endswith("DLQ")


def sqs_consumers(t: Template) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """queue logical id -> [(function, SQS event properties)]"""
    consumers: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for fn in of_type(t, "AWS::Serverless::Function"):
        for event in props(t["Resources"][fn]).get("Events", {}).values():
            if event["Type"] == "SQS":
                queue = getatt(event["Properties"]["Queue"])
                assert queue, f"{fn}: SQS event queue must be !GetAtt <Queue>.Arn"
                consumers.setdefault(queue[0], []).append((fn, event["Properties"]))
    return consumers


# --------------------------------------------------------------------------- checkers


def iam_problems(t: Template) -> list[str]:
    problems = []
    used_exceptions = set()
    for scenario_name, s in scenarios(t):
        for name, resource in s["Resources"].items():
            for path, st in statements(resource):
                if st["Effect"] != "Allow":
                    continue  # a wildcard in a Deny only narrows access
                where = f"[{scenario_name}] {name}/{'/'.join(path)} Sid={st.get('Sid')}"
                if "NotAction" in st or "NotResource" in st:
                    problems.append(f"{where}: Allow with NotAction/NotResource")
                if st.get("Principal") in ("*", {"AWS": "*"}):
                    problems.append(f"{where}: allows anyone (Principal '*')")
                actions = [a for a in as_list(st.get("Action", [])) if isinstance(a, str)]
                wild_action = any(a == "*" or a.endswith(":*") for a in actions)
                wild_resource = "*" in as_list(st.get("Resource", []))
                if not (wild_action or wild_resource):
                    continue
                if (name, st.get("Sid")) in IAM_EXCEPTIONS:
                    used_exceptions.add((name, st.get("Sid")))
                    continue
                if wild_action:
                    problems.append(f"{where}: wildcard action {actions}")
                if wild_resource:
                    problems.append(f"{where}: Resource '*'")
        for fn in of_type(s, "AWS::Serverless::Function"):
            fp = props(s["Resources"][fn])
            if "Role" in fp:
                problems.append(f"[{scenario_name}] {fn}: explicit Role bypasses the reviewed Policies")
            for policy in fp.get("Policies", []):
                if not isinstance(policy, dict):
                    problems.append(f"[{scenario_name}] {fn}: managed policy {policy!r} (use templates/statements)")
                    continue
                if "Statement" in policy:
                    continue
                # SAM policy template: every argument must point at a resource of this stack or a
                # parameter, never a literal (a literal "*" table name means every table).
                for template_name, args in policy.items():
                    for arg, value in (args or {}).items():
                        if not isinstance(value, dict):
                            problems.append(f"[{scenario_name}] {fn}: {template_name}.{arg} is a literal {value!r}")
    for stale in set(IAM_EXCEPTIONS) - used_exceptions:
        problems.append(f"IAM exception {stale} no longer matches a wildcard statement: remove it")
    return problems


def bucket_problems(t: Template) -> list[str]:
    problems = []
    for scenario_name, s in scenarios(t):
        bucket = props(s["Resources"]["ExportBucket"])
        where = f"[{scenario_name}] ExportBucket"
        rules = bucket.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        if not rules or any(r.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") != "aws:kms" for r in rules):
            problems.append(f"{where}: default encryption is not aws:kms")
        if not all(r.get("BucketKeyEnabled") is True for r in rules):
            problems.append(f"{where}: BucketKeyEnabled not set")
        has_key = conditions_for(t, SCENARIOS[scenario_name])["HasKmsKey"]
        key_ids = [r.get("ServerSideEncryptionByDefault", {}).get("KMSMasterKeyID") for r in rules]
        if has_key and any(ref(k) != "KmsKeyArn" for k in key_ids):
            problems.append(f"{where}: KmsKeyArn given but not used for the bucket")
        pab = bucket.get("PublicAccessBlockConfiguration", {})
        for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
            if pab.get(flag) is not True:
                problems.append(f"{where}: PublicAccessBlockConfiguration.{flag} is not true")
        if bucket.get("VersioningConfiguration", {}).get("Status") != "Enabled":
            problems.append(f"{where}: versioning not enabled")
        lifecycle = [r for r in bucket.get("LifecycleConfiguration", {}).get("Rules", []) if r["Status"] == "Enabled"]
        if not any("AbortIncompleteMultipartUpload" in r for r in lifecycle):
            problems.append(f"{where}: no lifecycle rule aborts incomplete multipart uploads")
        if not any(ref(r.get("ExpirationInDays")) == "RetentionDays" for r in lifecycle):
            problems.append(f"{where}: no lifecycle rule expires objects after RetentionDays")
        if not any(r.get("Prefix") == "_staging/" and "ExpirationInDays" in r for r in lifecycle):
            problems.append(f"{where}: _staging/ objects never expire")
        lock_on = conditions_for(t, SCENARIOS[scenario_name])["ObjectLockOn"]
        lock = bucket.get("ObjectLockConfiguration")
        if lock_on and (
            bucket.get("ObjectLockEnabled") is not True or (lock or {}).get("ObjectLockEnabled") != "Enabled"
        ):
            problems.append(f"{where}: ObjectLockMode set but the bucket has no Object Lock")
        if not lock_on and ("ObjectLockEnabled" in bucket or lock):
            problems.append(f"{where}: Object Lock on although ObjectLockMode is NONE (it can never be switched off)")
        if lock and "Rule" in lock:
            problems.append(
                f"{where}: a default retention would lock the _staging/ objects that are deleted after the copy"
            )
        tls_denied = False
        for policy in of_type(s, "AWS::S3::BucketPolicy").values():
            if ref(props(policy)["Bucket"]) != "ExportBucket":
                continue
            for _, st in statements(props(policy)["PolicyDocument"]):
                resources = as_list(st.get("Resource"))
                tls_denied |= (
                    st["Effect"] == "Deny"
                    and st.get("Principal") == "*"
                    and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)
                    and {"s3:*"} == set(as_list(st.get("Action")))
                    and {"Fn::GetAtt": ["ExportBucket", "Arn"]} in resources
                    and {"Fn::Sub": "${ExportBucket.Arn}/*"} in resources
                )
        if not tls_denied:
            problems.append(f"{where}: no bucket policy denies requests without aws:SecureTransport")
    return problems


def queue_problems(t: Template) -> list[str]:
    problems = []
    # The consumers treat receive number MAX_RECEIVE_COUNT as the last attempt.
    max_receive_count = t["Globals"]["Function"]["Environment"]["Variables"].get("MAX_RECEIVE_COUNT")
    for scenario_name, s in scenarios(t):
        queues = of_type(s, "AWS::SQS::Queue")
        consumed = sqs_consumers(s)

        def alarmed_on(metric: str, s: Template = s) -> set[str]:
            return {
                ref(d["Value"]) or (getatt(d["Value"]) or ("",))[0]
                for alarm in of_type(s, "AWS::CloudWatch::Alarm").values()
                if props(alarm).get("MetricName") == metric
                for d in props(alarm).get("Dimensions", [])
                if d["Name"] == "QueueName"
            }

        alarmed = alarmed_on("ApproximateNumberOfMessagesVisible")
        aged = alarmed_on("ApproximateAgeOfOldestMessage")
        for name, queue in queues.items():
            q = props(queue)
            where = f"[{scenario_name}] {name}"
            if q.get("SqsManagedSseEnabled") is not True and "KmsMasterKeyId" not in q:
                problems.append(f"{where}: no server-side encryption")
            ignored = queue.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
            if is_dlq(name):
                if q.get("MessageRetentionPeriod") != 1209600:
                    problems.append(f"{where}: a DLQ must keep messages 14 days (1209600 s)")
                if name in consumed:
                    # drained by its consumer: what must alarm is a message it could not settle
                    if name not in aged:
                        problems.append(f"{where}: consumed DLQ without an ApproximateAgeOfOldestMessage alarm")
                elif name not in alarmed and name not in UNALARMED_DLQS:
                    problems.append(f"{where}: no ApproximateNumberOfMessagesVisible alarm")
                continue
            if "ES6000" in ignored:
                problems.append(f"{where}: ES6000 (redrive) may only be ignored on a DLQ")
            target = getatt(q.get("RedrivePolicy", {}).get("deadLetterTargetArn"))
            if not target or target[0] not in queues or not is_dlq(target[0]):
                problems.append(f"{where}: RedrivePolicy does not point at a DLQ of this stack")
            elif str(q["RedrivePolicy"].get("maxReceiveCount")) != str(max_receive_count):
                problems.append(f"{where}: maxReceiveCount differs from the functions' MAX_RECEIVE_COUNT")
    return problems


def consumer_problems(t: Template) -> list[str]:
    """Each work queue has a consumer; visibility timeout >= 6 x consumer timeout + its batching
    window; partial batch failures."""
    problems = []
    consumers = sqs_consumers(t)
    for name, queue in of_type(t, "AWS::SQS::Queue").items():
        if is_dlq(name) and name not in consumers:
            continue
        if name not in consumers:
            problems.append(f"{name}: no function consumes it")
        visibility = props(queue).get("VisibilityTimeout", 30)
        for fn, event in consumers.get(name, []):
            timeout = function_props(t, fn).get("Timeout", 3)
            window = event.get("MaximumBatchingWindowInSeconds", 0)
            if not isinstance(visibility, int) or visibility < 6 * timeout + window:
                problems.append(f"{name}: VisibilityTimeout {visibility} < 6 x {fn} Timeout {timeout} + {window}")
            if "ReportBatchItemFailures" not in event.get("FunctionResponseTypes", []):
                problems.append(f"{name}: {fn} does not report batch item failures")
    return problems


def api_problems(t: Template) -> list[str]:
    problems = []
    apis = of_type(t, "AWS::Serverless::Api")
    if "CallbackApi" not in apis:
        problems.append("CallbackApi (AWS::Serverless::Api) missing")
    for name, api in apis.items():
        a = props(api)
        defaults = [
            m for m in a.get("MethodSettings", []) if m.get("ResourcePath") == "/*" and m.get("HttpMethod") == "*"
        ]
        if not defaults or not {"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(defaults[0]):
            problems.append(f"{name}: no default (/*, *) throttling rate and burst")
        # Opt-in (it needs the account's API Gateway CloudWatch role): absent by default, complete when on.
        if t["Parameters"].get("ApiAccessLogging", {}).get("Default") != "false":
            problems.append('ApiAccessLogging must default to "false": a new account has no API Gateway logging role')
        for scenario_name, sc in scenarios(t):
            access_log = props(sc["Resources"][name]).get("AccessLogSetting")
            logging_on = conditions_for(t, SCENARIOS[scenario_name]).get("AccessLogOn", False)
            if not logging_on:
                if access_log is not None:
                    problems.append(f"[{scenario_name}] {name}: access logging on by default")
                continue
            access_log = access_log or {}
            target = getatt(access_log.get("DestinationArn"))
            groups = of_type(sc, "AWS::Logs::LogGroup")
            if not target or target[0] not in groups or "RetentionInDays" not in props(groups[target[0]]):
                problems.append(f"[{scenario_name}] {name}: access logs do not go to a log group with retention")
            try:
                json.loads(access_log.get("Format", ""))
            except ValueError:
                problems.append(f"[{scenario_name}] {name}: access log format is not JSON")
        if a.get("TracingEnabled") is not True:
            problems.append(f"{name}: X-Ray tracing off")
        policy = a.get("Auth", {}).get("ResourcePolicy", {})
        ip_conditions = [
            st["Condition"]["NotIpAddress"]["aws:SourceIp"]
            for _, st in statements(policy)
            if st["Effect"] == "Deny" and "NotIpAddress" in st.get("Condition", {})
        ]
        if ref(policy.get("IpRangeWhitelist")) != "CallbackSourceCidrs" and not any(
            ref(c) == "CallbackSourceCidrs" for c in ip_conditions
        ):
            problems.append(f"{name}: resource policy does not restrict callers to CallbackSourceCidrs")
    routes = [
        (fn, e["Properties"])
        for fn in of_type(t, "AWS::Serverless::Function")
        for e in props(t["Resources"][fn]).get("Events", {}).values()
        if e["Type"] == "Api"
    ]
    if not any(
        fn == "CallbackFunction"
        and ref(r.get("RestApiId")) == "CallbackApi"
        and r.get("Path") == "/ccfs/callback"
        and r.get("Method", "").lower() == "post"
        for fn, r in routes
    ):
        problems.append("CallbackFunction is not routed from POST /ccfs/callback on CallbackApi")
    return problems


def dynamodb_problems(t: Template) -> list[str]:
    problems = []
    for scenario_name, s in scenarios(t):
        for name in ("JobsTable", "IdempotencyTable"):
            table = props(s["Resources"][name])
            where = f"[{scenario_name}] {name}"
            if table.get("BillingMode") != "PAY_PER_REQUEST":
                problems.append(f"{where}: not PAY_PER_REQUEST")
            if table.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
                problems.append(f"{where}: point-in-time recovery off")
            if table.get("SSESpecification", {}).get("SSEEnabled") is not True:
                problems.append(f"{where}: SSE not enabled")
        jobs = props(s["Resources"]["JobsTable"])
        if jobs.get("KeySchema") != [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ]:
            problems.append(f"[{scenario_name}] JobsTable: key is not pk (HASH) + sk (RANGE)")
        if jobs.get("TimeToLiveSpecification") != {"AttributeName": "expires_at", "Enabled": True}:
            problems.append(f"[{scenario_name}] JobsTable: TTL on expires_at not enabled")
        gsi = {g["IndexName"]: g for g in jobs.get("GlobalSecondaryIndexes", [])}.get("by-status", {})
        if gsi.get("KeySchema") != [
            {"AttributeName": "job_status", "KeyType": "HASH"},
            {"AttributeName": "status_at", "KeyType": "RANGE"},
        ] or gsi.get("Projection") != {"ProjectionType": "ALL"}:
            problems.append(f"[{scenario_name}] JobsTable: by-status GSI (job_status, status_at, ALL) missing")
        idem = props(s["Resources"]["IdempotencyTable"])
        if idem.get("KeySchema") != [{"AttributeName": "id", "KeyType": "HASH"}]:
            problems.append(f"[{scenario_name}] IdempotencyTable: key is not id (HASH), the Powertools layout")
        if idem.get("TimeToLiveSpecification") != {"AttributeName": "expiration", "Enabled": True}:
            problems.append(f"[{scenario_name}] IdempotencyTable: TTL on expiration not enabled")
    return problems


_SECRET_NAME = re.compile(
    r"(^|_)(AK|SK|PASSWORD|PASSWD|PWD|SECRET_KEY|ACCESS_KEY|SECRET_ACCESS_KEY|PRIVATE_KEY|API_KEY|TOKEN)(_|$)"
)


_KEY_LIKE = re.compile(r"^[A-Za-z0-9+/=_-]{16,}$")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def secret_problems(t: Template) -> list[str]:
    """Credentials come from Secrets Manager only: no parameter or variable carries one."""
    problems = []
    params = t.get("Parameters", {})
    for name, spec in params.items():
        if _SECRET_NAME.search(_snake(name)):
            problems.append(f"parameter {name} looks like a credential")
        if spec.get("NoEcho"):
            problems.append(f"parameter {name} is NoEcho: secrets must come from Secrets Manager")
    for fn in of_type(t, "AWS::Serverless::Function"):
        for var, value in function_props(t, fn)["Environment"]["Variables"].items():
            if _SECRET_NAME.search(var):
                problems.append(f"{fn}: environment variable {var} looks like a credential")
            if isinstance(value, str) and _KEY_LIKE.match(value):
                problems.append(f"{fn}: {var} has a literal value that looks like a key")
            if "SECRET" in var:
                param = ref(value)
                pattern = params.get(param or "", {}).get("AllowedPattern", "")
                if not pattern.startswith("^arn:") or "secretsmanager" not in pattern:
                    problems.append(f"{fn}: {var} is not a reference to a Secrets Manager ARN parameter")
    return problems


def function_problems(t: Template) -> list[str]:
    problems = []
    functions = of_type(t, "AWS::Serverless::Function")
    if set(functions) != FUNCTIONS:
        problems.append(f"functions are {sorted(functions)}, expected {sorted(FUNCTIONS)}")
    for fn in functions:
        fp = function_props(t, fn)
        expected = {
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "Handler": "app.lambda_handler",
            "Tracing": "Active",
        }
        for key, value in expected.items():
            if fp.get(key) != value:
                problems.append(f"{fn}: {key} is {fp.get(key)!r}, expected {value!r}")
        if {"Ref": "SharedLayer"} not in fp["Layers"]:
            problems.append(f"{fn}: does not use SharedLayer")
        for key in ("Timeout", "MemorySize"):
            if not isinstance(fp.get(key), int):
                problems.append(f"{fn}: no explicit {key}")
        code = ROOT / str(fp.get("CodeUri")) / "app.py"
        if not code.is_file() or "def lambda_handler" not in code.read_text(encoding="utf-8"):
            problems.append(f"{fn}: {code} has no lambda_handler")
        missing_env = GLOBAL_ENV - set(fp["Environment"]["Variables"])
        if missing_env:
            problems.append(f"{fn}: environment lacks {sorted(missing_env)}")
    if "CALLBACK_URL" not in function_props(t, "RequestExportFunction")["Environment"]["Variables"]:
        problems.append("RequestExportFunction: no CALLBACK_URL")
    # The grace period for late recordings is used by the copier (download) and checked against the
    # stalled-job limit by the reconciler (request_export): both must see the stack's parameter.
    for fn in ("RequestExportFunction", "DownloadFunction"):
        grace = function_props(t, fn)["Environment"]["Variables"].get("RECORDING_GRACE_HOURS")
        if grace != {"Ref": "RecordingGraceHours"}:
            problems.append(f"{fn}: RECORDING_GRACE_HOURS is {grace!r}, expected the RecordingGraceHours parameter")
    layer = t["Resources"].get("SharedLayer", {})
    lp, meta = props(layer), layer.get("Metadata", {})
    if (
        layer.get("Type") != "AWS::Serverless::LayerVersion"
        or lp.get("ContentUri") != "layers/shared"
        or lp.get("CompatibleRuntimes") != ["python3.13"]
        or lp.get("CompatibleArchitectures") != ["arm64"]
        or meta != {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
    ):
        problems.append("SharedLayer: not a python3.13/arm64 layer built from layers/shared")
    for name, type_ in DATA_RESOURCES.items():
        if t["Resources"].get(name, {}).get("Type") != type_:
            problems.append(f"{name}: expected a plain {type_} (the local stack creates it by this id)")
    return problems


def log_group_problems(t: Template) -> list[str]:
    problems = []
    log_groups = of_type(t, "AWS::Logs::LogGroup")
    for name, group in log_groups.items():
        if "RetentionInDays" not in props(group):
            problems.append(f"{name}: no retention")
    names = [props(g).get("LogGroupName") for g in log_groups.values()]
    for fn in of_type(t, "AWS::Serverless::Function"):
        if {"Fn::Sub": f"/aws/lambda/${{{fn}}}"} not in names:
            problems.append(f"{fn}: no explicit /aws/lambda/<function> log group")
    retention = t["Parameters"].get("LogRetentionDays", {})
    if retention.get("Default") not in retention.get("AllowedValues", []):
        problems.append("LogRetentionDays: default not among the CloudWatch retention values")
    return problems


def schedule_problems(t: Template) -> list[str]:
    problems = []
    if t["Parameters"].get("ScheduleEnabled", {}).get("Default") != "false":
        problems.append('ScheduleEnabled must default to "false": a deploy must not start calling CC-FS')
    for scenario_name, s in scenarios(t):
        schedule_on = conditions_for(t, SCENARIOS[scenario_name])["ScheduleOn"]
        schedules = [
            props(r)
            for r in of_type(s, "AWS::Scheduler::Schedule").values()
            if getatt(props(r).get("Target", {}).get("Arn")) == ("RequestExportFunction", "Arn")
        ]
        sam_events = [
            e
            for e in props(s["Resources"]["RequestExportFunction"]).get("Events", {}).values()
            if e["Type"] in ("Schedule", "ScheduleV2")
        ]
        if len(schedules) != 1 or sam_events:
            problems.append(
                f"[{scenario_name}] RequestExportFunction needs exactly one AWS::Scheduler::Schedule (and no SAM"
                " schedule event: SAM names its schedule after the logical id, the same in every stack)"
            )
            continue
        expected = "ENABLED" if schedule_on else "DISABLED"
        if schedules[0].get("State") != expected:
            problems.append(f"[{scenario_name}] schedule state {schedules[0].get('State')!r}, expected {expected}")
        target = schedules[0]["Target"]
        if "DeadLetterConfig" not in target or "RetryPolicy" not in target:
            problems.append(f"[{scenario_name}] schedule has no DeadLetterConfig/RetryPolicy")
    return problems


def alarm_problems(t: Template) -> list[str]:
    problems = []
    alarms = of_type(t, "AWS::CloudWatch::Alarm")
    env = function_props(t, "CallbackFunction")["Environment"]["Variables"]
    service, namespace = env["POWERTOOLS_SERVICE_NAME"], env["POWERTOOLS_METRICS_NAMESPACE"]
    for name, alarm in alarms.items():
        a = props(alarm)
        expected = "breaching" if a.get("MetricName") in HEARTBEAT_METRICS else "notBreaching"
        if a.get("TreatMissingData") != expected:
            problems.append(f"{name}: TreatMissingData is not {expected}")
        if {"Ref": "AlarmTopic"} not in a.get("AlarmActions", []):
            problems.append(f"{name}: does not notify AlarmTopic")
    errors_alarmed = {
        ref(d["Value"])
        for a in map(props, alarms.values())
        if (a.get("Namespace"), a.get("MetricName")) == ("AWS/Lambda", "Errors")
        for d in a.get("Dimensions", [])
        if d["Name"] == "FunctionName"
    }
    for fn in sorted(set(of_type(t, "AWS::Serverless::Function")) - errors_alarmed):
        problems.append(f"{fn}: no Errors alarm")
    for metric in sorted(CUSTOM_METRICS):
        if not any(
            a.get("MetricName") == metric
            and a.get("Namespace") == namespace
            and a.get("Dimensions") == [{"Name": "service", "Value": service}]
            for a in map(props, alarms.values())
        ):
            problems.append(f"no alarm on {namespace}/{metric} with dimension service={service}")
    if not any(
        a.get("MetricName") == "ExportFreshnessHours" and ref(a.get("Threshold")) == "FreshnessAlarmHours"
        for a in map(props, alarms.values())
    ):
        problems.append("no freshness alarm whose threshold is the FreshnessAlarmHours parameter")
    # Encrypted topic: the key must let CloudWatch use it (alias/aws/sns cannot, alarms would be dropped).
    topic = props(t["Resources"].get("AlarmTopic", {}))
    key = t["Resources"].get(ref(topic.get("KmsMasterKeyId")) or "", {})
    grants_cloudwatch = any(
        st["Effect"] == "Allow"
        and st.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"
        and {"kms:Decrypt", "kms:GenerateDataKey"} <= set(as_list(st.get("Action")))
        for _, st in statements(props(key).get("KeyPolicy", {}))
    )
    if key.get("Type") != "AWS::KMS::Key" or not grants_cloudwatch:
        problems.append("AlarmTopic: not encrypted with a key of this stack that CloudWatch may use")
    return problems


def output_problems(t: Template) -> list[str]:
    missing = REQUIRED_OUTPUTS - set(t.get("Outputs", {}))
    return [f"missing outputs: {sorted(missing)}"] if missing else []


CHECKERS: dict[str, Checker] = {
    "iam": iam_problems,
    "bucket": bucket_problems,
    "queues": queue_problems,
    "consumers": consumer_problems,
    "api": api_problems,
    "dynamodb": dynamodb_problems,
    "secrets": secret_problems,
    "functions": function_problems,
    "log-groups": log_group_problems,
    "schedule": schedule_problems,
    "alarms": alarm_problems,
    "outputs": output_problems,
}


# --------------------------------------------------------------------------- the template holds


@pytest.mark.parametrize("checker", CHECKERS.values(), ids=CHECKERS.keys())
def test_template_holds(template: Template, checker: Checker) -> None:
    assert checker(template) == []


def test_scenarios_cover_every_condition(template: Template) -> None:
    assert conditions_for(template, SCENARIOS["defaults"]) == dict.fromkeys(template["Conditions"], False)
    assert conditions_for(template, SCENARIOS["all-options"]) == dict.fromkeys(template["Conditions"], True)


# --------------------------------------------------------------------------- each check can fail


Mutation = Callable[[Template], None]
ENV = "Globals/Function/Environment/Variables"


def _locate(t: Template, path: str) -> tuple[Any, Any]:
    *parents, last = path.split("/")
    node: Any = t
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node, int(last) if isinstance(node, list) else last


def put(path: str, value: Any) -> Mutation:
    def mutate(t: Template) -> None:
        node, key = _locate(t, path)
        node[key] = value

    return mutate


def drop(path: str) -> Mutation:
    def mutate(t: Template) -> None:
        node, key = _locate(t, path)
        del node[key]

    return mutate


def put_in_statement(resource: str, sid: str, key: str, value: Any) -> Mutation:
    """Change the statement ``sid`` wherever it sits in ``resource`` (also inside an !If)."""

    def mutate(t: Template) -> None:
        found = [st for _, st in statements(t["Resources"][resource]) if st.get("Sid") == sid]
        assert found, f"{resource} has no statement {sid}"
        for st in found:
            st[key] = value

    return mutate


def at(resource: str, path: str = "") -> str:
    return f"Resources/{resource}/Properties/{path}".rstrip("/")


MUTATIONS: dict[str, tuple[Checker, Mutation]] = {
    "iam-star-action": (iam_problems, put_in_statement("CallbackFunction", "JobsReadWrite", "Action", "*")),
    "iam-service-star": (iam_problems, put_in_statement("DownloadFunction", "ExportObjects", "Action", "s3:*")),
    "iam-star-resource": (iam_problems, put_in_statement("CallbackFunction", "JobsReadWrite", "Resource", "*")),
    "iam-star-in-if": (iam_problems, put_in_statement("DownloadFunction", "UseCustomerKey", "Resource", "*")),
    "iam-managed-policy": (iam_problems, put(at("CallbackFunction", "Policies/0"), "AdministratorAccess")),
    "iam-literal-template-arg": (
        iam_problems,
        put(at("DownloadFunction", "Policies/0"), {"DynamoDBCrudPolicy": {"TableName": "*"}}),
    ),
    "iam-public-allow": (
        iam_problems,
        put(
            at("ExportBucketPolicy", "PolicyDocument/Statement/0"),
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
        ),
    ),
    "iam-stale-exception": (iam_problems, put_in_statement("AlarmTopicKey", "EnableIamPolicies", "Sid", "Renamed")),
    "bucket-aes256": (
        bucket_problems,
        put(
            at(
                "ExportBucket",
                "BucketEncryption/ServerSideEncryptionConfiguration/0/ServerSideEncryptionByDefault/SSEAlgorithm",
            ),
            "AES256",
        ),
    ),
    "bucket-public-policy": (
        bucket_problems,
        put(at("ExportBucket", "PublicAccessBlockConfiguration/BlockPublicPolicy"), False),
    ),
    "bucket-unversioned": (bucket_problems, put(at("ExportBucket", "VersioningConfiguration/Status"), "Suspended")),
    "bucket-no-abort-multipart": (
        bucket_problems,
        drop(at("ExportBucket", "LifecycleConfiguration/Rules/0/AbortIncompleteMultipartUpload")),
    ),
    "bucket-no-tls-policy": (bucket_problems, drop("Resources/ExportBucketPolicy")),
    "bucket-lock-default-retention": (
        bucket_problems,
        put(
            at("ExportBucket", "ObjectLockConfiguration/Fn::If/1/Rule"),
            {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        ),
    ),
    "bucket-lock-always-on": (bucket_problems, put(at("ExportBucket", "ObjectLockEnabled"), True)),
    "bucket-lock-never-on": (bucket_problems, drop(at("ExportBucket", "ObjectLockConfiguration"))),
    "queue-no-sse": (queue_problems, put(at("BillQueue", "SqsManagedSseEnabled"), False)),
    "queue-no-redrive": (queue_problems, drop(at("RecordingQueue", "RedrivePolicy"))),
    "queue-dlq-short-retention": (queue_problems, put(at("BillDLQ", "MessageRetentionPeriod"), 345600)),
    "queue-receive-count-drift": (queue_problems, put(at("BillQueue", "RedrivePolicy/maxReceiveCount"), 3)),
    "queue-dlq-unalarmed": (queue_problems, drop("Resources/ScheduleDLQAlarm")),
    "visibility-too-short": (consumer_problems, put(at("BillQueue", "VisibilityTimeout"), 900)),
    "visibility-consumer-slower": (consumer_problems, put(at("RequestExportFunction", "Timeout"), 900)),
    "visibility-ignores-batching-window": (consumer_problems, put(at("RecordingQueue", "VisibilityTimeout"), 5400)),
    "consumer-no-partial-failures": (
        consumer_problems,
        drop(at("DownloadFunction", "Events/Recordings/Properties/FunctionResponseTypes")),
    ),
    "api-no-throttling": (api_problems, drop(at("CallbackApi", "MethodSettings"))),
    "api-no-access-log": (api_problems, drop(at("CallbackApi", "AccessLogSetting"))),
    "api-access-log-by-default": (api_problems, put("Parameters/ApiAccessLogging/Default", "true")),
    "api-text-access-log": (
        api_problems,
        put(at("CallbackApi", "AccessLogSetting/Fn::If/1/Format"), "$context.requestId $context.status"),
    ),
    "api-no-resource-policy": (api_problems, drop(at("CallbackApi", "Auth"))),
    "dynamodb-no-pitr": (dynamodb_problems, drop(at("JobsTable", "PointInTimeRecoverySpecification"))),
    "dynamodb-no-ttl": (dynamodb_problems, drop(at("IdempotencyTable", "TimeToLiveSpecification"))),
    "dynamodb-no-gsi": (dynamodb_problems, drop(at("JobsTable", "GlobalSecondaryIndexes"))),
    "secret-sk-parameter": (secret_problems, put("Parameters/CcfsSk", {"Type": "String"})),
    "secret-noecho-parameter": (secret_problems, put("Parameters/CcfsCredential", {"Type": "String", "NoEcho": True})),
    "secret-ak-env": (secret_problems, put(f"{ENV}/CCFS_AK", {"Ref": "CcfsBaseUrl"})),
    "secret-literal-env": (secret_problems, put(f"{ENV}/CCFS_SECRET_ARN", "testsk")),
    "secret-key-like-value": (secret_problems, put(f"{ENV}/CCFS_SIGNING", "d8e8fca2dc0f896fd7cb4cb0031ba249")),
    "function-x86": (function_problems, put("Globals/Function/Architectures", ["x86_64"])),
    "function-no-layer": (function_problems, put("Globals/Function/Layers", [])),
    "function-runtime": (function_problems, put(at("CallbackFunction", "Runtime"), "python3.12")),
    "function-handler": (function_problems, put(at("DownloadFunction", "Handler"), "main.handler")),
    "function-env-missing": (function_problems, drop(f"{ENV}/JOBS_TABLE")),
    "function-reconciler-without-grace": (
        function_problems,
        drop(at("RequestExportFunction", "Environment/Variables/RECORDING_GRACE_HOURS")),
    ),
    "function-data-resource-type": (function_problems, put("Resources/JobsTable/Type", "AWS::Serverless::SimpleTable")),
    "log-group-missing": (log_group_problems, drop("Resources/DownloadLogGroup")),
    "log-group-no-retention": (log_group_problems, drop(at("CallbackLogGroup", "RetentionInDays"))),
    "schedule-default-on": (schedule_problems, put("Parameters/ScheduleEnabled/Default", "true")),
    "schedule-always-enabled": (
        schedule_problems,
        put(at("PlanningSchedule", "State"), "ENABLED"),
    ),
    "alarm-no-errors": (alarm_problems, drop("Resources/CallbackErrorsAlarm")),
    "alarm-wrong-dimension": (alarm_problems, put(at("JobsFailedAlarm", "Dimensions/0/Value"), "other")),
    "alarm-unrecognised-bill-entries": (alarm_problems, drop("Resources/BillEntriesUnrecognisedAlarm")),
    "alarm-missing-data-breaches": (alarm_problems, put(at("RecordingsFailedAlarm", "TreatMissingData"), "breaching")),
    "alarm-heartbeat-silent": (alarm_problems, put(at("PlanningHeartbeatAlarm", "TreatMissingData"), "notBreaching")),
    "alarm-no-freshness": (alarm_problems, drop("Resources/FreshnessAlarm")),
    "alarm-freshness-fixed-threshold": (alarm_problems, put(at("FreshnessAlarm", "Threshold"), 24)),
    "alarm-aws-managed-sns-key": (alarm_problems, put(at("AlarmTopic", "KmsMasterKeyId"), "alias/aws/sns")),
    "outputs-missing": (output_problems, drop("Outputs/BillDLQUrl")),
}


@pytest.mark.parametrize(("checker", "mutate"), MUTATIONS.values(), ids=MUTATIONS.keys())
def test_checker_catches(template: Template, checker: Checker, mutate: Mutation) -> None:
    mutate(template)
    assert checker(template) != []


def test_every_checker_has_a_mutation() -> None:
    covered = {checker for checker, _ in MUTATIONS.values()}
    assert set(CHECKERS.values()) <= covered


def test_loader_understands_short_form_tags() -> None:
    doc = "a: !Ref X\nb: !GetAtt Y.Arn\nc: !Sub '${X}'\nd: !If [C, 1, 2]\ne: !Join [',', !Ref L]"
    assert yaml.load(doc, Loader=CfnLoader) == {
        "a": {"Ref": "X"},
        "b": {"Fn::GetAtt": ["Y", "Arn"]},
        "c": {"Fn::Sub": "${X}"},
        "d": {"Fn::If": ["C", 1, 2]},
        "e": {"Fn::Join": [",", {"Ref": "L"}]},
    }


def test_all_resources_are_checked_in_both_scenarios(template: Template) -> None:
    """Conditional resources exist exactly when their condition holds."""
    defaults, everything = scenario(template, "defaults"), scenario(template, "all-options")
    conditional = {k for k, r in template["Resources"].items() if "Condition" in r}
    assert conditional and conditional.isdisjoint(defaults["Resources"])
    assert conditional <= set(everything["Resources"])
    assert set(defaults["Resources"]) == set(template["Resources"]) - conditional
