"""`sfcti emulator`: run the local Salesforce until Ctrl-C."""
import json
import os
import time

import click

from cli import FilePath

MAX_SIZE = 1_000_000  # the benchmarks use 300,000; far more would only exhaust memory


def register(group):
    """Add the `emulator` command to the `sfcti` group."""
    group.add_command(emulator_command)


@click.command("emulator")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--size", default=1000, show_default=True, type=click.IntRange(1, MAX_SIZE),
              help="Records to generate.")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the data generator.")
@click.option("--org-json", type=FilePath(exists=True, dir_okay=False),
              help="Load the org from this JSON file instead of generating one.")
@click.option("--person-accounts/--no-person-accounts", default=True, show_default=True,
              help="Whether the generated org has person accounts.")
@click.option("--daily-limit", default=100000, show_default=True, type=click.IntRange(1),
              help="Daily API request allowance.")
@click.pass_context
def emulator_command(ctx, port, size, seed, org_json, person_accounts, daily_limit):
    """Run a local Salesforce over HTTPS (for the demo, tests and benchmarks)."""
    from emulator import Emulator

    home = ctx.obj["home"]
    try:
        os.makedirs(home, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"Cannot create the instance folder {home}: {exc}") from None
    org = _build_org(org_json, size, seed, person_accounts)
    emu = Emulator(org, port=port, cert_dir=home, daily_limit=daily_limit)
    try:
        emu.start()
    except OSError as exc:
        raise click.ClickException(f"Cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}")
    try:
        _announce(emu, home)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        click.echo("Stopping.")
    finally:
        emu.stop()


def _build_org(org_json, size, seed, person_accounts):
    try:
        from emulator import datagen
    except ImportError as exc:
        raise click.ClickException(f"The data generator is not available: {exc}")
    if org_json:
        try:
            return datagen.load_org(org_json)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise click.ClickException(f"{org_json} is not an org JSON file: {exc}") from None
    return datagen.generate_org(size=size, seed=seed, person_accounts=person_accounts)


def _announce(emu, home):
    info = {"login_url": emu.login_url, "ca_path": emu.ca_path, "username": emu.username,
            "password": emu.password, "security_token": emu.security_token,
            "org_name": emu.org.name, "person_accounts": emu.org.person_accounts,
            "records": emu.org.count()}
    # Other commands and the demo read this to connect without retyping anything.
    with open(os.path.join(home, "emulator.json"), "w", encoding="utf-8") as fh:
        json.dump(info, fh, ensure_ascii=False, indent=2)
    counts = ", ".join(f"{obj} {n}" for obj, n in info["records"].items() if n)
    click.echo(f"Salesforce emulator running: {info['org_name']} ({counts})")
    click.echo(f"  Login URL       {emu.login_url}")
    click.echo(f"  CA bundle       {emu.ca_path}")
    click.echo(f"  Username        {emu.username}")
    click.echo(f"  Password        {emu.password}")
    click.echo(f"  Security token  {emu.security_token}")
    click.echo("Press Ctrl-C to stop.")
