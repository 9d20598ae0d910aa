"""Pure helpers of the local stack: intrinsic functions, coverage, row comparison, EMF totals."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from local.stack.cfn import EventSourceMapping, Resolver, TemplateError, Unresolvable, references
from local.stack.functions import consumers
from local.stack.processes.events import api_gateway_event, sqs_event
from local.stack.report import emf_totals
from local.stack.verify import _compare, coverage_gap, recording_base

pytestmark = pytest.mark.e2e


def _resolver() -> Resolver:
    r = Resolver(
        parameters={"Stage": "v1", "Kms": "", "AWS::Region": "us-east-1", "AWS::NoValue": None},
        conditions={"HasKms": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Kms"}, ""]}]}},
    )
    r.physical = {"Queue": "http://q/Queue", "Bucket": "b"}
    r.attributes = {"Queue": {"Arn": "arn:aws:sqs:us-east-1:1:Queue"}, "Bucket": {"Arn": "arn:aws:s3:::b"}}
    return r


def test_resolver_evaluates_the_intrinsics_the_template_uses():
    r = _resolver()
    assert r.resolve({"Ref": "Queue"}) == "http://q/Queue"
    assert r.resolve({"Fn::GetAtt": ["Queue", "Arn"]}) == "arn:aws:sqs:us-east-1:1:Queue"
    assert r.resolve({"Fn::Sub": "${Bucket.Arn}/*"}) == "arn:aws:s3:::b/*"
    assert (
        r.resolve({"Fn::Sub": ["x-${Name}-${Stage}-${!Literal}", {"Name": {"Ref": "Bucket"}}]}) == "x-b-v1-${Literal}"
    )
    assert r.resolve({"Fn::If": ["HasKms", "KMS", {"Ref": "AWS::NoValue"}]}) is None
    props = {"SSE": {"Enabled": True, "Type": {"Fn::If": ["HasKms", "KMS", {"Ref": "AWS::NoValue"}]}}}
    assert r.resolve(props) == {"SSE": {"Enabled": True}}  # AWS::NoValue removes the key
    assert r.resolve({"Fn::Join": ["/", ["a", {"Ref": "Stage"}]]}) == "a/v1"
    with pytest.raises(Unresolvable):
        r.resolve({"Fn::Sub": "https://${Api}.execute-api"})
    assert references({"Fn::Sub": ["${A.Arn}-${B}-${!C}-${D}", {"D": {"Ref": "E"}}]}) == {"A", "B", "E"}


def test_coverage_gap_finds_the_first_uncovered_second():
    day = ("2026-01-01 00:00:00", "2026-01-01 23:59:59")
    halves = [
        ("2026-01-01 00:00:00", "2026-01-01 11:59:59", None),
        ("2026-01-01 12:00:00", "2026-01-01 23:59:59", None),
    ]
    assert coverage_gap(halves, *day) is None
    assert coverage_gap(halves[:1], *day) == "2026-01-01 12:00:00"
    assert coverage_gap(halves[1:], *day) == "2026-01-01 00:00:00"
    assert coverage_gap([("2025-12-31 00:00:00", "2026-01-03 00:00:00", None)], *day) is None


def test_row_comparison_reports_missing_unexpected_and_duplicates():
    row = lambda **kw: tuple(sorted(kw.items()))  # noqa: E731
    expected = Counter({row(call_id="1"): 1, row(call_id="2"): 1})
    actual = Counter({row(call_id="1"): 2, row(call_id="3"): 1})
    problems: list[str] = []
    _compare(problems, "CDR rows", expected, actual)
    assert problems[0].startswith("CDR rows: 1 expected row(s) missing")
    assert "2 unexpected row(s) (1 duplicates of expected rows)" in problems[1]
    assert recording_base("acct001", "2026-01-02 03:04:05", "17-1", "/10/1/record/1/2/0903379.wav") == (
        "recordings/account_id=acct001/call_date=2026-01-02/17-1/0903379"
    )
    assert recording_base("", "2026-01-02 03:04:05", "17-1", "a.wav").startswith("recordings/account_id=_all/")


def test_emf_totals_sum_every_metric_in_every_log(tmp_path):
    emf = {
        "_aws": {"CloudWatchMetrics": [{"Namespace": "AiccExport", "Metrics": [{"Name": "A"}, {"Name": "B"}]}]},
        "A": [1.0, 2.0],
        "B": 5,
    }
    (tmp_path / "w1.log").write_text(json.dumps(emf) + "\nSTART RequestId: x\n{not json\n")
    (tmp_path / "w2.log").write_text(json.dumps({**emf, "A": 4}) + "\n")
    assert emf_totals(tmp_path) == {"A": 7.0, "B": 10.0}


def test_event_shapes():
    event = sqs_event(
        [
            {
                "MessageId": "m1",
                "ReceiptHandle": "r1",
                "Body": "{}",
                "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1", "SenderId": "s"},
                "MessageAttributes": {"k": {"DataType": "Binary", "BinaryValue": b"\x00"}},
            }
        ],
        "arn:aws:sqs:us-east-1:1:q",
    )
    record = event["Records"][0]
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["messageAttributes"]["k"]["binaryValue"] == "AA=="
    assert record["md5OfBody"] == "99914b932bd37a50b983c5e7c90ae93b"
    api = api_gateway_event(
        method="POST",
        raw_path="/v1/ccfs/callback",
        resource="/ccfs/callback",
        stage="v1",
        headers=[
            ("Host", "127.0.0.1:1"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("Content-Length", "0"),
            ("Connection", "keep-alive"),
            ("Transfer-Encoding", "chunked"),
        ],
        query={},
        body=b"",
        source_ip="127.0.0.1",
        host="127.0.0.1:1",
    )
    assert api["path"] == "/ccfs/callback" and api["requestContext"]["path"] == "/v1/ccfs/callback"
    assert api["body"] is None and api["queryStringParameters"] is None
    assert api["headers"]["X-Forwarded-For"] == "10.0.0.1, 127.0.0.1"  # the caller is appended
    # as API Gateway's REST proxy: no body length, no hop-by-hop headers, in either header map
    dropped = {"content-length", "connection", "transfer-encoding"}
    forwarded = {n.lower() for n in api["headers"]} | {n.lower() for n in api["multiValueHeaders"]}
    assert not dropped & forwarded and "host" in forwarded


def test_sample_events_are_made_fresh_and_the_callback_verifies_now(tmp_path):
    """``python -m local.stack.sample_events``: the shipped callback event is stale 15 minutes after
    it was signed; the fresh one verifies at the time it was made, as API Gateway delivers it."""
    from datetime import UTC, datetime, timedelta

    from ccfs.auth import SignatureError, verify
    from local.stack import sample_events

    now = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    events = sample_events.fresh_events("demo-ak", "demo-sk", now)
    assert set(events) == {p.name for p in sample_events.EVENTS.glob("*.json")}
    callback = events["callback_api.json"]
    assert not any(name.lower() == "content-length" for name in callback["headers"])
    assert callback["requestContext"]["requestTimeEpoch"] == int(now.timestamp() * 1000)
    secret = {"demo-ak": "demo-sk"}.get
    path = callback["requestContext"]["path"]
    auth = callback["headers"]["Authorization"]
    assert verify(auth, "POST", path, callback["headers"], callback["body"], secret, now=now) == "demo-ak"
    with pytest.raises(SignatureError):  # stale 15 minutes on, as the shipped one is
        verify(auth, "POST", path, callback["headers"], callback["body"], secret, now=now + timedelta(minutes=16))
    for name in ("backfill_sqs.json", "bill_message.json", "recording_message.json"):
        assert {r["attributes"]["SentTimestamp"] for r in events[name]["Records"]} == {str(int(now.timestamp() * 1000))}
    assert events["schedule.json"] == sample_events.schedule_input() == {"source": "aws.scheduler"}

    serve = {"endpoint_url": "http://127.0.0.1:1234", "simulator": {"ak": "sim-ak", "sk": "sim-sk"}}
    serve["function_env"] = {"DownloadFunction": {"JOBS_TABLE": "t"}}
    (tmp_path / "serve.json").write_text(json.dumps(serve))
    assert sample_events.main(["--serve", str(tmp_path / "serve.json"), "--out", str(tmp_path / "out")]) == 0
    env = json.loads((tmp_path / "out" / "env-vars.json").read_text())
    assert env == {
        "DownloadFunction": {
            "JOBS_TABLE": "t",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:1234",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    }
    fresh = json.loads((tmp_path / "out" / "callback_api.json").read_text())
    assert fresh["headers"]["Authorization"].startswith("auth-v2/sim-ak/")


def test_netmap_maps_only_its_names_and_ports_and_uninstalls_cleanly():
    """The local stack's name service: ``name:port`` → the 127.0.0.1 port a server really has; any
    other name or port resolves as before (here: not at all), and uninstall restores the resolver."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    from local.stack.processes import netmap

    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    mapping = {"svc.sim.internal:80": f"127.0.0.1:{server.server_address[1]}"}
    original = socket.getaddrinfo
    try:
        netmap.install(mapping)
        assert httpx.get("http://svc.sim.internal/").text == "ok"
        assert httpx.get("http://SVC.sim.internal./").text == "ok"  # DNS names are case-insensitive
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("svc.sim.internal", 8080)  # another port is not mapped
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("other.sim.internal", 80)
        assert socket.getaddrinfo("127.0.0.1", 1)[0][4] == ("127.0.0.1", 1)
        with pytest.raises(ValueError, match="is not host:port"):
            netmap.install({"no-port.sim.internal": "127.0.0.1:1"})
    finally:
        netmap.uninstall(mapping)
        server.shutdown()
        server.server_close()
    assert socket.getaddrinfo is original and netmap.mapped() == {}


def test_sam_local_env_vars_reach_ccfs_by_address_not_by_the_stacks_names():
    """A ``sam local invoke`` container does not have the stack's name service: its env-vars file
    gives CC-FS's 127.0.0.1 address (its certificate names it too), everything else unchanged."""
    from local.stack.sample_events import env_vars

    serve = {
        "endpoint_url": "http://127.0.0.1:5000",
        "simulator": {"base_url": "https://127.0.0.1:4443"},
        "function_env": {
            "DownloadFunction": {"CCFS_BASE_URL": "https://ccfs.sim.internal:28443", "JOBS_TABLE": "t"},
            "Other": {"JOBS_TABLE": "t"},
        },
    }
    env = env_vars(serve)
    assert env["DownloadFunction"]["CCFS_BASE_URL"] == "https://127.0.0.1:4443"
    download = env["DownloadFunction"]
    assert download["JOBS_TABLE"] == "t" and download["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    assert "CCFS_BASE_URL" not in env["Other"]


def test_consumers_are_the_templates_maximum_concurrency_never_a_friendlier_number():
    def mapping(maximum: int | None) -> EventSourceMapping:
        return EventSourceMapping("M", "DownloadFunction", "RecordingQueue", maximum_concurrency=maximum)

    assert consumers(mapping(7), None) == 7  # what Lambda would run at once
    assert consumers(mapping(7), 3) == 3  # an explicit cap lowers it (printed as a deviation) ...
    assert consumers(mapping(2), 4) == 2  # ... and never raises it
    assert consumers(mapping(None), 4) == 4
    with pytest.raises(TemplateError, match=r"M: no ScalingConfig\.MaximumConcurrency.*set it in the template"):
        consumers(mapping(None), None)  # Lambda would scale to hundreds: no honest local number


def test_every_time_patch_names_a_constant_the_product_still_has():
    """A patch target that moved (``exporter.jobs.LEASE_SECONDS`` → ``exporter.jobs.store``) is only
    reported by the function processes, and the stack then waits the product's 5 min per lease."""
    import importlib

    from local.stack.config import TIME_PATCHES

    for target in TIME_PATCHES:
        module_name, _, name = target.rpartition(".")
        assert hasattr(importlib.import_module(module_name), name), f"{target}: no such constant any more"
