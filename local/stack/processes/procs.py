"""Child processes of the local stack: start, readiness, orphan protection, shutdown.

Every child (moto, the HTTP front, each function worker) is ``python -m local.stack.<entry>`` in
its own session (Ctrl-C in the terminal reaches only the parent, which then shuts the children
down in order), writes its stdout and stderr to one log file in the run directory, and announces
readiness by atomically writing a small JSON file. Children watch their parent and exit when it
disappears, so a killed parent leaves no orphans holding ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = ["Child", "ChildError", "spawn", "watch_parent", "write_ready"]

ROOT = Path(__file__).resolve().parents[3]


class ChildError(RuntimeError):
    """A child process did not start (the message quotes its log's tail)."""


def write_ready(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically (readers never see half a file)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dict(data)), encoding="utf-8")
    os.replace(tmp, target)


def watch_parent(interval: float = 0.5, on_orphan: Any = None) -> threading.Thread:
    """Exit this process (``os._exit``) soon after the parent process is gone."""
    parent = os.getppid()

    def _watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                if on_orphan is not None:
                    with contextlib.suppress(Exception):  # best effort on the way out
                        on_orphan()
                os._exit(3)

    thread = threading.Thread(target=_watch, name="watch-parent", daemon=True)
    thread.start()
    return thread


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    ready_path: Path
    log_file: TextIO | None = None
    ready: dict[str, Any] = field(default_factory=dict)
    terminated: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_path.exists():
                self.ready = json.loads(self.ready_path.read_text(encoding="utf-8"))
                return self.ready
            if not self.alive:
                raise ChildError(
                    f"{self.name} exited with {self.process.returncode} before it was ready; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        raise ChildError(f"{self.name} not ready after {timeout:.0f}s; log {self.log_path}:\n{self.log_tail()}")

    def terminate(self) -> None:
        """Send SIGTERM once (a second one during the child's shutdown would kill it mid-way)."""
        if self.alive and not self.terminated:
            self.terminated = True
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. Returns the exit code."""
        self.terminate()
        if self.alive:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None
        return self.process.returncode


def spawn(
    name: str,
    module: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    run_dir: Path,
    python: str | None = None,
) -> Child:
    """Start ``python -m module args`` with ``env`` (complete, not merged), logging to
    ``run_dir/logs/{name}.log``; the child gets ``--ready-file`` to announce readiness."""
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ready_dir = run_dir / "ready"
    ready_dir.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    ready_path = ready_dir / f"{name}.json"
    ready_path.unlink(missing_ok=True)
    log_file = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in Child.stop
    cmd = [python or sys.executable, "-u", "-m", module, *args, "--ready-file", str(ready_path)]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        cmd,
        cwd=str(ROOT),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Child(name=name, process=process, log_path=log_path, ready_path=ready_path, log_file=log_file)
