"""Fault injection: the :class:`~.config.Faults` knobs in force and one seeded random stream per
fault kind, so that a run with the same ``fault_seed`` injects the same faults in the same order
whatever else happens (throttling bursts, cut points of connection resets, error statuses)."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from typing import Any

from .config import Faults
from .counters import Counters

__all__ = ["FAULT_KINDS", "FaultStreams"]

FAULT_KINDS = (
    "error",
    "error_status",
    "reset",
    "reset_point",
    "throttle",
    "not_found",
    "expired_url",
    "duplicate_callback",
    "lost_callback",
    "bad_signature_callback",
    "unknown_code",
)


class FaultStreams:
    """The faults in force and their random streams (restarted whenever the knobs change)."""

    def __init__(self, initial: Faults, counters: Counters) -> None:
        self._initial = initial
        self._faults = initial
        self._counters = counters
        self._lock = threading.Lock()
        self._streams: dict[str, random.Random] = {}
        self._throttle_left = {"query": 0, "download": 0}
        self._restart()

    @property
    def current(self) -> Faults:
        return self._faults

    def set(self, **changes: Any) -> None:
        """Replace fault knobs (see :class:`Faults`); restarts the streams and bursts."""
        with self._lock:
            self._faults = self._faults.with_changes(**changes)
            self._restart()

    def reset(self) -> None:
        """Back to the configured faults, streams from their start."""
        with self._lock:
            self._faults = self._initial
            self._restart()

    def _restart(self) -> None:
        seed = self._faults.fault_seed
        self._streams = {kind: random.Random(f"{seed}:{kind}") for kind in FAULT_KINDS}
        self._throttle_left = {"query": 0, "download": 0}

    def roll(self, kind: str, rate: float) -> bool:
        """Whether the fault ``kind`` fires this time (never at rate 0: the stream is not drawn)."""
        if rate <= 0:
            return False
        with self._lock:
            return self._streams[kind].random() < rate

    def choice[T](self, kind: str, options: Sequence[T]) -> T:
        with self._lock:
            return self._streams[kind].choice(options)

    def throttled(self, category: str) -> bool:
        """Whether this ``query`` / ``download`` request is throttled (bursts of ``throttle_burst``)."""
        faults = self._faults
        with self._lock:
            if self._throttle_left[category] > 0:
                self._throttle_left[category] -= 1
                return True
            if faults.throttle_rate > 0 and self._streams["throttle"].random() < faults.throttle_rate:
                self._throttle_left[category] = faults.throttle_burst - 1
                return True
        return False

    def cut_point(self, length: int) -> int | None:
        """Where the reset fault cuts a body of ``length`` bytes (None: no fault this time)."""
        if length < 2 or not self.roll("reset", self._faults.reset_rate):
            return None
        with self._lock:
            fraction = self._streams["reset_point"].uniform(0.05, 0.9)
        self._counters.count("resets_injected")
        return max(1, min(length - 1, int(length * fraction)))
