"""``python -m local.stack.processes.front``: API Gateway (REST, proxy integration) in front of one function.

A ThreadingHTTPServer on 127.0.0.1 turns each request for ``/{stage}{path}`` into a REST API proxy
event and hands it to the function, which runs on this process's main thread one invocation at a
time (Powertools resolvers are not thread-safe; a Lambda instance handles one event at a time).
The function's response (``statusCode``, ``headers``, ``multiValueHeaders``, ``body``,
``isBase64Encoded``) becomes the HTTP response. As in API Gateway: an unknown path or method gets
403 ``{"message":"Missing Authentication Token"}``; a handler error or malformed response 502
``{"message": "Internal server error"}``; no answer within 29 s 504.

The event is what API Gateway hands a REST proxy integration, whatever the local connection looks
like: ``Host`` and ``requestContext.domainName`` are the API's domain (``--domain``, by default
``{api-id}.execute-api.{region}.amazonaws.com``), ``X-Forwarded-Proto/Port`` say https/443,
``X-Forwarded-For`` ends with the caller, a fresh ``X-Amzn-Trace-Id``, no ``Content-Length`` and no
hop-by-hop headers (local/stack/processes/events.py). With ``--tls-cert/--tls-key`` it serves HTTPS with a
certificate for that domain (the stack's stand-in for API Gateway's public chain), so a caller
(the simulator playing CC-FS) must trust its CA, as CC-FS's truststore.jks must trust Amazon's.

A function timeout is reported as 502 but, unlike Lambda, does not reset the sandbox (the front's
port is the stack's callback URL and must not change).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import signal
import ssl
import threading
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.stack.processes.procs import watch_parent, write_ready

INTEGRATION_TIMEOUT = 29.0
_jobs: queue.Queue[tuple[dict[str, Any], Future[Any]] | None] = queue.Queue()


def _http_response(invocation: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    if invocation.error is not None:
        return 502, [("Content-Type", "application/json")], b'{"message": "Internal server error"}'
    result = invocation.result
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        return 502, [("Content-Type", "application/json")], b'{"message": "Internal server error"}'
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), str(value)))
    single = {n.lower() for n, _ in headers}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if str(name).lower() in single:
            continue  # API Gateway merges; the single-value map wins for the same name
        headers.extend((str(name), str(v)) for v in values)
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
    return int(result["statusCode"]), headers, raw


class _Handler(BaseHTTPRequestHandler):
    server_version = "local-apigateway"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one JSON access-log line per request instead (see _access_log)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes, request_id: str) -> None:
        self.send_response(status)
        names = {n.lower() for n, _ in headers}
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if "content-type" not in names:
            self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        from local.stack.processes.events import api_gateway_event

        cfg = self.server.config  # type: ignore[attr-defined]
        started = time.monotonic()
        body = self._read_body()
        split = urlsplit(self.path)
        expected = f"/{cfg['stage']}{cfg['path']}"
        request_id = "-"
        if split.path != expected or (cfg["method"] != "ANY" and self.command != cfg["method"]):
            headers: list[tuple[str, str]] = []
            status, raw = 403, b'{"message":"Missing Authentication Token"}'
        else:
            event = api_gateway_event(
                method=self.command,
                raw_path=split.path,
                resource=cfg["path"],
                stage=cfg["stage"],
                headers=list(self.headers.items()),
                query=parse_qs(split.query, keep_blank_values=True),
                body=body,
                source_ip=str(self.client_address[0]),
                host=cfg["domain"],
                protocol=self.request_version,
                api_id=cfg["api_id"],
            )
            request_id = event["requestContext"]["requestId"]
            future: Future[Any] = Future()
            _jobs.put((event, future))
            try:
                status, headers, raw = _http_response(future.result(timeout=INTEGRATION_TIMEOUT))
            except TimeoutError:
                status, headers, raw = 504, [], b'{"message": "Endpoint request timed out"}'
        self._send(status, headers, raw, request_id)
        _access_log(self, status, len(raw), request_id, started)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


def _access_log(handler: _Handler, status: int, length: int, request_id: str, started: float) -> None:
    # The template's access-log format: no headers, no body (secrets and personal data).
    from local.stack.processes.runtime import emit

    emit(
        json.dumps(
            {
                "local": "access",
                "requestId": request_id,
                "sourceIp": handler.client_address[0],
                "httpMethod": handler.command,
                "path": urlsplit(handler.path).path,
                "status": status,
                "responseLength": length,
                "responseLatency": round((time.monotonic() - started) * 1000, 1),
            }
        )
    )


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with the TLS handshake in each connection's own thread."""

    daemon_threads = True
    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(10)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return  # a client that does not trust the certificate: it sees the TLS alert
        conn.settimeout(None)
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a broken connection is the client's concern; requests are in the access log


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m local.stack.processes.front")
    p.add_argument("--function", required=True)
    p.add_argument("--code", required=True)
    p.add_argument("--handler", default="app.lambda_handler")
    p.add_argument("--layer", action="append", default=[])
    p.add_argument("--timeout", type=int, default=3)
    p.add_argument("--memory", type=int, default=128)
    p.add_argument("--patch", default="{}", help="JSON {module.NAME: value} applied after the import")
    p.add_argument("--stage", required=True)
    p.add_argument("--path", required=True, help="resource path, e.g. /ccfs/callback")
    p.add_argument("--method", default="POST")
    p.add_argument("--api-id", default="local0api0", help="the REST API's id")
    p.add_argument("--domain", default="", help="default: {api-id}.execute-api.{region}.amazonaws.com")
    p.add_argument("--tls-cert", default="", help="PEM certificate chain for --domain (HTTPS)")
    p.add_argument("--tls-key", default="", help="PEM private key of --tls-cert")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ready-file", required=True)
    args = p.parse_args(argv)

    from local.stack.processes.runtime import FunctionRuntime, log_line

    runtime = FunctionRuntime(
        args.function, args.code, args.handler, args.layer, args.timeout, args.memory, json.loads(args.patch)
    )
    from local.stack.cfn import REGION

    domain = args.domain or f"{args.api_id}.execute-api.{REGION}.amazonaws.com"
    server = _Server((args.host, args.port), _Handler)
    if args.tls_cert:
        server.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        server.ssl_context.load_cert_chain(args.tls_cert, args.tls_key or None)
    server.config = {  # type: ignore[attr-defined]
        "stage": args.stage,
        "path": args.path,
        "method": args.method.upper(),
        "domain": domain,
        "api_id": args.api_id,
    }
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent()
    port = server.server_address[1]
    scheme = "https" if args.tls_cert else "http"
    url = f"{scheme}://{args.host}:{port}/{args.stage}{args.path}"
    public_url = f"https://{domain}/{args.stage}{args.path}"
    log_line(
        event="ready",
        worker="front",
        function=args.function,
        url=url,
        init_ms=round(runtime.init_ms, 1),
        patched=runtime.patched,
    )
    write_ready(args.ready_file, {"pid": os.getpid(), "port": port, "url": url, "public_url": public_url})
    while not stop.is_set():
        try:
            job = _jobs.get(timeout=0.5)
        except queue.Empty:
            continue
        if job is None:
            break
        event, future = job
        if future.set_running_or_notify_cancel():
            future.set_result(runtime.invoke(event))
    server.shutdown()
    server.server_close()
    log_line(event="stopped", worker="front")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
