"""An in-memory S3: the object calls the jobs package's manifest writer makes
(``exporter.jobs.manifest.ManifestWriter``), without moto.

``objects[(bucket, key)]`` holds each body; a missing key raises the ``ClientError`` S3 raises
(``NoSuchKey``), so the product's handling of it runs unchanged.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

__all__ = ["FakeS3"]


class FakeS3:
    """``get_object``, ``put_object`` and ``upload_file`` of a boto3 S3 client, in memory."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.content_types: dict[tuple[str, str], str | None] = {}

    def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        if (Bucket, Key) not in self.objects:
            error = {"Error": {"Code": "NoSuchKey", "Message": "The specified key does not exist."}}
            raise ClientError(error, "GetObject")  # type: ignore[arg-type]
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)]), "ContentType": self.content_types[(Bucket, Key)]}

    def put_object(
        self, *, Bucket: str, Key: str, Body: bytes, ContentType: str | None = None, **_: Any
    ) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = bytes(Body)
        self.content_types[(Bucket, Key)] = ContentType
        return {}

    def upload_file(self, Filename: str, Bucket: str, Key: str, ExtraArgs: dict[str, Any] | None = None) -> None:
        self.objects[(Bucket, Key)] = Path(Filename).read_bytes()
        self.content_types[(Bucket, Key)] = (ExtraArgs or {}).get("ContentType")
