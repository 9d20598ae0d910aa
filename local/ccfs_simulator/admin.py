"""The loopback-only admin API under ``/_admin`` (``GET /counters``, ``GET|POST /faults``,
``GET /concurrency``, ``POST /reset``, ``GET /truth``, ``GET /calls``, ``GET /queries``,
``GET /info``): the :class:`~.simulator.Simulator`'s public methods over HTTP, for the CLI and
for processes that do not hold the simulator object."""

from __future__ import annotations

import ipaddress
import json
from datetime import date
from typing import TYPE_CHECKING, Any

from .data import Call
from .requests import format_time, parse_time
from .transport import Exchange

if TYPE_CHECKING:
    from .simulator import Simulator

__all__ = ["ADMIN_PREFIX", "Admin"]

ADMIN_PREFIX = "/_admin"


class Admin:
    """Routes an admin request onto the simulator it administers."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    def handle(self, ex: Exchange) -> None:
        sim = self._sim
        if not _is_loopback(ex.client_host):
            ex.send_json(403, {"error": "the admin API is for loopback clients only"})
            return
        route = (ex.method, ex.path[len(ADMIN_PREFIX) :].rstrip("/"))
        params = dict(ex.query)
        try:
            if route == ("GET", "/counters"):
                ex.send_json(200, sim.counters())
            elif route == ("GET", "/faults"):
                ex.send_json(200, sim.faults.to_json())
            elif route == ("POST", "/faults"):
                changes = json.loads(ex.body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("faults must be a JSON object")
                sim.set_faults(**changes)
                ex.send_json(200, sim.faults.to_json())
            elif route == ("GET", "/concurrency"):
                ex.send_json(200, sim.concurrency())
            elif route == ("POST", "/reset"):
                sim.reset()
                ex.send_json(200, {"reset": True})
            elif route == ("GET", "/truth"):
                truth = sim.truth(params.get("account") or None, parse_time(params["begin"]), parse_time(params["end"]))
                ex.send_json(200, truth.to_json())
            elif route == ("GET", "/calls"):
                day = date.fromisoformat(params["day"])
                ex.send_json(200, [_call_json(c) for c in sim.calls(params["account"], day)])
            elif route == ("GET", "/queries"):
                ex.send_json(200, sim.queries())
            elif route == ("GET", "/info"):
                ex.send_json(200, sim.info(include_secret=False))
            else:
                ex.send_json(404, {"error": "unknown admin route"})
        except (KeyError, ValueError, TypeError) as exc:
            ex.send_json(400, {"error": f"{type(exc).__name__}: {exc}"})


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _call_json(call: Call) -> dict[str, Any]:
    return {
        "account_id": call.account_id,
        "call_id": call.call_id,
        "begin": format_time(call.begin),
        "end": format_time(call.end),
        "call_type": call.call_type,
        "answered": call.answered,
        "agent_id": call.agent_id,
        "legs": call.legs,
        "recordings": [
            {
                "file_name": r.file_name,
                "original_file_name": r.original_file_name,
                "call_begin": format_time(r.call_begin),
                "call_end": format_time(r.call_end),
                "size": r.size,
            }
            for r in call.recordings
        ],
    }
