"""``python -m local.stack.sample_events``: the sample events in ``events/``, made fresh.

``events/callback_api.json`` is signed once, and its auth-v2 timestamp is stale 15 minutes later
(401 ``stale_timestamp``), so ``sam local invoke -e events/callback_api.json`` cannot work as
shipped. This writes every sample event again into ``--out`` (default ``.aws-sam/events``, outside
the tracked files) with the current time: the callback re-signed over its own body, path and host
with the given ak/sk (as CC-FS signs: content-length, content-type, host) and delivered as API
Gateway's REST proxy delivers it, without ``Content-Length``; the SQS records' timestamps brought to
now; the schedule event is the template's schedule Input, which EventBridge Scheduler delivers as is
(no envelope, no time).

``--serve FILE`` (the JSON line ``make serve`` prints, or ``-`` for stdin) signs with that stack's
simulator credentials and also writes ``env-vars.json`` for ``sam local invoke --env-vars``: each
function's environment pointing at the running local stack (run ``sam local invoke`` with
``--docker-network host`` so that the container reaches the stack's 127.0.0.1 ports; Docker is
needed for ``sam local``, not for ``make serve``). CC-FS is given there by its 127.0.0.1 address:
the stack's host names (``ccfs.sim.internal``, ``obs.sim.internal``) resolve only inside the stack's own
processes, so recordings cannot be copied from such a container.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local.stack.processes.procs import ROOT

__all__ = ["fresh_callback", "fresh_events", "main", "schedule_input"]

EVENTS = ROOT / "events"
SIGNED = ("content-length", "content-type", "host")


def _layer_on_path() -> None:
    shared = str(ROOT / "layers" / "shared")
    if shared not in sys.path:
        sys.path.insert(0, shared)


def _header(event: dict[str, Any], name: str) -> tuple[str, str] | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return key, value
    return None


def _drop_header(event: dict[str, Any], name: str) -> None:
    for mapping in (event.get("headers") or {}, event.get("multiValueHeaders") or {}):
        for key in [k for k in mapping if k.lower() == name]:
            del mapping[key]


def _set_header(event: dict[str, Any], name: str, value: str) -> None:
    found = _header(event, name.lower())
    key = found[0] if found else name
    event.setdefault("headers", {})[key] = value
    event.setdefault("multiValueHeaders", {})[key] = [value]


def fresh_callback(template: dict[str, Any], ak: str, sk: str, now: datetime) -> dict[str, Any]:
    """``template`` (a REST proxy event) re-signed at ``now`` with ak/sk, without Content-Length."""
    _layer_on_path()
    from ccfs.auth import sign

    event = copy.deepcopy(template)
    body = event.get("body") or ""
    raw = body.encode("utf-8")
    host = _header(event, "host")
    content_type = _header(event, "content-type")
    headers = {
        "content-length": str(len(raw)),
        "content-type": content_type[1] if content_type else "application/json;charset=UTF-8",
        "host": host[1] if host else "localhost",
    }
    path = (event.get("requestContext") or {}).get("path") or event.get("path") or "/"
    authorization = sign(ak, sk, event.get("httpMethod", "POST"), path, headers, raw, timestamp=now)
    _set_header(event, "Authorization", authorization)
    _drop_header(event, "content-length")  # API Gateway's REST proxy events carry none
    context = event.setdefault("requestContext", {})
    context["requestTimeEpoch"] = int(now.timestamp() * 1000)
    context["requestTime"] = now.strftime("%d/%b/%Y:%H:%M:%S +0000")
    context["requestId"] = str(uuid.uuid4())
    return event


def _fresh_sqs(template: dict[str, Any], now: datetime) -> dict[str, Any]:
    event = copy.deepcopy(template)
    millis = str(int(now.timestamp() * 1000))
    for record in event.get("Records", []):
        attributes = record.setdefault("attributes", {})
        for name in ("SentTimestamp", "ApproximateFirstReceiveTimestamp"):
            if name in attributes:
                attributes[name] = millis
        record["messageId"] = str(uuid.uuid4())
    return event


def schedule_input(template_path: Path = ROOT / "template.yaml") -> dict[str, Any]:
    """What the template's EventBridge Scheduler schedule delivers to its function: its Target's
    Input, verbatim (Scheduler adds no envelope to a templated target's input)."""
    from local.stack.cfn import load_template

    template = load_template(template_path)
    inputs = [
        r["Properties"]["Target"]["Input"]
        for r in template["Resources"].values()
        if r.get("Type") == "AWS::Scheduler::Schedule" and "Input" in r["Properties"].get("Target", {})
    ]
    if len(inputs) != 1:
        raise SystemExit(
            f"{template_path}: expected one AWS::Scheduler::Schedule with a Target Input, found {len(inputs)}"
        )
    payload: dict[str, Any] = json.loads(inputs[0])
    return payload


def fresh_events(ak: str, sk: str, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Every ``events/*.json`` made fresh, by file name."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text(encoding="utf-8"))
        if path.name == "schedule.json":
            event = schedule_input()
        elif "httpMethod" in event:
            event = fresh_callback(event, ak, sk, now)
        elif "Records" in event:
            event = _fresh_sqs(event, now)
        out[path.name] = event
    return out


def env_vars(serve: dict[str, Any]) -> dict[str, dict[str, str]]:
    """``sam local invoke --env-vars`` content: each function's environment (the ``env`` that
    ``make serve`` prints per function) with the local stack's endpoint and fake credentials."""
    common = {
        "AWS_ENDPOINT_URL": serve["endpoint_url"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credentials, not a secret
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    # The stack's host names resolve only in its own processes (STACK.md, "Names and trust"): a sam
    # local container reaches CC-FS at the simulator's 127.0.0.1 address, which its certificate also
    # names. Recording URLs name obs.sim.internal, which such a container cannot resolve or trust:
    # there the recordings are retried and end FAILED, as with a wrong trust store in AWS.
    ccfs = (serve.get("simulator") or {}).get("base_url")
    return {
        lid: {**env, **common, **({"CCFS_BASE_URL": ccfs} if ccfs and "CCFS_BASE_URL" in env else {})}
        for lid, env in (serve.get("function_env") or {}).items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack.sample_events", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / ".aws-sam" / "events"), help="directory to write into")
    parser.add_argument("--ak", default="demo-ak", help="ak to sign the callback with")
    parser.add_argument("--sk", default="demo-sk", help="sk to sign the callback with (never printed)")
    parser.add_argument("--serve", help="make serve's JSON line (a file, or - for stdin): its ak/sk and env vars")
    args = parser.parse_args(argv)
    ak, sk, serve = args.ak, args.sk, None
    if args.serve:
        text = sys.stdin.readline() if args.serve == "-" else Path(args.serve).read_text(encoding="utf-8")
        serve = json.loads(text.strip().splitlines()[0])
        ak, sk = serve["simulator"]["ak"], serve["simulator"]["sk"]
        tenant_keys = serve["simulator"].get("tenant_keys") or {}
        if tenant_keys:  # tenants with their own developer accounts: sign as the first one
            first = tenant_keys[sorted(tenant_keys)[0]]
            ak, sk = first["ak"], first["sk"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, event in fresh_events(ak, sk).items():
        (out / name).write_text(json.dumps(event, indent=1) + "\n", encoding="utf-8")
        written.append(str(out / name))
    if serve is not None:
        (out / "env-vars.json").write_text(json.dumps(env_vars(serve), indent=1) + "\n", encoding="utf-8")
        written.append(str(out / "env-vars.json"))
    print(json.dumps({"written": written, "ak": ak}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
