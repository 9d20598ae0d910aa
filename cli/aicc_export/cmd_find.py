"""``aicc-export find CALL_ID``: where one call's CDR rows and recordings are.

It never lists the whole ``recordings/`` prefix. The call's tenant-local date comes from ``--date``
or, when not given, from the call id itself: CC-FS call ids are ``{epoch seconds}-{n}``
(shared/ccfs-protocol.md §4), so the call began on the UTC day of that epoch or the day either side
(every tenant zone is within 14 h of UTC): at most three date partitions per tenant. In each:

- recordings: one ``ListObjectsV2`` of ``recordings/account_id=…/call_date=…/{call_id}/`` (the call's
  own folder), a ``HeadObject`` per recording (size, ``sha256`` and ``response-id`` metadata) and the
  REC item of that job (``GetItem``);
- CDR rows: the CSVs of the recordings' jobs in that day's ``cdr/`` partition (``{responseId}-*``);
  when the call has no recording, every CSV of that one day partition.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import click
from botocore.exceptions import ClientError

from aicc_export.deployment import settings_of
from aicc_export.output import Result, finish
from aicc_export.params import DAY
from aicc_export.target import Target
from exporter import layout
from exporter.config import ALL_ACCOUNTS
from exporter.jobs.lookup import JobLookup

__all__ = ["candidate_dates", "command", "run_find"]

_CALL_ID = re.compile(r"^(?P<epoch>\d{9,11})-\d+$")
_SAFE_CALL_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,24}\Z")
_MAX_KEYS = 1000  # one call's folder: a handful of recordings; one day's CSVs: one per job and entry


def candidate_dates(call_id: str) -> list[date]:
    """The days a call may have begun on (tenant-local), from the epoch in its id; [] when it has none."""
    match = _CALL_ID.match(call_id)
    if not match:
        return []
    day = datetime.fromtimestamp(int(match.group("epoch")), UTC).date()
    return [day - timedelta(days=1), day, day + timedelta(days=1)]


def _list(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    reply = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=_MAX_KEYS)
    return list(reply.get("Contents", []))


def _accounts(target: Target, tenant: str | None) -> list[str]:
    if tenant:
        return [tenant]
    configured = settings_of(target).tenants
    if configured != [ALL_ACCOUNTS]:
        return configured
    # the whole developer account: the rows' own account_id values name the partitions
    reply = target.client("s3").list_objects_v2(Bucket=target.bucket, Prefix="cdr/", Delimiter="/", MaxKeys=1000)
    found = [p["Prefix"].removeprefix("cdr/account_id=").rstrip("/") for p in reply.get("CommonPrefixes", [])]
    return found or [ALL_ACCOUNTS]


def _recordings(target: Target, lookup: JobLookup, account: str, day: date, call_id: str) -> list[dict[str, Any]]:
    s3 = target.client("s3")
    folder = layout.recording_key(account, day, call_id, "x").rsplit("/", 1)[0] + "/"
    found = []
    for obj in _list(s3, target.bucket, folder):
        key = obj["Key"]
        if not key.endswith(".wav"):
            continue
        head = s3.head_object(Bucket=target.bucket, Key=key)
        meta = head.get("Metadata", {})
        stem = key.rsplit("/", 1)[1].removesuffix(".wav")
        rid = meta.get("response-id")
        rec = lookup.recording(rid, call_id, stem) if rid else None
        found.append(
            {
                "key": key,
                "size": int(head.get("ContentLength", 0)),
                "sha256": meta.get("sha256"),
                "response_id": rid,
                "sidecar": key.removesuffix(".wav") + ".json",
                "rec_item": None if rec is None else {"status": rec.status, "error": rec.error, "at": rec.updated_at},
            }
        )
    return found


def _cdr_rows(target: Target, account: str, day: date, call_id: str, response_ids: set[str]) -> list[dict[str, Any]]:
    s3 = target.client("s3")
    partition = layout.cdr_key(account, day, "x", 0).rsplit("/", 1)[0] + "/"
    prefixes = [f"{partition}{rid}-" for rid in sorted(response_ids)] or [partition]
    rows: list[dict[str, Any]] = []
    for prefix in prefixes:
        for obj in _list(s3, target.bucket, prefix):
            text = s3.get_object(Bucket=target.bucket, Key=obj["Key"])["Body"].read().decode("utf-8-sig")
            for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
                if row.get("call_id") == call_id:
                    rows.append({"key": obj["Key"], "line": line, "row": row})
    if not rows and response_ids:  # the rows may sit in another job's files of that day
        return _cdr_rows(target, account, day, call_id, set())
    return rows


def run_find(target: Target, call_id: str, day: date | None, tenant: str | None) -> Result:
    result = Result("find")
    if not _SAFE_CALL_ID.match(call_id):
        raise click.BadParameter(f"{call_id[:40]!r} is not a CC-FS call id (1-25 letters, digits, - . _)")
    days = [day] if day else candidate_dates(call_id)
    if not days:
        raise click.BadParameter(
            f"{call_id!r} carries no epoch ({{seconds}}-{{n}}) to date it by: pass --date yyyy-mm-dd",
            param_hint="CALL_ID",
        )
    lookup = JobLookup(target.client("dynamodb"), target.jobs_table)
    places: list[dict[str, Any]] = []
    for account in _accounts(target, tenant):
        for d in days:
            try:
                recordings = _recordings(target, lookup, account, d, call_id)
                rows = _cdr_rows(
                    target, account, d, call_id, {r["response_id"] for r in recordings if r["response_id"]}
                )
            except ClientError as exc:
                raise click.ClickException(f"reading s3://{target.bucket}: {exc}") from None
            if recordings or rows:
                places.append(
                    {"account_id": account, "call_date": d.isoformat(), "cdr": rows, "recordings": recordings}
                )
    for place in places:
        result.lines.append(f"account_id={place['account_id']} call_date={place['call_date']}")
        for r in place["cdr"]:
            row = r["row"]
            result.lines.append(
                f"  CDR {r['key']} line {r['line']}: call_id_num {row.get('call_id_num', '?')}, "
                f"{row.get('call_begin', '?')} .. {row.get('call_end', '?')}, agent {row.get('agent_id') or '-'}"
            )
        for rec in place["recordings"]:
            state = rec["rec_item"]["status"] if rec["rec_item"] else "no REC item"
            result.lines.append(
                f"  recording {rec['key']} {rec['size']} bytes sha256 {rec['sha256']} "
                f"({state}, job {rec['response_id']})"
            )
    searched = ", ".join(d.isoformat() for d in days)
    result.check(
        f"call {call_id}",
        bool(places),
        f"{sum(len(p['cdr']) for p in places)} CDR row(s), {sum(len(p['recordings']) for p in places)} recording(s)"
        if places
        else f"not found on {searched}",
        "" if places else "check the call id, pass --date (tenant-local call day) and --tenant",
    )
    result.data.update({"call_id": call_id, "searched_dates": [d.isoformat() for d in days], "places": places})
    return result


@click.command("find")
@click.argument("call_id")
@click.option("--date", "day", type=DAY, default=None, help="tenant-local call date (default: from the call id)")
@click.option("--tenant", default=None, help="the tenant (accountId); default: every configured tenant")
@click.pass_context
def command(ctx: click.Context, call_id: str, day: date | None, tenant: str | None) -> None:
    """Where a call's CDR rows and recordings are (S3 keys, rows, size/sha256, REC item state)."""
    finish(ctx, run_find(ctx.obj["target"](), call_id, day, tenant))
