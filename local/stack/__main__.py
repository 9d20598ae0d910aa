"""``python -m local.stack demo|serve``: the embedded local stack (see local/STACK.md).

``demo`` runs a day of synthetic CC-FS traffic through the real handlers and checks the bucket
against the simulator's ground truth (exit 0 only if identical). ``serve`` keeps the same stack
running for manual work and prints one JSON line describing it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from local.stack.cfn import REGION
from local.stack.stack import LocalStack, StackConfig


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=150, help="calls per tenant per day (default 150)")
    p.add_argument("--tenants", type=int, default=2, help="demo tenants acct001.. (default 2)")
    p.add_argument("--days", type=int, default=1, help="days of data, ending with the last settled day (default 1)")
    p.add_argument(
        "--tz",
        default="Asia/Shanghai,America/Sao_Paulo",
        help="tenant time zones, comma-separated, cycled over the tenants; the first is TENANT_TIMEZONE "
        "(default Asia/Shanghai,America/Sao_Paulo)",
    )
    p.add_argument(
        "--shared-keys",
        action="store_true",
        help="one developer ak/sk for every tenant (the single-account secret); default: with several "
        "tenants each has its own (the per-tenant secret), as seed 000 says",
    )
    p.add_argument("--profile", choices=("none", "flaky", "chaos"), default="none", help="CC-FS fault profile")
    p.add_argument("--seed", type=int, default=1, help="synthetic data seed")
    p.add_argument("--tick", type=float, default=2.0, help="schedule period in seconds (default 2)")
    p.add_argument("--visibility-timeout", type=int, default=5, help="local queue visibility timeout (s)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="cap on MaximumConcurrency per queue (default: none, the template's values)",
    )
    p.add_argument("--callback-timeout-minutes", type=int, default=1, help="CallbackTimeoutMinutes (default 1)")
    p.add_argument("--window-minutes", type=int, default=None, help="WindowMinutes (default: the template's)")
    p.add_argument("--template", type=Path, default=None, help="template.yaml to run (default: the project's)")
    p.add_argument("--keep-logs", action="store_true", help="keep the run directory (worker logs)")


def _config(args: argparse.Namespace, schedule: bool) -> StackConfig:
    days = max(1, args.days)
    config = StackConfig(
        calls=args.calls,
        tenants=args.tenants,
        tz=args.tz,
        tenant_keys=False if args.shared_keys else None,
        profile=args.profile,
        seed=args.seed,
        days=days,
        schedule=schedule,
        tick_seconds=args.tick,
        visibility_timeout=args.visibility_timeout,
        max_concurrency=args.concurrency,
        callback_timeout_minutes=args.callback_timeout_minutes,
        keep_run_dir=args.keep_logs,
    )
    if args.template is not None:
        config.template = args.template
    if args.window_minutes:
        config.parameters["WindowMinutes"] = args.window_minutes
    return config


def _serve_info(stack: LocalStack) -> dict[str, Any]:
    """The JSON line ``serve`` prints (and ``demo --keep-running``), also written to
    ``{run dir}/serve.json`` so that the printed ``aicc-export --local`` commands work as printed."""
    names = stack.names
    front_port = names.front_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    info_file = stack.run_dir / "serve.json"
    cli = f"aicc-export --local {info_file}"
    info = {
        "region": REGION,
        "info_file": str(info_file),
        # the operators' CLI against this stack (README, "Operating it"), each line ready to paste
        "aicc_export": [
            f"{cli} doctor",
            f"{cli} canary --tenant {stack.tenants[0]} --date {stack.base_date} --minutes 60 --timeout 120",
            f"{cli} verify --date {stack.base_date}",
            f"{cli} redrive",
            f"{cli} --json doctor",
        ],
        "callback_url": names.callback_url,
        "front_url": names.front_url,
        # the stack's names resolve only inside its processes (STACK.md, "Names and trust"): from a
        # shell, connect the name to its port and trust the stack's CA, e.g. with curl. An unsigned
        # callback as CC-FS would post it: the callback answers 401 (signature missing)
        "callback_curl": (
            f"curl --connect-to {stack.api_domain}:443:127.0.0.1:{front_port} "
            f"--cacert {names.api_ca_file} -H 'Content-Type: application/json;charset=UTF-8' -d '{{}}' "
            f"-X POST {names.callback_url}"
        ),
        "hosts": names.hosts,
        "endpoint_url": names.endpoint_url,
        "ccfs_base_url": names.ccfs_base_url,
        "system_ca_file": names.system_ca_file,
        "api_ca_file": names.api_ca_file,  # the callback URL's CA (API Gateway's chain, locally)
        "simulator": {
            "base_url": stack.sim.base_url,
            "obs_base_url": stack.sim.obs_base_url,
            "admin_url": stack.sim.admin_url,
            "ca_bundle": stack.sim.ca_bundle,
            "obs_ca_bundle": stack.sim.obs_ca_bundle,
            "ak": stack.sim.ak,
            "sk": stack.sim.sk,
            "tenants": stack.tenants,
            "tz": stack.config.tz,
            # each tenant's developer account and zone (the same ak/sk as above unless separate)
            "tenant_keys": {
                t: {"ak": stack.sim.tenant_keys(t)[0], "sk": stack.sim.tenant_keys(t)[1], "tz": str(stack.zone_of(t))}
                for t in stack.tenants
            },
            "base_date": stack.base_date.isoformat(),
            "days": stack.config.days,
        },
        "bucket": names.bucket,
        "jobs_table": names.jobs_table,
        "idempotency_table": names.idempotency_table,
        "queues": names.queues,
        "secret_arn": names.secret_arn,
        "ca_param": names.ca_param,
        "functions": names.functions,
        # each function's environment against this stack, for `python -m local.stack.sample_events
        # --serve` (sam local invoke --env-vars); the runtime's own variables are sam's to set
        "function_env": {
            lid: {
                k: v
                for k, v in stack.function_env(lid).items()
                if not k.startswith("AWS_LAMBDA_") and k not in ("LAMBDA_TASK_ROOT", "AWS_EXECUTION_ENV")
            }
            for lid in names.functions
        },
        "logs": str(stack.run_dir / "logs"),
        "schedule": stack.config.schedule,
        "schedule_name": "PlanningSchedule",  # fired by the stack's schedule worker (STACK.md, step 6)
        # the topic without subscriptions (no mail leaves the local stack): subscribe a queue to it
        "alarm_topic_arn": stack.resources.physical.get("AlarmTopic", "") if stack.resources else "",
        # --endpoint-url as well as AWS_ENDPOINT_URL: AWS CLI v1 ignores the variable.
        "aws_cli": (
            "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 "
            f"aws --endpoint-url {names.endpoint_url} s3 ls s3://{names.bucket} --recursive"
        ),
        "backfill_example": (
            "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 "
            f"aws --endpoint-url {names.endpoint_url} sqs send-message --queue-url {names.queues.get('RequestQueue')} "
            "--message-body '"
            + json.dumps(
                {
                    "accountId": stack.tenants[0],
                    "beginTime": f"{stack.base_date} 00:00:00",
                    "endTime": f"{stack.base_date} 23:59:59",
                }
            )
            + "'"
        ),
    }
    info_file.write_text(json.dumps(info) + "\n", encoding="utf-8")
    return info


def _wait_forever() -> None:
    forever = threading.Event()
    while not forever.wait(1.0):
        pass


def demo(args: argparse.Namespace) -> int:
    from local.stack.report import LiveLine, print_summary, sql_summary

    started = time.monotonic()
    stack = LocalStack(_config(args, schedule=True))
    ok = False
    try:
        print(
            f"starting the local stack: moto, CC-FS simulator ({args.tenants} tenant(s), {args.calls} calls/day, "
            f"profile {args.profile}), API front and function workers ...",
            file=sys.stderr,
            flush=True,
        )
        stack.start()
        print(
            f"up in {time.monotonic() - started:.1f} s: moto {stack.endpoint_url}, CC-FS {stack.names.ccfs_base_url} "
            f"({stack.sim.base_url}), object store {stack.sim.obs_base_url}, callback {stack.names.callback_url} "
            f"({stack.names.front_url}); logs in {stack.run_dir / 'logs'}",
            file=sys.stderr,
            flush=True,
        )
        live = LiveLine()
        progress = stack.run_until_complete(args.timeout, on_progress=live)
        live.done()
        stack.pause_schedule()
        verdict = stack.verify()
        sql = sql_summary(stack)
        print_summary(stack, progress, verdict, time.monotonic() - started, sql=sql)
        ok = verdict.ok and not progress.timed_out and sql.ok
        if not ok:
            stack.config.keep_run_dir = True
            print(f"worker logs kept in {stack.run_dir / 'logs'}", file=sys.stderr)
        if args.keep_running:
            stack.pause_schedule(False)
            print(json.dumps(_serve_info(stack)), flush=True)
            print("running; Ctrl-C to stop", file=sys.stderr, flush=True)
            _wait_forever()
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the local stack", file=sys.stderr)
        return 130 if not ok else 0
    finally:
        stack.stop()
    return 0 if ok else 1


def serve(args: argparse.Namespace) -> int:
    stack = LocalStack(_config(args, schedule=args.schedule))
    try:
        stack.start()
        print(json.dumps(_serve_info(stack)), flush=True)
        print("running; Ctrl-C to stop", file=sys.stderr, flush=True)
        _wait_forever()
    except KeyboardInterrupt:
        print("\nstopping the local stack", file=sys.stderr)
    finally:
        stack.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run a demo export and verify it against the simulator's ground truth")
    _common(d)
    d.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for completion (default 300)")
    d.add_argument("--keep-running", action="store_true", help="keep the stack up after the summary")
    s = sub.add_parser("serve", help="run the stack until interrupted (prints one JSON line)")
    _common(s)
    s.add_argument("--schedule", action="store_true", help="fire the planning tick (off: backfills only)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    return demo(args) if args.command == "demo" else serve(args)


if __name__ == "__main__":
    sys.exit(main())
