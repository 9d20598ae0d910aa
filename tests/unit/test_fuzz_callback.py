"""Fuzzing the callback function end to end (real handler, moto), three kinds of request:

* **valid**: correctly signed by construction, with everything CC-FS may legitimately vary (header
  case, which headers are signed, timestamp anywhere in the skew window, base64 bodies, a signed
  query string, field order, spacing, unknown fields, ``accountId`` absent/empty/set);
* **near-valid**: one such request with exactly one thing changed afterwards (a byte of the body,
  a signed header, the path, the method, the timestamp, a digit of the signature, ...);
* **random**: random methods, paths, headers, bodies and Authorization values.

Properties, for every example: the function never answers 5xx (nor raises); it never answers 200
unless the request carries a valid signature, decided by an *independent* auth-v2 check written
here from the protocol text (not ``ccfs.auth``); a rejected request makes no mutating AWS call
(botocore hook) and changes nothing in the tables, queues or bucket; a valid request with a valid
body is answered 200.

``FUZZ_EXAMPLES`` sets the number of examples (default 300 for CI; ``make fuzz`` runs 10,000 and
prints the counts per kind and outcome).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.client
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccfs.auth import sign
from exporter.aws import client
from tests.unit.callback_helpers import (  # noqa: F401  (_shared_botocore_loader: an autouse fixture)
    NOW,
    STAGE_PATH,
    Harness,
    _set_header,
    _shared_botocore_loader,
    base_event,
)

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
AK, SK = "demo-ak", "demo-sk"
MAX_SKEW = 900
# responseIds used by generated bodies: the first three are REQUESTED jobs, the rest unknown.
RIDS = [f"{i:x}" * 32 for i in range(1, 7)]
CHARS = st.characters(exclude_categories=("Cs",))  # what a UTF-8 HTTP request can carry
READ_ONLY = {"GetSecretValue", "GetParameter", "GetItem", "Query", "Scan", "DescribeTable", "GetQueueAttributes"}

# ---------------------------------------------------------------------------- independent oracle

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _pct(data: bytes) -> str:
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in data)


def _hmac_hex(key: str, msg: str) -> str:
    return hmac.new(key.encode(), msg.encode(), hashlib.sha256).hexdigest()


def _received_body(event: dict[str, Any]) -> bytes | None:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            return None
    return body.encode("utf-8", errors="surrogatepass")


def _own_account(event: dict[str, Any]) -> bool:
    """Whether a valid callback's accountId is absent, empty or the signing ak's tenant (acct001)."""
    raw = _received_body(event)
    assert raw is not None
    return json.loads(raw)["msgBody"].get("accountId") in (None, "", "acct001")


def _query(event: dict[str, Any]) -> list[tuple[str, str]]:
    multi = event.get("multiValueQueryStringParameters") or {}
    if multi:
        return [(k, v) for k, vs in multi.items() for v in vs or []]
    return list((event.get("queryStringParameters") or {}).items())


def signature_valid(event: dict[str, Any], now: datetime = NOW) -> bool:
    """Protocol §2 and its verification rules, from the text: is some Authorization value of this
    request a valid auth-v2 signature of it, by ``AK``/``SK``, within ±900 s of ``now``?"""
    headers = event.get("headers") or {}
    received: dict[str, str] = {}
    for name, value in headers.items():
        received.setdefault(name.lower(), "" if value is None else str(value))
    raw = _received_body(event)
    if raw is None:
        return False
    method = str(event.get("httpMethod") or "")
    path = (event.get("requestContext") or {}).get("path") or event.get("path") or ""
    query = _query(event)
    for name, value in headers.items():
        if name.lower() != "authorization" or not isinstance(value, str):
            continue
        parts = value.split("/")
        if len(parts) != 5 or parts[0] != "auth-v2" or parts[1] != AK:
            continue
        _, ak, stamp, names, signature = parts
        try:
            signed_at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            continue
        if len(stamp) != 20 or abs((signed_at - now).total_seconds()) > MAX_SKEW:
            continue
        wanted = names.split(";")
        if wanted != sorted(set(wanted)) or any(n != n.lower() for n in wanted) or "host" not in wanted:
            continue
        if any(n not in received for n in wanted):
            continue
        if "content-length" in wanted and received["content-length"].strip() != str(len(raw)):
            continue
        try:  # text with no UTF-8 form (a lone surrogate) cannot have been signed by anyone
            lines = [method.upper(), path]
            if query:
                lines.append("&".join(sorted(f"{_pct(k.encode())}={_pct(v.encode())}" for k, v in query)))
            lines.append(names)
            lines.append("\n".join(f"{_pct(n.encode())}:{_pct(received[n].encode())}" for n in wanted))
            canonical = "\n".join(lines) + "\n" + (_pct(raw) if raw else "")
            prefix = f"auth-v2/{ak}/{stamp}/{names}"
            expected = _hmac_hex(_hmac_hex(SK, prefix), canonical)
        except UnicodeEncodeError:
            continue
        if hmac.compare_digest(expected, signature):
            return True
    return False


# ---------------------------------------------------------------------------- building requests

SIGNABLE = ("content-length", "content-type", "host", "user-agent", "x-forwarded-for")
JSON_TYPES = [
    "application/json;charset=UTF-8",
    "application/json",
    "Application/JSON; charset=utf-8",
    'application/json; charset="utf-8"',
    "application/json; charset=utf8",
]


def _event(
    body: bytes,
    *,
    base64_body: bool,
    content_type: str,
    header_case: Callable[[str], str],
    query: dict[str, str] | None,
) -> dict[str, Any]:
    event = base_event()
    event["headers"], event["multiValueHeaders"] = {}, {}
    for name, value in base_event()["headers"].items():
        if name.lower() not in ("authorization", "content-type", "content-length"):
            _set_header(event, header_case(name), value)
    _set_header(event, header_case("Content-Type"), content_type)
    _set_header(event, header_case("Content-Length"), str(len(body)))
    event["isBase64Encoded"] = base64_body
    event["body"] = base64.b64encode(body).decode() if base64_body else body.decode("utf-8", errors="surrogatepass")
    if query:
        event["queryStringParameters"] = dict(query)
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    return event


def _sign(
    event: dict[str, Any],
    signed: tuple[str, ...],
    *,
    offset: int = 0,
    ak: str = AK,
    sk: str = SK,
    method: str = "POST",
    path: str = STAGE_PATH,
) -> None:
    raw = _received_body(event)
    assert raw is not None
    headers = {k: v for k, v in event["headers"].items() if k.lower() in signed}
    query = _query(event) or None
    value = sign(ak, sk, method, path, headers, raw, timestamp=NOW + timedelta(seconds=offset), query=query)
    _set_header(event, "Authorization", value)


@st.composite
def callback_bodies(draw: st.DrawFn) -> tuple[bytes, bool]:
    """``(body, valid)``: a well-formed callback (valid) or something near one (not)."""
    rid = draw(st.sampled_from(RIDS))
    day = draw(st.dates(min_value=datetime(2000, 1, 1).date(), max_value=datetime(2099, 12, 31).date()))
    msg: dict[str, Any] = {"responseId": rid, "billFileName": f"{day:%Y%m%d}_{rid}.zip"}
    # absent, empty, the signing ak's own tenant (TENANT_ACCOUNT_IDS=acct001), or any other: another
    # tenant's accountId is authentic but refused with 403 (tenants are separate developer accounts)
    account = draw(
        st.one_of(
            st.none(),
            st.sampled_from(["", "acct001"]),
            st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=20),
        )
    )
    if account is not None:
        msg["accountId"] = account
    extras = draw(
        st.dictionaries(st.text("xyz_", min_size=1, max_size=6), st.integers() | st.text(CHARS, max_size=8), max_size=2)
    )
    msg.update({f"x_{k}": v for k, v in extras.items()})
    items = list(msg.items())
    if draw(st.booleans()):
        items.reverse()
    document: dict[str, Any] = {"request": {"version": "2.0"}, "msgBody": dict(items)}
    valid = True
    breakage = draw(st.sampled_from(["none"] * 6 + ["rid", "name", "version", "account", "shape"]))
    if breakage == "rid":
        document["msgBody"]["responseId"] = draw(st.text(max_size=40))
    elif breakage == "name":
        document["msgBody"]["billFileName"] = draw(st.text(max_size=60))
    elif breakage == "version":
        document["request"]["version"] = draw(st.text(max_size=4).filter(lambda v: v != "2.0"))
    elif breakage == "account":
        document["msgBody"]["accountId"] = "a" * draw(st.integers(21, 40))
    elif breakage == "shape":
        document = draw(st.sampled_from([[], {}, {"msgBody": "x"}, {"request": {"version": "2.0"}}]))
    valid = breakage == "none"
    spacing = draw(st.sampled_from([(",", ":"), (", ", ": "), (",\n", " :\t")]))
    ascii_only = draw(st.booleans())
    return json.dumps(document, separators=spacing, ensure_ascii=ascii_only).encode(), valid


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """A correctly signed request; ``body_valid`` says whether its body is a valid callback."""
    body, body_valid = draw(callback_bodies())
    case = draw(st.sampled_from([str, str.lower, str.upper, str.title]))
    query = draw(
        st.one_of(
            st.none(), st.dictionaries(st.text(CHARS, min_size=1, max_size=5), st.text(CHARS, max_size=5), max_size=2)
        )
    )
    event = _event(
        body,
        base64_body=draw(st.booleans()),
        content_type=draw(st.sampled_from(JSON_TYPES)),
        header_case=case,
        query=query or None,
    )
    extra = draw(st.sets(st.sampled_from([n for n in SIGNABLE if n != "host"])))
    _sign(event, ("host", *sorted(extra)), offset=draw(st.integers(-MAX_SKEW, MAX_SKEW)))
    return event, body_valid


def _flip(text: str, at: int) -> str:
    at %= max(1, len(text))
    char = text[at : at + 1] or "a"
    return text[:at] + ("b" if char == "a" else "a") + text[at + 1 :]


@st.composite
def near_valid_requests(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    event, _ = draw(valid_requests())
    auth_name = next(k for k in event["headers"] if k.lower() == "authorization")
    auth = event["headers"][auth_name]
    mutation = draw(
        st.sampled_from(
            [
                "signature",
                "ak",
                "stale",
                "future",
                "wrong-sk",
                "method",
                "path",
                "header-value",
                "drop-header",
                "add-query",
                "body-byte",
                "body-cut",
                "body-append",
                "content-length",
                "base64-flag",
                "drop-auth",
                "signed-list",
                "second-auth",
                "valid-sig-bad-body",
                "odd-text",
            ]
        )
    )
    at = draw(st.integers(0, 10_000))
    raw = _received_body(event)
    assert raw is not None

    def set_body(new: bytes) -> None:
        if event["isBase64Encoded"]:
            event["body"] = base64.b64encode(new).decode()
        else:
            event["body"] = new.decode("utf-8", errors="replace")

    if mutation == "signature":
        head, _, sig = auth.rpartition("/")
        event["headers"][auth_name] = f"{head}/{_flip(sig, at)}"
    elif mutation == "ak":
        parts = auth.split("/")
        parts[1] = _flip(parts[1], at)
        event["headers"][auth_name] = "/".join(parts)
    elif mutation in ("stale", "future", "wrong-sk"):
        signed = tuple(auth.split("/")[3].split(";"))
        skew = draw(st.integers(MAX_SKEW + 1, 10 * 365 * 86400))
        offset = -skew if mutation == "stale" else skew if mutation == "future" else 0
        _sign(event, signed, offset=offset, sk="not-the-sk" if mutation == "wrong-sk" else SK)
    elif mutation == "method":
        method = draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "post"]))
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    elif mutation == "path":
        event["requestContext"]["path"] = draw(
            st.sampled_from(["/ccfs/callback", "/v2/ccfs/callback", "/v1/ccfs/callback/"])
        )
    elif mutation == "header-value":
        name = draw(st.sampled_from(sorted(k for k in event["headers"] if k.lower() != "authorization")))
        event["headers"][name] = _flip(str(event["headers"][name]), at)
    elif mutation == "drop-header":
        name = draw(st.sampled_from(sorted(k for k in event["headers"] if k.lower() != "authorization")))
        del event["headers"][name]
    elif mutation == "add-query":
        event["queryStringParameters"] = {**(event.get("queryStringParameters") or {}), "z": "1"}
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in event["queryStringParameters"].items()}
    elif mutation == "body-byte":
        data = bytearray(raw)
        data[at % len(data)] ^= draw(st.integers(1, 255))
        set_body(bytes(data))
    elif mutation == "body-cut":
        set_body(raw[: at % len(raw)])
    elif mutation == "body-append":
        set_body(raw + draw(st.binary(min_size=1, max_size=8)))
    elif mutation == "content-length":
        name = next(k for k in event["headers"] if k.lower() == "content-length")
        event["headers"][name] = str(len(raw) + draw(st.sampled_from([-1, 1, 100])))
    elif mutation == "base64-flag":
        event["isBase64Encoded"] = not event["isBase64Encoded"]
    elif mutation == "drop-auth":
        del event["headers"][auth_name]
    elif mutation == "signed-list":
        parts = auth.split("/")
        parts[3] = draw(st.sampled_from(["", "host;host", "content-type", "x-unknown;host", "HOST"]))
        event["headers"][auth_name] = "/".join(parts)
    elif mutation == "second-auth":
        other = "authorization" if auth_name != "authorization" else "AUTHORIZATION"
        event["headers"] = {other: draw(st.text(max_size=40)), **event["headers"]}
    elif mutation == "valid-sig-bad-body":
        bad = draw(st.sampled_from([b"", b"{}", b"null", b"[]", b'{"msgBody":1}', raw[:-1], b"\xff" + raw]))
        set_body(bad)
        name = next(k for k in event["headers"] if k.lower() == "content-length")
        event["headers"][name] = str(len(_received_body(event) or b""))
        _sign(event, tuple(auth.split("/")[3].split(";")))
    elif mutation == "odd-text":  # JSON events can carry any code point, lone surrogates included
        odd = draw(st.text(st.sampled_from(["\ud800", "\udfff", "\x00", "\u00e9", "\U0001f600", "\n"]), min_size=1))
        where = draw(st.sampled_from(["header", "path", "query"]))
        if where == "header":
            name = draw(st.sampled_from(sorted(k for k in event["headers"] if k.lower() != "authorization")))
            event["headers"][name] = str(event["headers"][name]) + odd
        elif where == "path":
            event["requestContext"]["path"] += odd
        else:
            event["queryStringParameters"] = {**(event.get("queryStringParameters") or {}), "q": odd}
            event["multiValueQueryStringParameters"] = {k: [v] for k, v in event["queryStringParameters"].items()}
    return event, mutation


def _mostly(value: Any, others: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``value`` about two times in three, else something from ``others`` (random requests must
    often get past routing and the media-type check to reach the signature and body checks)."""
    return st.integers(0, 2).flatmap(lambda n: others if n == 0 else st.just(value))


@st.composite
def random_requests(draw: st.DrawFn) -> dict[str, Any]:
    event = base_event()
    method = draw(_mostly("POST", st.sampled_from(["GET", "PUT", "HEAD", "OPTIONS", "TRACE"]) | st.text(max_size=8)))
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    path = draw(_mostly("/ccfs/callback", st.sampled_from(["/ccfs/callback/", "/", "/ccfs"]) | st.text(max_size=30)))
    event["path"] = path
    event["requestContext"]["path"] = draw(_mostly(STAGE_PATH, st.text(max_size=30)))
    names = st.sampled_from(["Authorization", "authorization", "Content-Type", "Content-Length", "Host"]) | st.text(
        min_size=1, max_size=12
    )
    auth = st.one_of(
        st.text(max_size=100),
        st.lists(st.text(max_size=70), max_size=7).map(lambda p: "/".join(["auth-v2", *p])),
        st.tuples(
            st.sampled_from([AK, "other"]),
            st.integers(-2000, 2000).map(lambda s: (NOW + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")),
            st.sampled_from(["host", "content-length;content-type;host", "content-type"]),
            st.text("0123456789abcdef", min_size=64, max_size=64),
        ).map(lambda p: "auth-v2/" + "/".join(p)),
    )
    headers = draw(st.dictionaries(names, st.text(max_size=40), max_size=6))
    if draw(st.booleans()):
        headers["Host"] = draw(st.text(max_size=40))
    if draw(st.integers(0, 3)):
        headers["Authorization"] = draw(auth)
    if draw(st.integers(0, 3)):
        headers["Content-Type"] = draw(st.sampled_from([*JSON_TYPES, "text/plain", ""]))
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    event["isBase64Encoded"] = draw(st.booleans())
    body = draw(
        st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
        | callback_bodies().map(lambda b: b[0])
    )
    if event["isBase64Encoded"]:
        event["body"] = draw(st.sampled_from([base64.b64encode(body).decode(), body.decode("latin-1")]))
    else:
        event["body"] = body.decode("utf-8", errors="surrogateescape")
    if draw(st.booleans()):
        query = draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if draw(st.booleans()) else None
    return event


requests = st.one_of(
    valid_requests().map(lambda v: ("valid", v[0], "valid body" if v[1] else "invalid body")),
    near_valid_requests().map(lambda v: ("near-valid", v[0], v[1])),
    random_requests().map(lambda e: ("random", e, "")),
)


# ---------------------------------------------------------------------------- the properties


class Writes:
    def __init__(self) -> None:
        self.armed = False
        self.calls: list[tuple[str, str]] = []


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Writes:
    recorder = Writes()
    original = botocore.client.BaseClient._make_api_call

    def recording(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if recorder.armed and operation_name not in READ_ONLY:
            recorder.calls.append((self.meta.service_model.service_name, operation_name))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return recorder


def _state(aws: Any) -> tuple[Any, ...]:
    ddb, sqs = client("dynamodb"), client("sqs")
    items = ddb.scan(TableName=aws.jobs_table, ConsistentRead=True)["Items"]
    depth = sqs.get_queue_attributes(
        QueueUrl=aws.bill_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return tuple(sorted(json.dumps(i, sort_keys=True) for i in items)), tuple(sorted(depth.items()))


def test_fuzz_callback_requests(harness: Harness, aws: Any, writes: Writes, capsys: pytest.CaptureFixture[str]) -> None:
    for rid in RIDS[:3]:
        harness.put_job(rid=rid)
    stats: Counter[tuple[str, str]] = Counter()
    detail: Counter[str] = Counter()
    started = time.monotonic()
    # The state after a rejected request is the state before the next one (nothing else writes):
    # reading it once per example, not twice, halves the moto round trips of the fuzz loop.
    known: list[tuple[Any, ...]] = []

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(request=requests)
    def run(request: tuple[str, dict[str, Any], str]) -> None:
        kind, event, note = request
        valid = signature_valid(event)
        before = known.pop() if known else _state(aws)
        writes.calls.clear()
        writes.armed = True
        try:
            response = harness.module.lambda_handler(event, harness.context)
        finally:
            writes.armed = False
        status = response["statusCode"]
        stats[(kind, str(status))] += 1
        detail[f"{kind}:{note}:{status}"] += 1
        assert status < 500, (kind, note, status)
        assert json.loads(response["body"])["resultCode"] == ("0" if status == 200 else str(status))
        if status == 200:
            assert valid, f"200 without a valid signature ({kind} {note})"
        else:
            assert writes.calls == [], f"rejected ({status}) but wrote {writes.calls} ({kind} {note})"
            assert _state(aws) == before, f"rejected ({status}) but state changed ({kind} {note})"
            known.append(before)  # unchanged: the next example's "before"
        if kind == "valid":
            assert valid, "the generator built an invalid 'valid' request"
            expected = 400
            if note == "valid body":
                expected = 200 if _own_account(event) else 403
            assert status == expected, (note, response["body"])

    from exporter.aws import logger

    level = logger.log_level
    logger.setLevel("ERROR")  # 10,000 examples' log lines would bury the counts; logging is tested elsewhere
    try:
        run()
    finally:
        logger.setLevel(level)
    capsys.readouterr()  # only the counts below are reported
    elapsed = time.monotonic() - started
    total = sum(stats.values())
    print(f"\ncallback fuzz: {total} examples in {elapsed:.1f}s")  # shown by `pytest -rP` (make fuzz)
    for kind in ("valid", "near-valid", "random"):
        outcomes = {s: n for (k, s), n in sorted(stats.items()) if k == kind}
        print(f"  {kind:<10} {sum(outcomes.values()):>6}  by status: {outcomes}")
    if FUZZ_EXAMPLES >= 1000:
        for key, count in sorted(detail.items()):
            print(f"    {key:<40} {count}")
    kinds = {k for k, _ in stats}
    assert kinds == {"valid", "near-valid", "random"} or total < 30, stats
    assert stats[("valid", "200")] > 0 or total < 30, "no valid request was ever accepted: the fuzz is vacuous"
