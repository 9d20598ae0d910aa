"""What a local stack runs and what it is called: :class:`StackConfig` (the knobs of ``make demo``
and of the tests), :class:`StackNames` (physical names and endpoints once it runs), the stack's
host names, moto's fake credentials and the product delays scaled down locally."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from local.stack.cfn import CreatedResources, StackModel, load_template
from local.stack.processes.procs import ROOT

__all__ = [
    "CCFS_HOST",
    "CCFS_PORT",
    "FAKE_CREDENTIALS",
    "OBS_HOST",
    "TIME_PATCHES",
    "StackConfig",
    "StackNames",
    "declared_parameters",
    "local_deviations",
    "parameter_default",
    "session_credentials",
]

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
# The stack's host names (local/stack/processes/netmap.py maps them to 127.0.0.1 ports in every process it
# runs; see STACK.md "Names and trust"). CC-FS on a non-default port, as deployments have it.
CCFS_HOST = "ccfs.sim.internal"
CCFS_PORT = 28443
OBS_HOST = "obs.sim.internal"


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
    # A cap on every SQS mapping's MaximumBatchingWindowInSeconds (the template's 5 s on
    # RecordingQueue: every delivery, first or retried, waits that long for a fuller batch). None: the
    # template's windows (make demo, make chaos); tests that do not exercise batching use a shorter
    # one so that their retries are not each held back by the window (printed as a deviation).
    max_batching_window: float | None = None
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

    def record(self, resources: CreatedResources, model: StackModel, stack_name: str) -> None:
        """Take the physical names of the created resources and the functions' names."""
        r = resources
        for lid, kind in r.types.items():
            self.physical[lid] = r.physical[lid]
            if kind == "AWS::SQS::Queue":
                self.queues[lid] = r.physical[lid]
                self.queue_arns[lid] = r.attributes[lid]["Arn"]
        tables = [lid for lid, kind in r.types.items() if kind == "AWS::DynamoDB::Table"]
        buckets = [lid for lid, kind in r.types.items() if kind == "AWS::S3::Bucket"]
        self.jobs_table = r.physical.get("JobsTable", r.physical[tables[0]] if tables else "")
        self.idempotency_table = r.physical.get("IdempotencyTable", "")
        self.bucket = r.physical.get("ExportBucket", r.physical[buckets[0]] if buckets else "")
        for lid in model.functions:
            self.functions[lid] = f"{stack_name}-{lid}"
        self.consumed = {m.queue for m in model.mappings if m.enabled}

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


def local_deviations(config: StackConfig, named_hosts: bool, resource_notes: list[str]) -> dict[str, str]:
    """The local deviations from the template, for the summary (``LocalStack.overrides``):
    ``named_hosts`` whether the stack's names resolve through netmap; ``resource_notes`` what
    resource creation changed (``CreatedResources.notes``)."""
    out = {
        "VisibilityTimeout": f"{config.visibility_timeout} s on every work queue (template: 6x the "
        "consumer timeout); pollers heartbeat in-flight messages instead",
        "CallbackTimeoutMinutes": f"{config.callback_timeout_minutes} (template minimum 15)",
        "schedule": f"fires every {config.tick_seconds:g} s"
        + (" (template rate is scaled down)" if config.schedule else " - off"),
        "MaximumConcurrency": f"capped at {config.max_concurrency} (fewer consumers than the template)"
        if config.max_concurrency
        else "as the template (one worker per concurrent consumer)",
        "CC-FS callback retry": f"{config.callback_retry_interval:g} s (CC-FS: 10 min)",
        **(
            {
                "MaximumBatchingWindowInSeconds": f"at most {config.max_batching_window:g} s on every mapping "
                "(template: its own per mapping)"
            }
            if config.max_batching_window is not None
            else {}
        ),
        "CALLBACK_URL": "the local API front (set when it starts)",
        "DNS and CA store": (
            "ccfs.sim.internal, obs.sim.internal and the API's execute-api name resolve to 127.0.0.1 ports "
            "(netmap); SSL_CERT_FILE = certifi + the object store's CA"
            if named_hosts
            else "the simulator's own addresses (StackConfig.simulator); SSL_CERT_FILE = certifi + its CA"
        ),
        "POWERTOOLS_TRACE_DISABLED": "true (no X-Ray daemon locally)",
    }
    for target, value in config.patches.items():
        out[target] = f"{value!r} in the function processes (hard-coded in the product)"
    for note in resource_notes:
        if "(local override)" not in note:
            lid, _, text = note.partition(":")
            out[lid.split(" ", 1)[0].split(".", 1)[0]] = text.strip() or note
    return out


def parameter_default(template: Path, name: str, fallback: Any) -> Any:
    """The template's ``Default`` of parameter ``name`` (``fallback`` when it has none)."""
    spec = (load_template(template).get("Parameters") or {}).get(name)
    return spec.get("Default", fallback) if isinstance(spec, dict) else fallback


def declared_parameters(template: Path) -> set[str]:
    return set((load_template(template).get("Parameters") or {}).keys())


def session_credentials() -> dict[str, str]:
    """moto's fake credentials as boto3 session arguments."""
    return {
        "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
    }
