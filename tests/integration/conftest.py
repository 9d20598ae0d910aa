"""Integration fixtures: the CC-FS simulator, plus test-side helpers that do NOT share code with the
project (an independent auth-v2 signer, a RIFF parser, a callback receiver), so a bug in
``ccfs.auth`` or in the simulator cannot hide behind itself."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from local.ccfs_simulator.pytest_plugin import ccfs_sim, ccfs_sim_factory  # noqa: F401

JSON_CT = "application/json;charset=UTF-8"

# ---------------------------------------------------------------- independent auth-v2 (protocol §2)

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _pct(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in raw)


def _hex_hmac(key: str, msg: str) -> str:
    return hmac.new(key.encode(), msg.encode(), hashlib.sha256).hexdigest()


def indep_sign(ak, sk, method, path, headers, body, timestamp, query=()):
    """auth-v2 from the protocol text alone. ``headers``: the headers to sign; ``timestamp``: str."""
    lowered = {k.lower(): v for k, v in headers.items()}
    names = ";".join(sorted(lowered))
    lines = [method.upper(), path]
    if query:
        lines.append("&".join(sorted(f"{_pct(k)}={_pct(v)}" for k, v in query)))
    lines.append(names)
    lines.append("\n".join(f"{_pct(n)}:{_pct(lowered[n])}" for n in sorted(lowered)))
    canonical = "\n".join(lines) + "\n" + (_pct(body) if body else "")
    prefix = f"auth-v2/{ak}/{timestamp}/{names}"
    return f"{prefix}/{_hex_hmac(_hex_hmac(sk, prefix), canonical)}"


def utc_stamp(delta_seconds: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def indep_check(authorization, method, path, headers, body, keys, query=(), max_skew=900):
    """(ok, reason, timestamp) for a received request; ``headers`` as received (any case)."""
    parts = (authorization or "").split("/")
    if len(parts) != 5 or parts[0] != "auth-v2":
        return False, "malformed", None
    _, ak, ts, names, _sig = parts
    if ak not in keys:
        return False, "unknown_ak", ts
    received = {k.lower(): v for k, v in headers}
    wanted = names.split(";")
    if "host" not in wanted or any(n not in received for n in wanted):
        return False, "headers", ts
    expected = indep_sign(ak, keys[ak], method, path, {n: received[n] for n in wanted}, body, ts, query)
    if not hmac.compare_digest(expected, authorization):
        return False, "signature", ts
    signed_at = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if abs((datetime.now(UTC) - signed_at).total_seconds()) > max_skew:
        return False, "skew", ts
    return True, "ok", ts


# ---------------------------------------------------------------- raw, independently signed requests


class RawCcfs:
    """httpx requests to the simulator, signed by :func:`indep_sign`."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.host = urlsplit(sim.base_url).netloc
        verify = ssl.create_default_context(cafile=sim.ca_bundle) if sim.ca_bundle else False
        self.http = httpx.Client(verify=verify, timeout=30)

    def close(self) -> None:
        self.http.close()

    def body(self, payload: Any) -> bytes:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()

    def request(
        self,
        op: str,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        ak: str | None = None,
        sk: str | None = None,
        timestamp: str | None = None,
        signed: tuple[str, ...] = ("content-length", "content-type", "host"),
        authorization: str | None = None,
        sign: bool = True,
    ) -> httpx.Request:
        body = raw if raw is not None else self.body(payload)
        path = f"/CCFS/resource/ccfs/{op}"
        headers = {"Host": self.host, "Content-Type": JSON_CT, "Content-Length": str(len(body))}
        if authorization is not None:
            headers["Authorization"] = authorization
        elif sign:
            to_sign = {k: v for k, v in headers.items() if k.lower() in signed}
            headers["Authorization"] = indep_sign(
                ak or self.sim.ak, sk or self.sim.sk, "POST", path, to_sign, body, timestamp or utc_stamp()
            )
        return self.http.build_request("POST", self.sim.base_url + path, content=body, headers=headers)

    def post(self, op: str, payload: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.send(self.request(op, payload, **kwargs))

    def json(self, op: str, payload: Any = None, **kwargs: Any) -> dict[str, Any]:
        response = self.post(op, payload, **kwargs)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        return response.json()

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(url, **kwargs)


@pytest.fixture
def raw_factory() -> Iterator[Any]:
    made: list[RawCcfs] = []

    def make(sim) -> RawCcfs:
        made.append(RawCcfs(sim))
        return made[-1]

    yield make
    for client in made:
        client.close()


# ---------------------------------------------------------------- RIFF/WAVE parser


def parse_wav(data: bytes) -> dict[str, Any]:
    """Walk the RIFF chunks; assert the structure is consistent; return the fmt fields."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", "not RIFF/WAVE"
    (riff_size,) = struct.unpack_from("<I", data, 4)
    assert riff_size == len(data) - 8, "RIFF size does not match the file"
    chunks: dict[str, tuple[int, int]] = {}
    pos = 12
    while pos < len(data):
        assert pos + 8 <= len(data), "truncated chunk header"
        cid = data[pos : pos + 4].decode("ascii")
        (size,) = struct.unpack_from("<I", data, pos + 4)
        assert pos + 8 + size <= len(data), f"chunk {cid} runs past the end"
        chunks[cid] = (pos + 8, size)
        pos += 8 + size + (size & 1)
    # the last chunk's pad byte may be missing (odd file sizes); nothing else may be left over
    assert pos == len(data) or (pos == len(data) + 1 and size & 1), "bytes after the last chunk"
    assert next(iter(chunks)) == "fmt " and "data" in chunks
    start, size = chunks["fmt "]
    tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", data, start)
    fields = {"tag": tag, "channels": channels, "rate": rate, "byte_rate": byte_rate, "align": align, "bits": bits}
    fields["fmt_size"] = size
    if size >= 18:
        (fields["cb_size"],) = struct.unpack_from("<H", data, start + 16)
    fields["data_size"] = chunks["data"][1]
    if "fact" in chunks:
        (fields["fact_samples"],) = struct.unpack_from("<I", data, chunks["fact"][0])
    return fields


def assert_alaw_wav(data: bytes) -> None:
    f = parse_wav(data)
    assert (f["tag"], f["channels"], f["rate"], f["byte_rate"], f["align"], f["bits"]) == (6, 1, 8000, 8000, 1, 8)
    assert f["fmt_size"] == 18 and f["cb_size"] == 0
    assert f.get("fact_samples", f["data_size"]) == f["data_size"]


# ---------------------------------------------------------------- callback receiver


@dataclass
class Received:
    body: bytes
    headers: list[tuple[str, str]]
    path: str
    ok: bool
    reason: str
    timestamp: str | None

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class CallbackReceiver:
    """A plain (or TLS) HTTP server on 127.0.0.1:0 that checks each callback's auth-v2 signature with
    the independent verifier. Unverified callbacks get 401; verified ones get the next scripted reply
    (default: HTTP 200 ``{"resultCode":"0"}``)."""

    keys: dict[str, str]
    script: list[tuple[int, Any]] = field(default_factory=list)
    path: str = "/ccfs/callback"
    ssl_context: ssl.SSLContext | None = None
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                query = parse_qsl(parts.query, keep_blank_values=True)
                ok, reason, ts = indep_check(
                    self.headers.get("Authorization"),
                    "POST",
                    parts.path,
                    self.headers.items(),
                    body,
                    receiver.keys,
                    query,
                )
                with receiver._cond:
                    receiver.received.append(Received(body, self.headers.items(), self.path, ok, reason, ts))
                    if not ok:
                        status, reply = 401, {"resultCode": "401"}
                    elif receiver.script:
                        status, reply = receiver.script.pop(0)
                    else:
                        status, reply = 200, {"resultCode": "0", "resultDesc": "success"}
                    receiver._cond.notify_all()
                data = json.dumps(reply).encode() if not isinstance(reply, bytes) else reply
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.ssl_context is not None:
            self.server.socket = self.ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}{self.path}"

    def wait(self, count: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.received) >= count, timeout)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    made: list[CallbackReceiver] = []

    def make(sim, **kwargs: Any) -> CallbackReceiver:
        tenant_keys = {t.ak: t.sk for t in sim.config.tenants if t.ak and t.sk}
        made.append(CallbackReceiver(keys={sim.ak: sim.sk, **sim.config.extra_keys, **tenant_keys}, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()


def wrapped(msg_body: dict[str, Any], version: str = "2.0") -> dict[str, Any]:
    return {"request": {"version": version}, "msgBody": msg_body}
