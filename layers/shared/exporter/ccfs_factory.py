"""Build the CC-FS client and the callback's secret lookup from Secrets Manager / SSM.

The ak/sk live only in Secrets Manager (JSON ``{"ak": ..., "sk": ...}``); the optional CA bundle in
an SSM parameter. Both are read through Powertools Parameters, which caches them (``max_age``) so a
warm function does not call Secrets Manager per request but still picks up a rotation.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities import parameters

from exporter.config import ConfigError, Settings

if TYPE_CHECKING:  # imported lazily: the callback only needs secret_for, not the HTTP client
    from ccfs.client import CcfsClient

__all__ = ["ccfs_client", "credentials", "secret_for"]

SECRET_MAX_AGE = 300
CA_MAX_AGE = 3600

_client: CcfsClient | None = None
_client_key: tuple[str, str, str, str | None] | None = None


def credentials(settings: Settings) -> tuple[str, str]:
    """``(ak, sk)`` from the secret. Raises ConfigError naming the secret (never its value)."""
    try:
        value: Any = parameters.get_secret(settings.ccfs_secret_arn, transform="json", max_age=SECRET_MAX_AGE)
    except parameters.exceptions.TransformParameterError:
        raise ConfigError(
            f'secret {settings.ccfs_secret_arn} is not JSON; store it as {{"ak": "...", "sk": "..."}}'
        ) from None
    if not isinstance(value, dict) or not value.get("ak") or not value.get("sk"):
        raise ConfigError(f"secret {settings.ccfs_secret_arn} must hold JSON with non-empty 'ak' and 'sk'")
    return str(value["ak"]), str(value["sk"])


def secret_for(settings: Settings) -> Any:
    """A ``secret_for(ak) -> sk | None`` callable for ``ccfs.auth.verify``."""
    ak, sk = credentials(settings)
    return lambda candidate: sk if candidate == ak else None


def _ca_bundle_path(settings: Settings) -> str | None:
    if not settings.ccfs_ca_bundle_param:
        return None
    pem = parameters.get_parameter(settings.ccfs_ca_bundle_param, max_age=CA_MAX_AGE)
    if not isinstance(pem, str) or "BEGIN CERTIFICATE" not in pem:
        raise ConfigError(f"SSM parameter {settings.ccfs_ca_bundle_param} does not hold a PEM CA bundle")
    digest = hashlib.sha256(pem.encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"ccfs-ca-{digest}.pem")
    if not os.path.exists(path):
        with tempfile.NamedTemporaryFile("w", dir=tempfile.gettempdir(), delete=False) as tmp:
            tmp.write(pem)
        os.replace(tmp.name, path)
    return path


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
            )
        )
        _client_key = key
    return _client
