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
"""

from __future__ import annotations

import base64
import ipaddress
import json
import ssl
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, Protocol, cast
from urllib.parse import unquote

import httpx
from aws_lambda_powertools.metrics import MetricUnit
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from ccfs.errors import CcfsAuthError, CcfsNotFound, CcfsPermanentError, redact, redact_url
from ccfs.models import parse_time
from exporter import layout
from exporter.aws import logger
from exporter.jobs.items import RecordingOutcome
from exporter.jobs.progress import JOB_METRICS, Progress
from exporter.messages import RecordingMessage
from exporter.streams import HashingReader, file_chunks
from exporter.tally import Tally

__all__ = [
    "MAX_URL_REFRESHES",
    "RECORDING_METRICS",
    "TRANSFER_CONFIG",
    "PermanentRecordingError",
    "RecordingCopier",
    "RecordingNotYetAvailable",
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


class PermanentRecordingError(Exception):
    """This recording cannot be exported by retrying; ``str()`` is the reason kept in REC/manifest."""


class TransientRecordingError(Exception):
    """Worth retrying later (5xx, reset, truncated body, expired URL after refreshes)."""


class RecordingNotYetAvailable(Exception):
    """CC-FS has no such recording *yet*: neither a URL nor ``downloadRecordFile`` found a recording
    that the index lists. Seed 001: recordings reach CC-FS "by a scheduled task", so this means "not
    synced yet" until the grace period ends (``str()`` is the reason kept if it never arrives)."""


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
    rid, call_id, stem = message.responseId, message.callId, message.stem
    existing = progress.get_recording(rid, call_id, stem)
    if existing is not None:
        tally.add("RecordingDeadLettersSettled")
        _complete(progress, rid, tally)
        return {"outcome": "already recorded", "status": existing.status}
    reason = DEAD_LETTER_REASON.format(count=deliveries, message_id=message_id)
    logger.error("recording failed", extra={"response_id": rid, "call_id": call_id, "reason": reason})
    outcome = RecordingOutcome(call_id, stem, message.fileName, "FAILED", error=reason)
    if progress.record_recording(rid, outcome):
        tally.add("RecordingsFailed")
    tally.add("RecordingDeadLettersSettled")
    _complete(progress, rid, tally)
    return {"outcome": "failed", "reason": reason}


def _complete(progress: Progress, response_id: str, tally: Tally) -> None:
    """Complete the job if this recording was its last one, counting its final status."""
    final = progress.maybe_complete(response_id)
    if final is not None:
        tally.add(JOB_METRICS[final])


# ---------------------------------------------------------------------------- URL rules


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None


def _entry(raw: str) -> tuple[str, int | None]:
    """An allow-list entry ``name``, ``.suffix``, ``ip`` or any of them with ``:port``
    (``[v6]:port`` for IPv6) → ``(name, port)``; no port means the https default, 443."""
    entry = raw.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") and rest[1:].isdigit() else ""
        return host, int(port) if port else None
    name, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in name:  # an unbracketed IPv6 address has no port
        return name.rstrip("."), int(port)
    return entry.rstrip("."), None


def host_allowed(host: str, allowed: list[str], port: int | None = None) -> bool:
    """``host`` equals an entry or ends with it on a dot boundary (``.obs.example.com`` or
    ``obs.example.com`` both allow ``bucket.obs.example.com``). IP entries and IP hosts only match
    exactly. An empty list allows nothing.

    Ports: an entry without one allows only https's default port (443, or none in the URL); an
    entry ``host:8443`` allows exactly that port (on-premises LSS often serves another). A pre-signed
    URL is a credential-bearing fetch from a Lambda inside the customer's account: it must not be
    steerable to any port of an allowed host (SSRF)."""
    host = host.strip().lower().rstrip(".")
    if not host:
        return False
    wanted = 443 if port is None else port
    host_ip = _ip(host)
    for raw in allowed:
        entry, entry_port = _entry(raw)
        bare = entry.lstrip(".")
        if not bare or (443 if entry_port is None else entry_port) != wanted:
            continue
        entry_ip = _ip(bare)
        if host_ip is not None or entry_ip is not None:
            if host_ip is not None and entry_ip is not None and host_ip == entry_ip:
                return True
            continue
        if host == bare or host.endswith("." + bare):
            return True
    return False


def check_recording_url(url: str, allowed: list[str]) -> httpx.URL:
    """The parsed URL if it may be fetched; PermanentRecordingError otherwise (nothing is fetched).

    The same parsed object is used for the request, so the check and the fetch cannot disagree on
    what the host is.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise PermanentRecordingError("recording URL is not a valid URL") from None
    if parsed.scheme != "https":
        raise PermanentRecordingError(f"recording URL must be https, not {parsed.scheme or 'none'}")
    if parsed.userinfo or not host_allowed(parsed.host, allowed, parsed.port):
        where = parsed.host[:100] + (f":{parsed.port}" if parsed.port is not None else "")
        raise PermanentRecordingError(f"recording URL host not allowed: {where}")
    return parsed


def _url_last_segment(url: str) -> str:
    path = httpx.URL(url).path if url else ""
    return unquote(path.rstrip("/").rsplit("/", 1)[-1])


def _url_stem(url: str) -> str:
    last = _url_last_segment(url)
    return last.rsplit(".", 1)[0] if "." in last else last


def _names_a_file(url: str) -> bool:
    """Whether the URL's last path segment looks like a file name (``0903379.wav``), not an opaque
    object id such as the vendor's UUID."""
    try:
        last = _url_last_segment(url)
    except (httpx.InvalidURL, ValueError):
        return False
    return "." in last.strip(".")


def pick_url(urls: list[str], file_name: str, ordinal: int, count: int, *, ordinal_certain: bool = True) -> str | None:
    """The URL of this recording, or None: use the fallback by name (downloadRecordFile).

    The vendor's URLs end in a UUID, not the file name (protocol §5), and several recordings of a call
    come back "sorted by start time and end time". So: a URL whose last segment names this file wins;
    otherwise the ``ordinal``-th URL, but only when CC-FS returned exactly ``count`` URLs (one per
    index row of the call), the bill step could place this recording with certainty
    (``ordinal_certain``: no other row with the same begin and end), and — when there are several —
    that URL does not name some other file (the only URL of a one-recording call may carry any object
    name). Anything else could store one recording under another's name: None.
    """
    stem = layout.recording_stem(file_name).casefold()
    for url in urls:
        try:
            if _url_stem(url).casefold() == stem:
                return url
        except (httpx.InvalidURL, ValueError):
            continue
    if len(urls) != count or not 1 <= ordinal <= count:
        return None
    if not ordinal_certain:
        return None
    url = urls[ordinal - 1]
    return None if count > 1 and _names_a_file(url) else url


def pick_message_url(urls: list[str], message: RecordingMessage) -> str | None:
    """:func:`pick_url` for a queue message: by the position in this recording's own time window
    (``urlOrdinal``/``urlCount``) when CC-FS returned that many URLs, else by the position in the
    whole call (``ordinal``/``count``): CC-FS answering all the call's recordings whatever the window."""
    certain = message.ordinalCertain or message.count == 1  # the call's only recording: nothing to confuse
    if message.urlOrdinal is not None and message.urlCount is not None and len(urls) == message.urlCount:
        url = pick_url(urls, message.fileName, message.urlOrdinal, message.urlCount, ordinal_certain=certain)
        if url is not None and message.count > 1 and _names_a_file(url) and not _is_named(url, message.fileName):
            return None  # the one URL of this window names another of the call's files
        return url
    return pick_url(urls, message.fileName, message.ordinal, message.count, ordinal_certain=certain)


def _is_named(url: str, file_name: str) -> bool:
    try:
        return _url_stem(url).casefold() == layout.recording_stem(file_name).casefold()
    except (httpx.InvalidURL, ValueError):
        return False


def _unidentifiable(urls: list[str], message: RecordingMessage) -> str:
    """Why no URL could be matched to this recording (kept with a fallback that fails)."""
    if len(urls) not in (message.count, message.urlCount):
        return f"{len(urls)} URLs returned for the call's {message.count} indexed recordings: none names this file"
    if message.count > 1 and not message.ordinalCertain:
        return (
            f"{len(urls)} URLs returned, none names this file, and its place among the call's recordings "
            "is not certain (another recording has the same begin and end time, or a time is missing)"
        )
    return f"the URL in this recording's place ({message.ordinal} of {len(urls)}) names another file"


# ---------------------------------------------------------------------------- the copier


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


@dataclass(frozen=True)
class _Published:
    key: str
    size: int
    sha256: str
    source: str


@dataclass
class RecordingCopier:
    """Copies one recording per :meth:`process` call. Boto3 clients, the CC-FS client and the HTTP
    client for pre-signed URLs (``http``: object storage's trust store, never CC-FS's) are injected."""

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

    def _now(self) -> str:
        return self._time().strftime("%Y-%m-%dT%H:%M:%SZ")

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
        rid, call_id = message.responseId, message.callId
        key, sidecar = message.keys()
        stem = message.stem
        now = self._time()
        if message.notBefore is not None and now < message.notBefore and self.requeue is not None:
            self._send_again(message, message.notBefore - now)  # a delay longer than SQS's: one more hop
            return {"outcome": "waiting", "until": message.notBefore.isoformat()}
        try:
            published = self._export(message, key)
            self._write_sidecar(message, sidecar, published)
        except PermanentRecordingError as exc:
            self._failed(message, str(exc))
            return {"outcome": "failed", "reason": str(exc)}
        except RecordingNotYetAvailable as exc:
            return self._not_yet(message, str(exc), now)
        except Exception as exc:
            if last_attempt:
                reason = f"gave up after the last delivery: {redact(str(exc))[:300] or type(exc).__name__}"
                self._failed(message, reason)
            raise
        outcome = RecordingOutcome(
            call_id, stem, message.fileName, "DONE", key, published.size, published.sha256, published.source
        )
        if not self._finish(message, outcome):
            return {"outcome": "duplicate", "key": key}
        self.tally.add("RecordingsCopied")
        self.tally.add("RecordingBytes", published.size, MetricUnit.Bytes)
        logger.info(
            "recording copied",
            extra={
                "response_id": rid,
                "call_id": call_id,
                "key": key,
                "size": published.size,
                "source": published.source,
            },
        )
        return {"outcome": "copied", "key": key, "size": published.size, "sha256": published.sha256}

    def _finish(self, message: RecordingMessage, outcome: RecordingOutcome) -> bool:
        """Record and count the copy once. False when an earlier delivery had recorded it DONE: this
        one wrote the same verified bytes to the same keys again (metric RecordingsDuplicate). A
        recording the dead-letter step recorded FAILED while this delivery ran becomes DONE."""
        counted = self.progress.record_recording(message.responseId, outcome) or self.progress.upgrade_failed(
            message.responseId, outcome
        )
        if not counted:
            self.tally.add("RecordingsDuplicate")
        _complete(self.progress, message.responseId, self.tally)
        return counted

    def _failed(self, message: RecordingMessage, reason: str) -> None:
        logger.error(
            "recording failed",
            extra={"response_id": message.responseId, "call_id": message.callId, "reason": reason},
        )
        outcome = RecordingOutcome(message.callId, message.stem, message.fileName, "FAILED", error=reason)
        if self.progress.record_recording(message.responseId, outcome):
            self.tally.add("RecordingsFailed")
        _complete(self.progress, message.responseId, self.tally)

    def _not_yet(self, message: RecordingMessage, reason: str, now: datetime) -> dict[str, Any]:
        """A listed recording CC-FS does not have yet: ask again later with a growing delay, or, once
        the grace period since the first "not found" is over, record it FAILED with the reason."""
        since = message.notFoundSince or now
        waited = now - since
        if self.requeue is None or waited >= self.grace:
            hours = self.grace.total_seconds() / 3600
            failure = (
                f"not synced to CC-FS within the {hours:g} h grace period "
                f"({message.lateRetries + 1} tries since {since:%Y-%m-%dT%H:%M:%SZ}): {reason}"
            )
            self._failed(message, failure)
            return {"outcome": "failed", "reason": failure}
        delay = min(
            timedelta(seconds=LATE_RETRY_FIRST_SECONDS * 2**message.lateRetries),
            timedelta(seconds=LATE_RETRY_MAX_SECONDS),
            self.grace - waited,
        )
        retry_at = now + delay
        again = message.model_copy(update={"notFoundSince": since, "lateRetries": message.lateRetries + 1})
        self._send_again(again, delay, not_before=retry_at)
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

    def _send_again(self, message: RecordingMessage, delay: timedelta, *, not_before: datetime | None = None) -> None:
        assert self.requeue is not None
        update: dict[str, Any] = {"hop": message.hop + 1}
        if not_before is not None:
            update["notBefore"] = not_before
        seconds = max(0, min(SQS_MAX_DELAY_SECONDS, int(delay.total_seconds() + 0.999)))
        self.requeue(message.model_copy(update=update), seconds)

    # ------------------------------------------------------------------ export

    def _export(self, message: RecordingMessage, key: str) -> _Published:
        try:
            begin, end = parse_time(message.callBegin), parse_time(message.callEnd)
        except ValueError:
            raise PermanentRecordingError("callBegin/callEnd are not yyyy-MM-dd HH:mm:ss") from None
        refreshes = 0
        while True:
            try:
                urls = self.ccfs.get_record_file_urls(message.callId, begin, end, version="2.0")
            except CcfsNotFound:
                return self._fallback(message, key, "getRecordFileUrlFromObs found no recording (0300012)", late=True)
            except CcfsAuthError:
                raise  # credentials/clock: retry and alarm, not this recording's fault
            except CcfsPermanentError as exc:
                raise PermanentRecordingError(f"getRecordFileUrlFromObs refused the request: {exc}") from None
            url = pick_message_url(urls, message)
            if url is None:
                # fewer URLs than the index lists: some of the call's recordings are not synced yet
                late = len(urls) < message.count
                return self._fallback(message, key, _unidentifiable(urls, message), late=late)
            parsed = check_recording_url(url, self.allowed_hosts)
            result = self._fetch(parsed, message, key)
            if result == "expired":
                if refreshes >= MAX_URL_REFRESHES:
                    raise TransientRecordingError(f"recording URL refused (HTTP 403) after {refreshes} refreshes")
                refreshes += 1
                self.tally.add("UrlRefreshes")
                logger.info("recording URL expired, asking for a fresh one", extra={"call_id": message.callId})
                continue
            if result == "missing":
                return self._fallback(message, key, "object storage answered 404", late=True)
            assert isinstance(result, _Published)
            return result

    def _fetch(self, url: httpx.URL, message: RecordingMessage, key: str) -> _Published | str:
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
                return self._publish(response.iter_bytes(HTTP_CHUNK), expected, message, key, SOURCE_OBS)
            except httpx.HTTPError as exc:
                raise TransientRecordingError(f"GET {shown}: body failed ({type(exc).__name__})") from None
        finally:
            response.close()

    def _fallback(self, message: RecordingMessage, key: str, why: str, *, late: bool) -> _Published:
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
            return self._publish(file_chunks(cast(BinaryIO, tmp)), size, message, key, SOURCE_FALLBACK)

    def _metadata(self, message: RecordingMessage, sha256: str, size: int) -> dict[str, str]:
        return {"sha256": sha256, "size": str(size), "response-id": message.responseId, "call-id": message.callId}

    def _publish(
        self, chunks: Iterator[bytes], expected: int | None, message: RecordingMessage, key: str, source: str
    ) -> _Published:
        """Publish the body at ``key`` only once it is verified: directly when its declared length fits
        one PutObject, else through a staging object (see the two methods below)."""
        config = self.transfer_config or TRANSFER_CONFIG
        if expected is not None and 0 < expected <= config.multipart_threshold:
            return self._publish_direct(chunks, expected, message, key, source)
        return self._publish_staged(chunks, expected, message, key, source)

    def _publish_direct(
        self, chunks: Iterator[bytes], expected: int, message: RecordingMessage, key: str, source: str
    ) -> _Published:
        """Read the whole (small) body, verify its length, then one PutObject to ``key`` carrying the
        SHA-256 as S3's checksum: S3 stores the object whole and intact or not at all, so a final
        key still only ever holds a verified recording, without a staging object, a copy and a
        delete (three requests per recording). Memory: at most ``multipart_threshold`` bytes, which
        the transfer manager would have buffered anyway before choosing a single PutObject."""
        reader = HashingReader(chunks)
        data = reader.read(expected + 1)  # one byte more than declared shows an over-long body
        if len(data) > expected:
            raise TransientRecordingError(f"recording body is longer than the {expected} bytes declared")
        if len(data) < expected:
            raise TransientRecordingError(f"recording body has {len(data)} bytes, {expected} were declared: truncated")
        sha256 = reader.sha256
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType="audio/wav",
                Metadata=self._metadata(message, sha256, len(data)),
                ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
                IfNoneMatch="*",  # S3 conditional write: a duplicate delivery adds no second version
            )
        except ClientError as exc:
            existing = self._existing(exc, key, source)
            if existing is None:
                raise
            return existing
        return _Published(key, len(data), sha256, source)

    def _existing(self, exc: ClientError, key: str, source: str) -> _Published | None:
        """After a refused conditional PutObject: the verified copy an earlier delivery wrote at
        ``key`` (its ``sha256``/``size`` metadata), or None when ``exc`` is another error. A final
        key only ever holds a verified recording, so the earlier copy stands."""
        if exc.response.get("Error", {}).get("Code") != "PreconditionFailed":
            return None  # incl. ConditionalRequestConflict (a twin writing right now): retried
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        meta = head.get("Metadata", {})
        sha, size = meta.get("sha256", ""), meta.get("size", "")
        if len(sha) != 64 or not size.isdigit() or int(size) != head.get("ContentLength"):
            raise TransientRecordingError(f"{key} exists without a verified copy's metadata; not overwritten")
        logger.info("recording already copied by an earlier delivery", extra={"key": key})
        return _Published(key, int(size), sha, source)

    def _copy_config(self) -> TransferConfig:
        if self.transfer_config is not None:
            return self.transfer_config
        return TransferConfig(
            multipart_threshold=TRANSFER_CONFIG.multipart_threshold,
            multipart_chunksize=max(COPY_PART_BYTES, TRANSFER_CONFIG.multipart_chunksize),
            max_concurrency=COPY_CONCURRENCY,
            preferred_transfer_client="classic",
        )

    def _publish_staged(
        self, chunks: Iterator[bytes], expected: int | None, message: RecordingMessage, key: str, source: str
    ) -> _Published:
        """Stream to a fresh staging key, verify, copy to ``key`` with metadata; staging always deleted."""
        staging = layout.staging_key()
        reader = HashingReader(chunks)
        try:
            self.s3.upload_fileobj(reader, self.bucket, staging, Config=self.transfer_config or TRANSFER_CONFIG)
            if expected is not None and reader.bytes_read != expected:
                raise TransientRecordingError(
                    f"recording body has {reader.bytes_read} bytes, {expected} were declared: truncated"
                )
            if reader.bytes_read == 0:
                raise TransientRecordingError("recording body is empty")
            self.s3.copy(
                {"Bucket": self.bucket, "Key": staging},
                self.bucket,
                key,
                ExtraArgs={
                    "Metadata": self._metadata(message, reader.sha256, reader.bytes_read),
                    "MetadataDirective": "REPLACE",
                    "ContentType": "audio/wav",
                },
                Config=self._copy_config(),
            )
        finally:
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=staging)
            except ClientError as exc:  # the lifecycle rule expires _staging/ after a day
                logger.warning("could not delete staging object", extra={"key": staging, "error": str(exc)})
        return _Published(key, reader.bytes_read, reader.sha256, source)

    def _write_sidecar(self, message: RecordingMessage, sidecar: str, published: _Published) -> None:
        document = {
            "responseId": message.responseId,
            "callId": message.callId,
            "fileName": message.fileName,
            "key": published.key,
            "sha256": published.sha256,
            "size": published.size,
            "source": published.source,
            "copied_at": self._now(),
            "row": message.row,
        }
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=sidecar,
                Body=json.dumps(document, ensure_ascii=False, indent=1).encode(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "PreconditionFailed":
                raise  # else: the earlier delivery's sidecar describes the same verified copy: kept
