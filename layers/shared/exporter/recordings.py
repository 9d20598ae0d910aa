"""Recording step of the download: one RecordingQueue message → one verified WAV in S3 (docs/design.md).

Path of a recording::

    getRecordFileUrlFromObs ─► pick the URL ─► check scheme/host ─► GET (no redirects)
        │ 0300012 / no usable URL / 404                     │ 403: fresh URLs (≤ 2 refreshes)
        └─► downloadRecordFile ─► /tmp ─┐                   ▼
              │ 0300012 after 0300012, a 404 or too few URLs: not synced to CC-FS yet
              └─► the message sent again later (5, 10, 20 … min) until RECORDING_GRACE_HOURS, then FAILED
                                        └─► declared length ≤ multipart threshold:
                                               read (sha256 + bytes) ─► verify ─► one PutObject with metadata
                                                                        + S3 SHA-256 checksum
                                            larger or undeclared:
                                               stream (sha256 + bytes) ─► _staging/{uuid} ─► verify
                                               ─► copy to recordings/…/{stem}.wav with metadata
                                        ─► sidecar JSON ─► REC item + counter (once) ─► maybe complete the job

A final key only ever holds a verified, complete recording: a small body is verified in memory
before its single, atomic PutObject (S3 checks the SHA-256 it carries); a large one goes to a fresh
staging key first (the transfer manager aborts a failed multipart upload), is checked against the
declared length, then copied with ``sha256``/``size`` metadata; the staging object is always deleted.

Failures are either *permanent* (:class:`PermanentRecordingError`: refused URL, redirect, not found
anywhere, a request CC-FS rejects) — recorded FAILED and the message consumed — or anything else,
which is raised so the message is retried; on the last receive it is first recorded FAILED so the
job can still complete, then raised so the message lands in the DLQ.

Pre-signed URLs are credentials: only :func:`ccfs.errors.redact_url` forms are ever logged.

Where each part lives: which URL and whether it may be fetched, ``exporter.recording_urls``; writing
the verified body and its sidecar to S3, ``exporter.recording_store``; here, the copier and its
parts: :class:`RecordingFetcher` (URL, GET, refresh, fallback), :class:`LateRecordings` (asking
again later), :class:`RecordingOutcomes` (the REC item, once, and the job's completion), and the
dead-letter step. What happened is counted into a :class:`~exporter.tally.Tally` that the handler
emits (``exporter.wiring``).
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, Protocol, cast

import httpx
from aws_lambda_powertools.metrics import MetricUnit
from boto3.s3.transfer import TransferConfig

from ccfs.errors import CcfsAuthError, CcfsNotFound, CcfsPermanentError, redact, redact_url
from ccfs.models import parse_time
from exporter.aws import logger
from exporter.jobs.items import RecordingOutcome
from exporter.jobs.progress import JOB_METRICS, Progress
from exporter.messages import RecordingMessage, message_body
from exporter.recording_errors import PermanentRecordingError, RecordingNotYetAvailable, TransientRecordingError
from exporter.recording_store import Published, RecordingStore
from exporter.recording_urls import check_recording_url, host_allowed, pick_message_url, pick_url, unidentifiable
from exporter.streams import file_chunks
from exporter.tally import Tally

__all__ = [
    "MAX_URL_REFRESHES",
    "RECORDING_METRICS",
    "TRANSFER_CONFIG",
    "LateRecordings",
    "PermanentRecordingError",
    "RecordingCopier",
    "RecordingFetcher",
    "RecordingNotYetAvailable",
    "RecordingOutcomes",
    "RecordingSource",
    "TransientRecordingError",
    "check_recording_url",
    "host_allowed",
    "pick_message_url",
    "pick_url",
    "settle_dead_letter",
]

MiB = 1024 * 1024
# Upload of a recording body (non-seekable: buffered part by part). Bodies up to the threshold are
# one PutObject; larger ones use S3's smallest part size, at most 3 parts in memory at once (~15 MiB
# per recording being copied): a 1 GiB copy stays under 128 MiB of RSS (docs/performance.md) and
# three parts in flight still outpace a CC-FS download.
TRANSFER_CONFIG = TransferConfig(
    multipart_threshold=8 * MiB,
    multipart_chunksize=5 * MiB,
    max_concurrency=3,
    preferred_transfer_client="classic",  # the behaviour relied on (abort on failure, bounded buffers)
)
TRANSFER_CONFIG.max_in_memory_upload_chunks = 3
# Server-side copy from staging to the final key: no bytes pass through the function, so large
# parts and more of them in flight (fewer requests, less waiting). Multipart whenever the upload was
# (the threshold follows TRANSFER_CONFIG's): the copy then gets per-part checksums like its source.
COPY_PART_BYTES = 64 * MiB
COPY_CONCURRENCY = 8
MAX_URL_REFRESHES = 2
# A recording not there yet is asked for again after LATE_RETRY_FIRST_SECONDS, then after twice as
# long each time (5, 10, 20 … min, at most LATE_RETRY_MAX_SECONDS apart) until the grace period
# (Settings.recording_grace_hours) ends: ~10 requests over 24 h, most of them soon after the call,
# when a sync is most likely to land.
LATE_RETRY_FIRST_SECONDS = 300
LATE_RETRY_MAX_SECONDS = 6 * 3600
SQS_MAX_DELAY_SECONDS = 900
HTTP_CHUNK = 1 * MiB
SOURCE_OBS = "obs"
SOURCE_FALLBACK = "downloadRecordFile"

RECORDING_METRICS = (
    "RecordingsCopied",
    "RecordingBytes",
    "RecordingsDuplicate",
    "RecordingsFailed",  # alarmed
    "RecordingsNotYetSynced",
    "UrlRefreshes",
    "RecordingFallbacks",
    "RecordingDeadLettersSettled",
)
"""What the recording step counts into its :class:`~exporter.tally.Tally` (docs/design.md metric
list), besides the job's completion (``JOB_METRICS``); the handler emits them."""


class RecordingSource(Protocol):
    """The part of :class:`ccfs.client.CcfsClient` this step uses: CC-FS operations only. The
    pre-signed URLs are fetched with the copier's own ``http`` client, whose trust store is object
    storage's, not CC-FS's (``exporter.ccfs_factory.recording_http``)."""

    def get_record_file_urls(
        self, call_id: str, begin: datetime, end: datetime, *, version: str | None = "2.0"
    ) -> list[str]: ...

    def download_record_file(self, file_name: str, sink: BinaryIO) -> int: ...


# ---------------------------------------------------------------------------- dead letters

DEAD_LETTER_REASON = (
    "gave up: SQS moved the message to the RecordingDLQ after {count} deliveries that ended without an "
    "outcome (an invocation timed out, ran out of memory or crashed, or kept meeting another delivery "
    "of the same recording in progress); see the download function's logs for message {message_id}"
)


def settle_dead_letter(
    message: RecordingMessage, progress: Progress, *, message_id: str, deliveries: int, tally: Tally
) -> dict[str, Any]:
    """A RecordingQueue message SQS gave up on, read from the RecordingDLQ: give its recording an
    outcome so that its job completes and its manifest names it (docs/design.md).

    This step decides and never copies, so whatever killed the deliveries (a timeout, running out of
    memory on a huge body, a crash) cannot kill it too. A recording that already has an outcome (a
    duplicate message whose twin finished) is left as it is: not a failure, not an alarm. Otherwise
    it is recorded FAILED with the reason (RecordingsFailed, alarmed); a delivery of it still running
    somewhere that copies it after all turns the FAILED into DONE (``Progress.upgrade_failed``).
    What happened is counted into ``tally`` for the handler to emit.
    """
    rid = message.responseId
    existing = progress.get_recording(rid, message.callId, message.stem)
    tally.add("RecordingDeadLettersSettled")
    if existing is not None:
        _complete(progress, rid, tally)
        return {"outcome": "already recorded", "status": existing.status}
    reason = DEAD_LETTER_REASON.format(count=deliveries, message_id=message_id)
    RecordingOutcomes(progress, tally).failed(message, reason)
    return {"outcome": "failed", "reason": reason}


def _complete(progress: Progress, response_id: str, tally: Tally) -> None:
    """Complete the job if this recording was its last one, counting its final status."""
    final = progress.maybe_complete(response_id)
    if final is not None:
        tally.add(JOB_METRICS[final])


# ---------------------------------------------------------------------------- fetching

Publish = Callable[[Iterator[bytes], int | None, str], Published]
"""Hands a body (chunks, declared length or None, source) to the store; the verified copy."""


def _certificate_rejected(exc: BaseException) -> bool:
    """Whether an httpx error is the server's certificate failing verification (a trust setting to
    fix, said so in the reason) rather than a network fault."""
    seen: BaseException | None = exc
    for _ in range(5):  # httpx -> httpcore -> ssl: a short, bounded chain
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass
class RecordingFetcher:
    """Gets one recording's bytes and hands them to ``publish``: the pre-signed URL CC-FS gives for
    it (matched and checked by ``exporter.recording_urls``, fetched without redirects, asked for
    again on 403 at most :data:`MAX_URL_REFRESHES` times), else ``downloadRecordFile`` by name into
    ``/tmp``. Raises the ``exporter.recording_errors`` that say what the copier does next."""

    ccfs: RecordingSource
    http: httpx.Client
    allowed_hosts: list[str]
    tally: Tally
    tmp_dir: str | None = None

    def fetch(self, message: RecordingMessage, publish: Publish) -> Published:
        """The recording published through ``publish``, from object storage or the fallback."""
        try:
            begin, end = parse_time(message.callBegin), parse_time(message.callEnd)
        except ValueError:
            raise PermanentRecordingError("callBegin/callEnd are not yyyy-MM-dd HH:mm:ss") from None
        refreshes = 0
        while True:
            try:
                urls = self.ccfs.get_record_file_urls(message.callId, begin, end, version="2.0")
            except CcfsNotFound:
                return self._fallback(
                    message, publish, "getRecordFileUrlFromObs found no recording (0300012)", late=True
                )
            except CcfsAuthError:
                raise  # credentials/clock: retry and alarm, not this recording's fault
            except CcfsPermanentError as exc:
                raise PermanentRecordingError(f"getRecordFileUrlFromObs refused the request: {exc}") from None
            url = pick_message_url(urls, message)
            if url is None:
                # fewer URLs than the index lists: some of the call's recordings are not synced yet
                late = len(urls) < message.count
                return self._fallback(message, publish, unidentifiable(urls, message), late=late)
            parsed = check_recording_url(url, self.allowed_hosts)
            result = self._get(parsed, publish)
            if result == "expired":
                if refreshes >= MAX_URL_REFRESHES:
                    raise TransientRecordingError(f"recording URL refused (HTTP 403) after {refreshes} refreshes")
                refreshes += 1
                self.tally.add("UrlRefreshes")
                logger.info("recording URL expired, asking for a fresh one", extra={"call_id": message.callId})
                continue
            if result == "missing":
                return self._fallback(message, publish, "object storage answered 404", late=True)
            assert isinstance(result, Published)
            return result

    def _get(self, url: httpx.URL, publish: Publish) -> Published | str:
        """GET the pre-signed URL and publish it; ``"expired"`` on 403, ``"missing"`` on 404."""
        shown = redact_url(str(url))
        http = self.http
        try:
            response = http.send(http.build_request("GET", url), stream=True, follow_redirects=False)
        except httpx.HTTPError as exc:
            if _certificate_rejected(exc):
                raise TransientRecordingError(
                    f"GET {shown}: TLS certificate verification failed; the object store's CA must be in the "
                    "system trust store (public OBS) or in RecordingCaBundleParameter (LSS), not only in the "
                    "CC-FS CA bundle"
                ) from None
            raise TransientRecordingError(f"GET {shown}: {type(exc).__name__}") from None
        try:
            status = response.status_code
            if 300 <= status < 400:
                raise PermanentRecordingError(f"redirect refused (HTTP {status} from {shown})")
            if status == 403:
                return "expired"
            if status == 404:
                return "missing"
            if status in (408, 429) or status >= 500:
                raise TransientRecordingError(f"GET {shown}: HTTP {status}")
            if status != 200:
                raise PermanentRecordingError(f"GET {shown}: HTTP {status}")
            declared = response.headers.get("content-length", "")
            expected = int(declared) if declared.isdigit() else None
            try:
                return publish(response.iter_bytes(HTTP_CHUNK), expected, SOURCE_OBS)
            except httpx.HTTPError as exc:
                raise TransientRecordingError(f"GET {shown}: body failed ({type(exc).__name__})") from None
        finally:
            response.close()

    def _fallback(self, message: RecordingMessage, publish: Publish, why: str, *, late: bool) -> Published:
        """``downloadRecordFile`` by name. ``late``: what sent us here suggests CC-FS has not synced
        the recording yet (no data, a 404, fewer URLs than listed), so "not found" here too means
        *not yet* (:class:`RecordingNotYetAvailable`); otherwise it is a permanent failure."""
        self.tally.add("RecordingFallbacks")
        logger.info("falling back to downloadRecordFile", extra={"call_id": message.callId, "why": why})
        with tempfile.NamedTemporaryFile(dir=self.tmp_dir, prefix="rec-", suffix=".wav") as tmp:
            try:
                size = self.ccfs.download_record_file(message.fileName, cast(BinaryIO, tmp))
            except CcfsNotFound:
                reason = f"recording not found: {why}; downloadRecordFile found no recording either (0300012)"
                raise (RecordingNotYetAvailable if late else PermanentRecordingError)(reason) from None
            except CcfsAuthError:
                raise
            except CcfsPermanentError as exc:
                raise PermanentRecordingError(f"downloadRecordFile refused the request: {exc}") from None
            tmp.flush()
            tmp.seek(0)
            return publish(file_chunks(cast(BinaryIO, tmp)), size, SOURCE_FALLBACK)


# ---------------------------------------------------------------------------- outcomes


@dataclass
class RecordingOutcomes:
    """What became of a recording, on its REC item: counted once whatever the deliveries (the REC
    item's conditional write is the recording path's one duplicate guard), then the job completed
    if it was the last one."""

    progress: Progress
    tally: Tally

    def copied(self, message: RecordingMessage, published: Published) -> bool:
        """Record and count the copy once. False when an earlier delivery had recorded it DONE: this
        one wrote the same verified bytes to the same keys again (metric RecordingsDuplicate). A
        recording the dead-letter step recorded FAILED while this delivery ran becomes DONE."""
        outcome = RecordingOutcome(
            message.callId,
            message.stem,
            message.fileName,
            "DONE",
            published.key,
            published.size,
            published.sha256,
            published.source,
        )
        counted = self.progress.record_recording(message.responseId, outcome) or self.progress.upgrade_failed(
            message.responseId, outcome
        )
        if not counted:
            self.tally.add("RecordingsDuplicate")
        _complete(self.progress, message.responseId, self.tally)
        if counted:  # after the completion: a crash before it counts the copy on its redelivery only
            self.tally.add("RecordingsCopied")
            self.tally.add("RecordingBytes", published.size, MetricUnit.Bytes)
        return counted

    def failed(self, message: RecordingMessage, reason: str) -> None:
        """Record the recording FAILED with ``reason`` (RecordingsFailed, alarmed, once)."""
        logger.error(
            "recording failed",
            extra={"response_id": message.responseId, "call_id": message.callId, "reason": reason},
        )
        outcome = RecordingOutcome(
            message.callId, message.stem, message.fileName, "FAILED", error=reason, message=message_body(message)
        )
        if self.progress.record_recording(message.responseId, outcome):
            self.tally.add("RecordingsFailed")
        else:
            self.progress.fail_again(message.responseId, outcome)  # an operator's retry failed too
        _complete(self.progress, message.responseId, self.tally)


# ---------------------------------------------------------------------------- late recordings


@dataclass
class LateRecordings:
    """Asks again later for a recording CC-FS does not have yet: the message is sent again with a
    growing delay (5, 10, 20 … min, at most :data:`LATE_RETRY_MAX_SECONDS` apart) until ``grace``
    since the first "not found" is over; SQS's 15-minute delay limit is bridged with ``notBefore``
    (one more hop). ``requeue`` None: such a recording fails at once."""

    requeue: Callable[[RecordingMessage, int], None] | None
    grace: timedelta
    tally: Tally

    def postpone(
        self, message: RecordingMessage, reason: str, now: datetime, outcomes: RecordingOutcomes
    ) -> dict[str, Any]:
        """Ask again later, or, once the grace period is over, record it FAILED with the reason."""
        since = message.notFoundSince or now
        waited = now - since
        if self.requeue is None or waited >= self.grace:
            hours = self.grace.total_seconds() / 3600
            failure = (
                f"not synced to CC-FS within the {hours:g} h grace period "
                f"({message.lateRetries + 1} tries since {since:%Y-%m-%dT%H:%M:%SZ}): {reason}"
            )
            outcomes.failed(message, failure)
            return {"outcome": "failed", "reason": failure}
        delay = min(
            timedelta(seconds=LATE_RETRY_FIRST_SECONDS * 2**message.lateRetries),
            timedelta(seconds=LATE_RETRY_MAX_SECONDS),
            self.grace - waited,
        )
        retry_at = now + delay
        again = message.model_copy(update={"notFoundSince": since, "lateRetries": message.lateRetries + 1})
        self.send_again(again, delay, not_before=retry_at)
        self.tally.add("RecordingsNotYetSynced")
        logger.info(
            "recording not on CC-FS yet: asking again later",
            extra={
                "response_id": message.responseId,
                "call_id": message.callId,
                "retry_at": retry_at.isoformat(),
                "tries": message.lateRetries + 1,
                "hop": message.hop + 1,
            },
        )
        return {"outcome": "not yet synced", "retryAt": retry_at.isoformat(), "reason": reason}

    def send_again(self, message: RecordingMessage, delay: timedelta, *, not_before: datetime | None = None) -> None:
        """The message to RecordingQueue again, delayed by ``delay`` (at most SQS's 900 s)."""
        assert self.requeue is not None
        update: dict[str, Any] = {"hop": message.hop + 1}
        if not_before is not None:
            update["notBefore"] = not_before
        seconds = max(0, min(SQS_MAX_DELAY_SECONDS, int(delay.total_seconds() + 0.999)))
        self.requeue(message.model_copy(update=update), seconds)


# ---------------------------------------------------------------------------- the copier


def copy_transfer_config(transfer_config: TransferConfig | None) -> TransferConfig:
    """The server-side copy's transfer setting: ``transfer_config`` when given (tests, bench), else
    large parts, more in flight, multipart whenever the upload was (:data:`TRANSFER_CONFIG`)."""
    if transfer_config is not None:
        return transfer_config
    return TransferConfig(
        multipart_threshold=TRANSFER_CONFIG.multipart_threshold,
        multipart_chunksize=max(COPY_PART_BYTES, TRANSFER_CONFIG.multipart_chunksize),
        max_concurrency=COPY_CONCURRENCY,
        preferred_transfer_client="classic",
    )


@dataclass
class RecordingCopier:
    """Copies one recording per :meth:`process` call. Boto3 clients, the CC-FS client and the HTTP
    client for pre-signed URLs (``http``: object storage's trust store, never CC-FS's) are injected.
    Its parts (fetcher, store, outcomes, late recordings) are built from these fields per call."""

    ccfs: RecordingSource
    s3: Any
    progress: Progress
    bucket: str
    allowed_hosts: list[str]
    http: httpx.Client
    transfer_config: TransferConfig | None = None  # None: the module's TRANSFER_CONFIG (+ copy settings)
    tmp_dir: str | None = None
    clock: Any = None
    requeue: Callable[[RecordingMessage, int], None] | None = None
    """Sends a RecordingQueue message again with a delay in seconds (≤ 900): how a recording
    that is not there yet is asked for later. None: such a recording fails at once."""
    grace: timedelta = timedelta(hours=24)
    tally: Tally = field(default_factory=Tally)
    """What this copier counted (RECORDING_METRICS, JOB_METRICS), for its handler to emit."""

    def _time(self) -> datetime:
        return self.clock() if self.clock else datetime.now(UTC)

    def _store(self) -> RecordingStore:
        upload = self.transfer_config or TRANSFER_CONFIG  # read per call: tests and the bench tune it
        return RecordingStore(self.s3, self.bucket, upload, copy_transfer_config(self.transfer_config))

    def _fetcher(self) -> RecordingFetcher:
        return RecordingFetcher(self.ccfs, self.http, self.allowed_hosts, self.tally, self.tmp_dir)

    # ------------------------------------------------------------------ entry point

    def process(self, message: RecordingMessage, *, last_attempt: bool = False) -> dict[str, Any]:
        """Export one recording. Returns a JSON-able summary; raises when the message must be retried.

        One duplicate guard, the REC item's conditional write (:meth:`Progress.record_recording`):
        four AWS requests on the happy path (the recording's PutObject, the sidecar's, the REC
        transaction, the job read that decides completion). A duplicate delivery (SQS is
        at-least-once; a bill retried after a partial fan-out) downloads the recording again, but its
        conditional PutObjects (``If-None-Match: *``) find the earlier copy and leave it as it is (no
        second version in the versioned bucket), and it is not counted twice. A check before the copy
        (REC item, HEAD, an idempotency record) would cost every recording one to three more
        requests to save a download that only duplicates need."""
        key, sidecar = message.keys()
        now = self._time()
        later = LateRecordings(self.requeue, self.grace, self.tally)
        outcomes = RecordingOutcomes(self.progress, self.tally)
        if message.notBefore is not None and now < message.notBefore and self.requeue is not None:
            later.send_again(message, message.notBefore - now)  # a delay longer than SQS's: one more hop
            return {"outcome": "waiting", "until": message.notBefore.isoformat()}
        store = self._store()
        try:
            published = self._fetcher().fetch(
                message, lambda chunks, expected, source: store.publish(chunks, expected, message, key, source)
            )
            store.write_sidecar(message, sidecar, published, _now_iso(self._time()))
        except PermanentRecordingError as exc:
            outcomes.failed(message, str(exc))
            return {"outcome": "failed", "reason": str(exc)}
        except RecordingNotYetAvailable as exc:
            return later.postpone(message, str(exc), now, outcomes)
        except Exception as exc:
            if last_attempt:
                reason = f"gave up after the last delivery: {redact(str(exc))[:300] or type(exc).__name__}"
                outcomes.failed(message, reason)
            raise
        if not outcomes.copied(message, published):
            return {"outcome": "duplicate", "key": key}
        logger.info(
            "recording copied",
            extra={
                "response_id": message.responseId,
                "call_id": message.callId,
                "key": key,
                "size": published.size,
                "source": published.source,
            },
        )
        return {"outcome": "copied", "key": key, "size": published.size, "sha256": published.sha256}


def _now_iso(moment: datetime) -> str:
    """``yyyy-MM-ddTHH:mm:ssZ``, as the sidecar's ``copied_at``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
