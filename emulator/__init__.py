"""A local Salesforce that speaks the real wire protocol, for the demo, tests and benchmarks.

    from emulator import Emulator, Org, generate_org, load_org
    with Emulator(Org(records={...})) as emu:
        emu.login_url, emu.ca_path, emu.username, emu.password, emu.security_token
"""
from emulator.faults import Faults, LOGIN_FAULTS
from emulator.org import Org
from emulator.server import DEMO_PASSWORD, DEMO_TOKEN, Emulator

__all__ = ["Emulator", "Org", "Faults", "LOGIN_FAULTS", "DEMO_PASSWORD", "DEMO_TOKEN",
           "generate_org", "load_org"]


def __getattr__(name):
    # The data generator lives in its own module (another owner); import it only when asked for.
    if name in ("generate_org", "load_org"):
        from emulator import datagen
        return getattr(datagen, name)
    raise AttributeError(f"module 'emulator' has no attribute {name!r}")
