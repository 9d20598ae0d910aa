"""The embedded local stack: moto + template resources + CC-FS simulator + API front + pollers.

See ``local/STACK.md``. Typical use::

    with LocalStack(StackConfig(calls=150, tenants=2)) as stack:
        progress = stack.run_until_complete(timeout=300)
        verdict = stack.verify()

Everything listens on 127.0.0.1 with OS-chosen ports; every function runs in its own worker
process with the environment the template gives it (resolved against the local resources), plus
the local overrides listed in :attr:`LocalStack.overrides`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from local.stack import netmap
from local.stack.cfn import (
    ACCOUNT_ID,
    REGION,
    CreatedResources,
    EventSourceMapping,
    StackModel,
    TemplateError,
    create_data_resources,
)
from local.stack.procs import ROOT, Child, ChildError, spawn
from local.stack.report import human_size
from local.stack.verify import coverage_gap

__all__ = ["LocalStack", "Progress", "StackConfig", "StackNames"]

TERMINAL = frozenset({"COMPLETED", "PARTIAL", "FAILED", "SUPERSEDED", "UNSOLICITED"})
IN_FLIGHT = frozenset({"CLAIMED", "REQUESTED", "READY", "DOWNLOADING"})
FAKE_CREDENTIALS = {
    # moto's fake credentials, not secrets
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
TIME_PATCHES: dict[str, Any] = {
    # A window left CLAIMED by a transient queryBillData error (5xx, 0300009 after the client's
    # retries) is retried by the reconciler once CLAIM_RETRY_MINUTES passed and the claim's lease
    # (LEASE_SECONDS) expired: 5 min each in the product, 15 s here.
    "exporter.requesting.CLAIM_RETRY_MINUTES": 0.25,
    "exporter.jobs.store.LEASE_SECONDS": 15,
    # A recording CC-FS has not synced yet is asked for again after 5 min, 10, 20 … (at most 6 h
    # apart) in the product; after 1 s, 2, 4 … (at most 8 s apart) here (RecordingGraceHours:
    # StackConfig.recording_grace_seconds).
    "exporter.recordings.LATE_RETRY_FIRST_SECONDS": 1,
    "exporter.recordings.LATE_RETRY_MAX_SECONDS": 8,
}
# The stack's host names (local/stack/netmap.py maps them to 127.0.0.1 ports in every process it
# runs; see STACK.md "Names and trust"). CC-FS on a non-default port, as deployments have it.
CCFS_HOST = "ccfs.sim.internal"
CCFS_PORT = 28443
OBS_HOST = "obs.sim.internal"
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


@dataclass
class StackConfig:
    """What to run. Defaults give the ``make demo`` stack."""

    template: Path = ROOT / "template.yaml"
    stack_name: str = "aicc-export-local"
    tenants: int = 2
    calls: int = 150  # per tenant per day
    # Tenant time zones, comma-separated, cycled over the tenants; the first is TENANT_TIMEZONE.
    tz: str = "Asia/Shanghai,America/Sao_Paulo"
    # Each tenant its own developer account (seed 000: own ak/sk; the secret in its per-tenant map
    # form, with each tenant's zone). None: when there are several tenants.
    tenant_keys: bool | None = None
    profile: str = "none"  # none | flaky | chaos (local.ccfs_simulator.PROFILES)
    faults: Any = None  # a Faults instance overriding the profile
    seed: int = 1
    base_date: date | None = None  # first day of data; default: the last settled day(s), see base_date
    days: int = 1
    schedule: bool = True  # fire the planning tick (ScheduleEnabled=true) and export base_date..+days
    tick_seconds: float = 2.0  # the schedule's local period (the template's rate(...) scaled down)
    visibility_timeout: int = 5  # local override of the queues' VisibilityTimeout (retry delay)
    # None: one worker per concurrent consumer the template allows (its MaximumConcurrency), as
    # Lambda would run; a number caps that (a deviation the summary prints: fewer consumers than
    # the template puts on CC-FS)
    max_concurrency: int | None = None
    callback_timeout_minutes: int = 1  # CallbackTimeoutMinutes (template minimum 15)
    callback_retry_interval: float = 2.0  # CC-FS retries a failed callback after this (10 min real)
    recording_grace_seconds: float = 60.0  # RecordingGraceHours (24 h real)
    # hard-coded product delays scaled down in the function processes (module.NAME -> value)
    patches: dict[str, Any] = field(default_factory=lambda: dict(TIME_PATCHES))
    parameters: dict[str, Any] = field(default_factory=dict)  # more template parameter values
    env: dict[str, str] = field(default_factory=dict)  # extra environment for every function
    simulator: dict[str, Any] = field(default_factory=dict)  # more SimulatorConfig fields
    run_dir: Path | None = None  # default: a fresh temporary directory, removed on stop()
    keep_run_dir: bool = False


@dataclass
class StackNames:
    """Physical names and endpoints of the running stack."""

    endpoint_url: str = ""
    bucket: str = ""
    jobs_table: str = ""
    idempotency_table: str = ""
    queues: dict[str, str] = field(default_factory=dict)  # logical id -> URL (queues and DLQs)
    queue_arns: dict[str, str] = field(default_factory=dict)
    secret_arn: str = ""
    ca_param: str = ""
    callback_url: str = ""  # the API's public URL, as CC-FS is given it (https://{api}.execute-api...)
    front_url: str = ""  # where the front really listens (127.0.0.1, OS-chosen port)
    ccfs_base_url: str = ""  # CcfsBaseUrl: the simulator's CC-FS under its name
    hosts: dict[str, str] = field(default_factory=dict)  # the stack's name service (netmap)
    system_ca_file: str = ""  # the function processes' SSL_CERT_FILE: certifi + the object store's CA
    api_ca_file: str = ""  # the front's CA (API Gateway's public chain locally): CC-FS's truststore
    functions: dict[str, str] = field(default_factory=dict)  # logical id -> function name
    physical: dict[str, str] = field(default_factory=dict)  # every data resource
    consumed: set[str] = field(default_factory=set)  # queues an event source mapping reads

    @property
    def request_queue_url(self) -> str:
        return self.queues["RequestQueue"]

    @property
    def bill_queue_url(self) -> str:
        return self.queues["BillQueue"]

    @property
    def recording_queue_url(self) -> str:
        return self.queues["RecordingQueue"]

    @property
    def dlqs(self) -> dict[str, str]:
        """Queues no function consumes: redrive targets and failure destinations."""
        return {k: v for k, v in self.queues.items() if k not in self.consumed}

    @property
    def work_queues(self) -> dict[str, str]:
        return {k: v for k, v in self.queues.items() if k in self.consumed}

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "bucket": self.bucket,
            "jobs_table": self.jobs_table,
            "idempotency_table": self.idempotency_table,
            "queues": dict(self.queues),
            "secret_arn": self.secret_arn,
            "ca_param": self.ca_param,
            "callback_url": self.callback_url,
            "front_url": self.front_url,
            "ccfs_base_url": self.ccfs_base_url,
            "hosts": dict(self.hosts),
            "system_ca_file": self.system_ca_file,
            "api_ca_file": self.api_ca_file,
            "functions": dict(self.functions),
        }


@dataclass
class Progress:
    elapsed: float = 0.0
    jobs: Counter[str] = field(default_factory=Counter)
    windows: int = 0
    cdr_rows: int = 0
    index_rows: int = 0
    recordings_total: int = 0
    recordings_done: int = 0
    recordings_failed: int = 0
    s3_objects: int = 0
    s3_bytes: int = 0
    queues: dict[str, tuple[int, int]] = field(default_factory=dict)  # logical id -> (visible, in flight)
    dead_letter: set[str] = field(default_factory=set)  # which of ``queues`` are DLQs
    pending: list[str] = field(default_factory=list)  # why it is not complete yet
    complete: bool = False
    timed_out: bool = False

    def line(self) -> str:
        jobs = " ".join(f"{k.lower()}={v}" for k, v in sorted(self.jobs.items())) or "none"
        queued = sum(v + f for k, (v, f) in self.queues.items() if k not in self.dead_letter)
        dead = sum(v + f for k, (v, f) in self.queues.items() if k in self.dead_letter)
        return (
            f"[{self.elapsed:6.1f}s] jobs: {jobs} | windows {self.windows} | cdr rows {self.cdr_rows} | "
            f"recordings {self.recordings_done}/{self.recordings_total}"
            + (f" ({self.recordings_failed} failed)" if self.recordings_failed else "")
            + (f" | s3 {self.s3_objects} objects {human_size(self.s3_bytes)}" if self.s3_objects else "")
            + f" | queued {queued}"
            + (f" | DLQ {dead}" if dead else "")
        )


@dataclass
class _WorkerSpec:
    name: str
    module: str
    args: list[str]
    env: dict[str, str]
    child: Child | None = None
    restarts: int = 0
    started_at: float = 0.0
    quick_failures: int = 0


class LocalStack:
    """The running local stack (a context manager). Not thread-safe: drive it from one thread."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.names = StackNames()
        self.sim: Any = None
        self.model: StackModel | None = None
        self.resources: CreatedResources | None = None
        self.run_dir: Path = Path()
        self.overrides: dict[str, str] = {}  # local deviations from the template, for the summary
        self.required: list[tuple[str, str, str]] = []  # (tenant, begin, end) that must be exported
        self.started_at = 0.0
        self._moto: Child | None = None
        self._workers: dict[str, _WorkerSpec] = {}
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._tmp_created = False
        self._events: list[str] = []  # supervisor notes (restarts)
        self.fatal: str | None = None  # set when the stack cannot go on (moto died, a worker crash-loops)
        self._lock = threading.Lock()
        self._base_date: date | None = None
        self._polls = 0
        self._last_s3 = (0, 0)
        self._api_tls: tuple[str, str] = ("", "")
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
                        "SettleMinutes", _parameter_default(self.config.template, "SettleMinutes", 30)
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
        (self.run_dir / "control").mkdir(exist_ok=True)
        base_env = self._base_env()
        self._moto = spawn("moto", "local.stack.motoserver", [], env=base_env, run_dir=self.run_dir)
        self._api_tls = self._api_certificate()
        self.sim = self._start_simulator()
        self._network()
        self.names.endpoint_url = self._moto.wait_ready(30)["endpoint_url"]
        self._session = boto3.session.Session(region_name=REGION, **_session_credentials())
        self._create_secrets()
        self.model = StackModel.build(cfg.template, self._parameters(), cfg.stack_name)
        self.resources = create_data_resources(
            self.model, self._session, self.names.endpoint_url, {"VisibilityTimeout": cfg.visibility_timeout}
        )
        self._record_names()
        if cfg.schedule:
            begin = datetime.combine(self.base_date, datetime.min.time())
            end = begin + timedelta(days=cfg.days) - timedelta(seconds=1)
            for tenant in self.tenants:
                self.required.append((tenant, f"{begin:%Y-%m-%d %H:%M:%S}", f"{end:%Y-%m-%d %H:%M:%S}"))
        self._start_front(base_env)
        self._plan_workers(base_env)
        for spec in self._workers.values():
            if spec.child is None:
                spec.child = spawn(spec.name, spec.module, spec.args, env=spec.env, run_dir=self.run_dir)
        for spec in self._workers.values():
            assert spec.child is not None
            spec.child.wait_ready(60)
            spec.started_at = time.monotonic()
        self._supervisor = threading.Thread(target=self._supervise, name="local-stack-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        """Stop everything this stack started; safe to call more than once."""
        self._stopping.set()
        if self._parent_hosts:
            netmap.uninstall(self._parent_hosts)
            self._parent_hosts = {}
        if self._supervisor is not None:
            self._supervisor.join(5)
            self._supervisor = None
        # function processes first, all at once (each finishes its current receive or invocation),
        # then the simulator and moto
        workers = [s.child for s in self._workers.values() if s.child is not None]
        for child in workers:
            child.terminate()
        for child in workers:
            child.stop(timeout=5)
        if self.sim is not None:
            self.sim.stop()
        if self._moto is not None:
            self._moto.stop(timeout=5)
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        if self._tmp_created and not self.config.keep_run_dir and self.run_dir.exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def children(self) -> list[Child]:
        """Every child process currently known (for tests: nothing may outlive stop())."""
        out = [self._moto] if self._moto is not None else []
        out += [s.child for s in self._workers.values() if s.child is not None]
        return out

    # ------------------------------------------------------------------ start-up pieces

    def _base_env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ}
        env.update(FAKE_CREDENTIALS)
        missing = self.run_dir / "no-aws-config"
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

    @property
    def api_id(self) -> str:
        """The callback API's id, 10 characters like API Gateway's, fixed per stack name."""
        return hashlib.sha256(self.config.stack_name.encode()).hexdigest()[:10]

    @property
    def api_domain(self) -> str:
        return f"{self.api_id}.execute-api.{REGION}.amazonaws.com"

    def _api_certificate(self) -> tuple[str, str]:
        """A CA and a certificate for the API's domain, standing in for API Gateway's public chain
        (Amazon Root CA): ``(cert chain, key)`` paths for the front; the CA goes to the simulator's
        callback trust, as the CA of the callback URL goes into CC-FS's truststore.jks."""
        import trustme

        directory = self.run_dir / "tls"
        directory.mkdir(exist_ok=True)
        authority = trustme.CA(organization_name="Local API Gateway CA (stands in for Amazon Root CA 1)")
        cert = authority.issue_cert(self.api_domain)
        chain, key = directory / "api-chain.pem", directory / "api-key.pem"
        cert.cert_chain_pems[0].write_to_path(str(chain))
        for pem in cert.cert_chain_pems[1:]:
            pem.write_to_path(str(chain), append=True)
        cert.private_key_pem.write_to_path(str(key))
        authority.cert_pem.write_to_path(str(directory / "api-ca.pem"))
        self.names.api_ca_file = str(directory / "api-ca.pem")
        return str(chain), str(key)

    def _network(self) -> None:
        """Names and trust as a deployment has them: CC-FS and the object store under their own
        names and CAs; the function processes resolve them through netmap and trust the object
        store through the "system" store (``SSL_CERT_FILE`` = certifi + its CA), CC-FS through the
        CA bundle SSM parameter (:meth:`_create_secrets`)."""
        import certifi

        sim = self.sim
        if sim.obs_host == OBS_HOST:
            self.names.ccfs_base_url = f"https://{CCFS_HOST}:{CCFS_PORT}"
            self.names.hosts = {
                f"{CCFS_HOST}:{CCFS_PORT}": f"127.0.0.1:{sim.port}",
                f"{OBS_HOST}:443": f"127.0.0.1:{sim.obs_port}",
            }
        else:  # the simulator was configured otherwise (StackConfig.simulator): use its addresses
            self.names.ccfs_base_url = sim.base_url
        system = self.run_dir / "tls" / "system-ca.pem"
        system.parent.mkdir(exist_ok=True)
        bundle = Path(certifi.where()).read_text(encoding="utf-8")
        if sim.obs_ca_bundle:  # its own CA; CC-FS's only when configured to share CC-FS's server
            bundle += "\n" + Path(sim.obs_ca_bundle).read_text(encoding="utf-8")
        system.write_text(bundle, encoding="utf-8")
        self.names.system_ca_file = str(system)

    def _start_simulator(self) -> Any:
        from local.ccfs_simulator import PROFILES, Simulator, SimulatorConfig, TenantSpec

        cfg = self.config
        if cfg.profile not in PROFILES:
            raise ValueError(f"unknown fault profile {cfg.profile!r} (one of {', '.join(sorted(PROFILES))})")
        faults = cfg.faults if cfg.faults is not None else PROFILES[cfg.profile]
        zones = {t: str(self.zone_of(t)) for t in self.tenants}
        if not self.separate_keys and len(set(zones.values())) > 1:
            raise ValueError("tenants in several time zones need their own keys (tenant_keys): the zone is per tenant")
        tenants = [TenantSpec(t, tz=zones[t], calls_per_day=cfg.calls) for t in self.tenants]
        if self.separate_keys:
            tenants = [replace(t, ak=f"local-ak-{t.account_id}", sk=secrets.token_hex(16)) for t in tenants]
        sim_config = SimulatorConfig(
            seed=cfg.seed,
            tenants=tenants,
            callback_retry_interval=cfg.callback_retry_interval,
            base_date=self.base_date,
            days=cfg.days,
            faults=faults,
            **{
                "ccfs_name": CCFS_HOST,
                "obs_name": OBS_HOST,
                "obs_url_port": 443,
                # CC-FS's truststore.jks holding the callback URL's chain (aicc.ssl.trustAll=false)
                "callback_verify": self.names.api_ca_file,
                **cfg.simulator,
            },
        )
        return Simulator(sim_config).start()

    def _create_secrets(self) -> None:
        stack = self.config.stack_name
        value: dict[str, Any] = {"ak": self.sim.ak, "sk": self.sim.sk}
        if self.separate_keys:  # the per-tenant map form (README "CC-FS secret")
            value = {"tenants": {}}
            for tenant in self.tenants:
                ak, sk = self.sim.tenant_keys(tenant)
                value["tenants"][tenant] = {"ak": ak, "sk": sk, "timezone": str(self.zone_of(tenant))}
        secret = self.client("secretsmanager").create_secret(Name=f"{stack}/ccfs", SecretString=json.dumps(value))
        self.names.secret_arn = secret["ARN"]
        self.names.ca_param = f"/{stack}/ccfs-ca"
        pem = Path(self.sim.ca_bundle).read_text(encoding="utf-8")
        self.client("ssm").put_parameter(Name=self.names.ca_param, Value=pem, Type="String")

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
        declared = _declared_parameters(cfg.template)
        dropped = sorted(set(values) - declared - set(cfg.parameters))
        for name in dropped:  # a parameter the template no longer has: don't fail, say so
            del values[name]
            self._events.append(f"template has no parameter {name}; local value not used")
        return values

    def _record_names(self) -> None:
        assert self.model is not None and self.resources is not None
        r = self.resources
        for lid, kind in r.types.items():
            self.names.physical[lid] = r.physical[lid]
            if kind == "AWS::SQS::Queue":
                self.names.queues[lid] = r.physical[lid]
                self.names.queue_arns[lid] = r.attributes[lid]["Arn"]
        tables = [lid for lid, kind in r.types.items() if kind == "AWS::DynamoDB::Table"]
        buckets = [lid for lid, kind in r.types.items() if kind == "AWS::S3::Bucket"]
        self.names.jobs_table = r.physical.get("JobsTable", r.physical[tables[0]] if tables else "")
        self.names.idempotency_table = r.physical.get("IdempotencyTable", "")
        self.names.bucket = r.physical.get("ExportBucket", r.physical[buckets[0]] if buckets else "")
        for lid in self.model.functions:
            self.names.functions[lid] = f"{self.config.stack_name}-{lid}"
        self.names.consumed = {m.queue for m in self.model.mappings if m.enabled}
        self.overrides = {
            "VisibilityTimeout": f"{self.config.visibility_timeout} s on every work queue (template: 6x the "
            "consumer timeout); pollers heartbeat in-flight messages instead",
            "CallbackTimeoutMinutes": f"{self.config.callback_timeout_minutes} (template minimum 15)",
            "schedule": f"fires every {self.config.tick_seconds:g} s"
            + (" (template rate is scaled down)" if self.config.schedule else " - off"),
            "MaximumConcurrency": f"capped at {self.config.max_concurrency} (fewer consumers than the template)"
            if self.config.max_concurrency
            else "as the template (one worker per concurrent consumer)",
            "CC-FS callback retry": f"{self.config.callback_retry_interval:g} s (CC-FS: 10 min)",
            "CALLBACK_URL": "the local API front (set when it starts)",
            "DNS and CA store": (
                "ccfs.sim.internal, obs.sim.internal and the API's execute-api name resolve to 127.0.0.1 ports "
                "(netmap); SSL_CERT_FILE = certifi + the object store's CA"
                if self.names.hosts
                else "the simulator's own addresses (StackConfig.simulator); SSL_CERT_FILE = certifi + its CA"
            ),
            "POWERTOOLS_TRACE_DISABLED": "true (no X-Ray daemon locally)",
        }
        for target, value in self.config.patches.items():
            self.overrides[target] = f"{value!r} in the function processes (hard-coded in the product)"
        for note in r.notes:
            if "(local override)" not in note:
                lid, _, text = note.partition(":")
                self.overrides[lid.split(" ", 1)[0].split(".", 1)[0]] = text.strip() or note

    def function_env(self, logical_id: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment the template gives ``logical_id``, resolved against the local stack."""
        from local.stack.cfn import Unresolvable

        assert self.model is not None and self.resources is not None
        spec = self.model.functions[logical_id]
        resolver = self.model.resolver()
        resolver.physical = dict(self.resources.physical)
        resolver.attributes = dict(self.resources.attributes)
        local = {
            "CALLBACK_URL": self.names.callback_url,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "RECORDING_GRACE_HOURS": f"{self.config.recording_grace_seconds / 3600:.6f}",
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
        env.update(self.config.env)
        env.update(extra or {})
        name = self.names.functions[logical_id]
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

    def _function_args(self, logical_id: str) -> list[str]:
        assert self.model is not None
        spec = self.model.functions[logical_id]
        args = [
            "--function",
            self.names.functions[logical_id],
            "--code",
            spec.code_uri,
            "--handler",
            spec.handler,
            "--timeout",
            str(spec.timeout),
            "--memory",
            str(spec.memory),
        ]
        if self.config.patches:
            args += ["--patch", json.dumps(self.config.patches)]
        for layer in spec.layers:
            args += ["--layer", layer]
        return args

    def _worker_env(self, base_env: Mapping[str, str], logical_id: str, name: str) -> dict[str, str]:
        tmp = self.run_dir / "tmp" / name
        tmp.mkdir(parents=True, exist_ok=True)
        env = {
            **base_env,
            "AWS_ENDPOINT_URL": self.names.endpoint_url,
            "TMPDIR": str(tmp),
            # the sandbox's "system": its CA store and its DNS (STACK.md, "Names and trust")
            "SSL_CERT_FILE": self.names.system_ca_file,
            netmap.ENV: json.dumps(self.names.hosts),
        }
        env.update(self.function_env(logical_id))
        return env

    def _start_front(self, base_env: Mapping[str, str]) -> None:
        assert self.model is not None
        if not self.model.routes:
            raise TemplateError("the template has no API route for the callback")
        route = self.model.routes[0]
        args = [
            *self._function_args(route.function),
            "--stage",
            route.stage,
            "--path",
            route.path,
            "--method",
            route.method,
            "--api-id",
            self.api_id,
            "--tls-cert",
            self._api_tls[0],
            "--tls-key",
            self._api_tls[1],
        ]
        env = self._worker_env(base_env, route.function, "front")
        spec = _WorkerSpec("front", "local.stack.front", args, env)
        spec.child = spawn("front", "local.stack.front", args, env=env, run_dir=self.run_dir)
        self._workers["front"] = spec
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

    def _plan_workers(self, base_env: Mapping[str, str]) -> None:
        assert self.model is not None
        cfg = self.config
        for mapping in self.model.mappings:
            if not mapping.enabled:
                continue
            concurrency = consumers(mapping, cfg.max_concurrency)
            crash_file = self.run_dir / "control" / f"crash-{mapping.queue}.json"
            for i in range(1, concurrency + 1):
                name = f"{mapping.function}-{mapping.queue}-{i}"
                args = [
                    "--name",
                    name,
                    *self._function_args(mapping.function),
                    "--queue-url",
                    self.names.queues[mapping.queue],
                    "--queue-arn",
                    self.names.queue_arns[mapping.queue],
                    "--batch-size",
                    str(mapping.batch_size),
                    "--batching-window",
                    str(mapping.batching_window),
                    "--crash-file",
                    str(crash_file),
                    "--poison-file",
                    str(crash_file.with_name(f"poison-{mapping.queue}.json")),
                ]
                if mapping.report_batch_item_failures:
                    args.append("--report-failures")
                env = self._worker_env(base_env, mapping.function, name)
                self._workers[name] = _WorkerSpec(name, "local.stack.worker", args, env)
        if not cfg.schedule:
            return
        for schedule in self.model.schedules:
            if schedule.state != "ENABLED":
                continue
            name = f"{schedule.function}-schedule"
            spec = self.model.functions[schedule.function]
            args = [
                "--name",
                name,
                *self._function_args(schedule.function),
                "--schedule-interval",
                str(cfg.tick_seconds),
                "--rule-arn",
                f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/default/{schedule.logical_id}",
                "--pause-file",
                str(self.run_dir / "control" / "schedule.paused"),
            ]
            if schedule.payload is not None:
                args += [
                    "--payload",
                    schedule.payload if isinstance(schedule.payload, str) else json.dumps(schedule.payload),
                ]
            if spec.on_failure_queue:
                args += ["--on-failure-queue-url", self.names.queues[spec.on_failure_queue]]
            env = self._worker_env(base_env, schedule.function, name)
            self._workers[name] = _WorkerSpec(name, "local.stack.worker", args, env)

    def _supervise(self) -> None:
        """Restart a worker that died (a timed-out sandbox, a crash), as Lambda would; give up on
        one that keeps dying right after start (an import error) and report it."""
        while not self._stopping.wait(0.5):
            if self._moto is not None and not self._moto.alive:
                self.fatal = f"moto exited with {self._moto.process.returncode}:\n{self._moto.log_tail()}"
                return
            for spec in list(self._workers.values()):
                child = spec.child
                if child is None or child.alive or self._stopping.is_set() or spec.quick_failures >= 3:
                    continue
                code = child.process.returncode
                child.stop()
                if time.monotonic() - spec.started_at < 15:
                    spec.quick_failures += 1
                    if spec.quick_failures >= 3:
                        self.fatal = f"{spec.name} keeps exiting ({code}); log tail:\n{child.log_tail(40)}"
                        self._events.append(f"{spec.name} keeps exiting; not restarted")
                        continue
                else:
                    spec.quick_failures = 0
                spec.restarts += 1
                self._events.append(f"{spec.name} exited with {code}; restarted (#{spec.restarts})")
                try:
                    spec.child = spawn(spec.name, spec.module, spec.args, env=spec.env, run_dir=self.run_dir)
                    spec.started_at = time.monotonic()
                except OSError as exc:
                    self._events.append(f"{spec.name}: restart failed: {exc}")

    @property
    def notes(self) -> list[str]:
        return list(self._events)

    def worker_restarts(self) -> dict[str, int]:
        return {name: spec.restarts for name, spec in self._workers.items() if spec.restarts}

    # ------------------------------------------------------------------ controls

    def send_backfill(self, body: Mapping[str, Any]) -> str:
        """Send a backfill request to RequestQueue; its range becomes part of what must complete."""
        message = self.client("sqs").send_message(QueueUrl=self.names.request_queue_url, MessageBody=json.dumps(body))
        account = body.get("accountId")
        for tenant in [account] if account else self.tenants:
            self.required.append((tenant, body["beginTime"], body["endTime"]))
        return str(message["MessageId"])

    def set_worker_crash(self, after_records: int, queue: str = "RecordingQueue") -> Path:
        """Make one consumer of ``queue`` raise after handing ``after_records`` records to the
        handler (once); the returned path holds a report once it fired (see worker.py)."""
        from local.stack.procs import write_ready

        path = self.run_dir / "control" / f"crash-{queue}.json"
        fired = path.with_name(f"{path.stem}.fired.json")
        fired.unlink(missing_ok=True)
        write_ready(path, {"after_records": int(after_records), "queue": queue})
        return fired

    def set_poison(self, match: str, queue: str = "RecordingQueue") -> None:
        """Make every delivery of ``queue``'s messages whose body contains ``match`` die before the
        handler sees it (see worker.py ``Poison``), as a timeout or running out of memory would."""
        from local.stack.procs import write_ready

        write_ready(self.run_dir / "control" / f"poison-{queue}.json", {"match": match, "queue": queue})

    def pause_schedule(self, paused: bool = True) -> None:
        flag = self.run_dir / "control" / "schedule.paused"
        if paused:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    # ------------------------------------------------------------------ observation

    def scan_jobs_table(self) -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        items: list[dict[str, Any]] = []
        paginator = self.client("dynamodb").get_paginator("scan")
        for page in paginator.paginate(TableName=self.names.jobs_table):
            items.extend({k: deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"])
        return items

    def diagnose(self) -> Path:
        """Write what a failed run needs to be understood into ``run_dir/state`` (moto's state dies
        with the stack): every jobs-table item, the queues' depths, and each recording the truth
        lists for an unfinished job that has no outcome (no REC item), with the message ids,
        receive counts and messages of the log lines that name its call. Returns the directory."""
        out = self.run_dir / "state"
        out.mkdir(parents=True, exist_ok=True)
        items = self.scan_jobs_table()
        with open(out / "jobs-table.jsonl", "w", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(item, default=str) + "\n")
        (out / "queues.json").write_text(json.dumps(self.queue_depths(), indent=1), encoding="utf-8")
        pending = self.recordings_without_outcome(items)
        (out / "pending-recordings.json").write_text(json.dumps(pending, indent=1), encoding="utf-8")
        return out

    def recordings_without_outcome(self, items: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Recordings of unfinished jobs (truth for the job's window) that have no REC item, each
        with what the workers' logs say about its call (message id, receive count, message)."""
        items = self.scan_jobs_table() if items is None else items
        recorded = {(str(i["pk"]), str(i["sk"])) for i in items if str(i.get("sk", "")).startswith("REC#")}
        pending: list[dict[str, Any]] = []
        for job in items:
            if job.get("sk") != "JOB" or job.get("job_status") not in IN_FLIGHT or not job.get("begin_time"):
                continue
            tenant = str(job.get("tenant") or "_all")
            fmt = "%Y-%m-%d %H:%M:%S"
            truth = self.sim.truth(
                None if tenant == "_all" else tenant,
                datetime.strptime(str(job["begin_time"]), fmt),
                datetime.strptime(str(job["end_time"]), fmt),
            )
            for rec in truth.recordings:
                stem = rec.file_name.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
                if (str(job["pk"]), f"REC#{rec.call_id}#{stem}") not in recorded:
                    pending.append(
                        {
                            "response_id": job.get("response_id"),
                            "job_status": job.get("job_status"),
                            "call_id": rec.call_id,
                            "file_name": rec.file_name,
                        }
                    )
        wanted = {p["call_id"]: p for p in pending}
        for path in sorted((self.run_dir / "logs").glob("*.log")) if wanted else []:
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if '"call_id"' not in line:
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    entry = wanted.get(str(record.get("call_id"))) if isinstance(record, dict) else None
                    if entry is not None:
                        entry.setdefault("log", []).append(
                            {
                                k: record.get(k)
                                for k in ("timestamp", "message", "message_id", "receive_count", "error", "reason")
                                if record.get(k) is not None
                            }
                            | {"file": path.name}
                        )
        return pending

    def list_objects(self, prefix: str = "") -> Iterator[dict[str, Any]]:
        paginator = self.client("s3").get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.names.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        out = {}
        sqs = self.client("sqs")
        for lid, url in self.names.queues.items():
            attrs = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            visible = int(attrs["ApproximateNumberOfMessages"]) + int(
                attrs.get("ApproximateNumberOfMessagesDelayed", 0)
            )
            out[lid] = (visible, int(attrs["ApproximateNumberOfMessagesNotVisible"]))
        return out

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        paginator = self.client("dynamodb").get_paginator("query")
        for page in paginator.paginate(TableName=self.names.jobs_table, **kwargs):
            for item in page["Items"]:
                yield {k: deserializer.deserialize(v) for k, v in item.items()}

    def windows_and_jobs(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """Window items (one key query per tenant) and job items (the ``by-status`` index, one
        query per status): what progress needs without scanning the table, whose REC items
        outnumber jobs a thousand to one in a big run (moto walks and serialises every one)."""
        windows: list[dict[str, Any]] = []
        for tenant in [*self.tenants, "_all"]:
            windows.extend(
                self._query(
                    KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": f"WINDOW#{tenant}"}}
                )
            )
        jobs: dict[str, dict[str, Any]] = {}
        for status in sorted(TERMINAL | IN_FLIGHT):
            for item in self._query(
                IndexName="by-status",
                KeyConditionExpression="job_status = :s",
                ExpressionAttributeValues={":s": {"S": status}},
            ):
                if item.get("sk") == "JOB" and str(item.get("pk", "")).startswith("JOB#"):
                    jobs[str(item["response_id"])] = item
        return windows, jobs

    def progress(self, with_s3: bool | None = False) -> Progress:
        """Where the run stands. ``with_s3`` also counts the bucket's objects (a full listing: only
        for a final report; ``None`` = every 3rd call)."""
        windows, jobs = self.windows_and_jobs()
        p = Progress(elapsed=time.monotonic() - self.started_at)
        p.windows = len(windows)
        for job in jobs.values():
            p.jobs[str(job.get("job_status"))] += 1
            if job.get("job_status") in ("COMPLETED", "PARTIAL", "DOWNLOADING", "READY"):
                p.cdr_rows += int(job.get("cdr_rows") or 0)
                p.index_rows += int(job.get("index_rows") or 0)
                p.recordings_total += int(job.get("recordings_total") or 0)
                p.recordings_done += int(job.get("recordings_done") or 0)
                p.recordings_failed += int(job.get("recordings_failed") or 0)
        if with_s3 is None:
            self._polls += 1
            with_s3 = self._polls % 3 == 1
        if with_s3:
            for obj in self.list_objects():
                p.s3_objects += 1
                p.s3_bytes += int(obj["Size"])
            self._last_s3 = (p.s3_objects, p.s3_bytes)
        else:
            p.s3_objects, p.s3_bytes = self._last_s3
        p.queues = self.queue_depths()
        p.dead_letter = set(self.names.dlqs)
        p.pending = self._pending(windows, jobs, p.queues)
        p.complete = not p.pending
        return p

    def _pending(
        self, windows: list[dict[str, Any]], jobs: dict[str, dict[str, Any]], queues: dict[str, tuple[int, int]]
    ) -> list[str]:
        pending: list[str] = []
        by_tenant: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for w in windows:
            begin, _, end = str(w["sk"]).partition("|")
            by_tenant.setdefault(str(w["pk"])[len("WINDOW#") :], []).append((begin, end, w))
        for tenant, begin, end in self.required:
            gap = coverage_gap(by_tenant.get(tenant, []), begin, end)
            if gap:
                pending.append(f"{tenant}: no window yet from {gap}")
        for w in windows:
            status = w.get("job_status")
            job = jobs.get(str(w.get("response_id") or ""))
            if status == "CLAIMED" or job is None:
                pending.append(f"window {w['pk']} {w['sk']} claimed, not requested")
            elif job.get("job_status") not in TERMINAL:
                pending.append(f"job {job['response_id']} {job.get('job_status')}")
        for job in jobs.values():
            if job.get("job_status") in IN_FLIGHT:
                text = f"job {job['response_id']} {job.get('job_status')}"
                if text not in pending:
                    pending.append(text)
        if not jobs and not self.required:
            pending.append("no job yet")
        for lid, (visible, in_flight) in queues.items():
            if lid in self.names.consumed and visible + in_flight:
                pending.append(f"{lid}: {visible} queued, {in_flight} in flight")
        return pending

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


def _parameter_default(template: Path, name: str, fallback: Any) -> Any:
    from local.stack.cfn import load_template

    spec = (load_template(template).get("Parameters") or {}).get(name)
    return spec.get("Default", fallback) if isinstance(spec, dict) else fallback


def _declared_parameters(template: Path) -> set[str]:
    from local.stack.cfn import load_template

    return set((load_template(template).get("Parameters") or {}).keys())


def _session_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
    }
