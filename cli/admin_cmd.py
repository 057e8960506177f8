"""`sfcti admin`: the admin web app, served by waitress, with the alert worker alongside."""

from __future__ import annotations

import click


def serve(home: str, host: str = "127.0.0.1", port: int = 5000, threads: int = 8,
          alert_interval: float = 60.0, admin_password: str | None = None) -> None:
    """Serve the admin for the instance folder ``home`` until interrupted; alert mails are
    checked and sent every ``alert_interval`` seconds meanwhile. ``admin_password`` is used
    if the admin account has to be created (the demo passes a known one)."""
    import waitress

    from admin import create_app, get_store
    from core.alerts import AlertWorker

    app = create_app(home=home, admin_password=admin_password)
    with app.app_context():
        store = get_store()
    worker = AlertWorker(store, interval=alert_interval)
    worker.start()
    click.echo(f"sfcti admin: http://{_url_host(host)}:{port}/  (instance {home})")
    try:
        waitress.serve(app, host=host, port=port, threads=threads, ident="sfcti")
    finally:
        worker.stop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def reset_password(home: str, username: str) -> str:
    """Set a new generated password for ``username`` (created if missing); returns it."""
    import secrets

    from admin.auth.accounts import set_password
    from core.store import Store

    password = secrets.token_urlsafe(12)
    set_password(Store(home), username, password)
    return password


def register(group: click.Group) -> None:
    """Add `sfcti admin` to the CLI group."""

    @group.command("admin")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
    @click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
    @click.option("--reset-password", "reset_user", metavar="USER", default=None,
                  help="Give USER a new generated password, print it and exit.")
    @click.pass_context
    def admin_command(ctx, host, port, reset_user):
        """Run the admin web app (settings, call history, error log, alert e-mail).

        The first start creates the admin account from SFCTI_ADMIN_USER / SFCTI_ADMIN_PASSWORD,
        or prints a generated password once.
        """
        home = ctx.obj["home"]
        if reset_user:
            click.echo(f"New password for {reset_user}: {reset_password(home, reset_user)}")
            return
        serve(home, host, port)
