"""``aicc-export verify``: a day's manifests against the bucket; every gap listed, exit 1 on any.

The day's jobs come from the jobs table (the tenant's window items overlapping the tenant-local day,
one bounded query: :meth:`exporter.jobs.lookup.JobLookup.windows_touching`), their manifests from
``manifests/{responseId}.json`` (:class:`exporter.jobs.manifest.ManifestWriter`). For each manifest:

- the raw bill ZIP is present with its size;
- every CDR and recording-index CSV is present and holds the rows the manifest says, and the rows add
  up to the manifest's ``counts``;
- every recording is present with its size, its ``sha256`` metadata and (where S3 has one) its
  SHA-256 checksum equal to the manifest's ``sha256``; as many as ``counts.recordings_done``.

A window whose job is not complete (or FAILED) is a gap too: its data is not all there.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import click
from botocore.exceptions import ClientError

from aicc_export.deployment import settings_of, tenants_of, yesterday
from aicc_export.output import Result, finish
from aicc_export.params import DAY
from aicc_export.target import Target
from exporter.jobs.keys import JobStatus
from exporter.jobs.lookup import JobLookup
from exporter.jobs.manifest import ManifestWriter

__all__ = ["Gap", "command", "run_verify", "verify_manifest"]

_COMPLETE = {JobStatus.COMPLETED, JobStatus.PARTIAL}
_THREADS = 16
_MAX_LISTED = 50  # gaps printed per tenant in text (all of them in --json)


@dataclass(frozen=True)
class Gap:
    response_id: str
    key: str
    problem: str


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return dict(s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _csv_rows(s3: Any, bucket: str, key: str) -> int | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return max(0, sum(1 for _ in csv.reader(io.StringIO(body.decode("utf-8-sig")))) - 1)  # less the header


def _check_recording(s3: Any, bucket: str, rid: str, entry: dict[str, Any]) -> list[Gap]:
    key = str(entry.get("key") or "")
    head = _head(s3, bucket, key)
    if head is None:
        return [Gap(rid, key, "recording missing")]
    gaps = []
    size = entry.get("size")
    if size is not None and int(head.get("ContentLength", -1)) != int(size):
        gaps.append(Gap(rid, key, f"size {head.get('ContentLength')} != manifest {size}"))
    sha = str(entry.get("sha256") or "")
    meta_sha = head.get("Metadata", {}).get("sha256")
    if meta_sha != sha:
        gaps.append(Gap(rid, key, f"sha256 metadata {meta_sha or 'absent'} != manifest {sha}"))
    checksum = head.get("ChecksumSHA256")
    if checksum and "-" not in checksum and sha:
        expected = base64.b64encode(bytes.fromhex(sha)).decode("ascii")
        if checksum != expected:
            gaps.append(Gap(rid, key, "S3 SHA-256 checksum differs from the manifest's sha256"))
    return gaps


def verify_manifest(s3: Any, bucket: str, manifest: dict[str, Any], pool: ThreadPoolExecutor) -> tuple[list[Gap], int]:
    """The gaps between one manifest and the bucket, and how many objects were checked."""
    rid = str(manifest.get("responseId") or "?")
    gaps: list[Gap] = []
    checked = 0
    counts = manifest.get("counts") or {}
    raw = manifest.get("raw") or {}
    if raw.get("key"):
        checked += 1
        head = _head(s3, bucket, raw["key"])
        if head is None:
            gaps.append(Gap(rid, raw["key"], "raw bill ZIP missing"))
        elif raw.get("size") is not None and int(head.get("ContentLength", -1)) != int(raw["size"]):
            gaps.append(Gap(rid, raw["key"], f"size {head.get('ContentLength')} != manifest {raw['size']}"))
    for kind, counter in (("cdr", "cdr_rows"), ("recording_index", "index_rows")):
        files = manifest.get(kind) or []
        total, missing = 0, False
        for entry, rows in zip(files, pool.map(lambda e: _csv_rows(s3, bucket, str(e.get("key"))), files), strict=True):
            checked += 1
            if rows is None:
                gaps.append(Gap(rid, str(entry.get("key")), f"{kind} file missing"))
                missing = True
                continue
            total += rows
            if rows != int(entry.get("rows", -1)):
                gaps.append(Gap(rid, str(entry.get("key")), f"{rows} rows != manifest {entry.get('rows')}"))
        if counter in counts and total != int(counts[counter]) and not missing:
            gaps.append(Gap(rid, kind, f"{total} {kind} rows in the files != counts.{counter} {counts[counter]}"))
    recordings = manifest.get("recordings") or []
    for found in pool.map(lambda e: _check_recording(s3, bucket, rid, e), recordings):
        gaps.extend(found)
    checked += len(recordings)
    done = counts.get("recordings_done")
    if done is not None and int(done) != len(recordings):
        gaps.append(
            Gap(rid, "recordings", f"manifest lists {len(recordings)} recordings, counts.recordings_done {done}")
        )
    return gaps, checked


def _tenant_gaps(
    target: Target, lookup: JobLookup, manifests: ManifestWriter, tenant: str, day: date, pool: ThreadPoolExecutor
) -> tuple[list[Gap], int, int]:
    s3 = target.client("s3")
    gaps: list[Gap] = []
    n_manifests = checked = 0
    for item in lookup.windows_touching(tenant, day):
        where = f"window {item.claim.window.begin_str} .. {item.claim.window.end_str}"
        if item.no_data:
            continue
        if not item.response_id:
            gaps.append(Gap("-", where, f"not requested yet ({item.job_status or 'no status'})"))
            continue
        job = lookup.job(item.response_id)
        status = job.job_status if job else None
        if status not in _COMPLETE:
            reason = f": {job.error}" if job and job.error else ""
            gaps.append(Gap(item.response_id, where, f"job {status or 'missing'}{reason}"))
            continue
        manifest = manifests.read(item.response_id)
        if manifest is None:
            gaps.append(Gap(item.response_id, where, "manifest missing"))
            continue
        n_manifests += 1
        found, n = verify_manifest(s3, target.bucket, manifest, pool)
        gaps.extend(found)
        checked += n
    return gaps, n_manifests, checked


def run_verify(target: Target, day: date | None, tenant: str | None) -> Result:
    settings = settings_of(target)
    day = day or yesterday(settings.tenant_timezone)
    lookup = JobLookup(target.client("dynamodb"), target.jobs_table)
    manifests = ManifestWriter(target.client("s3"), target.bucket, lambda: datetime.now(UTC))
    result = Result("verify")
    every: list[dict[str, Any]] = []
    with ThreadPoolExecutor(_THREADS) as pool:
        for t in tenants_of(target, tenant):
            try:
                gaps, n_manifests, checked = _tenant_gaps(target, lookup, manifests, t, day, pool)
            except ClientError as exc:
                raise click.ClickException(f"reading the stack's table or bucket: {exc}") from None
            _report(result, t, day, gaps, n_manifests, checked)
            every.extend({"tenant": t, **asdict(g)} for g in gaps)
    result.data.update({"date": day.isoformat(), "gaps": every})
    return result


def _report(result: Result, tenant: str, day: date, gaps: Iterable[Gap], n_manifests: int, checked: int) -> None:
    listed = list(gaps)
    for gap in listed[:_MAX_LISTED]:
        result.lines.append(f"GAP {tenant} job {gap.response_id}: {gap.key}: {gap.problem}")
    if len(listed) > _MAX_LISTED:
        result.lines.append(f"... and {len(listed) - _MAX_LISTED} more gap(s) (--json lists them all)")
    result.check(
        f"{tenant} {day}",
        not listed,
        f"{n_manifests} manifest(s), {checked} object(s) checked, {len(listed)} gap(s)",
        "" if not listed else "re-export the affected windows (`aicc-export reexport`) or retry failed recordings",
    )


@click.command("verify")
@click.option("--date", "day", type=DAY, default=None, help="tenant-local day yyyy-mm-dd (default: yesterday)")
@click.option("--tenant", default=None, help="the tenant (accountId); default: every configured tenant")
@click.pass_context
def command(ctx: click.Context, day: date | None, tenant: str | None) -> None:
    """Manifests against S3: every object present, size and checksum, CDR row counts; lists each gap."""
    finish(ctx, run_verify(ctx.obj["target"](), day, tenant))
