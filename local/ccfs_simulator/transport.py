"""HTTP(S) plumbing: a threading server that does the TLS handshake per connection thread, tracks
connections so ``stop()`` can close and join them, and an ``Exchange`` with reply helpers.

Nothing here logs a header, a body or a query string (auth-v2 values and pre-signed URLs are
credentials; bodies carry phone numbers).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .bills import ChunkedWriter

log = logging.getLogger("local.ccfs_simulator")

__all__ = ["ConnectionCut", "Exchange", "SimServer"]

JSON_TYPE = "application/json;charset=UTF-8"
MAX_BODY = 1 << 20


def _hard_shutdown(conn: socket.socket) -> None:
    """TCP shutdown, bypassing ``SSLSocket.shutdown`` (which drops its TLS object: unsafe while the
    connection's own thread is still reading or writing)."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(conn, socket.SHUT_RDWR)


class ConnectionCut(Exception):
    """Raised after the reset fault cut a connection mid-body: unwinds the handler."""


class _CuttingWriter:
    """Writes to the socket file; once ``limit`` bytes went out, cuts the TCP connection."""

    def __init__(self, exchange: Exchange, limit: int | None) -> None:
        self._exchange = exchange
        self._limit = limit
        self.written = 0

    def write(self, data: bytes) -> int:
        if self._limit is not None and self.written + len(data) >= self._limit:
            part = data[: max(0, self._limit - self.written)]
            self._exchange.handler.wfile.write(part)
            self.written += len(part)
            self._exchange.cut()
            raise ConnectionCut
        self._exchange.handler.wfile.write(data)
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        self._exchange.handler.wfile.flush()


class Exchange:
    """One request as received and the ways to answer it."""

    def __init__(self, handler: _Handler, method: str) -> None:
        self.handler = handler
        self.method = method
        parts = urlsplit(handler.path)
        self.path = parts.path
        self.raw_query = parts.query
        self.query = parse_qsl(parts.query, keep_blank_values=True)
        self.headers = handler.headers
        self.client_host = handler.client_address[0]
        self.body = b""
        self.status: int | None = None
        self.on_status: Callable[[int], None] | None = None
        self.on_bytes: Callable[[int], None] | None = None

    def read_body(self) -> bool:
        """Read the request body; answer 411/413 and return False when it cannot be read."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.handler.close_connection = True
            self.send(411, b"chunked request bodies are not supported\n", "text/plain")
            return False
        raw_length = self.headers.get("Content-Length")
        try:
            length = int(raw_length) if raw_length else 0
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.handler.close_connection = True
            self.send(413 if length > MAX_BODY else 400, b"bad Content-Length\n", "text/plain")
            return False
        self.body = self.handler.rfile.read(length) if length else b""
        return True

    # ------------------------------------------------------------------ replies

    def _start(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        if self.on_status:
            self.on_status(status)
        self.handler.send_response(status)
        for name, value in headers.items():
            self.handler.send_header(name, value)
        self.handler.end_headers()

    def send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self._start(status, {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})})
        if self.method != "HEAD":
            self.handler.wfile.write(body)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send(status, body, JSON_TYPE, headers)

    def send_stream(
        self,
        status: int,
        content_type: str,
        length: int,
        chunks: Iterable[bytes],
        cut_at: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Stream a body of known length; with ``cut_at``, cut the connection after that many bytes."""
        self._start(status, {"Content-Type": content_type, "Content-Length": str(length), **(headers or {})})
        if self.method == "HEAD":
            return
        writer = _CuttingWriter(self, cut_at)
        try:
            for chunk in chunks:
                writer.write(chunk)
        finally:
            if self.on_bytes:
                self.on_bytes(writer.written)

    def send_chunked(
        self,
        status: int,
        content_type: str,
        produce: Callable[[Any], None],
        cut_at: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Stream a body of unknown length (chunked); ``produce(writer)`` writes raw bytes to it."""
        self._start(status, {"Content-Type": content_type, "Transfer-Encoding": "chunked", **(headers or {})})
        if self.method == "HEAD":
            return
        writer = _CuttingWriter(self, cut_at)
        chunked = ChunkedWriter(writer)
        try:
            produce(chunked)
            chunked.finish()
        finally:
            if self.on_bytes:
                self.on_bytes(chunked.sent)

    def cut(self) -> None:
        """Close the TCP connection without a TLS close_notify: the client sees a truncated body."""
        self.handler.close_connection = True
        with contextlib.suppress(OSError):
            self.handler.wfile.flush()
        _hard_shutdown(self.handler.connection)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CCFS-Simulator/1.0"
    sys_version = ""
    timeout = 60
    server: SimServer

    def _run(self, method: str) -> None:
        exchange = Exchange(self, method)
        try:
            self.server.dispatch(exchange)
        except ConnectionCut:
            self.close_connection = True

    def do_GET(self) -> None:
        self._run("GET")

    def do_HEAD(self) -> None:
        self._run("HEAD")

    def do_POST(self) -> None:
        self._run("POST")

    def do_PUT(self) -> None:
        self._run("PUT")

    def do_DELETE(self) -> None:
        self._run("DELETE")

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ssl.SSLError, ConnectionCut):
            self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The request line would carry a pre-signed URL's query: log the path only.
        log.debug("%s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


class SimServer(ThreadingHTTPServer):
    """Threading HTTP server, TLS per connection thread, with tracked connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        dispatch: Callable[[Exchange], None],
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.dispatch = dispatch
        self.ssl_context = ssl_context
        self._track = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._open = 0  # connections accepted and not yet closed
        self._peak = 0  # the most open at once since start or reset_connection_peak()
        self._workers: set[threading.Thread] = set()
        self._closing = False
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True, name="ccfs-sim-conn"
        )
        with self._track:
            if self._closing:
                self.shutdown_request(request)
                return
            self._workers.add(worker)
            self._connections.add(request)
            self._open += 1
            self._peak = max(self._peak, self._open)
        worker.start()

    def connection_counts(self) -> tuple[int, int]:
        """(open now, the most open at once)."""
        with self._track:
            return self._open, self._peak

    def reset_connection_peak(self) -> None:
        with self._track:
            self._peak = self._open

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        conn: socket.socket = request
        try:
            # headers and body go out in separate writes: without NODELAY, Nagle + delayed ACK
            # add ~40 ms to every keep-alive request
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                request.settimeout(10)
                conn = self.ssl_context.wrap_socket(request, server_side=True)
                with self._track:
                    self._connections.discard(request)
                    self._connections.add(conn)
            self.finish_request(conn, client_address)
        except (OSError, ssl.SSLError) as exc:
            log.debug("connection from %s ended: %s", client_address[0], type(exc).__name__)
        except Exception:
            log.exception("unexpected error serving a connection")
        finally:
            with contextlib.suppress(OSError):
                self.shutdown_request(conn)
            with self._track:
                self._connections.discard(conn)
                self._connections.discard(request)
                self._workers.discard(threading.current_thread())
                self._open -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("error serving %s", client_address, exc_info=True)

    def close_connections(self, timeout: float = 5.0) -> None:
        """Cut every open connection and join their threads."""
        with self._track:
            self._closing = True
            connections = list(self._connections)
            workers = list(self._workers)
        for conn in connections:
            _hard_shutdown(conn)
        for worker in workers:
            worker.join(timeout)
