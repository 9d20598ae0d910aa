"""The ``aicc-export`` command group: global options, then one subcommand per operator task.

Each subcommand lives in its own ``cmd_*.py`` module and is registered below; it receives the
:class:`~aicc_export.target.Target` through ``ctx.obj["target"]()`` (resolved lazily, so ``--help``
never needs AWS) and reports through :mod:`aicc_export.output`.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from aicc_export.target import Target

__all__ = ["cli", "main"]

DEFAULT_STACK = "aicc-export"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--stack",
    "stack_name",
    envvar="AICC_EXPORT_STACK",
    default=DEFAULT_STACK,
    show_default=True,
    help="the CloudFormation stack name you deployed (samconfig.toml's stack_name)",
)
@click.option("--region", envvar="AWS_REGION", default=None, help="AWS region (default: your profile's)")
@click.option("--profile", envvar="AWS_PROFILE", default=None, help="AWS CLI profile")
@click.option(
    "--local",
    "local",
    envvar="AICC_EXPORT_LOCAL",
    default=None,
    metavar="FILE",
    help="a `make serve` stack: the file holding its JSON line (- for stdin)",
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output (exit code as for text)")
@click.pass_context
def cli(
    ctx: click.Context, stack_name: str, region: str | None, profile: str | None, local: str | None, as_json: bool
) -> None:
    """Operate an aicc-export deployment: preflight, backfill, status, recovery, lookups."""
    cache: dict[str, Target] = {}

    def target() -> Target:
        if "t" not in cache:
            cache["t"] = Target.from_local(local) if local else Target.from_stack(stack_name, region, profile)
        return cache["t"]

    get: Callable[[], Target] = target
    ctx.ensure_object(dict)
    ctx.obj.update({"json": as_json, "target": get})


def _register() -> None:
    # Each command module exposes `command`, a click.Command; a module that is not written yet is skipped.
    import importlib

    for name in ("doctor", "canary", "backfill", "status", "redrive", "reexport", "find", "verify"):
        try:
            module = importlib.import_module(f"aicc_export.cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"aicc_export.cmd_{name}":
                raise
            continue
        for command in getattr(module, "commands", [module.command] if hasattr(module, "command") else []):
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="aicc-export", obj={})


if __name__ == "__main__":
    main()
