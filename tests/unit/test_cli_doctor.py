"""`aicc-export doctor`: TLS failures named (unknown CA, name mismatch, expired) against real TLS
servers; the secret, KMS and alarm-topic checks on moto."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import trustme

from aicc_export.cmd_doctor import run_doctor, tls_probe
from aicc_export.deployment import connect_names
from aicc_export.target import Target
from tests.unit.cli_check_helpers import cli_target


class OneTlsServer:
    """A TLS server on 127.0.0.1:0 answering handshakes with ``cert`` until stopped."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(self.context)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def tls_server() -> Iterator:
    servers: list[OneTlsServer] = []

    def start(cert: trustme.LeafCert) -> OneTlsServer:
        servers.append(OneTlsServer(cert))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def test_tls_probe_passes_with_the_right_ca_and_name(tls_server, tmp_path):
    ca = trustme.CA()
    server = tls_server(ca.issue_cert("127.0.0.1"))
    ok, detail, fix = tls_probe("127.0.0.1", server.port, _ca_file(ca, tmp_path))
    assert ok and detail.startswith(f"127.0.0.1:{server.port} trusted (TLSv1.") and fix == ""


def test_tls_probe_names_an_unknown_ca(tls_server, tmp_path):
    server = tls_server(trustme.CA().issue_cert("127.0.0.1"))
    ok, detail, fix = tls_probe("127.0.0.1", server.port, _ca_file(trustme.CA(), tmp_path))
    assert not ok and "unknown CA" in detail and "CcfsCaBundleParameter" in fix


def test_tls_probe_names_a_name_mismatch(tls_server, tmp_path):
    ca = trustme.CA()
    server = tls_server(ca.issue_cert("ccfs.other.example"))
    ok, detail, fix = tls_probe("127.0.0.1", server.port, _ca_file(ca, tmp_path))
    assert not ok and "name mismatch" in detail and "CcfsBaseUrl" in fix


def test_tls_probe_names_an_expired_certificate(tls_server, tmp_path):
    ca = trustme.CA()
    past = datetime.now(UTC) - timedelta(days=2)
    server = tls_server(ca.issue_cert("127.0.0.1", not_before=past - timedelta(days=30), not_after=past))
    ok, detail, fix = tls_probe("127.0.0.1", server.port, _ca_file(ca, tmp_path))
    assert not ok and "expired" in detail and "renew" in fix


def test_tls_probe_says_when_nothing_listens(tmp_path):
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    ok, detail, _ = tls_probe("127.0.0.1", port, None, timeout=2)
    assert not ok and detail.startswith(f"127.0.0.1:{port}: ")


def _checks(result) -> dict[str, tuple[bool, str, str]]:
    return {c.name: (c.ok, c.detail, c.fix) for c in result.checks}


def test_doctor_reads_the_secret_per_tenant_and_names_a_tenant_without_credentials(aws):
    sm = boto3.client("secretsmanager")
    sm.put_secret_value(
        SecretId=aws.secret_arn,
        SecretString=json.dumps({"tenants": {"acct001": {"ak": "a1", "sk": "s1", "timezone": "Asia/Tokyo"}}}),
    )
    target = cli_target(aws, CCFS_BASE_URL="https://127.0.0.1:1", TENANT_ACCOUNT_IDS="acct001")
    checks = _checks(run_doctor(target))
    assert checks["secret readable"][0] and checks["secret: tenant acct001"] == (
        True,
        "ak and sk present, time zone Asia/Tokyo",
        "",
    )
    assert checks["KMS key"][0] and "AWS managed" in checks["KMS key"][1]
    assert not checks["CC-FS reachable (TLS)"][0]  # nothing listens on port 1

    target = cli_target(aws, CCFS_BASE_URL="https://127.0.0.1:1", TENANT_ACCOUNT_IDS="acct001,acct002")
    result = run_doctor(target)
    ok, detail, _ = _checks(result)["secret well-formed"]
    assert not ok and "no credentials for tenant acct002" in detail and "s1" not in detail
    assert not result.ok


def test_doctor_refuses_a_secret_that_is_not_json_without_quoting_it(aws):
    boto3.client("secretsmanager").put_secret_value(SecretId=aws.secret_arn, SecretString="ak=x sk=topsecret")
    checks = _checks(run_doctor(cli_target(aws, CCFS_BASE_URL="https://127.0.0.1:1")))
    ok, detail, _ = checks["secret well-formed"]
    assert not ok and "not JSON" in detail and "topsecret" not in detail


def test_doctor_fails_on_a_disabled_customer_kms_key(aws):
    kms = boto3.client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    boto3.client("secretsmanager").update_secret(SecretId=aws.secret_arn, KmsKeyId=key)
    kms.disable_key(KeyId=key)
    ok, detail, fix = _checks(run_doctor(cli_target(aws, CCFS_BASE_URL="https://127.0.0.1:1")))["KMS key"]
    assert not ok and "Disabled" in detail and "enable the key" in fix


def test_doctor_needs_a_confirmed_alarm_subscription(aws):
    sns = boto3.client("sns")
    topic = sns.create_topic(Name="aicc-alarms")["TopicArn"]
    target = cli_target(aws, CCFS_BASE_URL="https://127.0.0.1:1")
    target.alarm_topic_arn = topic
    name = "alarm topic has a confirmed subscription"
    ok, detail, fix = _checks(run_doctor(target))[name]
    assert not ok and detail.startswith("0 confirmed") and "subscribe" in fix
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:ops")
    ok, detail, _ = _checks(run_doctor(target))[name]
    assert ok and detail.startswith("1 confirmed (sqs)")


def test_doctor_reports_an_invalid_function_configuration_as_one_failed_line(aws):
    result = run_doctor(cli_target(aws, WINDOW_MINUTES="1"))
    assert [(c.name, c.ok) for c in result.checks] == [("function configuration", False)]
    assert "WINDOW_MINUTES" in result.checks[0].detail


def test_the_local_stacks_names_connect_to_their_ports_only_inside_the_block(tls_server, tmp_path):
    ca = trustme.CA()
    server = tls_server(ca.issue_cert("ccfs.sim.internal"))
    target = Target(
        region="us-east-1",
        bucket="b",
        jobs_table="t",
        queues={},
        local={"hosts": {"ccfs.sim.internal:28443": f"127.0.0.1:{server.port}"}},
    )
    before = socket.getaddrinfo
    with connect_names(target):
        ok, detail, _ = tls_probe("ccfs.sim.internal", 28443, _ca_file(ca, tmp_path))
        assert ok, detail  # the name is what TLS checks; the port is the server's
        assert socket.getaddrinfo("127.0.0.1", 80)[0][4][0] == "127.0.0.1"  # other names as before
    assert socket.getaddrinfo is before
    ok, detail, _ = tls_probe("ccfs.sim.internal", 28443, _ca_file(ca, tmp_path), timeout=2)
    assert not ok


def _deployed(aws, env: dict[str, str]) -> Target:
    """A deployed stack's Target (no --local): RequestExportFunction exists in (moto's) Lambda."""
    import io
    import zipfile

    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("app.py", "def handler(event, context):\n    return None\n")
    role = boto3.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto3.client("lambda").create_function(
        FunctionName="aicc-export-RequestExport",
        Runtime="python3.13",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": env},
    )
    target = cli_target(aws)
    target.local = None
    target.stack_name = "aicc-export"
    target.functions = {"RequestExportFunction": "aicc-export-RequestExport"}
    return target


class StackResources:
    """CloudFormation's DescribeStackResource for the one resource doctor asks about."""

    def describe_stack_resource(self, StackName: str, LogicalResourceId: str) -> dict:
        assert (StackName, LogicalResourceId) == ("aicc-export", "PlanningSchedule")
        return {"StackResourceDetail": {"PhysicalResourceId": "aicc-export-PlanningSchedule-X"}}


def test_doctor_on_a_deployed_stack_reads_lambdas_configuration_and_the_schedules_state(aws, monkeypatch):
    from tests.conftest import app_env

    target = _deployed(aws, app_env(aws, CCFS_BASE_URL="https://127.0.0.1:1", TENANT_TIMEZONE="Asia/Tokyo"))
    scheduler = boto3.client("scheduler")
    scheduler.create_schedule(
        Name="aicc-export-PlanningSchedule-X",
        ScheduleExpression="rate(15 minutes)",
        FlexibleTimeWindow={"Mode": "OFF"},
        State="DISABLED",
        Target={
            "Arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "RoleArn": "arn:aws:iam::123456789012:role/r",
        },
    )
    clients = {"cloudformation": StackResources()}
    monkeypatch.setattr(
        target, "client", lambda service, region=None: clients.get(service) or boto3.client(service, region_name=region)
    )
    checks = _checks(run_doctor(target))
    assert checks["function configuration"][0] and "zone Asia/Tokyo" in checks["function configuration"][1]
    ok, detail, _ = checks["schedule"]
    assert ok and detail.startswith("aicc-export-PlanningSchedule-X DISABLED - switch it on after `canary` passes")
    assert not checks["alarm topic has a confirmed subscription"][0]  # a deployed stack without AlarmTopicArn
