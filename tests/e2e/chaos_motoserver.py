"""``python -m tests.e2e.chaos_motoserver``: the local stack's moto server with DynamoDB made atomic.

moto 5.2's ``transact_write_items`` is not atomic under concurrent requests: it deep-copies every
table it touches, applies the operations one by one, and when any condition fails it puts the
*whole* copy back, undoing every write other requests made in between (and a concurrent reader
can see half a transaction). Real DynamoDB has neither problem. Under the chaos profile (many
retried and duplicated deliveries whose conditional writes fail) this loses updates: e.g. a REC
item written with its ``recordings_done`` increment undone, so a job stays DOWNLOADING forever
with every recording in S3.

Here every DynamoDB request is served under one lock, which gives the semantics the product is
written for. Under that lock a transaction whose conditions all hold cannot fail, so its
whole-table backup (a deep copy of thousands of items per recording, quadratic over a run) is
skipped; one whose conditions fail keeps moto's own path. Used by tests/e2e/test_chaos.py until
``local/stack/motoserver.py`` serialises DynamoDB itself (then this module and the spawn patch in
the test can go).
"""

from __future__ import annotations

import copy
import threading
from typing import Any


def _conditions_hold(backend: Any, transact_items: list[dict[str, Any]]) -> bool:
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
    except Exception:  # noqa: BLE001 - anything odd: let moto's own path decide and report it
        return False
    return True


def serialise_dynamodb() -> None:
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


if __name__ == "__main__":
    from local.stack import motoserver

    serialise_dynamodb()
    raise SystemExit(motoserver.main())
