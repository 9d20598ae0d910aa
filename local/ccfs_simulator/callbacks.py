"""The signed bill callback: after ``callback_delay`` CC-FS builds the bill and POSTs
``{responseId, billFileName[, accountId]}`` to the query's callBackURL, signed with the requesting
ak, retrying every ``callback_retry_interval`` up to ``callback_max_tries``; the callback faults
(lost, bad signature, duplicate, clock skew) are injected here. Runs on a small thread pool."""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from ccfs.auth import sign

from .accounts import Accounts
from .bill_queries import FINAL, BillBook, Query
from .config import SimulatorConfig
from .counters import Counters
from .faults import FaultStreams
from .tls import callback_trust

__all__ = ["CallbackSender", "Scheduler", "callback_body"]

log = logging.getLogger("local.ccfs_simulator")


class Scheduler:
    """Runs callables after a delay on a small thread pool (the callback worker)."""

    def __init__(self, workers: int = 4) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name="ccfs-sim-scheduler")
        self._workers = workers
        self._running: set[threading.Thread] = set()

    def start(self) -> None:
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), fn))
            self._cond.notify_all()

    def _loop(self) -> None:
        with self._cond:
            while not self._stopped:
                if not self._heap or len(self._running) >= self._workers:
                    self._cond.wait()
                    continue
                due, _, fn = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                worker = threading.Thread(target=self._run, args=(fn,), daemon=True, name="ccfs-sim-callback")
                self._running.add(worker)
                worker.start()

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("callback job failed")
        finally:
            with self._cond:
                self._running.discard(threading.current_thread())
                self._cond.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            running = list(self._running)
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for worker in running:
            worker.join(timeout)


def callback_body(query_summary: dict[str, Any]) -> bytes:
    """The exact callback body for a query (as listed by ``Simulator.queries``)."""
    msg: dict[str, Any] = {
        "responseId": query_summary["responseId"],
        "billFileName": query_summary["billFileName"],
    }
    if query_summary.get("accountId") is not None:
        msg["accountId"] = query_summary["accountId"]
    return json.dumps({"request": {"version": "2.0"}, "msgBody": msg}, separators=(",", ":")).encode()


class CallbackSender:
    """Schedules, signs and sends the callbacks of accepted queries (between ``start`` and ``stop``)."""

    def __init__(
        self,
        config: SimulatorConfig,
        bills: BillBook,
        accounts: Accounts,
        faults: FaultStreams,
        counters: Counters,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._bills = bills
        self._accounts = accounts
        self._faults = faults
        self._count = counters.count
        self._clock = clock
        self._lock = threading.Lock()
        self._scheduler: Scheduler | None = None
        self._http: httpx.Client | None = None

    def start(self) -> None:
        self._scheduler = Scheduler()
        self._scheduler.start()

    def stop(self) -> None:
        """Forget every scheduled callback (first tries and retries) and close the client."""
        if self._scheduler is not None:
            self._scheduler.stop()
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def schedule(self, response_id: str) -> None:
        """The first attempt for a just accepted query, ``callback_delay`` from now."""
        if self._scheduler is not None:
            self._scheduler.call_later(self._config.callback_delay, lambda: self._attempt(response_id))

    def _attempt(self, response_id: str) -> None:
        query, bill = self._bills.query_and_bill(response_id)
        if query is None or bill is None or query.status in FINAL:
            return
        if bill.path is None:
            try:
                self._bills.build(query)
            except Exception:
                log.exception("building bill %s failed", query.bill_file_name)
                self._count("bills_failed")
                query.status = "failed"
                return
        faults = self._faults.current
        if query.attempts == 0:
            if self._faults.roll("lost_callback", faults.lost_callback_rate):
                self._count("callbacks_lost")
                query.status = "lost"
                return
            rate = faults.bad_signature_callback_rate
            query.bad_signature_pending = self._faults.roll("bad_signature_callback", rate)
        query.attempts += 1
        bad_signature, query.bad_signature_pending = query.bad_signature_pending, False
        if bad_signature:
            self._count("callbacks_bad_signature")
        acked = self._post(query, bad_signature=bad_signature)
        if acked:
            self._count("callbacks_acked")
            if bad_signature:
                self._count("callbacks_bad_signature_accepted")
            query.status = "acked"
            if self._faults.roll("duplicate_callback", faults.duplicate_callback_rate) and self._scheduler:
                self._scheduler.call_later(0, lambda: self._duplicate(query))
            return
        self._count("callbacks_failed")
        if query.attempts >= self._config.callback_max_tries:
            query.status = "given_up"
            self._count("callbacks_given_up")
            log.warning("callback for %s given up after %d tries", response_id, query.attempts)
        elif self._scheduler is not None:
            self._scheduler.call_later(self._config.callback_retry_interval, lambda: self._attempt(response_id))

    def _duplicate(self, query: Query) -> None:
        self._count("callbacks_duplicated")
        self._post(query, bad_signature=False)

    def _client(self) -> httpx.Client:
        with self._lock:  # created on first use: loading the system CA store costs ~20 ms
            if self._http is None:
                verify = callback_trust(self._config.callback_verify)
                self._http = httpx.Client(verify=verify, timeout=self._config.callback_timeout)
            return self._http

    def _post(self, query: Query, *, bad_signature: bool) -> bool:
        summary = query.summary()
        summary["accountId"] = query.account_value if query.account_present else None
        body = callback_body(summary)
        parts = urlsplit(query.callback_url)
        host = parts.netloc.rpartition("@")[2]
        headers = {
            "Content-Type": "application/json;charset=UTF-8",
            "Content-Length": str(len(body)),
            "Host": host,
        }
        sk = self._accounts.secret(query.ak)
        assert sk is not None  # the query was signed with it
        if bad_signature:
            sk = "wrong-" + sk
        timestamp = datetime.fromtimestamp(self._clock() + self._faults.current.clock_skew_seconds, UTC)
        authorization = sign(
            query.ak,
            sk,
            "POST",
            parts.path or "/",
            headers,
            body,
            timestamp=timestamp,
            query=parse_qsl(parts.query, keep_blank_values=True) or None,
        )
        self._count("callbacks_sent")
        try:
            reply = self._client().post(
                query.callback_url, content=body, headers={**headers, "Authorization": authorization}
            )
        except httpx.HTTPError as exc:
            log.info("callback for %s failed: %s", query.response_id, type(exc).__name__)
            return False
        if reply.status_code != 200:
            log.info("callback for %s answered HTTP %s", query.response_id, reply.status_code)
            return False
        try:
            code = reply.json().get("resultCode")
        except (ValueError, AttributeError):
            return False
        return str(code) == "0"
