"""The Kamailio bridge's pure parts: the display name put on the wire, URIs, the agent rule,
the options `sfcti kamailio-config` accepts (and the hostile ones it refuses), the cfg and the
bootstrap it writes, checked by Kamailio itself and by Debian's Python that Kamailio runs."""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import subprocess

import pytest

from bridges.kamailio.config import (AgentRule, ConfigError, KamailioOptions, parse_header,
                                     parse_listen, parse_network, parse_user, render_config)
from bridges.kamailio.handler import (call_facts_json, ended_call, privacy_requested, quote_display,
                                      uri_user)
from helpers import HOSTILE, ROOT, run_cli
from plugin.call import Call

# RFC 3261 quoted-string (qdtext or quoted-pair, no CR/LF, no other control characters)
QUOTED_STRING = re.compile(r'"(?:[^"\\\x00-\x1f\x7f]|\\[^\r\n])*"')


# ---------------------------------------------------------------------------------------------
# the display name on the wire
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, quoted", [
    ("株式会社サンプル / 山田 太郎", '"株式会社サンプル / 山田 太郎"'),
    ('Say "hi"', '"Say \\"hi\\""'),
    ("C:\\path", '"C:\\\\path"'),
    ("line\r\nInjected: yes", '"line Injected: yes"'),
    ("bell\x07 esc\x1b[31m del\x7f nul\x00", '"bell esc[31m del nul"'),
    ("right\u202eleft", '"rightleft"'),               # a format character that reorders text
    ("  spaced \t out  ", '"spaced out"'),
])
def test_quote_display(name, quoted):
    assert quote_display(name) == quoted


@pytest.mark.parametrize("name", [None, "", "   ", "\r\n", "\x00\x1b"])
def test_nothing_printable_gives_no_display_name(name):
    assert quote_display(name) is None


def test_display_name_is_capped_before_escaping():
    assert quote_display("あ" * 100) == '"' + "あ" * 64 + '"'
    # a backslash at the cut still comes out escaped, never as a lone escape before the quote
    assert quote_display("x" * 63 + "\\" + "y" * 10) == '"' + "x" * 63 + '\\\\"'
    assert quote_display("abcdef", limit=3) == '"abc"'


@pytest.mark.parametrize("name", [text for text, _ in HOSTILE if text] +
                         ['"', "\\", '\\"', '"\r\nVia: x', "a" * 5000 + '"'])
def test_any_name_becomes_one_quoted_string(name):
    quoted = quote_display(name)
    assert quoted is None or QUOTED_STRING.fullmatch(quoted), quoted


# ---------------------------------------------------------------------------------------------
# URIs and the call's facts kept in the dialog
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("uri, user", [
    ("sip:0312345678@example.com", "0312345678"),
    ("sips:+81312345678@example.com;user=phone", "+81312345678"),
    ("<sip:alice@example.com>", "alice"),
    ("tel:+81312345678;phone-context=x", "+81312345678"),
    ("sip:example.com", None),
    ("http://example.com", None),
    ("", None),
    (None, None),
])
def test_uri_user(uri, user):
    assert uri_user(uri) == user


@pytest.mark.parametrize("privacy, hidden", [
    (None, False), ("", False), ("none", False), (" None ", False), ("id", True),
    ("user;id", True), ("header; id; critical", True), ("session", True), ("none;id", True),
])
def test_privacy_requested(privacy, hidden):
    """A caller whose Privacy header asks for anything but "none" is shown withheld."""
    assert privacy_requested(privacy) is hidden


def test_call_facts_survive_the_dialog():
    started = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    call = Call(call_id="abc@host", direction="outbound", remote_number="0312345678",
                local_number="agent", agent_id="agent", started_at=started)
    ended = ended_call(call_facts_json(call), answered=True)
    assert (ended.call_id, ended.direction, ended.remote_number, ended.local_number,
            ended.agent_id, ended.started_at, ended.answered) == \
        ("abc@host", "outbound", "0312345678", "agent", "agent", started, True)
    assert ended.ended_at > started


@pytest.mark.parametrize("text", [None, "", "not json", "[]", '{"call_id": "x"}', "null"])
def test_a_dialog_without_facts_gives_no_call(text):
    assert ended_call(text, answered=False) is None


# ---------------------------------------------------------------------------------------------
# which INVITEs are an agent's
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rule, source, from_user, header, agent", [
    (AgentRule(), "10.0.0.5", "agent", "a1", None),                       # nothing configured
    (AgentRule(networks=("10.0.0.0/24",)), "10.0.0.5", "101", None, "101"),
    (AgentRule(networks=("10.0.0.0/24",)), "192.0.2.1", "101", None, None),
    (AgentRule(users=("101", "102")), "192.0.2.1", "102", None, "102"),
    (AgentRule(users=("101",)), "192.0.2.1", "0312345678", None, None),
    (AgentRule(networks=("10.0.0.0/24",), users=("101",)), "192.0.2.1", "101", None, None),
    (AgentRule(header="X-Sfcti-Agent"), "192.0.2.1", "101", "yamada", "yamada"),
    (AgentRule(header="X-Sfcti-Agent"), "192.0.2.1", "101", None, None),
    (AgentRule(networks=("10.0.0.0/24",), header="X-Sfcti-Agent"), "192.0.2.1", "1", "yamada", None),
    (AgentRule(networks=("::1/128",)), "::1", "101", None, "101"),
    (AgentRule(networks=("10.0.0.0/24",)), "not an address", "101", None, None),
])
def test_agent_rule(rule, source, from_user, header, agent):
    assert rule.agent_of(source, from_user, header) == agent


# ---------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, listen", [
    ("udp:127.0.0.1:5060", "udp:127.0.0.1:5060"),
    ("tcp:192.0.2.10:5070", "tcp:192.0.2.10:5070"),
    ("udp:[::1]:5060", "udp:[::1]:5060"),
])
def test_listen(text, listen):
    assert str(parse_listen(text)) == listen


@pytest.mark.parametrize("parse, text", [
    (parse_listen, "udp:127.0.0.1:0"), (parse_listen, "udp:127.0.0.1:70000"),
    (parse_listen, "tls:127.0.0.1:5061"), (parse_listen, "udp:localhost:5060"),
    (parse_listen, "udp:999.1.1.1:5060"), (parse_listen, "udp:127.0.0.1:5060\nloadmodule \"x.so\""),
    (parse_listen, 'udp:127.0.0.1:5060"'), (parse_listen, ""),
    (parse_network, "10.0.0.0/33"), (parse_network, "agents"), (parse_network, "10.0.0.1\x00"),
    (parse_header, "X-Agent: 1"), (parse_header, 'X"\nfoo'), (parse_header, ""), (parse_header, "x" * 65),
    (parse_user, "a b"), (parse_user, "a@b"), (parse_user, "a\r\nb"), (parse_user, '"'),
])
def test_hostile_options_are_refused(parse, text):
    with pytest.raises(ConfigError):
        parse(text)


# ---------------------------------------------------------------------------------------------
# the cfg and the bootstrap, as `sfcti kamailio-config` writes them
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def rendered(tmp_path):
    """(home, cfg text) of `sfcti kamailio-config` on a new instance folder."""
    home = tmp_path / "instance"
    result = run_cli(home, "kamailio-config", "--listen", "udp:127.0.0.1:5099", "--agent-address",
                     "10.1.0.0/16", "--agent-user", "101", "--agent-header", "X-Sfcti-Agent",
                     "--children", "3")
    assert result.exit_code == 0, result.output
    return home, result.output


def test_rendered_cfg_is_accepted_by_kamailio(rendered, tmp_path):
    home, text = rendered
    bootstrap = home / "kamailio" / "sfcti_kamailio_boot.py"
    assert "listen=udp:127.0.0.1:5099\n" in text and "children=3\n" in text
    assert f'modparam("app_python3", "load", "{bootstrap}")' in text
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(text, encoding="utf-8")
    check = subprocess.run(["/usr/sbin/kamailio", "-c", "-f", str(cfg)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stderr[-3000:]


def test_bootstrap_loads_this_code_and_opens_nothing_before_the_fork(rendered):
    """Debian's /usr/bin/python3 (the one inside Kamailio) runs the bootstrap: the handler comes
    from this checkout, the agent rule from the options, and no database or thread exists until
    a forked SIP worker's child_init (rank > 0) opens the instance folder; the main process's
    child_init (PROC_INIT, before the fork) opens nothing."""
    home, _ = rendered
    bootstrap = home / "kamailio" / "sfcti_kamailio_boot.py"
    assert stat.S_IMODE(bootstrap.stat().st_mode) == 0o644
    database = home / "sfcti.db"
    probe = (
        "import os, pathlib, runpy, threading\n"
        f"boot = runpy.run_path({str(bootstrap)!r})\n"
        "import bridges\n"
        "bridge = boot['mod_init']()\n"
        "print(bridges.__file__)\n"
        "print(os.environ['SFCTI_HOME'], os.environ['SFCTI_JOBS'])\n"
        "print(bridge.agents)\n"
        f"database = pathlib.Path({str(database)!r})\n"
        "print(bridge.child_init(-127), threading.active_count(), database.exists())\n"
        "print(bridge.child_init(1), database.exists())\n"
        "print(sorted(n for n in ('initial_invite', 'call_ended', 'call_failed') if callable(getattr(bridge, n))))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SFCTI_HOME", "SFCTI_JOBS")}
    run = subprocess.run(["/usr/bin/python3", "-c", probe], capture_output=True, text=True,
                         timeout=60, cwd="/", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0] == str(ROOT / "bridges" / "__init__.py")
    assert lines[1] == f"{home} off"
    assert lines[2] == ("AgentRule(networks=('10.1.0.0/16',), users=('101',), "
                        "header='X-Sfcti-Agent')")
    assert lines[3] == "0 1 False"          # before the fork: one thread, no database
    assert lines[4] == "0 True"             # a SIP worker opens the instance folder
    assert lines[5] == "['call_ended', 'call_failed', 'initial_invite']"


@pytest.mark.parametrize("args, message", [
    (["--listen", 'udp:127.0.0.1:5060\nloadmodule "evil.so"'], "control characters"),
    (["--listen", 'udp:127.0.0.1:5060"'], "--listen must look like"),
    (["--listen", "udp:127.0.0.1:65536"], "between 1 and 65535"),
    (["--listen", "udp:127.0.0.1:-1"], "--listen must look like"),
    (["--agent-address", "10.0.0.0/40"], "not an IP address or network"),
    (["--agent-user", 'a"\nrequest_route {'], "control characters"),
    (["--agent-user", "a b"], "not a SIP user name"),
    (["--agent-header", "X-Agent\r\nVia: evil"], "control characters"),
    (["--agent-header", "X:Agent"], "not a header name"),
    (["--children", "0"], "0"),
    (["--ring-timeout", "abc"], "abc"),
])
def test_hostile_cli_arguments_get_a_usage_error(tmp_path, args, message):
    result = run_cli(tmp_path / "instance", "kamailio-config", *args)
    assert result.exit_code == 2
    assert "Error: " in result.output and message in result.output
    assert "#!KAMAILIO" not in result.output
    assert not (tmp_path / "instance" / "kamailio").exists()


def test_an_instance_folder_the_cfg_cannot_hold_is_refused(tmp_path):
    result = run_cli(tmp_path / 'in"stance', "kamailio-config")
    assert result.exit_code == 2
    assert "quote or a backslash" in result.output and "#!KAMAILIO" not in result.output


def test_render_config_fills_every_placeholder():
    options = KamailioOptions(listen=parse_listen("udp:192.0.2.1:5060"), children=2, ring_timeout=30)
    text = render_config(options, "/srv/sfcti", "/srv/sfcti/kamailio/boot.py")
    assert "{{" not in text and "}}" not in text
    assert 'modparam("tm", "fr_inv_timer", 30000)' in text
    with pytest.raises(ConfigError):
        render_config(options, '/srv/"x', "/srv/boot.py")


def test_without_agents_the_command_warns(tmp_path):
    result = run_cli(tmp_path / "instance", "kamailio-config")
    assert result.exit_code == 0
    assert "every call counts as a call from outside" in result.output
