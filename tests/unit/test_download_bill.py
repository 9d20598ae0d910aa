"""Download function, bill messages: ZIP → raw/, cdr/, recording_index/, recording fan-out, manifest.

CC-FS is ``tests.fakes.ccfs.FakeCcfs`` answering ``download_bill_file``; the ZIPs are real, built
with zipfile (``tests.unit.bill_helpers``) and read by the real ``ccfs.bills.BillFile``.
AWS is moto (tests/conftest.py ``aws``).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ccfs.columns import RECORD_COLUMNS
from ccfs.errors import CcfsNotFound, CcfsTransientError
from exporter.bill_fanout import send_batches
from tests.conftest import load_handler, sqs_messages
from tests.fakes.ccfs import FakeCcfs
from tests.fakes.queues import FakeSqs
from tests.helpers import fast_clients, seed_job
from tests.unit.bill_helpers import (
    BILL,
    CDR_1,
    CDR_2,
    CDR_HEADER,
    INDEX_1,
    PREFIX,
    REC_A1,
    REC_A2,
    REC_B,
    RID,
    bill_event,
    cdr_row,
    csv_bytes,
    emitted,
    happy_zip,
    idx_row,
    job,
    manifest,
    parse_csv,
    s3_objects,
    zip_bytes,
)

ROOT = Path(__file__).resolve().parents[2]


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


def test_bill_happy_path(aws, handler, lambda_context, capsys):
    seed_job(aws, "READY", tenant="_all")
    data = happy_zip()
    fake = handler.use(FakeCcfs(data))
    body = {"responseId": RID, "billFileName": BILL, "tenant": "_all"}

    result = handler.lambda_handler(bill_event(aws, body), lambda_context)

    assert result == {"batchItemFailures": []}
    assert fake.bill_calls == [BILL]
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
    assert fake.bill_calls == [BILL]
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
    assert len(fake.bill_calls) == 2
    assert job(aws)["recordings_total"] == 3
    assert len(sqs_messages(aws.recording_queue_url)) == 3


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED", "SUPERSEDED"])
def test_finished_job_is_skipped(aws, handler, lambda_context, status):
    seed_job(aws, status)
    fake = handler.use(FakeCcfs(happy_zip()))
    event = bill_event(aws, {"responseId": RID, "billFileName": BILL, "tenant": "acct001"})
    assert handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    assert fake.bill_calls == [] and s3_objects(aws) == {}
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
    assert fake.bill_calls == [BILL]


def test_event_file_is_a_valid_bill_message():
    event = json.loads((ROOT / "events" / "bill_message.json").read_text())
    body = json.loads(event["Records"][0]["body"])
    assert set(body) == {"responseId", "billFileName", "tenant", "accountId"}
    assert body["billFileName"] == f"20180702_{body['responseId']}.zip"
    assert ":aicc-export-BillQueue-" in event["Records"][0]["eventSourceARN"]


def test_send_batches_resends_failed_entries_only():
    sqs = FakeSqs(fail_first=2)
    assert send_batches(sqs, "q", (f"m{i}" for i in range(12)), sleep=lambda _s: None) == 12
    assert sqs.batches == [[str(i) for i in range(10)], ["0", "1"], ["0", "1"]]
    assert sorted(sqs.bodies["q"]) == sorted(f"m{i}" for i in range(12))  # each body once


def test_send_batches_gives_up_loudly():
    sqs = FakeSqs(always_fail=True)
    with pytest.raises(RuntimeError, match="still failing"):
        send_batches(sqs, "q", ["a"], attempts=3, sleep=lambda _s: None)
    assert sqs.batches == [["0"], ["0"], ["0"]] and sqs.bodies == {}


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
