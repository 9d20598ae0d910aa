"""The benchmarks' plumbing: the CC-FS simulator, bench moto servers with the template's resources,
job seeding, and child processes measured for peak RSS (``VmHWM``) and CPU time (``wait4``).

Everything listens on 127.0.0.1. The simulator runs in the orchestrating process; moto and every
measured client run in their own processes, so a figure never includes another party's memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "shared"
if str(LAYER) not in sys.path:
    sys.path.insert(0, str(LAYER))

MiB = 1024 * 1024
GiB = 1024 * MiB
REGION = "us-east-1"
TENANT = "acct001"
ZONE = "Asia/Shanghai"
STACK = "aicc-bench"
CA_PARAM = "/aicc-bench/ccfs-ca"
OBS_CA_PARAM = "/aicc-bench/obs-ca"  # the simulator's object store, trusted as a private-CA LSS
SECRET_NAME = "aicc-bench/ccfs"
# moto's fake credentials, not secrets
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
_PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "PYENV_VERSION", "PYENV_ROOT", "VIRTUAL_ENV")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def base_env(run_dir: Path) -> dict[str, str]:
    """A clean environment like Lambda's: fake credentials, no AWS config files, UTC."""
    env = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ}
    env.update(FAKE_CREDENTIALS)
    missing = str(run_dir / "no-aws-config")
    env.update(
        {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": missing,
            "AWS_SHARED_CREDENTIALS_FILE": missing,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TZ": "UTC",
            "TMPDIR": str(run_dir / "tmp"),
        }
    )
    (run_dir / "tmp").mkdir(parents=True, exist_ok=True)
    return env


def mem_available() -> int:
    """Bytes the kernel reports as available (MemAvailable)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds used so far by a process (this one by default)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


# ---------------------------------------------------------------------------- child processes


@dataclass
class ChildResult:
    task: str
    data: dict[str, Any]
    max_rss_kib: int  # the child's peak resident set (VmHWM of its own image, as /usr/bin/time -v reports)
    wall_s: float
    user_s: float
    sys_s: float
    log_path: Path

    @property
    def max_rss_mib(self) -> float:
        return self.max_rss_kib / 1024


class ChildFailed(RuntimeError):
    pass


def run_child(
    task: str, args: Mapping[str, Any], env: Mapping[str, str], run_dir: Path, *, timeout: float = 900
) -> ChildResult:
    """Run ``python -m bench.child task`` in a fresh interpreter; its stdout/stderr go to a log file,
    its result comes back as a JSON file; peak RSS and CPU times come from ``os.wait4``."""
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = f"{task}-{secrets.token_hex(3)}"
    args_path = run_dir / f"{stamp}.args.json"
    result_path = run_dir / f"{stamp}.result.json"
    log_path = logs / f"{stamp}.log"
    args_path.write_text(json.dumps({**args, "result_file": str(result_path)}), encoding="utf-8")
    env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(LAYER)])}
    for key in ("BENCH_TRANSFER_CONFIG", "BENCH_RSS_TRACE"):  # diagnostics (see bench/child.py)
        if os.environ.get(key):
            env[key] = os.environ[key]
    if os.environ.get("BENCH_PROFILE") and task == "download":
        env["BENCH_PROFILE"] = os.environ["BENCH_PROFILE"] + f".{stamp}.prof"
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.child", task, str(args_path)],
            cwd=str(ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        timer = threading.Timer(timeout, lambda: _kill(process.pid))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if process.returncode != 0 or not result_path.exists():
        tail = "\n".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])
        raise ChildFailed(f"child {task} exited with {process.returncode} after {wall:.0f}s; log {log_path}:\n{tail}")
    data = json.loads(result_path.read_text(encoding="utf-8"))
    # Peak RSS is the child's own VmHWM, read by the child as it ends: wait4's ru_maxrss also counts
    # the pages the child shared with this (larger) process between fork and exec.
    peak = int(data.get("vm_hwm_kib") or usage.ru_maxrss)
    return ChildResult(task, data, peak, wall, usage.ru_utime, usage.ru_stime, log_path)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------- simulator


def recording_calls(sim: Any, day: date, count: int, exclude: set[str] | None = None) -> list[Any]:
    """Calls of ``day`` (time order) holding exactly ``count`` recordings in total."""
    chosen: list[Any] = []
    total = 0
    for call in sim.calls(TENANT, day):
        if not call.recordings or (exclude and call.call_id in exclude):
            continue
        if total + len(call.recordings) > count:
            continue
        chosen.append(call)
        total += len(call.recordings)
        if total == count:
            return chosen
    raise RuntimeError(f"the simulator's day {day} has fewer than {count} recordings; raise calls_per_day")


def serve_bill(sim: Any, path: Path, response_id: str) -> str:
    """Make the simulator serve ``path`` as a bill file (as if a queryBillData had built it).

    Uses the simulator's bill registry directly: bills of 1 M+ rows are written by the benchmark's
    own streaming writer, as the simulator builds bills in memory from its synthetic calls."""
    name = f"{datetime.now(UTC):%Y%m%d}_{response_id}.zip"
    sim.bills.register_bill(name, sim.ak, path)
    return name


def new_response_id() -> str:
    return secrets.token_hex(16)


# ---------------------------------------------------------------------------- moto + resources


class Moto:
    """A bench moto server (``bench.motoserver``) in its own process."""

    def __init__(self, run_dir: Path, name: str, extra_env: Mapping[str, str] | None = None) -> None:
        from local.stack.processes.procs import spawn

        env = base_env(run_dir)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(LAYER)])
        # glibc's dynamic mmap threshold keeps freed 16 MiB part bodies in the heap: pin it so moto
        # gives them back (moto's memory is the harness's, not a figure)
        env["MALLOC_MMAP_THRESHOLD_"] = str(MiB)
        if os.environ.get("BENCH_MOTO_CPU"):
            env["BENCH_MOTO_CPU"] = os.environ["BENCH_MOTO_CPU"] + f".{name}.json"
        env.update(extra_env or {})
        self.child = spawn(name, "bench.motoserver", [], env=env, run_dir=run_dir)
        ready = self.child.wait_ready(60)
        self.endpoint_url: str = ready["endpoint_url"]
        self.pid: int = self.child.pid

    def peak_rss_mib(self) -> float:
        return vm_hwm_kib(self.pid) / 1024

    def stop(self) -> None:
        self.child.stop(timeout=10)


@dataclass
class Template:
    """The template translated once (samtranslator is slow), resolved per moto server."""

    model: Any
    sim_base_url: str
    obs_host: str

    @classmethod
    def load(cls, sim: Any) -> Template:
        from local.stack.cfn import StackModel

        parameters = {
            "CcfsBaseUrl": sim.base_url,
            # placeholder: each moto server gets its own secret (the ARN is overridden per server)
            "CcfsSecretArn": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{SECRET_NAME}-AbCdEf",
            "CcfsCaBundleParameter": CA_PARAM,
            "RecordingCaBundleParameter": OBS_CA_PARAM,
            "TenantAccountIds": TENANT,
            "TenantTimeZone": ZONE,
            "ScheduleEnabled": "false",
            "RecordingUrlHostSuffixes": f"{sim.obs_host}:{sim.obs_port}",
            "CallbackSourceCidrs": "127.0.0.1/32",  # required (no default)
        }
        return cls(StackModel.build(ROOT / "template.yaml", parameters, STACK), sim.base_url, sim.obs_host)

    def mapping(self, function: str, queue: str) -> Any:
        for mapping in self.model.mappings:
            if mapping.function == function and mapping.queue == queue:
                return mapping
        raise KeyError(f"no event source mapping {function} <- {queue} in template.yaml")


@dataclass
class Aws:
    """A moto server holding the template's data resources, the CC-FS secret and CA bundle."""

    moto: Moto
    template: Template
    resources: Any
    secret_arn: str
    run_dir: Path
    _clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, run_dir: Path, name: str, template: Template, sim: Any) -> Aws:
        import boto3

        from local.stack.cfn import create_data_resources

        moto = Moto(run_dir, name)
        session = boto3.session.Session(
            region_name=REGION,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        )
        resources = create_data_resources(template.model, session, moto.endpoint_url)
        sm = session.client("secretsmanager", endpoint_url=moto.endpoint_url)
        secret = sm.create_secret(Name=SECRET_NAME, SecretString=json.dumps({"ak": sim.ak, "sk": sim.sk}))
        ssm = session.client("ssm", endpoint_url=moto.endpoint_url)
        ssm.put_parameter(Name=CA_PARAM, Value=Path(sim.ca_bundle).read_text(encoding="utf-8"), Type="String")
        ssm.put_parameter(Name=OBS_CA_PARAM, Value=Path(sim.obs_ca_bundle).read_text(encoding="utf-8"), Type="String")
        aws = cls(moto, template, resources, secret["ARN"], run_dir)
        aws._clients["session"] = session
        return aws

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from botocore.config import Config

            self._clients[service] = self._clients["session"].client(
                service,
                endpoint_url=self.moto.endpoint_url,
                config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=16),
            )
        return self._clients[service]

    @property
    def bucket(self) -> str:
        return str(self.resources.physical["ExportBucket"])

    @property
    def jobs_table(self) -> str:
        return str(self.resources.physical["JobsTable"])

    def queue_url(self, logical_id: str) -> str:
        return str(self.resources.physical[logical_id])

    def queue_arn(self, logical_id: str) -> str:
        return str(self.resources.attributes[logical_id]["Arn"])

    def function_env(self, logical_id: str) -> dict[str, str]:
        """The environment template.yaml gives the function, resolved against this moto server,
        plus what Lambda itself sets; X-Ray is off (no daemon here)."""
        from local.stack.cfn import Unresolvable

        model = self.template.model
        spec = model.functions[logical_id]
        resolver = model.resolver()
        resolver.physical = dict(self.resources.physical)
        resolver.attributes = dict(self.resources.attributes)
        env = base_env(self.run_dir)
        for key, value in spec.environment.items():
            try:
                resolved = resolver.resolve(value)
            except Unresolvable:
                continue  # e.g. CALLBACK_URL (the API): not used by the functions measured here
            if resolved is not None:
                env[key] = str(resolved).lower() if isinstance(resolved, bool) else str(resolved)
        env.update(
            {
                "CCFS_SECRET_ARN": self.secret_arn,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "AWS_ENDPOINT_URL": self.moto.endpoint_url,
                "AWS_LAMBDA_FUNCTION_NAME": f"{STACK}-{logical_id}",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            }
        )
        return env

    def seed_job(
        self,
        response_id: str,
        *,
        begin: datetime,
        end: datetime,
        status: str,
        data_type: str = "call_record",
        bill_file_name: str | None = None,
    ) -> dict[str, Any]:
        """A job item as request_export writes it (``NewJob.item``), moved to ``status``."""
        from boto3.dynamodb.types import TypeSerializer

        from exporter.jobs.items import NewJob, WindowClaim
        from exporter.planner import Window

        claim = WindowClaim(
            tenant=TENANT, window=Window(begin, end), data_type=data_type, account_id=TENANT, source="schedule"
        )
        now = datetime.now(UTC)
        item = NewJob(response_id, claim, 1).item(now, 365)
        item["job_status"] = status
        if bill_file_name:
            item.update(bill_file_name=bill_file_name, bill_enqueued=True, callback_at=item["status_at"])
        serializer = TypeSerializer()
        self.client("dynamodb").put_item(
            TableName=self.jobs_table, Item={k: serializer.serialize(v) for k, v in item.items()}
        )
        return item

    def get_job(self, response_id: str) -> dict[str, Any]:
        from boto3.dynamodb.types import TypeDeserializer

        from exporter.jobs.keys import job_key
        from exporter.jobs.table import to_ddb

        reply = self.client("dynamodb").get_item(
            TableName=self.jobs_table, Key=to_ddb(job_key(response_id)), ConsistentRead=True
        )
        deserializer = TypeDeserializer()
        return {k: deserializer.deserialize(v) for k, v in reply.get("Item", {}).items()}

    def drain(self, logical_id: str) -> list[dict[str, Any]]:
        """Receive and delete every message of a queue (the bench plays the event source mapping)."""
        sqs = self.client("sqs")
        url = self.queue_url(logical_id)
        out: list[dict[str, Any]] = []
        empty = 0
        while empty < 2:
            batch = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                empty += 1
                continue
            empty = 0
            out.extend(batch)
            sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
            )
        return out

    def objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client("s3").get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def stop(self) -> None:
        for name, value in self._clients.items():
            if name != "session":
                value.close()
        self._clients.clear()
        self.moto.stop()


def day_window(day: date) -> tuple[datetime, datetime]:
    begin = datetime.combine(day, datetime.min.time())
    return begin, begin + timedelta(days=1) - timedelta(seconds=1)


# ---------------------------------------------------------------------------- a null S3


class NullS3:
    """An HTTP server that accepts S3 PutObject requests and discards the bytes.

    Only for the naive client's 1 GiB copy: its single 1 GiB PutObject would make moto hold the
    body several times over; the client's own memory does not depend on who receives the bytes."""

    def __init__(self) -> None:
        self.received = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                left = length
                while left:
                    chunk = self.rfile.read(min(left, MiB))
                    if not chunk:
                        break
                    left -= len(chunk)
                outer.received += length - left
                self.send_response(200)
                self.send_header("ETag", '"00000000000000000000000000000000"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
