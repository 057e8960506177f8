"""The `sfcti` command line: one click group; each area adds its commands from its own module."""
import importlib

import click

from core.store import DEFAULT_HOME, ENV_HOME, StoreError, home_path

# Each module defines `register(group)`; modules are owned by the area they serve so that
# areas never edit each other's files.
COMMAND_MODULES = (
    "cli.emulator_cmd",     # sfcti emulator
    "cli.salesforce_cmd",   # sfcti connect / lookup / status
    "cli.settings_cmd",     # sfcti settings show / set
    "cli.host_cmd",         # sfcti call / history / fetch-contacts / errors / refetch
    "cli.admin_cmd",        # sfcti admin
    "cli.demo_cmd",         # sfcti demo
    "cli.serve_cmd",        # sfcti serve
    "cli.kamailio_cmd",     # sfcti kamailio-config
    "cli.index_cmd",        # sfcti index status / sync / clear
    "cli.agents_cmd",       # sfcti agents list / map / unmap / search / import / export / unknown
    "cli.activity_cmd",     # sfcti activity status / send / retry
    "cli.db_cmd",           # sfcti db status / migrate / copy
)


def shown(text) -> str:
    """``text`` as a terminal may show it: every control or text-direction character but the
    line break written as U+FFFD (the rule of :func:`core.display.printable`, line by line so
    that tables and indented blocks keep their layout). A value from a host, from Salesforce or
    from a user then cannot reorder or hide what is printed; what is stored stays exact."""
    from core.display import MARKER, UNPRINTABLE

    return "\n".join(UNPRINTABLE.sub(MARKER, line) for line in str(text).split("\n"))


def echo(message="", **kwargs) -> None:
    """``click.echo`` of :func:`shown` ``message``: how every command prints text."""
    click.echo(shown(message), **kwargs)


def echo_json(value, indent: int | None = 1, **kwargs) -> None:
    """Print ``value`` as JSON that decodes to the exact values, with control and
    text-direction characters written as ``\\u`` escapes (:func:`core.display.printable_json`)."""
    from core.display import printable_json

    click.echo(printable_json(value, indent=indent), **kwargs)


class FilePath(click.Path):
    """A click.Path refusing control characters with a usage error (a NUL would otherwise reach
    os.stat, whose ValueError click does not turn into a message)."""

    def convert(self, value, param, ctx):
        """``value`` checked by click.Path, or a usage error."""
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in str(value)):
            self.fail("the path contains control characters", param, ctx)
        return super().convert(value, param, ctx)


class InstanceFolder(FilePath):
    """A folder path without control characters, made absolute."""

    def __init__(self):
        super().__init__(file_okay=False)

    def convert(self, value, param, ctx):
        """The absolute path of ``value``, or a usage error."""
        return str(home_path(super().convert(value, param, ctx)))


class Main(click.Group):
    """The `sfcti` group: an unusable instance folder ends any command with its message."""

    def invoke(self, ctx):
        """Run the command; a StoreError becomes a one-line error instead of a traceback, and
        no error message shows a control or text-direction character as it is."""
        try:
            return super().invoke(ctx)
        except StoreError as exc:
            raise click.ClickException(shown(exc)) from None
        except click.ClickException as exc:  # its message may quote an argument or a stored value
            exc.message = shown(exc.message)
            raise


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", envvar=ENV_HOME, default=None, type=InstanceFolder(),
              help=f"Instance folder (database, key). Env: {ENV_HOME}; default ./{DEFAULT_HOME}.")
@click.pass_context
def main(ctx, home):
    """sfcti: Salesforce caller identification for phone systems."""
    ctx.ensure_object(dict)
    ctx.obj["home"] = str(home_path(home))


def _register_all():
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(main)


_register_all()
