"""The admin shell's line parsing and the stanza watch's redaction (no server needed)."""

from __future__ import annotations

import pytest

from tercet.cli.shell import UsageError, parse, render
from tercet.core.watch import redact
from tercet.protocol.stanza import Element


def hosts() -> list[str]:
    return ["example.org", "chat.example.org"]


@pytest.mark.parametrize(("line", "cmd", "args"), [
    ("c2s list", "c2s.list", {}),
    ("c2s list example.org", "c2s.list", {"host": "example.org"}),
    ("c2s close a@example.org/phone too many reconnects", "c2s.close",
     {"jid": "a@example.org/phone", "reason": "too many reconnects"}),
    ("module load mam example.org", "module.load", {"name": "mam", "host": "example.org"}),
    # Not one of the hosts: the server says so (only announce must guess).
    ("module load mam typo.example", "module.load", {"name": "mam", "host": "typo.example"}),
    ("module info carbons", "module.info", {"name": "carbons"}),
    ("config get c2s_ports", "config.get", {"option": "c2s_ports"}),
    ("watch log", "watch.log", {}),
    ("watch log debug", "watch.log", {"level": "debug"}),
    ("watch log mam", "watch.log", {"module": "mam"}),
    ("watch log warning c2s", "watch.log", {"level": "warning", "module": "c2s"}),
    ("watch stanzas a@example.org --bodies", "watch.stanzas",
     {"jid": "a@example.org", "bodies": True}),
    ("announce example.org back at noon", "announce",
     {"host": "example.org", "message": "back at noon"}),
    ("announce back at noon", "announce", {"message": "back at noon"}),
    ("announce 'example.org is moving' --type=normal", "announce",
     {"message": "example.org is moving", "type": "normal"}),
    ("announce --type chat hi", "announce", {"message": "hi", "type": "chat"}),
    ("plugin.thing key=value", "plugin.thing", {"key": "value"}),
    ("plugin thing key=value n=2", "plugin.thing", {"key": "value", "n": "2"}),
])
def test_lines_become_admin_commands(line: str, cmd: str, args: dict[str, object]) -> None:
    parsed = parse(line, hosts)
    assert (parsed.cmd, parsed.args) == (cmd, args)


def test_confirmation_flag() -> None:
    assert parse("user delete a@example.org --yes").yes
    assert not parse("user delete a@example.org").yes


@pytest.mark.parametrize("line", [
    "", "frob", "c2s close", "c2s list a b", "user password a@example.org secret",
    "watch stanzas a@example.org --loud", "plugin thing notkeyvalue", "c2s list 'unclosed",
])
def test_usage_errors(line: str) -> None:
    with pytest.raises(UsageError):
        parse(line, hosts)


def test_render_tables_and_mappings() -> None:
    rows = [{"jid": "a@example.org/phone", "peer": "192.0.2.1", "tls_version": "TLSv1.3",
             "tls_cipher": "TLS_AES_128_GCM_SHA256", "client": None,
             "features": {"sm": "resumable", "carbons": True}}]
    spec = parse("c2s list").spec
    text = render(spec, rows).splitlines()
    assert text[0].split() == ["JID", "PEER", "TLS", "CLIENT", "FEATURES"]
    assert text[1].split() == ["a@example.org/phone", "192.0.2.1", "TLSv1.3",
                               "TLS_AES_128_GCM_SHA256", "-", "sm=resumable,carbons"]
    assert render(None, []) == "(none)"
    assert render(None, {"rss": 3 * 1024 * 1024, "uptime": 3725}) == \
        "rss: 3.0 MiB\nuptime: 1h 2m 5s"


def test_redaction() -> None:
    msg = Element("message", attrs={"to": "b@example.org"})
    msg.text_tag("body", "meet at 6")
    forwarded = msg.tag("forwarded", "urn:xmpp:forward:0")
    forwarded.tag("message", "jabber:client").text_tag("body", "inner secret")
    hidden = redact(msg, bodies=False).to_xml()
    assert "meet at 6" not in hidden and "inner secret" not in hidden
    assert hidden.count("[redacted]") == 2
    assert "meet at 6" in msg.to_xml()  # the stanza itself is untouched
    assert redact(msg, bodies=True) is msg  # nothing to hide: no copy

    register = Element("iq", attrs={"type": "set"})
    query = register.tag("query", "jabber:iq:register")
    query.text_tag("username", "a")
    query.text_tag("password", "hunter2")
    form = query.tag("x", "jabber:x:data", attrs={"type": "submit"})
    form.tag("field", attrs={"var": "password"}).text_tag("value", "hunter3")
    shown = redact(register, bodies=True).to_xml()
    assert "hunter2" not in shown and "hunter3" not in shown and "<username>a<" in shown
