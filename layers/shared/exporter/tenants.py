"""Per-tenant CC-FS credentials and time zones, read from the one CC-FS secret.

Seed 000: "The developer account (appId) must correspond to the enterprise account (tenant space ID:
accountId)": each tenant is its own developer account with its own ak/sk, and tenants may sit in
different time zones. The secret (JSON) has one of two forms:

- single developer account (unchanged): ``{"ak": "...", "sk": "..."}`` — every configured tenant
  (``TENANT_ACCOUNT_IDS``, or the whole account ``_all``) is signed with it;
- per tenant: ``{"tenants": {"<accountId>": {"ak": "...", "sk": "...", "timezone": "Asia/Tokyo"}, ...}}``,
  optionally with top-level ``ak``/``sk`` as the default for configured tenants not in the map.
  ``timezone`` is optional (default: the stack's ``TENANT_TIMEZONE``).

Rules (each a :class:`~exporter.config.ConfigError` naming the secret and the tenant/field, never a value):

- a configured tenant needs credentials: its map entry, else the top-level default;
- no two map entries share an ak, and no entry repeats the default ak: a callback names its ak, and
  the ak must name the tenant(s) it may answer for. Tenants left to the default share one developer
  account on purpose, so a callback signed with the default ak may answer for any of them;
- map entries for accountIds not in ``TENANT_ACCOUNT_IDS`` are ignored (not exported, their ak is not
  accepted on callbacks);
- unknown keys inside a tenant entry are refused (a misspelt ``timezone`` must not silently fall back);
  unknown top-level keys are ignored, as the single-tenant form always did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from exporter.config import ALL_ACCOUNTS, ConfigError

__all__ = ["CcfsSecret", "TenantCredentials", "TenantKeys", "parse_secret", "resolve_tenants", "secret_region"]


def secret_region(arn: str) -> str | None:
    """``arn:aws:secretsmanager:eu-west-1:...`` -> ``eu-west-1`` (None for a bare name): the secret is
    read in the region its ARN names, which may not be the stack's."""
    parts = arn.split(":")
    return parts[3] or None if len(parts) > 5 and parts[0] == "arn" else None


# What ccfs.auth can put in an Authorization value (no "/", no spaces).
_AK_PATTERN = r"^[A-Za-z0-9_.\-~+=@]{1,128}$"
_FORMS = '{"ak": "...", "sk": "..."} or {"tenants": {"<accountId>": {"ak": "...", "sk": "...", "timezone"?: "..."}}}'


def _zone_name(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone name (e.g. Asia/Shanghai)") from None
    return value


Ak = Annotated[str, StringConstraints(pattern=_AK_PATTERN)]
Sk = Annotated[str, StringConstraints(min_length=1)]
ZoneName = Annotated[str, AfterValidator(_zone_name)]
AccountId = Annotated[str, StringConstraints(min_length=1, max_length=20, pattern=r"^\S+$")]


class TenantEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ak: Ak
    sk: Sk
    timezone: ZoneName | None = None


class CcfsSecret(BaseModel):
    """The secret's JSON, either form (module docstring)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ak: Ak | None = None
    sk: Sk | None = None
    tenants: dict[AccountId, TenantEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class TenantCredentials:
    """One tenant's developer account and time zone."""

    tenant: str
    ak: str
    sk: str = field(repr=False)
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class TenantKeys:
    """The configured tenants' credentials, and which tenants each ak may act for."""

    by_tenant: Mapping[str, TenantCredentials]

    def for_tenant(self, tenant: str) -> TenantCredentials:
        try:
            return self.by_tenant[tenant]
        except KeyError:
            known = ", ".join(sorted(self.by_tenant)) or "none"
            raise ConfigError(
                f"tenant {tenant!r} is not configured (TENANT_ACCOUNT_IDS: {known}); "
                "a message or job names a tenant this deployment does not export"
            ) from None

    def sk_for(self, ak: str) -> str | None:
        """The sk of a configured tenant's ak (``ccfs.auth.verify``'s ``secret_for``), else None."""
        for creds in self.by_tenant.values():
            if creds.ak == ak:
                return creds.sk
        return None

    def tenants_of(self, ak: str) -> frozenset[str]:
        """The tenant keys whose requests ``ak`` signs (one, unless tenants share the default ak)."""
        return frozenset(t for t, creds in self.by_tenant.items() if creds.ak == ak)


def _problem(secret_name: str, exc: ValidationError) -> str:
    """Where and what, never the value (pydantic's input is left out)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in error["loc"]) or "secret"
        what = "must be a JSON object" if error["type"] in ("model_type", "dict_type") else error["msg"]
        if error["type"] == "string_pattern_mismatch" and error["loc"][-1] == "ak":
            what = "must be 1-128 letters, digits or _ . - ~ + = @"
        elif error["type"] == "string_pattern_mismatch":
            what = "must be 1-20 characters without spaces"
        parts.append(f"{where}: {what.removeprefix('Value error, ')}")
    return f"secret {secret_name} is invalid ({'; '.join(parts)}); store it as {_FORMS}"


def parse_secret(value: Any, secret_name: str) -> CcfsSecret:
    """Validate the secret's decoded JSON; :class:`ConfigError` names the secret and each bad field."""
    try:
        secret = CcfsSecret.model_validate(value)
    except ValidationError as exc:
        raise ConfigError(_problem(secret_name, exc)) from None
    if (secret.ak is None) != (secret.sk is None):
        missing = "sk" if secret.sk is None else "ak"
        raise ConfigError(f"secret {secret_name}: top-level {missing!r} is missing (the default needs both ak and sk)")
    if secret.ak is None and not secret.tenants:
        raise ConfigError(f"secret {secret_name} holds no credentials; store it as {_FORMS}")
    owners: dict[str, str] = {}
    for account, entry in secret.tenants.items():
        if secret.ak is not None and entry.ak == secret.ak:
            raise ConfigError(
                f"secret {secret_name}: tenants.{account}.ak repeats the top-level (default) ak; "
                "leave the tenant out of the map to use the default"
            )
        if entry.ak in owners:
            raise ConfigError(
                f"secret {secret_name}: tenants.{owners[entry.ak]} and tenants.{account} have the same ak; "
                "each tenant is its own developer account (a callback's ak must name one tenant)"
            )
        owners[entry.ak] = account
    return secret


def resolve_tenants(secret: CcfsSecret, secret_name: str, tenants: Iterable[str], default_timezone: str) -> TenantKeys:
    """Credentials and zone of every configured tenant; a tenant without any is a ConfigError."""
    resolved: dict[str, TenantCredentials] = {}
    for tenant in tenants:
        entry = secret.tenants.get(tenant) if tenant != ALL_ACCOUNTS else None
        if entry is not None:
            resolved[tenant] = TenantCredentials(tenant, entry.ak, entry.sk, entry.timezone or default_timezone)
        elif secret.ak is not None and secret.sk is not None:
            resolved[tenant] = TenantCredentials(tenant, secret.ak, secret.sk, default_timezone)
        elif tenant == ALL_ACCOUNTS:
            raise ConfigError(
                f"secret {secret_name} has no top-level ak/sk: TENANT_ACCOUNT_IDS is empty (the whole developer "
                "account), which is signed with the default; set top-level ak/sk or list the tenants"
            )
        else:
            raise ConfigError(
                f"secret {secret_name} has no credentials for tenant {tenant} (in TENANT_ACCOUNT_IDS): "
                f"add tenants.{tenant} with ak and sk, or a top-level default ak/sk"
            )
    return TenantKeys(resolved)
