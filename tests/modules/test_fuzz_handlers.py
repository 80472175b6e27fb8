"""Every stanza handler survives arbitrary well-formed stanzas.

A ``<message>`` without ``to`` once raised inside a handler (issue: reliability). Here
hypothesis builds stanzas from what the loaded modules actually hook (every
``iq-get/...``/``iq-set/...`` payload name), with random attributes and children, and sends
them to every kind of address: none, the host, accounts (online, offline, missing), full
JIDs, components and their rooms/nodes, a remote domain. No handler may raise: the event
bus logs a handler's exception with its traceback, and this test fails on any such record.
After the run the server still answers a ping.

Run longer with ``TERCET_FUZZ_EXAMPLES=20000 pytest tests/modules/test_fuzz_handlers.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec

import pytest
from helpers import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moduletest import ModuleTestServer, TestClient

from tercet.core.config import DEFAULT_MODULES
from tercet.protocol.stanza import Element

EXAMPLES = int(os.environ.get("TERCET_FUZZ_EXAMPLES") or examples(300))

OPTIONAL = ["mam", "csi_simple", "cloud_notify", "pep", "bookmarks", "vcard4",
            "sasl2", "external_services", "admin_adhoc"]
COMPONENTS = {"conference.localhost": ("muc", ["muc_mam"]), "pubsub.localhost": ("pubsub", [])}


def have(module: str) -> bool:
    return find_spec(f"tercet.modules.{module}") is not None


def config() -> str:
    modules = [*DEFAULT_MODULES, *(m for m in OPTIONAL if have(m))]
    text = f'modules_enabled = {modules!r}\n'.replace("'", '"')
    return text


def components() -> str:
    out = []
    for host, (module, extra) in COMPONENTS.items():
        if not have(module):
            continue
        out.append(f'\n[components."{host}"]\nmodule = "{module}"')
        enabled = [m for m in extra if have(m)]
        if enabled:
            out.append(f"modules_enabled = {enabled!r}".replace("'", '"'))
    return "\n".join(out) + "\n"


ADDRESSES = [None, "localhost", "romeo@localhost", "romeo@localhost/a", "romeo@localhost/zz",
             "juliet@localhost", "juliet@localhost/b", "offline@localhost", "nobody@localhost",
             "conference.localhost", "room@conference.localhost",
             "room@conference.localhost/nick", "room@conference.localhost/romeo",
             "pubsub.localhost", "remote.example", "user@remote.example/r"]
TYPES = {"message": [None, "chat", "normal", "groupchat", "headline", "error", "x"],
         "presence": [None, "unavailable", "subscribe", "subscribed", "unsubscribe",
                      "unsubscribed", "probe", "error", "x"],
         "iq": ["get", "set"]}
ATTRS = ["node", "id", "jid", "var", "type", "max_items", "with", "start", "end", "nick",
         "role", "affiliation", "name", "subscription", "ask", "after", "before", "queryid",
         "item", "h", "previd", "resume", "action", "xml:lang", "category", "to", "from"]
VALUES = ["", "0", "1", "-1", "99999999999999999999", "true", "romeo@localhost",
          "room@conference.localhost/x", "juliet@localhost/b", "@", "a@b@c", "x" * 300,
          "2020-01-01T00:00:00Z", "not-a-date", "current", "open", "whitelist", "max",
          "owner", "outcast", "moderator", "none", "submit", "form", "cancel", "é", "\u2028"]
CHILD_NAMES = ["item", "field", "value", "x", "query", "set", "max", "before", "after",
               "items", "publish", "subscribe", "options", "history", "password", "invite",
               "decline", "reason", "destroy", "body", "subject", "retract", "configure",
               "create", "delete", "purge", "affiliations", "subscriptions", "nick",
               "status", "show", "priority", "c", "enable", "disable", "first", "last",
               "count", "index", "publish-options", "storage", "conference", "vCard",
               "PHOTO", "BINVAL", "TYPE", "redirect", "actor", "continue", "metadata"]
CHILD_NS = ["jabber:x:data", "http://jabber.org/protocol/rsm",
            "http://jabber.org/protocol/muc#user", "http://jabber.org/protocol/muc",
            "http://jabber.org/protocol/pubsub", "http://jabber.org/protocol/pubsub#owner",
            "urn:xmpp:mam:2", "storage:bookmarks", "vcard-temp", "urn:xmpp:carbons:2",
            "urn:xmpp:hints", "http://jabber.org/protocol/caps", "urn:xmpp:sid:0",
            "urn:xmpp:delay", "jabber:client", "urn:xmpp:bookmarks:1"]


@st.composite
def element(draw: st.DrawFn, name: str, ns: str, depth: int) -> Element:
    attrs = {}
    for key in draw(st.lists(st.sampled_from(ATTRS), max_size=3, unique=True)):
        if key not in ("to", "from", "xml:lang"):
            attrs[key] = draw(st.sampled_from(VALUES))
    el = Element(name, ns, attrs)
    if depth > 0:
        for _ in range(draw(st.integers(0, 3))):
            child_ns = draw(st.sampled_from([ns, *CHILD_NS]))
            el.append(draw(element(draw(st.sampled_from(CHILD_NAMES)), child_ns, depth - 1)))
    if draw(st.booleans()):
        el.append(draw(st.sampled_from(VALUES)))
    return el


@dataclass
class Target:
    server: ModuleTestServer
    loop: asyncio.AbstractEventLoop
    romeo: TestClient
    payloads: list[tuple[str, str]]  # (namespace, element name) some module hooks


@st.composite
def stanza(draw: st.DrawFn, payloads: list[tuple[str, str]]) -> Element:
    kind = draw(st.sampled_from(["message", "presence", "iq"]))
    attrs = {"id": draw(st.sampled_from(["a", "", "x" * 100]))}
    to = draw(st.sampled_from(ADDRESSES))
    if to is not None:
        attrs["to"] = to
    type_ = draw(st.sampled_from(TYPES[kind]))
    if type_ is not None:
        attrs["type"] = type_
    el = Element(kind, "jabber:client", attrs)
    if kind == "iq":
        ns, name = draw(st.sampled_from(payloads))
        el.append(draw(element(name, ns, 3)))
        return el
    for _ in range(draw(st.integers(0, 3))):
        ns = draw(st.sampled_from(["jabber:client", *CHILD_NS]))
        el.append(draw(element(draw(st.sampled_from(CHILD_NAMES)), ns, 2)))
    return el


class Raised(logging.Handler):
    """Collects records logged with a traceback: a handler raised."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


def hooked_payloads(srv: ModuleTestServer) -> list[tuple[str, str]]:
    found = set()
    for host in srv.server.hosts.values():
        for name in host.events.names():
            kind, _, rest = name.partition("/")
            if kind in ("iq-get", "iq-set") and "/" in rest:
                payload = rest.split("/", 1)[1]
                ns, _, local = payload.rpartition(":")
                if ns and local:
                    found.add((ns, local))
    return sorted(found)


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    loop = asyncio.new_event_loop()
    srv = ModuleTestServer(config(), components())
    loop.run_until_complete(srv.__aenter__())

    async def setup() -> TestClient:
        romeo = await srv.connect("romeo@localhost/a")
        juliet = await srv.connect("juliet@localhost/b")
        await srv.create_user("offline")
        for client in (romeo, juliet):
            await client.send("<presence/>")
        return romeo
    romeo = loop.run_until_complete(setup())
    try:
        yield Target(srv, loop, romeo, hooked_payloads(srv))
    finally:
        loop.run_until_complete(srv.__aexit__(None, None, None))
        loop.close()


def test_the_fuzzer_sees_the_modules_payloads(target: Target) -> None:
    names = {name for _ns, name in target.payloads}
    assert {"ping", "query", "vCard"} <= names, names


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_no_handler_raises_on_any_stanza(target: Target, data: st.DataObject) -> None:
    el = data.draw(stanza(target.payloads))
    raised = Raised()
    root = logging.getLogger()
    root.addHandler(raised)
    try:
        target.loop.run_until_complete(asyncio.wait_for(target.romeo.send(el), 10))
        # Let detached tasks (fire_detached, send_detached) run too.
        target.loop.run_until_complete(asyncio.sleep(0))
    finally:
        root.removeHandler(raised)
    target.romeo.received()
    assert not raised.records, (
        f"{el}\n" + "\n".join(logging.Formatter().format(r) for r in raised.records))


def test_the_server_still_answers_after_the_fuzzing(target: Target) -> None:
    async def ping() -> Element:
        await target.romeo.send("<iq type='get' id='alive' to='localhost'>"
                                "<ping xmlns='urn:xmpp:ping'/></iq>")
        return target.romeo.expect("iq", id="alive")
    assert target.loop.run_until_complete(ping()).get("type") == "result"
