"""The verdict: what landed in S3 against the simulator's ground truth over the requested windows.

Independent of the product code on purpose: the expected keys are derived from the layout in
``docs/design.md`` here, so a layout regression in the product shows up as a difference.

Checked:
* every CDR row and every recording-index row, as a multiset of full rows (every column), parsed
  from every CSV under ``cdr/`` and ``recording_index/``; each row sits in the partition its
  ``account_id`` / ``call_begin`` prescribes, in a file named after a job of this stack;
* every recording at its exact key, size and sha256 from the object metadata *and* from the
  bytes; a JSON sidecar next to it; no recording the truth does not know;
* a manifest per completed job, the raw bill per completed job; every recording the truth lists
  named in a manifest, as copied (by key) or failed (by call and file name);
* every window's current job COMPLETED (or PARTIAL: its failures are named in its manifest and
  reported by the caller from the REC items); DLQs empty; nothing under ``_staging/``; no in-progress
  multipart uploads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = ["Verdict", "coverage_gap", "verify"]

FMT = "%Y-%m-%d %H:%M:%S"
ALL = "_all"
_CSV_KEY = re.compile(
    r"^(?P<kind>cdr|recording_index)/account_id=(?P<acct>[^/]+)/call_date=(?P<day>\d{4}-\d{2}-\d{2})/"
    r"(?P<rid>[^/]+)-(?P<n>\d+)\.csv$"
)
_EXAMPLES = 3


@dataclass
class Verdict:
    ok: bool
    problems: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sample_manifest: Any = None

    def __bool__(self) -> bool:
        return self.ok


def _row_key(row: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), "" if v is None else str(v)) for k, v in row.items()))


def _describe_row(row: tuple[tuple[str, str], ...]) -> str:
    data = dict(row)
    keys = ("account_id", "call_id", "call_id_num", "call_begin", "file_name")
    shown = {k: data[k] for k in keys if data.get(k)}
    return json.dumps(shown or dict(list(data.items())[:5]))


def _compare(problems: list[str], what: str, expected: Counter[Any], actual: Counter[Any]) -> None:
    missing = expected - actual
    unexpected = actual - expected
    if missing:
        examples = "; ".join(_describe_row(r) for r in list(missing)[:_EXAMPLES])
        problems.append(f"{what}: {sum(missing.values())} expected row(s) missing, e.g. {examples}")
    if unexpected:
        dupes = sum(n for r, n in unexpected.items() if expected[r])
        examples = "; ".join(_describe_row(r) for r in list(unexpected)[:_EXAMPLES])
        problems.append(
            f"{what}: {sum(unexpected.values())} unexpected row(s) ({dupes} duplicates of expected rows), "
            f"e.g. {examples}"
        )


def _stem(file_name: str) -> str:
    last = re.split(r"[/\\]", file_name.strip())[-1]
    return last.rsplit(".", 1)[0] if "." in last.lstrip(".") else last


def recording_base(account_id: str, call_begin: str, call_id: str, file_name: str, shared_stem: bool = False) -> str:
    """The key (without extension) docs/design.md prescribes; ``shared_stem``: another recording of
    the call has the same stem, so the name carries 8 hex digits of the SHA-256 of the whole path."""
    day = datetime.strptime(call_begin, FMT).date().isoformat()
    name = _stem(file_name)
    if shared_stem:
        path = file_name.strip().replace("\\", "/")
        name = f"{name[:119]}_{hashlib.sha256(path.encode('utf-8')).hexdigest()[:8]}"
    return f"recordings/account_id={account_id or ALL}/call_date={day}/{call_id}/{name}"


def _as_exported(rows: list[dict[str, str]], kind: str, header_style: str) -> list[dict[str, str]]:
    """Truth rows under the column names docs/design.md gives exported CSVs: documented columns by
    their documented (lower-case) names; an extra column by its name as received, stripped, or, when
    the bill had no header row, ``extra_{position}`` (1-based). The simulator's columns are its own
    copy of protocol §4, not the product's."""
    from local.ccfs_simulator.columns import CDR_COLUMNS, CDR_HEADER, INDEX_HEADER, RECORD_COLUMNS

    documented, written = (CDR_COLUMNS, CDR_HEADER) if kind == "cdr" else (RECORD_COLUMNS, INDEX_HEADER)
    if header_style == "exact":
        return rows
    renamed: dict[str, str] = {}
    for position, name in enumerate(written, start=1):
        if name in documented:
            renamed[name] = name
        elif header_style == "none":
            renamed[name] = f"extra_{position}"
        else:  # "spaced-upper": " LEAVE_REASON " arrives, stripped it is kept
            renamed[name] = name.upper()
    return [{renamed[k]: v for k, v in row.items()} for row in rows]


def verify(stack: Any) -> Verdict:
    problems: list[str] = []
    notes: list[str] = []
    counts: dict[str, Any] = {}
    s3 = stack.client("s3")
    bucket = stack.names.bucket
    required = stack.required

    # ---------------------------------------------------------------- jobs and windows
    items = stack.scan_jobs_table()
    jobs = {i["response_id"]: i for i in items if str(i.get("pk", "")).startswith("JOB#") and i.get("sk") == "JOB"}
    windows = [i for i in items if str(i.get("pk", "")).startswith("WINDOW#")]
    counts["windows"] = len(windows)
    counts["jobs"] = dict(Counter(str(j.get("job_status")) for j in jobs.values()))
    current: dict[str, tuple[str, str, str]] = {}  # response id -> (tenant, begin, end), COMPLETED/PARTIAL
    exported: dict[str, tuple[str, str, str]] = {}  # every window's current job (truth is summed over these)
    for w in windows:
        tenant = str(w["pk"])[len("WINDOW#") :]
        begin, _, end = str(w["sk"]).partition("|")
        rid = str(w.get("response_id") or "")
        job = jobs.get(rid)
        in_scope = any(t == tenant and b <= end and begin <= e for t, b, e in required) or not required
        status = None if job is None else job.get("job_status")
        if job is not None:
            exported[rid] = (tenant, begin, end)
        if status in ("COMPLETED", "PARTIAL"):
            current[rid] = (tenant, begin, end)
        elif in_scope or status in ("FAILED", None):
            detail = ""
            if job is not None and status == "DOWNLOADING":
                detail = (
                    f" ({job.get('recordings_done', 0)} done + {job.get('recordings_failed', 0)} failed"
                    f" of {job.get('recordings_total', '?')} recordings)"
                )
            elif job is not None and job.get("error"):
                detail = f" ({str(job['error'])[:200]})"
            elif w.get("last_error"):
                detail = f" (last error: {str(w['last_error'])[:200]})"
            problems.append(f"window {tenant} {begin}..{end}: job {rid or '-'} is {status or 'not requested'}{detail}")
        else:
            notes.append(f"window {tenant} {begin}..{end} outside the checked range is {status} (ignored)")
    for tenant, begin, end in required:
        spans = [(*str(w["sk"]).partition("|")[::2], w) for w in windows if str(w["pk"]) == f"WINDOW#{tenant}"]
        gap = coverage_gap(spans, begin, end)
        if gap:
            problems.append(f"{tenant}: {begin}..{end} not covered by requested windows from {gap}")

    # ---------------------------------------------------------------- ground truth
    header_style = getattr(getattr(stack.sim, "config", None), "csv_header", "exact")
    expected_cdr: Counter[Any] = Counter()
    expected_index: Counter[Any] = Counter()
    expected_recordings: dict[str, Any] = {}
    for tenant, begin, end in exported.values():
        truth = stack.sim.truth(
            None if tenant == ALL else tenant, datetime.strptime(begin, FMT), datetime.strptime(end, FMT)
        )
        expected_cdr.update(_row_key(r) for r in _as_exported(truth.cdr_rows, "cdr", header_style))
        expected_index.update(_row_key(r) for r in _as_exported(truth.index_rows, "record", header_style))
        stems = Counter((rec.call_id, _stem(rec.file_name)) for rec in truth.recordings)
        for rec in truth.recordings:
            shared = stems[(rec.call_id, _stem(rec.file_name))] > 1
            base = recording_base(rec.account_id, rec.call_begin, rec.call_id, rec.file_name, shared)
            if base in expected_recordings:
                problems.append(f"truth has two recordings at {base} (layout collision)")
            expected_recordings[base] = rec

    # ---------------------------------------------------------------- objects
    objects = list(stack.list_objects())
    by_prefix = Counter(o["Key"].split("/", 1)[0] + "/" for o in objects)
    counts["s3_keys_by_prefix"] = dict(sorted(by_prefix.items()))
    counts["s3_bytes"] = sum(int(o["Size"]) for o in objects)
    keys = {o["Key"]: o for o in objects}

    actual_cdr: Counter[Any] = Counter()
    actual_index: Counter[Any] = Counter()
    all_jobs = set(jobs)
    for key in sorted(keys):
        match = _CSV_KEY.match(key)
        if key.startswith(("cdr/", "recording_index/")) and not match:
            problems.append(f"CSV key {key} does not follow the layout")
            continue
        if not match:
            continue
        if match["rid"] not in all_jobs:
            problems.append(f"{key}: responseId {match['rid']} is not a job of this stack")
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8-sig")
        target = actual_cdr if match["kind"] == "cdr" else actual_index
        misplaced = 0
        for row in csv.DictReader(io.StringIO(text, newline="")):
            target[_row_key(row)] += 1
            if (row.get("account_id") or ALL) != match["acct"]:
                misplaced += 1
            else:
                try:
                    day = datetime.strptime((row.get("call_begin") or "").strip(), FMT).date().isoformat()
                except ValueError:
                    day = None
                if day is not None and day != match["day"]:
                    misplaced += 1
        if misplaced:
            problems.append(f"{key}: {misplaced} row(s) outside the partition their account_id/call_begin give")
    counts["cdr_rows"] = {"expected": sum(expected_cdr.values()), "actual": sum(actual_cdr.values())}
    counts["index_rows"] = {"expected": sum(expected_index.values()), "actual": sum(actual_index.values())}
    _compare(problems, "CDR rows", expected_cdr, actual_cdr)
    _compare(problems, "recording-index rows", expected_index, actual_index)

    # ---------------------------------------------------------------- recordings
    def check_recording(base: str, rec: Any) -> list[str]:
        found: list[str] = []
        key = base + ".wav"
        if key not in keys:
            return [f"recording missing: {key}"]
        head = s3.head_object(Bucket=bucket, Key=key)
        meta = head.get("Metadata") or {}
        if int(head["ContentLength"]) != rec.size:
            found.append(f"{key}: {head['ContentLength']} bytes, expected {rec.size}")
        if meta.get("sha256") != rec.sha256:
            found.append(f"{key}: metadata sha256 {meta.get('sha256')!r}, expected {rec.sha256}")
        if str(meta.get("size")) != str(rec.size):
            found.append(f"{key}: metadata size {meta.get('size')!r}, expected {rec.size}")
        digest = hashlib.sha256()
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(1 << 16), b""):
            digest.update(chunk)
        if digest.hexdigest() != rec.sha256:
            found.append(f"{key}: content sha256 {digest.hexdigest()[:16]}..., expected {rec.sha256[:16]}...")
        sidecar = base + ".json"
        if sidecar not in keys:
            found.append(f"sidecar missing: {sidecar}")
        else:
            try:
                json.loads(s3.get_object(Bucket=bucket, Key=sidecar)["Body"].read())
            except ValueError:
                found.append(f"{sidecar} is not JSON")
        return found

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda kv: check_recording(*kv), expected_recordings.items()))
    recording_problems = [p for r in results for p in r]
    verified = sum(1 for r in results if not r)
    expected_keys = {b + ".wav" for b in expected_recordings} | {b + ".json" for b in expected_recordings}
    extra = sorted(k for k in keys if k.startswith("recordings/") and k not in expected_keys)
    if extra:
        recording_problems.append(f"{len(extra)} unexpected object(s) under recordings/, e.g. {', '.join(extra[:3])}")
    problems.extend(_summarise(recording_problems, "recordings"))
    counts["recordings"] = {
        "expected": len(expected_recordings),
        "verified": verified,
        "bytes_expected": sum(r.size for r in expected_recordings.values()),
    }
    counts["sidecars"] = sum(1 for k in keys if k.startswith("recordings/") and k.endswith(".json"))

    # ---------------------------------------------------------------- manifests, raw bills
    manifests = 0
    sample = None
    copied: set[str] = set()  # recording keys the manifests list as copied
    failed: set[tuple[str, str]] = set()  # (call_id, file_name) the manifests list as failed
    for rid in current:
        key = f"manifests/{rid}.json"
        if key not in keys:
            problems.append(f"manifest missing: {key}")
            continue
        try:
            data = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ValueError:
            problems.append(f"{key} is not JSON")
            continue
        manifests += 1
        if sample is None or (isinstance(data, dict) and _manifest_size(data) > _manifest_size(sample)):
            sample = data
        if isinstance(data, dict):
            copied.update(str(r.get("key")) for r in data.get("recordings") or [] if isinstance(r, dict))
            failed.update(
                (str(f.get("call_id")), str(f.get("file_name")))
                for f in data.get("failures") or []
                if isinstance(f, dict)
            )
    counts["manifests"] = manifests
    # every recording an index lists ends COPIED or FAILED in its job's manifest, never without an outcome
    unnamed = sorted(
        base + ".wav"
        for base, rec in expected_recordings.items()
        if base + ".wav" not in copied and (rec.call_id, rec.file_name) not in failed
    )
    if unnamed and not any(p.startswith("window ") for p in problems):
        problems.extend(_summarise([f"recording without an outcome in any manifest: {k}" for k in unnamed], "manifest"))
    counts["recordings_named_in_manifests"] = len(expected_recordings) - len(unnamed)
    raw_names = {k.rsplit("/", 1)[-1] for k in keys if k.startswith("raw/")}
    missing_raw = [
        rid for rid in current if jobs[rid].get("bill_file_name") and jobs[rid]["bill_file_name"] not in raw_names
    ]
    if missing_raw:
        problems.append(f"raw bill missing for {len(missing_raw)} job(s), e.g. {missing_raw[:3]}")
    counts["raw_bills"] = len(raw_names)

    # ---------------------------------------------------------------- leftovers
    staging = [k for k in keys if k.startswith("_staging/")]
    if staging:
        problems.append(f"{len(staging)} object(s) left under _staging/, e.g. {staging[:3]}")
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    if uploads:
        problems.append(f"{len(uploads)} multipart upload(s) in progress, e.g. {[u['Key'] for u in uploads[:3]]}")
    depths = stack.queue_depths()
    sqs = stack.client("sqs")
    for lid, (visible, in_flight) in sorted(depths.items()):
        if lid not in stack.names.consumed and visible + in_flight:
            peek = sqs.receive_message(QueueUrl=stack.names.queues[lid], MaxNumberOfMessages=1, VisibilityTimeout=0)
            body = (peek.get("Messages") or [{}])[0].get("Body", "")
            problems.append(f"{lid} holds {visible + in_flight} message(s), e.g. {body[:300]}")
        elif visible + in_flight:
            problems.append(f"{lid} still holds {visible} queued / {in_flight} in-flight message(s)")
    counts["dlq_messages"] = sum(v + f for k, (v, f) in depths.items() if k not in stack.names.consumed)
    return Verdict(ok=not problems, problems=problems, counts=counts, notes=notes, sample_manifest=sample)


def coverage_gap(windows: list[tuple[str, str, Any]], begin: str, end: str) -> str | None:
    """The first second of [begin, end] no window covers (None: fully covered)."""
    fmt = "%Y-%m-%d %H:%M:%S"
    cursor = datetime.strptime(begin, fmt)
    last = datetime.strptime(end, fmt)
    spans = sorted((datetime.strptime(b, fmt), datetime.strptime(e, fmt)) for b, e, _ in windows)
    for b, e in spans:
        if e < cursor:
            continue
        if b > cursor:
            break
        cursor = e + timedelta(seconds=1)
        if cursor > last:
            return None
    return None if cursor > last else f"{cursor:%Y-%m-%d %H:%M:%S}"


def _manifest_size(data: Any) -> int:
    return len(json.dumps(data, default=str))


def _summarise(found: list[str], what: str, limit: int = 8) -> list[str]:
    if len(found) <= limit:
        return found
    return [*found[:limit], f"... and {len(found) - limit} more {what} problem(s)"]
