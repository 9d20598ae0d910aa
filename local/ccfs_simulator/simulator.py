"""The CC-FS simulator: the five operations, the signed bill callback, an OBS-like recording store,
fault injection, counters and the ground truth (shared/ccfs-protocol.md is the contract).

Requests are verified with :func:`ccfs.auth.verify` (the protocol's own signature) and validated with the
simulator's own reading of the field tables (:mod:`.requests`), never the exporter's models: a
misreading in the client is refused here with the resultCode a CC-FS would answer, not agreed on by
construction (issue 12 §1).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import random
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import httpx

from ccfs.auth import SignatureError, sign, verify
from ccfs.errors import RESULT_DESCRIPTIONS

from .bills import BillStyle, stream_zip_of, write_bill_zip
from .config import Faults, SimulatorConfig
from .data import CDR_HEADER, INDEX_HEADER, Call, CallCenter, Recording
from .obs import BUCKET, ObsSigner, error_xml
from .requests import (
    Invalid,
    QueryBody,
    format_time,
    parse_time,
    read_download_bill,
    read_download_record,
    read_download_record_file,
    read_query,
    read_record_url,
)
from .transport import Exchange, SimServer
from .wav import wav_chunks, wav_sha256

__all__ = ["OPERATIONS", "RecordingTruth", "Simulator", "Truth"]

log = logging.getLogger("local.ccfs_simulator")

CCFS_PREFIX = "/CCFS/resource/ccfs/"
OBS_PREFIX = f"/obs/{BUCKET}/"
ADMIN_PREFIX = "/_admin"
BINARY_TYPE = "Application/Octet-stream;charset=UTF-8"  # sic, as CC-FS sends it
WAV_TYPE = "audio/wav"
QUERY_OPS = frozenset({"queryBillData", "getRecordFileUrlFromObs"})
DOWNLOAD_OPS = frozenset({"downloadBillFile", "downloadRecordFile", "downloadRecord"})
OPERATIONS = tuple(sorted(QUERY_OPS | DOWNLOAD_OPS))
_FINAL = frozenset({"acked", "given_up", "lost", "failed"})
UNKNOWN_CODE = "0309999"  # not in protocol §7: what Faults.unknown_code_rate answers
_URL_SEPARATORS = {"comma": ",", "semicolon": ";", "space": " ", "newline": "\n"}
_OBJECT_DIR = "ccfs/record/"
_OBJECT_NAMESPACE = uuid.UUID("6f1d3c2a-8b4e-4f0a-9d7c-2e5b1a3c4d5e")
_SHORT_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_MIXED_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


@dataclass
class RecordingTruth:
    account_id: str
    call_id: str
    file_name: str
    original_file_name: str
    call_begin: str
    call_end: str
    size: int
    sha256: str


@dataclass
class Truth:
    cdr_rows: list[dict[str, str]]
    index_rows: list[dict[str, str]]
    recordings: list[RecordingTruth]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Bill:
    ak: str
    path: Path | None = None
    entries: list[str] = field(default_factory=list)


@dataclass
class _Query:
    response_id: str
    ak: str
    body: QueryBody
    account_present: bool
    account_value: str | None
    bill_file_name: str
    callback_url: str
    created_at: float
    status: str = "pending"  # pending -> acked | given_up | lost | failed
    attempts: int = 0
    bad_signature_pending: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "responseId": self.response_id,
            "billFileName": self.bill_file_name,
            "accountId": self.account_value,
            "beginTime": format_time(self.body.beginTime),
            "endTime": format_time(self.body.endTime),
            "dataType": self.body.dataType,
            "status": self.status,
            "attempts": self.attempts,
        }


class _Scheduler:
    """Runs callables after a delay on a small thread pool (the callback worker)."""

    def __init__(self, workers: int = 4) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name="ccfs-sim-scheduler")
        self._workers = workers
        self._running: set[threading.Thread] = set()

    def start(self) -> None:
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), fn))
            self._cond.notify_all()

    def _loop(self) -> None:
        with self._cond:
            while not self._stopped:
                if not self._heap or len(self._running) >= self._workers:
                    self._cond.wait()
                    continue
                due, _, fn = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                worker = threading.Thread(target=self._run, args=(fn,), daemon=True, name="ccfs-sim-callback")
                self._running.add(worker)
                worker.start()

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("callback job failed")
        finally:
            with self._cond:
                self._running.discard(threading.current_thread())
                self._cond.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            running = list(self._running)
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for worker in running:
            worker.join(timeout)


class Simulator:
    """A CC-FS server on 127.0.0.1 (see ``local/README.md``). Use as a context manager."""

    def __init__(self, config: SimulatorConfig | None = None, clock: Callable[[], float] | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.config.validate()
        self._clock = clock or time.time
        base = self.config.base_date or (date.today() - timedelta(days=7))
        self.center = CallCenter(
            seed=self.config.seed,
            tenants=self.config.tenants,
            base_date=base,
            days=self.config.days,
            min_bytes=self.config.min_recording_bytes,
            max_bytes=self.config.max_recording_bytes,
            big_recordings=self.config.big_recordings,
            multi_recording_rate=self.config.multi_recording_rate,
            shared_name_rate=self.config.shared_name_rate,
        )
        self._keys = {self.config.ak: self.config.sk, **self.config.extra_keys}
        # Seed 000: a developer account (ak) owns tenant spaces; a tenant without its own ak belongs
        # to the default one. A request naming a tenant must be signed by the ak owning it.
        self._owner = {t.account_id: t.ak or self.config.ak for t in self.config.tenants}
        for tenant in self.config.tenants:
            if tenant.ak is not None and tenant.sk is not None:
                self._keys[tenant.ak] = tenant.sk
        self._lock = threading.RLock()
        self._counter_cond = threading.Condition()
        self._counters: Counter[str] = Counter()
        self._initial_faults = self.config.faults
        self._faults = self.config.faults
        self._streams: dict[str, random.Random] = {}
        self._throttle_left = {"query": 0, "download": 0}
        self._reset_fault_streams()
        self._queries: dict[str, _Query] = {}
        self._bills: dict[str, _Bill] = {}
        self._objects: dict[str, Recording] = {}  # OBS object id (uuid naming) -> recording
        self._first_asked: dict[tuple[str, str], float] = {}  # late recording -> when first asked for
        self._sha: dict[tuple[str, int], str] = {}
        self._obs = ObsSigner(secrets.token_bytes(32), "SIMOBS" + secrets.token_hex(7).upper())
        self._in_flight: Counter[str] = Counter()  # "ccfs" / "obs": requests being served now
        self._peak: Counter[str] = Counter()  # their highest value since start or the last reset
        self._released = threading.Event()  # cleared by hold_ccfs(): CC-FS operations wait
        self._released.set()
        self._hold_timeout = 30.0
        self._server: SimServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._obs_server: SimServer | None = None
        self._obs_thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._scheduler: _Scheduler | None = None
        self._http: httpx.Client | None = None
        self.base_url = ""
        self.admin_url = ""
        self.ca_bundle: str | None = None
        self.obs_host = self.config.host
        self.port = 0
        # The object store: CC-FS's own server, unless ``obs_name`` gives it a server, name and CA.
        self.obs_base_url = ""
        self.obs_ca_bundle: str | None = None
        self.obs_port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def ak(self) -> str:
        return self.config.ak

    @property
    def sk(self) -> str:
        return self.config.sk

    @property
    def base_date(self) -> date:
        return self.center.base_date

    def start(self) -> Simulator:
        if self._server is not None:
            return self
        self._tmp = tempfile.TemporaryDirectory(prefix="ccfs-sim-")
        context = None
        if self.config.tls:
            names = ["127.0.0.1", "localhost", "::1", *([self.config.ccfs_name] if self.config.ccfs_name else [])]
            context, self.ca_bundle = self._tls_context(Path(self._tmp.name), "CC-FS simulator test CA", names)
        self._server = SimServer((self.config.host, self.config.port), self._dispatch, context)
        self.port = self._server.server_address[1]
        scheme = "https" if self.config.tls else "http"
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        self.base_url = f"{scheme}://{host}:{self.port}"
        self.admin_url = f"{self.base_url}{ADMIN_PREFIX}"
        self.obs_base_url, self.obs_ca_bundle, self.obs_port = self.base_url, self.ca_bundle, self.port
        if self.config.obs_name:
            obs_context, self.obs_ca_bundle = self._tls_context(
                Path(self._tmp.name), "OBS simulator test CA", [self.config.obs_name], "obs-ca.pem"
            )
            self._obs_server = SimServer((self.config.host, self.config.obs_port), self._dispatch_obs, obs_context)
            self.obs_port = self._obs_server.server_address[1]
            self.obs_host = self.config.obs_name
            url_port = self.config.obs_url_port or self.obs_port
            self.obs_base_url = f"https://{self.obs_host}" + ("" if url_port == 443 else f":{url_port}")
            self._obs_thread = threading.Thread(
                target=self._obs_server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True, name="obs-sim"
            )
            self._obs_thread.start()
        self._scheduler = _Scheduler()
        self._scheduler.start()
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True, name="ccfs-sim"
        )
        self._serve_thread.start()
        log.info("CC-FS simulator listening on %s", self.base_url)
        return self

    def _tls_context(
        self, directory: Path, authority_name: str, names: list[str], file_name: str = "ca.pem"
    ) -> tuple[ssl.SSLContext, str]:
        """A server context with a certificate for ``names`` from a fresh CA; the CA's PEM path."""
        import trustme

        authority = trustme.CA(organization_name=authority_name)
        cert = authority.issue_cert(*names)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        cert.configure_cert(context)
        bundle = directory / file_name
        authority.cert_pem.write_to_path(str(bundle))
        return context, str(bundle)

    def _callback_verify(self) -> ssl.SSLContext | bool:
        setting = self.config.callback_verify
        if setting is False:
            return False
        if isinstance(setting, str):
            return ssl.create_default_context(cafile=setting)
        return ssl.create_default_context()

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this simulator's CA (for httpx ``verify=``)."""
        if self.ca_bundle is None:
            raise RuntimeError("the simulator is not running with TLS")
        return ssl.create_default_context(cafile=self.ca_bundle)

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        if self._scheduler is not None:
            self._scheduler.stop()
        for running, thread in ((server, self._serve_thread), (self._obs_server, self._obs_thread)):
            if running is None:
                continue
            running.shutdown()
            running.server_close()
            running.close_connections()
            if thread is not None:
                thread.join(5)
        self._obs_server = self._obs_thread = None
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None
        if self._tmp is not None:
            self._tmp.cleanup()
        log.info("CC-FS simulator on port %s stopped", self.port)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ public helpers

    def set_faults(self, **changes: Any) -> None:
        """Replace fault knobs (see :class:`Faults`); restarts the fault streams and bursts."""
        with self._lock:
            self._faults = self._faults.with_changes(**changes)
            self._reset_fault_streams()

    @property
    def faults(self) -> Faults:
        return self._faults

    def counters(self) -> dict[str, int]:
        with self._counter_cond:
            return dict(self._counters)

    def reset_counters(self) -> None:
        with self._counter_cond:
            self._counters.clear()
            self._counter_cond.notify_all()

    def concurrency(self) -> dict[str, int]:
        """How many requests are being served right now and the most at once since start or the
        last reset: ``ccfs_in_flight`` / ``ccfs_peak`` (CC-FS operations, from the request line
        to the last byte of the reply), ``obs_in_flight`` / ``obs_peak`` (object-storage GETs of
        pre-signed URLs), ``connections_open`` / ``connections_peak`` (TCP connections to this
        server, idle keep-alive ones included)."""
        with self._counter_cond:
            values = {
                "ccfs_in_flight": self._in_flight["ccfs"],
                "ccfs_peak": self._peak["ccfs"],
                "obs_in_flight": self._in_flight["obs"],
                "obs_peak": self._peak["obs"],
            }
        server = self._server
        open_now, peak = server.connection_counts() if server is not None else (0, 0)
        return {**values, "connections_open": open_now, "connections_peak": peak}

    def reset_concurrency(self) -> None:
        """Peaks back to what is in flight (open) right now."""
        with self._counter_cond:
            self._peak = Counter(self._in_flight)
        if self._server is not None:
            self._server.reset_connection_peak()

    def wait_in_flight(self, kind: str, at_least: int, timeout: float = 10.0) -> bool:
        """Block until ``at_least`` requests of ``kind`` (``"ccfs"``, ``"obs"``) are in flight."""
        with self._counter_cond:
            return self._counter_cond.wait_for(lambda: self._in_flight[kind] >= at_least, timeout)

    @contextlib.contextmanager
    def hold_ccfs(self, timeout: float = 30.0) -> Iterator[None]:
        """While in the block, every CC-FS operation waits (counted in flight) before it is
        answered, at most ``timeout`` seconds: tests line up concurrent requests without timing."""
        self._hold_timeout = timeout
        self._released.clear()
        try:
            yield
        finally:
            self._released.set()

    @contextlib.contextmanager
    def _serving(self, kind: str) -> Iterator[None]:
        with self._counter_cond:
            self._in_flight[kind] += 1
            self._peak[kind] = max(self._peak[kind], self._in_flight[kind])
            self._counter_cond.notify_all()
        try:
            yield
        finally:
            with self._counter_cond:
                self._in_flight[kind] -= 1
                self._counter_cond.notify_all()

    def wait_for(self, name: str, at_least: int = 1, timeout: float = 10.0) -> bool:
        """Block until counter ``name`` reaches ``at_least`` (True) or ``timeout`` passes (False)."""
        with self._counter_cond:
            return self._counter_cond.wait_for(lambda: self._counters[name] >= at_least, timeout)

    def queries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [q.summary() for q in self._queries.values()]

    def calls(self, account_id: str, day: date) -> list[Call]:
        return self.center.calls(account_id, day)

    def set_big_recording(self, call_id: str, size: int) -> None:
        """Make every recording of ``call_id`` exactly ``size`` bytes (streamed, never in memory)."""
        if size < 60:
            raise ValueError("size must be >= 60")
        self.center.set_big_recording(call_id, size)

    def recording_sha256(self, recording: Recording) -> str:
        key = (recording.key, recording.size)
        with self._lock:
            cached = self._sha.get(key)
        if cached is None:
            cached = wav_sha256(recording.key, recording.size)
            with self._lock:
                self._sha[key] = cached
        return cached

    def recording_bytes(self, recording: Recording) -> Iterator[bytes]:
        return wav_chunks(recording.key, recording.size)

    def truth(self, account_id: str | None, begin: datetime, end: datetime) -> Truth:
        """What a bill for [begin, end] (tenant-local, inclusive, by first-leg call_begin) holds."""
        accounts = [t.account_id for t in self.center.tenants] if account_id is None else [account_id]
        calls: list[Call] = []
        for account in accounts:
            if self.center.tenant(account) is not None:
                calls.extend(self.center.calls_between(account, begin, end))
        return Truth(
            cdr_rows=[dict(leg) for call in calls for leg in call.legs],
            index_rows=[dict(rec.row) for call in calls for rec in call.recordings],
            recordings=[
                RecordingTruth(
                    account_id=rec.account_id,
                    call_id=rec.call_id,
                    file_name=rec.file_name,
                    original_file_name=rec.original_file_name,
                    call_begin=format_time(rec.call_begin),
                    call_end=format_time(rec.call_end),
                    size=rec.size,
                    sha256=self.recording_sha256(rec),
                )
                for call in calls
                for rec in call.recordings
            ],
        )

    # ------------------------------------------------------------------ counters and faults

    def _count(self, name: str, amount: int = 1) -> None:
        if not amount:
            return
        with self._counter_cond:
            self._counters[name] += amount
            self._counter_cond.notify_all()

    def _reset_fault_streams(self) -> None:
        seed = self._faults.fault_seed
        kinds = (
            "error",
            "error_status",
            "reset",
            "reset_point",
            "throttle",
            "not_found",
            "expired_url",
            "duplicate_callback",
            "lost_callback",
            "bad_signature_callback",
            "unknown_code",
        )
        self._streams = {kind: random.Random(f"{seed}:{kind}") for kind in kinds}
        self._throttle_left = {"query": 0, "download": 0}

    def _roll(self, kind: str, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._streams[kind].random() < rate

    def _throttled(self, category: str) -> bool:
        faults = self._faults
        with self._lock:
            if self._throttle_left[category] > 0:
                self._throttle_left[category] -= 1
                return True
            if faults.throttle_rate > 0 and self._streams["throttle"].random() < faults.throttle_rate:
                self._throttle_left[category] = faults.throttle_burst - 1
                return True
        return False

    def _cut_point(self, length: int) -> int | None:
        """Where the reset fault cuts a body of ``length`` bytes (None: no fault this time)."""
        if length < 2 or not self._roll("reset", self._faults.reset_rate):
            return None
        with self._lock:
            fraction = self._streams["reset_point"].uniform(0.05, 0.9)
        self._count("resets_injected")
        return max(1, min(length - 1, int(length * fraction)))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, ex: Exchange) -> None:
        ex.on_status = lambda status: self._count(f"http_{status}")
        ex.on_bytes = lambda n: self._count("bytes_served", n)
        self._count("requests_total")
        if not ex.read_body():  # also for GET: keeps a keep-alive connection in step
            return
        if ex.path.startswith(CCFS_PREFIX):
            with self._serving("ccfs"):
                if not self._released.is_set():
                    self._released.wait(self._hold_timeout)
                self._ccfs(ex, ex.path[len(CCFS_PREFIX) :])
        elif ex.path.startswith(OBS_PREFIX) and self._obs_server is None:
            with self._serving("obs"):
                self._obs_get(ex)
        elif ex.path == ADMIN_PREFIX or ex.path.startswith(ADMIN_PREFIX + "/"):
            self._admin(ex)
        else:
            ex.send_json(404, {"error": "not found"})

    def _dispatch_obs(self, ex: Exchange) -> None:
        """The object store's own server (``obs_name``): pre-signed GETs and nothing else."""
        ex.on_status = lambda status: self._count(f"http_{status}")
        ex.on_bytes = lambda n: self._count("bytes_served", n)
        self._count("requests_total")
        if not ex.read_body():
            return
        if ex.path.startswith(OBS_PREFIX):
            with self._serving("obs"):
                self._obs_get(ex)
        else:
            error = error_xml("NoSuchBucket", "The specified bucket does not exist.", secrets.token_hex(8).upper())
            ex.send(404, error, "application/xml")

    def _reply(
        self, ex: Exchange, code: str, data: Any = None, desc: str | None = None, top: dict[str, Any] | None = None
    ) -> None:
        self._count(f"results.{code}")
        if code == "0":
            description = "success"
        else:
            description = RESULT_DESCRIPTIONS.get(code, "error")
            if desc:
                description = f"{description}: {desc}"
        ex.send_json(
            200,
            {
                "resultCode": code,
                "resultDesc": description,
                "resultData": data if code == "0" else "",
                "response": {"version": "2.0", "resultCode": code, "resultMsg": description},
                **(top or {}),
            },
        )

    def _ccfs(self, ex: Exchange, op: str) -> None:
        if op not in OPERATIONS:
            self._count("requests_by_op.unknown")
            ex.send_json(404, {"error": f"no such operation: {op[:60]}"})
            return
        self._count(f"requests_by_op.{op}")
        if ex.method != "POST":
            ex.send_json(405, {"error": "CC-FS operations are POST"}, {"Allow": "POST"})
            return
        faults = self._faults
        if faults.latency_ms > 0:
            self._count("latency_injected")
            time.sleep(faults.latency_ms / 1000)
        try:
            ak = verify(
                ex.headers.get("Authorization"),
                "POST",
                ex.path,
                ex.headers.items(),
                ex.body,
                self._keys.get,
                now=self._now(),
                max_skew=self.config.max_skew,
                query=ex.query or None,
            )
        except SignatureError as exc:
            self._count("http_401_" + exc.reason)
            ex.send_json(401, {"resultCode": "401", "resultDesc": f"authentication failed: {exc.reason}"})
            return
        if self._roll("error", faults.error_rate):
            self._count("errors_injected")
            with self._lock:
                status = self._streams["error_status"].choice((500, 503))
            ex.send(status, f"<html><body><h1>{status}</h1></body></html>".encode(), "text/html")
            return
        category = "query" if op in QUERY_OPS else "download"
        if self._throttled(category):
            self._count("throttles_injected")
            self._reply(ex, "0300009" if category == "query" else "0300008")
            return
        if self._roll("unknown_code", faults.unknown_code_rate):
            self._count("unknown_codes_injected")
            self._reply(ex, UNKNOWN_CODE, desc="injected undocumented code")
            return
        if not ex.body.strip():
            self._reply(ex, "0300007")
            return
        try:
            payload = json.loads(ex.body)
        except (ValueError, UnicodeDecodeError):
            self._reply(ex, "0300004", desc="body is not JSON")
            return
        if not isinstance(payload, dict):
            self._reply(ex, "0300004", desc="body is not a JSON object")
            return
        payload = _drop_nulls(payload)
        handler = getattr(self, f"_op_{op}")
        handler(ex, ak, payload)

    def _read[R](self, ex: Exchange, reader: Callable[[Any], R], payload: dict[str, Any]) -> R | None:
        """The request as the simulator's own field tables read it (``requests``), or None after
        answering the refusal's resultCode."""
        try:
            return reader(payload)
        except Invalid as exc:
            self._reply(ex, exc.code, desc=exc.desc)
            return None

    # ------------------------------------------------------------------ operations

    def _refuse_account(self, ex: Exchange) -> None:
        """The request names a tenant space another developer account owns: CC-FS checks the
        appId/accountId pairing with the signature and answers as for a bad signature (HTTP 401)."""
        self._count("http_401_account_not_owned")
        ex.send_json(401, {"resultCode": "401", "resultDesc": "authentication failed: account_not_owned"})

    def _owns(self, ak: str, account_id: str) -> bool:
        return self._owner.get(account_id) == ak

    def _op_queryBillData(self, ex: Exchange, ak: str, payload: dict[str, Any]) -> None:
        body = self._read(ex, read_query, payload)
        if body is None:
            return
        if body.accountId and body.accountId in self._owner and not self._owns(ak, body.accountId):
            self._refuse_account(ex)
            return
        raw_body = payload.get("msgBody") or {}
        account_present = "accountId" in raw_body
        response_id = self._new_response_id()
        zone = self._zone_for(body.accountId, ak)
        query_day = datetime.fromtimestamp(self._clock(), zone).date()
        bill_name = f"{query_day:%Y%m%d}_{response_id.replace('-', '')}.zip"  # "without dashes" (§3)
        query = _Query(
            response_id=response_id,
            ak=ak,
            body=body,
            account_present=account_present,
            account_value=raw_body.get("accountId") if account_present else None,
            bill_file_name=bill_name,
            callback_url=body.callBackURL,
            created_at=self._clock(),
        )
        with self._lock:
            self._queries[response_id] = query
            self._bills[bill_name] = _Bill(ak=ak)
        self._count("queries_accepted")
        if self._scheduler is not None:
            self._scheduler.call_later(self.config.callback_delay, lambda: self._callback_attempt(response_id))
        self._reply(ex, "0", {"responseId": response_id})

    def _new_response_id(self) -> str:
        """A fresh responseId in the configured style (all within what the field allows, §3)."""
        style = self.config.response_id_style
        if style == "uuid":
            return str(uuid.uuid4())
        if style == "short":
            return "".join(secrets.choice(_SHORT_ALPHABET) for _ in range(6 + secrets.randbelow(11)))
        if style == "mixed":
            length = 10 + secrets.randbelow(27)
            first = secrets.choice(_MIXED_ALPHABET[:62])  # a letter or digit
            return first + "".join(secrets.choice(_MIXED_ALPHABET) for _ in range(length - 1))
        return uuid.uuid4().hex

    def _op_downloadBillFile(self, ex: Exchange, ak: str, payload: dict[str, Any]) -> None:
        request = self._read(ex, read_download_bill, payload)
        if request is None:
            return
        with self._lock:
            bill = self._bills.get(request.billFileName)
            path = bill.path if bill is not None and bill.ak == ak else None
        if path is None or not path.exists():
            self._reply(ex, "0300012")
            return
        length = path.stat().st_size
        self._count("bills_downloaded")
        ex.send_stream(
            200,
            BINARY_TYPE,
            length,
            _file_chunks(path),
            cut_at=self._cut_point(length),
            headers={"Content-Disposition": f'attachment; filename="{request.billFileName}"'},
        )

    def _op_getRecordFileUrlFromObs(self, ex: Exchange, ak: str, payload: dict[str, Any]) -> None:
        request = self._read(ex, read_record_url, payload)
        if request is None:
            return
        faults = self._faults
        if request.callId in faults.not_found_calls or self._roll("not_found", faults.not_found_rate):
            self._count("not_found_injected")
            self._reply(ex, "0300012")
            return
        utc_times = payload.get("version") in (None, "")
        found: list[Recording] = []
        for call in self.center.find_call(request.callId):
            if not self._owns(ak, call.account_id):  # "the developer's ak must own the call"
                continue
            begin, end = request.beginTime, request.endTime
            if utc_times:
                zone = self.center.zone(call.account_id)
                begin = _utc_to_local(begin, zone)
                end = _utc_to_local(end, zone)
            found.extend(r for r in call.recordings if begin <= r.call_begin <= end)
        found = [r for r in found if self._synced(r)]  # a list, not a generator: every one is asked for
        if not found:
            self._reply(ex, "0300012")
            return
        # "sorted by start time and end time" (§5); equal times in an order the client cannot
        # reproduce (the object id), so only a client that notices the tie gets it right.
        found.sort(key=lambda r: (r.call_begin, r.call_end, self._object_id(r)))
        urls = [self._presign(r) for r in found]
        self._count("urls_issued", len(urls))
        value: str | list[str]
        style = self.config.url_list_style
        if len(urls) == 1:
            value = urls[0]
        elif style == "array":
            value = urls
        else:
            value = _URL_SEPARATORS[style].join(urls)
        if self.config.url_placement == "top":
            self._reply(ex, "0", {}, top={"url": value})
        else:
            self._reply(ex, "0", {"url": value})

    def _synced(self, recording: Recording) -> bool:
        """Whether the scheduled sync has brought ``recording`` to CC-FS yet (``Faults``'
        ``late_recording_rate`` / ``sync_lag_seconds``): a late recording's clock starts the first
        time anyone asks for it, so the lag is the same however long after the call that is."""
        faults = self._faults
        if faults.late_recording_rate <= 0:
            return True
        pick = random.Random(f"{faults.fault_seed}:late:{recording.account_id}:{recording.file_name}").random()
        if pick >= faults.late_recording_rate:
            return True
        now = self._clock()
        key = (recording.account_id, recording.file_name)
        with self._lock:
            first = self._first_asked.get(key)
            if first is None:
                self._first_asked[key] = first = now
                self._count("late_recordings")
        if now - first >= faults.sync_lag_seconds:
            return True
        self._count("not_synced_answers")
        return False

    def _object_id(self, recording: Recording) -> str:
        """The recording's object name in the OBS-like store: a UUID, fixed per seed and recording
        so that runs are reproducible, like the vendor's ``…/ccfs/record/{developId}/{uuid}``."""
        return str(uuid.uuid5(_OBJECT_NAMESPACE, f"{self.config.seed}:{recording.account_id}:{recording.file_name}"))

    def _presign(self, recording: Recording) -> str:
        now = int(self._clock())
        if self._roll("expired_url", self._faults.expired_url_rate):
            self._count("expired_urls_issued")
            expires = now - 60
        else:
            expires = now + self.config.url_expiry_seconds
        if self.config.url_naming == "name":
            path = f"{OBS_PREFIX}{recording.account_id}/{recording.day:%Y%m%d}{recording.file_name}"
        else:
            object_id = self._object_id(recording)
            with self._lock:
                self._objects[object_id] = recording
            path = f"{OBS_PREFIX}{recording.account_id}/{recording.day:%Y%m%d}/{_OBJECT_DIR}{object_id}"
        return self._obs.presign(self.obs_base_url, path, expires)

    def _op_downloadRecordFile(self, ex: Exchange, ak: str, payload: dict[str, Any]) -> None:
        request = self._read(ex, read_download_record_file, payload)
        if request is None:
            return
        recording = self.center.find_by_file_name(request.fileName)
        if recording is None or not self._owns(ak, recording.account_id) or not self._synced(recording):
            self._reply(ex, "0300012")
            return
        self._send_recording(ex, recording, BINARY_TYPE)

    def _op_downloadRecord(self, ex: Exchange, ak: str, payload: dict[str, Any]) -> None:
        request = self._read(ex, read_download_record, payload)
        if request is None:
            return
        name, cc_id = request.fileName, request.ccId
        by_name = self.center.find_by_original(name)
        recordings = (
            [by_name] if by_name is not None else [r for call in self.center.find_call(name) for r in call.recordings]
        )
        recordings = [
            r
            for r in recordings
            if (cc_id is None or r.cc_id == cc_id) and self._owns(ak, r.account_id) and self._synced(r)
        ]
        if not recordings:
            self._reply(ex, "0300012")
            return
        if len(recordings) == 1:
            self._send_recording(ex, recordings[0], BINARY_TYPE)
            return
        recordings.sort(key=lambda r: (r.call_begin, r.file_name))
        members = [(r.file_name.rsplit("/", 1)[-1], r.size, self.recording_bytes(r)) for r in recordings]
        estimate = sum(r.size for r in recordings)
        self._count("recordings_downloaded", len(recordings))
        ex.send_chunked(
            200,
            BINARY_TYPE,
            lambda out: stream_zip_of(members, out),
            cut_at=self._cut_point(estimate),
            headers={"Content-Disposition": f'attachment; filename="{recordings[0].call_id}.zip"'},
        )

    def _send_recording(self, ex: Exchange, recording: Recording, content_type: str) -> None:
        self._count("recordings_downloaded")
        stem = recording.file_name.rsplit("/", 1)[-1]
        ex.send_stream(
            200,
            content_type,
            recording.size,
            self.recording_bytes(recording),
            cut_at=self._cut_point(recording.size) if ex.method != "HEAD" else None,
            headers={"Content-Disposition": f'attachment; filename="{stem}"'},
        )

    # ------------------------------------------------------------------ object storage

    def _obs_get(self, ex: Exchange) -> None:
        self._count("obs_requests")
        request_id = secrets.token_hex(8).upper()
        if ex.method not in ("GET", "HEAD"):
            ex.send(405, error_xml("MethodNotAllowed", "only GET", request_id), "application/xml")
            return
        if self._faults.latency_ms > 0:
            self._count("latency_injected")
            time.sleep(self._faults.latency_ms / 1000)
        params = dict(ex.query)
        problem = self._obs.check(ex.path, params)
        if problem is None and int(self._clock()) > int(params["Expires"]):
            problem = ("AccessDenied", int(params["Expires"]))
            self._count("obs_403_expired")
            message = "Request has expired"
        elif problem is not None:
            self._count("obs_403_signature" if problem[0] == "SignatureDoesNotMatch" else "obs_403_denied")
            message = "The request signature we calculated does not match the signature you provided."
        if problem is not None:
            self._count("obs_403")
            ex.send(403, error_xml(problem[0], message, request_id), "application/xml")
            return
        recording = self._obs_object(ex.path)
        if recording is None:
            self._count("obs_404")
            ex.send(404, error_xml("NoSuchKey", "The specified key does not exist.", request_id), "application/xml")
            return
        self._count("obs_downloads")
        ex.send_stream(
            200,
            WAV_TYPE,
            recording.size,
            self.recording_bytes(recording),
            cut_at=self._cut_point(recording.size) if ex.method == "GET" else None,
            headers={"x-obs-request-id": request_id},
        )

    def _obs_object(self, path: str) -> Recording | None:
        rest = path[len(OBS_PREFIX) :]
        account, _, rest = rest.partition("/")
        day, _, file_path = rest.partition("/")
        if file_path.startswith(_OBJECT_DIR):
            with self._lock:
                recording = self._objects.get(file_path.removeprefix(_OBJECT_DIR))
        else:
            recording = self.center.find_by_file_name("/" + file_path)
        if recording is None or recording.account_id != account:
            return None
        return recording if f"{recording.day:%Y%m%d}" == day else None

    # ------------------------------------------------------------------ admin

    def _admin(self, ex: Exchange) -> None:
        if not _is_loopback(ex.client_host):
            ex.send_json(403, {"error": "the admin API is for loopback clients only"})
            return
        route = (ex.method, ex.path[len(ADMIN_PREFIX) :].rstrip("/"))
        params = dict(ex.query)
        try:
            if route == ("GET", "/counters"):
                ex.send_json(200, self.counters())
            elif route == ("GET", "/faults"):
                ex.send_json(200, self._faults.to_json())
            elif route == ("POST", "/faults"):
                changes = json.loads(ex.body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("faults must be a JSON object")
                self.set_faults(**changes)
                ex.send_json(200, self._faults.to_json())
            elif route == ("GET", "/concurrency"):
                ex.send_json(200, self.concurrency())
            elif route == ("POST", "/reset"):
                with self._lock:
                    self._faults = self._initial_faults
                    self._reset_fault_streams()
                self.reset_counters()
                self.reset_concurrency()
                ex.send_json(200, {"reset": True})
            elif route == ("GET", "/truth"):
                truth = self.truth(
                    params.get("account") or None, parse_time(params["begin"]), parse_time(params["end"])
                )
                ex.send_json(200, truth.to_json())
            elif route == ("GET", "/calls"):
                day = date.fromisoformat(params["day"])
                ex.send_json(200, [_call_json(c) for c in self.calls(params["account"], day)])
            elif route == ("GET", "/queries"):
                ex.send_json(200, self.queries())
            elif route == ("GET", "/info"):
                ex.send_json(200, self.info(include_secret=False))
            else:
                ex.send_json(404, {"error": "unknown admin route"})
        except (KeyError, ValueError, TypeError) as exc:
            ex.send_json(400, {"error": f"{type(exc).__name__}: {exc}"})

    def info(self, include_secret: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "base_url": self.base_url,
            "ca_bundle": self.ca_bundle,
            "ak": self.ak,
            # a tenant with its own developer account also names its ak (and, with secrets, its sk)
            "tenants": [
                {"account_id": t.account_id, "tz": t.tz, **({"ak": t.ak} if t.ak else {})} for t in self.center.tenants
            ],
            "admin_url": self.admin_url,
            "obs_host": self.obs_host,
            "obs_base_url": self.obs_base_url,
            "obs_ca_bundle": self.obs_ca_bundle,
            "obs_port": self.obs_port,
            "base_date": self.base_date.isoformat(),
            "days": self.config.days,
        }
        if include_secret:
            data["sk"] = self.sk
            for entry in data["tenants"]:
                if "ak" in entry:
                    entry["sk"] = self._keys[entry["ak"]]
        return data

    def tenant_keys(self, account_id: str) -> tuple[str, str]:
        """``(ak, sk)`` of the developer account owning ``account_id`` (its own, or the default)."""
        ak = self._owner[account_id]
        return ak, self._keys[ak]

    # ------------------------------------------------------------------ bills and callbacks

    def _zone_for(self, account_id: str | None, ak: str) -> ZoneInfo:
        """The tenant's zone; without an accountId, that of the ak's first tenant (or the first)."""
        if account_id and self.center.tenant(account_id) is not None:
            return self.center.zone(account_id)
        owned = self._accounts_of(ak) or [self.center.tenants[0].account_id]
        return self.center.zone(owned[0])

    def _accounts_of(self, ak: str) -> list[str]:
        return [t.account_id for t in self.center.tenants if self._owns(ak, t.account_id)]

    def _select_calls(self, body: QueryBody, ak: str) -> list[Call]:
        if body.accountId:
            accounts = [body.accountId] if self.center.tenant(body.accountId) is not None else []
        else:
            accounts = self._accounts_of(ak)  # the whole developer account: its own tenants only
        calls = [c for a in accounts for c in self.center.calls_between(a, body.beginTime, body.endTime)]

        def keep(call: Call) -> bool:
            first = call.legs[0]
            return (
                (body.callId is None or call.call_id == body.callId)
                and (body.agentId is None or call.agent_id == body.agentId)
                and (body.callerNo is None or first["caller_no"] == body.callerNo)
                and (body.calleeNo is None or first["callee_no"] == body.calleeNo)
                and (body.calleeNo2 is None or first["callee_no"] == body.calleeNo2)
            )

        return [c for c in calls if keep(c)]

    def _build_bill(self, query: _Query) -> None:
        assert self._tmp is not None
        body = query.body
        calls = self._select_calls(body, query.ak)
        cdr_rows = [leg for call in calls for leg in call.legs]
        index_rows = [rec.row for call in calls for rec in call.recordings]
        path = Path(self._tmp.name) / query.bill_file_name
        entries = write_bill_zip(
            path,
            generated_at=datetime.fromtimestamp(self._clock(), self._zone_for(body.accountId, query.ak)),
            random_digits=f"{random.Random(query.response_id).randrange(1000):03d}",
            cdr=(CDR_HEADER, cdr_rows) if body.dataType in ("call", "call_record") else None,
            index=(INDEX_HEADER, index_rows) if body.dataType in ("record", "call_record") else None,
            split_rows=self.config.split_rows,
            style=BillStyle.of(self.config),
        )
        with self._lock:
            bill = self._bills[query.bill_file_name]
            bill.path, bill.entries = path, entries
        self._count("bills_built")

    def _callback_attempt(self, response_id: str) -> None:
        with self._lock:
            query = self._queries.get(response_id)
            bill = self._bills.get(query.bill_file_name) if query else None
        if query is None or bill is None or query.status in _FINAL:
            return
        if bill.path is None:
            try:
                self._build_bill(query)
            except Exception:
                log.exception("building bill %s failed", query.bill_file_name)
                self._count("bills_failed")
                query.status = "failed"
                return
        faults = self._faults
        if query.attempts == 0:
            if self._roll("lost_callback", faults.lost_callback_rate):
                self._count("callbacks_lost")
                query.status = "lost"
                return
            query.bad_signature_pending = self._roll("bad_signature_callback", faults.bad_signature_callback_rate)
        query.attempts += 1
        bad_signature, query.bad_signature_pending = query.bad_signature_pending, False
        if bad_signature:
            self._count("callbacks_bad_signature")
        acked = self._post_callback(query, bad_signature=bad_signature)
        if acked:
            self._count("callbacks_acked")
            if bad_signature:
                self._count("callbacks_bad_signature_accepted")
            query.status = "acked"
            if self._roll("duplicate_callback", faults.duplicate_callback_rate) and self._scheduler:
                self._scheduler.call_later(0, lambda: self._duplicate_callback(query))
            return
        self._count("callbacks_failed")
        if query.attempts >= self.config.callback_max_tries:
            query.status = "given_up"
            self._count("callbacks_given_up")
            log.warning("callback for %s given up after %d tries", response_id, query.attempts)
        elif self._scheduler is not None:
            self._scheduler.call_later(self.config.callback_retry_interval, lambda: self._callback_attempt(response_id))

    def _duplicate_callback(self, query: _Query) -> None:
        self._count("callbacks_duplicated")
        self._post_callback(query, bad_signature=False)

    def callback_body(self, query_summary: dict[str, Any]) -> bytes:
        """The exact callback body for a query (as listed by :meth:`queries`)."""
        msg: dict[str, Any] = {
            "responseId": query_summary["responseId"],
            "billFileName": query_summary["billFileName"],
        }
        if query_summary.get("accountId") is not None:
            msg["accountId"] = query_summary["accountId"]
        return json.dumps({"request": {"version": "2.0"}, "msgBody": msg}, separators=(",", ":")).encode()

    def _callback_client(self) -> httpx.Client:
        with self._lock:  # created on first use: loading the system CA store costs ~20 ms
            if self._http is None:
                self._http = httpx.Client(verify=self._callback_verify(), timeout=self.config.callback_timeout)
            return self._http

    def _post_callback(self, query: _Query, *, bad_signature: bool) -> bool:
        summary = query.summary()
        summary["accountId"] = query.account_value if query.account_present else None
        body = self.callback_body(summary)
        parts = urlsplit(query.callback_url)
        host = parts.netloc.rpartition("@")[2]
        headers = {
            "Content-Type": "application/json;charset=UTF-8",
            "Content-Length": str(len(body)),
            "Host": host,
        }
        sk = self._keys[query.ak]
        if bad_signature:
            sk = "wrong-" + sk
        timestamp = datetime.fromtimestamp(self._clock() + self._faults.clock_skew_seconds, UTC)
        authorization = sign(
            query.ak,
            sk,
            "POST",
            parts.path or "/",
            headers,
            body,
            timestamp=timestamp,
            query=parse_qsl(parts.query, keep_blank_values=True) or None,
        )
        self._count("callbacks_sent")
        try:
            reply = self._callback_client().post(
                query.callback_url, content=body, headers={**headers, "Authorization": authorization}
            )
        except httpx.HTTPError as exc:
            log.info("callback for %s failed: %s", query.response_id, type(exc).__name__)
            return False
        if reply.status_code != 200:
            log.info("callback for %s answered HTTP %s", query.response_id, reply.status_code)
            return False
        try:
            code = reply.json().get("resultCode")
        except (ValueError, AttributeError):
            return False
        return str(code) == "0"


def _drop_nulls(payload: dict[str, Any]) -> dict[str, Any]:
    """JSON ``null`` means "absent" to CC-FS (a Java service): drop null members, one level deep
    in ``msgBody`` too, so a null required field is reported as missing (0300001)."""
    cleaned = {k: v for k, v in payload.items() if v is not None}
    body = cleaned.get("msgBody")
    if isinstance(body, dict):
        cleaned["msgBody"] = {k: v for k, v in body.items() if v is not None}
    return cleaned


def _utc_to_local(value: datetime, zone: ZoneInfo) -> datetime:
    return value.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)


def _file_chunks(path: Path, size: int = 64 * 1024) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _call_json(call: Call) -> dict[str, Any]:
    return {
        "account_id": call.account_id,
        "call_id": call.call_id,
        "begin": format_time(call.begin),
        "end": format_time(call.end),
        "call_type": call.call_type,
        "answered": call.answered,
        "agent_id": call.agent_id,
        "legs": call.legs,
        "recordings": [
            {
                "file_name": r.file_name,
                "original_file_name": r.original_file_name,
                "call_begin": format_time(r.call_begin),
                "call_end": format_time(r.call_end),
                "size": r.size,
            }
            for r in call.recordings
        ],
    }
