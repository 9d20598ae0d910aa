"""Download function, bill messages: ZIP → raw/, cdr/, recording_index/, recording fan-out, manifest.

CC-FS is a fake with ``download_bill_file``; the ZIPs are real, built here with zipfile and read by
the real ``ccfs.bills.BillFile``. AWS is moto (tests/conftest.py ``aws``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from ccfs.columns import CDR_COLUMNS, RECORD_COLUMNS
from ccfs.errors import CcfsNotFound, CcfsTransientError
from exporter import aws as exporter_aws
from exporter.bill_export import send_batches
from exporter.jobs.keys import job_key
from tests.conftest import emf_totals, load_handler, sqs_messages
from tests.unit.test_progress import fast_clients, seed_job

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


class FakeCcfs:
    """download_bill_file only; ``replies`` are bytes or exceptions, one per call (last repeats)."""

    def __init__(self, *replies: bytes | Exception) -> None:
        self.replies = list(replies)
        self.calls: list[str] = []

    def download_bill_file(self, bill_file_name: str, sink: BinaryIO) -> int:
        self.calls.append(bill_file_name)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        sink.write(reply)
        return len(reply)


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


@pytest.fixture
def handler(aws, monkeypatch):
    fast_clients(monkeypatch)
    module = load_handler("download")
    module.fake = None

    def use(fake: Any) -> Any:
        monkeypatch.setattr(module, "ccfs_client", lambda settings, tenant: fake)
        return fake

    module.use = use
    return module


# ---------------------------------------------------------------------------- the bill

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


def test_bill_happy_path(aws, handler, lambda_context, capsys):
    seed_job(aws, "READY", tenant="_all")
    data = happy_zip()
    fake = handler.use(FakeCcfs(data))
    body = {"responseId": RID, "billFileName": BILL, "tenant": "_all"}

    result = handler.lambda_handler(bill_event(aws, body), lambda_context)

    assert result == {"batchItemFailures": []}
    assert fake.calls == [BILL]
    objects = s3_objects(aws)
    cdr = "cdr/account_id={}/call_date={}/" + RID + "-{}.csv"
    idx = "recording_index/account_id={}/call_date={}/" + RID + "-{}.csv"
    expected = {
        f"raw/account_id=_all/bill_date=2018-07-02/{BILL}": None,
        cdr.format("acct001", "2018-07-02", 1): [CDR_HEADER, CDR_1[0]],
        cdr.format("acct002", "2018-07-02", 1): [CDR_HEADER, CDR_1[1]],
        cdr.format("acct001", "2018-07-03", 1): [CDR_HEADER, CDR_1[2]],
        cdr.format("acct001", "2018-07-03", 2): [CDR_HEADER, CDR_2[0]],
        cdr.format("acct002", "2018-07-03", 2): [CDR_HEADER, CDR_2[1]],
        idx.format("acct001", "2018-07-02", 1): [list(RECORD_COLUMNS), INDEX_1[0], INDEX_1[1]],
        idx.format("acct002", "2018-07-03", 1): [list(RECORD_COLUMNS), INDEX_1[2], INDEX_1[3]],
        f"manifests/{RID}.json": None,
    }
    assert set(objects) == set(expected)
    for key, rows in expected.items():
        if rows is not None:
            assert parse_csv(objects[key]) == rows, key
            assert objects[key] == csv_bytes(rows[0], rows[1:])  # byte for byte what CC-FS sent
    assert objects[f"raw/account_id=_all/bill_date=2018-07-02/{BILL}"] == data

    messages = [json.loads(m["Body"]) for m in sqs_messages(aws.recording_queue_url)]
    by_file = {m["fileName"]: m for m in messages}
    assert len(messages) == 3 and set(by_file) == {REC_A1, REC_A2, REC_B}
    assert (by_file[REC_A2]["ordinal"], by_file[REC_A2]["count"]) == (1, 2)
    assert (by_file[REC_A1]["ordinal"], by_file[REC_A1]["count"]) == (2, 2)
    assert (by_file[REC_B]["ordinal"], by_file[REC_B]["count"]) == (1, 1)
    assert by_file[REC_B] == {
        "responseId": RID,
        "tenant": "_all",
        "accountId": "acct002",
        "callId": "1530497000-104",
        "callBegin": "2018-07-03 10:00:00",
        "callEnd": "2018-07-03 10:00:59",
        "fileName": REC_B,
        "originalFileName": REC_B.replace("/", "\\"),
        "callDate": "2018-07-03",
        "ordinal": 1,
        "count": 1,
        "ordinalCertain": True,
        "urlOrdinal": 1,
        "urlCount": 1,
        "row": dict(zip(RECORD_COLUMNS, INDEX_1[2], strict=True)),
    }

    item = job(aws)
    assert item["job_status"] == "DOWNLOADING"
    assert (item["cdr_rows"], item["index_rows"], item["bad_rows"], item["recordings_total"]) == (5, 4, 0, 3)
    assert item["recordings_done"] == 0 and item["unexpected_entries"] == []
    assert sorted(item["cdr_keys"]) == sorted(k for k in expected if k.startswith("cdr/"))

    doc = manifest(aws)
    assert doc["status"] == "DOWNLOADING" and doc["responseId"] == RID
    assert doc["raw"] == {
        "key": f"raw/account_id=_all/bill_date=2018-07-02/{BILL}",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert {c["key"]: c["rows"] for c in doc["cdr"]} == {k: len(v) - 1 for k, v in expected.items() if "cdr/" in k}
    assert sum(i["rows"] for i in doc["recording_index"]) == 4
    assert doc["bad_rows"] == [] and doc["counts"]["recordings_total"] == 3

    metrics = emitted(capsys)
    assert metrics["BillRows"] == 9 and metrics["BadRows"] == 0
    assert metrics["BillEntriesUnrecognised"] == 0 and metrics["BillEntriesEmpty"] == 0
    assert doc["unexpected_entries"] == [] and doc["empty_entries"] == []


def test_plain_names_gb18030_and_headerless_entries_land_as_utf8_with_entry_number_0(
    aws, handler, lambda_context, capsys
):
    seed_job(aws, "READY", tenant="_all")
    cdr = [cdr_row("acct001", "1530497000-101", "2018-07-02 09:15:02", "-1")]
    cdr[0][-1] = "客户挂机"  # the trailing column, in GB18030
    index = [INDEX_1[2]]
    data = zip_bytes(
        {
            f"{PREFIX}_call.csv": csv_bytes(CDR_HEADER, cdr).decode().encode("gb18030"),
            f"{PREFIX}_record.CSV": b"\xef\xbb\xbf" + csv_bytes(None, index),  # BOM, no header row
        }
    )
    handler.use(FakeCcfs(data))
    body = {"responseId": RID, "billFileName": BILL, "tenant": "_all"}
    assert handler.lambda_handler(bill_event(aws, body), lambda_context) == {"batchItemFailures": []}

    objects = s3_objects(aws)
    cdr_key = f"cdr/account_id=acct001/call_date=2018-07-02/{RID}-0.csv"
    idx_key = f"recording_index/account_id=acct002/call_date=2018-07-03/{RID}-0.csv"
    assert objects[cdr_key] == csv_bytes(CDR_HEADER, cdr)  # UTF-8, whatever the bill's encoding
    assert "客户挂机" in objects[cdr_key].decode("utf-8")
    assert objects[idx_key] == csv_bytes(list(RECORD_COLUMNS), index)
    item = job(aws)
    assert (item["cdr_rows"], item["index_rows"], item["bad_rows"]) == (1, 1, 0)
    assert item["unexpected_entries"] == [] and item["empty_entries"] == []


def test_unrecognised_and_empty_entries_are_counted_listed_and_alarmed(aws, handler, lambda_context, capsys):
    seed_job(aws, "READY", tenant="_all")
    empty = [f"{PREFIX}_call_2.csv", f"{PREFIX}_record_1.csv"]
    strays = ["readme.txt", f"{PREFIX}_CALL_3.csv"]
    entries = {
        f"{PREFIX}_call_1.csv": csv_bytes(CDR_HEADER, CDR_1),
        empty[0]: csv_bytes(CDR_HEADER, []),
        empty[1]: b"",
        **dict.fromkeys(strays, csv_bytes(CDR_HEADER, CDR_2)),
    }
    handler.use(FakeCcfs(zip_bytes(entries)))
    body = {"responseId": RID, "billFileName": BILL, "tenant": "_all"}
    assert handler.lambda_handler(bill_event(aws, body), lambda_context) == {"batchItemFailures": []}

    item = job(aws)
    assert item["cdr_rows"] == len(CDR_1)
    assert sorted(item["unexpected_entries"]) == sorted(strays)
    assert sorted(item["empty_entries"]) == sorted(empty)
    doc = manifest(aws)
    # nothing to copy; the job is done, but rows were not exported: PARTIAL (alarmed), never COMPLETED
    assert doc["status"] == item["job_status"] == "PARTIAL"
    assert sorted(doc["unexpected_entries"]) == sorted(strays)
    assert sorted(doc["empty_entries"]) == sorted(empty)
    metrics = emitted(capsys)
    assert (metrics["BillEntriesUnrecognised"], metrics["BillEntriesEmpty"]) == (2, 2)
    assert metrics["JobsPartial"] == 1 and "JobsCompleted" not in metrics


def test_duplicate_bill_message_does_nothing_twice(aws, handler, lambda_context):
    seed_job(aws, "READY")
    fake = handler.use(FakeCcfs(happy_zip()))
    body = {"responseId": RID, "billFileName": BILL, "tenant": "acct001"}
    handler.lambda_handler(bill_event(aws, body), lambda_context)
    duplicate = bill_event(aws, body)
    duplicate["Records"][0]["messageId"] = "another-delivery"
    assert handler.lambda_handler(duplicate, lambda_context) == {"batchItemFailures": []}
    assert fake.calls == [BILL]
    assert len(sqs_messages(aws.recording_queue_url)) == 3


def test_retry_after_a_transient_failure_resumes(aws, handler, lambda_context):
    """A record that raised is retryable: Powertools deleted its in-progress idempotency record. The
    invocation itself succeeds and reports the bill failed: one transient failure is SQS's to retry,
    not a function error for the DownloadErrors alarm (a raised batch would be one)."""
    seed_job(aws, "READY")
    fake = handler.use(FakeCcfs(CcfsTransientError("downloadBillFile", "HTTP 503", "503"), happy_zip()))
    event = bill_event(aws, {"responseId": RID, "billFileName": BILL, "tenant": "acct001"})
    # reported, not raised: no function error
    failed = handler.lambda_handler(event, lambda_context)["batchItemFailures"]
    assert len(failed) == 1
    assert job(aws)["job_status"] == "DOWNLOADING"
    assert s3_objects(aws) == {}
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert len(fake.calls) == 2
    assert job(aws)["recordings_total"] == 3
    assert len(sqs_messages(aws.recording_queue_url)) == 3


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED", "SUPERSEDED"])
def test_finished_job_is_skipped(aws, handler, lambda_context, status):
    seed_job(aws, status)
    fake = handler.use(FakeCcfs(happy_zip()))
    event = bill_event(aws, {"responseId": RID, "billFileName": BILL, "tenant": "acct001"})
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert fake.calls == [] and s3_objects(aws) == {}
    assert job(aws)["job_status"] == status


def test_corrupt_zip_fails_the_job_and_keeps_the_raw_file(aws, handler, lambda_context, capsys):
    seed_job(aws, "READY")
    garbage = b"PK\x03\x04 this is not really a zip file"
    handler.use(FakeCcfs(garbage))
    event = bill_event(aws, {"responseId": RID, "billFileName": BILL, "tenant": "acct001"})
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}  # consumed
    item = job(aws)
    assert item["job_status"] == "FAILED" and item["error"].startswith("bill ZIP unusable")
    objects = s3_objects(aws)
    assert set(objects) == {f"raw/account_id=acct001/bill_date=2018-07-02/{BILL}", f"manifests/{RID}.json"}
    assert objects[f"raw/account_id=acct001/bill_date=2018-07-02/{BILL}"] == garbage
    doc = manifest(aws)
    assert doc["status"] == "FAILED" and "not a readable ZIP" in doc["error"]
    assert sqs_messages(aws.recording_queue_url) == []
    assert emitted(capsys)["JobsFailed"] == 1


def test_crc_error_in_a_later_entry_uploads_no_partition(aws, handler, lambda_context):
    """Rows of entry 1 were read before entry 2's CRC failed: still nothing under cdr/."""
    seed_job(aws, "READY")
    second = csv_bytes(CDR_HEADER, CDR_2)
    data = bytearray(
        zip_bytes(
            {f"{PREFIX}_call_1.csv": csv_bytes(CDR_HEADER, CDR_1), f"{PREFIX}_call_2.csv": second},
            compression=zipfile.ZIP_STORED,
        )
    )
    at = bytes(data).index(b"1530497000-104")
    data[at] = ord("9")  # same length, different bytes: only the CRC notices
    handler.use(FakeCcfs(bytes(data)))
    event = bill_event(aws, {"responseId": RID, "billFileName": BILL, "tenant": "acct001"})
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert job(aws)["job_status"] == "FAILED" and "CRC" in job(aws)["error"]
    assert set(s3_objects(aws)) == {f"raw/account_id=acct001/bill_date=2018-07-02/{BILL}", f"manifests/{RID}.json"}


def test_bill_not_found_fails_the_job(aws, handler, lambda_context):
    seed_job(aws, "READY")
    handler.use(FakeCcfs(CcfsNotFound("downloadBillFile", "no data found", "0300012")))
    event = bill_event(aws, {"responseId": RID, "billFileName": BILL, "tenant": "acct001"})
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert job(aws)["job_status"] == "FAILED"
    assert manifest(aws)["status"] == "FAILED"


def test_malformed_rows_are_counted_listed_and_kept_out(aws, handler, lambda_context, capsys):
    seed_job(aws, "READY")
    short = cdr_row("acct001", "1530497000-202", "2018-07-02 10:00:00")[:5]
    unsafe = cdr_row("acct/../x", "1530497000-204", "2018-07-02 10:00:00")
    unsafe_index = idx_row("acct001", "1530497000-205/..", "2018-07-02 10:00:00", "/r/x.wav")
    cdr_entry = csv_bytes(CDR_HEADER, [CDR_1[0], short, unsafe])
    index_entry = csv_bytes(RECORD_COLUMNS, [INDEX_1[1], unsafe_index])
    handler.use(FakeCcfs(zip_bytes({f"{PREFIX}_call_1.csv": cdr_entry, f"{PREFIX}_record_1.csv": index_entry})))
    event = bill_event(aws, {"responseId": RID, "billFileName": BILL, "tenant": "acct001"})
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}

    item = job(aws)
    assert (item["cdr_rows"], item["index_rows"], item["bad_rows"], item["recordings_total"]) == (1, 1, 3, 1)
    objects = s3_objects(aws)
    assert parse_csv(objects[f"cdr/account_id=acct001/call_date=2018-07-02/{RID}-1.csv"]) == [CDR_HEADER, CDR_1[0]]
    index_key = f"recording_index/account_id=acct001/call_date=2018-07-02/{RID}-1.csv"
    assert parse_csv(objects[index_key]) == [list(RECORD_COLUMNS), INDEX_1[1]]
    assert not any("1530497000-20" in v.decode(errors="replace") for k, v in objects.items() if k.endswith(".csv"))
    listed = {(b["file"], b["line"]) for b in manifest(aws)["bad_rows"]}
    assert listed == {(f"{PREFIX}_call_1.csv", 3), (f"{PREFIX}_call_1.csv", 4), (f"{PREFIX}_record_1.csv", 3)}
    reasons = {b["line"]: b["reason"] for b in manifest(aws)["bad_rows"] if b["file"].endswith("_call_1.csv")}
    assert "account_id" in reasons[4]
    assert emitted(capsys)["BadRows"] == 3


def test_rows_without_a_valid_time_are_kept_in_the_window_partition(aws, handler, lambda_context):
    """Abandoned legs may carry no call_begin: they are data, so they are kept (dated by the job's
    window, 2018-07-02 here) and counted, never dropped."""
    seed_job(aws, "READY")
    no_time = cdr_row("acct001", "1530497000-201", "2018/07/02 10:00:00")  # call_begin and call_end unparseable
    wait_only = dict(zip(CDR_HEADER, cdr_row("acct001", "1530497000-206", ""), strict=True))
    wait_only["wait_begin"] = "2018-07-01 23:59:58"  # dated by wait_begin when call_begin is empty
    wait_only_row = list(wait_only.values())
    bad_index = idx_row("acct001", "1530497000-203", "02-07-2018 10:00:00", "/r/1.wav")
    cdr_entry = csv_bytes(CDR_HEADER, [CDR_1[0], no_time, wait_only_row])
    index_entry = csv_bytes(RECORD_COLUMNS, [INDEX_1[1], bad_index])
    handler.use(FakeCcfs(zip_bytes({f"{PREFIX}_call_1.csv": cdr_entry, f"{PREFIX}_record_1.csv": index_entry})))
    event = bill_event(aws, {"responseId": RID, "billFileName": BILL, "tenant": "acct001"})
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}

    item = job(aws)
    assert (item["cdr_rows"], item["index_rows"], item["bad_rows"], item["undated_rows"]) == (3, 2, 0, 2)
    objects = s3_objects(aws)
    day = f"cdr/account_id=acct001/call_date=2018-07-02/{RID}-1.csv"
    assert parse_csv(objects[day]) == [CDR_HEADER, CDR_1[0], no_time]
    assert parse_csv(objects[f"cdr/account_id=acct001/call_date=2018-07-01/{RID}-1.csv"]) == [CDR_HEADER, wait_only_row]
    index_key = f"recording_index/account_id=acct001/call_date=2018-07-02/{RID}-1.csv"
    assert parse_csv(objects[index_key]) == [list(RECORD_COLUMNS), INDEX_1[1], bad_index]
    assert manifest(aws)["undated_rows"] == 2
    bodies = [json.loads(m["Body"]) for m in sqs_messages(aws.recording_queue_url)]
    undated = next(b for b in bodies if b["callId"] == "1530497000-203")
    assert undated["callBegin"] == "2018-07-02 09:00:00"  # the window start: CC-FS is asked over the window


def test_zero_recordings_completes_the_job(aws, handler, lambda_context, capsys):
    seed_job(aws, "READY")
    index_entry = csv_bytes(RECORD_COLUMNS, [INDEX_1[3]])  # a chat row: no file_name
    handler.use(
        FakeCcfs(
            zip_bytes({f"{PREFIX}_call_1.csv": csv_bytes(CDR_HEADER, CDR_1), f"{PREFIX}_record_1.csv": index_entry})
        )
    )
    event = bill_event(aws, {"responseId": RID, "billFileName": BILL, "tenant": "acct001"})
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert job(aws)["job_status"] == "COMPLETED" and job(aws)["recordings_total"] == 0
    doc = manifest(aws)
    assert doc["status"] == "COMPLETED" and doc["recordings"] == [] and doc["failures"] == []
    assert len(doc["cdr"]) == 3
    assert sqs_messages(aws.recording_queue_url) == []
    assert emitted(capsys)["JobsCompleted"] == 1


def test_unknown_queue_falls_back_to_the_message_shape(aws, handler, lambda_context):
    seed_job(aws, "READY")
    fake = handler.use(FakeCcfs(happy_zip()))
    event = bill_event(
        aws, {"responseId": RID, "billFileName": BILL, "tenant": "acct001"}, arn="arn:aws:sqs:us-east-1:1:other"
    )
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert fake.calls == [BILL]


def test_event_file_is_a_valid_bill_message():
    event = json.loads((ROOT / "events" / "bill_message.json").read_text())
    body = json.loads(event["Records"][0]["body"])
    assert set(body) == {"responseId", "billFileName", "tenant", "accountId"}
    assert body["billFileName"] == f"20180702_{body['responseId']}.zip"
    assert ":aicc-export-BillQueue-" in event["Records"][0]["eventSourceARN"]


class FlakySqs:
    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.calls: list[list[str]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append([e["Id"] for e in Entries])
        failed = Entries[: self.fail_first]
        self.fail_first = 0
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries if e not in failed],
            "Failed": [{"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in failed],
        }


def test_send_batches_resends_failed_entries_only():
    sqs = FlakySqs(fail_first=2)
    assert send_batches(sqs, "q", (f"m{i}" for i in range(12)), sleep=lambda _s: None) == 12
    assert sqs.calls == [[str(i) for i in range(10)], ["0", "1"], ["0", "1"]]


def test_send_batches_gives_up_loudly():
    class AlwaysFailing(FlakySqs):
        def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
            self.fail_first = len(Entries)
            return super().send_message_batch(QueueUrl, Entries)

    with pytest.raises(RuntimeError, match="still failing"):
        send_batches(AlwaysFailing(0), "q", ["a"], attempts=3, sleep=lambda _s: None)


def test_recordings_of_one_call_sharing_a_file_name_in_two_directories_are_two_recordings(aws, handler, lambda_context):
    """One file per agent: ``…/13533/0903379.wav`` and ``…/13534/0903379.wav`` are two recordings
    (each its own message and key); the very same path listed twice is one."""
    seed_job(aws, "READY")
    first, second = "/10/1/record/100/13533/0903379.wav", "/10/1/record/100/13534/0903379.wav"
    rows = [
        idx_row("acct001", "1530497000-101", "2018-07-02 09:15:02", first),
        idx_row("acct001", "1530497000-101", "2018-07-02 09:16:02", second),
        idx_row("acct001", "1530497000-101", "2018-07-02 09:15:02", first),  # listed twice: one recording
        idx_row("acct001", "1530497000-102", "2018-07-02 10:00:00", "/10/1/record/100/13533/0903400.wav"),
    ]
    handler.use(
        FakeCcfs(
            zip_bytes(
                {
                    f"{PREFIX}_call_1.csv": csv_bytes(CDR_HEADER, CDR_1),
                    f"{PREFIX}_record_1.csv": csv_bytes(RECORD_COLUMNS, rows),
                }
            )
        )
    )
    event = bill_event(aws, {"responseId": RID, "billFileName": BILL, "tenant": "acct001"})
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert job(aws)["recordings_total"] == 3
    messages = {m["fileName"]: m for m in (json.loads(s["Body"]) for s in sqs_messages(aws.recording_queue_url))}
    assert sorted(messages) == sorted([first, second, "/10/1/record/100/13533/0903400.wav"])
    # the two that share a stem get distinct key names: stem, "_", 8 hex of the path's SHA-256
    for path in (first, second):
        assert messages[path]["keyName"] == "0903379_" + hashlib.sha256(path.encode()).hexdigest()[:8]
    assert "keyName" not in messages["/10/1/record/100/13533/0903400.wav"]  # a unique stem keeps its name

    from exporter.messages import RecordingMessage

    keys = {RecordingMessage.model_validate(m).keys()[0] for m in messages.values()}
    assert len(keys) == 3  # one S3 key per recording
