"""Settings read from the Lambda environment (set by template.yaml), validated once per process.

A missing or invalid variable fails fast with one error naming every problem, so a bad deploy
is visible on the first invocation instead of as a half-done export.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = ["ALL_ACCOUNTS", "ConfigError", "Settings", "get_settings", "import_setting"]

ALL_ACCOUNTS = "_all"
"""Tenant key (and S3 ``account_id=`` value) when no accountId is configured or present."""


class ConfigError(RuntimeError):
    """The function's environment is incomplete or invalid: fix the stack parameters."""


def _csv_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _bool(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return value


CsvList = Annotated[list[str], BeforeValidator(_csv_list)]
Flag = Annotated[bool, BeforeValidator(_bool)]

# environment variable -> field name
_ENV = {
    "CCFS_BASE_URL": "ccfs_base_url",
    "CCFS_SECRET_ARN": "ccfs_secret_arn",
    "CCFS_CA_BUNDLE_PARAM": "ccfs_ca_bundle_param",
    "RECORDING_CA_BUNDLE_PARAM": "recording_ca_bundle_param",
    "CCFS_CONNECT_TIMEOUT": "ccfs_connect_timeout",
    "CCFS_READ_TIMEOUT": "ccfs_read_timeout",
    "TENANT_ACCOUNT_IDS": "tenant_account_ids",
    "TENANT_TIMEZONE": "tenant_timezone",
    "JOBS_TABLE": "jobs_table",
    "IDEMPOTENCY_TABLE": "idempotency_table",
    "EXPORT_BUCKET": "export_bucket",
    "REQUEST_QUEUE_URL": "request_queue_url",
    "BILL_QUEUE_URL": "bill_queue_url",
    "RECORDING_QUEUE_URL": "recording_queue_url",
    "RECORDING_DLQ_URL": "recording_dlq_url",
    "REQUEST_DLQ_URL": "request_dlq_url",
    "WINDOW_MINUTES": "window_minutes",
    "SETTLE_MINUTES": "settle_minutes",
    "CALLBACK_TIMEOUT_MINUTES": "callback_timeout_minutes",
    "MAX_ATTEMPTS": "max_attempts",
    "EXPORT_START_TIME": "export_start_time",
    "RECORDING_URL_HOST_SUFFIXES": "recording_url_host_suffixes",
    "ALLOW_UNSOLICITED": "allow_unsolicited",
    "RETENTION_DAYS": "retention_days",
    "CALLBACK_URL": "callback_url",
    "MAX_CATCHUP_WINDOWS": "max_catchup_windows",
    "MAX_RECEIVE_COUNT": "max_receive_count",
    "STALLED_JOB_HOURS": "stalled_job_hours",
    "RECORDING_GRACE_HOURS": "recording_grace_hours",
    "RECORDING_CONCURRENCY": "recording_concurrency",
    "IDEMPOTENCY_EXPIRY_SECONDS": "idempotency_expiry_seconds",
    "OBJECT_LOCK_MODE": "object_lock_mode",
    "OBJECT_LOCK_RETENTION_DAYS": "object_lock_retention_days",
}


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ccfs_base_url: str = Field(pattern=r"^https?://\S+$")
    ccfs_secret_arn: str = Field(min_length=1)
    ccfs_ca_bundle_param: str = ""
    recording_ca_bundle_param: str = ""
    """SSM parameter with a PEM bundle trusted for pre-signed recording URLs (on-premises LSS) in
    addition to the system trust store; never used for CC-FS calls (``ccfs_ca_bundle_param``)."""
    ccfs_connect_timeout: float = 5.0
    ccfs_read_timeout: float = 60.0
    tenant_account_ids: CsvList = Field(default_factory=list)
    tenant_timezone: str = "Asia/Shanghai"
    jobs_table: str = Field(min_length=1)
    idempotency_table: str = ""
    export_bucket: str = ""
    request_queue_url: str = ""
    bill_queue_url: str = ""
    recording_queue_url: str = ""
    recording_dlq_url: str = ""
    request_dlq_url: str = ""
    """request_export only: where a backfill message it refuses goes at once, with the reason."""
    window_minutes: int = Field(default=60, ge=5, le=4320)
    settle_minutes: int = Field(default=30, ge=0)
    callback_timeout_minutes: int = Field(default=120, ge=1)
    max_attempts: int = Field(default=3, ge=1)
    export_start_time: str = ""
    recording_url_host_suffixes: CsvList = Field(default_factory=list)
    allow_unsolicited: Flag = False
    retention_days: int = Field(default=365, ge=1)
    callback_url: str = ""
    max_catchup_windows: int = Field(default=48, ge=1)
    max_receive_count: int = Field(default=5, ge=1)
    stalled_job_hours: int = Field(default=30, ge=1)
    recording_grace_hours: float = Field(default=24, gt=0, le=14 * 24)
    """How long a recording the index lists may stay "not found" (CC-FS syncs recordings by a
    scheduled task) before it is recorded FAILED: retried with growing delays until then."""
    recording_concurrency: int = Field(default=1, ge=1)
    """Threads copying one batch of recordings (template.yaml: ``RecordingThreads``); 1 = one at a time."""
    idempotency_expiry_seconds: int = Field(default=8 * 3600, ge=1)
    """How long a completed bill's idempotency record answers a redelivered message: at least
    maxReceiveCount x the BillQueue's visibility timeout (Powertools' default, 1 h, is shorter)."""
    object_lock_mode: Literal["NONE", "GOVERNANCE", "COMPLIANCE"] = "NONE"
    """S3 Object Lock retention mode of the final export objects (``exporter.object_lock``); NONE = off."""
    object_lock_retention_days: int = Field(default=0, ge=0)
    """Days each final export object is locked for (with a mode other than NONE)."""

    @field_validator("tenant_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone name (e.g. Asia/Shanghai)") from None
        return value

    @field_validator("export_start_time")
    @classmethod
    def _start(cls, value: str) -> str:
        if value:
            try:
                datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")
            except ValueError:
                raise ValueError(f"{value!r} is not yyyy-MM-ddTHH:mm:ss (tenant-local)") from None
        return value

    @model_validator(mode="after")
    def _stall_outlasts_grace(self) -> Settings:
        if self.stalled_job_hours < self.recording_grace_hours + 2:
            raise ValueError(
                f"STALLED_JOB_HOURS ({self.stalled_job_hours}) must exceed RECORDING_GRACE_HOURS "
                f"({self.recording_grace_hours:g}) by at least 2: a job still waiting for late recordings "
                "would be failed as stalled; raise the first or lower the second"
            )
        return self

    @model_validator(mode="after")
    def _lock_within_retention(self) -> Settings:
        if self.object_lock_mode == "NONE":
            return self
        if self.object_lock_retention_days < 1:
            raise ValueError(
                f"OBJECT_LOCK_RETENTION_DAYS must be at least 1 with OBJECT_LOCK_MODE={self.object_lock_mode}; "
                "set the ObjectLockRetentionDays parameter or ObjectLockMode=NONE"
            )
        if self.object_lock_retention_days > self.retention_days:
            raise ValueError(
                f"OBJECT_LOCK_RETENTION_DAYS ({self.object_lock_retention_days}) exceeds RETENTION_DAYS "
                f"({self.retention_days}): the lifecycle would hide objects that stay locked (and billed) until "
                "their retention ends; raise RetentionDays to at least ObjectLockRetentionDays"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tenant_timezone)

    @property
    def tenants(self) -> list[str]:
        """Tenant keys to export: the configured accountIds, or ``_all`` for the whole account."""
        return list(self.tenant_account_ids) or [ALL_ACCOUNTS]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {field: env[name] for name, field in _ENV.items() if env.get(name, "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            field_to_env = {f: n for n, f in _ENV.items()}
            problems = "; ".join(
                f"{field_to_env.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else 'settings'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(f"invalid function configuration ({problems}); check the stack parameters") from None


def import_setting(field: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting, read from its environment variable and validated alone, as :class:`Settings`
    would: for the objects a handler builds at import (Powertools' idempotency configuration and
    store, the batch processors), which must not need the whole environment to be valid (the
    first invocation's :func:`get_settings` reports that)."""
    env = os.environ if environ is None else environ
    name = next(n for n, f in _ENV.items() if f == field)
    info = Settings.model_fields[field]
    if env.get(name, "") == "":
        return info.get_default(call_default_factory=True)
    try:
        annotation = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        return TypeAdapter(annotation).validate_python(env[name])
    except ValidationError as exc:
        problem = exc.errors(include_url=False, include_input=False)[0]["msg"]
        raise ConfigError(f"invalid function configuration ({name}: {problem}); check the stack parameters") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call ``get_settings.cache_clear()`` after changing env)."""
    return Settings.from_env()
