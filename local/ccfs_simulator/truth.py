"""The ground truth: what a bill for a window holds (every CDR leg and recording-index row) and
every recording's size and sha256, for comparing an export against (the local stack's verdict,
the admin API's ``/truth``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from .data import Call, CallCenter, Recording
from .requests import format_time

__all__ = ["RecordingTruth", "Truth", "truth_of"]


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


def truth_of(
    center: CallCenter,
    sha256: Callable[[Recording], str],
    account_id: str | None,
    begin: datetime,
    end: datetime,
) -> Truth:
    """What a bill for [begin, end] (tenant-local, inclusive, by first-leg call_begin) holds."""
    accounts = [t.account_id for t in center.tenants] if account_id is None else [account_id]
    calls: list[Call] = []
    for account in accounts:
        if center.tenant(account) is not None:
            calls.extend(center.calls_between(account, begin, end))
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
                sha256=sha256(rec),
            )
            for call in calls
            for rec in call.recordings
        ],
    )
