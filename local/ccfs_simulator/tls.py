"""The simulator's TLS material: a fresh throw-away CA (``trustme``) per server with a certificate
for that server's names only, and the trust the callback client uses towards the callback URL
(CC-FS's ``truststore.jks``)."""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["callback_trust", "server_context"]


def server_context(
    directory: Path, authority_name: str, names: list[str], file_name: str = "ca.pem"
) -> tuple[ssl.SSLContext, str]:
    """A server context with a certificate for ``names`` from a fresh CA; the CA's PEM path."""
    import trustme

    authority = trustme.CA(organization_name=authority_name)
    cert = authority.issue_cert(*names)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    cert.configure_cert(context)
    bundle = directory / file_name
    authority.cert_pem.write_to_path(str(bundle))
    return context, str(bundle)


def callback_trust(setting: bool | str) -> ssl.SSLContext | bool:
    """``SimulatorConfig.callback_verify`` as httpx ``verify=``: False, a CA file, or the system store."""
    if setting is False:
        return False
    if isinstance(setting, str):
        return ssl.create_default_context(cafile=setting)
    return ssl.create_default_context()
