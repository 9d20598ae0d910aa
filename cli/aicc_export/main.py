"""The ``aicc-export`` command group: global options, then one subcommand per operator task.

Each subcommand lives in its own ``cmd_*.py`` module and is registered below (one list); it receives the
:class:`~aicc_export.target.Target` through ``ctx.obj["target"]()`` (resolved lazily, so ``--help``
never needs AWS) and reports through :mod:`aicc_export.output`.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from aicc_export import (
    cmd_backfill,
    cmd_canary,
    cmd_doctor,
    cmd_find,
    cmd_redrive,
    cmd_reexport,
    cmd_status,
    cmd_verify,
)
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


for _command in (
    cmd_doctor.command,
    cmd_canary.command,
    cmd_backfill.command,
    cmd_status.command,
    cmd_redrive.command,
    *cmd_reexport.commands,
    cmd_find.command,
    cmd_verify.command,
):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="aicc-export", obj={})


if __name__ == "__main__":
    main()
