"""The simulator's own reading of the CC-FS request field tables (shared/ccfs-protocol.md §3-§6).

Written apart from the exporter's ``ccfs.models`` on purpose (issue 12 §1): if both sides read a
request with one model, a misreading of the vendor documents (a renamed field, a wrong time format)
is agreed on by construction and passes every test, then fails against the real CC-FS. Here each
operation's body is checked against the documented names, types, lengths and formats, field by
field, and a refusal carries the resultCode a CC-FS would answer (§7):

* ``0300001`` a required field (or the ``request`` wrapper) is missing or null;
* ``0300002`` a required string is ``""``;
* ``0300003`` a string is longer than its documented length;
* ``0300004`` malformed: a time not ``yyyy-MM-dd HH:mm:ss``, a window over 3 days or reversed, an
  unknown ``dataType``, a callback URL that is no http(s) URL, a value of the wrong JSON type;
* ``0300006`` ``version`` is not ``2.0``;
* ``0300007`` the body is empty;
* ``0300010`` the date inside a bill file name is invalid.

Optional strings may be sent as ``""`` (the vendor's own example does): they mean "not given".
Unknown fields are ignored, as a tolerant server would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "DownloadBill",
    "DownloadRecord",
    "DownloadRecordFile",
    "Invalid",
    "QueryBody",
    "RecordUrl",
    "format_time",
    "parse_time",
    "read_download_bill",
    "read_download_record",
    "read_download_record_file",
    "read_query",
    "read_record_url",
]

VERSION = "2.0"
TIME = "%Y-%m-%d %H:%M:%S"
THREE_DAYS = timedelta(days=3)
_TIME_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_BILL_NAME = re.compile(r"(?P<day>[0-9]{8})_[A-Za-z0-9_.]+\.zip")
_DATA_TYPES = ("call", "record", "call_record")


class Invalid(Exception):
    """A request CC-FS refuses: ``code`` is the resultCode, ``desc`` names the field and the fault."""

    def __init__(self, code: str, desc: str) -> None:
        super().__init__(f"{code}: {desc}")
        self.code = code
        self.desc = desc


def parse_time(value: str) -> datetime:
    """``yyyy-MM-dd HH:mm:ss`` (tenant-local, naive), strictly; ValueError otherwise."""
    if not isinstance(value, str) or not _TIME_SHAPE.fullmatch(value):
        raise ValueError(f"{value!r} is not yyyy-MM-dd HH:mm:ss")
    return datetime.strptime(value, TIME)


def format_time(value: datetime) -> str:
    return value.strftime(TIME)


# ---------------------------------------------------------------------------- field readers


def _string(body: dict[str, Any], name: str, *, required: bool, max_len: int | None = None) -> str | None:
    value = body.get(name)
    if value is None or (value == "" and not required):
        if required:
            raise Invalid("0300001", f"{name} is missing")
        return None
    if not isinstance(value, str):
        raise Invalid("0300004", f"{name} must be a string")
    if value == "":
        raise Invalid("0300002", f"{name} is empty")
    if max_len is not None and len(value) > max_len:
        raise Invalid("0300003", f"{name} is longer than {max_len} characters")
    return value


def _time(body: dict[str, Any], name: str) -> datetime:
    value = _string(body, name, required=True)
    try:
        return parse_time(str(value))
    except ValueError:
        raise Invalid("0300004", f"{name} must be yyyy-MM-dd HH:mm:ss") from None


def _window(body: dict[str, Any]) -> tuple[datetime, datetime]:
    begin, end = _time(body, "beginTime"), _time(body, "endTime")
    if end < begin:
        raise Invalid("0300004", "endTime is before beginTime")
    if end - begin > THREE_DAYS:
        raise Invalid("0300004", "endTime - beginTime is more than 3 days")
    return begin, end


def _object(payload: Any, what: str) -> dict[str, Any]:
    if payload is None or payload == {}:
        raise Invalid("0300007", "the request body is empty")
    if not isinstance(payload, dict):
        raise Invalid("0300004", f"{what} must be a JSON object")
    return payload


def _wrapped(payload: Any) -> dict[str, Any]:
    """``{"request": {"version": "2.0"}, "msgBody": {...}}`` → the msgBody."""
    outer = _object(payload, "the body")
    header = outer.get("request")
    if not isinstance(header, dict):
        raise Invalid("0300001", "request is missing")
    if header.get("version") is None:
        raise Invalid("0300001", "request.version is missing")
    if header.get("version") != VERSION:
        raise Invalid("0300006", f"request.version must be {VERSION}")
    body = outer.get("msgBody")
    if body is None:
        raise Invalid("0300001", "msgBody is missing")
    if not isinstance(body, dict):
        raise Invalid("0300004", "msgBody must be a JSON object")
    return body


# ---------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class QueryBody:
    """queryBillData's msgBody (§3)."""

    beginTime: datetime
    endTime: datetime
    dataType: str
    callBackURL: str
    accountId: str | None = None
    agentId: str | None = None
    callId: str | None = None
    callerNo: str | None = None
    calleeNo: str | None = None
    calleeNo2: str | None = None


def read_query(payload: Any) -> QueryBody:
    body = _wrapped(payload)
    begin, end = _window(body)
    data_type = _string(body, "dataType", required=True, max_len=11)
    if data_type not in _DATA_TYPES:
        raise Invalid("0300004", f"dataType must be one of {', '.join(_DATA_TYPES)}")
    url = str(_string(body, "callBackURL", required=True))
    if not re.fullmatch(r"https?://\S+", url):
        raise Invalid("0300004", "callBackURL must be an http(s) URL")
    return QueryBody(
        beginTime=begin,
        endTime=end,
        dataType=str(data_type),
        callBackURL=url,
        accountId=_string(body, "accountId", required=False, max_len=20),
        agentId=_string(body, "agentId", required=False, max_len=20),
        callId=_string(body, "callId", required=False, max_len=25),
        callerNo=_string(body, "callerNo", required=False, max_len=25),
        calleeNo=_string(body, "calleeNo", required=False, max_len=25),
        calleeNo2=_string(body, "calleeNo2", required=False, max_len=25),
    )


@dataclass(frozen=True)
class DownloadBill:
    """downloadBillFile's msgBody (§4)."""

    billFileName: str


def read_download_bill(payload: Any) -> DownloadBill:
    name = str(_string(_wrapped(payload), "billFileName", required=True, max_len=49))
    match = _BILL_NAME.fullmatch(name)
    if not match:
        raise Invalid("0300004", "billFileName must be yyyyMMdd_<responseId>.zip")
    try:
        datetime.strptime(match["day"], "%Y%m%d")
    except ValueError:
        raise Invalid("0300010", "the date in billFileName is invalid") from None
    return DownloadBill(name)


@dataclass(frozen=True)
class RecordUrl:
    """getRecordFileUrlFromObs's flat body (§5); ``version`` None: the times are UTC."""

    callId: str
    beginTime: datetime
    endTime: datetime
    version: str | None


def read_record_url(payload: Any) -> RecordUrl:
    body = _object(payload, "the body")
    call_id = str(_string(body, "callId", required=True, max_len=25))
    begin, end = _window(body)
    version = body.get("version")
    if version in (None, ""):
        version = None
    elif version != VERSION:
        raise Invalid("0300006", f"version must be {VERSION} or absent")
    return RecordUrl(call_id, begin, end, version)


@dataclass(frozen=True)
class DownloadRecordFile:
    """downloadRecordFile's msgBody (§6): the index's ``file_name``."""

    fileName: str


def read_download_record_file(payload: Any) -> DownloadRecordFile:
    return DownloadRecordFile(str(_string(_wrapped(payload), "fileName", required=True, max_len=1024)))


@dataclass(frozen=True)
class DownloadRecord:
    """downloadRecord's msgBody (§6): ``original_file_name`` (``\\`` → ``/``) or a callId; ``ccId``."""

    fileName: str
    ccId: str | None = None


def read_download_record(payload: Any) -> DownloadRecord:
    body = _wrapped(payload)
    return DownloadRecord(
        str(_string(body, "fileName", required=True, max_len=1024)), _string(body, "ccId", required=False)
    )
