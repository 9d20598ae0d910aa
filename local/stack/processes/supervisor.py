"""The stack's child processes once planned: starting every function worker and waiting until it is
ready, restarting one that dies (a timed-out sandbox, a crash) as Lambda would, giving up on one
that keeps dying right after start (an import error), noticing moto's death, and stopping them all."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from local.stack.processes.procs import Child, spawn

__all__ = ["Supervisor", "WorkerSpec"]


@dataclass
class WorkerSpec:
    """One function process: a poller, the schedule or the API front (``module``, ``args``, ``env``)."""

    name: str
    module: str
    args: list[str]
    env: dict[str, str]
    child: Child | None = None
    restarts: int = 0
    started_at: float = 0.0
    quick_failures: int = 0


class Supervisor:
    """Owns the workers (``workers``, by name) and watches moto (``moto``). ``events`` is the
    stack's list of notes (restarts are added to it); ``fatal`` says why the stack cannot go on."""

    def __init__(self, run_dir: Path, events: list[str]) -> None:
        self.run_dir = run_dir
        self.workers: dict[str, WorkerSpec] = {}
        self.moto: Child | None = None
        self.fatal: str | None = None
        self._events = events
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, ready_timeout: float = 60) -> None:
        """Spawn every planned worker not yet running, wait until all are ready, then supervise."""
        for spec in self.workers.values():
            if spec.child is None:
                spec.child = spawn(spec.name, spec.module, spec.args, env=spec.env, run_dir=self.run_dir)
        for spec in self.workers.values():
            assert spec.child is not None
            spec.child.wait_ready(ready_timeout)
            spec.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._supervise, name="local-stack-supervisor", daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        """Restart a worker that died (a timed-out sandbox, a crash), as Lambda would; give up on
        one that keeps dying right after start (an import error) and report it."""
        while not self._stopping.wait(0.5):
            if self.moto is not None and not self.moto.alive:
                self.fatal = f"moto exited with {self.moto.process.returncode}:\n{self.moto.log_tail()}"
                return
            for spec in list(self.workers.values()):
                child = spec.child
                if child is None or child.alive or self._stopping.is_set() or spec.quick_failures >= 3:
                    continue
                code = child.process.returncode
                child.stop()
                if time.monotonic() - spec.started_at < 15:
                    spec.quick_failures += 1
                    if spec.quick_failures >= 3:
                        self.fatal = f"{spec.name} keeps exiting ({code}); log tail:\n{child.log_tail(40)}"
                        self._events.append(f"{spec.name} keeps exiting; not restarted")
                        continue
                else:
                    spec.quick_failures = 0
                spec.restarts += 1
                self._events.append(f"{spec.name} exited with {code}; restarted (#{spec.restarts})")
                try:
                    spec.child = spawn(spec.name, spec.module, spec.args, env=spec.env, run_dir=self.run_dir)
                    spec.started_at = time.monotonic()
                except OSError as exc:
                    self._events.append(f"{spec.name}: restart failed: {exc}")

    def stop_supervising(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def stop_workers(self) -> None:
        """Every function process, all at once (each finishes its current receive or invocation)."""
        workers = [s.child for s in self.workers.values() if s.child is not None]
        for child in workers:
            child.terminate()
        for child in workers:
            child.stop(timeout=5)

    def stop_moto(self) -> None:
        if self.moto is not None:
            self.moto.stop(timeout=5)

    def children(self) -> list[Child]:
        """Every child process currently known (for tests: nothing may outlive stop())."""
        out = [self.moto] if self.moto is not None else []
        out += [s.child for s in self.workers.values() if s.child is not None]
        return out

    def restarts(self) -> dict[str, int]:
        return {name: spec.restarts for name, spec in self.workers.items() if spec.restarts}
