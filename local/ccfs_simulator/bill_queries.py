"""The accepted queryBillData queries and their bills: each query's responseId, bill file name,
callback URL and callback status, and each bill's zip once built (on the first callback attempt,
from the calls the query selects, in the tenant's zone) — what downloadBillFile serves."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .accounts import Accounts
from .bills import BillStyle, write_bill_zip
from .config import SimulatorConfig
from .counters import Counters
from .data import CDR_HEADER, INDEX_HEADER, Call, CallCenter
from .requests import QueryBody, format_time

__all__ = ["FINAL", "Bill", "BillBook", "Query"]

FINAL = frozenset({"acked", "given_up", "lost", "failed"})  # callback statuses that end a query


@dataclass
class Bill:
    ak: str
    path: Path | None = None
    entries: list[str] = field(default_factory=list)


@dataclass
class Query:
    response_id: str
    ak: str
    body: QueryBody
    account_present: bool
    account_value: str | None
    bill_file_name: str
    callback_url: str
    created_at: float
    status: str = "pending"  # pending -> acked | given_up | lost | failed
    attempts: int = 0
    bad_signature_pending: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "responseId": self.response_id,
            "billFileName": self.bill_file_name,
            "accountId": self.account_value,
            "beginTime": format_time(self.body.beginTime),
            "endTime": format_time(self.body.endTime),
            "dataType": self.body.dataType,
            "status": self.status,
            "attempts": self.attempts,
        }


class BillBook:
    """Queries by responseId and bills by file name. ``directory`` (where bills are written) is set
    when the server starts."""

    def __init__(
        self,
        config: SimulatorConfig,
        center: CallCenter,
        accounts: Accounts,
        counters: Counters,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._center = center
        self._accounts = accounts
        self._counters = counters
        self._clock = clock
        self._lock = threading.Lock()
        self._queries: dict[str, Query] = {}
        self._bills: dict[str, Bill] = {}
        self.directory: Path | None = None

    def add(self, query: Query) -> None:
        with self._lock:
            self._queries[query.response_id] = query
            self._bills[query.bill_file_name] = Bill(ak=query.ak)

    def register_bill(self, name: str, ak: str, path: Path) -> None:
        """A bill written elsewhere (the benchmarks' streaming writer), served as ``name`` to ``ak``."""
        with self._lock:
            self._bills[name] = Bill(ak=ak, path=path)

    def query_and_bill(self, response_id: str) -> tuple[Query | None, Bill | None]:
        with self._lock:
            query = self._queries.get(response_id)
            bill = self._bills.get(query.bill_file_name) if query else None
        return query, bill

    def bill_path(self, name: str, ak: str) -> Path | None:
        """The built bill ``name`` if ``ak`` asked for it (None: unknown, not built, or not its own)."""
        with self._lock:
            bill = self._bills.get(name)
            return bill.path if bill is not None and bill.ak == ak else None

    def summaries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [q.summary() for q in self._queries.values()]

    def build(self, query: Query) -> None:
        """Write the bill of ``query`` (its calls, the parts its dataType asks for) as a zip."""
        assert self.directory is not None
        body = query.body
        calls = self._select_calls(body, query.ak)
        cdr_rows = [leg for call in calls for leg in call.legs]
        index_rows = [rec.row for call in calls for rec in call.recordings]
        path = self.directory / query.bill_file_name
        entries = write_bill_zip(
            path,
            generated_at=datetime.fromtimestamp(self._clock(), self._accounts.zone_for(body.accountId, query.ak)),
            random_digits=f"{random.Random(query.response_id).randrange(1000):03d}",
            cdr=(CDR_HEADER, cdr_rows) if body.dataType in ("call", "call_record") else None,
            index=(INDEX_HEADER, index_rows) if body.dataType in ("record", "call_record") else None,
            split_rows=self._config.split_rows,
            style=BillStyle.of(self._config),
        )
        with self._lock:
            bill = self._bills[query.bill_file_name]
            bill.path, bill.entries = path, entries
        self._counters.count("bills_built")

    def _select_calls(self, body: QueryBody, ak: str) -> list[Call]:
        if body.accountId:
            accounts = [body.accountId] if self._center.tenant(body.accountId) is not None else []
        else:
            accounts = self._accounts.accounts_of(ak)  # the whole developer account: its own tenants only
        calls = [c for a in accounts for c in self._center.calls_between(a, body.beginTime, body.endTime)]

        def keep(call: Call) -> bool:
            first = call.legs[0]
            return (
                (body.callId is None or call.call_id == body.callId)
                and (body.agentId is None or call.agent_id == body.agentId)
                and (body.callerNo is None or first["caller_no"] == body.callerNo)
                and (body.calleeNo is None or first["callee_no"] == body.calleeNo)
                and (body.calleeNo2 is None or first["callee_no"] == body.calleeNo2)
            )

        return [c for c in calls if keep(c)]
