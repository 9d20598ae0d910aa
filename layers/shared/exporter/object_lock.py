"""Optional S3 Object Lock retention on the exported objects (template parameters ``ObjectLockMode``,
``ObjectLockRetentionDays``; off by default).

Retention is set per object, on the final objects only: every PutObject, CreateMultipartUpload and
CopyObject the export bucket's client makes carries ``ObjectLockMode`` and
``ObjectLockRetainUntilDate`` (now + the retention days), except for keys under ``_staging/``. The
bucket has no default retention: a staging object is deleted right after its copy (and expired by
the lifecycle after a day), which a default retention would forbid for its version, keeping every
large recording twice for the whole retention period.

It is added as a botocore ``before-parameter-build`` handler on the S3 client, so the writers
(recordings, sidecars, CDR and index CSVs, raw ZIPs, manifests; direct, multipart and copied) need
no parameter of their own and a write cannot forget it. S3 requires an integrity checksum on a
PutObject/UploadPart with retention (``Content-MD5`` or ``x-amz-sdk-checksum-algorithm``): boto3
computes and announces a CRC32 by default (``request_checksum_calculation`` = ``when_supported``); the
direct recording write brings its own SHA-256, which this hook announces as the algorithm.
The role needs ``s3:PutObjectRetention`` (granted by the template when Object Lock is on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from exporter import layout

__all__ = ["LOCKED_OPERATIONS", "RetentionPolicy", "lock_final_objects"]

LOCKED_OPERATIONS = ("PutObject", "CreateMultipartUpload", "CopyObject")
"""The S3 operations that create an object version (UploadPart/UploadPartCopy add to one)."""


_CHECKSUMS = ("SHA256", "SHA1", "CRC32", "CRC32C", "CRC64NVME")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetentionPolicy:
    """Object Lock retention for final objects; called by botocore with an operation's parameters."""

    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    days: int
    clock: Callable[[], datetime] = _utc_now

    def retain_until(self) -> datetime:
        return self.clock() + timedelta(days=self.days)

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        if str(params.get("Key", "")).startswith(layout.STAGING_PREFIX):
            return  # deleted after its copy: never locked
        params.setdefault("ObjectLockMode", self.mode)
        params.setdefault("ObjectLockRetainUntilDate", self.retain_until())
        # A write with retention needs Content-MD5 or x-amz-sdk-checksum-algorithm; a checksum the
        # caller computed (the direct recording write's SHA-256) is sent as x-amz-checksum-* only.
        given = [a for a in _CHECKSUMS if f"Checksum{a}" in params]
        if given and "ChecksumAlgorithm" not in params:
            params["ChecksumAlgorithm"] = given[0]


def lock_final_objects(s3: Any, policy: RetentionPolicy | None) -> Any:
    """``s3`` (a boto3 S3 client) with ``policy`` applied to its writes; unchanged when ``None``.
    Registered once per client (a unique id per operation): the process-wide client keeps it."""
    if policy is not None:
        for operation in LOCKED_OPERATIONS:
            s3.meta.events.register(
                f"before-parameter-build.s3.{operation}", policy, unique_id=f"aicc-export-object-lock-{operation}"
            )
    return s3
