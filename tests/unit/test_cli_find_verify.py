"""`aicc-export find` and `verify` on moto: a call located from its id alone within bounded prefixes;
a day's manifests checked object by object, each gap listed."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import date

import boto3
import click
import pytest

from aicc_export.cmd_find import candidate_dates, run_find
from aicc_export.cmd_verify import run_verify
from exporter import layout
from tests.unit.cli_check_helpers import cli_target, put_job, put_rec, put_window

DAY = date(2026, 11, 20)
CALL = "1795140000-7"  # 2026-11-20T02:00:00Z
WAV = b"RIFF" + bytes(range(200))
SHA = hashlib.sha256(WAV).hexdigest()
CDR = "developer,account_id,call_id,call_id_num,call_begin,call_end,agent_id\r\n"


def _cdr(*rows: tuple[str, str]) -> bytes:
    lines = [f"dev,acct001,{call},{n},2026-11-20 10:00:00,2026-11-20 10:01:00,10001\r\n" for call, n in rows]
    return (CDR + "".join(lines)).encode()


def _export(names, rid: str = "rid1", *, checksum: bool = True) -> dict:
    """One job's objects as the functions write them, its REC item, window and job items, its manifest."""
    s3 = boto3.client("s3")
    cdr_key = layout.cdr_key("acct001", DAY, rid, 1)
    s3.put_object(Bucket=names.bucket, Key=cdr_key, Body=_cdr((CALL, "1"), (CALL, "-1"), ("1795140100-8", "-1")))
    rec_key = layout.recording_key("acct001", DAY, CALL, "0903379")
    extra = {"ChecksumSHA256": base64.b64encode(bytes.fromhex(SHA)).decode()} if checksum else {}
    s3.put_object(
        Bucket=names.bucket,
        Key=rec_key,
        Body=WAV,
        Metadata={"sha256": SHA, "size": str(len(WAV)), "response-id": rid, "call-id": CALL},
        **extra,
    )
    put_rec(names.jobs_table, rid, CALL, "0903379", status="DONE", key=rec_key, size=len(WAV), sha256=SHA)
    put_window(names.jobs_table, "acct001", "2026-11-20 10:00:00", "2026-11-20 10:59:59", response_id=rid)
    put_job(names.jobs_table, rid, job_status="COMPLETED")
    manifest = {
        "responseId": rid,
        "status": "COMPLETED",
        "counts": {"cdr_rows": 3, "index_rows": 0, "recordings_done": 1},
        "cdr": [{"key": cdr_key, "rows": 3}],
        "recordings": [{"call_id": CALL, "key": rec_key, "size": len(WAV), "sha256": SHA}],
    }
    s3.put_object(Bucket=names.bucket, Key=layout.manifest_key(rid), Body=json.dumps(manifest).encode())
    return {"cdr": cdr_key, "rec": rec_key}


def test_candidate_dates_come_from_the_epoch_in_the_call_id():
    assert candidate_dates(CALL) == [date(2026, 11, 19), DAY, date(2026, 11, 21)]
    assert candidate_dates("abc-1") == []


def test_find_locates_rows_and_recordings_without_listing_the_recordings_prefix(aws, monkeypatch):
    keys = _export(aws)
    s3 = boto3.client("s3")
    listed: list[str] = []
    original = s3.list_objects_v2

    def spy(**kwargs):
        listed.append(kwargs["Prefix"])
        return original(**kwargs)

    target = cli_target(aws)
    monkeypatch.setattr(target, "client", lambda service: s3 if service == "s3" else boto3.client(service))
    monkeypatch.setattr(s3, "list_objects_v2", spy)
    result = run_find(target, CALL, None, None)
    assert result.ok
    (place,) = result.data["places"]
    assert place["call_date"] == "2026-11-20"
    assert [(r["key"], r["line"], r["row"]["call_id_num"]) for r in place["cdr"]] == [
        (keys["cdr"], 2, "1"),
        (keys["cdr"], 3, "-1"),
    ]
    (rec,) = place["recordings"]
    assert (rec["key"], rec["size"], rec["sha256"], rec["response_id"]) == (keys["rec"], len(WAV), SHA, "rid1")
    assert rec["rec_item"]["status"] == "DONE"
    assert all(p.rstrip("/").count("/") >= 2 for p in listed), listed  # every listing is inside a day partition
    assert f"recordings/account_id=acct001/call_date=2026-11-20/{CALL}/" in listed
    assert "cdr/account_id=acct001/call_date=2026-11-20/rid1-" in listed


def test_find_says_what_to_pass_when_a_call_cannot_be_dated_or_is_not_there(aws):
    target = cli_target(aws)
    with pytest.raises(click.BadParameter, match="pass --date"):
        run_find(target, "abc-1", None, None)
    with pytest.raises(click.BadParameter, match="not a CC-FS call id"):
        run_find(target, "../etc", None, None)
    result = run_find(target, "abc-1", DAY, "acct001")
    assert not result.ok and result.checks[0].detail == "not found on 2026-11-20"


def test_verify_passes_when_every_object_matches_its_manifest(aws):
    _export(aws)
    result = run_verify(cli_target(aws), DAY, None)
    assert result.ok, result.data
    assert result.checks[0].detail == "1 manifest(s), 2 object(s) checked, 0 gap(s)"


def test_verify_lists_every_gap(aws):
    keys = _export(aws)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=aws.bucket, Key=keys["cdr"], Body=_cdr((CALL, "1")))  # two rows lost
    s3.put_object(Bucket=aws.bucket, Key=keys["rec"], Body=WAV[:-1], Metadata={"sha256": "0" * 64})
    put_window(aws.jobs_table, "acct001", "2026-11-20 11:00:00", "2026-11-20 11:59:59", response_id="rid2")
    put_job(aws.jobs_table, "rid2", job_status="DOWNLOADING")
    put_window(aws.jobs_table, "acct001", "2026-11-20 12:00:00", "2026-11-20 12:59:59", no_data=True)
    put_window(aws.jobs_table, "acct001", "2026-11-21 00:00:00", "2026-11-21 00:59:59", response_id="other-day")
    result = run_verify(cli_target(aws), DAY, "acct001")
    assert not result.ok
    gaps = {(g["response_id"], g["key"], g["problem"]) for g in result.data["gaps"]}
    assert gaps == {
        ("rid1", keys["cdr"], "1 rows != manifest 3"),
        ("rid1", "cdr", "1 cdr rows in the files != counts.cdr_rows 3"),
        ("rid1", keys["rec"], f"size {len(WAV) - 1} != manifest {len(WAV)}"),
        ("rid1", keys["rec"], f"sha256 metadata {'0' * 64} != manifest {SHA}"),
        ("rid2", "window 2026-11-20 11:00:00 .. 2026-11-20 11:59:59", "job DOWNLOADING"),
    }
    assert any(line.startswith("GAP acct001 job rid2: window") for line in result.lines)


def test_verify_sees_an_object_replaced_with_the_same_size_and_metadata(aws):
    keys = _export(aws)
    s3 = boto3.client("s3")
    meta = s3.head_object(Bucket=aws.bucket, Key=keys["rec"])["Metadata"]
    s3.put_object(Bucket=aws.bucket, Key=keys["rec"], Body=b"X" + WAV[1:], Metadata=meta, ChecksumAlgorithm="SHA256")
    result = run_verify(cli_target(aws), DAY, None)
    assert [g["problem"] for g in result.data["gaps"]] == ["S3 SHA-256 checksum differs from the manifest's sha256"]
    s3.delete_object(Bucket=aws.bucket, Key=layout.manifest_key("rid1"))
    result = run_verify(cli_target(aws), DAY, None)
    assert [g["problem"] for g in result.data["gaps"]] == ["manifest missing"]
