"""The kamailio.cfg of an installation: options checked, the template filled in, and the small
bootstrap script app_python3 loads (it can pass no arguments to a script, so the bootstrap
carries the paths and the agent rule, written as Python literals).

Every value that reaches the cfg or the bootstrap is checked here first: a hostile value (a quote
or newline that would add cfg lines, control characters, a bad port) is refused with
:class:`ConfigError`, whose message the CLI shows as a usage error.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import pathlib
import re
import sysconfig

TEMPLATE = pathlib.Path(__file__).with_name("kamailio.cfg")
BOOTSTRAP_DIR = "kamailio"                  # inside the instance folder
BOOTSTRAP_NAME = "sfcti_kamailio_boot.py"
PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTOCOLS = ("udp", "tcp")
# RFC 3261 token characters: what a header name may hold
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]{1,64}")
# an agent's From user: RFC 3261 user unreserved characters and digits, no escapes
_USER = re.compile(r"[A-Za-z0-9._~+-]{1,64}")


class ConfigError(ValueError):
    "The Kamailio configuration cannot be made from these options."


@dataclasses.dataclass(frozen=True)
class Listen:
    """Where Kamailio listens: protocol, IP address, port."""

    protocol: str
    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.protocol}:{host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class AgentRule:
    """Which initial INVITEs an agent dials (the rest are calls from outside).

    A request is an agent's when it comes from one of ``networks`` (any address when none are
    given) and it names an agent: its From user is one of ``users``, or it carries ``header``
    (whose value is the agent's id). With neither users nor header, every request from the
    networks is an agent's; with nothing at all, no request is.
    """

    networks: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    header: str | None = None

    def configured(self) -> bool:
        """Whether any agent can be recognised at all."""
        return bool(self.networks or self.users or self.header)

    def agent_of(self, source_ip: str, from_user: str | None, header_value: str | None) -> str | None:
        """The agent's id when this request is an agent's, else None."""
        if not self.configured() or not self._from_network(source_ip):
            return None
        if self.header and header_value:
            return header_value.strip() or from_user or "agent"
        if self.users:
            return from_user if from_user in self.users else None
        if self.header:
            return None
        return from_user or "agent"

    def _from_network(self, source_ip: str) -> bool:
        if not self.networks:
            return True
        try:
            address = ipaddress.ip_address(source_ip)
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(net, strict=False) for net in self.networks)


@dataclasses.dataclass(frozen=True)
class KamailioOptions:
    """Everything ``sfcti kamailio-config`` puts into the cfg and the bootstrap."""

    listen: Listen
    agents: AgentRule = AgentRule()
    children: int = 4
    ring_timeout: int = 60          # seconds an INVITE may ring before it fails
    debug: int = 2


# ---------------------------------------------------------------------------------------------
# checking options
# ---------------------------------------------------------------------------------------------

def _printable(text: str, what: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ConfigError(f"{what} contains control characters")
    return text


def parse_listen(text: str) -> Listen:
    """``udp:127.0.0.1:5060`` (or ``tcp:...``, ``udp:[::1]:5060``) as a Listen."""
    _printable(text, "--listen")
    match = re.fullmatch(r"(udp|tcp):(\[[0-9A-Fa-f:.]+\]|[0-9.]+):([0-9]{1,5})", text.strip())
    if not match:
        raise ConfigError("--listen must look like udp:127.0.0.1:5060 (protocol udp or tcp, "
                          "an IP address, a port)")
    protocol, host, port = match.group(1), match.group(2).strip("[]"), int(match.group(3))
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise ConfigError(f"--listen: {host!r} is not an IP address") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"--listen: port {port} is not between 1 and 65535")
    return Listen(protocol, address, port)


def parse_network(text: str) -> str:
    """An agent address or network (``192.0.2.10``, ``10.1.0.0/16``) in canonical form."""
    _printable(text, "--agent-address")
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ConfigError(f"--agent-address: {text!r} is not an IP address or network") from None


def parse_header(text: str) -> str:
    """A header name (RFC 3261 token) such as ``X-Sfcti-Agent``."""
    _printable(text, "--agent-header")
    if not _TOKEN.fullmatch(text):
        raise ConfigError(f"--agent-header: {text!r} is not a header name (letters, digits, - . _)")
    return text


def parse_user(text: str) -> str:
    """An agent's SIP user (From user), such as ``agent101``."""
    _printable(text, "--agent-user")
    if not _USER.fullmatch(text):
        raise ConfigError(f"--agent-user: {text!r} is not a SIP user name (letters, digits, . _ ~ + -)")
    return text


def cfg_path(path: str | os.PathLike, what: str) -> str:
    """A path that can sit inside a quoted cfg string and a Python literal."""
    text = str(path)
    _printable(text, what)
    if '"' in text or "\\" in text:
        raise ConfigError(f"{what} {text!r} contains a quote or a backslash, which the cfg cannot hold")
    return text


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------

def render_config(options: KamailioOptions, home: str | os.PathLike, bootstrap: str | os.PathLike) -> str:
    """The kamailio.cfg text for ``options``, loading ``bootstrap``."""
    values = {
        "HOME": cfg_path(home, "the instance folder"),
        "BOOTSTRAP": cfg_path(bootstrap, "the bootstrap path"),
        "LISTEN": str(options.listen),
        "CHILDREN": str(int(options.children)),
        "RING_TIMEOUT_MS": str(int(options.ring_timeout) * 1000),
        "DEBUG": str(int(options.debug)),
    }
    text = TEMPLATE.read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    leftover = re.search(r"\{\{[A-Z_]+\}\}", text)
    assert leftover is None, f"unfilled placeholder {leftover.group(0)}"
    return text


def bootstrap_text(home: str | os.PathLike, agents: AgentRule, project_root: str | os.PathLike = PROJECT_ROOT,
                   site_packages: str | None = None) -> str:
    """The bootstrap script: this installation's paths and agent rule, then the handler."""
    site_packages = site_packages or sysconfig.get_paths()["purelib"]
    return (
        '"""Generated by `sfcti kamailio-config`: loaded by Kamailio\'s app_python3 (edits are\n'
        'overwritten when the command runs again)."""\n'
        "import os\nimport site\nimport sys\n\n"
        f"site.addsitedir({str(site_packages)!r})\n"
        f"sys.path.insert(0, {str(project_root)!r})  # this installation's code before any other copy\n"
        f"os.environ['SFCTI_HOME'] = {str(home)!r}\n"
        "os.environ['SFCTI_JOBS'] = 'off'  # jobs and alerts run in `sfcti serve` / `sfcti admin`\n\n"
        "from bridges.kamailio import handler  # noqa: E402  (loads the plugin before the fork)\n"
        "from bridges.kamailio.config import AgentRule  # noqa: E402\n\n"
        f"handler.configure(AgentRule(networks={agents.networks!r}, users={agents.users!r}, "
        f"header={agents.header!r}))\n"
        "mod_init = handler.mod_init\n"
    )


def write_bootstrap(home: str | os.PathLike, agents: AgentRule) -> pathlib.Path:
    """Write the bootstrap into the instance folder (mode 0644: Kamailio's user reads it)."""
    folder = pathlib.Path(home) / BOOTSTRAP_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / BOOTSTRAP_NAME
    cfg_path(path, "the bootstrap path")
    temporary = path.with_suffix(".tmp")
    temporary.write_text(bootstrap_text(home, agents), encoding="utf-8")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    return path
