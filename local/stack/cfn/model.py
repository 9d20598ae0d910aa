"""The stack model read from the translated template: which data resources to create, and each
function's handler, timeout, memory, environment, layers, SQS event source mappings, schedules,
on-failure destinations and API route, so the local pollers and front behave as deployed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.stack.cfn.intrinsics import Resolver, references
from local.stack.cfn.template import TemplateError, load_template, pseudo_parameters, translate

DATA_TYPES = (
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::Queue",
    "AWS::SNS::Topic",
)


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
