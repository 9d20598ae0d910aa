"""How a recording's copy can fail, as the copier decides what to do with it (docs/design.md):
consumed FAILED, retried, or asked for again later. Shared by the URL rules, the S3 store and the
copier (``exporter.recordings``, which re-exports them)."""

from __future__ import annotations

__all__ = ["PermanentRecordingError", "RecordingNotYetAvailable", "TransientRecordingError"]


class PermanentRecordingError(Exception):
    """This recording cannot be exported by retrying; ``str()`` is the reason kept in REC/manifest."""


class TransientRecordingError(Exception):
    """Worth retrying later (5xx, reset, truncated body, expired URL after refreshes)."""


class RecordingNotYetAvailable(Exception):
    """CC-FS has no such recording *yet*: neither a URL nor ``downloadRecordFile`` found a recording
    that the index lists. Seed 001: recordings reach CC-FS "by a scheduled task", so this means "not
    synced yet" until the grace period ends (``str()`` is the reason kept if it never arrives)."""
