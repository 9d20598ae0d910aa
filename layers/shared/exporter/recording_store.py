"""Publishing one recording to the export bucket: a final key only ever holds a verified, complete
recording (docs/design.md).

A small body (declared length ≤ the multipart threshold) is verified in memory before its single,
atomic PutObject (S3 checks the SHA-256 it carries); a large or undeclared one goes to a fresh
staging key first (the transfer manager aborts a failed multipart upload), is checked against the
declared length, then copied with ``sha256``/``size`` metadata; the staging object is always
deleted. Every write to a final key is conditional (``If-None-Match: *``): a duplicate delivery
finds the earlier verified copy and leaves it as it is (no second version in the versioned bucket).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from exporter import layout
from exporter.aws import logger
from exporter.messages import RecordingMessage
from exporter.recording_errors import TransientRecordingError
from exporter.streams import HashingReader

__all__ = ["Published", "RecordingStore"]


@dataclass(frozen=True)
class Published:
    """A verified recording at ``key``: its size, SHA-256 and where it came from (``source``)."""

    key: str
    size: int
    sha256: str
    source: str


@dataclass
class RecordingStore:
    """Writes a recording body and its sidecar to ``bucket``. ``upload_config`` is the transfer
    setting for the body (its ``multipart_threshold`` also decides direct vs staged);
    ``copy_config`` the server-side copy's from staging to the final key."""

    s3: Any
    bucket: str
    upload_config: TransferConfig
    copy_config: TransferConfig

    def publish(
        self, chunks: Iterator[bytes], expected: int | None, message: RecordingMessage, key: str, source: str
    ) -> Published:
        """Publish the body at ``key`` only once it is verified: directly when its declared length fits
        one PutObject, else through a staging object (see the two methods below)."""
        if expected is not None and 0 < expected <= self.upload_config.multipart_threshold:
            return self._publish_direct(chunks, expected, message, key, source)
        return self._publish_staged(chunks, expected, message, key, source)

    def write_sidecar(self, message: RecordingMessage, sidecar: str, published: Published, copied_at: str) -> None:
        """The JSON beside the recording (where it came from, its checksum, its index row); an
        earlier delivery's sidecar describes the same verified copy and is kept."""
        document = {
            "responseId": message.responseId,
            "callId": message.callId,
            "fileName": message.fileName,
            "key": published.key,
            "sha256": published.sha256,
            "size": published.size,
            "source": published.source,
            "copied_at": copied_at,
            "row": message.row,
        }
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=sidecar,
                Body=json.dumps(document, ensure_ascii=False, indent=1).encode(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "PreconditionFailed":
                raise  # else: the earlier delivery's sidecar describes the same verified copy: kept

    @staticmethod
    def _metadata(message: RecordingMessage, sha256: str, size: int) -> dict[str, str]:
        return {"sha256": sha256, "size": str(size), "response-id": message.responseId, "call-id": message.callId}

    def _publish_direct(
        self, chunks: Iterator[bytes], expected: int, message: RecordingMessage, key: str, source: str
    ) -> Published:
        """Read the whole (small) body, verify its length, then one PutObject to ``key`` carrying the
        SHA-256 as S3's checksum: S3 stores the object whole and intact or not at all, so a final
        key still only ever holds a verified recording, without a staging object, a copy and a
        delete (three requests per recording). Memory: at most ``multipart_threshold`` bytes, which
        the transfer manager would have buffered anyway before choosing a single PutObject."""
        reader = HashingReader(chunks)
        data = reader.read(expected + 1)  # one byte more than declared shows an over-long body
        if len(data) > expected:
            raise TransientRecordingError(f"recording body is longer than the {expected} bytes declared")
        if len(data) < expected:
            raise TransientRecordingError(f"recording body has {len(data)} bytes, {expected} were declared: truncated")
        sha256 = reader.sha256
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType="audio/wav",
                Metadata=self._metadata(message, sha256, len(data)),
                ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
                IfNoneMatch="*",  # S3 conditional write: a duplicate delivery adds no second version
            )
        except ClientError as exc:
            existing = self._existing(exc, key, source)
            if existing is None:
                raise
            return existing
        return Published(key, len(data), sha256, source)

    def _existing(self, exc: ClientError, key: str, source: str) -> Published | None:
        """After a refused conditional PutObject: the verified copy an earlier delivery wrote at
        ``key`` (its ``sha256``/``size`` metadata), or None when ``exc`` is another error. A final
        key only ever holds a verified recording, so the earlier copy stands."""
        if exc.response.get("Error", {}).get("Code") != "PreconditionFailed":
            return None  # incl. ConditionalRequestConflict (a twin writing right now): retried
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        meta = head.get("Metadata", {})
        sha, size = meta.get("sha256", ""), meta.get("size", "")
        if len(sha) != 64 or not size.isdigit() or int(size) != head.get("ContentLength"):
            raise TransientRecordingError(f"{key} exists without a verified copy's metadata; not overwritten")
        logger.info("recording already copied by an earlier delivery", extra={"key": key})
        return Published(key, int(size), sha, source)

    def _publish_staged(
        self, chunks: Iterator[bytes], expected: int | None, message: RecordingMessage, key: str, source: str
    ) -> Published:
        """Stream to a fresh staging key, verify, copy to ``key`` with metadata; staging always deleted."""
        staging = layout.staging_key()
        reader = HashingReader(chunks)
        try:
            self.s3.upload_fileobj(reader, self.bucket, staging, Config=self.upload_config)
            if expected is not None and reader.bytes_read != expected:
                raise TransientRecordingError(
                    f"recording body has {reader.bytes_read} bytes, {expected} were declared: truncated"
                )
            if reader.bytes_read == 0:
                raise TransientRecordingError("recording body is empty")
            self.s3.copy(
                {"Bucket": self.bucket, "Key": staging},
                self.bucket,
                key,
                ExtraArgs={
                    "Metadata": self._metadata(message, reader.sha256, reader.bytes_read),
                    "MetadataDirective": "REPLACE",
                    "ContentType": "audio/wav",
                },
                Config=self.copy_config,
            )
        finally:
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=staging)
            except ClientError as exc:  # the lifecycle rule expires _staging/ after a day
                logger.warning("could not delete staging object", extra={"key": staging, "error": str(exc)})
        return Published(key, reader.bytes_read, reader.sha256, source)
