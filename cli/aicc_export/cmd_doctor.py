"""``aicc-export doctor``: the preflight checklist after a deploy, each line pass/fail and what to do.

The checks use the functions' own configuration (:mod:`aicc_export.deployment`), secret parsing
(:mod:`exporter.tenants`) and CC-FS client (:mod:`ccfs.client`, signed by :mod:`ccfs.auth`), so what
passes here is what the functions will do. The signed request is ``downloadBillFile`` for a bill
file that cannot exist: CC-FS answers it (``0300012``, no data) without doing anything, and a
rejected signature is HTTP 401 (shared/ccfs-protocol.md §4, §7).
"""

from __future__ import annotations

import io
import json
import socket
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx
from botocore.exceptions import BotoCoreError, ClientError

from aicc_export.deployment import DeploymentError, connect_names, settings_of
from aicc_export.output import Result, finish
from aicc_export.target import Target
from ccfs.client import CcfsClient, CcfsConfig, RetryPolicy
from ccfs.errors import CcfsAuthError, CcfsError, CcfsNotFound, CcfsPermanentError
from exporter.config import ConfigError, Settings
from exporter.tenants import TenantKeys, parse_secret, resolve_tenants, secret_region

__all__ = ["PROBE_BILL_FILE", "command", "describe_tls_error", "run_doctor"]

PROBE_BILL_FILE = "20000101_aiccexportdoctorprobe.zip"
"""A bill file name that is well-formed but names no job: CC-FS answers ``0300012`` and changes nothing."""
PROBE_TIMEOUT = 10.0

# OpenSSL verify codes (X509_V_ERR_*) -> what it means and what to set
_TLS_CODES: dict[int, tuple[str, str]] = {
    9: ("the server certificate is not yet valid", "check the clock here and the certificate's notBefore"),
    10: ("the server certificate has expired", "renew CC-FS's server certificate (the CA bundle cannot fix this)"),
    18: (
        "the server presents a self-signed certificate that is not trusted",
        "put that certificate (PEM) in the SSM parameter CcfsCaBundleParameter names",
    ),
    19: (
        "unknown CA: the chain ends in a self-signed root that is not trusted",
        "put CC-FS's root CA (PEM) in the SSM parameter CcfsCaBundleParameter names",
    ),
    20: (
        "unknown CA: the issuer of the server certificate is not trusted",
        "put CC-FS's issuing/root CA (PEM) in the SSM parameter CcfsCaBundleParameter names",
    ),
    21: (
        "unknown CA: the server certificate cannot be verified (incomplete chain)",
        "put CC-FS's issuing CA (PEM) in the SSM parameter CcfsCaBundleParameter names, or fix the server's chain",
    ),
    62: (
        "name mismatch: the certificate is not for this host name",
        "set CcfsBaseUrl to a name the certificate carries (see its subjectAltName), not an IP address or alias",
    ),
}


def describe_tls_error(exc: BaseException) -> tuple[str, str]:
    """What a failed TLS handshake means and what to set, from the verification error's code."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = int(exc.verify_code or 0)
        if code == 64:  # X509_V_ERR_IP_ADDRESS_MISMATCH: the URL names an IP address
            code = 62
        if code in _TLS_CODES:
            return _TLS_CODES[code]
        if "mismatch" in str(exc.verify_message or "").lower():
            return _TLS_CODES[62]
        return (f"certificate verification failed ({exc.verify_message})", "check CcfsCaBundleParameter's CA bundle")
    return (f"TLS handshake failed ({exc})", "check that CcfsBaseUrl's port speaks HTTPS")


def tls_probe(host: str, port: int, cafile: str | None, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str, str]:
    """Connect and complete a verified TLS handshake with ``host:port``: ``(ok, detail, fix)``."""
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert() or {}
            until = cert.get("notAfter", "?")
            return True, f"{host}:{port} trusted ({tls.version()}, certificate valid until {until})", ""
    except ssl.SSLError as exc:
        what, fix = describe_tls_error(exc)
        return False, f"{host}:{port}: {what}", fix
    except socket.gaierror:
        return False, f"{host} does not resolve", "check CcfsBaseUrl's host name (and DNS/VPC resolution)"
    except TimeoutError:
        return False, f"{host}:{port}: no answer in {timeout:g} s", "check the network path (VPC, NAT, firewall)"
    except OSError as exc:
        return False, f"{host}:{port}: {exc.strerror or exc}", "check CcfsBaseUrl's port and the network path"


def _check_secret(target: Target, settings: Settings, result: Result) -> TenantKeys | None:
    arn = settings.ccfs_secret_arn
    region = secret_region(arn) or target.region
    result.check("region", True, f"stack in {target.region}, secret in {region}")
    sm = target.client("secretsmanager", region)
    try:
        value = sm.get_secret_value(SecretId=arn)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        fix = {
            "ResourceNotFoundException": "create the secret or pass its ARN as CcfsSecretArn",
            "AccessDeniedException": "grant secretsmanager:GetSecretValue (and kms:Decrypt on its key) to your role",
            "DecryptionFailure": "the secret's KMS key refuses decryption: grant kms:Decrypt, pass it as KmsKeyArn",
        }.get(code, "check the secret ARN (CcfsSecretArn) and your permissions")
        result.check("secret readable", False, f"{arn}: {code}", fix)
        return None
    except BotoCoreError as exc:
        result.check("secret readable", False, f"{arn}: {exc}", "check the secret's region and your network")
        return None
    result.check("secret readable", True, arn.rsplit(":", 1)[-1])
    _check_kms(target, sm, arn, region, result)
    try:
        keys = resolve_tenants(
            parse_secret(json.loads(value.get("SecretString") or "null"), arn),
            arn,
            settings.tenants,
            settings.tenant_timezone,
        )
    except ValueError as exc:  # JSON
        result.check("secret well-formed", False, f"not JSON ({type(exc).__name__})", "store the secret as JSON")
        return None
    except ConfigError as exc:
        result.check("secret well-formed", False, str(exc), "fix the secret's JSON (README, 'The CC-FS secret')")
        return None
    for tenant, creds in keys.by_tenant.items():
        result.check(f"secret: tenant {tenant}", True, f"ak and sk present, time zone {creds.timezone}")
    return keys


def _check_kms(target: Target, sm: Any, arn: str, region: str, result: Result) -> None:
    try:
        key_id = sm.describe_secret(SecretId=arn).get("KmsKeyId")
    except (ClientError, BotoCoreError) as exc:
        result.check("KMS key", False, f"describe the secret: {exc}", "grant secretsmanager:DescribeSecret")
        return
    if not key_id:
        result.check("KMS key", True, "aws/secretsmanager (AWS managed): Decrypt follows GetSecretValue")
        return
    try:
        meta = target.client("kms", region).describe_key(KeyId=key_id)["KeyMetadata"]
    except (ClientError, BotoCoreError) as exc:
        result.check(
            "KMS key",
            False,
            f"{key_id}: cannot describe it ({exc})",
            "grant kms:DescribeKey; and pass the key as KmsKeyArn so the functions get kms:Decrypt",
        )
        return
    state = meta.get("KeyState", "?")
    result.check(
        "KMS key",
        state == "Enabled",
        f"{meta.get('KeyId')} {state}, {meta.get('KeyManager', '?').lower()} key; the secret decrypted for you",
        "enable the key (a disabled or pending-deletion key cannot decrypt the secret)",
    )


@contextmanager
def _pem_file(pem: str | None) -> Iterator[str | None]:
    if not pem:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="aicc-doctor-") as tmp:
        path = Path(tmp) / "ca.pem"
        path.write_text(pem, encoding="utf-8")
        yield str(path)


def _ca_bundle(target: Target, settings: Settings, result: Result) -> tuple[bool, str | None]:
    param = settings.ccfs_ca_bundle_param
    if not param:
        result.check("CC-FS CA bundle", True, "none configured: CC-FS must present a publicly trusted certificate")
        return True, None
    try:
        pem = target.client("ssm").get_parameter(Name=param, WithDecryption=True)["Parameter"]["Value"]
    except (ClientError, BotoCoreError) as exc:
        result.check("CC-FS CA bundle", False, f"SSM {param}: {exc}", "create the parameter (PEM) or fix its name")
        return False, None
    ok = "-----BEGIN CERTIFICATE-----" in pem
    result.check("CC-FS CA bundle", ok, f"SSM {param}", "" if ok else "the parameter must hold PEM certificates")
    return ok, pem if ok else None


def _check_ccfs(target: Target, settings: Settings, keys: TenantKeys | None, result: Result) -> None:
    ok, pem = _ca_bundle(target, settings, result)
    if not ok:
        return
    url = urlsplit(settings.ccfs_base_url)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    with _pem_file(pem) as cafile:
        if url.scheme == "https":
            reached, detail, fix = tls_probe(host, port, cafile)
            result.check("CC-FS reachable (TLS)", reached, detail, fix)
            if not reached:
                return
        if keys is None:
            return
        seen: set[str] = set()
        for tenant, creds in keys.by_tenant.items():
            if creds.ak in seen:
                continue
            seen.add(creds.ak)
            _signed_probe(settings, tenant, creds.ak, creds.sk, cafile, result)


def _signed_probe(settings: Settings, tenant: str, ak: str, sk: str, cafile: str | None, result: Result) -> None:
    config = CcfsConfig(
        base_url=settings.ccfs_base_url,
        ak=ak,
        sk=sk,
        ca_bundle=cafile,
        connect_timeout=min(settings.ccfs_connect_timeout, PROBE_TIMEOUT),
        read_timeout=PROBE_TIMEOUT,
        retry=RetryPolicy(attempts=1),
    )
    name = f"signed request accepted ({tenant})"
    try:
        with CcfsClient(config) as client:
            client.download_bill_file(PROBE_BILL_FILE, io.BytesIO())
    except CcfsAuthError:
        result.check(
            name,
            False,
            "HTTP 401: CC-FS rejected the signature",
            "check this tenant's ak/sk in the secret, and this machine's clock (auth-v2 timestamps)",
        )
        return
    except (CcfsNotFound, CcfsPermanentError) as exc:  # an answer to a signed request: auth passed
        result.check(name, True, f"downloadBillFile answered {exc.code or 'an error'} as expected (no side effect)")
        return
    except CcfsError as exc:
        result.check(name, False, str(exc), "CC-FS did not answer the signed request: see the error")
        return
    result.check(name, True, "downloadBillFile answered")


def _check_callback(target: Target, result: Result) -> None:
    url = target.callback_url
    if not url:
        result.check("callback URL answers 401 unsigned", False, "the stack has no CallbackUrl", "redeploy the stack")
        return
    verify: Any = True
    if target.local is not None and target.local.get("api_ca_file"):
        verify = ssl.create_default_context(cafile=str(target.local["api_ca_file"]))
    try:
        with httpx.Client(verify=verify, timeout=PROBE_TIMEOUT) as http:
            status = http.post(url, json={}, headers={"Content-Type": "application/json;charset=UTF-8"}).status_code
    except httpx.HTTPError as exc:
        result.check("callback URL answers 401 unsigned", False, f"{url}: {exc}", "check the API stage is deployed")
        return
    result.check(
        "callback URL answers 401 unsigned",
        status == 401,
        f"HTTP {status}",
        "the callback must refuse unsigned posts: is this the stack's CallbackUrl, and is CallbackFunction deployed?",
    )


def _check_schedule(target: Target, result: Result) -> None:
    if target.local is not None:
        on = bool(target.local.get("schedule"))
        name = target.local.get("schedule_name", "PlanningSchedule")
        result.check(
            "schedule",
            True,
            f"{name} {'ENABLED' if on else 'DISABLED'} (local: make serve SERVE_ARGS=--schedule fires it)",
        )
        return
    try:
        cfn = target.client("cloudformation")
        res = cfn.describe_stack_resource(StackName=target.stack_name, LogicalResourceId="PlanningSchedule")
        name = res["StackResourceDetail"]["PhysicalResourceId"]
        state = target.client("scheduler").get_schedule(Name=name).get("State", "?")
    except (ClientError, BotoCoreError) as exc:
        result.check("schedule", False, f"cannot read PlanningSchedule: {exc}", "grant scheduler:GetSchedule")
        return
    hint = "" if state == "ENABLED" else " - switch it on after `canary` passes: sam deploy ... ScheduleEnabled=true"
    result.check("schedule", True, f"{name} {state}{hint}")


def _check_alarm_topic(target: Target, result: Result) -> None:
    name = "alarm topic has a confirmed subscription"
    arn = target.alarm_topic_arn
    if not arn:
        result.check(name, False, "the stack has no AlarmTopicArn output", "redeploy the stack")
        return
    try:
        pages = target.client("sns").get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
        subs = [s for page in pages for s in page.get("Subscriptions", [])]
    except (ClientError, BotoCoreError) as exc:
        result.check(name, False, f"{arn}: {exc}", "grant sns:ListSubscriptionsByTopic")
        return
    confirmed = [s for s in subs if s.get("SubscriptionArn", "").startswith("arn:")]
    pending = len(subs) - len(confirmed)
    result.check(
        name,
        bool(confirmed),
        f"{len(confirmed)} confirmed ({', '.join(sorted({s.get('Protocol', '?') for s in confirmed})) or 'none'})"
        + (f", {pending} pending confirmation" if pending else ""),
        "subscribe (aws sns subscribe --topic-arn ... --protocol email ...) and confirm it: alarms go nowhere else",
    )


def run_doctor(target: Target) -> Result:
    """Every preflight check against ``target``."""
    result = Result("doctor")
    try:
        settings = settings_of(target)
    except DeploymentError as exc:
        result.check("function configuration", False, exc.message, "fix the stack parameters and redeploy")
        return result
    result.check(
        "function configuration",
        True,
        f"CC-FS {settings.ccfs_base_url}, tenants {', '.join(settings.tenants)}, zone {settings.tenant_timezone}",
    )
    with connect_names(target):
        keys = _check_secret(target, settings, result)
        _check_ccfs(target, settings, keys, result)
        _check_callback(target, result)
    _check_schedule(target, result)
    _check_alarm_topic(target, result)
    result.data["tenants"] = settings.tenants
    return result


@click.command("doctor")
@click.pass_context
def command(ctx: click.Context) -> None:
    """Preflight after a deploy: secret, KMS, CC-FS trust and auth, callback URL, schedule, alarms."""
    finish(ctx, run_doctor(ctx.obj["target"]()))
