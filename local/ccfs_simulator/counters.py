"""The simulator's observability: named event counters (``requests_total``, ``results.0300012``,
``callbacks_acked`` …) and the in-flight / peak gauges of CC-FS operations and object-store GETs,
with blocking waits so tests line up on events instead of sleeping."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator

__all__ = ["Counters"]


class Counters:
    """Thread-safe counters and gauges; every change wakes the waiters."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._counts: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()  # "ccfs" / "obs": requests being served now
        self._peak: Counter[str] = Counter()  # their highest value since start or the last reset

    def count(self, name: str, amount: int = 1) -> None:
        if not amount:
            return
        with self._cond:
            self._counts[name] += amount
            self._cond.notify_all()

    def snapshot(self) -> dict[str, int]:
        with self._cond:
            return dict(self._counts)

    def reset(self) -> None:
        with self._cond:
            self._counts.clear()
            self._cond.notify_all()

    def wait_for(self, name: str, at_least: int = 1, timeout: float = 10.0) -> bool:
        """Block until counter ``name`` reaches ``at_least`` (True) or ``timeout`` passes (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._counts[name] >= at_least, timeout)

    @contextlib.contextmanager
    def serving(self, kind: str) -> Iterator[None]:
        """Count one request of ``kind`` in flight for the duration of the block."""
        with self._cond:
            self._in_flight[kind] += 1
            self._peak[kind] = max(self._peak[kind], self._in_flight[kind])
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._in_flight[kind] -= 1
                self._cond.notify_all()

    def gauges(self) -> dict[str, int]:
        """``{kind}_in_flight`` / ``{kind}_peak`` for ``ccfs`` and ``obs``."""
        with self._cond:
            return {
                "ccfs_in_flight": self._in_flight["ccfs"],
                "ccfs_peak": self._peak["ccfs"],
                "obs_in_flight": self._in_flight["obs"],
                "obs_peak": self._peak["obs"],
            }

    def reset_peaks(self) -> None:
        """Peaks back to what is in flight right now."""
        with self._cond:
            self._peak = Counter(self._in_flight)

    def wait_in_flight(self, kind: str, at_least: int, timeout: float = 10.0) -> bool:
        """Block until ``at_least`` requests of ``kind`` (``"ccfs"``, ``"obs"``) are in flight."""
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight[kind] >= at_least, timeout)
