"""The OBS-like recording store: the object names and pre-signed URLs getRecordFileUrlFromObs
hands out, the GETs of those URLs (signature, expiry, 403/404 XML as OBS answers), the recordings'
bytes and hashes, and the scheduled sync that brings a late recording to CC-FS after a lag."""

from __future__ import annotations

import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from .config import SimulatorConfig
from .counters import Counters
from .data import CallCenter, Recording
from .faults import FaultStreams
from .obs import BUCKET, ObsSigner, error_xml
from .transport import Exchange
from .wav import wav_chunks, wav_sha256

__all__ = ["OBS_PREFIX", "ObjectStore"]

OBS_PREFIX = f"/obs/{BUCKET}/"
WAV_TYPE = "audio/wav"
_OBJECT_DIR = "ccfs/record/"
_OBJECT_NAMESPACE = uuid.UUID("6f1d3c2a-8b4e-4f0a-9d7c-2e5b1a3c4d5e")


class ObjectStore:
    """Recordings as the object store serves them. ``base_url`` is set when the server starts."""

    def __init__(
        self,
        config: SimulatorConfig,
        center: CallCenter,
        faults: FaultStreams,
        counters: Counters,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._center = center
        self._faults = faults
        self._counters = counters
        self._clock = clock
        self._lock = threading.Lock()
        self._objects: dict[str, Recording] = {}  # OBS object id (uuid naming) -> recording
        self._first_asked: dict[tuple[str, str], float] = {}  # late recording -> when first asked for
        self._sha: dict[tuple[str, int], str] = {}
        self._signer = ObsSigner(secrets.token_bytes(32), "SIMOBS" + secrets.token_hex(7).upper())
        self.base_url = ""

    # ------------------------------------------------------------------ contents

    def recording_bytes(self, recording: Recording) -> Iterator[bytes]:
        return wav_chunks(recording.key, recording.size)

    def recording_sha256(self, recording: Recording) -> str:
        key = (recording.key, recording.size)
        with self._lock:
            cached = self._sha.get(key)
        if cached is None:
            cached = wav_sha256(recording.key, recording.size)
            with self._lock:
                self._sha[key] = cached
        return cached

    def synced(self, recording: Recording) -> bool:
        """Whether the scheduled sync has brought ``recording`` to CC-FS yet (``Faults``'
        ``late_recording_rate`` / ``sync_lag_seconds``): a late recording's clock starts the first
        time anyone asks for it, so the lag is the same however long after the call that is."""
        faults = self._faults.current
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
                self._counters.count("late_recordings")
        if now - first >= faults.sync_lag_seconds:
            return True
        self._counters.count("not_synced_answers")
        return False

    # ------------------------------------------------------------------ pre-signed URLs

    def object_id(self, recording: Recording) -> str:
        """The recording's object name in the OBS-like store: a UUID, fixed per seed and recording
        so that runs are reproducible, like the vendor's ``…/ccfs/record/{developId}/{uuid}``."""
        return str(uuid.uuid5(_OBJECT_NAMESPACE, f"{self._config.seed}:{recording.account_id}:{recording.file_name}"))

    def presign(self, recording: Recording) -> str:
        now = int(self._clock())
        if self._faults.roll("expired_url", self._faults.current.expired_url_rate):
            self._counters.count("expired_urls_issued")
            expires = now - 60
        else:
            expires = now + self._config.url_expiry_seconds
        if self._config.url_naming == "name":
            path = f"{OBS_PREFIX}{recording.account_id}/{recording.day:%Y%m%d}{recording.file_name}"
        else:
            object_id = self.object_id(recording)
            with self._lock:
                self._objects[object_id] = recording
            path = f"{OBS_PREFIX}{recording.account_id}/{recording.day:%Y%m%d}/{_OBJECT_DIR}{object_id}"
        return self._signer.presign(self.base_url, path, expires)

    # ------------------------------------------------------------------ serving

    def handle(self, ex: Exchange) -> None:
        """A request under :data:`OBS_PREFIX`: a GET/HEAD of a pre-signed URL."""
        count = self._counters.count
        count("obs_requests")
        request_id = secrets.token_hex(8).upper()
        if ex.method not in ("GET", "HEAD"):
            ex.send(405, error_xml("MethodNotAllowed", "only GET", request_id), "application/xml")
            return
        faults = self._faults.current
        if faults.latency_ms > 0:
            count("latency_injected")
            time.sleep(faults.latency_ms / 1000)
        params = dict(ex.query)
        problem = self._signer.check(ex.path, params)
        if problem is None and int(self._clock()) > int(params["Expires"]):
            problem = ("AccessDenied", int(params["Expires"]))
            count("obs_403_expired")
            message = "Request has expired"
        elif problem is not None:
            count("obs_403_signature" if problem[0] == "SignatureDoesNotMatch" else "obs_403_denied")
            message = "The request signature we calculated does not match the signature you provided."
        if problem is not None:
            count("obs_403")
            ex.send(403, error_xml(problem[0], message, request_id), "application/xml")
            return
        recording = self._find(ex.path)
        if recording is None:
            count("obs_404")
            ex.send(404, error_xml("NoSuchKey", "The specified key does not exist.", request_id), "application/xml")
            return
        count("obs_downloads")
        ex.send_stream(
            200,
            WAV_TYPE,
            recording.size,
            self.recording_bytes(recording),
            cut_at=self._faults.cut_point(recording.size) if ex.method == "GET" else None,
            headers={"x-obs-request-id": request_id},
        )

    def _find(self, path: str) -> Recording | None:
        rest = path[len(OBS_PREFIX) :]
        account, _, rest = rest.partition("/")
        day, _, file_path = rest.partition("/")
        if file_path.startswith(_OBJECT_DIR):
            with self._lock:
                recording = self._objects.get(file_path.removeprefix(_OBJECT_DIR))
        else:
            recording = self._center.find_by_file_name("/" + file_path)
        if recording is None or recording.account_id != account:
            return None
        return recording if f"{recording.day:%Y%m%d}" == day else None
