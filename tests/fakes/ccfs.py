"""One in-memory CC-FS for every unit test: the calls the product makes on ``ccfs.client.CcfsClient``
(``query_bill_data``, ``download_bill_file``, ``get_record_file_urls``, ``download_record_file``) plus
the object storage its pre-signed recording URLs point at (an ``httpx.MockTransport`` client).

Each call is logged and answers from what the test configured:

* ``query_bill_data``: raises the next of ``query_errors`` (``None`` = succeed), else answers the
  next of ``response_ids``, else a fresh one; ``before_call`` runs once, first thing (to race the
  call against something, e.g. a callback that lands before the request is recorded);
* ``download_bill_file``: ``bill_replies`` (bytes or an exception), one per call, the last repeating;
* ``get_record_file_urls``: the next of ``url_replies`` (a URL list or an exception), else one URL
  per recording in ``recordings[call_id]``, or ``record_urls`` when given;
* ``download_record_file``: ``files[file_name]`` (bytes or an exception), else CC-FS's "no data found";
  with ``fallback=False`` any call fails the test (the happy path never falls back);
* object storage (``http``): the next of ``routes[path]``, else the recording named by the path
  (``/rec/{call_id}/{stem}.wav``), else 404. Pass ``http`` to use a real client instead (TLS
  tests); the fake then serves nothing itself.

Not the simulator (``local/ccfs_simulator``): no HTTP, no signatures, no protocol; integration and
e2e tests use that.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, BinaryIO

import httpx

from ccfs.errors import CcfsNotFound

__all__ = ["OBS", "FakeCcfs", "stem_of"]

OBS = "bucket.obs.cn-north-4.myhuaweicloud.com"


def stem_of(body: dict[str, Any]) -> str:
    """The file stem of a recording message body's ``fileName``."""
    return str(body["fileName"]).rsplit("/", 1)[-1].removesuffix(".wav")


class FakeCcfs:
    """CC-FS and its object storage, configured per test (see the module docstring)."""

    def __init__(
        self,
        *bill_replies: bytes | Exception,
        http: httpx.Client | None = None,
        record_urls: list[str] | None = None,
        fallback: bool = True,
    ) -> None:
        # queryBillData
        self.query_calls: list[dict[str, Any]] = []
        self.query_errors: list[Exception | None] = []
        self.before_call: Callable[[], None] | None = None
        self.response_ids: list[str] = []
        # downloadBillFile
        self.bill_replies: list[bytes | Exception] = list(bill_replies)
        self.bill_calls: list[str] = []
        # getRecordFileUrls / downloadRecordFile / object storage
        self.recordings: dict[str, dict[str, bytes]] = {}
        self.record_urls = record_urls
        self.url_replies: list[list[str] | Exception] = []
        self.url_calls: list[tuple[Any, ...]] = []
        self.files: dict[str, bytes | Exception] = {}
        self.file_calls: list[str] = []
        self.routes: dict[str, list[Callable[[httpx.Request], httpx.Response]]] = {}
        self.requests: list[httpx.Request] = []
        self.fallback = fallback
        self._http = http

    # ---------------------------------------------------------------- queryBillData

    def query_bill_data(
        self,
        begin: datetime,
        end: datetime,
        *,
        data_type: str = "call_record",
        callback_url: str,
        account_id: str | None = None,
    ) -> str:
        if self.before_call is not None:
            hook, self.before_call = self.before_call, None
            hook()
        self.query_calls.append(
            {"begin": begin, "end": end, "data_type": data_type, "callback_url": callback_url, "account_id": account_id}
        )
        if self.query_errors:
            error = self.query_errors.pop(0)
            if error is not None:
                raise error
        return self.response_ids.pop(0) if self.response_ids else uuid.uuid4().hex

    def windows(self) -> list[str]:
        """The requested windows, as ``begin|end`` in CC-FS's time format."""
        return [f"{c['begin']:%Y-%m-%d %H:%M:%S}|{c['end']:%Y-%m-%d %H:%M:%S}" for c in self.query_calls]

    # ---------------------------------------------------------------- downloadBillFile

    def download_bill_file(self, bill_file_name: str, sink: BinaryIO) -> int:
        self.bill_calls.append(bill_file_name)
        reply = self.bill_replies.pop(0) if len(self.bill_replies) > 1 else self.bill_replies[0]
        if isinstance(reply, Exception):
            raise reply
        sink.write(reply)
        return len(reply)

    # ---------------------------------------------------------------- recordings

    def add(self, body: dict[str, Any], data: bytes) -> bytes:
        """Serve ``data`` as the recording of message ``body``; returns ``data``."""
        self.recordings.setdefault(body["callId"], {})[stem_of(body)] = data
        return data

    @property
    def http(self) -> httpx.Client:
        """The client for the pre-signed URLs (object storage)."""
        if self._http is None:
            self._http = httpx.Client(transport=httpx.MockTransport(self._serve), follow_redirects=False)
        return self._http

    def url_for(self, call_id: str, stem: str, n: int = 1) -> str:
        return f"https://{OBS}/rec/{call_id}/{stem}.wav?AccessKeyId=AK&Expires={n}&Signature=SECRET"

    def get_record_file_urls(self, call_id: str, begin: Any, end: Any, *, version: str | None = "2.0") -> list[str]:
        self.url_calls.append((call_id, begin, end, version))
        if self.url_replies:
            reply = self.url_replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return reply
        if self.record_urls is not None:
            return list(self.record_urls)
        stems = sorted(self.recordings.get(call_id, {}))
        return [self.url_for(call_id, stem, len(self.url_calls)) for stem in stems]

    def download_record_file(self, file_name: str, sink: BinaryIO) -> int:
        self.file_calls.append(file_name)
        if not self.fallback:
            raise AssertionError(f"the pre-signed URL works: no fallback to downloadRecordFile({file_name}) expected")
        reply = self.files.get(file_name, CcfsNotFound("downloadRecordFile", "no data found", "0300012"))
        if isinstance(reply, Exception):
            raise reply
        sink.write(reply)
        return len(reply)

    def _serve(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if self.routes.get(path):
            return self.routes[path].pop(0)(request)
        parts = path.split("/")  # /rec/{call_id}/{stem}.wav
        data = self.recordings.get(parts[2], {}).get(parts[3].removesuffix(".wav")) if len(parts) == 4 else None
        if data is None:
            return httpx.Response(404)
        return httpx.Response(200, content=data, headers={"Content-Type": "audio/wav"})

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
