"""The ``reconciler`` console script: one click group, subcommands loaded lazily.

Each subcommand lives next to the code it drives; this module only wires them so
that ``reconciler --help`` stays fast and a broken optional part cannot stop the rest.
"""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command or group.
_SUBCOMMANDS: dict[str, str] = {
    "stack": "streams.devstack.cli:stack",
    "moodle-emulator": "streams.emulator.cli:command",
    "schemas": "schemas.export:command",
    "worker": "streams.pipeline.worker:command",
    "demo": "streams.demo.cli:command",
    "approve": "streams.tools.control:approve",
    "reject": "streams.tools.control:reject",
    "pause": "streams.tools.control:pause",
    "resume": "streams.tools.control:resume",
    "release": "streams.tools.control:release",
    "freeze": "streams.tools.control:freeze",
    "mapping": "streams.tools.control:mapping",
    "connector-register": "streams.ops.connector:command",
    "audit": "streams.tools.audit:command",
    "replay": "streams.tools.replay:command",
    "diff": "streams.tools.diff:command",
    "enrol-csv": "streams.tools.enrol_csv:command",
    "meta": "streams.tools.meta:command",
    "cohorts": "streams.tools.cohorts:cohorts",
    "shadow-report": "streams.tools.shadow_report:command",
    "cutover": "streams.tools.cutover:command",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _SUBCOMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise click.ClickException(f"subcommand {cmd_name!r} unavailable: {exc}") from exc
        command = getattr(module, attr)
        if not isinstance(command, click.Command):
            raise click.ClickException(f"{target} is not a click command")
        return command


@click.group(cls=_LazyGroup)
@click.version_option(package_name="apogee-moodle-reconciler")
def main() -> None:
    """APOGÉE → Moodle enrolment reconciler."""


if __name__ == "__main__":
    main()
