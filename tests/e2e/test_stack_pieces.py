"""The local stack's machinery, without the real handlers: template -> moto resources, the API
front's event shape, the SQS poller's ESM semantics, and clean shutdown."""

from __future__ import annotations

import contextlib
import json
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.stack.cfn import StackModel, create_data_resources, load_template
from local.stack.processes.procs import ROOT, spawn
from local.stack.stack import LocalStack, StackConfig
from tests.e2e.conftest import (
    STUBS,
    TEMPLATE,
    child_env,
    needs_template,
    pid_alive,
    port_open,
    processes_mentioning,
    read_jsonl,
    stub_template,
    wait_until,
)

pytestmark = pytest.mark.e2e

PARAMS = {
    "CcfsBaseUrl": "https://127.0.0.1:28443",
    "CcfsSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:aicc/ccfs-AbCdEf",
    "CallbackSourceCidrs": "127.0.0.1/32",
}


# ---------------------------------------------------------------------------- template -> moto


@needs_template
def test_template_resources_in_moto_match_the_template(moto_server):
    model = StackModel.build(TEMPLATE, PARAMS, "t")
    created = create_data_resources(
        model, moto_server["session"], moto_server["endpoint_url"], {"VisibilityTimeout": 5}
    )
    sam = load_template(TEMPLATE)["Resources"]
    client = lambda name: moto_server["session"].client(name, endpoint_url=moto_server["endpoint_url"])  # noqa: E731
    ddb, sqs, s3 = client("dynamodb"), client("sqs"), client("s3")

    for lid in ("JobsTable", "IdempotencyTable", "ExportBucket", "ScheduleDLQ"):
        assert lid in created.physical, lid
    for kind in ("Request", "Bill", "Recording"):
        assert f"{kind}Queue" in created.physical and f"{kind}DLQ" in created.physical

    for lid, res in sam.items():
        if res["Type"] == "AWS::DynamoDB::Table":
            props = res["Properties"]
            table = ddb.describe_table(TableName=created.physical[lid])["Table"]
            assert table["KeySchema"] == props["KeySchema"]
            assert sorted(table["AttributeDefinitions"], key=str) == sorted(props["AttributeDefinitions"], key=str)
            want = {g["IndexName"]: g["KeySchema"] for g in props.get("GlobalSecondaryIndexes", [])}
            got = {g["IndexName"]: g["KeySchema"] for g in table.get("GlobalSecondaryIndexes", [])}
            assert got == want
            if "TimeToLiveSpecification" in props:
                ttl = ddb.describe_time_to_live(TableName=created.physical[lid])["TimeToLiveDescription"]
                assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]
                assert ttl["TimeToLiveStatus"] == "ENABLED"
        elif res["Type"] == "AWS::SQS::Queue" and "Condition" not in res:
            props = res["Properties"]
            attrs = sqs.get_queue_attributes(QueueUrl=created.physical[lid], AttributeNames=["All"])["Attributes"]
            assert attrs["MessageRetentionPeriod"] == str(props["MessageRetentionPeriod"])
            if "RedrivePolicy" in props:
                policy = json.loads(attrs["RedrivePolicy"])
                dlq = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
                assert policy["deadLetterTargetArn"] == created.attributes[dlq]["Arn"]
                assert int(policy["maxReceiveCount"]) == int(props["RedrivePolicy"]["maxReceiveCount"])
            if "RedrivePolicy" in props or "VisibilityTimeout" in props:
                assert attrs["VisibilityTimeout"] == "5"  # the documented local override (consumed queues)
            else:
                assert attrs["VisibilityTimeout"] == "30"  # SQS's default, as the template leaves it
        elif res["Type"] == "AWS::S3::Bucket":
            props = res["Properties"]
            bucket = created.physical[lid]
            rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
            assert {r["ID"] for r in rules} == {r["Id"] for r in props["LifecycleConfiguration"]["Rules"]}
            assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == props["VersioningConfiguration"]["Status"]
            encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
            want_algo = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
            assert (
                encryption["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
                == want_algo["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
            )
    # the bucket policy is not applied (documented): objects must be writable over plain HTTP
    s3.put_object(Bucket=created.physical["ExportBucket"], Key="probe", Body=b"x")


@needs_template
def test_functions_mappings_and_route_come_from_the_template():
    model = StackModel.build(TEMPLATE, PARAMS, "t")
    sam = load_template(TEMPLATE)["Resources"]
    by_queue = {m.queue: m for m in model.mappings}
    for lid, res in sam.items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        assert lid in model.functions
        assert model.functions[lid].code_uri == res["Properties"]["CodeUri"]
        for event in res["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                queue = event["Properties"]["Queue"]["Fn::GetAtt"][0]
                mapping = by_queue[queue]
                assert mapping.function == lid
                assert mapping.batch_size == event["Properties"].get("BatchSize", 10)
                assert mapping.report_batch_item_failures
            if event["Type"] == "Api":
                route = model.function_for_route(event["Properties"]["Path"])
                assert route.function == lid
                assert route.method == event["Properties"]["Method"].upper()
                assert route.stage == model.parameters["ApiStageName"]
    env = model.functions["DownloadFunction"].environment
    assert {"JOBS_TABLE", "EXPORT_BUCKET", "RECORDING_QUEUE_URL", "CCFS_SECRET_ARN"} <= set(env)


def test_moto_keeps_dynamodb_writes_atomic_under_concurrent_transactions(moto_server):
    """moto restores whole tables when a transaction fails; concurrent writes must not vanish."""
    import threading

    session, endpoint = moto_server["session"], moto_server["endpoint_url"]
    ddb = session.client("dynamodb", endpoint_url=endpoint)
    ddb.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    for i in range(300):  # a table worth deep-copying
        ddb.put_item(TableName="t", Item={"pk": {"S": f"filler{i}"}, "x": {"S": "y" * 200}})
    stop = threading.Event()

    def failing_transactions() -> None:
        client = session.client("dynamodb", endpoint_url=endpoint)
        while not stop.is_set():
            with contextlib.suppress(client.exceptions.TransactionCanceledException):
                client.transact_write_items(
                    TransactItems=[
                        {
                            "ConditionCheck": {
                                "TableName": "t",
                                "Key": {"pk": {"S": "absent"}},
                                "ConditionExpression": "attribute_exists(pk)",
                            }
                        }
                    ]
                )

    threads = [threading.Thread(target=failing_transactions) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(200):
            ddb.put_item(TableName="t", Item={"pk": {"S": f"w{i}"}})
    finally:
        stop.set()
        for t in threads:
            t.join()
    lost = [i for i in range(200) if "Item" not in ddb.get_item(TableName="t", Key={"pk": {"S": f"w{i}"}})]
    assert lost == []


# ---------------------------------------------------------------------------- API front


def _spawn_front(run_dir: Path, *extra: str) -> Any:
    return spawn(
        "front",
        "local.stack.processes.front",
        [
            "--function",
            "stub-callback",
            "--code",
            str(STUBS / "api_echo"),
            "--timeout",
            "10",
            "--stage",
            "v1",
            "--path",
            "/ccfs/callback",
            "--method",
            "POST",
            *extra,
        ],
        env=child_env(),
        run_dir=run_dir,
    )


@pytest.fixture
def front(tmp_path: Path):
    child = _spawn_front(tmp_path)
    try:
        yield child.wait_ready(30)
    finally:
        child.stop()


def test_front_builds_rest_proxy_events(front):
    url = front["url"]
    port = front["port"]
    assert url == f"http://127.0.0.1:{port}/v1/ccfs/callback"
    body = b'{"request":{"version":"2.0"},"msgBody":{"responseId":"abc"}}'
    reply = httpx.post(
        url + "?a=1&a=2&b=",
        content=body,
        headers=[("Content-Type", "application/json;charset=UTF-8"), ("X-Dup", "one"), ("X-Dup", "two")],
    )
    assert reply.status_code == 200
    assert reply.headers["X-Stub"] == "1"
    assert reply.headers.get_list("X-Multi") == ["a", "b"]
    assert reply.headers["x-amzn-RequestId"]
    event = reply.json()["event"]
    assert reply.json()["function_name"] == "stub-callback"
    assert event["resource"] == "/ccfs/callback"
    assert event["path"] == "/ccfs/callback"
    assert event["httpMethod"] == "POST"
    assert event["body"] == body.decode()
    assert event["isBase64Encoded"] is False
    assert event["headers"]["Content-Type"] == "application/json;charset=UTF-8"
    # API Gateway as it is: Host is the API's domain, whatever the connection was; https on 443;
    # the caller in X-Forwarded-For; a trace id; no Content-Length and no hop-by-hop headers
    domain = "local0api0.execute-api.us-east-1.amazonaws.com"
    assert front["public_url"] == f"https://{domain}/v1/ccfs/callback"
    assert event["headers"]["Host"] == domain and event["multiValueHeaders"]["Host"] == [domain]
    assert event["headers"]["X-Forwarded-Proto"] == "https" and event["headers"]["X-Forwarded-Port"] == "443"
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["headers"]["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert not {"content-length", "connection"} & {n.lower() for n in event["multiValueHeaders"]}
    assert event["requestContext"]["domainName"] == domain and event["requestContext"]["apiId"] == "local0api0"
    assert event["multiValueHeaders"]["X-Dup"] == ["one", "two"]
    assert event["headers"]["X-Dup"] == "two"
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    ctx = event["requestContext"]
    assert ctx["path"] == "/v1/ccfs/callback"
    assert ctx["stage"] == "v1"
    assert ctx["resourcePath"] == "/ccfs/callback"
    assert ctx["httpMethod"] == "POST"
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["requestId"] and ctx["accountId"] and ctx["requestTimeEpoch"] > 0
    assert event["pathParameters"] is None and event["stageVariables"] is None


def test_front_serves_https_under_the_api_name_to_callers_trusting_its_ca(tmp_path):
    """With a certificate, the front is reached as API Gateway is: by its execute-api name (mapped to
    its port by the stack's netmap), over TLS with a chain the caller must trust (CC-FS's
    truststore.jks); a caller without that CA fails the handshake."""
    import trustme

    from local.stack.processes import netmap

    domain = "abc123defg.execute-api.us-east-1.amazonaws.com"
    ca = trustme.CA()
    cert = ca.issue_cert(domain)
    chain, key, ca_file = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    child = _spawn_front(tmp_path, "--api-id", "abc123defg", "--tls-cert", str(chain), "--tls-key", str(key))
    mapping = {}
    try:
        ready = child.wait_ready(30)
        assert ready["url"].startswith("https://127.0.0.1:")
        mapping = {f"{domain}:443": f"127.0.0.1:{ready['port']}"}
        netmap.install(mapping)
        url = f"https://{domain}/v1/ccfs/callback"
        assert ready["public_url"] == url
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca_file))) as trusting:
            event = trusting.post(url, content=b"{}").json()["event"]
        assert event["headers"]["Host"] == domain
        assert event["requestContext"]["path"] == "/v1/ccfs/callback"
        with httpx.Client() as public_only, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            public_only.post(url, content=b"{}")
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca_file))) as trusting:
            assert trusting.post(url, content=b"{}").status_code == 200  # still serving
    finally:
        if mapping:
            netmap.uninstall(mapping)
        child.stop()


def test_front_binary_bodies_and_api_gateway_errors(front):
    url = front["url"]
    event = httpx.post(url, content=b"\xff\xfe\x00binary").json()["event"]
    assert event["isBase64Encoded"] is True
    assert event["body"] == "//4AYmluYXJ5"
    assert httpx.post(url, content=b"").json()["event"]["body"] is None
    binary = httpx.post(url + "?binary=1", content=b"{}")
    assert binary.content == b"\x00\xff\x10"
    assert httpx.post(url + "?status=401", content=b"{}").status_code == 401
    # what API Gateway itself answers
    for reply in (httpx.get(url), httpx.post(url.replace("/v1/", "/v2/"), content=b"{}")):
        assert reply.status_code == 403
        assert reply.json() == {"message": "Missing Authentication Token"}
    for query in ("raise=1", "malformed=1"):
        reply = httpx.post(f"{url}?{query}", content=b"{}")
        assert reply.status_code == 502
        assert reply.json() == {"message": "Internal server error"}
    # the front survived the handler errors
    assert httpx.post(url, content=b"{}").status_code == 200


# ---------------------------------------------------------------------------- SQS poller


def _queues(moto_server, max_receive: int = 2, visibility: int = 1):
    sqs = moto_server["session"].client("sqs", endpoint_url=moto_server["endpoint_url"])
    dlq = sqs.create_queue(QueueName="t-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="t-queue",
        Attributes={
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, queue, arn, dlq


def _worker(moto_server, queue, arn, log: Path, *extra: str, name: str = "w1"):
    args = [
        "--name",
        name,
        "--function",
        "stub-consumer",
        "--code",
        str(STUBS / "sqs_recorder"),
        "--timeout",
        "30",
        "--queue-url",
        queue,
        "--queue-arn",
        arn,
        *extra,
    ]
    env = child_env(AWS_ENDPOINT_URL=moto_server["endpoint_url"], STUB_LOG=str(log))
    child = spawn(name, "local.stack.processes.worker", args, env=env, run_dir=moto_server["run_dir"])
    child.wait_ready(30)
    return child


def _depth(sqs, url) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _send(sqs, queue, *bodies, **attributes):
    entries = [
        {
            "Id": str(i),
            "MessageBody": json.dumps(body),
            "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        }
        for i, body in enumerate(bodies)
    ]
    sqs.send_message_batch(QueueUrl=queue, Entries=entries)


def test_poller_deletes_all_but_reported_failures_and_sqs_redrives_them(moto_server):
    sqs, queue, arn, dlq = _queues(moto_server, max_receive=2)
    log = moto_server["run_dir"] / "seen.jsonl"
    _send(sqs, queue, {"id": "ok"}, {"id": "bad", "fail": True}, trace="t-1")
    child = _worker(moto_server, queue, arn, log, "--batch-size", "10", "--report-failures")
    try:
        assert wait_until(lambda: _depth(sqs, dlq) == 1 and _depth(sqs, queue) == 0, 20)
    finally:
        child.stop()
    seen = read_jsonl(log)
    assert [s["count"] for s in seen if s["id"] == "ok"] == [1]
    assert [s["count"] for s in seen if s["id"] == "bad"] == [1, 2]  # then moved by SQS, never seen again
    first = seen[0]
    assert first["eventSource"] == "aws:sqs" and first["eventSourceARN"] == arn
    assert first["keys"] == sorted(
        [
            "messageId",
            "receiptHandle",
            "body",
            "attributes",
            "messageAttributes",
            "md5OfBody",
            "md5OfMessageAttributes",
            "eventSource",
            "eventSourceARN",
            "awsRegion",
        ]
    )
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        first["attribute_keys"]
    )
    assert first["messageAttributes"]["trace"] == {
        "stringValue": "t-1",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert 0 < first["remaining_ms"] <= 30_000
    moved = sqs.receive_message(QueueUrl=dlq)["Messages"][0]
    assert json.loads(moved["Body"])["id"] == "bad"


@pytest.mark.parametrize(
    ("behaviour", "report"),
    [({"raise": True}, True), ({"bad_report": True}, True)],
    ids=["handler-raises", "malformed-batchItemFailures"],
)
def test_poller_retries_the_whole_batch_when_the_invocation_fails(moto_server, behaviour, report):
    sqs, queue, arn, dlq = _queues(moto_server, max_receive=3)
    log = moto_server["run_dir"] / "seen.jsonl"
    _send(sqs, queue, {"id": "first"}, {"id": "trouble", "once": True, **behaviour}, {"id": "third"})
    extra = ["--batch-size", "10", *(["--report-failures"] if report else [])]
    child = _worker(moto_server, queue, arn, log, *extra)
    try:
        assert wait_until(lambda: _depth(sqs, queue) == 0, 20)
    finally:
        child.stop()
    seen = read_jsonl(log)
    counts = {i: sorted(s["count"] for s in seen if s["id"] == i) for i in ("first", "trouble", "third")}
    assert counts["first"] == [1, 2]  # delivered again although it succeeded: nothing was deleted
    assert counts["trouble"] == [1, 2]
    assert _depth(sqs, dlq) == 0


def test_poller_without_report_batch_item_failures_deletes_everything(moto_server):
    sqs, queue, arn, dlq = _queues(moto_server)
    log = moto_server["run_dir"] / "seen.jsonl"
    _send(sqs, queue, {"id": "ok"}, {"id": "bad", "fail": True})
    child = _worker(moto_server, queue, arn, log, "--batch-size", "10")
    try:
        assert wait_until(lambda: _depth(sqs, queue) == 0, 20)
        time.sleep(1.5)  # longer than the visibility timeout: nothing comes back
    finally:
        child.stop()
    assert sorted((s["id"], s["count"]) for s in read_jsonl(log)) == [("bad", 1), ("ok", 1)]
    assert _depth(sqs, dlq) == 0


def test_crash_switch_fails_the_batch_after_n_records_once(moto_server):
    sqs, queue, arn, dlq = _queues(moto_server, max_receive=5)
    log = moto_server["run_dir"] / "seen.jsonl"
    crash = moto_server["run_dir"] / "crash.json"
    crash.write_text(json.dumps({"after_records": 2}))
    _send(sqs, queue, *({"id": f"r{i}"} for i in range(5)))
    child = _worker(moto_server, queue, arn, log, "--batch-size", "10", "--report-failures", "--crash-file", str(crash))
    try:
        assert wait_until(lambda: _depth(sqs, queue) == 0, 20)
    finally:
        child.stop()
    seen = read_jsonl(log)
    first_batch = [s["id"] for s in seen if s["count"] == 1]
    assert len(first_batch) == 2  # the handler got two records, then the "crash"
    assert sorted(s["id"] for s in seen if s["count"] == 2) == [f"r{i}" for i in range(5)]
    fired = json.loads((moto_server["run_dir"] / "crash.fired.json").read_text())
    assert fired["handed"] == 2 and fired["batch"] == 5
    assert not crash.exists()
    assert _depth(sqs, dlq) == 0


def test_heartbeat_keeps_a_slow_batch_invisible(moto_server):
    sqs, queue, arn, _ = _queues(moto_server, max_receive=5, visibility=1)
    log = moto_server["run_dir"] / "seen.jsonl"
    _send(sqs, queue, {"id": "slow", "sleep": 3})
    workers = [
        _worker(moto_server, queue, arn, log, "--batch-size", "1", "--report-failures", name=f"w{i}") for i in (1, 2)
    ]
    try:
        assert wait_until(lambda: _depth(sqs, queue) == 0, 20)
    finally:
        for w in workers:
            w.stop()
    assert [s["count"] for s in read_jsonl(log)] == [1]  # never redelivered while being handled


# ---------------------------------------------------------------------------- shutdown


def _stub_stack(tmp_path: Path) -> StackConfig:
    return StackConfig(
        template=stub_template(tmp_path),
        tenants=1,
        calls=5,
        tick_seconds=0.5,
        max_concurrency=2,
    )


@needs_template
def test_stop_leaves_no_process_port_or_directory(tmp_path):
    stack = LocalStack(_stub_stack(tmp_path)).start()
    try:
        children = stack.children()
        pids = [c.pid for c in children]
        ports = [
            int(stack.endpoint_url.rsplit(":", 1)[1]),
            int(stack.names.front_url.split(":")[2].split("/")[0]),
            stack.sim.port,
        ]
        run_dir = stack.run_dir
        assert len(pids) >= 6 and all(pid_alive(p) for p in pids)
        assert all(port_open(p) for p in ports)
        names = {Path(c.log_path).stem for c in children}
        assert {"moto", "front", "RequestExportFunction-schedule"} <= names
        assert any(n.startswith("DownloadFunction-RecordingQueue-") for n in names)
        # the schedule fires the (stub) function: a tick shows up in its log
        assert wait_until(
            lambda: '"local": "tick"' in (run_dir / "logs/RequestExportFunction-schedule.log").read_text(), 10
        )
    finally:
        stack.stop()
    assert not any(pid_alive(p) for p in pids)
    assert not any(port_open(p) for p in ports)
    assert not run_dir.exists()
    assert processes_mentioning(str(run_dir)) == []
    stack.stop()  # idempotent


_PARENT = """
import json, sys, time
from pathlib import Path
from typing import Any
from local.stack.stack import LocalStack, StackConfig
stack = LocalStack(StackConfig(template=Path(sys.argv[1]), tenants=1, calls=5, max_concurrency=2, schedule=False))
stack.start()
print(json.dumps({"pids": [c.pid for c in stack.children()], "run_dir": str(stack.run_dir)}), flush=True)
time.sleep(600)
"""


@needs_template
def test_children_exit_when_the_parent_is_killed(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(stub_template(tmp_path))],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = parent.stdout.readline()
        info = json.loads(line)
        assert all(pid_alive(p) for p in info["pids"])
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        parent.stdout.close()
    assert wait_until(lambda: not any(pid_alive(p) for p in info["pids"]), 10)
    import shutil

    shutil.rmtree(info["run_dir"], ignore_errors=True)


@needs_template
def test_serve_prints_one_json_line_and_stops_cleanly_on_sigterm(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.stack",
            "serve",
            "--template",
            str(stub_template(tmp_path)),
            "--tenants",
            "1",
            "--calls",
            "5",
            "--concurrency",
            "2",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        for key in ("callback_url", "endpoint_url", "bucket", "jobs_table", "queues", "aws_cli", "simulator"):
            assert info[key], key
        assert info["simulator"]["base_url"].startswith("https://127.0.0.1:")
        assert info["simulator"]["ak"] and info["simulator"]["sk"]
        assert " s3 ls s3://" in info["aws_cli"]
        # copy-paste commands work with AWS CLI v1 too, which ignores AWS_ENDPOINT_URL
        assert f"--endpoint-url {info['endpoint_url']} " in info["aws_cli"]
        assert f"--endpoint-url {info['endpoint_url']} " in info["backfill_example"]
        # what sam local invoke --env-vars needs, resolved against this stack
        download_env = info["function_env"]["DownloadFunction"]
        assert download_env["JOBS_TABLE"] == info["jobs_table"] and download_env["EXPORT_BUCKET"] == info["bucket"]
        assert "LAMBDA_TASK_ROOT" not in download_env
        run_dir = str(Path(info["logs"]).parent)
        ports = [int(info["endpoint_url"].rsplit(":", 1)[1]), int(info["front_url"].split(":")[2].split("/")[0])]
        assert all(port_open(p) for p in ports)
        assert len(processes_mentioning(run_dir)) >= 5
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()
    assert code == 0
    assert not any(port_open(p) for p in ports)
    assert processes_mentioning(run_dir) == []
    assert not Path(run_dir).exists()
