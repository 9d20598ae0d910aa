"""pydantic v2 models for every CC-FS request, reply and the bill callback (protocol §3-§6).

Every model validates formats and lengths strictly but ignores unknown fields (a newer CC-FS
may add some; the simulator is no stricter than the vendor documents). Replies are also
tolerant: unknown fields are ignored, optional fields accept ``""`` as the vendor's example sends
them. Times are naive ``datetime`` values in the tenant's time zone, written ``yyyy-MM-dd HH:mm:ss``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_WINDOW",
    "PROTOCOL_VERSION",
    "RESPONSE_ID_RULE",
    "TIME_FORMAT",
    "BillCallback",
    "BillCallbackBody",
    "BillFileName",
    "CallbackAck",
    "CcfsReply",
    "DataType",
    "DownloadBillFileBody",
    "DownloadBillFileRequest",
    "DownloadRecordBody",
    "DownloadRecordFileBody",
    "DownloadRecordFileRequest",
    "DownloadRecordRequest",
    "GetRecordFileUrlRequest",
    "QueryBillDataBody",
    "QueryBillDataRequest",
    "QueryBillDataResult",
    "RecordFileUrlResult",
    "ResponseId",
    "VersionHeader",
    "bill_file_date",
    "check_response_id",
    "format_time",
    "parse_time",
    "result_code_for",
    "split_url_list",
]

PROTOCOL_VERSION = "2.0"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_WINDOW = timedelta(days=3)
# \Z, not $ ($ also matches before a trailing newline); ASCII, or \d would accept any Unicode digit.
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\Z", re.ASCII)
# responseId: the vendor shows 32 hex digits, but the field is only bounded by the bill file name
# ``yyyyMMdd_{responseId}.zip`` (string(1-49)), so up to 36 characters. Any letter, digit, "-", "_" or
# "." is accepted, starting with a letter or digit: every such value is safe as an S3 key segment
# (exporter.layout) and inside the jobs table's "JOB#{responseId}" key. "/", "#", "|", "=",
# whitespace and the rest are refused: they would add key levels or collide with our separators.
_RESPONSE_ID_CHARS = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,35}"
_RESPONSE_ID_RE = re.compile(rf"^{_RESPONSE_ID_CHARS}\Z", re.ASCII)
# The file name carries the responseId "without dashes" (§3).
_BILL_FILE_RE = re.compile(r"^(?P<date>\d{8})_(?P<rid>[A-Za-z0-9][A-Za-z0-9_.]{0,35})\.zip\Z", re.ASCII)
RESPONSE_ID_RULE = "1-36 letters, digits, '-', '_' or '.', starting with a letter or digit"


def parse_time(value: str) -> datetime:
    """Parse ``yyyy-MM-dd HH:mm:ss`` strictly into a naive datetime."""
    if not _TIME_RE.match(value):
        raise ValueError(f"{value!r} is not yyyy-MM-dd HH:mm:ss")
    return datetime.strptime(value, TIME_FORMAT)


def format_time(value: datetime) -> str:
    return value.strftime(TIME_FORMAT)


def _time_before(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else value
    if isinstance(value, str):
        if not _TIME_RE.match(value):
            raise PydanticCustomError("time_format", "time must be yyyy-MM-dd HH:mm:ss, got {value}", {"value": value})
        try:
            return datetime.strptime(value, TIME_FORMAT)
        except ValueError:
            raise PydanticCustomError("time_format", "not a valid date/time: {value}", {"value": value}) from None
    raise PydanticCustomError("time_format", "time must be a yyyy-MM-dd HH:mm:ss string")


def _naive(value: datetime) -> datetime:
    if value.tzinfo is not None:
        raise PydanticCustomError("time_format", "times are tenant-local and must be naive")
    return value


CcfsTime = Annotated[
    datetime,
    BeforeValidator(_time_before),
    AfterValidator(_naive),
    PlainSerializer(format_time, return_type=str),
]


def _empty_to_none(value: Any) -> Any:
    return None if value == "" else value


# Spelled out (not built by a helper function) so that mypy sees them as type aliases.
OptStr20 = Annotated[
    Annotated[str, StringConstraints(min_length=1, max_length=20)] | None, BeforeValidator(_empty_to_none)
]
OptStr25 = Annotated[
    Annotated[str, StringConstraints(min_length=1, max_length=25)] | None, BeforeValidator(_empty_to_none)
]
DataType = Literal["call", "record", "call_record"]


def _check_bill_file_name(value: str) -> str:
    if len(value) > 49:
        raise PydanticCustomError("string_too_long", "billFileName is longer than 49 characters")
    match = _BILL_FILE_RE.match(value)
    if not match:
        raise PydanticCustomError(
            "bill_file_name",
            "billFileName must be yyyyMMdd_<responseId without dashes>.zip: 1-36 letters, digits, '_' or '.'",
        )
    try:
        datetime.strptime(match["date"], "%Y%m%d")
    except ValueError:
        raise PydanticCustomError("bill_file_date", "billFileName has an invalid date") from None
    return value


def check_response_id(value: str) -> str:
    """``value`` when it is a responseId the exporter can use (see ``_RESPONSE_ID_CHARS``), else a
    ``ValueError`` (pydantic: error type ``response_id``) that says what is allowed."""
    if not isinstance(value, str) or not _RESPONSE_ID_RE.match(value):
        raise PydanticCustomError("response_id", f"responseId must be {RESPONSE_ID_RULE}")
    return value


BillFileName = Annotated[str, StringConstraints(min_length=1), AfterValidator(_check_bill_file_name)]
ResponseId = Annotated[str, AfterValidator(check_response_id)]


def bill_file_date(name: str) -> date:
    """The date inside a valid bill file name."""
    return datetime.strptime(name[:8], "%Y%m%d").date()


def _check_window(begin: datetime, end: datetime) -> None:
    if end < begin:
        raise PydanticCustomError("window", "endTime is before beginTime")
    if end - begin > MAX_WINDOW:
        raise PydanticCustomError("window", "endTime - beginTime is more than 3 days")


class _Tolerant(BaseModel):
    # defer_build: a model's validator is built the first time it is used, not at import. Each
    # function uses a few of these ~20 models (the callback one), so a cold start stops paying for
    # all of them (bench coldstart: import of this module ~80-170 ms -> ~60 ms under load).
    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)


class VersionHeader(_Tolerant):
    version: str = PROTOCOL_VERSION

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value != PROTOCOL_VERSION:
            raise PydanticCustomError("wrong_version", "version must be 2.0, got {value}", {"value": value})
        return value


# ---------------------------------------------------------------------------- requests


class QueryBillDataBody(_Tolerant):
    beginTime: CcfsTime
    endTime: CcfsTime
    accountId: OptStr20 = None
    agentId: OptStr20 = None
    callId: OptStr25 = None
    callerNo: OptStr25 = None
    calleeNo: OptStr25 = None
    calleeNo2: OptStr25 = None
    dataType: DataType
    callBackURL: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^https?://\S+$")]

    @model_validator(mode="after")
    def _window(self) -> QueryBillDataBody:
        _check_window(self.beginTime, self.endTime)
        return self


class _Wrapped(_Tolerant):
    request: VersionHeader = Field(default_factory=VersionHeader)


class QueryBillDataRequest(_Wrapped):
    msgBody: QueryBillDataBody


class DownloadBillFileBody(_Tolerant):
    billFileName: BillFileName


class DownloadBillFileRequest(_Wrapped):
    msgBody: DownloadBillFileBody


class GetRecordFileUrlRequest(_Tolerant):
    """Flat body (no request/msgBody wrapper). With version 2.0 times are tenant-local, else UTC."""

    callId: Annotated[str, StringConstraints(min_length=1, max_length=25)]
    beginTime: CcfsTime
    endTime: CcfsTime
    version: Annotated[str | None, BeforeValidator(_empty_to_none)] = PROTOCOL_VERSION

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and value != PROTOCOL_VERSION:
            raise PydanticCustomError("wrong_version", "version must be 2.0 or absent, got {value}", {"value": value})
        return value

    @model_validator(mode="after")
    def _window(self) -> GetRecordFileUrlRequest:
        _check_window(self.beginTime, self.endTime)
        return self


class DownloadRecordFileBody(_Tolerant):
    fileName: Annotated[str, StringConstraints(min_length=1, max_length=512)]


class DownloadRecordFileRequest(_Wrapped):
    msgBody: DownloadRecordFileBody


class DownloadRecordBody(_Tolerant):
    """``fileName`` is the index's original_file_name with ``\\`` → ``/``, or a callId."""

    fileName: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    ccId: OptStr20 = None


class DownloadRecordRequest(_Wrapped):
    msgBody: DownloadRecordBody


# ---------------------------------------------------------------------------- replies


class CcfsReply(_Tolerant):
    """Every JSON reply. ``resultData`` is an object on success or ``""`` on failure; the legacy
    ``response`` object is ignored."""

    resultCode: str
    resultDesc: str = ""
    resultData: Any = None
    url: Any = None
    """getRecordFileUrlFromObs: the field table lists ``url`` on its own, so it may come beside
    ``resultData`` at the top level instead of inside it (protocol §5)."""

    @field_validator("resultCode", mode="before")
    @classmethod
    def _code_as_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @property
    def ok(self) -> bool:
        return self.resultCode == "0"


class QueryBillDataResult(_Tolerant):
    responseId: ResponseId


_URL_START = r"(?=https?://)"
_URL_SEPARATORS = re.compile(rf"\s+|[,;]+\s*{_URL_START}", re.IGNORECASE)


def split_url_list(value: str) -> list[str]:
    """Split a URL list sent as one string: separated by commas, semicolons, whitespace or newlines
    (protocol §5 does not fix the shape). Whitespace always separates (a URL has none); a comma or
    semicolon separates only where ``http://``/``https://`` follows, so one inside a URL (its query)
    is kept. Stray separators at either end of an item are dropped."""
    return [u for u in (part.strip(",; ") for part in _URL_SEPARATORS.split(value)) if u]


class RecordFileUrlResult(_Tolerant):
    """``url`` may be one string, a JSON array of strings, or one string holding several URLs
    separated by commas, semicolons or whitespace (:func:`split_url_list`)."""

    url: list[str]

    @field_validator("url", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = split_url_list(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = [u for v in value for u in split_url_list(v)]
        if isinstance(value, list) and not value:
            raise PydanticCustomError("url_list", "reply carries no URL")
        return value


# ---------------------------------------------------------------------------- callback


class BillCallbackBody(_Tolerant):
    """The callback's ``msgBody``. The vendor's prose also calls the file name ``billName``: accepted
    as an alias of ``billFileName``. The name carries the responseId "without dashes" (§3)."""

    responseId: ResponseId
    billFileName: BillFileName = Field(validation_alias=AliasChoices("billFileName", "billName"))
    accountId: OptStr20 = None

    @model_validator(mode="after")
    def _name_matches(self) -> BillCallbackBody:
        expected = self.responseId.replace("-", "")
        if self.billFileName[9:-4].lower() != expected.lower():
            raise PydanticCustomError("bill_file_mismatch", "billFileName does not carry this callback's responseId")
        return self

    @property
    def bill_date(self) -> date:
        return bill_file_date(self.billFileName)


class BillCallback(_Wrapped):
    msgBody: BillCallbackBody


class CallbackAck(_Tolerant):
    resultCode: str = "0"
    resultDesc: str = "success"


# ---------------------------------------------------------------------------- error codes

_CODE_BY_ERROR_TYPE = {
    "missing": "0300001",
    "none_required": "0300001",
    "string_too_long": "0300003",
    "too_long": "0300003",
    "string_too_short": "0300005",
    "too_short": "0300005",
    "wrong_version": "0300006",
    "bill_file_date": "0300010",
}


def result_code_for(error: ValidationError, body_was_empty: bool = False) -> str:
    """The CC-FS resultCode a server answers for a request that failed validation.

    **[choice]** (the vendor documents codes, not the mapping): a missing field → 0300001, ``""`` for
    a required string → 0300002, too long → 0300003, too short → 0300005, wrong version → 0300006,
    empty body → 0300007, invalid date in a file name → 0300010, anything else (formats, a window
    over 3 days, unknown dataType) → 0300004.
    """
    if body_was_empty:
        return "0300007"
    first = error.errors()[0]
    if first.get("input", "") is None and first["loc"]:
        return "0300001"
    if first["type"] in ("string_too_short", "too_short") and first.get("input") == "":
        return "0300002"
    return _CODE_BY_ERROR_TYPE.get(first["type"], "0300004")
