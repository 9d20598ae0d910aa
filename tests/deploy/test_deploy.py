"""The stack as CloudFormation will see it: template.yaml translated by samtranslator (as ``sam deploy``
does, offline: a stub managed-policy map, no AWS calls) under the default parameters, under every
``samconfig.toml`` environment and with every option switched on, then checked against what a first
deploy in a fresh account needs and against what the code actually does (tests/deploy/codescan.py).

The static checks of the untranslated template (encryption, retention, ...) are in
tests/deploy/test_template.py; this module owns everything that depends on parameter values.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from local.stack.cfn import Resolver, load_template, translate
from tests.deploy.codescan import BOTO3_ACTIONS, scan
from tests.deploy.conditions import pick_conditions

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
README = ROOT / "README.md"
SCHEDULE_EVENT = ROOT / "events" / "schedule.json"

# function logical id -> its code directory
FUNCTIONS = {
    "RequestExportFunction": "request_export",
    "CallbackFunction": "callback",
    "DownloadFunction": "download",
}

# What a deployer must supply (no defaults), with values that pass the template's patterns.
REQUIRED = {
    "CcfsBaseUrl": "https://ccfs.example.com:28443",
    "CcfsSecretArn": "arn:aws:secretsmanager:ap-southeast-1:111122223333:secret:aicc-export/dev/ccfs-AbCdEf",
    "CallbackSourceCidrs": "203.0.113.10/32,203.0.113.11/32",
}
EVERYTHING = {
    **REQUIRED,
    "KmsKeyArn": "arn:aws:kms:ap-southeast-1:111122223333:key/0b1c2d3e-aaaa-bbbb-cccc-111122223333",
    "AlarmEmail": "ops@example.com",
    "CcfsCaBundleParameter": "/aicc-export/ccfs-ca",
    "ScheduleEnabled": "true",
    "ApiAccessLogging": "true",
    "CallbackWafRateLimit": "100",
    "VpcSubnetIds": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
    "VpcSecurityGroupIds": "sg-0123456789abcdef0",
    "TenantAccountIds": "tenant001,tenant002",
    "ObjectLockMode": "GOVERNANCE",
    "ObjectLockRetentionDays": "90",
}

_PLACEHOLDER = re.compile(r"<[^>]+>")
# samtranslator substitutes the stack name where it resolves ${AWS::StackName}: a distinctive one
# shows which names are stack-scoped.
STACK_NAME = "stack-name-probe"


def samconfig() -> dict[str, Any]:
    return tomllib.loads(SAMCONFIG.read_text(encoding="utf-8"))


def samconfig_overrides(env: str) -> dict[str, str]:
    overrides = samconfig()[env]["deploy"]["parameters"].get("parameter_overrides", [])
    if isinstance(overrides, str):  # the one-string form sam also accepts
        overrides = re.findall(r'(\w+=(?:"[^"]*"|\S+))', overrides)
    return dict(item.split("=", 1) for item in overrides)


def samconfig_envs() -> list[str]:
    return [env for env, section in samconfig().items() if isinstance(section, dict) and "deploy" in section]


SCENARIOS: dict[str, dict[str, str]] = {
    "defaults": REQUIRED,
    "everything": EVERYTHING,
    # The VPC without the other options: the switch alone must place the CC-FS callers.
    "vpc-only": {**REQUIRED, "VpcSubnetIds": "subnet-0123456789abcdef0", "VpcSecurityGroupIds": "sg-0123456789abcdef0"},
    **{f"samconfig-{env}": {} for env in samconfig_envs()},
}


def scenario_parameters(name: str) -> dict[str, str]:
    if name.startswith("samconfig-"):
        # Placeholders in <...> are meant to fail validation until edited; give them a valid value.
        return {k: _PLACEHOLDER.sub("tenant001", v) for k, v in samconfig_overrides(name[10:]).items()}
    return dict(SCENARIOS[name])


# --------------------------------------------------------------------------- translation


@cache
def sam_template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def parameter_values(params: dict[str, str]) -> dict[str, Any]:
    """Every parameter's value for a deploy with ``params`` (defaults filled in, lists split)."""
    values: dict[str, Any] = {}
    for name, spec in sam_template()["Parameters"].items():
        raw = params.get(name, spec.get("Default"))
        if raw is None:
            continue
        raw = str(raw)
        values[name] = [v for v in raw.split(",") if v] if spec["Type"] == "CommaDelimitedList" else raw
    return values


@dataclass
class Deployed:
    name: str
    params: dict[str, Any]
    conditions: dict[str, bool]
    resources: dict[str, dict[str, Any]]

    def of_type(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.resources.items() if r["Type"] == type_}

    def props(self, logical_id: str) -> dict[str, Any]:
        return self.resources[logical_id].get("Properties", {})

    def value(self, node: Any) -> Any:
        """``node`` with parameter references evaluated (Ref, Split, Join); resource refs stay."""
        if isinstance(node, list):
            return [self.value(v) for v in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"} and node["Ref"] in self.params:
            return self.params[node["Ref"]]
        if set(node) == {"Fn::Split"}:
            sep, text = node["Fn::Split"]
            return str(self.value(text)).split(sep)
        if set(node) == {"Fn::Join"}:
            sep, items = node["Fn::Join"]
            return sep.join(str(v) for v in self.value(items))
        return {k: self.value(v) for k, v in node.items()}


@cache
def deployed(name: str) -> Deployed:
    params = scenario_parameters(name)
    values = parameter_values(params)  # CloudFormation hands the transform lists for CommaDelimitedList
    cfn, _ = translate(sam_template(), values, STACK_NAME)
    resolver = Resolver(parameters=values, conditions=cfn.get("Conditions", {}))
    conditions = {c: resolver.condition(c) for c in cfn.get("Conditions", {})}
    resources = {
        lid: pick_conditions(copy.deepcopy(r), conditions)
        for lid, r in cfn["Resources"].items()
        if conditions.get(r.get("Condition", ""), True)
    }
    return Deployed(name, values, conditions, resources)


@pytest.fixture(params=list(SCENARIOS))
def stack(request: pytest.FixtureRequest) -> Deployed:
    return deployed(request.param)


def getatt(x: Any) -> str | None:
    if isinstance(x, dict) and set(x) == {"Fn::GetAtt"}:
        target = x["Fn::GetAtt"]
        return (target if isinstance(target, list) else target.split("."))[0]
    return None


def ref(x: Any) -> str | None:
    return x["Ref"] if isinstance(x, dict) and set(x) == {"Ref"} else None


def as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else [x]


# --------------------------------------------------------------------------- parameters and rules


def parameter_problems(params: dict[str, str]) -> list[str]:
    """What CloudFormation would refuse before creating anything (types, patterns, ranges)."""
    problems = []
    spec_of = sam_template()["Parameters"]
    for name in params:
        if name not in spec_of:
            problems.append(f"{name}: not a template parameter")
    for name, spec in spec_of.items():
        if name not in params and "Default" not in spec:
            problems.append(f"{name}: required (no default) but not given")
            continue
        raw = str(params.get(name, spec.get("Default")))
        items = raw.split(",") if spec["Type"] == "CommaDelimitedList" else [raw]
        for item in items:
            if "AllowedValues" in spec and item not in [str(v) for v in spec["AllowedValues"]]:
                problems.append(f"{name}={item!r}: not one of {spec['AllowedValues']}")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], item):
                problems.append(f"{name}={item!r}: does not match {spec['AllowedPattern']}")
            if spec["Type"] == "Number":
                number = float(item)
                if number < spec.get("MinValue", number) or number > spec.get("MaxValue", number):
                    problems.append(f"{name}={item}: outside {spec.get('MinValue')}..{spec.get('MaxValue')}")
    return problems


def _rule_value(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ((fn, arg),) = node.items()
        if fn == "Ref":
            return values[arg]
        if fn == "Fn::Equals":
            left, right = (_rule_value(a, values) for a in arg)
            return str(left) == str(right)
        if fn == "Fn::Not":
            return not _rule_value(arg[0], values)
        if fn == "Fn::And":
            return all(_rule_value(a, values) for a in arg)
        if fn == "Fn::Or":
            return any(_rule_value(a, values) for a in arg)
        if fn == "Fn::Contains":
            haystack, needle = (_rule_value(a, values) for a in arg)
            return needle in haystack
        raise AssertionError(f"rule function {fn} not modelled")
    return node


def rule_problems(params: dict[str, str]) -> list[str]:
    """The template's Rules evaluated as CloudFormation evaluates them before a change set."""
    values = parameter_values(params)
    problems = []
    for name, rule in sam_template().get("Rules", {}).items():
        if "RuleCondition" in rule and not _rule_value(rule["RuleCondition"], values):
            continue
        for assertion in rule["Assertions"]:
            if not _rule_value(assertion["Assert"], values):
                problems.append(f"{name}: {assertion.get('AssertDescription', '')}")
    return problems


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_parameters_pass_the_templates_checks(name: str) -> None:
    params = scenario_parameters(name)
    assert parameter_problems(params) == []
    assert rule_problems(params) == []


def test_samconfig_placeholders_fail_until_edited() -> None:
    """The samconfig's <...> placeholders stop an unedited deploy (by the template's own patterns)."""
    for env in samconfig_envs():
        raw = samconfig_overrides(env)
        if any(_PLACEHOLDER.search(v) for v in raw.values()):
            assert parameter_problems(raw) != [], env


def test_callback_sources_must_be_given_and_are_never_open_by_default() -> None:
    spec = sam_template()["Parameters"]["CallbackSourceCidrs"]
    assert "Default" not in spec
    without = {k: v for k, v in REQUIRED.items() if k != "CallbackSourceCidrs"}
    assert any("CallbackSourceCidrs" in p for p in parameter_problems(without))
    for open_cidr in ("0.0.0.0/0", "203.0.113.10/32,0.0.0.0/0", "::/0"):
        assert parameter_problems({**REQUIRED, "CallbackSourceCidrs": open_cidr}) == []
        assert rule_problems({**REQUIRED, "CallbackSourceCidrs": open_cidr}) != [], open_cidr
        opted_in = {**REQUIRED, "CallbackSourceCidrs": open_cidr, "AllowCallbackFromAnywhere": "true"}
        assert rule_problems(opted_in) == []


def test_vpc_subnets_and_security_groups_come_together() -> None:
    assert rule_problems({**REQUIRED, "VpcSubnetIds": "subnet-0123456789abcdef0"}) != []
    assert rule_problems({**REQUIRED, "VpcSecurityGroupIds": "sg-0123456789abcdef0"}) != []


# --------------------------------------------------------------------------- first deploy


def test_first_deploy_needs_no_account_level_setup() -> None:
    """Stage logging needs the account's API Gateway CloudWatch role, absent in a new account: with
    the defaults nothing on the stage logs. The stack never sets that account-wide role
    (AWS::ApiGateway::Account), which would outlive a stack deletion pointing at a deleted role."""
    for name in SCENARIOS:
        s = deployed(name)
        assert not s.of_type("AWS::ApiGateway::Account"), name
        for stage in s.of_type("AWS::ApiGateway::Stage").values():
            for setting in stage["Properties"].get("MethodSettings", []):
                assert "LoggingLevel" not in setting and not setting.get("DataTraceEnabled"), name
    defaults = deployed("defaults")
    for stage in defaults.of_type("AWS::ApiGateway::Stage").values():
        assert "AccessLogSetting" not in stage["Properties"]
    logged = deployed("everything")
    (stage,) = logged.of_type("AWS::ApiGateway::Stage").values()
    group = getatt(stage["Properties"]["AccessLogSetting"]["DestinationArn"])
    assert group in logged.of_type("AWS::Logs::LogGroup")
    json.loads(stage["Properties"]["AccessLogSetting"]["Format"])


# Properties that name a resource in the account (unique per account and region, or per API).
_NAME_PROPERTY = re.compile(r"^(Name|[A-Z]\w*Name)$")
_NOT_PHYSICAL = {"MetricName", "StageName", "IndexName", "AttributeName", "PolicyName"}


def _names_stack_or_resource(value: Any, resources: set[str]) -> bool:
    """Scoped to the stack: mentions the stack name (samtranslator substitutes it where it resolves
    ``${AWS::StackName}``), or is derived from a resource of the stack by Ref/GetAtt/Sub. A literal
    is fixed, even one that happens to equal a logical id (SAM's ``RequestExportFunctionTick``)."""
    text = json.dumps(value)
    if "AWS::StackName" in text or STACK_NAME in text:
        return True
    if isinstance(value, str):
        return False
    return any(f'"{r}"' in text or "${" + r in text for r in resources)


def test_no_fixed_physical_names(stack: Deployed) -> None:
    """A name that is the same in every stack makes the second stack in an account fail (the SAM
    ScheduleV2 event names its schedule after the logical id)."""
    problems = []
    for lid, resource in stack.resources.items():
        for key, value in resource.get("Properties", {}).items():
            if not _NAME_PROPERTY.match(key) or key in _NOT_PHYSICAL:
                continue
            if key == "FunctionName" and resource["Type"] != "AWS::Lambda::Function":
                continue  # a reference to a function (event source mapping, permission, ...)
            if not _names_stack_or_resource(value, set(stack.resources)):
                problems.append(f"{lid}.{key} = {value!r}")
    assert problems == []


# --------------------------------------------------------------------------- queues and idempotency


def _consumers(stack: Deployed) -> list[tuple[str, str, dict[str, Any]]]:
    """(queue, function, event source mapping properties) for every SQS mapping."""
    found = []
    for mapping in stack.of_type("AWS::Lambda::EventSourceMapping").values():
        p = mapping["Properties"]
        queue = getatt(p["EventSourceArn"])
        if queue in stack.of_type("AWS::SQS::Queue"):
            found.append((queue, ref(p["FunctionName"]) or "", p))
    return found


def test_visibility_timeout_covers_six_consumer_timeouts_plus_batching(stack: Deployed) -> None:
    problems = []
    for queue, function, mapping in _consumers(stack):
        visibility = int(stack.props(queue).get("VisibilityTimeout", 30))
        timeout = int(stack.props(function).get("Timeout", 3))
        window = int(mapping.get("MaximumBatchingWindowInSeconds", 0))
        if visibility < 6 * timeout + window:
            problems.append(f"{queue}: VisibilityTimeout {visibility} < 6 x {timeout} + {window} ({function})")
    assert problems == []


def test_idempotency_records_outlive_every_redelivery(stack: Deployed) -> None:
    """A message can come back until maxReceiveCount visibility timeouts have passed: the Powertools
    idempotency record of its successful run must still be there."""
    for function, code_dir in FUNCTIONS.items():
        source = (ROOT / "functions" / code_dir / "app.py").read_text(encoding="utf-8")
        if "IdempotencyConfig" not in source:
            continue
        assert "expires_after_seconds=" in source, f"{code_dir}: IdempotencyConfig keeps Powertools' 1-hour expiry"
        env = stack.props(function)["Environment"]["Variables"]
        expiry = int(env["IDEMPOTENCY_EXPIRY_SECONDS"])
        for queue, consumer, _ in _consumers(stack):
            if consumer != function:
                continue
            q = stack.props(queue)
            receives = int(q.get("RedrivePolicy", {}).get("maxReceiveCount", 1))
            window = receives * int(q.get("VisibilityTimeout", 30))
            assert expiry >= window, f"{function}: idempotency expiry {expiry} s < {queue} redelivery window {window} s"


# --------------------------------------------------------------------------- alarms


@cache
def code_of(function: str) -> Any:
    return scan(FUNCTIONS[function])


def emitted_metrics() -> set[str]:
    return {m for f in FUNCTIONS for m in code_of(f).metrics}


_SQS_METRICS = {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"}
_LAMBDA_METRICS = {"Errors", "Throttles"}


def test_every_alarm_watches_a_metric_that_is_emitted(stack: Deployed) -> None:
    problems = []
    env = stack.props("CallbackFunction")["Environment"]["Variables"]
    namespace, service = env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"]
    for function in FUNCTIONS:  # one namespace and service for all (the alarms' dimension)
        fenv = stack.props(function)["Environment"]["Variables"]
        assert (fenv["POWERTOOLS_METRICS_NAMESPACE"], fenv["POWERTOOLS_SERVICE_NAME"]) == (namespace, service)
    apis = stack.of_type("AWS::ApiGateway::RestApi")
    stages = stack.of_type("AWS::ApiGateway::Stage")
    for lid, alarm in stack.of_type("AWS::CloudWatch::Alarm").items():
        a = alarm["Properties"]
        dims = {d["Name"]: d["Value"] for d in a.get("Dimensions", [])}
        ns, metric = a.get("Namespace"), a.get("MetricName")
        if ns == namespace:
            ok = metric in emitted_metrics() and dims == {"service": service}
        elif ns == "AWS/SQS":
            ok = (
                metric in _SQS_METRICS
                and set(dims) == {"QueueName"}
                and dims["QueueName"] == {"Fn::GetAtt": [getatt(dims["QueueName"]), "QueueName"]}
                and getatt(dims["QueueName"]) in stack.of_type("AWS::SQS::Queue")
            )
        elif ns == "AWS/Lambda":
            ok = metric in _LAMBDA_METRICS and set(dims) == {"FunctionName"} and ref(dims["FunctionName"]) in FUNCTIONS
        elif ns == "AWS/ApiGateway":
            api_names = [stack.value(p["Properties"].get("Name")) for p in apis.values()]
            stage_names = [stack.value(s["Properties"]["StageName"]) for s in stages.values()]
            ok = (
                metric in {"5XXError", "4XXError", "Count", "Latency"}
                and set(dims) == {"ApiName", "Stage"}
                and dims["ApiName"] in api_names
                and stack.value(dims["Stage"]) in stage_names
            )
        else:
            ok = False
        if not ok:
            problems.append(f"{lid}: {ns}/{metric} {dims} is not a metric this stack emits")
    assert problems == []


# --------------------------------------------------------------------------- dashboard

_SUB_REF = re.compile(r"\$\{([^}!]+)\}")
_SEARCH = re.compile(r"SEARCH\(\s*'\{([^}]*)\}([^']*)'")
# DLQs the dashboard need not show (same reasons as their missing alarms, tests/deploy/test_template.py).
_DLQS_OFF_DASHBOARD = {"AlarmEmailDLQ": "conditional on AlarmEmail; holds undeliverable alarm e-mails only"}


def dashboard_body(stack: Deployed, sub: Any) -> dict[str, Any]:
    """The dashboard's ``Fn::Sub`` body as JSON: parameters by value, pseudo parameters by a sample,
    a resource (``${X}``, ``${X.Attr}``) by a marker ``<X>`` / ``<X.Attr>`` that the checks resolve."""
    text = sub["Fn::Sub"]
    assert isinstance(text, str), "DashboardBody: one Fn::Sub string, no variable map"

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in stack.params:
            return str(stack.params[name])
        if name == "AWS::Region":
            return "ap-southeast-1"
        if name == "AWS::StackName":
            return STACK_NAME
        assert name.split(".")[0] in stack.resources, f"DashboardBody: ${{{name}}} names nothing in the stack"
        return f"<{name}>"

    return json.loads(_SUB_REF.sub(value, text))


def dashboard_metrics(body: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """Every metric the dashboard's widgets show, as (namespace, name, dimensions); a SEARCH
    expression as (namespace, its MetricName, its schema's dimension names mapped to ``*``)."""
    shown: list[tuple[str, str, dict[str, str]]] = []
    for widget in body["widgets"]:
        previous: list[Any] = []
        for metric in widget.get("properties", {}).get("metrics", []) if widget["type"] == "metric" else []:
            if isinstance(metric[0], dict):
                expression = metric[0]["expression"]
                for schema, terms in _SEARCH.findall(expression):
                    namespace, *dims = [p.strip() for p in schema.split(",")]
                    names = re.findall(r'MetricName="([^"]+)"', terms)
                    assert names, f"SEARCH without a MetricName: {expression}"
                    shown += [(namespace, name, dict.fromkeys(dims, "*")) for name in names]
                continue
            plain = [p for p in metric if not isinstance(p, dict)]
            full = [prev if part == "." else part for part, prev in zip(plain, [*previous, *plain], strict=False)]
            previous = full
            namespace, name, *pairs = full
            shown.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return shown


def dashboard_problems(stack: Deployed, body: dict[str, Any]) -> list[str]:
    """What the dashboard shows that nothing emits, and what it leaves out."""
    env = stack.props("CallbackFunction")["Environment"]["Variables"]
    namespace, service = env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"]
    queues = stack.of_type("AWS::SQS::Queue")
    problems = []
    seen: set[tuple[str, str, str]] = set()
    for ns, name, dims in dashboard_metrics(body):
        where = f"{ns}/{name} {dims}"
        if ns == namespace:
            if name not in emitted_metrics():
                problems.append(f"{where}: not a metric the code emits")
            if dims.get("service") not in (service, "*") or set(dims) - {"service", "tenant"}:
                problems.append(f"{where}: the code emits it with service={service} (and tenant)")
            seen.add((ns, name, "tenant" if "tenant" in dims else ""))
        elif ns == "AWS/SQS":
            queue = dims.get("QueueName", "")
            if name not in _SQS_METRICS or queue.removesuffix(".QueueName>").removeprefix("<") not in queues:
                problems.append(f"{where}: not a queue metric of this stack")
            seen.add((ns, name, queue.removesuffix(".QueueName>").removeprefix("<")))
        elif ns == "AWS/Lambda":
            function = dims.get("FunctionName", "").strip("<>")
            if name not in {"Errors", "Throttles", "Duration"} or function not in FUNCTIONS:
                problems.append(f"{where}: not a function metric of this stack")
            seen.add((ns, name, function))
        else:
            problems.append(f"{where}: a namespace this stack does not write")
    wanted = {(namespace, "ExportFreshnessHours", "tenant")}
    wanted |= {("AWS/Lambda", m, f) for f in FUNCTIONS for m in ("Errors", "Throttles", "Duration")}
    for queue in set(queues) - set(_DLQS_OFF_DASHBOARD):
        dlq = queue.endswith("DLQ")
        wanted.add(("AWS/SQS", "ApproximateNumberOfMessagesVisible" if dlq else "ApproximateAgeOfOldestMessage", queue))
    problems += [f"the dashboard does not show {ns}/{name} {what}" for ns, name, what in sorted(wanted - seen)]
    return problems


def _dashboard(stack: Deployed) -> dict[str, Any]:
    (props,) = [d["Properties"] for d in stack.of_type("AWS::CloudWatch::Dashboard").values()]
    return dashboard_body(stack, props["DashboardBody"])


def test_the_dashboard_shows_only_emitted_metrics_and_every_queue_and_function(stack: Deployed) -> None:
    body = _dashboard(stack)
    assert dashboard_problems(stack, body) == []
    shown = {name for ns, name, _ in dashboard_metrics(body) if ns == "AiccExport"}
    # jobs by outcome, recordings, bytes, CC-FS errors: the issue's list, by the code's names
    assert {"JobsCompleted", "JobsPartial", "JobsFailed", "RecordingsCopied", "RecordingsFailed"} <= shown
    assert {"RecordingsNotYetSynced", "RecordingBytes", "CcfsErrors", "PlanningLagMinutes"} <= shown
    assert all(w["properties"].get("region") == "ap-southeast-1" for w in body["widgets"] if w["type"] == "metric")


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ('"RecordingsCopied"', '"RecordingsCopyed"', "RecordingsCopyed {'service': 'aicc-export'}: not a metric"),
        ('MetricName=\\"ExportFreshnessHours\\"', 'MetricName=\\"FreshnessHours\\"', "FreshnessHours"),
        ('"service", "aicc-export", {"stat": "Sum", "label": "JobsFailed"}', '"service", "other"', "JobsFailed"),
        ("${RecordingDLQ.QueueName}", "${RecordingQueue.QueueName}", "RecordingDLQ"),
        ('"FunctionName", "${DownloadFunction}", {"label": "download"}]', '"FunctionName", "x"]', "DownloadFunction"),
    ],
    ids=["unknown-metric", "unknown-search-metric", "wrong-dimension", "dlq-missing", "function-missing"],
)
def test_the_dashboard_check_catches(before: str, after: str, expected: str) -> None:
    stack = deployed("defaults")
    (props,) = [d["Properties"] for d in stack.of_type("AWS::CloudWatch::Dashboard").values()]
    text = props["DashboardBody"]["Fn::Sub"]
    assert before in text
    problems = dashboard_problems(stack, dashboard_body(stack, {"Fn::Sub": text.replace(before, after, 1)}))
    assert any(expected in p for p in problems), problems


def test_a_stopped_pipeline_alarms_while_the_schedule_is_on(stack: Deployed) -> None:
    """Not every alarm may treat missing data as fine: with the schedule on, a heartbeat on a metric
    the planner reports every tick fires when the ticks stop (missing data breaches) or lag."""
    alarms = stack.of_type("AWS::CloudWatch::Alarm")
    planner = code_of("RequestExportFunction").metrics
    heartbeats = [
        a["Properties"]
        for a in alarms.values()
        if a["Properties"].get("TreatMissingData") == "breaching" and a["Properties"].get("MetricName") in planner
    ]
    schedule_on = stack.params["ScheduleEnabled"] == "true"
    if schedule_on and int(stack.params["HeartbeatHours"]) > 0:
        assert heartbeats, "no heartbeat alarm although the schedule is on"
        for h in heartbeats:
            periods = int(stack.value(h["EvaluationPeriods"]))
            assert periods * int(h["Period"]) == int(stack.params["HeartbeatHours"]) * 3600
            assert int(stack.value(h.get("DatapointsToAlarm", periods))) == periods
    else:  # an intentionally idle stack must not alarm on its silence
        assert not [a for a in alarms.values() if a["Properties"].get("TreatMissingData") == "breaching"]


@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_a_failed_record_is_reported_never_raised_as_a_batch(function: str) -> None:
    """One transient failure (a bill batch is one record) must not be a function error for the
    Errors alarm: every SQS consumer reports failures (ReportBatchItemFailures) and its Powertools
    processor does not raise when every record of the batch failed."""
    assert code_of(function).raising_batch_processors == []
    for name in SCENARIOS:
        s = deployed(name)
        for _, consumer, mapping in _consumers(s):
            assert "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", []), (name, consumer)


def test_the_code_scan_tells_the_functions_apart() -> None:
    """The scan follows calls, not just imports: the callback imports the jobs store, whose reconciler
    queries, but never calls that; Powertools idempotency deletes records on the download's behalf."""
    assert "dynamodb:Query" not in code_of("CallbackFunction").actions
    assert "dynamodb:Query" in code_of("RequestExportFunction").actions
    assert {"dynamodb:DeleteItem", "s3:DeleteObject", "s3:ListBucket"} <= code_of("DownloadFunction").actions
    assert "ssm:GetParameter" not in code_of("CallbackFunction").actions  # no CA bundle: it never calls CC-FS
    assert "CcfsUnknownResultCode" in code_of("DownloadFunction").metrics  # a hook passed by name
    assert "PlanningLagMinutes" in code_of("RequestExportFunction").metrics


# --------------------------------------------------------------------------- environment


# Read by the code but may be unset: the code has a default that is right for a deployed stack.
OPTIONAL_ENV = {
    "CCFS_CONNECT_TIMEOUT": "5 s default",
    "CCFS_READ_TIMEOUT": "60 s default",
    "MAX_CATCHUP_WINDOWS": "48 windows per tick",
    "STALLED_JOB_HOURS": "30 hours (exceeds RecordingGraceHours, at most 28, by 2)",
}
# Settings read by every function through exporter.config, used by one function only.
ONLY_FOR = {
    "CALLBACK_URL": "RequestExportFunction",
    "REQUEST_DLQ_URL": "RequestExportFunction",
    "RECORDING_DLQ_URL": "DownloadFunction",
    "RECORDING_GRACE_HOURS": "DownloadFunction",
    "RECORDING_CA_BUNDLE_PARAM": "DownloadFunction",
    "RECORDING_CONCURRENCY": "DownloadFunction",
    "IDEMPOTENCY_EXPIRY_SECONDS": "DownloadFunction",
    "OBJECT_LOCK_MODE": "DownloadFunction",
    "OBJECT_LOCK_RETENTION_DAYS": "DownloadFunction",
}
# Set by the template, read by the runtime or a library rather than our code.
RUNTIME_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "MALLOC_MMAP_THRESHOLD_",
}


@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_every_environment_variable_the_code_reads_is_set(function: str) -> None:
    for name in SCENARIOS:
        env = deployed(name).props(function)["Environment"]["Variables"]
        needed = {
            v for v in code_of(function).env_reads if v not in OPTIONAL_ENV and ONLY_FOR.get(v, function) == function
        }
        assert sorted(needed - set(env)) == [], name


@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_every_environment_variable_set_is_read(function: str) -> None:
    env = deployed("everything").props(function)["Environment"]["Variables"]
    unread = set(env) - code_of(function).env_reads - RUNTIME_ENV
    assert sorted(unread) == []


# --------------------------------------------------------------------------- IAM


# Exactly what each function's role may do: (action, resource, condition or None). Resources:
# a logical id (its ARN), "X/suffix" (a path below it), "param:P" (a parameter's value),
# "ssm:P" (the SSM parameter named by parameter P).
_KMS = [("kms:Decrypt", "param:KmsKeyArn", "HasKmsKey"), ("kms:GenerateDataKey", "param:KmsKeyArn", "HasKmsKey")]
_SECRET = [("secretsmanager:GetSecretValue", "param:CcfsSecretArn", None)]
_CA = [("ssm:GetParameter", "ssm:CcfsCaBundleParameter", "HasCaBundle")]
EXPECTED_GRANTS: dict[str, list[tuple[str, str, str | None]]] = {
    "RequestExportFunction": [
        ("dynamodb:GetItem", "JobsTable", None),
        ("dynamodb:PutItem", "JobsTable", None),
        ("dynamodb:UpdateItem", "JobsTable", None),
        ("dynamodb:Query", "JobsTable/index/by-status", None),
        ("sqs:SendMessage", "RequestQueue", None),
        ("sqs:SendMessage", "BillQueue", None),
        ("sqs:SendMessage", "RequestDLQ", None),  # a refused backfill message, with the reason
        # Lambda's on-failure destination for a failed tick (not a call of the code)
        ("sqs:SendMessage", "ScheduleDLQ", None),
        *_SECRET,
        *_CA,
        *_KMS,
    ],
    "CallbackFunction": [
        ("dynamodb:GetItem", "JobsTable", None),
        ("dynamodb:PutItem", "JobsTable", None),
        ("dynamodb:UpdateItem", "JobsTable", None),
        ("sqs:SendMessage", "BillQueue", None),
        *_SECRET,
        *_KMS,
    ],
    "DownloadFunction": [
        ("s3:PutObject", "ExportBucket/*", None),
        ("s3:GetObject", "ExportBucket/*", None),
        ("s3:AbortMultipartUpload", "ExportBucket/*", None),
        ("s3:DeleteObject", "ExportBucket/_staging/*", None),
        # the CDR/index objects and manifest of an export a re-export replaced (operator_actions)
        ("s3:DeleteObject", "ExportBucket/cdr/*", None),
        ("s3:DeleteObject", "ExportBucket/recording_index/*", None),
        ("s3:DeleteObject", "ExportBucket/manifests/*", None),
        ("s3:ListBucket", "ExportBucket", None),
        ("s3:PutObjectRetention", "ExportBucket/*", "ObjectLockOn"),
        ("dynamodb:GetItem", "JobsTable", None),
        ("dynamodb:PutItem", "JobsTable", None),
        ("dynamodb:UpdateItem", "JobsTable", None),
        ("dynamodb:Query", "JobsTable", None),
        ("dynamodb:GetItem", "IdempotencyTable", None),
        ("dynamodb:PutItem", "IdempotencyTable", None),
        ("dynamodb:UpdateItem", "IdempotencyTable", None),
        ("dynamodb:DeleteItem", "IdempotencyTable", None),
        ("sqs:SendMessage", "RecordingQueue", None),
        *_SECRET,
        *_CA,
        *_KMS,
    ],
}
# Not calls of the code: the platform's own use of the role (destinations, customer-key encryption).
_NOT_FROM_CODE = {
    ("sqs:SendMessage", "ScheduleDLQ"),
    ("kms:Decrypt", "param:KmsKeyArn"),
    ("kms:GenerateDataKey", "param:KmsKeyArn"),
}
# AWS managed policies SAM attaches: logs, X-Ray (Tracing: Active), SQS polling (SQS events) and,
# whenever VpcConfig is present in the template (SAM cannot see its !If), ENI management.
MANAGED = {
    "service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess",
    "service-role/AWSLambdaSQSQueueExecutionRole",
    "service-role/AWSLambdaVPCAccessExecutionRole",
}


def _resource_key(resource: Any) -> str:
    if (target := getatt(resource)) is not None:
        return target
    if (name := ref(resource)) is not None:
        return f"param:{name}"
    if isinstance(resource, dict) and set(resource) == {"Fn::Sub"} and isinstance(resource["Fn::Sub"], str):
        text = resource["Fn::Sub"]
        if m := re.fullmatch(r"\$\{(\w+)\.Arn\}(/.*)", text):
            return m.group(1) + m.group(2)
        if m := re.fullmatch(
            r"arn:\$\{AWS::Partition\}:ssm:\$\{AWS::Region\}:\$\{AWS::AccountId\}:parameter\$\{(\w+)\}", text
        ):
            return f"ssm:{m.group(1)}"
    return json.dumps(resource)


def role_statements(stack: Deployed, function: str) -> list[dict[str, Any]]:
    role = stack.props(f"{function}Role")
    return [st for p in role.get("Policies", []) for st in as_list(p["PolicyDocument"]["Statement"])]


def granted(stack: Deployed, function: str) -> set[tuple[str, str]]:
    grants = set()
    for st in role_statements(stack, function):
        assert st["Effect"] == "Allow" and "NotAction" not in st and "NotResource" not in st
        for action in as_list(st["Action"]):
            for resource in as_list(st["Resource"]):
                grants.add((action, _resource_key(resource)))
    return grants


@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_role_allows_exactly_what_the_function_needs(stack: Deployed, function: str) -> None:
    expected = {(a, r) for a, r, cond in EXPECTED_GRANTS[function] if cond is None or stack.conditions[cond]}
    assert granted(stack, function) == expected


@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_expected_grants_are_the_calls_the_code_makes(function: str) -> None:
    """The table above is the code's AWS calls, read from the source: a new call needs a grant, and
    a grant without a call is dropped."""
    code = code_of(function)
    assert code.unknown_aws_calls == set()
    table = {a for a, r, _ in EXPECTED_GRANTS[function] if (a, r) not in _NOT_FROM_CODE}
    assert table == code.actions


def test_every_aws_call_is_known() -> None:
    for function in FUNCTIONS:
        assert code_of(function).unknown_aws_calls == set(), function
    assert all(a.count(":") == 1 for actions in BOTO3_ACTIONS.values() for a in actions)


def test_no_statement_of_ours_grants_a_wildcard(stack: Deployed) -> None:
    problems = []
    for lid, role in stack.of_type("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for st in as_list(policy["PolicyDocument"]["Statement"]):
                if any("*" in a for a in as_list(st.get("Action", []))):
                    problems.append(f"{lid}/{policy['PolicyName']}: action {st['Action']}")
                if "*" in as_list(st.get("Resource", [])):
                    problems.append(f"{lid}/{policy['PolicyName']}: Resource *")
    assert problems == []


def test_roles_carry_only_the_aws_managed_policies_lambda_needs(stack: Deployed) -> None:
    for function in FUNCTIONS:
        arns = stack.props(f"{function}Role").get("ManagedPolicyArns", [])
        names = {json.dumps(a).rsplit("policy/", 1)[-1].rstrip('"') for a in arns}
        assert names <= MANAGED, function
        calls_ccfs = "ccfs_client" in code_of(function).calls
        assert ("service-role/AWSLambdaVPCAccessExecutionRole" in names) == calls_ccfs, function


# --------------------------------------------------------------------------- callback exposure


def test_callback_api_admits_only_the_given_sources(stack: Deployed) -> None:
    (api,) = stack.of_type("AWS::ApiGateway::RestApi").values()
    policy = api["Properties"]["Body"]["x-amazon-apigateway-policy"]
    denied_outside = [
        st["Condition"]["NotIpAddress"]["aws:SourceIp"]
        for st in policy["Statement"]
        if st["Effect"] == "Deny" and "NotIpAddress" in st.get("Condition", {})
    ]
    assert denied_outside == [stack.params["CallbackSourceCidrs"]]
    if stack.params["AllowCallbackFromAnywhere"] != "true":
        assert not {"0.0.0.0/0", "::/0"} & set(stack.params["CallbackSourceCidrs"])


def test_callback_web_acl_rate_limits_per_ip_when_asked(stack: Deployed) -> None:
    acls = stack.of_type("AWS::WAFv2::WebACL")
    limit = int(stack.params["CallbackWafRateLimit"])
    if limit == 0:
        assert not acls and not stack.of_type("AWS::WAFv2::WebACLAssociation")
        return
    ((acl_id, acl),) = acls.items()
    rules = [r["Statement"]["RateBasedStatement"] for r in acl["Properties"]["Rules"] if "Block" in r["Action"]]
    assert [(r["AggregateKeyType"], int(stack.value(r["Limit"]))) for r in rules] == [("IP", limit)]
    assert acl["Properties"]["Scope"] == "REGIONAL"
    ((_, association),) = stack.of_type("AWS::WAFv2::WebACLAssociation").items()
    assert getatt(association["Properties"]["WebACLArn"]) == acl_id
    (stage_id,) = stack.of_type("AWS::ApiGateway::Stage")
    target = association["Properties"]["ResourceArn"]["Fn::Sub"]
    assert target.endswith("/restapis/${CallbackApi}/stages/${" + stage_id + "}")


def test_waf_default_is_off() -> None:
    assert str(sam_template()["Parameters"]["CallbackWafRateLimit"]["Default"]) == "0"


# --------------------------------------------------------------------------- VPC


def test_functions_that_call_ccfs_run_in_the_vpc_when_one_is_given(stack: Deployed) -> None:
    in_vpc = bool(stack.params["VpcSubnetIds"])
    callers = {f for f in FUNCTIONS if "ccfs_client" in code_of(f).calls}
    assert callers == {"RequestExportFunction", "DownloadFunction"}
    for function in FUNCTIONS:
        vpc = stack.props(function).get("VpcConfig")
        if in_vpc and function in callers:
            assert stack.value(vpc) == {
                "SubnetIds": stack.params["VpcSubnetIds"].split(","),
                "SecurityGroupIds": stack.params["VpcSecurityGroupIds"].split(","),
            }, function
        else:
            assert vpc is None, function


# --------------------------------------------------------------------------- schedule


def test_schedule_is_stack_scoped_off_by_default_and_delivers_the_sample_event(stack: Deployed) -> None:
    schedules = stack.of_type("AWS::Scheduler::Schedule")
    ((_, schedule),) = schedules.items()
    p = schedule["Properties"]
    assert "Name" not in p  # CloudFormation generates a name unique to the stack
    assert getatt(p["Target"]["Arn"]) == "RequestExportFunction"
    assert p["State"] == ("ENABLED" if stack.params["ScheduleEnabled"] == "true" else "DISABLED")
    assert getatt(p["Target"]["DeadLetterConfig"]["Arn"]) == "ScheduleDLQ" and p["Target"]["RetryPolicy"]
    assert json.loads(p["Target"]["Input"]) == json.loads(SCHEDULE_EVENT.read_text(encoding="utf-8"))
    role = getatt(p["Target"]["RoleArn"])
    assert granted_by_role(stack, role) == {
        ("lambda:InvokeFunction", "RequestExportFunction"),
        ("sqs:SendMessage", "ScheduleDLQ"),
    }


def granted_by_role(stack: Deployed, role: str | None) -> set[tuple[str, str]]:
    assert role is not None
    return {
        (action, _resource_key(resource))
        for p in stack.props(role).get("Policies", [])
        for st in as_list(p["PolicyDocument"]["Statement"])
        for action in as_list(st["Action"])
        for resource in as_list(st["Resource"])
    }


@pytest.mark.parametrize("env", samconfig_envs())
def test_no_samconfig_environment_switches_the_schedule_on_at_its_first_deploy(env: str) -> None:
    """The README's order is deploy, check, then switch on: a samconfig that deploys ENABLED would
    start calling a production CC-FS before anyone checked the secret, CA and callback CIDRs."""
    s = deployed(f"samconfig-{env}")
    assert [r["Properties"]["State"] for r in s.of_type("AWS::Scheduler::Schedule").values()] == ["DISABLED"]


# --------------------------------------------------------------------------- README and samconfig


def _readme_parameter_table() -> set[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 4)]
    rows = [row.split("|")[1] for row in section.splitlines() if row.startswith("| `")]
    return {name for cell in rows for name in re.findall(r"`(\w+)`", cell)}


def test_readme_parameter_table_lists_every_template_parameter() -> None:
    assert sorted(set(sam_template()["Parameters"]) - _readme_parameter_table()) == []
    assert sorted(_readme_parameter_table() - set(sam_template()["Parameters"])) == []


def test_readme_and_samconfig_name_the_same_secrets() -> None:
    readme = set(re.findall(r"create-secret\s+--name\s+(\S+)", README.read_text(encoding="utf-8")))
    arns = [samconfig_overrides(env).get("CcfsSecretArn", "") for env in samconfig_envs()]
    # a secret ARN ends with "-" and 6 random characters after the name
    names = {re.sub(r"-[A-Za-z0-9]{6}$", "", arn.split(":secret:", 1)[1]) for arn in arns if arn}
    assert readme and readme == names, (readme, names)


def test_capabilities_match_the_iam_resources() -> None:
    """Unnamed IAM roles need CAPABILITY_IAM (CAPABILITY_NAMED_IAM only for RoleName & co.)."""
    named = [
        lid
        for name in SCENARIOS
        for lid, r in deployed(name).resources.items()
        if r["Type"] in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group", "AWS::IAM::ManagedPolicy")
        and {"RoleName", "UserName", "GroupName", "ManagedPolicyName"} & set(r["Properties"])
    ]
    assert named == []
    for env in samconfig_envs():
        assert samconfig()[env]["deploy"]["parameters"]["capabilities"] == "CAPABILITY_IAM", env
    assert "CAPABILITY_IAM" in README.read_text(encoding="utf-8")
