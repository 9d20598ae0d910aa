"""``python -m local.stack.processes.motoserver --ready-file F``: moto's ThreadedMotoServer in its own process.

A separate process keeps moto's global backends away from the caller (a pytest process may also
use ``mock_aws``), lets it use the second core, and makes its memory go away with it. The port is
chosen by the OS and written to the ready file.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import signal
import threading
from typing import Any

from local.stack.processes.procs import watch_parent, write_ready


def speed_up_routing() -> None:
    """Memoise moto's per-request service lookup (pure functions of the host name).

    moto 5.2's server routes every request under one global lock, and the lookup lists moto's
    package directory (``os.listdir`` + ``isdir`` per entry) and tries ~200 URL regexes each time.
    With a dozen pollers and workers that lock was the local stack's bottleneck.
    """
    from moto import backends
    from moto.moto_server import werkzeug_app

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    original = werkzeug_app.DomainDispatcherApplication.get_backend_for_host
    cache: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in cache:
            cache[host] = original(self, host)
        return cache[host]

    werkzeug_app.DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


def _conditions_hold(backend: Any, transact_items: list[dict[str, Any]]) -> bool:
    """Whether every condition of a TransactWriteItems holds right now (False when unsure)."""
    from moto.dynamodb.comparisons import get_filter_expression

    try:
        for item in transact_items:
            op_type, op = next(iter(item.items()))
            condition = op.get("ConditionExpression")
            if condition is None:
                continue
            if op_type == "Put":
                table = backend.get_table(op["TableName"])
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            current = backend.get_item(op["TableName"], key)
            expression = get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not expression.expr(current):
                return False
    except Exception:  # noqa: BLE001 - anything odd: moto's own path decides and reports it
        return False
    return True


def serialise_dynamodb() -> None:
    """Serve DynamoDB requests one at a time, as DynamoDB's atomicity requires.

    moto's backends take no locks and the threaded server runs requests concurrently. For
    DynamoDB that breaks what the product's exactly-once logic is built on: TransactWriteItems
    deep-copies the tables it touches and, when any condition fails, puts the copies back,
    silently undoing every write other requests made meanwhile (a callback's conditional put, a
    ``recordings_done`` increment: a job then stays DOWNLOADING with every recording in S3). One
    lock around DynamoDB actions restores DynamoDB's semantics; the calls are short, and SQS long
    polls and S3 streams are not affected.

    Under the lock a transaction whose conditions all hold cannot be cancelled by a condition, so
    its whole-table backup is skipped: that deep copy per transaction made a run quadratic in the
    size of the jobs table. (Found by the chaos test, tests/chaos/test_chaos.py.)
    """
    import moto.dynamodb.models as models
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    state = threading.local()

    class _Copy:
        """``copy`` as moto.dynamodb.models sees it: tables are not backed up when flagged."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            if getattr(state, "skip_table_backup", False) and isinstance(value, Table):
                return value
            return copy.deepcopy(value, memo)

    models.copy = _Copy  # type: ignore[assignment]
    original_call = DynamoHandler.call_action
    original_transact = models.DynamoDBBackend.transact_write_items

    def call_action(self: Any) -> Any:
        with lock:
            return original_call(self)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        state.skip_table_backup = _conditions_hold(self, transact_items)
        try:
            original_transact(self, transact_items)
        finally:
            state.skip_table_backup = False

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def serialise_sqs() -> None:
    """Serve SQS requests one at a time, except while a long poll waits, as SQS's semantics require.

    moto's SQS backend takes no lock around a receive: two concurrent ReceiveMessage calls can both
    see a message visible and both mark it received, so one message is in flight with two consumers
    at once (a duplicate delivery SQS's visibility timeout rules out); a DeleteMessage rebuilds the
    queue's message list from a snapshot and drops a message sent meanwhile; a dead-letter move
    (``list.remove`` inside a receive) can race another one and fail the whole receive after its
    messages were marked received. One lock around every SQS action restores an atomic queue; a
    long poll gives the lock up while it waits for messages, so senders are never blocked by it.
    (Found by the chaos test: tests/chaos/test_chaos.py, issue 15.)
    """
    from moto.sqs.models import Queue
    from moto.sqs.responses import SQSResponse

    lock = threading.Lock()
    held = threading.local()
    original_call = SQSResponse.call_action
    original_wait = Queue.wait_for_messages

    def call_action(self: Any) -> Any:
        with lock:
            held.value = True
            try:
                return original_call(self)
            finally:
                held.value = False

    def wait_for_messages(self: Any, timeout: int) -> None:
        if not getattr(held, "value", False):
            original_wait(self, timeout)
            return
        lock.release()
        try:
            original_wait(self, timeout)
        finally:
            lock.acquire()

    SQSResponse.call_action = call_action  # type: ignore[method-assign]
    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack.processes.motoserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args(argv)

    # werkzeug logs every request (each SQS long poll): keep the log for errors.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    speed_up_routing()
    serialise_dynamodb()
    serialise_sqs()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    watch_parent()
    write_ready(args.ready_file, {"host": host, "port": port, "endpoint_url": f"http://{host}:{port}"})
    while not stop.wait(0.2):
        pass
    # Nothing to flush (the state dies with the process); a graceful werkzeug shutdown waits for
    # in-flight long polls and takes seconds. Closing the listening socket first frees the port.
    if server._server is not None:
        server._server.socket.close()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
