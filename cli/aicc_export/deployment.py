"""What the deployed functions were configured with, and how to reach the stack's named peers.

The commands that need more than resource names (the tenants, CC-FS's address, the secret, the CA
parameter, the tenant time zone) read the environment the template gave ``RequestExportFunction``
and validate it with the functions' own :class:`~exporter.config.Settings`: one definition of the
configuration, whether it comes from Lambda (``GetFunctionConfiguration``) or from ``make serve``'s
JSON line (``function_env``).

:func:`connect_names` is the CLI's ``curl --connect-to``: against the local stack, whose host names
resolve only inside its processes (local/STACK.md, "Names and trust"), it maps exactly the stack's
``name:port`` pairs (the JSON line's ``hosts``) to their loopback ports for the duration of a
``with`` block; TLS still sees the name, so certificates are checked as deployed.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click
from botocore.exceptions import BotoCoreError, ClientError

from aicc_export.target import Target
from exporter.config import ConfigError, Settings
from exporter.tenants import parse_secret, resolve_tenants, secret_region

__all__ = [
    "REQUEST_FUNCTION",
    "connect_names",
    "function_env",
    "settings_of",
    "tenant_zones",
    "tenants_of",
    "yesterday",
]

REQUEST_FUNCTION = "RequestExportFunction"


class DeploymentError(click.ClickException):
    """The functions' configuration could not be read or is invalid; the message says what to do."""

    exit_code = 2


def function_env(target: Target, logical_id: str = REQUEST_FUNCTION) -> dict[str, str]:
    """The environment the stack gave one of its functions."""
    if target.local is not None:
        env = (target.local.get("function_env") or {}).get(logical_id)
        if not isinstance(env, dict):
            raise DeploymentError(
                f"the --local JSON line has no function_env.{logical_id}: save the line a current `make serve` prints"
            )
        return {str(k): str(v) for k, v in env.items()}
    name = target.functions.get(logical_id)
    if not name:
        raise DeploymentError(f"stack {target.stack_name!r} has no output naming {logical_id}; redeploy the stack")
    try:
        reply = target.client("lambda").get_function_configuration(FunctionName=name)
    except (ClientError, BotoCoreError) as exc:
        raise DeploymentError(
            f"cannot read {logical_id} ({name})'s configuration: {exc}; the CLI needs lambda:GetFunctionConfiguration"
        ) from None
    return {str(k): str(v) for k, v in ((reply.get("Environment") or {}).get("Variables") or {}).items()}


def settings_of(target: Target) -> Settings:
    """The functions' :class:`Settings`, validated as the functions validate them (read once per target)."""
    if "settings" not in target.memo:
        try:
            target.memo["settings"] = Settings.from_env(function_env(target))
        except ConfigError as exc:
            raise DeploymentError(f"{REQUEST_FUNCTION}: {exc}") from None
    settings: Settings = target.memo["settings"]
    return settings


def tenants_of(target: Target, tenant: str | None) -> list[str]:
    """``[tenant]`` when given (checked against the configured tenants), else every configured one."""
    configured = settings_of(target).tenants
    if tenant is None:
        return configured
    if tenant not in configured:
        raise click.BadParameter(
            f"{tenant!r} is not a tenant of this stack (configured: {', '.join(configured)})", param_hint="--tenant"
        )
    return [tenant]


def tenant_zones(target: Target, settings: Settings) -> dict[str, ZoneInfo]:
    """Each configured tenant's time zone: its entry's ``timezone`` in the CC-FS secret, else
    ``TENANT_TIMEZONE`` (read and validated as the functions read it, :mod:`exporter.tenants`)."""
    arn = settings.ccfs_secret_arn
    try:
        sm = target.client("secretsmanager", secret_region(arn))
        value = json.loads(sm.get_secret_value(SecretId=arn).get("SecretString") or "null")
        keys = resolve_tenants(parse_secret(value, arn), arn, settings.tenants, settings.tenant_timezone)
    except (ClientError, BotoCoreError, ValueError, ConfigError) as exc:
        raise DeploymentError(
            f"cannot read the tenants' time zones from the CC-FS secret ({type(exc).__name__}: "
            f"{exc if isinstance(exc, ConfigError) else 'see `aicc-export doctor`'}); run `aicc-export doctor`"
        ) from None
    return {tenant: creds.zone for tenant, creds in keys.by_tenant.items()}


def yesterday(zone: str | ZoneInfo, now: datetime | None = None) -> date:
    """The day before today in ``zone`` (a tenant's time zone)."""
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    return (now or datetime.now(tz)).astimezone(tz).date() - timedelta(days=1)


_lock = threading.Lock()


def _parse_hosts(hosts: Mapping[str, str]) -> dict[tuple[str, int], tuple[str, int]]:
    parsed: dict[tuple[str, int], tuple[str, int]] = {}
    for name, where in hosts.items():
        host, _, port = name.rpartition(":")
        ip, _, real = where.rpartition(":")
        if not host or not port.isdigit() or not ip or not real.isdigit():
            raise DeploymentError(f"--local hosts entry {name!r}: {where!r} is not name:port -> ip:port")
        parsed[(host.lower().rstrip("."), int(port))] = (ip, int(real))
    return parsed


@contextmanager
def connect_names(target: Target) -> Iterator[dict[tuple[str, int], tuple[str, int]]]:
    """Within the block, the local stack's ``name:port`` pairs connect to their loopback ports (no-op on
    AWS, where names resolve through DNS). Other names resolve as before."""
    hosts: Any = (target.local or {}).get("hosts") or {}
    mapping = _parse_hosts(hosts) if isinstance(hosts, dict) else {}
    if not mapping:
        yield mapping
        return

    with _lock:
        previous = socket.getaddrinfo  # whatever resolves names now (restored as it was)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and isinstance(port, int | str) and str(port).isdigit():
            hit = mapping.get((host.lower().rstrip("."), int(port)))
            if hit is not None:
                return previous(hit[0], hit[1], *args, **kwargs)
        return previous(host, port, *args, **kwargs)

    with _lock:
        socket.getaddrinfo = getaddrinfo
    try:
        yield mapping
    finally:
        with _lock:
            socket.getaddrinfo = previous
