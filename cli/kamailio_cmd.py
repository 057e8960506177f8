"""`sfcti kamailio-config`: print the kamailio.cfg of this installation (and write the bootstrap
script it loads into the instance folder)."""

from __future__ import annotations

import click

from bridges.kamailio import config


def _checked(parse):
    """A click callback turning a ConfigError into a usage error of that option."""

    def callback(ctx, param, value):
        try:
            if isinstance(value, tuple):
                return tuple(parse(item) for item in value)
            return None if value is None else parse(value)
        except config.ConfigError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return callback


def register(group: click.Group) -> None:
    """Add `sfcti kamailio-config` to the CLI group."""

    @group.command("kamailio-config")
    @click.option("--listen", default="udp:127.0.0.1:5060", show_default=True,
                  callback=_checked(config.parse_listen),
                  help="Where Kamailio listens: udp|tcp:IP:PORT.")
    @click.option("--agent-address", "agent_addresses", multiple=True,
                  callback=_checked(config.parse_network),
                  help="Address or network the agents' phones send from (repeatable).")
    @click.option("--agent-user", "agent_users", multiple=True, callback=_checked(config.parse_user),
                  help="From user of an agent's phone (repeatable).")
    @click.option("--agent-header", default=None, callback=_checked(config.parse_header),
                  help="Header a trusted PBX adds to an agent's INVITE, its value the agent's id "
                       "(e.g. X-Sfcti-Agent).")
    @click.option("--children", default=4, show_default=True, type=click.IntRange(1, 256),
                  help="Kamailio worker processes per listen address.")
    @click.option("--ring-timeout", default=60, show_default=True, type=click.IntRange(5, 600),
                  help="Seconds an INVITE may ring before the call fails.")
    @click.pass_context
    def kamailio_config_command(ctx, listen, agent_addresses, agent_users, agent_header, children,
                                ring_timeout):
        """Print a kamailio.cfg for this installation (and write the bootstrap it loads)."""
        home = ctx.obj["home"]
        agents = config.AgentRule(networks=agent_addresses, users=agent_users, header=agent_header)
        options = config.KamailioOptions(listen=listen, agents=agents, children=children,
                                         ring_timeout=ring_timeout)
        try:
            config.cfg_path(home, "the instance folder")
            bootstrap = config.write_bootstrap(home, agents)
            text = config.render_config(options, home, bootstrap)
        except config.ConfigError as exc:
            raise click.UsageError(str(exc), ctx=ctx) from None
        if not agents.configured():
            click.echo("warning: no --agent-address, --agent-user or --agent-header: every call "
                       "counts as a call from outside", err=True)
        click.echo(text, nl=False)
