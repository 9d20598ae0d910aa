"""The stack's peers outside AWS, stood up as a deployment sees them: the CC-FS simulator (its own
name and CA, and its object store's), the API's certificate (a stand-in for Amazon's public chain,
trusted by the simulator's callback client as CC-FS's truststore), the names and CA store the
function processes get, and the CC-FS secret and CA parameter the handlers read."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from local.stack.config import CCFS_HOST, CCFS_PORT, OBS_HOST, StackConfig

__all__ = ["ApiCertificate", "Network", "api_certificate", "network", "start_simulator", "store_ccfs_secret"]


@dataclass(frozen=True)
class ApiCertificate:
    chain: str  # certificate chain PEM path (for the front)
    key: str  # private key PEM path (for the front)
    ca_file: str  # the CA's PEM path (CC-FS's truststore: the simulator's callback trust)


def api_certificate(run_dir: Path, api_domain: str) -> ApiCertificate:
    """A CA and a certificate for the API's domain, standing in for API Gateway's public chain
    (Amazon Root CA); the CA goes to the simulator's callback trust, as the CA of the callback URL
    goes into CC-FS's truststore.jks."""
    import trustme

    directory = run_dir / "tls"
    directory.mkdir(exist_ok=True)
    authority = trustme.CA(organization_name="Local API Gateway CA (stands in for Amazon Root CA 1)")
    cert = authority.issue_cert(api_domain)
    chain, key = directory / "api-chain.pem", directory / "api-key.pem"
    cert.cert_chain_pems[0].write_to_path(str(chain))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(chain), append=True)
    cert.private_key_pem.write_to_path(str(key))
    authority.cert_pem.write_to_path(str(directory / "api-ca.pem"))
    return ApiCertificate(str(chain), str(key), str(directory / "api-ca.pem"))


def start_simulator(
    cfg: StackConfig,
    zones: dict[str, str],
    separate_keys: bool,
    base_date: date,
    callback_ca_file: str,
) -> Any:
    """The CC-FS simulator for the stack's tenants (``zones``: tenant -> zone), started."""
    from local.ccfs_simulator import PROFILES, Simulator, SimulatorConfig, TenantSpec

    if cfg.profile not in PROFILES:
        raise ValueError(f"unknown fault profile {cfg.profile!r} (one of {', '.join(sorted(PROFILES))})")
    faults = cfg.faults if cfg.faults is not None else PROFILES[cfg.profile]
    if not separate_keys and len(set(zones.values())) > 1:
        raise ValueError("tenants in several time zones need their own keys (tenant_keys): the zone is per tenant")
    tenants = [TenantSpec(t, tz=zone, calls_per_day=cfg.calls) for t, zone in zones.items()]
    if separate_keys:
        tenants = [replace(t, ak=f"local-ak-{t.account_id}", sk=secrets.token_hex(16)) for t in tenants]
    sim_config = SimulatorConfig(
        seed=cfg.seed,
        tenants=tenants,
        callback_retry_interval=cfg.callback_retry_interval,
        base_date=base_date,
        days=cfg.days,
        faults=faults,
        **{
            "ccfs_name": CCFS_HOST,
            "obs_name": OBS_HOST,
            "obs_url_port": 443,
            # CC-FS's truststore.jks holding the callback URL's chain (aicc.ssl.trustAll=false)
            "callback_verify": callback_ca_file,
            **cfg.simulator,
        },
    )
    return Simulator(sim_config).start()


@dataclass(frozen=True)
class Network:
    ccfs_base_url: str  # CcfsBaseUrl
    hosts: dict[str, str]  # the stack's name service (netmap): name:port -> 127.0.0.1:port
    system_ca_file: str  # the function processes' SSL_CERT_FILE


def network(sim: Any, run_dir: Path) -> Network:
    """Names and trust as a deployment has them: CC-FS and the object store under their own
    names and CAs; the function processes resolve them through netmap and trust the object
    store through the "system" store (``SSL_CERT_FILE`` = certifi + its CA), CC-FS through the
    CA bundle SSM parameter (:func:`store_ccfs_secret`)."""
    import certifi

    hosts: dict[str, str] = {}
    if sim.obs_host == OBS_HOST:
        ccfs_base_url = f"https://{CCFS_HOST}:{CCFS_PORT}"
        hosts = {
            f"{CCFS_HOST}:{CCFS_PORT}": f"127.0.0.1:{sim.port}",
            f"{OBS_HOST}:443": f"127.0.0.1:{sim.obs_port}",
        }
    else:  # the simulator was configured otherwise (StackConfig.simulator): use its addresses
        ccfs_base_url = sim.base_url
    system = run_dir / "tls" / "system-ca.pem"
    system.parent.mkdir(exist_ok=True)
    bundle = Path(certifi.where()).read_text(encoding="utf-8")
    if sim.obs_ca_bundle:  # its own CA; CC-FS's only when configured to share CC-FS's server
        bundle += "\n" + Path(sim.obs_ca_bundle).read_text(encoding="utf-8")
    system.write_text(bundle, encoding="utf-8")
    return Network(ccfs_base_url, hosts, str(system))


def store_ccfs_secret(
    client: Callable[[str], Any],
    stack_name: str,
    sim: Any,
    tenants: list[str],
    zone_of: Callable[[str], ZoneInfo],
    separate_keys: bool,
) -> tuple[str, str]:
    """The CC-FS secret in Secrets Manager and CC-FS's CA PEM in SSM: ``(secret ARN, parameter name)``."""
    value: dict[str, Any] = {"ak": sim.ak, "sk": sim.sk}
    if separate_keys:  # the per-tenant map form (README "CC-FS secret")
        value = {"tenants": {}}
        for tenant in tenants:
            ak, sk = sim.tenant_keys(tenant)
            value["tenants"][tenant] = {"ak": ak, "sk": sk, "timezone": str(zone_of(tenant))}
    secret = client("secretsmanager").create_secret(Name=f"{stack_name}/ccfs", SecretString=json.dumps(value))
    ca_param = f"/{stack_name}/ccfs-ca"
    pem = Path(sim.ca_bundle).read_text(encoding="utf-8")
    client("ssm").put_parameter(Name=ca_param, Value=pem, Type="String")
    return str(secret["ARN"]), ca_param
