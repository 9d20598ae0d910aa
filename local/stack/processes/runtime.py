"""A minimal Lambda runtime for one function in one process (a warm sandbox).

The handler module is imported once, with the function's code directory first on ``sys.path`` and
its layers after it (as in ``/var/task`` and ``/opt/python``). Each invocation gets a fresh
:class:`~local.stack.processes.events.LambdaContext`, prints ``START``/``END``/``REPORT`` lines like
CloudWatch Logs, and is bounded by the function's Timeout via ``SIGALRM`` (so it must run on the
main thread): a timed-out invocation raises :class:`InvocationTimeout`, a ``BaseException`` so
that handler code catching ``Exception`` cannot swallow it.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.stack.processes.events import LambdaContext
from local.stack.processes.netmap import install_from_env

__all__ = ["FunctionRuntime", "InvocationTimeout", "emit", "log_line"]


class InvocationTimeout(BaseException):
    """The invocation ran past the function's Timeout."""


def emit(line: str) -> None:
    """Write one whole line to stdout in a single call, so lines written from several threads
    (the API front's request threads, a handler's worker threads) never interleave."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def log_line(**fields: Any) -> None:
    """One JSON line on stdout tagged ``"local"``: the local stack's own records in a worker log."""
    emit(json.dumps({"local": fields.pop("event"), "ts": round(time.time(), 3), **fields}))


@dataclass
class Invocation:
    request_id: str
    result: Any = None
    error: BaseException | None = None
    duration_ms: float = 0.0

    @property
    def timed_out(self) -> bool:
        return isinstance(self.error, InvocationTimeout)


class FunctionRuntime:
    def __init__(
        self,
        function_name: str,
        code_dir: str,
        handler: str,
        layers: list[str],
        timeout_s: int,
        memory_mb: int,
        patches: dict[str, Any] | None = None,
    ) -> None:
        self.function_name = function_name
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        module_name, _, attribute = handler.rpartition(".")
        # The stack's host names (CC-FS, object store) -> its 127.0.0.1 ports, before the handler
        # runs any code: the sandbox's DNS (local/stack/processes/netmap.py), not a product setting.
        self.hosts = install_from_env()
        root = Path.cwd()
        paths = [str((root / code_dir).resolve())] + [str((root / layer).resolve()) for layer in layers]
        for path in reversed(paths):
            if path not in sys.path:
                sys.path.insert(0, path)
        started = time.monotonic()
        module = importlib.import_module(module_name)
        self.init_ms = (time.monotonic() - started) * 1000
        self.handler: Callable[[Any, Any], Any] = getattr(module, attribute)
        self.module = module
        self.cold = True
        self.patched = apply_patches(patches or {})

    def invoke(self, event: Any) -> Invocation:
        context = LambdaContext(
            function_name=self.function_name, timeout_s=self.timeout_s, memory_limit_in_mb=self.memory_mb
        )
        invocation = Invocation(request_id=context.aws_request_id)
        emit(f"START RequestId: {context.aws_request_id} Version: $LATEST")

        def _alarm(signum: int, frame: Any) -> None:
            raise InvocationTimeout(f"Task timed out after {self.timeout_s:.2f} seconds")

        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, self.timeout_s)
        started = time.monotonic()
        try:
            invocation.result = self.handler(event, context)
        except InvocationTimeout as exc:
            invocation.error = exc
            emit(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {context.aws_request_id} {exc}")
        except Exception as exc:  # noqa: BLE001 - the runtime reports any handler error
            invocation.error = exc
            emit(
                json.dumps(
                    {
                        "errorMessage": str(exc),
                        "errorType": type(exc).__name__,
                        "requestId": context.aws_request_id,
                        "stackTrace": traceback.format_exception(exc),
                    }
                )
            )
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            invocation.duration_ms = (time.monotonic() - started) * 1000
        emit(f"END RequestId: {context.aws_request_id}")
        init = f"\tInit Duration: {self.init_ms:.2f} ms" if self.cold else ""
        emit(
            f"REPORT RequestId: {context.aws_request_id}\tDuration: {invocation.duration_ms:.2f} ms\t"
            f"Memory Size: {self.memory_mb} MB{init}"
        )
        self.cold = False
        return invocation


def apply_patches(patches: dict[str, Any]) -> dict[str, str]:
    """Set module-level constants (``"package.module.NAME": value``) after the handler import.

    The local stack scales a few hard-coded product delays down this way (see STACK.md); a name
    that no longer exists is reported, not fatal, so a product change cannot break the stack.
    """
    outcome: dict[str, str] = {}
    for target, value in patches.items():
        module_name, _, name = target.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            outcome[target] = "module not found"
            continue
        if not hasattr(module, name):
            outcome[target] = "no such attribute"
            continue
        outcome[target] = f"{getattr(module, name)!r} -> {value!r}"
        setattr(module, name, value)
    return outcome
