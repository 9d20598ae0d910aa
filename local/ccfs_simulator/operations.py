"""The five CC-FS operations (shared/ccfs-protocol.md §3-§6) behind ``/CCFS/resource/ccfs/``: the
signature check (:func:`ccfs.auth.verify`), the injected request faults (5xx, throttling,
undocumented codes, latency), the simulator's own reading of each request (:mod:`.requests`), the
tenant-ownership rules of developer accounts, and the resultCode replies."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ccfs.auth import SignatureError, verify
from ccfs.errors import RESULT_DESCRIPTIONS

from .accounts import Accounts
from .bill_queries import BillBook, Query
from .bills import stream_zip_of
from .callbacks import CallbackSender
from .config import SimulatorConfig
from .counters import Counters
from .data import CallCenter, Recording
from .faults import FaultStreams
from .object_store import ObjectStore
from .requests import (
    Invalid,
    read_download_bill,
    read_download_record,
    read_download_record_file,
    read_query,
    read_record_url,
)
from .transport import Exchange

__all__ = ["DOWNLOAD_OPS", "OPERATIONS", "QUERY_OPS", "UNKNOWN_CODE", "Operations"]

BINARY_TYPE = "Application/Octet-stream;charset=UTF-8"  # sic, as CC-FS sends it
QUERY_OPS = frozenset({"queryBillData", "getRecordFileUrlFromObs"})
DOWNLOAD_OPS = frozenset({"downloadBillFile", "downloadRecordFile", "downloadRecord"})
OPERATIONS = tuple(sorted(QUERY_OPS | DOWNLOAD_OPS))
UNKNOWN_CODE = "0309999"  # not in protocol §7: what Faults.unknown_code_rate answers
_URL_SEPARATORS = {"comma": ",", "semicolon": ";", "space": " ", "newline": "\n"}
_SHORT_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_MIXED_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


class Operations:
    """Answers one CC-FS operation request (``handle``); ``_op_{name}`` per operation."""

    def __init__(
        self,
        config: SimulatorConfig,
        center: CallCenter,
        accounts: Accounts,
        faults: FaultStreams,
        counters: Counters,
        store: ObjectStore,
        bills: BillBook,
        callbacks: CallbackSender,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._center = center
        self._accounts = accounts
        self._faults = faults
        self._count = counters.count
        self._store = store
        self._bills = bills
        self._callbacks = callbacks
        self._clock = clock

    # ------------------------------------------------------------------ request handling

    def handle(self, ex: Exchange, op: str) -> None:
        if op not in OPERATIONS:
            self._count("requests_by_op.unknown")
            ex.send_json(404, {"error": f"no such operation: {op[:60]}"})
            return
        self._count(f"requests_by_op.{op}")
        if ex.method != "POST":
            ex.send_json(405, {"error": "CC-FS operations are POST"}, {"Allow": "POST"})
            return
        faults = self._faults.current
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
                self._accounts.secret,
                now=datetime.fromtimestamp(self._clock(), UTC),
                max_skew=self._config.max_skew,
                query=ex.query or None,
            )
        except SignatureError as exc:
            self._count("http_401_" + exc.reason)
            ex.send_json(401, {"resultCode": "401", "resultDesc": f"authentication failed: {exc.reason}"})
            return
        if self._faults.roll("error", faults.error_rate):
            self._count("errors_injected")
            status = self._faults.choice("error_status", (500, 503))
            ex.send(status, f"<html><body><h1>{status}</h1></body></html>".encode(), "text/html")
            return
        category = "query" if op in QUERY_OPS else "download"
        if self._faults.throttled(category):
            self._count("throttles_injected")
            self.reply(ex, "0300009" if category == "query" else "0300008")
            return
        if self._faults.roll("unknown_code", faults.unknown_code_rate):
            self._count("unknown_codes_injected")
            self.reply(ex, UNKNOWN_CODE, desc="injected undocumented code")
            return
        if not ex.body.strip():
            self.reply(ex, "0300007")
            return
        try:
            payload = json.loads(ex.body)
        except (ValueError, UnicodeDecodeError):
            self.reply(ex, "0300004", desc="body is not JSON")
            return
        if not isinstance(payload, dict):
            self.reply(ex, "0300004", desc="body is not a JSON object")
            return
        payload = _drop_nulls(payload)
        handler = getattr(self, f"_op_{op}")
        handler(ex, ak, payload)

    def reply(
        self, ex: Exchange, code: str, data: Any = None, desc: str | None = None, top: dict[str, Any] | None = None
    ) -> None:
        """A CC-FS JSON answer with ``resultCode`` ``code`` (HTTP 200, as CC-FS answers errors too)."""
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

    def _read[R](self, ex: Exchange, reader: Callable[[Any], R], payload: dict[str, Any]) -> R | None:
        """The request as the simulator's own field tables read it (``requests``), or None after
        answering the refusal's resultCode."""
        try:
            return reader(payload)
        except Invalid as exc:
            self.reply(ex, exc.code, desc=exc.desc)
            return None

    def _refuse_account(self, ex: Exchange) -> None:
        """The request names a tenant space another developer account owns: CC-FS checks the
        appId/accountId pairing with the signature and answers as for a bad signature (HTTP 401)."""
        self._count("http_401_account_not_owned")
        ex.send_json(401, {"resultCode": "401", "resultDesc": "authentication failed: account_not_owned"})

    # ------------------------------------------------------------------ bills

    def _op_queryBillData(self, ex: Exchange, ak: str, payload: dict[str, Any]) -> None:
        body = self._read(ex, read_query, payload)
        if body is None:
            return
        if body.accountId and self._accounts.is_tenant(body.accountId) and not self._accounts.owns(ak, body.accountId):
            self._refuse_account(ex)
            return
        raw_body = payload.get("msgBody") or {}
        account_present = "accountId" in raw_body
        response_id = self._new_response_id()
        zone = self._accounts.zone_for(body.accountId, ak)
        query_day = datetime.fromtimestamp(self._clock(), zone).date()
        bill_name = f"{query_day:%Y%m%d}_{response_id.replace('-', '')}.zip"  # "without dashes" (§3)
        query = Query(
            response_id=response_id,
            ak=ak,
            body=body,
            account_present=account_present,
            account_value=raw_body.get("accountId") if account_present else None,
            bill_file_name=bill_name,
            callback_url=body.callBackURL,
            created_at=self._clock(),
        )
        self._bills.add(query)
        self._count("queries_accepted")
        self._callbacks.schedule(response_id)
        self.reply(ex, "0", {"responseId": response_id})

    def _new_response_id(self) -> str:
        """A fresh responseId in the configured style (all within what the field allows, §3)."""
        style = self._config.response_id_style
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
        path = self._bills.bill_path(request.billFileName, ak)
        if path is None or not path.exists():
            self.reply(ex, "0300012")
            return
        length = path.stat().st_size
        self._count("bills_downloaded")
        ex.send_stream(
            200,
            BINARY_TYPE,
            length,
            _file_chunks(path),
            cut_at=self._faults.cut_point(length),
            headers={"Content-Disposition": f'attachment; filename="{request.billFileName}"'},
        )

    # ------------------------------------------------------------------ recordings

    def _op_getRecordFileUrlFromObs(self, ex: Exchange, ak: str, payload: dict[str, Any]) -> None:
        request = self._read(ex, read_record_url, payload)
        if request is None:
            return
        faults = self._faults.current
        if request.callId in faults.not_found_calls or self._faults.roll("not_found", faults.not_found_rate):
            self._count("not_found_injected")
            self.reply(ex, "0300012")
            return
        utc_times = payload.get("version") in (None, "")
        found: list[Recording] = []
        for call in self._center.find_call(request.callId):
            if not self._accounts.owns(ak, call.account_id):  # "the developer's ak must own the call"
                continue
            begin, end = request.beginTime, request.endTime
            if utc_times:
                zone = self._center.zone(call.account_id)
                begin = _utc_to_local(begin, zone)
                end = _utc_to_local(end, zone)
            found.extend(r for r in call.recordings if begin <= r.call_begin <= end)
        found = [r for r in found if self._store.synced(r)]  # a list, not a generator: every one is asked for
        if not found:
            self.reply(ex, "0300012")
            return
        # "sorted by start time and end time" (§5); equal times in an order the client cannot
        # reproduce (the object id), so only a client that notices the tie gets it right.
        found.sort(key=lambda r: (r.call_begin, r.call_end, self._store.object_id(r)))
        urls = [self._store.presign(r) for r in found]
        self._count("urls_issued", len(urls))
        value: str | list[str]
        style = self._config.url_list_style
        if len(urls) == 1:
            value = urls[0]
        elif style == "array":
            value = urls
        else:
            value = _URL_SEPARATORS[style].join(urls)
        if self._config.url_placement == "top":
            self.reply(ex, "0", {}, top={"url": value})
        else:
            self.reply(ex, "0", {"url": value})

    def _op_downloadRecordFile(self, ex: Exchange, ak: str, payload: dict[str, Any]) -> None:
        request = self._read(ex, read_download_record_file, payload)
        if request is None:
            return
        recording = self._center.find_by_file_name(request.fileName)
        if recording is None or not self._accounts.owns(ak, recording.account_id) or not self._store.synced(recording):
            self.reply(ex, "0300012")
            return
        self._send_recording(ex, recording)

    def _op_downloadRecord(self, ex: Exchange, ak: str, payload: dict[str, Any]) -> None:
        request = self._read(ex, read_download_record, payload)
        if request is None:
            return
        name, cc_id = request.fileName, request.ccId
        by_name = self._center.find_by_original(name)
        recordings = (
            [by_name] if by_name is not None else [r for call in self._center.find_call(name) for r in call.recordings]
        )
        recordings = [
            r
            for r in recordings
            if (cc_id is None or r.cc_id == cc_id) and self._accounts.owns(ak, r.account_id) and self._store.synced(r)
        ]
        if not recordings:
            self.reply(ex, "0300012")
            return
        if len(recordings) == 1:
            self._send_recording(ex, recordings[0])
            return
        recordings.sort(key=lambda r: (r.call_begin, r.file_name))
        members = [(r.file_name.rsplit("/", 1)[-1], r.size, self._store.recording_bytes(r)) for r in recordings]
        estimate = sum(r.size for r in recordings)
        self._count("recordings_downloaded", len(recordings))
        ex.send_chunked(
            200,
            BINARY_TYPE,
            lambda out: stream_zip_of(members, out),
            cut_at=self._faults.cut_point(estimate),
            headers={"Content-Disposition": f'attachment; filename="{recordings[0].call_id}.zip"'},
        )

    def _send_recording(self, ex: Exchange, recording: Recording) -> None:
        self._count("recordings_downloaded")
        stem = recording.file_name.rsplit("/", 1)[-1]
        ex.send_stream(
            200,
            BINARY_TYPE,
            recording.size,
            self._store.recording_bytes(recording),
            cut_at=self._faults.cut_point(recording.size) if ex.method != "HEAD" else None,
            headers={"Content-Disposition": f'attachment; filename="{stem}"'},
        )


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
