"""Synchronous CC-FS client (shared/ccfs-protocol.md §1-§7).

One :class:`CcfsClient` wraps one ``httpx.Client`` (connection pool, TLS settings) and exposes the
five operations the exporter needs. Every request body is serialised once, signed over exactly
the bytes sent, and re-signed on every attempt (fresh timestamp). Replies are told apart by
Content-Type, never by status: CC-FS answers business errors as HTTP 200 JSON even on the
download operations. Binary bodies are streamed into a caller-supplied sink chunk by chunk, so a
recording or bill ZIP is never held whole in memory.

Errors are the typed ones of :mod:`ccfs.errors`; transient failures are retried here with bounded
exponential backoff and full jitter. A download that fails after bytes reached the sink is retried
only when the sink can be rewound (``seek``/``truncate``); otherwise the transient error is raised
at once and the caller retries at a higher level.

No AWS imports here: this module is the vendor protocol only. Logging goes to the stdlib logger
``ccfs.client`` and never carries the sk, an Authorization value or a URL's query string.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, BinaryIO, Self, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from ccfs.auth import sign
from ccfs.errors import (
    CcfsAuthError,
    CcfsError,
    CcfsPermanentError,
    CcfsProtocolError,
    CcfsTransientError,
    CcfsUnknownResultCode,
    error_for_code,
    redact,
)
from ccfs.models import (
    RESPONSE_ID_RULE,
    CcfsReply,
    DownloadBillFileBody,
    DownloadBillFileRequest,
    DownloadRecordBody,
    DownloadRecordFileBody,
    DownloadRecordFileRequest,
    DownloadRecordRequest,
    GetRecordFileUrlRequest,
    QueryBillDataBody,
    QueryBillDataRequest,
    QueryBillDataResult,
    RecordFileUrlResult,
)

__all__ = [
    "CCFS_PATH",
    "JSON_CONTENT_TYPE",
    "CcfsClient",
    "CcfsConfig",
    "CcfsRequestError",
    "RetryPolicy",
]

logger = logging.getLogger("ccfs.client")

CCFS_PATH = "/CCFS/resource/ccfs"
JSON_CONTENT_TYPE = "application/json;charset=UTF-8"

OP_QUERY_BILL_DATA = "queryBillData"
OP_DOWNLOAD_BILL_FILE = "downloadBillFile"
OP_GET_RECORD_FILE_URL = "getRecordFileUrlFromObs"
OP_DOWNLOAD_RECORD_FILE = "downloadRecordFile"
OP_DOWNLOAD_RECORD = "downloadRecord"

_MAX_JSON_REPLY = 4 * 1024 * 1024  # a JSON reply is a few hundred bytes; refuse to buffer more
_MAX_DESC = 200  # characters of resultDesc quoted in an error message
_BINARY_DEFAULT_TYPE = "application/octet-stream"

# Jitter is not security-relevant; module-level so tests can make it deterministic.
_random = random.Random()  # noqa: S311

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: ``attempts`` tries in total, full-jitter exponential backoff between them.

    Before retry ``n`` (0-based) the client sleeps ``uniform(0, backoff_cap(n))`` seconds, where
    ``backoff_cap(n) = min(max_delay, base_delay * 2**n)``.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be >= 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must be >= 0")

    def backoff_cap(self, retry: int) -> float:
        """Upper bound of the sleep before retry ``retry`` (0 = the first retry)."""
        if retry >= 64:  # 2**64 * anything sensible is past any cap; avoids float overflow
            return self.max_delay
        return min(self.max_delay, self.base_delay * 2.0**retry)


@dataclass(frozen=True)
class CcfsConfig:
    """Where CC-FS is and how to reach it. ``sk`` is kept out of ``repr``."""

    base_url: str
    ak: str
    sk: str = field(repr=False)
    ca_bundle: str | None = None
    insecure: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    retry: RetryPolicy = RetryPolicy()
    chunk_size: int = 1024 * 1024

    def __post_init__(self) -> None:
        try:
            parts = urlsplit(self.base_url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError("base_url is not a valid URL") from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("base_url must be https://host[:port][/prefix]")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("base_url must not carry a query, fragment or credentials")
        if not self.ak or not self.sk:
            raise ValueError("ak and sk must not be empty")
        if self.ca_bundle and self.insecure:
            raise ValueError("ca_bundle and insecure are mutually exclusive")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("timeouts must be > 0")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")


class CcfsRequestError(CcfsPermanentError, ValueError):
    """The caller's arguments do not make a valid CC-FS request (nothing was sent).

    A :class:`~ccfs.errors.CcfsPermanentError` (retrying cannot help) and a ``ValueError``.
    The message names the offending fields, never their values.
    """


class _Sink:
    """Counts what reached the caller's sink and rewinds it when that is possible."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.written = 0
        self._start: int | None = None
        try:
            if sink.seekable():
                self._start = sink.tell()
        except (AttributeError, OSError, ValueError):
            self._start = None

    @property
    def rewindable(self) -> bool:
        return self._start is not None

    def write(self, chunk: bytes) -> None:
        self._sink.write(chunk)
        self.written += len(chunk)

    def rewind(self) -> None:
        if self._start is None:
            raise RuntimeError("sink is not seekable")
        self._sink.seek(self._start)
        self._sink.truncate()
        self.written = 0


def _media_type(response: httpx.Response) -> str:
    """The reply's media type, lower-cased, parameters dropped ('' when absent)."""
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type in ("application/json", "text/json") or media_type.endswith("+json")


def _describe(error: CcfsError) -> str:
    """The message of ``error`` without the ``operation:`` prefix and result-code suffix."""
    text = str(error).removeprefix(f"{error.operation}: ")
    return text.removesuffix(f" (resultCode {error.code})") if error.code else text


def _tls_verification_failed(exc: BaseException) -> bool:
    """Whether a transport error was caused by an untrusted or mismatched server certificate."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _field_names(error: ValidationError) -> str:
    """``field (error type)`` for each problem: names and types only, never the values."""
    problems = {f"{'.'.join(str(p) for p in e['loc']) or 'request'} ({e['type']})" for e in error.errors()}
    return ", ".join(sorted(problems))


class CcfsClient:
    """Signed, retrying, streaming access to the CC-FS operations.

    Thread-safe (httpx.Client is); share one per process. ``transport`` replaces the network in
    tests; ``sleep`` and ``clock`` are injected so tests never sleep and can pin timestamps.
    """

    def __init__(
        self,
        config: CcfsConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] | None = None,
        on_unknown_code: Callable[[str, str], None] | None = None,
    ) -> None:
        self._config = config
        self._sleep = sleep
        # Called with (operation, resultCode) on every reply carrying an undocumented code, retried
        # or not, so the caller can alarm on it (the exporter counts CcfsUnknownResultCode).
        self._on_unknown_code = on_unknown_code
        self._clock = clock or (lambda: datetime.now(UTC))
        url = httpx.URL(config.base_url)
        self._host = url.netloc.decode("ascii")  # host[:port], port only when non-default
        self._prefix = url.path.rstrip("/")
        self._origin = f"{url.scheme}://{self._host}"
        verify: ssl.SSLContext | bool
        if config.insecure:
            verify = False
            logger.warning(
                "TLS CERTIFICATE VERIFICATION IS DISABLED for CC-FS at %s (insecure=True). "
                "Labs only: never use this in production; configure ca_bundle instead.",
                self._origin,
            )
        elif config.ca_bundle:
            verify = ssl.create_default_context(cafile=config.ca_bundle)
        else:
            verify = True
        self._http = httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=20),
            follow_redirects=False,
            transport=transport,
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def http(self) -> httpx.Client:
        """The underlying httpx.Client (TLS settings, pool, timeouts). It trusts CC-FS's CA only when
        ``ca_bundle`` is set: not for pre-signed object-storage URLs (OBS/LSS have their own trust).

        It carries no default Authorization header: signing is per request.
        """
        return self._http

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def operation_url(self, op: str) -> str:
        """The absolute URL of a CC-FS operation, e.g. ``operation_url("queryBillData")``."""
        if not op.isalnum():
            raise ValueError("operation must be a plain name such as 'queryBillData'")
        return f"{self._origin}{self._operation_path(op)}"

    def _operation_path(self, op: str) -> str:
        return f"{self._prefix}{CCFS_PATH}/{op}"

    # ------------------------------------------------------------------ operations

    def query_bill_data(
        self,
        begin: datetime,
        end: datetime,
        *,
        data_type: str = "call_record",
        callback_url: str,
        account_id: str | None = None,
        agent_id: str | None = None,
        call_id: str | None = None,
        caller_no: str | None = None,
        callee_no: str | None = None,
        callee_no2: str | None = None,
    ) -> str:
        """Ask CC-FS to generate CDR / recording-index files; return the responseId.

        ``begin``/``end`` are naive tenant-local times, at most 3 days apart. Optional filters that
        are ``None`` or ``""`` are not sent.
        """
        op = OP_QUERY_BILL_DATA
        body = self._build(
            op,
            lambda: QueryBillDataRequest(
                msgBody=QueryBillDataBody(
                    beginTime=begin,
                    endTime=end,
                    dataType=data_type,  # type: ignore[arg-type]  # validated by the model
                    callBackURL=callback_url,
                    accountId=account_id,
                    agentId=agent_id,
                    callId=call_id,
                    callerNo=caller_no,
                    calleeNo=callee_no,
                    calleeNo2=callee_no2,
                )
            ),
        )
        reply = self._call(op, body, lambda r: self._json_reply(op, r))
        data = self._result_data(reply)
        try:
            result = QueryBillDataResult.model_validate(data)
        except ValidationError:
            if isinstance(data, dict) and isinstance(data.get("responseId"), str) and data["responseId"]:
                # CC-FS made the job, but its id cannot name our S3 keys or job item: asking again
                # would not help, and the callback for it would be refused the same way.
                raise CcfsPermanentError(
                    op, f"reply carries a responseId the exporter cannot use (must be {RESPONSE_ID_RULE})"
                ) from None
            raise CcfsProtocolError(op, "reply carries no valid resultData.responseId") from None
        return result.responseId

    def download_bill_file(self, bill_file_name: str, sink: BinaryIO) -> int:
        """Stream the generated bill ZIP into ``sink``; return the number of bytes written."""
        op = OP_DOWNLOAD_BILL_FILE
        body = self._build(
            op,
            lambda: DownloadBillFileRequest(msgBody=DownloadBillFileBody(billFileName=bill_file_name)),
        )
        return self._download(op, body, sink)[0]

    def get_record_file_urls(
        self, call_id: str, begin: datetime, end: datetime, *, version: str | None = "2.0"
    ) -> list[str]:
        """Pre-signed download URL(s) of a call's recording(s), in the order CC-FS gives them.

        With ``version="2.0"`` the times are tenant-local; with ``None`` they are UTC. The URLs are
        credentials: never log them unredacted (:func:`ccfs.errors.redact_url`).
        """
        op = OP_GET_RECORD_FILE_URL
        body = self._build(
            op,
            lambda: GetRecordFileUrlRequest(callId=call_id, beginTime=begin, endTime=end, version=version),
        )
        reply = self._call(op, body, lambda r: self._json_reply(op, r))
        data = self._result_data(reply)
        if reply.url is not None and not (isinstance(data, dict) and ("url" in data or "urls" in data)):
            data = {"url": reply.url}  # §5: ``url`` beside resultData, at the top level of the reply
        return self._urls(op, data)

    def download_record_file(self, file_name: str, sink: BinaryIO) -> int:
        """Stream one recording (``file_name`` as in the recording index) into ``sink``."""
        op = OP_DOWNLOAD_RECORD_FILE
        body = self._build(
            op,
            lambda: DownloadRecordFileRequest(msgBody=DownloadRecordFileBody(fileName=file_name)),
        )
        return self._download(op, body, sink)[0]

    def download_record(self, file_name: str, sink: BinaryIO, *, cc_id: str | None = None) -> tuple[int, str]:
        """Stream a recording (WAV) or a ZIP of a call's recordings into ``sink``.

        ``file_name`` is the index's ``original_file_name`` (``\\`` is turned into ``/`` here, as the
        protocol asks) or a callId. Returns ``(bytes written, media type)``; the media type is
        lower-cased without parameters (``application/octet-stream`` when the reply has none), so
        callers that must tell WAV from ZIP should also look at the first bytes (``RIFF``/``PK``).
        """
        op = OP_DOWNLOAD_RECORD
        body = self._build(
            op,
            lambda: DownloadRecordRequest(
                msgBody=DownloadRecordBody(fileName=file_name.replace("\\", "/"), ccId=cc_id)
            ),
        )
        return self._download(op, body, sink)

    # ------------------------------------------------------------------ request building

    def _build(self, op: str, make: Callable[[], BaseModel]) -> bytes:
        """Validate and serialise a request body once (compact JSON, None fields omitted)."""
        try:
            model = make()
        except ValidationError as exc:
            raise CcfsRequestError(op, f"invalid request field(s): {_field_names(exc)}") from None
        return model.model_dump_json(exclude_none=True).encode("utf-8")

    def _request(self, op: str, body: bytes) -> httpx.Request:
        path = self._operation_path(op)
        signed = {
            "host": self._host,
            "content-type": JSON_CONTENT_TYPE,
            "content-length": str(len(body)),
        }
        authorization = sign(self._config.ak, self._config.sk, "POST", path, signed, body, timestamp=self._clock())
        headers = {
            "Host": signed["host"],
            "Content-Type": signed["content-type"],
            "Content-Length": signed["content-length"],
            "Authorization": authorization,
        }
        return self._http.build_request("POST", f"{self._origin}{path}", content=body, headers=headers)

    # ------------------------------------------------------------------ retry loop

    def _call(self, op: str, body: bytes, handle: Callable[[httpx.Response], T], sink: _Sink | None = None) -> T:
        policy = self._config.retry
        for attempt in range(1, policy.attempts + 1):
            try:
                return self._attempt(op, body, handle)
            except CcfsTransientError as exc:
                reason = _describe(exc)
                if sink is not None and sink.written:
                    if not sink.rewindable:
                        raise CcfsTransientError(
                            op,
                            f"{reason}; {sink.written} bytes already reached a non-seekable sink, not retrying here",
                            exc.code,
                        ) from exc
                    sink.rewind()
                if attempt == policy.attempts:  # same class: an undocumented code stays recognisable
                    raise type(exc)(
                        op, f"{reason} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})", exc.code
                    ) from exc
                delay = _random.uniform(0.0, policy.backoff_cap(attempt - 1))
                logger.warning(
                    "CC-FS %s attempt %d/%d failed: %s; retrying in %.2fs",
                    op,
                    attempt,
                    policy.attempts,
                    reason,
                    delay,
                    extra={"operation": op, "attempt": attempt, "reason": reason, "delay_s": delay},
                )
                self._sleep(delay)
            except CcfsError:
                if sink is not None and sink.written and sink.rewindable:
                    sink.rewind()
                raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _attempt(self, op: str, body: bytes, handle: Callable[[httpx.Response], T]) -> T:
        request = self._request(op, body)  # signed now: fresh timestamp on every attempt
        try:
            response = self._http.send(request, stream=True)
            try:
                self._check_status(op, response)
                return handle(response)
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            raise CcfsTransientError(op, f"timeout ({type(exc).__name__})") from exc
        except (httpx.TransportError, httpx.DecodingError) as exc:
            if _tls_verification_failed(exc):  # a configuration problem: retrying cannot help
                raise CcfsPermanentError(
                    op, "TLS certificate verification failed (check ca_bundle and the server certificate)"
                ) from exc
            detail = redact(str(exc))[:_MAX_DESC]
            raise CcfsTransientError(op, f"transport error ({type(exc).__name__}: {detail})") from exc

    # ------------------------------------------------------------------ replies

    @staticmethod
    def _check_status(op: str, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 401:
            raise CcfsAuthError(op, "HTTP 401: signature rejected (check ak/sk and the clock)", "401")
        if status >= 500 or status == 429:
            raise CcfsTransientError(op, f"HTTP {status}", str(status))
        if 300 <= status < 400:
            raise CcfsProtocolError(op, f"unexpected redirect HTTP {status}", str(status))
        raise CcfsPermanentError(op, f"HTTP {status}", str(status))

    @staticmethod
    def _read_json(op: str, response: httpx.Response) -> CcfsReply:
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > _MAX_JSON_REPLY:
                raise CcfsProtocolError(op, f"JSON reply larger than {_MAX_JSON_REPLY} bytes")
        try:
            return CcfsReply.model_validate(json.loads(bytes(data)))
        except (ValueError, ValidationError):  # JSONDecodeError/UnicodeDecodeError are ValueErrors
            raise CcfsProtocolError(op, "JSON reply without a valid resultCode") from None

    def _raise_for_code(self, op: str, reply: CcfsReply) -> None:
        code = reply.resultCode.strip()
        if code == "0":
            return
        if code.isdigit() and len(code) < 7:  # sent as a JSON number: 0300012 arrived as 300012
            code = code.zfill(7)
        desc = redact(reply.resultDesc)[:_MAX_DESC]
        if not (code.isdigit() and len(code) == 7):  # errors.py only quotes 7-digit codes
            desc = f"resultCode {redact(code)[:20]!r}" + (f": {desc}" if desc else "")
        error = error_for_code(op, code, desc)
        if isinstance(error, CcfsUnknownResultCode):
            logger.warning(
                "CC-FS %s answered an undocumented resultCode; retrying with backoff",
                op,
                extra={"operation": op, "code": redact(code)[:20]},
            )
            if self._on_unknown_code is not None:
                self._on_unknown_code(op, redact(code)[:20])
        raise error

    def _json_reply(self, op: str, response: httpx.Response) -> CcfsReply:
        media_type = _media_type(response)
        if not _is_json(media_type):
            raise CcfsProtocolError(op, f"expected a JSON reply, got content-type {media_type or 'none'!r}")
        reply = self._read_json(op, response)
        self._raise_for_code(op, reply)
        return reply

    def _download(self, op: str, body: bytes, sink: BinaryIO) -> tuple[int, str]:
        out = _Sink(sink)
        return self._call(op, body, lambda r: self._stream_reply(op, r, out), sink=out)

    def _stream_reply(self, op: str, response: httpx.Response, out: _Sink) -> tuple[int, str]:
        media_type = _media_type(response)
        if _is_json(media_type):
            self._raise_for_code(op, self._read_json(op, response))
            raise CcfsProtocolError(op, "JSON success reply where a file was expected")
        if media_type == "text/html":  # a proxy's error page is never a recording or a ZIP
            raise CcfsProtocolError(op, "HTML reply where a file was expected")
        for chunk in response.iter_bytes(self._config.chunk_size):
            out.write(chunk)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and response.num_bytes_downloaded != int(declared):
            raise CcfsTransientError(op, f"body ended early: {response.num_bytes_downloaded} of {declared} bytes")
        if out.written == 0:
            raise CcfsProtocolError(op, "empty file body")
        return out.written, media_type or _BINARY_DEFAULT_TYPE

    # ------------------------------------------------------------------ result data

    @staticmethod
    def _result_data(reply: CcfsReply) -> Any:
        data = reply.resultData
        if isinstance(data, str) and data.lstrip().startswith(("{", "[")):
            try:  # tolerate resultData sent as a JSON-encoded string
                return json.loads(data)
            except ValueError:
                return data
        return data

    @staticmethod
    def _urls(op: str, data: Any) -> list[str]:
        if isinstance(data, dict) and "url" not in data and "urls" in data:
            data = {"url": data["urls"]}
        elif isinstance(data, list | str):
            data = {"url": data}
        try:
            urls = RecordFileUrlResult.model_validate(data).url
        except ValidationError:
            raise CcfsProtocolError(op, "reply carries no recording URL") from None
        if not all(u.lower().startswith(("https://", "http://")) for u in urls):
            raise CcfsProtocolError(op, "reply carries a recording URL that is not http(s)")
        return urls
