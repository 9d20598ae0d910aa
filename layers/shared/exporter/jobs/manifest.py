"""A job's manifest, ``manifests/{responseId}.json`` in the export bucket (docs/design.md).

The bill step writes it (status ``DOWNLOADING``, or ``FAILED``); the completing worker rewrites it
with the bill step's manifest as its base plus every recording and failure. The final manifest is
written *before* the job's status flips to ``COMPLETED`` (see ``exporter.jobs.progress``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from exporter import layout
from exporter.jobs.items import Job, RecordingItem
from exporter.jobs.keys import JobStatus, utc_now_iso

__all__ = ["COUNTERS", "MANIFEST_CONTENT_TYPE", "ManifestWriter"]

COUNTERS = ("cdr_rows", "index_rows", "bad_rows", "recordings_total", "recordings_done", "recordings_failed")
"""The job counters every manifest carries under ``counts``."""
MANIFEST_CONTENT_TYPE = "application/json"


class ManifestWriter:
    """Reads and writes one bucket's manifests. ``s3`` is a boto3 S3 client."""

    def __init__(self, s3: Any, bucket: str, clock: Callable[[], datetime]) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.clock = clock

    def read(self, response_id: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=layout.manifest_key(response_id))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        with body:
            loaded = json.load(body)
        return loaded if isinstance(loaded, dict) else None

    def write(self, response_id: str, document: Mapping[str, Any]) -> str:
        key = layout.manifest_key(response_id)
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(document, ensure_ascii=False, indent=1).encode(),
            ContentType=MANIFEST_CONTENT_TYPE,
        )
        return key

    def base(self, job: Job, status: JobStatus) -> dict[str, Any]:
        """Header fields every manifest carries, from the job item."""
        return {
            "responseId": job.response_id,
            "tenant": job.tenant,
            "accountId": job.account_id,
            "beginTime": job.begin_time,
            "endTime": job.end_time,
            "dataType": job.data_type,
            "billFileName": job.bill_file_name,
            "status": status.value,
            "error": job.error,
            "generatedAt": utc_now_iso(self.clock()),
            "counts": {name: int(getattr(job, name)) for name in COUNTERS},
        }

    def write_final(self, job: Job, status: JobStatus, recordings: Iterable[RecordingItem]) -> str:
        """Rewrite the manifest with every recording and failure. Streams ``recordings`` through a
        temporary file so a job with many recordings does not build its manifest in memory."""
        response_id = job.response_id
        document = self.read(response_id) or {}
        document.update(self.base(job, status))
        document.pop("recordings", None)
        document.pop("failures", None)
        workdir = tempfile.mkdtemp(prefix="manifest-")
        try:
            recs_path, fails_path, out_path = (f"{workdir}/{n}" for n in ("recs", "fails", "out"))
            with open(recs_path, "w", encoding="utf-8") as recs, open(fails_path, "w", encoding="utf-8") as fails:
                n_recs = n_fails = 0
                for rec in recordings:
                    if rec.status == "DONE":
                        entry: dict[str, Any] = {
                            "call_id": rec.call_id,
                            "file_name": rec.file_name,
                            "key": rec.key,
                            "size": rec.size,
                            "sha256": rec.sha256,
                            "source": rec.source,
                        }
                        recs.write(("\n " if n_recs == 0 else ",\n ") + json.dumps(entry, ensure_ascii=False))
                        n_recs += 1
                    else:
                        entry = {"call_id": rec.call_id, "file_name": rec.file_name, "reason": rec.error}
                        fails.write(("\n " if n_fails == 0 else ",\n ") + json.dumps(entry, ensure_ascii=False))
                        n_fails += 1
            head = json.dumps(document, ensure_ascii=False, indent=1)
            with open(out_path, "w", encoding="utf-8") as out:
                out.write(head[: head.rfind("}")].rstrip())
                out.write(',\n "recordings": [')
                with open(recs_path, encoding="utf-8") as src:
                    shutil.copyfileobj(src, out)
                out.write('\n ],\n "failures": [')
                with open(fails_path, encoding="utf-8") as src:
                    shutil.copyfileobj(src, out)
                out.write("\n ]\n}\n")
            key = layout.manifest_key(response_id)
            self.s3.upload_file(out_path, self.bucket, key, ExtraArgs={"ContentType": MANIFEST_CONTENT_TYPE})
            return key
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
