"""The CC-FS simulator: one object assembling the stand-in's parts (shared/ccfs-protocol.md is the
contract) and owning their lifecycle — the TLS servers, the routing of each request, and the public
API tests and the local stack use.

The parts, each its own module: :mod:`.operations` (the five operations), :mod:`.object_store`
(pre-signed URLs and their GETs), :mod:`.bill_queries` (queries and bills), :mod:`.callbacks` (the
signed bill callback), :mod:`.accounts` (developer accounts and tenants), :mod:`.faults` (fault
streams), :mod:`.counters` (counters and gauges), :mod:`.admin` (the admin API), :mod:`.truth`
(the ground truth), :mod:`.tls` (certificates).

Requests are verified with :func:`ccfs.auth.verify` (the protocol's own signature) and validated with the
simulator's own reading of the field tables (:mod:`.requests`), never the exporter's models: a
misreading in the client is refused here with the resultCode a CC-FS would answer, not agreed on by
construction (issue 12 §1).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from .accounts import Accounts
from .admin import ADMIN_PREFIX, Admin
from .bill_queries import BillBook
from .callbacks import CallbackSender, callback_body
from .config import Faults, SimulatorConfig
from .counters import Counters
from .data import Call, CallCenter, Recording
from .faults import FaultStreams
from .object_store import OBS_PREFIX, ObjectStore
from .obs import error_xml
from .operations import OPERATIONS, Operations
from .tls import server_context
from .transport import Exchange, SimServer
from .truth import RecordingTruth, Truth, truth_of

__all__ = ["OPERATIONS", "RecordingTruth", "Simulator", "Truth"]

log = logging.getLogger("local.ccfs_simulator")

CCFS_PREFIX = "/CCFS/resource/ccfs/"


class Simulator:
    """A CC-FS server on 127.0.0.1 (see ``local/README.md``). Use as a context manager.

    Its parts are attributes: ``center`` (the synthetic call center), ``accounts``, ``meters``
    (counters and gauges), ``fault_streams``, ``store`` (object store), ``bills`` (queries and
    bills), ``callbacks``, ``operations``, ``admin``.
    """

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
        self.accounts = Accounts(self.config, self.center)
        self.meters = Counters()
        self.fault_streams = FaultStreams(self.config.faults, self.meters)
        self.store = ObjectStore(self.config, self.center, self.fault_streams, self.meters, self._clock)
        self.bills = BillBook(self.config, self.center, self.accounts, self.meters, self._clock)
        self.callbacks = CallbackSender(
            self.config, self.bills, self.accounts, self.fault_streams, self.meters, self._clock
        )
        self.operations = Operations(
            self.config,
            self.center,
            self.accounts,
            self.fault_streams,
            self.meters,
            self.store,
            self.bills,
            self.callbacks,
            self._clock,
        )
        self.admin = Admin(self)
        self._released = threading.Event()  # cleared by hold_ccfs(): CC-FS operations wait
        self._released.set()
        self._hold_timeout = 30.0
        self._server: SimServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._obs_server: SimServer | None = None
        self._obs_thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
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
        self.bills.directory = Path(self._tmp.name)
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
        self.store.base_url = self.obs_base_url
        self.callbacks.start()
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
        return server_context(directory, authority_name, names, file_name)

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this simulator's CA (for httpx ``verify=``)."""
        if self.ca_bundle is None:
            raise RuntimeError("the simulator is not running with TLS")
        return ssl.create_default_context(cafile=self.ca_bundle)

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        self.callbacks.stop()
        for running, thread in ((server, self._serve_thread), (self._obs_server, self._obs_thread)):
            if running is None:
                continue
            running.shutdown()
            running.server_close()
            running.close_connections()
            if thread is not None:
                thread.join(5)
        self._obs_server = self._obs_thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
        log.info("CC-FS simulator on port %s stopped", self.port)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ routing

    def _dispatch(self, ex: Exchange) -> None:
        self._observe(ex)
        if not ex.read_body():  # also for GET: keeps a keep-alive connection in step
            return
        if ex.path.startswith(CCFS_PREFIX):
            with self.meters.serving("ccfs"):
                if not self._released.is_set():
                    self._released.wait(self._hold_timeout)
                self.operations.handle(ex, ex.path[len(CCFS_PREFIX) :])
        elif ex.path.startswith(OBS_PREFIX) and self._obs_server is None:
            with self.meters.serving("obs"):
                self.store.handle(ex)
        elif ex.path == ADMIN_PREFIX or ex.path.startswith(ADMIN_PREFIX + "/"):
            self.admin.handle(ex)
        else:
            ex.send_json(404, {"error": "not found"})

    def _dispatch_obs(self, ex: Exchange) -> None:
        """The object store's own server (``obs_name``): pre-signed GETs and nothing else."""
        self._observe(ex)
        if not ex.read_body():
            return
        if ex.path.startswith(OBS_PREFIX):
            with self.meters.serving("obs"):
                self.store.handle(ex)
        else:
            error = error_xml("NoSuchBucket", "The specified bucket does not exist.", secrets.token_hex(8).upper())
            ex.send(404, error, "application/xml")

    def _observe(self, ex: Exchange) -> None:
        count = self.meters.count
        ex.on_status = lambda status: count(f"http_{status}")
        ex.on_bytes = lambda n: count("bytes_served", n)
        count("requests_total")

    # ------------------------------------------------------------------ faults, counters, concurrency

    def set_faults(self, **changes: Any) -> None:
        """Replace fault knobs (see :class:`Faults`); restarts the fault streams and bursts."""
        self.fault_streams.set(**changes)

    @property
    def faults(self) -> Faults:
        return self.fault_streams.current

    def counters(self) -> dict[str, int]:
        return self.meters.snapshot()

    def reset_counters(self) -> None:
        self.meters.reset()

    def wait_for(self, name: str, at_least: int = 1, timeout: float = 10.0) -> bool:
        """Block until counter ``name`` reaches ``at_least`` (True) or ``timeout`` passes (False)."""
        return self.meters.wait_for(name, at_least, timeout)

    def concurrency(self) -> dict[str, int]:
        """How many requests are being served right now and the most at once since start or the
        last reset: ``ccfs_in_flight`` / ``ccfs_peak`` (CC-FS operations, from the request line
        to the last byte of the reply), ``obs_in_flight`` / ``obs_peak`` (object-storage GETs of
        pre-signed URLs), ``connections_open`` / ``connections_peak`` (TCP connections to this
        server, idle keep-alive ones included)."""
        values = self.meters.gauges()
        server = self._server
        open_now, peak = server.connection_counts() if server is not None else (0, 0)
        return {**values, "connections_open": open_now, "connections_peak": peak}

    def reset_concurrency(self) -> None:
        """Peaks back to what is in flight (open) right now."""
        self.meters.reset_peaks()
        if self._server is not None:
            self._server.reset_connection_peak()

    def reset(self) -> None:
        """The configured faults (streams from their start), counters zero, peaks to now."""
        self.fault_streams.reset()
        self.reset_counters()
        self.reset_concurrency()

    def wait_in_flight(self, kind: str, at_least: int, timeout: float = 10.0) -> bool:
        """Block until ``at_least`` requests of ``kind`` (``"ccfs"``, ``"obs"``) are in flight."""
        return self.meters.wait_in_flight(kind, at_least, timeout)

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

    # ------------------------------------------------------------------ data, queries, truth

    def queries(self) -> list[dict[str, Any]]:
        return self.bills.summaries()

    def callback_body(self, query_summary: dict[str, Any]) -> bytes:
        """The exact callback body for a query (as listed by :meth:`queries`)."""
        return callback_body(query_summary)

    def calls(self, account_id: str, day: date) -> list[Call]:
        return self.center.calls(account_id, day)

    def set_big_recording(self, call_id: str, size: int) -> None:
        """Make every recording of ``call_id`` exactly ``size`` bytes (streamed, never in memory)."""
        if size < 60:
            raise ValueError("size must be >= 60")
        self.center.set_big_recording(call_id, size)

    def recording_sha256(self, recording: Recording) -> str:
        return self.store.recording_sha256(recording)

    def recording_bytes(self, recording: Recording) -> Iterator[bytes]:
        return self.store.recording_bytes(recording)

    def truth(self, account_id: str | None, begin: datetime, end: datetime) -> Truth:
        """What a bill for [begin, end] (tenant-local, inclusive, by first-leg call_begin) holds."""
        return truth_of(self.center, self.store.recording_sha256, account_id, begin, end)

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
                    entry["sk"] = self.accounts.secret(entry["ak"])
        return data

    def tenant_keys(self, account_id: str) -> tuple[str, str]:
        """``(ak, sk)`` of the developer account owning ``account_id`` (its own, or the default)."""
        return self.accounts.tenant_keys(account_id)
