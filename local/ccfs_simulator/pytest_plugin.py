"""pytest fixtures: ``ccfs_sim`` (a started simulator with fast callback timing) and
``ccfs_sim_factory(**config_overrides)``. Every simulator they start is stopped at teardown.

Use from a conftest: ``from local.ccfs_simulator.pytest_plugin import ccfs_sim, ccfs_sim_factory``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .config import Faults, SimulatorConfig
from .simulator import Simulator

FAST = {"callback_retry_interval": 0.05, "callback_delay": 0.0}

SimulatorFactory = Callable[..., Simulator]


@pytest.fixture
def ccfs_sim_factory() -> Iterator[SimulatorFactory]:
    """``make(clock=None, **SimulatorConfig fields)`` → a started Simulator. ``faults`` may be a dict."""
    started: list[Simulator] = []

    def make(clock: Callable[[], float] | None = None, **overrides: Any) -> Simulator:
        if isinstance(overrides.get("faults"), dict):
            overrides["faults"] = Faults().with_changes(**overrides["faults"])
        simulator = Simulator(SimulatorConfig(**{**FAST, **overrides}), clock=clock)
        started.append(simulator)
        return simulator.start()

    yield make
    for simulator in reversed(started):
        simulator.stop()


@pytest.fixture
def ccfs_sim(ccfs_sim_factory: SimulatorFactory) -> Simulator:
    return ccfs_sim_factory()
