"""The export bucket's key layout (docs/design.md, "S3 layout"): users query it, so it lives here only.

```
raw/account_id={acct}/bill_date={yyyy-mm-dd}/{billFileName}
cdr/account_id={acct}/call_date={yyyy-mm-dd}/{responseId}-{n}.csv
recording_index/account_id={acct}/call_date={yyyy-mm-dd}/{responseId}-{n}.csv
recordings/account_id={acct}/call_date={yyyy-mm-dd}/{call_id}/{stem}.wav   (+ {stem}.json)
manifests/{responseId}.json
_staging/{uuid}
```

Every value that becomes a path segment comes from CC-FS data (a CSV row, a file name), so it is
checked here: a value that would add a path level, escape a partition or be empty raises
:class:`UnsafeKeyPart` instead of producing a surprising key.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import date

from ccfs.models import bill_file_date, parse_time
from exporter.config import ALL_ACCOUNTS

__all__ = [
    "ALL_ACCOUNTS",
    "UnsafeKeyPart",
    "account_partition",
    "bill_date",
    "call_date",
    "cdr_key",
    "entry_number",
    "index_key",
    "manifest_key",
    "raw_key",
    "recording_key",
    "recording_stem",
    "sidecar_key",
    "staging_key",
]

RAW_PREFIX = "raw/"
CDR_PREFIX = "cdr/"
INDEX_PREFIX = "recording_index/"
RECORDINGS_PREFIX = "recordings/"
MANIFESTS_PREFIX = "manifests/"
STAGING_PREFIX = "_staging/"

# Letters, digits and a few punctuation marks; no "/", "=", "\\", whitespace or control characters.
# \Z, not $: "$" also matches before a trailing newline, which would put "\n" in a key.
_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,127}\Z")
_ENTRY_NUMBER = re.compile(r"_(?:call|record)(?:_(\d+))?\.csv$", re.IGNORECASE)


class UnsafeKeyPart(ValueError):
    """A value from CC-FS data cannot be used as an S3 key segment."""


def _safe(value: str, what: str) -> str:
    if not _SAFE.match(value) or value in (".", ".."):
        raise UnsafeKeyPart(f"{what} {value[:40]!r} is not usable in an S3 key")
    return value


def account_partition(account_id: str | None) -> str:
    """The ``account_id=`` value: the row's account_id, or ``_all`` where there is none."""
    value = (account_id or "").strip()
    return _safe(value, "account_id") if value else ALL_ACCOUNTS


def call_date(call_begin: str | None) -> date:
    """The date of a row's ``call_begin`` (strict ``yyyy-MM-dd HH:mm:ss``); ValueError otherwise."""
    return parse_time((call_begin or "").strip()).date()


def bill_date(bill_file_name: str) -> date:
    """The date inside ``yyyyMMdd_{responseId}.zip``; ValueError when the name has none."""
    return bill_file_date(bill_file_name)


def entry_number(entry_name: str) -> int:
    """``n`` of a bill entry ``…_call_{n}.csv`` / ``…_record_{n}.csv``; 0 for the un-numbered
    ``…_call.csv`` / ``…_record.csv`` the downloadBillFile page names (protocol §4)."""
    match = _ENTRY_NUMBER.search(entry_name)
    if not match:
        raise UnsafeKeyPart(f"bill entry {entry_name[:80]!r} is not a _call[_n].csv / _record[_n].csv name")
    return int(match.group(1) or 0)


def recording_stem(file_name: str) -> str:
    """The recording file's stem: ``/10/1/record/100/13533/0903379.wav`` → ``0903379``."""
    last = re.split(r"[/\\]", file_name.strip())[-1]
    stem = last.rsplit(".", 1)[0] if "." in last.lstrip(".") else last
    return _safe(stem, "recording file name")


def recording_path(file_name: str) -> str:
    """A recording's identity within its call: the whole index ``file_name``, separators as ``/``."""
    return file_name.strip().replace("\\", "/")


def distinct_stem(file_name: str) -> str:
    """The key name of a recording whose stem another recording of the same call shares (one file per
    agent: ``…/13533/0903379.wav`` and ``…/13534/0903379.wav``): the stem, ``_``, and 8 hex digits of
    the SHA-256 of its whole path, so each keeps its own key (docs/design.md, S3 layout)."""
    digest = hashlib.sha256(recording_path(file_name).encode("utf-8")).hexdigest()[:8]
    return _safe(f"{recording_stem(file_name)[:119]}_{digest}", "recording file name")


def raw_key(tenant: str, bill_file_name: str) -> str:
    _safe(bill_file_name, "billFileName")
    day = bill_date(bill_file_name).isoformat()
    return f"{RAW_PREFIX}account_id={account_partition(tenant)}/bill_date={day}/{bill_file_name}"


def _csv_key(prefix: str, account: str, day: date, response_id: str, n: int) -> str:
    name = f"{_safe(response_id, 'responseId')}-{n}.csv"
    return f"{prefix}account_id={account_partition(account)}/call_date={day.isoformat()}/{name}"


def cdr_key(account: str, day: date, response_id: str, n: int) -> str:
    return _csv_key(CDR_PREFIX, account, day, response_id, n)


def index_key(account: str, day: date, response_id: str, n: int) -> str:
    return _csv_key(INDEX_PREFIX, account, day, response_id, n)


def _recording_base(account: str, day: date, call_id: str, stem: str) -> str:
    return (
        f"{RECORDINGS_PREFIX}account_id={account_partition(account)}/call_date={day.isoformat()}/"
        f"{_safe(call_id, 'call_id')}/{_safe(stem, 'recording stem')}"
    )


def recording_key(account: str, day: date, call_id: str, stem: str) -> str:
    return _recording_base(account, day, call_id, stem) + ".wav"


def sidecar_key(account: str, day: date, call_id: str, stem: str) -> str:
    return _recording_base(account, day, call_id, stem) + ".json"


def manifest_key(response_id: str) -> str:
    return f"{MANIFESTS_PREFIX}{_safe(response_id, 'responseId')}.json"


def staging_key() -> str:
    """A fresh staging key: each attempt writes its own object, so attempts never collide."""
    return f"{STAGING_PREFIX}{uuid.uuid4()}"
