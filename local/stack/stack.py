"""The embedded local stack: moto + template resources + CC-FS simulator + API front + pollers.

See ``local/STACK.md``. Typical use::

    with LocalStack(StackConfig(calls=150, tenants=2)) as stack:
        progress = stack.run_until_complete(timeout=300)
        verdict = stack.verify()

Everything listens on 127.0.0.1 with OS-chosen ports; every function runs in its own worker
process with the environment the template gives it (resolved against the local resources), plus
the local overrides listed in :attr:`LocalStack.overrides`.

:class:`LocalStack` is the orchestration: it starts the pieces in order and stops them in reverse.
The pieces are their own modules: :mod:`.config` (what to run, names), :mod:`.cfn` (the template),
:mod:`.peers` (the simulator, certificates, names and trust, the CC-FS secret),
:mod:`.functions` (each function's environment and workers), :mod:`.supervisor` (the child
processes), :mod:`.observe` (progress and state), :mod:`.verify` (the verdict).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from local.stack.cfn import REGION, CreatedResources, StackModel, TemplateError, create_data_resources
from local.stack.config import (
    StackConfig,
    StackNames,
    declared_parameters,
    local_deviations,
    parameter_default,
    session_credentials,
)
from local.stack.functions import FunctionLauncher, base_env
from local.stack.observe import Progress, StackObserver
from local.stack.peers import ApiCertificate, api_certificate, network, start_simulator, store_ccfs_secret
from local.stack.processes import netmap
from local.stack.processes.procs import Child, ChildError, spawn
from local.stack.processes.supervisor import Supervisor, WorkerSpec

__all__ = ["LocalStack", "Progress", "StackConfig", "StackNames"]


class LocalStack:
    """The running local stack (a context manager). Not thread-safe: drive it from one thread."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.names = StackNames()
        self.sim: Any = None
        self.model: StackModel | None = None
        self.resources: CreatedResources | None = None
        self.launcher: FunctionLauncher | None = None
        self.run_dir: Path = Path()
        self.overrides: dict[str, str] = {}  # local deviations from the template, for the summary
        self.required: list[tuple[str, str, str]] = []  # (tenant, begin, end) that must be exported
        self.started_at = 0.0
        self._events: list[str] = []  # notes: supervisor restarts, parameters not used
        self.supervisor = Supervisor(self.run_dir, self._events)
        self.observer = StackObserver(
            self.client,
            self.names,
            self.tenants,
            self.required,
            lambda *args: self.sim.truth(*args),
            lambda: self.run_dir,
            lambda: time.monotonic() - self.started_at,
        )
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._tmp_created = False
        self._base_date: date | None = None
        self._api_tls: ApiCertificate | None = None
        self._parent_hosts: dict[str, str] = {}

    # ------------------------------------------------------------------ properties

    @property
    def endpoint_url(self) -> str:
        return self.names.endpoint_url

    @property
    def tenants(self) -> list[str]:
        return [f"acct{i + 1:03d}" for i in range(self.config.tenants)]

    @property
    def zones(self) -> list[str]:
        return [z.strip() for z in self.config.tz.split(",") if z.strip()] or ["Asia/Shanghai"]

    @property
    def zone(self) -> ZoneInfo:
        """The stack's TENANT_TIMEZONE (the first of ``config.tz``)."""
        return ZoneInfo(self.zones[0])

    def zone_of(self, tenant: str) -> ZoneInfo:
        zones = self.zones
        return ZoneInfo(zones[self.tenants.index(tenant) % len(zones)])

    @property
    def separate_keys(self) -> bool:
        """Whether each tenant is its own developer account (``StackConfig.tenant_keys``)."""
        wanted = self.config.tenant_keys
        return self.config.tenants > 1 if wanted is None else wanted

    @property
    def base_date(self) -> date:
        """First day of synthetic data: ``config.base_date``, else the last tenant-local day whose
        final window is already due (its end is ``SettleMinutes`` in the past), minus ``days - 1``."""
        if self._base_date is None:
            if self.config.base_date is not None:
                self._base_date = self.config.base_date
            else:
                settle = int(
                    self.config.parameters.get(
                        "SettleMinutes", parameter_default(self.config.template, "SettleMinutes", 30)
                    )
                )
                # the last day that is over in every tenant's zone
                settled = min((datetime.now(self.zone_of(t)) - timedelta(minutes=settle)).date() for t in self.tenants)
                self._base_date = settled - timedelta(days=self.config.days)
        return self._base_date

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from botocore.config import Config

            self._clients[service] = self._session.client(
                service,
                endpoint_url=self.names.endpoint_url,
                region_name=REGION,
                config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=20),
            )
        return self._clients[service]

    @property
    def fatal(self) -> str | None:
        """Why the stack cannot go on (moto died, a worker crash-loops), else None."""
        return self.supervisor.fatal

    @property
    def api_id(self) -> str:
        """The callback API's id, 10 characters like API Gateway's, fixed per stack name."""
        return hashlib.sha256(self.config.stack_name.encode()).hexdigest()[:10]

    @property
    def api_domain(self) -> str:
        return f"{self.api_id}.execute-api.{REGION}.amazonaws.com"

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        import boto3

        self.started_at = time.monotonic()
        cfg = self.config
        if cfg.run_dir is None:
            self.run_dir = Path(tempfile.mkdtemp(prefix="aicc-local-"))
            self._tmp_created = True
        else:
            self.run_dir = Path(cfg.run_dir)
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.supervisor.run_dir = self.run_dir
        (self.run_dir / "control").mkdir(exist_ok=True)
        env = base_env(self.run_dir)
        self.supervisor.moto = spawn("moto", "local.stack.processes.motoserver", [], env=env, run_dir=self.run_dir)
        self._api_tls = api_certificate(self.run_dir, self.api_domain)
        self.names.api_ca_file = self._api_tls.ca_file
        zones = {t: str(self.zone_of(t)) for t in self.tenants}
        self.sim = start_simulator(cfg, zones, self.separate_keys, self.base_date, self.names.api_ca_file)
        net = network(self.sim, self.run_dir)
        self.names.ccfs_base_url, self.names.hosts, self.names.system_ca_file = (
            net.ccfs_base_url,
            net.hosts,
            net.system_ca_file,
        )
        self.names.endpoint_url = self.supervisor.moto.wait_ready(30)["endpoint_url"]
        self._session = boto3.session.Session(region_name=REGION, **session_credentials())
        self.names.secret_arn, self.names.ca_param = store_ccfs_secret(
            self.client, cfg.stack_name, self.sim, self.tenants, self.zone_of, self.separate_keys
        )
        self.model = StackModel.build(cfg.template, self._parameters(), cfg.stack_name)
        self.resources = create_data_resources(
            self.model, self._session, self.names.endpoint_url, {"VisibilityTimeout": cfg.visibility_timeout}
        )
        self.names.record(self.resources, self.model, cfg.stack_name)
        self.overrides = local_deviations(cfg, bool(self.names.hosts), self.resources.notes)
        self.launcher = FunctionLauncher(cfg, self.names, self.model, self.resources, self.run_dir, env)
        if cfg.schedule:
            begin = datetime.combine(self.base_date, datetime.min.time())
            end = begin + timedelta(days=cfg.days) - timedelta(seconds=1)
            for tenant in self.tenants:
                self.required.append((tenant, f"{begin:%Y-%m-%d %H:%M:%S}", f"{end:%Y-%m-%d %H:%M:%S}"))
        self._start_front()
        self.supervisor.workers.update(self.launcher.plan())
        self.supervisor.start()

    def stop(self) -> None:
        """Stop everything this stack started; safe to call more than once."""
        self.supervisor.stop_supervising()
        if self._parent_hosts:
            netmap.uninstall(self._parent_hosts)
            self._parent_hosts = {}
        # function processes first, all at once (each finishes its current receive or invocation),
        # then the simulator and moto
        self.supervisor.stop_workers()
        if self.sim is not None:
            self.sim.stop()
        self.supervisor.stop_moto()
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        if self._tmp_created and not self.config.keep_run_dir and self.run_dir.exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def children(self) -> list[Child]:
        """Every child process currently known (for tests: nothing may outlive stop())."""
        return self.supervisor.children()

    # ------------------------------------------------------------------ start-up pieces

    def _parameters(self) -> dict[str, Any]:
        cfg = self.config
        values: dict[str, Any] = {
            "CcfsBaseUrl": self.names.ccfs_base_url,
            "CcfsSecretArn": self.names.secret_arn,
            "CcfsCaBundleParameter": self.names.ca_param,
            "TenantAccountIds": ",".join(self.tenants),
            "TenantTimeZone": self.zones[0],
            "ScheduleEnabled": "true" if cfg.schedule else "false",
            "ExportStartTime": f"{self.base_date:%Y-%m-%d}T00:00:00" if cfg.schedule else "",
            "CallbackTimeoutMinutes": cfg.callback_timeout_minutes,
            "RecordingUrlHostSuffixes": (
                self.sim.obs_host if self.names.hosts else f"{self.sim.obs_host}:{self.sim.obs_port}"
            ),
            # required (no default): the callback's only caller here is the simulator on 127.0.0.1
            "CallbackSourceCidrs": "127.0.0.1/32",
        }
        values.update(cfg.parameters)
        assert self.model is None
        declared = declared_parameters(cfg.template)
        dropped = sorted(set(values) - declared - set(cfg.parameters))
        for name in dropped:  # a parameter the template no longer has: don't fail, say so
            del values[name]
            self._events.append(f"template has no parameter {name}; local value not used")
        return values

    def function_env(self, logical_id: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment the template gives ``logical_id``, resolved against the local stack."""
        if self.launcher is None:
            raise RuntimeError("the stack is not started")
        return self.launcher.function_env(logical_id, extra)

    def _start_front(self) -> None:
        assert self.model is not None and self.launcher is not None and self._api_tls is not None
        if not self.model.routes:
            raise TemplateError("the template has no API route for the callback")
        route = self.model.routes[0]
        args = [
            *self.launcher.function_args(route.function),
            "--stage",
            route.stage,
            "--path",
            route.path,
            "--method",
            route.method,
            "--api-id",
            self.api_id,
            "--tls-cert",
            self._api_tls.chain,
            "--tls-key",
            self._api_tls.key,
        ]
        env = self.launcher.worker_env(route.function, "front")
        spec = WorkerSpec("front", "local.stack.processes.front", args, env)
        spec.child = spawn("front", "local.stack.processes.front", args, env=env, run_dir=self.run_dir)
        self.supervisor.workers["front"] = spec
        ready = spec.child.wait_ready(60)
        self.names.front_url = ready["url"]
        self.names.callback_url = ready["public_url"]
        self.overrides["CALLBACK_URL"] = f"{self.names.callback_url}, served by the local API front at {ready['url']}"
        # the API's name resolves to the front: for the simulator's callbacks (this process) and
        # for the function processes started from here on
        self.names.hosts[f"{self.api_domain}:443"] = f"127.0.0.1:{ready['port']}"
        self._parent_hosts = {f"{self.api_domain}:443": f"127.0.0.1:{ready['port']}"}
        netmap.install(self._parent_hosts)
        # keep the port on restarts: it is the callback URL CC-FS was given
        spec.args += ["--port", str(ready["port"])]

    @property
    def notes(self) -> list[str]:
        return list(self._events)

    def worker_restarts(self) -> dict[str, int]:
        return self.supervisor.restarts()

    # ------------------------------------------------------------------ controls

    def send_backfill(self, body: Mapping[str, Any]) -> str:
        """Send a backfill request to RequestQueue; its range becomes part of what must complete."""
        message = self.client("sqs").send_message(QueueUrl=self.names.request_queue_url, MessageBody=json.dumps(body))
        account = body.get("accountId")
        for tenant in [account] if account else self.tenants:
            self.required.append((tenant, body["beginTime"], body["endTime"]))
        return str(message["MessageId"])

    def set_worker_crash(self, after_records: int, queue: str = "RecordingQueue") -> Path:
        """Make one consumer of ``queue`` crash once, in the middle of its first batch of more than
        ``after_records`` records, after handing that many to the handler; the returned path holds a
        report once it fired (see worker.py)."""
        from local.stack.processes.procs import write_ready

        path = self.run_dir / "control" / f"crash-{queue}.json"
        fired = path.with_name(f"{path.stem}.fired.json")
        fired.unlink(missing_ok=True)
        write_ready(path, {"after_records": int(after_records), "queue": queue})
        return fired

    def set_poison(self, match: str, queue: str = "RecordingQueue") -> None:
        """Make every delivery of ``queue``'s messages whose body contains ``match`` die before the
        handler sees it (see worker.py ``Poison``), as a timeout or running out of memory would."""
        from local.stack.processes.procs import write_ready

        write_ready(self.run_dir / "control" / f"poison-{queue}.json", {"match": match, "queue": queue})

    def pause_schedule(self, paused: bool = True) -> None:
        flag = self.run_dir / "control" / "schedule.paused"
        if paused:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    # ------------------------------------------------------------------ observation (observe.py)

    def scan_jobs_table(self) -> list[dict[str, Any]]:
        return self.observer.scan_jobs_table()

    def diagnose(self) -> Path:
        """Write what a failed run needs to be understood into ``run_dir/state`` (see
        :meth:`StackObserver.diagnose`). Returns the directory."""
        return self.observer.diagnose()

    def recordings_without_outcome(self, items: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        return self.observer.recordings_without_outcome(items)

    def list_objects(self, prefix: str = "") -> Iterator[dict[str, Any]]:
        return self.observer.list_objects(prefix)

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        return self.observer.queue_depths()

    def windows_and_jobs(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        return self.observer.windows_and_jobs()

    def progress(self, with_s3: bool | None = False) -> Progress:
        """Where the run stands. ``with_s3`` also counts the bucket's objects (a full listing: only
        for a final report; ``None`` = every 3rd call)."""
        return self.observer.progress(with_s3)

    def run_until_complete(
        self,
        timeout: float = 300.0,
        on_progress: Callable[[Progress], None] | None = None,
        interval: float = 1.0,
        with_s3: bool | None = None,
    ) -> Progress:
        """Poll until complete (twice in a row, ``interval`` apart) or ``timeout`` seconds passed.
        ``with_s3`` as in :meth:`progress` (default: count the bucket on every 3rd poll)."""
        deadline = time.monotonic() + timeout
        streak = 0
        while True:
            progress = self.progress(with_s3=with_s3)
            if on_progress is not None:
                on_progress(progress)
            streak = streak + 1 if progress.complete else 0
            if streak >= 2:
                return progress
            if time.monotonic() >= deadline:
                progress.timed_out = True
                return progress
            if self.fatal:
                raise ChildError(self.fatal)
            time.sleep(interval)

    def verify(self) -> Any:
        from local.stack.verify import verify

        return verify(self)

    def metrics(self) -> dict[str, float]:
        from local.stack.report import emf_totals

        return emf_totals(self.run_dir / "logs")
