"""Build the CC-FS client and the callback's secret lookup from Secrets Manager / SSM.

The ak/sk live only in Secrets Manager (JSON ``{"ak": ..., "sk": ...}``); the optional CA bundle in
an SSM parameter. Both are read through Powertools Parameters, which caches them (``max_age``) so a
warm function does not call Secrets Manager per request but still picks up a rotation.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

from exporter import log_redaction
from exporter.aws import client, logger, metrics
from exporter.config import ConfigError, Settings

if TYPE_CHECKING:  # imported lazily: the callback only needs secret_for, not the HTTP client
    from ccfs.client import CcfsClient

__all__ = ["ccfs_client", "clear_caches", "count_unknown_code", "credentials", "secret_for"]

SECRET_MAX_AGE = 300
CA_MAX_AGE = 3600

_client: CcfsClient | None = None
_client_key: tuple[str, str, str, str | None] | None = None


@cache
def _secrets() -> SecretsProvider:
    # Providers on the process's shared boto3 session: Powertools' default providers (get_secret,
    # get_parameter) each build their own session and reload the service models on the first call,
    # 110-180 ms of every cold start measured by bench (coldstart); a client on the shared session
    # costs ~10 ms. Caching (max_age) is the provider's own.
    return SecretsProvider(boto3_client=client("secretsmanager"))


@cache
def _ssm() -> SSMProvider:
    return SSMProvider(boto3_client=client("ssm"))


def clear_caches() -> None:
    """Forget the cached secret and CA bundle values (tests; a rotation is picked up by max_age)."""
    _secrets.cache_clear()
    _ssm.cache_clear()


def credentials(settings: Settings) -> tuple[str, str]:
    """``(ak, sk)`` from the secret. Raises ConfigError naming the secret (never its value)."""
    try:
        value: Any = _secrets().get(settings.ccfs_secret_arn, transform="json", max_age=SECRET_MAX_AGE)
    except parameters.exceptions.TransformParameterError:
        raise ConfigError(
            f'secret {settings.ccfs_secret_arn} is not JSON; store it as {{"ak": "...", "sk": "..."}}'
        ) from None
    if not isinstance(value, dict) or not value.get("ak") or not value.get("sk"):
        raise ConfigError(f"secret {settings.ccfs_secret_arn} must hold JSON with non-empty 'ak' and 'sk'")
    log_redaction.mask(str(value["sk"]))  # no pattern can find an sk in a log line: mask it by value
    return str(value["ak"]), str(value["sk"])


def secret_for(settings: Settings) -> Any:
    """A ``secret_for(ak) -> sk | None`` callable for ``ccfs.auth.verify``."""
    ak, sk = credentials(settings)
    return lambda candidate: sk if candidate == ak else None


def _ca_bundle_path(settings: Settings) -> str | None:
    if not settings.ccfs_ca_bundle_param:
        return None
    pem = _ssm().get(settings.ccfs_ca_bundle_param, max_age=CA_MAX_AGE)
    if not isinstance(pem, str) or "BEGIN CERTIFICATE" not in pem:
        raise ConfigError(f"SSM parameter {settings.ccfs_ca_bundle_param} does not hold a PEM CA bundle")
    digest = hashlib.sha256(pem.encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"ccfs-ca-{digest}.pem")
    if not os.path.exists(path):
        with tempfile.NamedTemporaryFile("w", dir=tempfile.gettempdir(), delete=False) as tmp:
            tmp.write(pem)
        os.replace(tmp.name, path)
    return path


def count_unknown_code(operation: str, code: str) -> None:
    """Every undocumented resultCode CC-FS answers: metric ``CcfsUnknownResultCode`` (alarmed), so a
    new vendor code is seen at once even while retries still succeed (protocol §7)."""
    metrics.add_metric(name="CcfsUnknownResultCode", unit=MetricUnit.Count, value=1)
    logger.warning("undocumented CC-FS resultCode", extra={"operation": operation, "code": code})


def ccfs_client(settings: Settings) -> CcfsClient:
    """The process-wide CC-FS client, rebuilt when the credentials or CA bundle change."""
    global _client, _client_key
    from ccfs.client import CcfsClient, CcfsConfig

    ak, sk = credentials(settings)
    ca = _ca_bundle_path(settings)
    key = (settings.ccfs_base_url, ak, hashlib.sha256(sk.encode()).hexdigest(), ca)
    if _client is None or key != _client_key:
        if _client is not None:
            _client.close()
        _client = CcfsClient(
            CcfsConfig(
                base_url=settings.ccfs_base_url,
                ak=ak,
                sk=sk,
                ca_bundle=ca,
                connect_timeout=settings.ccfs_connect_timeout,
                read_timeout=settings.ccfs_read_timeout,
            ),
            on_unknown_code=count_unknown_code,
        )
        _client_key = key
    return _client
