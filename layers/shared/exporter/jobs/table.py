"""The jobs table's one access path: one low-level DynamoDB client, one serialisation, one place
that turns refused conditions into results.

Callers pass plain Python values (str, int, bool, lists, sets, dicts); this module serialises them
with boto3's ``TypeSerializer`` (``None`` attributes are left out, as DynamoDB has no use for them)
and hands items back deserialised, with DynamoDB's ``Decimal`` numbers as ``int`` (or ``float``).

Every conditional write answers with what refused it instead of raising: a single write with
``False``, a transaction with the per-item cancellation codes. Anything else (throttling, a
conflicting transaction, a validation error) is raised so the caller's retry machinery sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

__all__ = ["CONDITION_FAILED", "JobsTable", "from_ddb", "refused_by", "to_ddb"]

CONDITION_FAILED = "ConditionalCheckFailed"
"""The cancellation code of a transaction item whose condition did not hold."""

_ser = TypeSerializer()
_de = TypeDeserializer()


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to int/float, recursively (sets stay sets, lists stay lists)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, set):
        return {_plain(v) for v in value}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_ddb(values: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute map (an item, a key or expression values) in DynamoDB's wire form; None left out."""
    return {k: _ser.serialize(v) for k, v in values.items() if v is not None}


def from_ddb(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item in DynamoDB's wire form as plain Python values."""
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}


def refused_by(write: Callable[[], object]) -> list[str] | None:
    """Run one write. ``None`` when it was applied; when a condition refused it, the codes that say
    which: ``[CONDITION_FAILED]`` for a single write, one code per item for a transaction
    (``"None"`` for the items that were fine). A transaction cancelled for any other reason only
    (a conflict, throttling) and every other error are raised: transient, retried higher up."""
    try:
        write()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "ConditionalCheckFailedException":
            return [CONDITION_FAILED]
        if code == "TransactionCanceledException":
            reasons = [str(r.get("Code") or "None") for r in exc.response.get("CancellationReasons") or []]
            if CONDITION_FAILED in reasons:
                return reasons
        raise
    return None


def _wire_action(table: str, action: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One ``TransactItems`` entry (``{"Put"|"Update"|...: {...}}``) with plain values serialised."""
    ((kind, spec),) = action.items()
    wire: dict[str, Any] = {**spec, "TableName": table}
    for field in ("Item", "Key", "ExpressionAttributeValues"):
        if field in wire:
            wire[field] = to_ddb(wire[field])
    return {kind: wire}


class JobsTable:
    """The jobs table through a low-level boto3 DynamoDB client (``exporter.aws.client``)."""

    def __init__(self, ddb: Any, name: str) -> None:
        self.ddb = ddb
        self.name = name

    def get(self, key: Mapping[str, str]) -> dict[str, Any] | None:
        """One item, consistent read."""
        reply = self.ddb.get_item(TableName=self.name, Key=to_ddb(key), ConsistentRead=True)
        return from_ddb(reply["Item"]) if "Item" in reply else None

    def put(self, item: Mapping[str, Any], condition: str, values: Mapping[str, Any] | None = None) -> bool:
        """Conditional put; False when the condition refused it."""
        kwargs: dict[str, Any] = {"ConditionExpression": condition}
        if values:
            kwargs["ExpressionAttributeValues"] = to_ddb(values)
        return refused_by(lambda: self.ddb.put_item(TableName=self.name, Item=to_ddb(item), **kwargs)) is None

    def update(
        self,
        key: Mapping[str, str],
        *,
        update: str,
        condition: str,
        values: Mapping[str, Any] | None = None,
        names: Mapping[str, str] | None = None,
    ) -> bool:
        """Conditional update; False when the condition refused it."""
        kwargs: dict[str, Any] = {"UpdateExpression": update, "ConditionExpression": condition}
        if values:
            kwargs["ExpressionAttributeValues"] = to_ddb(values)
        if names:
            kwargs["ExpressionAttributeNames"] = dict(names)
        return refused_by(lambda: self.ddb.update_item(TableName=self.name, Key=to_ddb(key), **kwargs)) is None

    def transact(self, actions: list[dict[str, dict[str, Any]]]) -> list[str] | None:
        """One ``TransactWriteItems`` of plain-valued actions: ``None`` when applied, else the
        per-item cancellation codes (see :func:`refused_by`)."""
        items = [_wire_action(self.name, action) for action in actions]
        return refused_by(lambda: self.ddb.transact_write_items(TransactItems=items))

    def query_items(self, *, max_pages: int | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Items of a query (plain ``ExpressionAttributeValues``), page by page; at most
        ``max_pages`` pages when given (the rest waits for the caller's next run)."""
        request: dict[str, Any] = {**kwargs, "TableName": self.name}
        if "ExpressionAttributeValues" in request:
            request["ExpressionAttributeValues"] = to_ddb(request["ExpressionAttributeValues"])
        pages = 0
        while max_pages is None or pages < max_pages:
            reply = self.ddb.query(**request)
            pages += 1
            for item in reply.get("Items", []):
                yield from_ddb(item)
            last = reply.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last
