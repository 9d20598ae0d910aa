"""What a stack's functions know about its tenants, read the way the functions read it.

A deployed stack's tenants are request_export's ``TENANT_ACCOUNT_IDS`` (its Lambda environment; empty:
the whole developer account, tenant ``_all``) and their time zones the CC-FS secret's per-tenant
``timezone``, else ``TENANT_TIMEZONE`` (``exporter.tenants``, as the functions resolve them). A
``make serve`` stack's JSON line carries the same environment (``function_env``). Both are read by
``aicc_export.deployment`` (validated as ``Settings``); the secret is read only for the zones, its
keys are never printed, and a secret the caller may not read falls back to ``TENANT_TIMEZONE`` with
a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from aicc_export.deployment import DeploymentError, settings_of, tenant_zones
from aicc_export.target import Target, TargetError
from exporter.config import ALL_ACCOUNTS, Settings

__all__ = ["StackInfo", "stack_info"]


@dataclass
class StackInfo:
    tenants: list[str]
    zones: dict[str, ZoneInfo]
    settle_minutes: int
    window_minutes: int
    notes: list[str] = field(default_factory=list)

    @property
    def multi_tenant(self) -> bool:
        return self.tenants != [ALL_ACCOUNTS]

    def pick(self, tenant: str | None) -> list[str]:
        """The tenants a command acts on: ``tenant`` (checked), else every tenant."""
        if tenant is None:
            return list(self.tenants)
        if tenant not in self.tenants:
            known = ", ".join(self.tenants)
            raise TargetError(f"tenant {tenant!r} is not one of this stack's tenants ({known}); pass one of them")
        return [tenant]

    def account_id(self, tenant: str) -> str | None:
        """The backfill message's accountId for ``tenant`` (none for the whole account)."""
        return None if tenant == ALL_ACCOUNTS else tenant


def _zones(target: Target, settings: Settings, notes: list[str]) -> dict[str, ZoneInfo]:
    try:
        return tenant_zones(target, settings)
    except DeploymentError as exc:
        notes.append(f"tenant time zones: {exc.message}; using {settings.tenant_timezone} for all")
        return dict.fromkeys(settings.tenants, settings.zone)


def stack_info(target: Target) -> StackInfo:
    """The stack's tenants, zones and planning settings (read once per target)."""
    cached = target.memo.get("stack_info")
    if isinstance(cached, StackInfo):
        return cached
    settings = settings_of(target)
    notes: list[str] = []
    info = StackInfo(
        tenants=settings.tenants,
        zones=_zones(target, settings, notes),
        settle_minutes=settings.settle_minutes,
        window_minutes=settings.window_minutes,
        notes=notes,
    )
    target.memo["stack_info"] = info
    return info
