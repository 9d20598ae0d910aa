"""Optional S3 Object Lock (issue 14): every final export object is written with the retention,
staging objects never, and a retention longer than the lifecycle's is refused at start.

On moto with an Object Lock bucket (as template.yaml creates it with ObjectLockMode set). moto keeps
the lock of PutObject and CopyObject (not of CreateMultipartUpload), so the staged path copies in
one CopyObject here; that every version-creating call gets it is checked on the parameters.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from exporter import aws as exporter_aws
from exporter import wiring
from exporter.config import ConfigError, Settings
from exporter.messages import RecordingMessage
from exporter.object_lock import LOCKED_OPERATIONS, RetentionPolicy, lock_final_objects
from exporter.recording_store import RecordingStore
from tests.unit.recording_helpers import body_for, final_key, wav

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LOCKED = "aicc-export-locked"
MiB = 1024 * 1024


@pytest.fixture
def s3(aws: Any) -> Any:
    client = exporter_aws.client("s3")
    client.create_bucket(Bucket=LOCKED, ObjectLockEnabledForBucket=True)  # versioning comes with it
    return lock_final_objects(client, RetentionPolicy("COMPLIANCE", 30, clock=lambda: NOW))


def retention(s3: Any, key: str) -> tuple[str | None, datetime | None]:
    head = s3.head_object(Bucket=LOCKED, Key=key)
    return head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")


def test_a_directly_written_recording_and_its_sidecar_are_locked(s3: Any) -> None:
    body = body_for("c-1", "s1")
    message = RecordingMessage.model_validate(body)
    store = RecordingStore(s3, LOCKED, TransferConfig(multipart_threshold=8 * MiB), TransferConfig())
    data = wav("one")

    published = store.publish(iter([data]), len(data), message, final_key(body), "obs")
    store.write_sidecar(message, final_key(body, "json"), published, "2026-12-06T12:00:00Z")

    until = NOW + timedelta(days=30)
    assert retention(s3, final_key(body)) == ("COMPLIANCE", until)
    assert retention(s3, final_key(body, "json")) == ("COMPLIANCE", until)
    assert s3.get_object(Bucket=LOCKED, Key=final_key(body))["Body"].read() == data


def test_a_staged_recording_is_locked_and_its_staging_copy_is_not(s3: Any) -> None:
    body = body_for("c-2", "s2")
    message = RecordingMessage.model_validate(body)
    # undeclared length: through _staging/ (multipart upload), then one CopyObject to the final key
    store = RecordingStore(
        s3, LOCKED, TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB), TransferConfig()
    )
    data = wav("two", 6 * MiB)
    sent: list[dict[str, Any]] = []

    def moto_wants_a_checksum_header(request: Any, **_: Any) -> None:
        # moto 5.2.5 asks every write with a retention for Content-MD5 or x-amz-sdk-checksum-algorithm,
        # a CopyObject too, which has no body to sum (S3 asks it of uploads: PutObject, UploadPart).
        sent.append({k: v for k, v in request.headers.items() if k.lower().startswith("x-amz-object-lock")})
        request.headers["x-amz-sdk-checksum-algorithm"] = "CRC32"

    s3.meta.events.register("before-send.s3.CopyObject", moto_wants_a_checksum_header)
    store.publish(iter([data[: 3 * MiB], data[3 * MiB :]]), None, message, final_key(body), "obs")

    assert retention(s3, final_key(body)) == ("COMPLIANCE", NOW + timedelta(days=30))
    assert [h["x-amz-object-lock-mode"] for h in sent] == [b"COMPLIANCE"]  # one CopyObject, locked
    listing = s3.list_objects_v2(Bucket=LOCKED, Prefix="_staging/")
    assert listing.get("KeyCount") == 0  # deleted after the copy
    versions = s3.list_object_versions(Bucket=LOCKED, Prefix="_staging/")
    (staged,) = versions["Versions"]  # the noncurrent version the lifecycle expires after a day...
    head = s3.head_object(Bucket=LOCKED, Key=staged["Key"], VersionId=staged["VersionId"])
    assert "ObjectLockMode" not in head  # ...which it can, because it was never locked
    s3.delete_object(Bucket=LOCKED, Key=staged["Key"], VersionId=staged["VersionId"])


def test_bill_uploads_through_the_wiring_are_locked(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    exporter_aws.client("s3").create_bucket(Bucket=LOCKED, ObjectLockEnabledForBucket=True)
    monkeypatch.setenv("OBJECT_LOCK_MODE", "GOVERNANCE")
    monkeypatch.setenv("OBJECT_LOCK_RETENTION_DAYS", "7")
    settings = Settings.from_env()
    s3 = wiring.export_s3(settings)

    s3.upload_fileobj(io.BytesIO(b"call_id,x\n1,2\n"), LOCKED, "cdr/account_id=a/call_date=2026-12-06/x.csv")

    mode, until = retention(s3, "cdr/account_id=a/call_date=2026-12-06/x.csv")
    assert mode == "GOVERNANCE" and until is not None
    assert timedelta(days=7) - timedelta(minutes=5) < until - datetime.now(UTC) <= timedelta(days=7)


def test_every_version_creating_call_gets_the_retention_except_under_staging() -> None:
    policy = RetentionPolicy("GOVERNANCE", 10, clock=lambda: NOW)
    final: dict[str, Any] = {"Bucket": "b", "Key": "recordings/x.wav"}
    staged: dict[str, Any] = {"Bucket": "b", "Key": "_staging/0f"}
    given: dict[str, Any] = {"Key": "manifests/x.json", "ObjectLockMode": "COMPLIANCE"}
    summed: dict[str, Any] = {"Key": "recordings/y.wav", "ChecksumSHA256": "c2hh"}
    for params in (final, staged, given, summed):
        policy(params)
    assert final["ObjectLockMode"] == "GOVERNANCE" and final["ObjectLockRetainUntilDate"] == NOW + timedelta(days=10)
    assert "ChecksumAlgorithm" not in final  # boto3 computes and announces its own (CRC32)
    assert summed["ChecksumAlgorithm"] == "SHA256"  # a precomputed checksum is announced: S3 requires it
    assert staged == {"Bucket": "b", "Key": "_staging/0f"}
    assert given["ObjectLockMode"] == "COMPLIANCE"  # a caller's own setting is kept
    assert set(LOCKED_OPERATIONS) == {"PutObject", "CreateMultipartUpload", "CopyObject"}


def test_without_object_lock_the_client_is_left_alone(aws: Any) -> None:
    s3 = wiring.export_s3(Settings.from_env())
    s3.put_object(Bucket=aws.bucket, Key="recordings/plain.wav", Body=b"x")  # the bucket has no Object Lock
    assert "ObjectLockMode" not in s3.head_object(Bucket=aws.bucket, Key="recordings/plain.wav")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OBJECT_LOCK_MODE": "COMPLIANCE", "OBJECT_LOCK_RETENTION_DAYS": "400"}, r"exceeds RETENTION_DAYS \(365\)"),
        ({"OBJECT_LOCK_MODE": "GOVERNANCE"}, "OBJECT_LOCK_RETENTION_DAYS must be at least 1"),
        ({"OBJECT_LOCK_MODE": "LEGAL_HOLD", "OBJECT_LOCK_RETENTION_DAYS": "30"}, "OBJECT_LOCK_MODE"),
    ],
)
def test_a_retention_the_lifecycle_would_cut_short_is_refused(
    aws: Any, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        Settings.from_env()
