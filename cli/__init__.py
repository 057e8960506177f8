"""The `sfcti` command line: one click group; each area adds its commands from its own module."""
import importlib
import os

import click

# Each module defines `register(group)`; modules are owned by the area they serve so that
# areas never edit each other's files. A module that does not exist yet is simply skipped.
COMMAND_MODULES = (
    "cli.emulator_cmd",     # sfcti emulator
    "cli.salesforce_cmd",   # sfcti connect / lookup / status
    "cli.host_cmd",         # sfcti call / history / fetch-contacts / errors / refetch
    "cli.admin_cmd",        # sfcti admin
    "cli.demo_cmd",         # sfcti demo
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", envvar="SFCTI_HOME", default="instance", show_default=True,
              type=click.Path(file_okay=False), help="Instance folder (database, key). Env: SFCTI_HOME.")
@click.pass_context
def main(ctx, home):
    """sfcti: Salesforce caller identification for phone systems."""
    ctx.ensure_object(dict)
    ctx.obj["home"] = os.path.abspath(home)


def _register_all():
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(main)


_register_all()
