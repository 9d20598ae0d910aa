"""The function processes the template asks for: each function's environment (the template's,
resolved against the local resources, plus the local overrides and the Lambda runtime's variables),
its worker command line, and the workers planned from its SQS event source mappings (``consumers``
per mapping) and schedules."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from local.stack.cfn import (
    ACCOUNT_ID,
    REGION,
    CreatedResources,
    EventSourceMapping,
    StackModel,
    TemplateError,
    Unresolvable,
)
from local.stack.config import FAKE_CREDENTIALS, StackConfig, StackNames
from local.stack.processes import netmap
from local.stack.processes.procs import ROOT
from local.stack.processes.supervisor import WorkerSpec

__all__ = ["FunctionLauncher", "base_env", "consumers"]

_PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "PYENV_VERSION", "PYENV_ROOT", "VIRTUAL_ENV")


def consumers(mapping: EventSourceMapping, cap: int | None) -> int:
    """Worker processes for an event source mapping: its ``MaximumConcurrency``, as Lambda runs at
    most that many invocations at once (the CC-FS connection bound counts on it), lowered only by an
    explicit ``cap``. Without a MaximumConcurrency Lambda would scale to hundreds: no local number
    would be honest, so one must be given."""
    if mapping.maximum_concurrency is not None:
        return min(mapping.maximum_concurrency, cap) if cap else mapping.maximum_concurrency
    if cap:
        return cap
    raise TemplateError(
        f"{mapping.logical_id}: no ScalingConfig.MaximumConcurrency, so Lambda would run up to 1000 consumers "
        "at once; set it in the template (or cap the local stack with max_concurrency / --concurrency)"
    )


def base_env(run_dir: Path) -> dict[str, str]:
    """The environment every child process starts from: a few pass-through variables, moto's fake
    credentials, no AWS config files, UTC as in Lambda."""
    env = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ}
    env.update(FAKE_CREDENTIALS)
    missing = run_dir / "no-aws-config"
    env.update(
        {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(missing),
            "AWS_SHARED_CREDENTIALS_FILE": str(missing),
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TZ": "UTC",  # as in Lambda
        }
    )
    return env


class FunctionLauncher:
    """How each of the template's functions is run locally, once the resources exist."""

    def __init__(
        self,
        config: StackConfig,
        names: StackNames,
        model: StackModel,
        resources: CreatedResources,
        run_dir: Path,
        base_env: Mapping[str, str],
    ) -> None:
        self._config = config
        self._names = names
        self._model = model
        self._resources = resources
        self._run_dir = run_dir
        self._base_env = dict(base_env)

    def function_env(self, logical_id: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment the template gives ``logical_id``, resolved against the local stack."""
        assert self._model is not None and self._resources is not None
        spec = self._model.functions[logical_id]
        resolver = self._model.resolver()
        resolver.physical = dict(self._resources.physical)
        resolver.attributes = dict(self._resources.attributes)
        local = {
            "CALLBACK_URL": self._names.callback_url,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "RECORDING_GRACE_HOURS": f"{self._config.recording_grace_seconds / 3600:.6f}",
        }
        env: dict[str, str] = {}
        unresolved = []
        for key, value in spec.environment.items():
            if key in local:
                env[key] = local[key]
                continue
            try:
                resolved = resolver.resolve(value)
            except Unresolvable:
                unresolved.append(key)
                continue
            if resolved is not None:
                env[key] = str(resolved).lower() if isinstance(resolved, bool) else str(resolved)
        if unresolved:
            raise TemplateError(f"{logical_id}: cannot resolve environment {', '.join(unresolved)} locally")
        env.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        env.update(self._config.env)
        env.update(extra or {})
        name = self._names.functions[logical_id]
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
                "LAMBDA_TASK_ROOT": str((ROOT / spec.code_uri).resolve()),
            }
        )
        return env

    def function_args(self, logical_id: str) -> list[str]:
        assert self._model is not None
        spec = self._model.functions[logical_id]
        args = [
            "--function",
            self._names.functions[logical_id],
            "--code",
            spec.code_uri,
            "--handler",
            spec.handler,
            "--timeout",
            str(spec.timeout),
            "--memory",
            str(spec.memory),
        ]
        if self._config.patches:
            args += ["--patch", json.dumps(self._config.patches)]
        for layer in spec.layers:
            args += ["--layer", layer]
        return args

    def worker_env(self, logical_id: str, name: str) -> dict[str, str]:
        tmp = self._run_dir / "tmp" / name
        tmp.mkdir(parents=True, exist_ok=True)
        env = {
            **self._base_env,
            "AWS_ENDPOINT_URL": self._names.endpoint_url,
            "TMPDIR": str(tmp),
            # the sandbox's "system": its CA store and its DNS (STACK.md, "Names and trust")
            "SSL_CERT_FILE": self._names.system_ca_file,
            netmap.ENV: json.dumps(self._names.hosts),
        }
        env.update(self.function_env(logical_id))
        return env

    def plan(self) -> dict[str, WorkerSpec]:
        """A worker per concurrent consumer of each enabled SQS mapping, and one per enabled schedule
        (when ``StackConfig.schedule``), by name."""
        assert self._model is not None
        cfg = self._config
        workers: dict[str, WorkerSpec] = {}
        for mapping in self._model.mappings:
            if not mapping.enabled:
                continue
            concurrency = consumers(mapping, cfg.max_concurrency)
            crash_file = self._run_dir / "control" / f"crash-{mapping.queue}.json"
            window: float = mapping.batching_window
            if cfg.max_batching_window is not None:
                window = min(window, cfg.max_batching_window)
            for i in range(1, concurrency + 1):
                name = f"{mapping.function}-{mapping.queue}-{i}"
                args = [
                    "--name",
                    name,
                    *self.function_args(mapping.function),
                    "--queue-url",
                    self._names.queues[mapping.queue],
                    "--queue-arn",
                    self._names.queue_arns[mapping.queue],
                    "--batch-size",
                    str(mapping.batch_size),
                    "--batching-window",
                    f"{window:g}",
                    "--crash-file",
                    str(crash_file),
                    "--poison-file",
                    str(crash_file.with_name(f"poison-{mapping.queue}.json")),
                ]
                if mapping.report_batch_item_failures:
                    args.append("--report-failures")
                env = self.worker_env(mapping.function, name)
                workers[name] = WorkerSpec(name, "local.stack.processes.worker", args, env)
        if not cfg.schedule:
            return workers
        for schedule in self._model.schedules:
            if schedule.state != "ENABLED":
                continue
            name = f"{schedule.function}-schedule"
            spec = self._model.functions[schedule.function]
            args = [
                "--name",
                name,
                *self.function_args(schedule.function),
                "--schedule-interval",
                str(cfg.tick_seconds),
                "--rule-arn",
                f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/default/{schedule.logical_id}",
                "--pause-file",
                str(self._run_dir / "control" / "schedule.paused"),
            ]
            if schedule.payload is not None:
                args += [
                    "--payload",
                    schedule.payload if isinstance(schedule.payload, str) else json.dumps(schedule.payload),
                ]
            if spec.on_failure_queue:
                args += ["--on-failure-queue-url", self._names.queues[spec.on_failure_queue]]
            env = self.worker_env(schedule.function, name)
            workers[name] = WorkerSpec(name, "local.stack.processes.worker", args, env)
        return workers
