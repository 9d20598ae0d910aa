"""What a domain step counted, for its handler to emit as metrics.

Domain modules never import the Powertools ``metrics`` singleton: they add what happened to a
:class:`Tally` (or return it, as ``requesting.Report`` and ``bill_export.BillResult`` do) and the
handler, through ``exporter.wiring``, emits it. So the domain runs the same in a test, a worker
thread (``exporter.batching``) or a bench without EMF, and its metric names are listed in tables
(``*_METRICS``) next to the code that counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from aws_lambda_powertools.metrics import MetricUnit

__all__ = ["Counted", "Tally"]


class Counted(NamedTuple):
    """One metric data point: ``name`` (a name from a ``*_METRICS`` table), its value and unit."""

    name: str
    value: int
    unit: MetricUnit = MetricUnit.Count


@dataclass
class Tally:
    """Data points in the order they were counted; one per :meth:`add`, never merged, so the
    handler emits exactly what the step would have emitted itself."""

    counted: list[Counted] = field(default_factory=list)

    def add(self, name: str, value: int = 1, unit: MetricUnit = MetricUnit.Count) -> None:
        self.counted.append(Counted(name, value, unit))

    def take(self) -> list[Counted]:
        """The data points so far, forgotten here (each is emitted once)."""
        taken, self.counted = self.counted, []
        return taken
