"""`sfcti admin`: the admin web app, served by waitress, with the alert worker alongside."""

from __future__ import annotations

import ipaddress
import re

import click

HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*", re.ASCII)


class ListenAddress(click.ParamType):
    """An IP address or a host name to listen on."""

    name = "host"

    def convert(self, value, param, ctx):
        """``value`` when it is an IP address or a valid host name, else a usage error."""
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
        if not HOSTNAME.fullmatch(value) or value.rsplit(".", 1)[-1].isdigit():  # 256.1.1.1
            self.fail("use an IP address (127.0.0.1, 0.0.0.0, ::1) or a host name", param, ctx)
        return value


class AdminUser(click.ParamType):
    """An admin account's user name: the login form's rules (1 to 80 characters, no control or
    text-direction characters, no surrounding spaces)."""

    name = "user"
    MAX_LENGTH = 80   # admin/auth/forms.py USERNAME_MAX_LENGTH

    def convert(self, value, param, ctx):
        """``value`` when the login form would take it, else a usage error saying why."""
        from core.display import UNPRINTABLE

        if not value.strip():
            self.fail("the user name is empty", param, ctx)
        if value != value.strip() or UNPRINTABLE.search(value):
            self.fail("the user name has spaces around it, or control or text-direction "
                      "characters", param, ctx)
        if len(value) > self.MAX_LENGTH:
            self.fail(f"the user name is longer than {self.MAX_LENGTH} characters", param, ctx)
        return value


def serve(home: str, host: str = "127.0.0.1", port: int = 5000, threads: int = 8,
          alert_interval: float = 60.0, admin_password: str | None = None) -> None:
    """Serve the admin for the instance folder ``home`` until interrupted; alert mails are
    checked and sent every ``alert_interval`` seconds meanwhile. ``admin_password`` is used
    if the admin account has to be created (the demo passes a known one)."""
    import waitress

    from admin import create_app, get_store
    from core.alerts import AlertWorker
    from core.store import StoreError

    try:
        app = create_app(home=home, admin_password=admin_password)
    except StoreError:
        raise
    except Exception as exc:  # admin.cfg is Python run at start: any error in it ends up here
        raise click.ClickException(f"Cannot start the admin (admin.cfg in {home}): "
                                   f"{type(exc).__name__}: {exc}") from None
    with app.app_context():
        store = get_store()
    worker = AlertWorker(store, interval=alert_interval)
    worker.start()
    click.echo(f"sfcti admin: http://{_url_host(host)}:{port}/  (instance {home})")
    try:
        # waitress drops X-Forwarded-* before the app sees them unless told not to; the app's
        # ProxyFix trusts them only for the declared proxies (TRUSTED_PROXIES), else ignores them
        waitress.serve(app, host=host, port=port, threads=threads, ident="sfcti",
                       clear_untrusted_proxy_headers=not app.config["TRUSTED_PROXIES"])
    except (OSError, ValueError) as exc:  # the port is taken, the name does not resolve
        raise click.ClickException(f"Cannot listen on {_url_host(host)}:{port}: {exc}") from None
    finally:
        worker.stop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def reset_password(home: str, username: str) -> str:
    """Set a new generated password for ``username`` (created if missing); returns it. Every
    session of the account ends (core.accounts.set_password moves it to a new generation)."""
    import secrets

    from core.accounts import set_password
    from core.store import Store

    password = secrets.token_urlsafe(12)
    set_password(Store(home), username, password)
    return password


def register(group: click.Group) -> None:
    """Add `sfcti admin` to the CLI group."""

    @group.command("admin")
    @click.option("--host", default="127.0.0.1", show_default=True, type=ListenAddress(),
                  help="Address to listen on.")
    @click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
    @click.option("--reset-password", "reset_user", type=AdminUser(), default=None,
                  help="Give USER a new generated password, print it and exit; every "
                       "session of USER ends.")
    @click.pass_context
    def admin_command(ctx, host, port, reset_user):
        """Run the admin web app (settings, call history, error log, alert e-mail).

        The first start creates the admin account from SFCTI_ADMIN_USER / SFCTI_ADMIN_PASSWORD,
        or prints a generated password once.
        """
        home = ctx.obj["home"]
        if reset_user is not None:
            click.echo(f"New password for {reset_user}: {reset_password(home, reset_user)}")
            return
        serve(home, host, port)
