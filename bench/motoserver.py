"""``python -m bench.motoserver --ready-file F``: the benchmarks' moto server (S3 objects on disk).

moto 5.2.5 keeps every S3 object in a ``SpooledTemporaryFile`` that stays in memory below ~5 MiB,
builds a completed multipart object as one ``bytearray`` (then copies it to ``bytes``: twice its
size in RAM), and reads the *whole* source object for every ``UploadPartCopy``. A 1 GiB recording
copied the way the exporter does it (multipart upload to staging, multipart copy to the final key)
then costs moto several GiB and minutes, which would measure moto, not the exporter.

This entry point runs moto's WSGI app with changes that only concern how moto stores bytes and
holds connections, never what it answers:

* HTTP keep-alive: werkzeug's development server sends ``Connection: close`` on every response, so
  each AWS call paid a TCP connect and a new server thread (boto3 keeps connections to AWS open;
  here the exporter makes 4 requests per recording, the naive script 1, as the bench counts them:
  ``bench.awscount``). The request body is read
  whole before moto sees it and the response is sent with its length, so the connection stays in
  step;

* ``MOTO_S3_DEFAULT_KEY_BUFFER_SIZE`` = 256 KiB (a moto setting): objects spill to temp files;
* completing a multipart upload streams the parts into one temp file, part by part;
* ``UploadPartCopy`` reads only the requested byte range of the source;
* DynamoDB requests are served one at a time, by the local stack's
  ``local.stack.processes.motoserver.serialise_dynamodb``: moto's ``TransactWriteItems`` snapshots whole
  tables with ``deepcopy`` and restores the snapshot when a transaction is cancelled, wiping writes
  that other threads made meanwhile (without it, concurrent recording copies lost
  ``recordings_done`` increments), and the whole-table copy made every transaction O(table size)
  (15 ms each after 500 recordings); serialised, a transaction whose conditions hold skips it;
* a thread runs ``gc.collect()`` twice a second: every moto/Flask request object sits in a
  reference cycle, so a 16 MiB part body stays alive until a full collection, which allocation
  counts (not bytes) trigger rarely; without it moto grew by ~800 MB during one 1 GiB upload.
  Every 5 s the survivors are frozen (``gc.freeze``), so a collection scans only new objects.

Full-object checksums of a multipart upload (moto's CRC64NVME default when the client asked for
none) are not computed, as that needs the whole object in memory; composite checksums (CRC32,
boto3's default) are. Temp files go to ``TMPDIR`` (the run directory: disk, not RAM).
"""

from __future__ import annotations

import argparse
import codecs
import gc
import logging
import os
import signal
import socket
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

KEY_BUFFER_BYTES = 256 * 1024


class DiskValue:
    """A completed multipart object: an open temp file the new key adopts instead of bytes."""

    def __init__(self, handle: IO[bytes], size: int) -> None:
        self.handle = handle
        self.size = size

    def __len__(self) -> int:
        return self.size


def patch_moto() -> None:
    """Apply the storage changes described in the module docstring (idempotent enough: once)."""
    os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(KEY_BUFFER_BYTES))
    from moto.s3 import models
    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML

    fake_key = models.FakeKey
    original_setter = fake_key.value.fset  # type: ignore[attr-defined]
    original_getter = fake_key.value.fget  # type: ignore[attr-defined]

    def set_value(self: Any, new_value: Any) -> None:
        if isinstance(new_value, DiskValue):
            self._value_buffer.close()
            new_value.handle.seek(0)
            self._value_buffer = new_value.handle
            self.contentsize = new_value.size
            return
        original_setter(self, new_value)

    fake_key.value = property(original_getter, set_value)  # type: ignore[assignment]

    def complete(self: Any, body: Any) -> tuple[DiskValue, str, tuple[str, str, int] | None]:
        algorithm = self.metadata.get("x-amz-checksum-algorithm")
        builder = models.MultipartChecksumBuilder(algorithm, self.metadata.get("x-amz-checksum-type"))
        if not algorithm or builder.checksum_type != "COMPOSITE":
            builder = None  # a full-object checksum needs the whole object in memory: skipped here
        decode_hex = codecs.getdecoder("hex_codec")
        md5s = bytearray()
        handle = tempfile.TemporaryFile()  # noqa: SIM115 - adopted by the new key
        size = 0
        last = None
        count = 0
        for part_number, etag in body:
            part = self.parts.get(part_number)
            part_etag = None
            if part is not None:
                part_etag = part.etag.replace('"', "")
                etag = etag.replace('"', "")
            if part is None or part_etag != etag:
                handle.close()
                raise InvalidPart()
            if last is not None and last.contentsize < models.S3_UPLOAD_PART_MIN_SIZE:
                handle.close()
                raise EntityTooSmall()
            md5s.extend(decode_hex(part_etag)[0])  # type: ignore[arg-type]
            data = part.value  # one part in memory at a time
            handle.write(data)
            size += len(data)
            if builder is not None:
                builder.addPart(data)
            last = part
            count += 1
        if count == 0:
            handle.close()
            raise MalformedXML
        full_etag = models.md5_hash()
        full_etag.update(bytes(md5s))
        checksum = builder.build() if builder is not None else None
        return DiskValue(handle, size), f"{full_etag.hexdigest()}-{count}", checksum

    models.FakeMultipart.complete = complete  # type: ignore[assignment,method-assign]

    def upload_part_copy(
        self: Any,
        dest_bucket_name: str,
        multipart_id: str,
        part_id: int,
        src_bucket_name: str,
        src_key_name: str,
        src_version_id: str | None,
        start_byte: int | None,
        end_byte: int | None,
    ) -> Any:
        multipart = self.get_bucket(dest_bucket_name).multiparts[multipart_id]
        source = self.get_object(src_bucket_name, src_key_name, version_id=src_version_id)
        if start_byte is None or end_byte is None:
            data = source.value
        else:
            with source.lock:
                source._value_buffer.seek(start_byte)
                data = source._value_buffer.read(end_byte - start_byte + 1)
        return multipart.set_part(part_id, data)

    models.S3Backend.upload_part_copy = upload_part_copy  # type: ignore[method-assign]


def account_cpu(path: str) -> Any:
    """Diagnostics (``BENCH_MOTO_CPU=path``): CPU seconds per service and action, written at exit."""
    import json
    import time
    from collections import defaultdict

    from moto.moto_server import werkzeug_app

    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    original = werkzeug_app.DomainDispatcherApplication.__call__

    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        started = time.thread_time()
        try:
            return list(original(self, environ, start_response))
        finally:
            target = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
            query = environ.get("QUERY_STRING", "")
            action = target or environ["REQUEST_METHOD"] + (" ?" + query.split("=", 1)[0] if query else "")
            if "Action=" in query:
                action = query.split("Action=", 1)[1].split("&", 1)[0]
            entry = totals[action]
            entry[0] += 1
            entry[1] += time.thread_time() - started

    werkzeug_app.DomainDispatcherApplication.__call__ = call  # type: ignore[method-assign]

    def dump() -> None:
        Path(path).write_text(json.dumps(dict(totals), indent=1))

    return dump


def keep_alive_server(host: str, port: int) -> Any:
    """moto's app behind werkzeug's threaded server with a keep-alive request handler."""
    import io

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class KeepAliveHandler(MotoRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # headers and body leave in two writes: without NODELAY, Nagle + delayed ACK add ~40 ms
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def run_wsgi(self) -> None:
            if self.headers.get("Expect", "").lower().strip() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            environ = self.make_environ()
            body = (
                environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                if not environ.get("wsgi.input_terminated")
                else environ["wsgi.input"].read()
            )
            environ["wsgi.input"] = io.BytesIO(body)
            environ["wsgi.input_terminated"] = True
            environ["CONTENT_LENGTH"] = str(len(body))
            reply: dict[str, Any] = {}

            def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                reply["status"], reply["headers"] = status, headers
                return lambda data: reply.setdefault("early", []).append(data)

            chunks = self.server.app(environ, start_response)
            try:
                data = b"".join([*reply.get("early", []), *chunks])
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
            code, _, message = reply["status"].partition(" ")
            self.send_response(int(code), message)
            for name, value in reply["headers"]:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            if environ["REQUEST_METHOD"] == "HEAD":
                length = next((v for n, v in reply["headers"] if n.lower() == "content-length"), "0")
                self.send_header("Content-Length", length)
            else:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if environ["REQUEST_METHOD"] != "HEAD" and data:
                self.wfile.write(data)

    app = DomainDispatcherApplication(create_backend_app)
    return make_server(host, port, app, True, request_handler=KeepAliveHandler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.motoserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args(argv)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    patch_moto()
    # The local stack's routing memo (moto's per-request service lookup is slow) and its DynamoDB and
    # SQS serialisation (moto's transactions and queues are not atomic under concurrent requests).
    from local.stack.processes.motoserver import serialise_dynamodb, serialise_sqs, speed_up_routing

    speed_up_routing()
    serialise_dynamodb()
    serialise_sqs()
    dump = account_cpu(os.environ["BENCH_MOTO_CPU"]) if os.environ.get("BENCH_MOTO_CPU") else None
    from local.stack.processes.procs import watch_parent, write_ready

    server = keep_alive_server(args.host, args.port)
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()
    host, port = server.server_address[:2]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    watch_parent()
    write_ready(
        args.ready_file, {"host": host, "port": port, "endpoint_url": f"http://{host}:{port}", "pid": os.getpid()}
    )
    ticks = 0
    while not stop.wait(0.5):
        gc.collect()
        ticks += 1
        if ticks % 10 == 1:
            # survivors are moto's own state (modules, backends, stored items): freeze them so the
            # next collections scan only what is new (a full collection of moto's heap costs ~100 ms)
            gc.freeze()
    server.shutdown()
    if dump is not None:
        dump()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
