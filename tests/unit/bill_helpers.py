"""The download handler's bill messages, for the tests that drive it: rows, ZIPs, events, what was
written (one copy: ``test_download_bill`` and ``test_hardening_download`` import it)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ccfs.columns import CDR_COLUMNS, RECORD_COLUMNS
from exporter import aws as exporter_aws
from exporter.jobs.keys import job_key
from tests.conftest import emf_totals

ROOT = Path(__file__).resolve().parents[2]

RID = "9239cb50a8384bb0ab503441bf089446"


BILL = f"20180702_{RID}.zip"


PREFIX = "20180702101500123456"


CDR_HEADER = [*CDR_COLUMNS, "leave_reason"]  # a column past the documented 21: kept


def cdr_row(account: str, call_id: str, begin: str, leg: str = "1") -> list[str]:
    values = dict.fromkeys(CDR_HEADER, "")
    values.update(
        developer="dev001",
        account_id=account,
        call_id=call_id,
        caller_no="13800000001",
        callee_no="4008001",
        call_begin=begin,
        call_end=begin[:-2] + "59",
        call_id_num=leg,
        leave_reason="0",
    )
    return list(values.values())


def idx_row(account: str, call_id: str, begin: str, file_name: str, media: str = "5") -> list[str]:
    values = dict.fromkeys(RECORD_COLUMNS, "")
    values.update(
        developer="dev001",
        account_id=account,
        cc_id="1",
        call_id=call_id,
        call_begin=begin,
        call_end=begin[:-2] + "59",
        file_name=file_name,
        original_file_name=file_name.replace("/", "\\"),
        media_type=media,
    )
    return list(values.values())


def csv_bytes(header: list[str] | None, rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def parse_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


def queue_arn(queue_url: str) -> str:
    return f"arn:aws:sqs:us-east-1:123456789012:{queue_url.rsplit('/', 1)[-1]}"


def bill_event(names: Any, body: dict[str, Any] | None = None, arn: str | None = None) -> dict[str, Any]:
    event = json.loads((ROOT / "events" / "bill_message.json").read_text())
    record = event["Records"][0]
    if body is not None:
        record["body"] = json.dumps(body)
    record["eventSourceARN"] = arn or queue_arn(names.bill_queue_url)
    return event


def s3_objects(names: Any, prefix: str = "") -> dict[str, bytes]:
    s3 = exporter_aws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=names.bucket, Prefix=prefix).get("Contents", [])]
    return {k: s3.get_object(Bucket=names.bucket, Key=k)["Body"].read() for k in keys}


def job(names: Any) -> dict[str, Any]:
    return (
        exporter_aws.resource("dynamodb")
        .Table(names.jobs_table)
        .get_item(Key=job_key(RID), ConsistentRead=True)["Item"]
    )


def manifest(names: Any) -> dict[str, Any]:
    return json.loads(s3_objects(names, f"manifests/{RID}.json")[f"manifests/{RID}.json"])


def emitted(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    """Sum of every EMF metric printed so far."""
    return emf_totals(capsys.readouterr().out)


CDR_1 = [
    cdr_row("acct001", "1530497000-101", "2018-07-02 09:15:02", "1"),
    cdr_row("acct002", "1530497000-102", "2018-07-02 23:59:10", "-1"),
    cdr_row("acct001", "1530497000-103", "2018-07-03 00:00:01", "-1"),
]


CDR_2 = [
    cdr_row("acct001", "1530497000-101", "2018-07-03 08:00:00", "-1"),
    cdr_row("acct002", "1530497000-104", "2018-07-03 10:00:00", "-1"),
]


REC_A1 = "/10/1/record/100/20180702/0903380.wav"


REC_A2 = "/10/1/record/100/20180702/0903379.wav"


REC_B = "/10/1/record/100/20180703/0903500.wav"


INDEX_1 = [
    idx_row("acct001", "1530497000-101", "2018-07-02 09:18:50", REC_A1),  # second by call_begin
    idx_row("acct001", "1530497000-101", "2018-07-02 09:15:02", REC_A2),  # first by call_begin
    idx_row("acct002", "1530497000-104", "2018-07-03 10:00:00", REC_B),
    idx_row("acct002", "1530497000-105", "2018-07-03 11:00:00", "", media="1"),  # chat: no recording
]


def happy_zip() -> bytes:
    return zip_bytes(
        {
            f"{PREFIX}_call_1.csv": csv_bytes(CDR_HEADER, CDR_1),
            f"{PREFIX}_call_2.csv": csv_bytes(CDR_HEADER, CDR_2),
            f"{PREFIX}_record_1.csv": csv_bytes(RECORD_COLUMNS, INDEX_1),
        }
    )
