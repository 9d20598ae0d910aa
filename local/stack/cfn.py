"""template.yaml -> the local stack's resources and function specs.

The template is the single source of truth: it is loaded with a CloudFormation-tag-aware YAML
loader, translated by ``samtranslator`` (as ``sam deploy`` would, with ``s3://`` code locations and
a stub managed-policy loader), and then

* the data resources (``AWS::DynamoDB::Table``, ``AWS::S3::Bucket``, ``AWS::S3::BucketPolicy``,
  ``AWS::SQS::Queue``) are created in moto directly through boto3, property by property, with a
  small intrinsic-function resolver. moto's CloudFormation was tried and dropped: it reports
  CREATE_COMPLETE but ignores ``TimeToLiveSpecification``, ``LifecycleConfiguration``,
  ``PublicAccessBlockConfiguration`` and does not support ``AWS::S3::BucketPolicy`` at all;
* the functions (handler, timeout, memory, merged Globals environment, layers), their SQS event
  source mappings, schedules, on-failure destinations and the REST API route are read from the
  translated resources, so the local pollers and HTTP front behave as the deployed stack would.

Physical names follow CloudFormation's ``{stack}-{LogicalId}`` pattern without the random suffix
(buckets lower-cased), since every local run starts from an empty moto.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

__all__ = [
    "ACCOUNT_ID",
    "DATA_TYPES",
    "REGION",
    "ApiRoute",
    "EventSourceMapping",
    "FunctionSpec",
    "Resolver",
    "ScheduleSpec",
    "StackModel",
    "TemplateError",
    "create_data_resources",
    "load_template",
    "translate",
]

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
DATA_TYPES = ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::S3::BucketPolicy", "AWS::SQS::Queue")
_LOCAL_CODE = "s3://local/x.zip"
_NO_VALUE = object()


class TemplateError(RuntimeError):
    """The template cannot be turned into a local stack (names what and why)."""


class Unresolvable(Exception):
    """An intrinsic function refers to something the local stack does not model."""


# ---------------------------------------------------------------------------- loading


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns ``!Ref x`` / ``!GetAtt a.b`` / ``!Sub ...`` into their JSON forms."""


def _cfn_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path) -> dict[str, Any]:
    """The SAM template as plain JSON-shaped data (tags expanded)."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 (SafeLoader subclass)
    except FileNotFoundError:
        raise TemplateError(f"{path} not found") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources section")
    return data


# ---------------------------------------------------------------------------- translation


class _AnyManagedPolicy(dict[str, str]):
    """Managed-policy map that knows every name (fake ARNs: IAM is not modelled locally)."""

    def __missing__(self, key: str) -> str:
        return f"arn:aws:iam::aws:policy/{key}"

    def __contains__(self, key: object) -> bool:
        return True

    def get(self, key: str, default: Any = None) -> str:
        return self[key]


class _StubPolicyLoader:
    def load(self) -> dict[str, str]:
        return _AnyManagedPolicy()


def pseudo_parameters(stack_name: str) -> dict[str, str]:
    return {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{stack_name}/local",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::NotificationARNs": "",
    }


def translate(
    sam_template: dict[str, Any], parameters: Mapping[str, Any], stack_name: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """``(cfn_template, code_uris)``: the samtranslator output and each function's / layer's
    original local code directory (logical id -> CodeUri/ContentUri)."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

    template = copy.deepcopy(sam_template)
    code_uris: dict[str, str] = {}
    globals_fn = template.get("Globals", {}).get("Function", {})
    if isinstance(globals_fn.get("CodeUri"), str):
        code_uris["*"] = globals_fn["CodeUri"]
        globals_fn["CodeUri"] = _LOCAL_CODE
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                if isinstance(props[key], str):
                    code_uris[logical_id] = props[key]
                props[key] = _LOCAL_CODE
    values = {**pseudo_parameters(stack_name), **{k: v for k, v in parameters.items() if v is not None}}
    # This is ``samtranslator.translator.transform.transform`` step by step, except that the
    # Translator gets an explicit boto3 session: ``transform`` builds one from the environment to
    # learn the region (NoRegionFound otherwise), and the library must not touch os.environ.
    ArnGenerator.BOTO_SESSION_REGION_NAME = REGION
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    policies = _StubPolicyLoader()
    sam_logger = logging.getLogger("samtranslator")
    level = sam_logger.level
    sam_logger.setLevel(logging.ERROR)  # feature-toggle chatter on every translation
    try:
        to_py27_compatible_template(template, values)
        cfn = translator.translate(template, parameter_values=values, get_managed_policy_map=policies.load)
        cfn = undo_mark_unicode_str_in_template(cfn)
    except Exception as exc:  # samtranslator raises a zoo of types, all meaning "bad template"
        raise TemplateError(f"samtranslator could not translate the template: {exc}") from exc
    finally:
        sam_logger.setLevel(level)
    return cfn, code_uris


# ---------------------------------------------------------------------------- intrinsics


_SUB_VAR = re.compile(r"\$\{([^}]+)\}")


@dataclass
class Resolver:
    """Evaluates CloudFormation intrinsics against parameter values and created resources."""

    parameters: dict[str, Any]
    conditions: dict[str, Any]
    mappings: dict[str, Any] = field(default_factory=dict)
    physical: dict[str, str] = field(default_factory=dict)  # logical id -> Ref value
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)  # logical id -> GetAtt values
    _condition_cache: dict[str, bool] = field(default_factory=dict)

    def condition(self, name: str) -> bool:
        if name not in self._condition_cache:
            if name not in self.conditions:
                raise TemplateError(f"unknown condition {name}")
            self._condition_cache[name] = bool(self.resolve(self.conditions[name]))
        return self._condition_cache[name]

    def resolve(self, value: Any) -> Any:
        """The value with intrinsics evaluated; ``AWS::NoValue`` entries removed."""
        result = self._resolve(value)
        return None if result is _NO_VALUE else result

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self._resolve(v) for v in value]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = self._FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, arg)
        out = {}
        for key, item in value.items():
            resolved = self._resolve(item)
            if resolved is not _NO_VALUE:
                out[key] = resolved
        return out

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name]
        raise Unresolvable(f"Ref {name}")

    def _get_att(self, arg: Any) -> Any:
        logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
        attribute = self._resolve(attribute)
        try:
            return self.attributes[logical_id][attribute]
        except KeyError:
            raise Unresolvable(f"GetAtt {logical_id}.{attribute}") from None

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self._resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def _one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] not in self.parameters:
                return str(self._get_att(name.split(".", 1)))
            return str(self._ref(name))

        return _SUB_VAR.sub(_one, text)

    def _join(self, arg: list[Any]) -> str:
        sep, items = arg
        return str(sep).join(str(v) for v in self._resolve(items))

    def _if(self, arg: list[Any]) -> Any:
        name, when_true, when_false = arg
        return self._resolve(when_true if self.condition(name) else when_false)

    def _select(self, arg: list[Any]) -> Any:
        index, items = arg
        return self._resolve(items)[int(self._resolve(index))]

    def _split(self, arg: list[Any]) -> list[str]:
        sep, text = arg
        return str(self._resolve(text)).split(sep)

    def _find_in_map(self, arg: list[Any]) -> Any:
        name, top, second = (self._resolve(a) for a in arg)
        return self.mappings[name][top][second]

    def _equals(self, arg: list[Any]) -> bool:
        left, right = (self._resolve(a) for a in arg)
        return str(left) == str(right)

    def _not(self, arg: list[Any]) -> bool:
        return not self._resolve(arg[0])

    def _and(self, arg: list[Any]) -> bool:
        return all(self._resolve(a) for a in arg)

    def _or(self, arg: list[Any]) -> bool:
        return any(self._resolve(a) for a in arg)

    def _condition_ref(self, name: str) -> bool:
        return self.condition(name)

    def _unsupported(self, arg: Any) -> Any:
        raise Unresolvable(f"unsupported intrinsic {arg!r}")

    def _base64(self, arg: Any) -> str:
        import base64

        return base64.b64encode(str(self._resolve(arg)).encode()).decode()

    _FUNCTIONS: ClassVar[dict[str, Callable[[Resolver, Any], Any]]] = {
        "Ref": _ref,
        "Fn::GetAtt": _get_att,
        "Fn::Sub": _sub,
        "Fn::Join": _join,
        "Fn::If": _if,
        "Fn::Select": _select,
        "Fn::Split": _split,
        "Fn::FindInMap": _find_in_map,
        "Fn::Equals": _equals,
        "Fn::Not": _not,
        "Fn::And": _and,
        "Fn::Or": _or,
        "Condition": _condition_ref,
        "Fn::Base64": _base64,
        "Fn::ImportValue": _unsupported,
        "Fn::GetAZs": _unsupported,
        "Fn::Cidr": _unsupported,
        "Fn::Transform": _unsupported,
    }


def references(value: Any) -> set[str]:
    """Logical names (resources or parameters) a value refers to through Ref/GetAtt/Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" and isinstance(arg, str):
                return {arg}
            if key == "Fn::GetAtt":
                name = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
                return {name}
            if key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                local_vars = set(arg[1]) if isinstance(arg, list) else set()
                for match in _SUB_VAR.finditer(text):
                    name = match.group(1)
                    if not name.startswith("!") and name not in local_vars:
                        found.add(name.split(".", 1)[0])
                if isinstance(arg, list):
                    found |= references(arg[1])
                return found
        for item in value.values():
            found |= references(item)
    return found


def condition_references(value: Any) -> set[str]:
    """Condition names used by Fn::If / {"Condition": name} inside a value."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= condition_references(item)
    elif isinstance(value, dict):
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Fn::If" and isinstance(arg, list) and arg:
                found.add(arg[0])
            elif key == "Condition" and isinstance(arg, str):
                return {arg}
        for item in value.values():
            found |= condition_references(item)
    return found


# ---------------------------------------------------------------------------- stack model


@dataclass
class EventSourceMapping:
    logical_id: str
    function: str  # function logical id
    queue: str  # queue logical id
    batch_size: int = 10
    batching_window: int = 0
    report_batch_item_failures: bool = False
    maximum_concurrency: int | None = None
    enabled: bool = True


@dataclass
class ScheduleSpec:
    logical_id: str
    function: str
    expression: str
    state: str
    payload: Any = None  # Target.Input (None: no input configured)


@dataclass
class ApiRoute:
    function: str
    api: str  # RestApi logical id
    path: str  # e.g. /ccfs/callback
    method: str  # upper case or ANY
    stage: str


@dataclass
class FunctionSpec:
    logical_id: str
    handler: str  # module.function
    code_uri: str  # relative to the template's directory
    layers: list[str]  # layer content directories
    timeout: int
    memory: int
    environment: dict[str, Any]  # unresolved (intrinsics kept)
    on_failure_queue: str | None = None  # queue logical id of an async OnFailure destination


@dataclass
class StackModel:
    """What the local stack needs from the translated template."""

    stack_name: str
    template_path: Path
    cfn: dict[str, Any]
    parameters: dict[str, Any]  # effective values (defaults + given + pseudo)
    data_resources: dict[str, dict[str, Any]]
    functions: dict[str, FunctionSpec]
    mappings: list[EventSourceMapping]
    schedules: list[ScheduleSpec]
    routes: list[ApiRoute]
    dropped: list[str]  # data-resource properties not applied locally, with the reason

    @classmethod
    def build(
        cls, template_path: Path, parameters: Mapping[str, Any] | None = None, stack_name: str = "aicc-export-local"
    ) -> StackModel:
        sam = load_template(template_path)
        given = {k: v for k, v in (parameters or {}).items() if v is not None}
        declared = sam.get("Parameters") or {}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise TemplateError(f"local parameter values for undeclared parameters: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in given:
                values[name] = given[name]
            elif isinstance(spec, dict) and "Default" in spec:
                values[name] = spec["Default"]
        missing = sorted(n for n in declared if n not in values)
        if missing:
            raise TemplateError(f"template parameters without a default need a local value: {', '.join(missing)}")
        for name, spec in declared.items():
            if isinstance(spec, dict) and spec.get("Type") == "CommaDelimitedList" and isinstance(values[name], str):
                values[name] = [v.strip() for v in values[name].split(",")] if values[name] else []
        cfn, code_uris = translate(sam, values, stack_name)
        all_values = {**pseudo_parameters(stack_name), **values}
        model = cls(
            stack_name=stack_name,
            template_path=template_path,
            cfn=cfn,
            parameters=all_values,
            data_resources={},
            functions={},
            mappings=[],
            schedules=[],
            routes=[],
            dropped=[],
        )
        model._select_data_resources()
        model._read_functions(code_uris)
        return model

    # -- helpers

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.cfn["Resources"]

    def resolver(self) -> Resolver:
        return Resolver(
            parameters=dict(self.parameters),
            conditions=self.cfn.get("Conditions") or {},
            mappings=self.cfn.get("Mappings") or {},
        )

    def _enabled(self, resource: dict[str, Any], resolver: Resolver) -> bool:
        name = resource.get("Condition")
        return name is None or resolver.condition(name)

    def _select_data_resources(self) -> None:
        resolver = self.resolver()
        kept = {
            lid: copy.deepcopy(res)
            for lid, res in self.resources.items()
            if res.get("Type") in DATA_TYPES and self._enabled(res, resolver)
        }
        # A data resource that points at a resource the local stack does not create (a Lambda
        # notification target, a KMS key resource, ...) loses that one property, loudly.
        for lid, res in kept.items():
            props = res.get("Properties") or {}
            for key in list(props):
                refs = references(props[key])
                foreign = sorted(r for r in refs if r in self.resources and r not in kept)
                if foreign:
                    del props[key]
                    self.dropped.append(f"{lid}.{key} (refers to {', '.join(foreign)}, not created locally)")
            res.pop("DependsOn", None)
        self.data_resources = kept

    def _read_functions(self, code_uris: dict[str, str]) -> None:
        res = self.resources
        layer_dirs: dict[str, str] = {}
        for lid, r in res.items():
            if r.get("Type") == "AWS::Lambda::LayerVersion":
                # samtranslator renames layers to "{LogicalId}{hash}"; match the original id.
                for original, uri in code_uris.items():
                    if lid.startswith(original) and original not in self.functions:
                        layer_dirs[lid] = uri
        for lid, r in res.items():
            if r.get("Type") != "AWS::Lambda::Function":
                continue
            props = r.get("Properties") or {}
            code = code_uris.get(lid) or code_uris.get("*")
            if code is None:
                continue  # not one of ours (e.g. a custom-resource function with inline code)
            layers = []
            for layer in props.get("Layers") or []:
                ref = layer.get("Ref") if isinstance(layer, dict) else None
                if ref in layer_dirs:
                    layers.append(layer_dirs[ref])
            self.functions[lid] = FunctionSpec(
                logical_id=lid,
                handler=props.get("Handler", "app.lambda_handler"),
                code_uri=code,
                layers=layers,
                timeout=int(props.get("Timeout", 3)),
                memory=int(props.get("MemorySize", 128)),
                environment=dict((props.get("Environment") or {}).get("Variables") or {}),
            )
        resolver = self.resolver()
        for lid, r in res.items():
            kind = r.get("Type")
            props = r.get("Properties") or {}
            if kind == "AWS::Lambda::EventSourceMapping":
                function = _logical(props.get("FunctionName"))
                queue = _logical(props.get("EventSourceArn"))
                if function in self.functions and queue in self.data_resources:
                    scaling = resolver.resolve(props.get("ScalingConfig") or {})
                    self.mappings.append(
                        EventSourceMapping(
                            logical_id=lid,
                            function=function,
                            queue=queue,
                            batch_size=int(resolver.resolve(props.get("BatchSize", 10))),
                            batching_window=int(resolver.resolve(props.get("MaximumBatchingWindowInSeconds", 0))),
                            report_batch_item_failures="ReportBatchItemFailures"
                            in (resolver.resolve(props.get("FunctionResponseTypes")) or []),
                            maximum_concurrency=int(scaling["MaximumConcurrency"])
                            if "MaximumConcurrency" in scaling
                            else None,
                            enabled=bool(resolver.resolve(props.get("Enabled", True))),
                        )
                    )
            elif kind == "AWS::Scheduler::Schedule":
                target = props.get("Target") or {}
                function = _logical(target.get("Arn"))
                if function in self.functions:
                    payload = target.get("Input")
                    self.schedules.append(
                        ScheduleSpec(
                            logical_id=lid,
                            function=function,
                            expression=str(resolver.resolve(props.get("ScheduleExpression"))),
                            state=str(resolver.resolve(props.get("State", "ENABLED"))),
                            payload=None if payload is None else resolver.resolve(payload),
                        )
                    )
            elif kind == "AWS::Events::Rule" and props.get("ScheduleExpression"):
                for target in props.get("Targets") or []:
                    function = _logical(target.get("Arn"))
                    if function in self.functions:
                        payload = target.get("Input")
                        self.schedules.append(
                            ScheduleSpec(
                                logical_id=lid,
                                function=function,
                                expression=str(resolver.resolve(props["ScheduleExpression"])),
                                state=str(resolver.resolve(props.get("State", "ENABLED"))),
                                payload=None if payload is None else resolver.resolve(payload),
                            )
                        )
            elif kind == "AWS::Lambda::EventInvokeConfig":
                function = _logical(props.get("FunctionName"))
                destination = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
                queue = _logical(destination)
                if function in self.functions and queue in self.data_resources:
                    self.functions[function].on_failure_queue = queue
        self._read_routes(resolver)

    def _read_routes(self, resolver: Resolver) -> None:
        res = self.resources
        stages: dict[str, str] = {}
        for r in res.values():
            if r.get("Type") == "AWS::ApiGateway::Stage":
                api = _logical((r.get("Properties") or {}).get("RestApiId"))
                if api:
                    stages[api] = str(resolver.resolve(r["Properties"].get("StageName")))
        for lid, r in res.items():
            if r.get("Type") != "AWS::ApiGateway::RestApi":
                continue
            body = (r.get("Properties") or {}).get("Body") or {}
            for path, operations in (body.get("paths") or {}).items():
                for method, operation in (operations or {}).items():
                    integration = (operation or {}).get("x-amazon-apigateway-integration") or {}
                    function = next(
                        (name for name in references(integration.get("uri")) if name in self.functions), None
                    )
                    if function in self.functions and lid in stages:
                        verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                        self.routes.append(ApiRoute(function, lid, path, verb, stages[lid]))

    # -- lookups used by the stack

    def function_for_route(self, path: str) -> ApiRoute:
        for route in self.routes:
            if route.path == path:
                return route
        raise TemplateError(f"no API route {path} in the template")

    def mappings_of(self, function: str) -> list[EventSourceMapping]:
        return [m for m in self.mappings if m.function == function]


def _logical(value: Any) -> str | None:
    """The logical id behind ``{"Ref": x}`` / ``{"Fn::GetAtt": [x, ...]}`` / a plain string."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return str(arg)
        if key == "Fn::GetAtt":
            return str(arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0])
    if isinstance(value, str):
        return value
    return None


# ---------------------------------------------------------------------------- creation


def _physical_name(stack_name: str, logical_id: str, kind: str) -> str:
    if kind == "AWS::S3::Bucket":
        return f"{stack_name}-{logical_id}".lower()[:63]
    if kind == "AWS::SQS::Queue":
        return f"{stack_name}-{logical_id}"[:75]
    return f"{stack_name}-{logical_id}"[:255]


def _order(resources: Mapping[str, dict[str, Any]]) -> list[str]:
    """Dependencies first (a queue after its DLQ, a bucket policy after its bucket)."""
    done: list[str] = []
    visiting: set[str] = set()

    def visit(lid: str) -> None:
        if lid in done:
            return
        if lid in visiting:
            raise TemplateError(f"circular reference through {lid}")
        visiting.add(lid)
        for dep in sorted(references(resources[lid].get("Properties") or {})):
            if dep in resources:
                visit(dep)
        visiting.discard(lid)
        done.append(lid)

    for lid in resources:
        visit(lid)
    return done


def _lifecycle_rules(rules: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """CloudFormation's LifecycleConfiguration rules in the S3 API's shape."""
    out: list[dict[str, Any]] = []
    for rule in rules:
        api: dict[str, Any] = {"ID": rule.get("Id", f"rule{len(out)}"), "Status": rule.get("Status", "Enabled")}
        prefix = rule.get("Prefix")
        api["Filter"] = {"Prefix": prefix or ""}
        if "ExpirationInDays" in rule:
            api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        elif rule.get("ExpiredObjectDeleteMarker") is not None:
            api["Expiration"] = {"ExpiredObjectDeleteMarker": bool(rule["ExpiredObjectDeleteMarker"])}
        if "NoncurrentVersionExpiration" in rule:
            api["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
            }
        if "AbortIncompleteMultipartUpload" in rule:
            api["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
            }
        for transition in rule.get("Transitions") or []:
            api.setdefault("Transitions", []).append(
                {"Days": int(transition["TransitionInDays"]), "StorageClass": transition["StorageClass"]}
            )
        out.append(api)
    return out


def _tags(props: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in props.get("Tags") or []]


@dataclass
class CreatedResources:
    """Physical names of the created data resources."""

    physical: dict[str, str]  # logical id -> Ref value (table/bucket name, queue URL)
    attributes: dict[str, dict[str, str]]  # logical id -> GetAtt values
    types: dict[str, str]  # logical id -> resource type
    notes: list[str]  # properties applied differently or not at all, and why

    def queue_url(self, logical_id: str) -> str:
        return self.physical[logical_id]

    def queue_arn(self, logical_id: str) -> str:
        return self.attributes[logical_id]["Arn"]


def create_data_resources(
    model: StackModel,
    session: Any,
    endpoint_url: str,
    queue_overrides: Mapping[str, Any] | None = None,
) -> CreatedResources:
    """Create the template's data resources in moto (``session`` is a boto3 Session).

    ``queue_overrides`` (e.g. ``{"VisibilityTimeout": 5}``) replace those properties on every queue
    that has them or is a redrive source: the local stack's only deliberate deviation.
    """
    resolver = model.resolver()
    clients: dict[str, Any] = {}

    def client(name: str) -> Any:
        if name not in clients:
            clients[name] = session.client(name, endpoint_url=endpoint_url, region_name=REGION)
        return clients[name]

    created = CreatedResources(physical={}, attributes={}, types={}, notes=list(model.dropped))
    for lid in _order(model.data_resources):
        res = model.data_resources[lid]
        kind = res["Type"]
        try:
            props = resolver.resolve(res.get("Properties") or {}) or {}
        except Unresolvable as exc:
            raise TemplateError(f"{lid}: {exc} cannot be resolved locally") from None
        created.types[lid] = kind
        if kind == "AWS::DynamoDB::Table":
            _create_table(lid, props, model.stack_name, client("dynamodb"), created)
        elif kind == "AWS::S3::Bucket":
            _create_bucket(lid, props, model.stack_name, client("s3"), created)
        elif kind == "AWS::S3::BucketPolicy":
            # Not applied: moto evaluates bucket policies without request context, so a Deny
            # conditioned on aws:SecureTransport=false (or on any other condition key) matches
            # every request to the plain-HTTP moto endpoint and makes the bucket unusable.
            created.physical[lid] = props["Bucket"]
            created.notes.append(
                f"{lid}: not applied (moto evaluates bucket policies without request context; "
                "its conditional Deny statements would deny every local request)"
            )
        elif kind == "AWS::SQS::Queue":
            if queue_overrides:
                for key, value in queue_overrides.items():
                    if key in props or "RedrivePolicy" in props:
                        created.notes.append(f"{lid}.{key}: {props.get(key, 'default')} -> {value} (local override)")
                        props[key] = value
            _create_queue(lid, props, model.stack_name, client("sqs"), created)
        resolver.physical = created.physical
        resolver.attributes = created.attributes
    return created


def _create_table(lid: str, props: dict[str, Any], stack: str, ddb: Any, out: CreatedResources) -> None:
    name = props.get("TableName") or _physical_name(stack, lid, "AWS::DynamoDB::Table")
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput", "StreamSpecification"):
        if key in props:
            args[key] = props[key]
    if "DeletionProtectionEnabled" in props:
        args["DeletionProtectionEnabled"] = bool(props["DeletionProtectionEnabled"])
    sse = props.get("SSESpecification")
    if sse:
        args["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled", False))}
        if sse.get("SSEType"):
            args["SSESpecification"]["SSEType"] = sse["SSEType"]
        if sse.get("KMSMasterKeyId"):
            args["SSESpecification"]["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
    if props.get("Tags"):
        args["Tags"] = _tags(props)
    description = ddb.create_table(**args)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr and pitr.get("PointInTimeRecoveryEnabled"):
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    out.physical[lid] = name
    out.attributes[lid] = {"Arn": description["TableArn"]}
    if description.get("LatestStreamArn"):
        out.attributes[lid]["StreamArn"] = description["LatestStreamArn"]


def _create_bucket(lid: str, props: dict[str, Any], stack: str, s3: Any, out: CreatedResources) -> None:
    name = props.get("BucketName") or _physical_name(stack, lid, "AWS::S3::Bucket")
    s3.create_bucket(Bucket=name)
    if "BucketEncryption" in props:
        rules = []
        for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]:
            default = rule.get("ServerSideEncryptionByDefault") or {}
            api_rule: dict[str, Any] = {
                "ApplyServerSideEncryptionByDefault": {
                    k: v
                    for k, v in {
                        "SSEAlgorithm": default.get("SSEAlgorithm"),
                        "KMSMasterKeyID": default.get("KMSMasterKeyID"),
                    }.items()
                    if v
                }
            }
            if "BucketKeyEnabled" in rule:
                api_rule["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
            rules.append(api_rule)
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
        )
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={k: bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()},
        )
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
    if "LifecycleConfiguration" in props:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": _lifecycle_rules(props["LifecycleConfiguration"]["Rules"])}
        )
    if props.get("Tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags(props)})
    for key in sorted(set(props) - _BUCKET_PROPS):
        out.notes.append(f"{lid}.{key}: not applied locally")
    out.physical[lid] = name
    out.attributes[lid] = {
        "Arn": f"arn:aws:s3:::{name}",
        "DomainName": f"{name}.s3.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
    }


_BUCKET_PROPS = {
    "BucketName",
    "BucketEncryption",
    "VersioningConfiguration",
    "PublicAccessBlockConfiguration",
    "OwnershipControls",
    "LifecycleConfiguration",
    "Tags",
}

_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)


def _create_queue(lid: str, props: dict[str, Any], stack: str, sqs: Any, out: CreatedResources) -> None:
    name = props.get("QueueName") or _physical_name(stack, lid, "AWS::SQS::Queue")
    if props.get("FifoQueue") and not name.endswith(".fifo"):
        name += ".fifo"
    attributes = {}
    for key in _QUEUE_ATTRIBUTES:
        if key in props:
            value = props[key]
            attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
    for key in ("RedrivePolicy", "RedriveAllowPolicy"):
        if key in props:
            value = props[key]
            attributes[key] = value if isinstance(value, str) else json.dumps(value)
    kwargs: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if props.get("Tags"):
        kwargs["tags"] = {t["Key"]: t["Value"] for t in _tags(props)}
    url = sqs.create_queue(**kwargs)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    out.physical[lid] = url
    out.attributes[lid] = {"Arn": arn, "QueueName": name, "QueueUrl": url}
