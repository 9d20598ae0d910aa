"""Download hardening (issue 6): hostile or broken payloads through the real download handler.

``tests/unit/test_ccfs_bills.py`` proves the *reader* refuses zip bombs, zip-slip names, truncated
and corrupt archives and bounds bad rows; ``test_download_bill.py`` / ``test_download_recording.py``
cover a corrupt ZIP, a CRC error, malformed rows and truncated recording bodies. This file closes
the handler-level gaps:

* every kind of hostile bill (ratio bomb, total-size bomb, an entry inflating past its declared
  size, zip-slip names, truncated at several points) ends the same way: message consumed, job
  FAILED and alarmed (JobsFailed), a FAILED manifest naming the problem, the raw ZIP kept, and
  nothing at all under ``cdr/``, ``recording_index/``, ``recordings/`` or ``_staging/``, no
  recording message, no key derived from an entry name;
* unexpected entries are ignored and reported in the manifest and on the job;
* over-long fields, NULs, too many fields and a never-closed quote are kept out of the
  partitions, counted and listed by file and line, without their content;
* a recording body cut mid-stream is retried and, at *every* S3 call of both attempts, the
  bucket never shows a partial object under ``recordings/``; afterwards no staging object and no
  multipart upload is left; a body longer than declared, or a broken fallback download, is
  treated the same way.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import random
import threading
import warnings
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from boto3.s3.transfer import TransferConfig

from ccfs.bills import BillFile, BillLimits
from ccfs.columns import RECORD_COLUMNS
from ccfs.errors import CcfsNotFound, CcfsTransientError
from exporter import aws as exporter_aws
from exporter import bill_export, recordings
from tests.conftest import emf_totals, load_handler, sqs_messages
from tests.fakes.ccfs import FakeCcfs
from tests.helpers import fast_clients, seed_job
from tests.unit import bill_helpers as bills_t
from tests.unit import recording_helpers as recs_t
from tests.unit.zipfactory import patch_sizes

RID = bills_t.RID
BILL = bills_t.BILL
PREFIX = bills_t.PREFIX
CALL_1 = f"{PREFIX}_call_1.csv"
CALL_2 = f"{PREFIX}_call_2.csv"
RECORD_1 = f"{PREFIX}_record_1.csv"
RAW_KEY = f"raw/account_id=acct001/bill_date=2018-07-02/{BILL}"
MANIFEST_KEY = f"manifests/{RID}.json"
PHONE = "13800000001"  # the caller number in every test row: personal data, never in a reason
MiB = 1024 * 1024


@pytest.fixture
def download(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    fast_clients(monkeypatch)
    module = load_handler("download")

    def use(fake: Any) -> Any:
        monkeypatch.setattr(module, "ccfs_client", lambda settings, tenant: fake)
        monkeypatch.setattr(module, "recording_http", lambda settings: fake.http)
        return fake

    module.use = use
    return module


def s3() -> Any:
    return exporter_aws.client("s3")


def keys(names: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    for page in s3().get_paginator("list_objects_v2").paginate(Bucket=names.bucket, Prefix=prefix):
        out.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(out)


def bill_message(names: Any) -> dict[str, Any]:
    return bills_t.bill_event(names, {"responseId": RID, "billFileName": BILL, "tenant": "acct001"})


def good_entries() -> dict[str, bytes]:
    return {
        CALL_1: bills_t.csv_bytes(bills_t.CDR_HEADER, bills_t.CDR_1),
        CALL_2: bills_t.csv_bytes(bills_t.CDR_HEADER, bills_t.CDR_2),
        RECORD_1: bills_t.csv_bytes(list(RECORD_COLUMNS), bills_t.INDEX_1),
    }


def raw_zip(entries: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """Entry names verbatim (zipfile would not stop us writing '../x' or a duplicate)."""
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w", compression=compression) as zf:
        warnings.simplefilter("ignore")  # "Duplicate name": on purpose
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2018, 7, 2, 10, 15, 0))
            info.compress_type = compression
            zf.writestr(info, data)
    return out.getvalue()


# ---------------------------------------------------------------------------- hostile bills


def _ratio_bomb() -> bytes:
    header = ",".join(bills_t.CDR_HEADER).encode() + b"\r\n"
    return raw_zip([(CALL_1, header + b"\r\n" * (4 * MiB))])  # 4 MiB inflating from ~4 KiB


def _total_size_bomb() -> bytes:
    return raw_zip(list(good_entries().items()))  # refused under the small total limit set below


def _inflates_past_declared_size() -> bytes:
    data = raw_zip(list(good_entries().items()))
    second = good_entries()[CALL_2]
    return patch_sizes(data, CALL_2, file_size=len(second) // 2)  # the first entry's rows are read first


def _zip_slip(name: str) -> Any:
    return lambda: raw_zip([(CALL_1, good_entries()[CALL_1]), (name, good_entries()[CALL_2])])


def _duplicate_names() -> bytes:
    return raw_zip([(CALL_1, good_entries()[CALL_1]), (CALL_1, good_entries()[CALL_2])])


def _truncated(keep: float) -> Any:
    def build() -> bytes:
        data = raw_zip(list(good_entries().items()))
        return data[: int(len(data) * keep)] if keep < 1 else data[:-1]

    return build


SMALL_TOTAL = BillLimits(max_total_uncompressed=512)
HOSTILE: dict[str, tuple[Any, str, BillLimits | None]] = {
    "ratio bomb": (_ratio_bomb, "ZIP bomb", None),
    "total size over the limit": (_total_size_bomb, "ZIP bomb", SMALL_TOTAL),
    "entry inflates past its declared size": (_inflates_past_declared_size, "entry", None),
    "zip slip ../": (_zip_slip(f"../../{PREFIX}_call_2.csv"), "'..'", None),
    "zip slip absolute": (_zip_slip(f"/tmp/{PREFIX}_call_2.csv"), "absolute path", None),
    "zip slip drive letter": (_zip_slip(f"C:{PREFIX}_call_2.csv"), "drive letter", None),
    "zip slip backslashes": (_zip_slip(f"..\\..\\{PREFIX}_call_2.csv"), "backslash", None),
    "control character in a name": (_zip_slip(f"{PREFIX}_call_2\n.csv"), "control characters", None),
    "duplicate entry names": (_duplicate_names, "more than one entry", None),
    "truncated to 30%": (_truncated(0.3), "not a readable ZIP", None),
    "truncated to 80%": (_truncated(0.8), "not a readable ZIP", None),
    "last byte missing": (_truncated(1.0), "not a readable ZIP", None),
}


@pytest.mark.parametrize(("build", "reason", "limits"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_bill_fails_loudly_and_leaves_only_the_raw_file(
    aws: Any,
    download: Any,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    build: Any,
    reason: str,
    limits: BillLimits | None,
) -> None:
    if limits is not None:
        monkeypatch.setattr(bill_export, "BillFile", functools.partial(BillFile, limits=limits))
    seed_job(aws, "READY")
    data = build()
    download.use(FakeCcfs(data))

    assert download.lambda_handler(bill_message(aws), lambda_context) == {"batchItemFailures": []}  # consumed

    item = bills_t.job(aws)
    assert item["job_status"] == "FAILED" and item["error"].startswith("bill ZIP unusable"), item
    assert reason in item["error"]
    assert keys(aws) == [MANIFEST_KEY, RAW_KEY]  # nothing under cdr/, recording_index/, recordings/, _staging/
    assert s3().get_object(Bucket=aws.bucket, Key=RAW_KEY)["Body"].read() == data  # kept for forensics
    doc = bills_t.manifest(aws)
    assert doc["status"] == "FAILED" and reason in doc["error"]
    assert doc["raw"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert sqs_messages(aws.recording_queue_url) == []
    assert not s3().list_multipart_uploads(Bucket=aws.bucket).get("Uploads")
    metrics = bills_t.emitted(capsys)
    assert metrics.get("JobsFailed") == 1 and "BillRows" not in metrics


def test_total_size_limit_is_what_refused_the_bill(tmp_path: Any) -> None:
    """The 'total size' case above is refused for its size, not by accident."""
    path = tmp_path / "b.zip"
    path.write_bytes(_total_size_bomb())
    with BillFile(path) as bill:
        assert len(bill.cdr_files) == 2
    from ccfs.bills import ZipBomb

    with pytest.raises(ZipBomb, match="in total"):
        BillFile(path, SMALL_TOTAL)


# ---------------------------------------------------------------------------- unexpected entries


def test_unexpected_entries_are_ignored_and_reported(aws: Any, download: Any, lambda_context: Any) -> None:
    seed_job(aws, "READY")
    strays = ["readme.txt", "sub/", f"{PREFIX}_call_1.txt", f"{PREFIX}_call_x.csv", f"{PREFIX}_other_1.csv"]
    entries = [*good_entries().items(), *((name, b"" if name.endswith("/") else b"a,b\r\n") for name in strays)]
    download.use(FakeCcfs(raw_zip(entries)))

    assert download.lambda_handler(bill_message(aws), lambda_context) == {"batchItemFailures": []}

    item = bills_t.job(aws)
    assert item["job_status"] == "DOWNLOADING" and item["bad_rows"] == 0
    assert (item["cdr_rows"], item["index_rows"]) == (5, 4)  # every row of the real entries
    assert sorted(item["unexpected_entries"]) == sorted(strays)
    doc = bills_t.manifest(aws)
    assert sorted(doc["unexpected_entries"]) == sorted(strays)
    written = keys(aws)
    for stray in ("readme", "sub", "_other_", ".txt"):
        assert not any(stray in k for k in written), written
    assert len(sqs_messages(aws.recording_queue_url)) == 3


# ---------------------------------------------------------------------------- bad rows


def test_bad_rows_are_kept_out_counted_and_listed_without_their_content(
    aws: Any, download: Any, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_job(aws, "READY")
    good = bills_t.cdr_row("acct001", "1530497000-301", "2018-07-02 10:00:00")
    over_long = bills_t.cdr_row("acct001", "1530497000-302", "2018-07-02 10:00:00")
    over_long[6] = PHONE * 3_000  # 33,000 characters: over the 32,768 field limit
    with_nul = bills_t.cdr_row("acct001", "1530497000-303", "2018-07-02 10:00:00")
    with_nul[5] = PHONE[:3] + "\x00" + PHONE
    too_wide = bills_t.cdr_row("acct001", "1530497000-304", "2018-07-02 10:00:00") + ["x"] * 300
    good_2 = bills_t.cdr_row("acct001", "1530497000-305", "2018-07-02 11:00:00")
    body = bills_t.csv_bytes(bills_t.CDR_HEADER, [good, over_long, with_nul, too_wide, good_2])
    never_closed = b'"1530497000-306,' + PHONE.encode() + b"\r\n" + b"x,y\r\n" * 50
    download.use(FakeCcfs(raw_zip([(CALL_1, body + never_closed)])))

    assert download.lambda_handler(bill_message(aws), lambda_context) == {"batchItemFailures": []}

    item = bills_t.job(aws)
    assert item["cdr_rows"] == 2 and item["bad_rows"] == 4
    partition = f"cdr/account_id=acct001/call_date=2018-07-02/{RID}-1.csv"
    assert keys(aws, "cdr/") == [partition]
    text = s3().get_object(Bucket=aws.bucket, Key=partition)["Body"].read()
    assert bills_t.parse_csv(text) == [bills_t.CDR_HEADER, good, good_2]
    doc = bills_t.manifest(aws)
    listed = [(b["file"], b["line"]) for b in doc["bad_rows"]]
    assert listed == [(CALL_1, 3), (CALL_1, 4), (CALL_1, 5), (CALL_1, 7)]
    reasons = [b["reason"] for b in doc["bad_rows"]]
    assert "longer than 32768" in reasons[0] and "NUL" in reasons[1] and "fields" in reasons[2]
    assert doc["counts"]["bad_rows"] == 4 and doc["bad_rows_truncated"] is False
    out = capsys.readouterr().out
    assert PHONE not in json.dumps(doc["bad_rows"]) and PHONE not in out  # never the content
    assert emf_totals(out)["BadRows"] == 4


# ---------------------------------------------------------------------------- recordings


def small_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2)
    monkeypatch.setattr(recordings, "TRANSFER_CONFIG", config)


class NoPartialObjects:
    """After every S3 call the function makes, look at the bucket (with a separate client): an
    object under ``recordings/`` must be complete (size and sha256 metadata as expected) or absent."""

    def __init__(self, bucket: str, expected: dict[str, tuple[int, str]]) -> None:
        import boto3

        self.bucket = bucket
        self.expected = expected
        self.viewer = boto3.client("s3")
        self.local = threading.local()
        self.checks = 0
        self.operations: list[str] = []
        self.problems: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, **kwargs: Any) -> None:
        if getattr(self.local, "busy", False):
            return
        with self.lock:
            self.operations.append(kwargs["model"].name)
        self.local.busy = True
        try:
            listing = self.viewer.list_objects_v2(Bucket=self.bucket, Prefix="recordings/").get("Contents", [])
            for obj in listing:
                key = obj["Key"]
                if not key.endswith(".wav"):
                    continue
                size, sha = self.expected[key]
                head = self.viewer.head_object(Bucket=self.bucket, Key=key)
                if obj["Size"] != size or head["Metadata"].get("sha256") != sha:
                    with self.lock:
                        self.problems.append(f"{key}: {obj['Size']} bytes visible, {size} expected")
            with self.lock:
                self.checks += 1
        finally:
            self.local.busy = False


def _watch(names: Any, expected: dict[str, tuple[int, str]]) -> NoPartialObjects:
    watcher = NoPartialObjects(names.bucket, expected)
    s3().meta.events.register("after-call.s3", watcher)
    return watcher


def _assert_clean(names: Any) -> None:
    assert keys(names, "_staging/") == []
    assert not s3().list_multipart_uploads(Bucket=names.bucket).get("Uploads")


def test_recording_cut_mid_body_is_retried_and_never_visible_partially(
    aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_transfer(monkeypatch)
    fake = FakeCcfs()
    download = recs_t.download_with(fake, monkeypatch)
    recs_t.start_job(aws, total=2)
    body = recs_t.FILE_BODIES[0]
    data = fake.add(body, bytes(range(256)) * (7 * MiB // 256))  # 7 MiB: two multipart parts
    path = f"/rec/{recs_t.CALL}/{recs_t.stem_of(body)}.wav"
    cut = [data[i : i + MiB] for i in range(0, 6 * MiB, MiB)]  # a part uploaded, then the reset
    fake.routes[path] = [
        lambda r: httpx.Response(200, headers={"Content-Length": str(len(data))}, stream=recs_t.BrokenStream(cut))
    ]
    key = recs_t.final_key(body)
    watcher = _watch(aws, {key: (len(data), hashlib.sha256(data).hexdigest())})

    # first delivery: the reset makes the message retry
    failed = download.lambda_handler(recs_t.rec_event(aws, [body]), lambda_context)["batchItemFailures"]
    assert len(failed) == 1
    assert keys(aws, "recordings/") == []
    _assert_clean(aws)
    assert recs_t.job(aws).recordings_done == 0
    assert {"CreateMultipartUpload", "AbortMultipartUpload"} <= set(watcher.operations)  # started, then aborted

    second = recs_t.rec_event(aws, [body], receive_count=2)
    assert download.lambda_handler(second, lambda_context) == {"batchItemFailures": []}

    assert watcher.problems == [] and watcher.checks > 10
    got = s3().get_object(Bucket=aws.bucket, Key=key)["Body"].read()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    _assert_clean(aws)
    assert recs_t.job(aws).recordings_done == 1 and len(fake.requests) == 2


def _stream(data: bytes, declared: int) -> Any:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": str(declared)}, stream=httpx.ByteStream(data))

    return respond


@pytest.mark.parametrize("declared_delta", [+1000, -1000, -1])
def test_body_that_differs_from_its_declared_length_is_retried_then_copied(
    aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch, declared_delta: int
) -> None:
    fake = FakeCcfs()
    download = recs_t.download_with(fake, monkeypatch)
    recs_t.start_job(aws, total=2)
    body = recs_t.FILE_BODIES[0]
    data = fake.add(body, recs_t.wav("declared", 5000))
    path = f"/rec/{recs_t.CALL}/{recs_t.stem_of(body)}.wav"
    fake.routes[path] = [_stream(data, len(data) + declared_delta)]
    key = recs_t.final_key(body)
    watcher = _watch(aws, {key: (len(data), hashlib.sha256(data).hexdigest())})

    failed = download.lambda_handler(recs_t.rec_event(aws, [body]), lambda_context)["batchItemFailures"]
    assert len(failed) == 1
    assert keys(aws, "recordings/") == []
    _assert_clean(aws)

    assert download.lambda_handler(recs_t.rec_event(aws, [body], receive_count=2), lambda_context) == {
        "batchItemFailures": []
    }
    assert s3().get_object(Bucket=aws.bucket, Key=key)["Body"].read() == data
    assert watcher.problems == []
    _assert_clean(aws)


def test_broken_fallback_download_is_retried_and_leaves_nothing(
    aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0300012 from getRecordFileUrlFromObs, then downloadRecordFile ends early (the client says
    transient): retried; the second delivery copies it."""
    fake = FakeCcfs()
    download = recs_t.download_with(fake, monkeypatch)
    recs_t.start_job(aws, total=2)
    body = recs_t.FILE_BODIES[0]
    not_found = CcfsNotFound("getRecordFileUrlFromObs", "no data found", "0300012")
    fake.url_replies = [not_found, not_found]
    fake.files[body["fileName"]] = CcfsTransientError("downloadRecordFile", "body ended early: 10 of 20 bytes")

    failed = download.lambda_handler(recs_t.rec_event(aws, [body]), lambda_context)["batchItemFailures"]
    assert len(failed) == 1
    assert keys(aws, "recordings/") == [] and recs_t.job(aws).recordings_failed == 0
    _assert_clean(aws)

    data = fake.files[body["fileName"]] = recs_t.wav("fallback", 4000)
    assert download.lambda_handler(recs_t.rec_event(aws, [body], receive_count=2), lambda_context) == {
        "batchItemFailures": []
    }
    assert s3().get_object(Bucket=aws.bucket, Key=recs_t.final_key(body))["Body"].read() == data
    _assert_clean(aws)


def test_every_failure_that_cannot_be_recovered_is_in_the_manifest_and_alarmed(
    aws: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused URL, missing everywhere past its grace period, and 5xx until the last receive: all three
    end FAILED in the manifest with a reason, counted in RecordingsFailed (alarmed), and the job still
    completes."""
    fake = FakeCcfs()
    download = recs_t.download_with(fake, monkeypatch)
    bodies = [recs_t.body_for(f"1530497000-40{i}", f"000040{i}") for i in range(3)]
    bodies[1]["notFoundSince"] = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
    recs_t.start_job(aws, total=3)
    not_found = CcfsNotFound("getRecordFileUrlFromObs", "no data found", "0300012")

    def urls(call_id: str, begin: Any, end: Any, *, version: str | None = "2.0") -> list[str]:
        fake.url_calls.append((call_id, begin, end, version))
        if call_id.endswith("400"):
            return ["http://insecure.example/r.wav?Signature=SECRET"]
        if call_id.endswith("401"):
            raise not_found
        return [fake.url_for(call_id, "0000402")]

    monkeypatch.setattr(fake, "get_record_file_urls", urls)
    fake.routes["/rec/1530497000-402/0000402.wav"] = [lambda r: httpx.Response(503)] * 5
    event = recs_t.rec_event(aws, bodies)
    result = download.lambda_handler(event, lambda_context)  # 400 and 401 fail for good at once
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][2]["messageId"]}]}
    for receive in range(2, 6):  # 402: HTTP 503 on every delivery, the 5th is the last
        failed = download.lambda_handler(recs_t.rec_event(aws, bodies[2:], receive_count=receive), lambda_context)[
            "batchItemFailures"
        ]
        assert len(failed) == 1
    final = recs_t.job(aws)
    assert (final.recordings_failed, final.job_status) == (3, "PARTIAL")
    doc = json.loads(s3().get_object(Bucket=aws.bucket, Key=MANIFEST_KEY)["Body"].read())
    reasons = {f["call_id"]: f["reason"] for f in doc["failures"]}
    assert set(reasons) == {"1530497000-400", "1530497000-401", "1530497000-402"}
    assert "https" in reasons["1530497000-400"] and "SECRET" not in json.dumps(doc)
    assert "0300012" in reasons["1530497000-401"]
    assert "HTTP 503" in reasons["1530497000-402"]
    assert recs_t.emitted(capsys)["RecordingsFailed"] == 3
    _assert_clean(aws)


# ---------------------------------------------------------------------------- memory per bad input
# Found by tests/unit/test_fuzz_bills.py (tracemalloc bound): a record of millions of one-character
# fields became millions of objects (≈150 MB for an 8 MB line), and every bad row of a bill was
# kept in memory (≈240 B each: a bill whose every row is bad, e.g. after a format change, could
# exhaust the function's 512 MB).


def _traced_peak(fn: Any) -> tuple[Any, int]:
    import tracemalloc

    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_record_of_a_million_tiny_fields_is_a_bad_row_read_cheaply(tmp_path: Any) -> None:
    good = bills_t.csv_bytes(bills_t.CDR_HEADER, bills_t.CDR_1)
    rng = random.Random(3)  # random two-letter fields: compresses too little to be a ZIP bomb
    hostile = b",".join(bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=2)) for _ in range(1_000_000)) + b"\r\n"
    path = tmp_path / "b.zip"
    path.write_bytes(raw_zip([(CALL_1, good + hostile + good.split(b"\r\n", 1)[1])]))

    def read() -> tuple[int, list[Any]]:
        with BillFile(path) as bill:
            return sum(1 for _ in bill.iter_cdr()), list(bill.bad_rows)

    (rows, bad), peak = _traced_peak(read)
    assert rows == 2 * len(bills_t.CDR_1)
    assert [(b.line, b.reason) for b in bad] == [(5, f"row has more than {BillLimits().max_record_commas} commas")]
    assert peak < 8 * MiB, f"{peak / MiB:.1f} MiB"


def test_a_legitimate_field_full_of_commas_is_still_read(tmp_path: Any) -> None:
    row = list(bills_t.CDR_1[0])
    row[-1] = "," * BillLimits().max_field_chars  # quoted by the csv writer
    path = tmp_path / "b.zip"
    path.write_bytes(raw_zip([(CALL_1, bills_t.csv_bytes(bills_t.CDR_HEADER, [row]))]))
    with BillFile(path) as bill:
        assert [r for _, _, r in bill.iter_cdr()] == [dict(zip(bills_t.CDR_HEADER, row, strict=True))]
        assert bill.bad_rows == []


def test_bad_rows_are_all_counted_but_only_some_listed(tmp_path: Any) -> None:
    rows = b"".join(b"only;semicolons;%d\r\n" % i for i in range(50_000))  # every row bad
    path = tmp_path / "b.zip"
    path.write_bytes(raw_zip([(CALL_1, rows), (CALL_2, rows[:400])]))

    def read() -> tuple[int, int, int]:
        with BillFile(path) as bill:
            kept = sum(1 for _ in bill.iter_cdr())
            return kept, bill.bad_row_count, len(bill.bad_rows)

    (kept, count, listed), peak = _traced_peak(read)
    assert (kept, count, listed) == (0, 50_000 + len(rows[:400].splitlines()), BillLimits().max_listed_bad_rows)
    assert peak < 8 * MiB, f"{peak / MiB:.1f} MiB"


def test_manifest_counts_every_bad_row_and_says_the_list_is_truncated(
    aws: Any, download: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bill_export, "BillFile", functools.partial(BillFile, limits=BillLimits(max_listed_bad_rows=5)))
    seed_job(aws, "READY")
    short = [r[:3] for r in bills_t.CDR_1 * 7]  # 21 rows of 3 fields: all bad
    body = bills_t.csv_bytes(bills_t.CDR_HEADER, [bills_t.CDR_1[0], *short])
    download.use(FakeCcfs(raw_zip([(CALL_1, body)])))
    assert download.lambda_handler(bill_message(aws), lambda_context) == {"batchItemFailures": []}
    item = bills_t.job(aws)
    assert (item["cdr_rows"], item["bad_rows"]) == (1, 21)
    doc = bills_t.manifest(aws)
    assert doc["counts"]["bad_rows"] == 21 and len(doc["bad_rows"]) == 5 and doc["bad_rows_truncated"] is True
    assert [b["line"] for b in doc["bad_rows"]] == [3, 4, 5, 6, 7]
