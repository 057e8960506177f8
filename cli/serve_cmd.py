"""`sfcti serve`: the HTTP lookup service for Asterisk, FreeSWITCH and FreePBX, served by
waitress; a long-running host, so it also runs the nightly registration, the alert sender and the
sending of the calls' Tasks."""

from __future__ import annotations

import os
import signal

import click

from cli.admin_cmd import ListenAddress


def _stop_on_sigterm() -> None:
    """SIGTERM (systemd, docker stop, kill) ends waitress like Ctrl-C: the runtime shuts down."""
    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def serve(home: str, host: str = "127.0.0.1", port: int = 8080, threads: int = 16) -> None:
    """Serve the lookup service for the instance folder ``home`` until interrupted."""
    import waitress  # the server only when serving: the CLI starts faster

    from bridges.http import TokenError, create_app, resolve_token
    from core.runtime import ENV_JOBS, shutdown_all

    os.environ["SFCTI_HOME"] = home
    os.environ[ENV_JOBS] = "on"   # this host runs the scheduler and the alert sender
    try:
        token, source = resolve_token(home, host)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    url_host = f"[{host}]" if ":" in host else host
    _stop_on_sigterm()
    try:
        app = create_app(home=home, token=token)
        click.echo(f"sfcti serve: http://{url_host}:{port}/v1/lookup  (instance {home}; "
                   f"token: {source})")
        waitress.serve(app, host=host, port=port, threads=threads, ident="sfcti")
    except (OSError, ValueError) as exc:  # the port is taken, the name does not resolve
        raise click.ClickException(f"Cannot listen on {url_host}:{port}: {exc}") from None
    finally:
        shutdown_all()


def register(group: click.Group) -> None:
    """Add `sfcti serve` to the CLI group."""

    @group.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True, type=ListenAddress(),
                  help="Address to listen on (any other than loopback needs a token).")
    @click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
    @click.option("--threads", default=16, show_default=True, type=click.IntRange(1, 512),
                  help="Requests answered at once; a slow Salesforce holds each for at most the "
                       "screen budget, so give peak calls per second x budget in seconds.")
    @click.pass_context
    def serve_command(ctx, host, port, threads):
        """Run the HTTP lookup service for Asterisk, FreeSWITCH and FreePBX.

        \b
          GET  /v1/lookup?number=N[&format=text][&call_id=ID]  the caller's display
          POST /v1/calls/ID/ended  (JSON)                      record the ended call
          GET  /v1/health                                      for load balancers

        A literal + in number= is a plus (write a space as %20). Reference and dialplan
        recipes: docs/http-lookup.md.

        Listens on 127.0.0.1 by default. On any other address every request needs
        "Authorization: Bearer TOKEN": the token is SFCTI_SERVE_TOKEN, else the file
        serve.token in the instance folder, created (mode 0600) on the first such start. Its
        path is printed, never the token. A token set applies on loopback too.

        This is a long-running host: besides the lookups it runs the nightly contact
        registration, sends the alert e-mails and logs the ended calls as Salesforce Tasks
        (every 15 s). Kamailio's workers do none of these, so with Kamailio run `sfcti serve`
        beside it for them.
        """
        serve(ctx.obj["home"], host, port, threads)
