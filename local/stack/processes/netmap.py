"""The local stack's name service: fixed host names (and their public ports) → 127.0.0.1 ports.

A deployment reaches CC-FS, object storage and API Gateway by name — ``ccfs.example.com:28443``,
``bucket.obs.….myhuaweicloud.com``, ``{api}.execute-api.{region}.amazonaws.com`` — and each name's
certificate is checked against it. The local stack keeps that: the simulator's CC-FS, its object
store and the API front each have a name and a certificate for that name only, and this module maps
``name:port`` to the ``127.0.0.1:port`` the OS gave the server, by wrapping ``socket.getaddrinfo``
(used by ``socket.create_connection``, hence by httpx/httpcore). TLS still sees the name (SNI,
hostname check), so a client trusting the wrong CA fails as it would in AWS.

Installed by the local stack only: in the function processes by its runtime (``LOCAL_STACK_HOSTS``),
in the stack's own process for the simulator's callbacks. Never imported by product code. Names not
in the map resolve as usual (here: not at all, there is no DNS), so nothing else is redirected.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["ENV", "install", "install_from_env", "mapped", "parse", "uninstall"]

ENV = "LOCAL_STACK_HOSTS"
"""JSON ``{"name:port": "127.0.0.1:port"}`` given to the function processes."""

_lock = threading.Lock()
_map: dict[tuple[str, int], tuple[str, int]] = {}
_original = socket.getaddrinfo


def _split(value: str) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{value!r} is not host:port")
    return host.lower().rstrip("."), int(port)


def parse(mapping: Mapping[str, str]) -> dict[tuple[str, int], tuple[str, int]]:
    """``{"name:port": "ip:port"}`` → ``{(name, port): (ip, port)}``; ValueError names a bad entry."""
    return {_split(name): _split(target) for name, target in mapping.items()}


def _port(port: Any) -> int | None:
    if isinstance(port, int):
        return port
    if isinstance(port, (str, bytes)):
        text = port.decode() if isinstance(port, bytes) else port
        if text.isdigit():
            return int(text)
        try:
            return socket.getservbyname(text, "tcp")
        except OSError:
            return None
    return None


def _getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(host, (str, bytes)) and _map:
        name = (host.decode() if isinstance(host, bytes) else host).lower().rstrip(".")
        target = _map.get((name, _port(port) or 0))
        if target is not None:
            return _original(target[0], target[1], *args, **kwargs)
    return _original(host, port, *args, **kwargs)


def install(mapping: Mapping[str, str]) -> None:
    """Add ``mapping`` to this process's name service (idempotent)."""
    parsed = parse(mapping)
    with _lock:
        _map.update(parsed)
        socket.getaddrinfo = _getaddrinfo


def uninstall(mapping: Mapping[str, str] | None = None) -> None:
    """Remove ``mapping``'s names (all of them when None); the original resolver once empty."""
    with _lock:
        for key in parse(mapping) if mapping is not None else list(_map):
            _map.pop(key, None)
        if not _map:
            socket.getaddrinfo = _original


def install_from_env() -> dict[str, str]:
    """Install ``LOCAL_STACK_HOSTS`` when set; returns what was installed."""
    raw = os.environ.get(ENV, "")
    mapping: dict[str, str] = json.loads(raw) if raw else {}
    if mapping:
        install(mapping)
    return mapping


def mapped() -> dict[str, str]:
    with _lock:
        return {f"{n}:{p}": f"{h}:{q}" for (n, p), (h, q) in _map.items()}
