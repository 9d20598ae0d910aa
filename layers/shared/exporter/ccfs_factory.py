"""Build the CC-FS clients, the recording HTTP client and the callback's secret lookup from Secrets
Manager / SSM.

The ak/sk live only in Secrets Manager: one secret, ``{"ak": ..., "sk": ...}`` for one developer
account or a per-tenant map (``exporter.tenants``); the optional CA bundles in SSM parameters.

Two trust stores, never one: CC-FS often has a private CA (``CCFS_CA_BUNDLE_PARAM``: the CC-FS
client then trusts that CA only), while the pre-signed recording URLs it hands out point at object
storage — public OBS (a public CA, in the system trust store) or on-premises LSS (maybe a private CA
of its own, ``RECORDING_CA_BUNDLE_PARAM``, trusted in addition to the system store). Fetching the
recordings through the CC-FS client would fail TLS on every recording as soon as a private CC-FS CA
is configured. Both are read through Powertools Parameters, which caches them (``max_age``) so a
warm function does not call Secrets Manager per request but still picks up a rotation.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

from exporter import log_redaction
from exporter.aws import client, logger, metrics
from exporter.config import ConfigError, Settings
from exporter.tenants import TenantKeys, parse_secret, resolve_tenants, secret_region

if TYPE_CHECKING:  # imported lazily: the callback only needs secret_for, not the HTTP clients
    import httpx

    from ccfs.client import CcfsClient

__all__ = [
    "ccfs_client",
    "clear_caches",
    "close_clients",
    "count_unknown_code",
    "credentials",
    "recording_http",
    "secret_for",
    "tenant_keys",
    "tenant_zone",
]

SECRET_MAX_AGE = 300
CA_MAX_AGE = 3600

_clients: dict[str, tuple[tuple[str, str, str, str | None], CcfsClient]] = {}
"""tenant -> (what the client was built from, the client)."""
_clients_lock = threading.Lock()
_recording_http: tuple[str | None, httpx.Client] | None = None
_recording_lock = threading.Lock()


@cache
def _secrets(region: str | None = None) -> SecretsProvider:
    # Providers on the process's shared boto3 session: Powertools' default providers (get_secret,
    # get_parameter) each build their own session and reload the service models on the first call,
    # 110-180 ms of every cold start measured by bench (coldstart); a client on the shared session
    # costs ~10 ms. Caching (max_age) is the provider's own. ``region``: the secret's own (a secret
    # lives in one region; its ARN says which, and GetSecretValue elsewhere answers "not found").
    return SecretsProvider(boto3_client=client("secretsmanager", region))


@cache
def _ssm() -> SSMProvider:
    return SSMProvider(boto3_client=client("ssm"))


def clear_caches() -> None:
    """Forget the cached secret and CA bundle values and the recording HTTP client (tests; a
    rotation is picked up by max_age)."""
    global _recording_http
    _secrets.cache_clear()
    _ssm.cache_clear()
    with _recording_lock:
        if _recording_http is not None:
            _recording_http[1].close()
        _recording_http = None


def tenant_keys(settings: Settings) -> TenantKeys:
    """Every configured tenant's ak/sk and time zone from the secret (either form, see
    ``exporter.tenants``). Raises ConfigError naming the secret and the bad tenant/field, never a value."""
    try:
        value: Any = _secrets(secret_region(settings.ccfs_secret_arn)).get(
            settings.ccfs_secret_arn, transform="json", max_age=SECRET_MAX_AGE
        )
    except parameters.exceptions.TransformParameterError:
        raise ConfigError(
            f'secret {settings.ccfs_secret_arn} is not JSON; store it as {{"ak": "...", "sk": "..."}} '
            'or {"tenants": {"<accountId>": {"ak": "...", "sk": "..."}}}'
        ) from None
    secret = parse_secret(value, settings.ccfs_secret_arn)
    keys = resolve_tenants(secret, settings.ccfs_secret_arn, settings.tenants, settings.tenant_timezone)
    for creds in keys.by_tenant.values():
        log_redaction.mask(creds.sk)  # no pattern can find an sk in a log line: mask it by value
    return keys


def credentials(settings: Settings, tenant: str) -> tuple[str, str]:
    """``(ak, sk)`` of ``tenant``'s developer account."""
    creds = tenant_keys(settings).for_tenant(tenant)
    return creds.ak, creds.sk


def tenant_zone(settings: Settings, tenant: str) -> ZoneInfo:
    """The time zone CC-FS uses for ``tenant`` (its ``timezone`` in the secret, else TENANT_TIMEZONE)."""
    return tenant_keys(settings).for_tenant(tenant).zone


def secret_for(settings: Settings) -> Callable[[str], str | None]:
    """A ``secret_for(ak) -> sk | None`` callable for ``ccfs.auth.verify``: any configured tenant's ak."""
    return tenant_keys(settings).sk_for


def _pem_file(param: str, prefix: str) -> str:
    """The PEM bundle held by SSM parameter ``param``, written once to a file named after its digest
    (an SSLContext loads CAs from a file)."""
    pem = _ssm().get(param, max_age=CA_MAX_AGE)
    if not isinstance(pem, str) or "BEGIN CERTIFICATE" not in pem:
        raise ConfigError(f"SSM parameter {param} does not hold a PEM CA bundle")
    digest = hashlib.sha256(pem.encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"{prefix}-{digest}.pem")
    if not os.path.exists(path):
        with tempfile.NamedTemporaryFile("w", dir=tempfile.gettempdir(), delete=False) as tmp:
            tmp.write(pem)
        os.replace(tmp.name, path)
    return path


def _ca_bundle_path(settings: Settings) -> str | None:
    if not settings.ccfs_ca_bundle_param:
        return None
    return _pem_file(settings.ccfs_ca_bundle_param, "ccfs-ca")


def count_unknown_code(operation: str, code: str) -> None:
    """Every undocumented resultCode CC-FS answers: metric ``CcfsUnknownResultCode`` (alarmed), so a
    new vendor code is seen at once even while retries still succeed (protocol §7)."""
    metrics.add_metric(name="CcfsUnknownResultCode", unit=MetricUnit.Count, value=1)
    logger.warning("undocumented CC-FS resultCode", extra={"operation": operation, "code": code})


def ccfs_client(settings: Settings, tenant: str) -> CcfsClient:
    """``tenant``'s CC-FS client (signed with its ak/sk), one per tenant kept warm across invocations
    and rebuilt when that tenant's credentials or the CA bundle change. Thread-safe (recording batches
    run on several threads)."""
    from ccfs.client import CcfsClient, CcfsConfig

    creds = tenant_keys(settings).for_tenant(tenant)
    ca = _ca_bundle_path(settings)
    key = (settings.ccfs_base_url, creds.ak, hashlib.sha256(creds.sk.encode()).hexdigest(), ca)
    with _clients_lock:
        cached = _clients.get(tenant)
        if cached is not None and cached[0] == key:
            return cached[1]
        if cached is not None:
            cached[1].close()
        built = CcfsClient(
            CcfsConfig(
                base_url=settings.ccfs_base_url,
                ak=creds.ak,
                sk=creds.sk,
                ca_bundle=ca,
                connect_timeout=settings.ccfs_connect_timeout,
                read_timeout=settings.ccfs_read_timeout,
            ),
            on_unknown_code=count_unknown_code,
        )
        _clients[tenant] = (key, built)
        return built


def close_clients() -> None:
    """Close and forget every cached CC-FS client (tests)."""
    with _clients_lock:
        for _, built in _clients.values():
            built.close()
        _clients.clear()


def recording_http(settings: Settings) -> httpx.Client:
    """The process-wide client for pre-signed recording URLs (OBS/LSS), never for CC-FS calls.

    Trust: the system store — what httpx trusts by default: ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when
    set, else certifi (which holds the public CAs OBS uses) — plus the PEM bundle in
    ``RECORDING_CA_BUNDLE_PARAM`` when set (an LSS with a private CA). The CC-FS CA bundle is not
    trusted here. Rebuilt when that bundle changes. No redirects: a pre-signed URL is fetched as is.
    """
    global _recording_http
    import httpx

    param = settings.recording_ca_bundle_param
    extra = _pem_file(param, "recording-ca") if param else None
    with _recording_lock:
        if _recording_http is not None and _recording_http[0] == extra:
            return _recording_http[1]
        context = httpx.create_ssl_context(verify=True, trust_env=True)
        if extra is not None:
            context.load_verify_locations(cafile=extra)
        http = httpx.Client(
            verify=context,
            timeout=httpx.Timeout(settings.ccfs_read_timeout, connect=settings.ccfs_connect_timeout),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=20),
            follow_redirects=False,
        )
        if _recording_http is not None:
            _recording_http[1].close()
        _recording_http = (extra, http)
        return http
