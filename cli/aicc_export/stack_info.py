"""What a stack's functions know about its tenants, read the way the functions read it.

A deployed stack's tenants are request_export's ``TENANT_ACCOUNT_IDS`` (its Lambda environment; empty:
the whole developer account, tenant ``_all``) and their time zones the CC-FS secret's per-tenant
``timezone``, else ``TENANT_TIMEZONE`` (``exporter.tenants``, as the functions resolve them). A
``make serve`` stack's JSON line carries the same environment (``function_env``). The secret is read
only for the zones; its keys are never printed, and a secret the caller may not read falls back to
``TENANT_TIMEZONE`` with a note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from botocore.exceptions import BotoCoreError, ClientError

from aicc_export.target import Target, TargetError
from exporter.config import ALL_ACCOUNTS, ConfigError
from exporter.tenants import parse_secret, resolve_tenants

__all__ = ["StackInfo", "stack_info"]

REQUEST_FUNCTION = "RequestExportFunction"


@dataclass
class StackInfo:
    tenants: list[str]
    zones: dict[str, ZoneInfo]
    settle_minutes: int
    window_minutes: int
    env: dict[str, str] = field(default_factory=dict)
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


def _function_env(target: Target) -> dict[str, str]:
    if target.local is not None:
        env = (target.local.get("function_env") or {}).get(REQUEST_FUNCTION)
        if not isinstance(env, dict):
            raise TargetError(
                "the --local JSON line has no function_env.RequestExportFunction: run a current `make serve`"
            )
        return {str(k): str(v) for k, v in env.items()}
    name = target.functions.get(REQUEST_FUNCTION)
    if not name:
        raise TargetError(f"stack {target.stack_name!r} has no RequestExportFunctionName output: redeploy it")
    try:
        config = target.client("lambda").get_function_configuration(FunctionName=name)
    except (ClientError, BotoCoreError) as exc:
        raise TargetError(
            f"cannot read function {name}'s configuration ({exc}); you need lambda:GetFunctionConfiguration"
        ) from None
    return dict(config.get("Environment", {}).get("Variables", {}))


def _zones(target: Target, env: dict[str, str], tenants: list[str], notes: list[str]) -> dict[str, ZoneInfo]:
    default = env.get("TENANT_TIMEZONE") or "Asia/Shanghai"
    arn = env.get("CCFS_SECRET_ARN") or target.secret_arn
    try:
        value = target.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
        keys = resolve_tenants(parse_secret(json.loads(value), arn), arn, tenants, default)
        return {t: keys.for_tenant(t).zone for t in tenants}
    except (ClientError, BotoCoreError, ConfigError, ValueError, KeyError) as exc:
        notes.append(f"tenant time zones: the secret was not readable ({type(exc).__name__}); using {default} for all")
        return {t: ZoneInfo(default) for t in tenants}


def _int(env: dict[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name) or default)
    except ValueError:
        return default


_CACHE: dict[int, tuple[Target, StackInfo]] = {}


def stack_info(target: Target) -> StackInfo:
    """The stack's tenants, zones and planning settings (read once per target)."""
    cached = _CACHE.get(id(target))
    if cached is not None and cached[0] is target:
        return cached[1]
    env = _function_env(target)
    tenants = [t.strip() for t in (env.get("TENANT_ACCOUNT_IDS") or "").split(",") if t.strip()] or [ALL_ACCOUNTS]
    notes: list[str] = []
    info = StackInfo(
        tenants=tenants,
        zones=_zones(target, env, tenants, notes),
        settle_minutes=_int(env, "SETTLE_MINUTES", 30),
        window_minutes=_int(env, "WINDOW_MINUTES", 60),
        env=env,
        notes=notes,
    )
    _CACHE[id(target)] = (target, info)
    return info
