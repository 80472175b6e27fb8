"""External components (XEP-0114) against a real server, with slixmpp's ComponentXMPP as the
component and slixmpp clients, plus raw sockets for what a well-behaved library never sends."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import slixmpp
from harness import ServerHarness
from helpers import receive, run, until
from slixmpp.exceptions import IqError
from xmpp import TIMEOUT, Client, available, close, login, logout

DOMAIN = "gateway.localhost"
SECRET = "correct horse battery staple"
PASSWORD = "s3cret pass"
# Port 0: the OS picks a free port; the test reads it back from the listener.
EXTRA = 'component_ports = [0]\ncomponent_interfaces = ["127.0.0.1"]'
HOST_EXTRA = f'[components."{DOMAIN}"]\ncomponent_secret = "{SECRET}"'


class Gateway(slixmpp.ComponentXMPP):
    """A component that records what it receives and answers version queries."""

    def __init__(self, jid: str = DOMAIN, secret: str = SECRET) -> None:
        super().__init__(jid, secret, plugin_config={
            "xep_0092": {"software_name": "Test Gateway", "version": "4.2"}})
        self.register_plugin("xep_0092")
        self.use_aiodns = False
        self.use_ipv6 = False
        self.started = asyncio.get_event_loop().create_future()
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.stream_errors: list[str] = []
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("stream_error", lambda e: self.stream_errors.append(
            e["condition"]))

    def _on_start(self, _event: Any) -> None:
        if not self.started.done():
            self.started.set_result(True)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[ServerHarness]:
    harness = ServerHarness(tmp_path, EXTRA, HOST_EXTRA).start()
    harness.create_user("romeo", PASSWORD)
    try:
        yield harness
    finally:
        harness.stop()


def component_port(srv: ServerHarness) -> int:
    assert srv.server is not None
    return srv.server.net.bound()["component"][0][1]


async def connect(srv: ServerHarness, jid: str = DOMAIN, secret: str = SECRET) -> Gateway:
    """A component that completed the handshake."""
    gateway = Gateway(jid, secret)
    gateway.connect("127.0.0.1", component_port(srv))
    await asyncio.wait_for(gateway.started, TIMEOUT)
    return gateway


async def refused(srv: ServerHarness, jid: str = DOMAIN, secret: str = SECRET) -> list[str]:
    """Connect a component the server refuses; the stream errors it got."""
    gateway = Gateway(jid, secret)
    gone = gateway.disconnected
    gateway.connect("127.0.0.1", component_port(srv))
    await asyncio.wait_for(gone, TIMEOUT)  # the server closed the connection
    assert not gateway.started.done()
    return gateway.stream_errors


async def next_message(queue: asyncio.Queue[Any], pred: Callable[[Any], bool]) -> Any:
    while True:
        msg = await asyncio.wait_for(queue.get(), TIMEOUT)
        if pred(msg):
            return msg


def test_messages_both_ways_from_any_address_at_the_domain(srv: ServerHarness) -> None:
    async def main() -> None:
        gateway = await connect(srv)
        romeo = await login("romeo@localhost/a", PASSWORD, srv.port())
        await available(romeo)  # messages to the bare JID go to available resources
        romeo.send_message(mto=f"bot@{DOMAIN}", mbody="hello bot", mtype="chat")
        got = await next_message(gateway.messages, lambda m: m["body"] == "hello bot")
        assert got["from"] == "romeo@localhost/a" and got["to"] == f"bot@{DOMAIN}"

        gateway.send_message(mto="romeo@localhost/a", mbody="from bot", mtype="chat",
                             mfrom=f"bot@{DOMAIN}")
        gateway.send_message(mto="romeo@localhost", mbody="from other", mtype="chat",
                             mfrom=f"other@{DOMAIN}/res")
        first = await next_message(romeo.messages, lambda m: m["body"] == "from bot")
        second = await next_message(romeo.messages, lambda m: m["body"] == "from other")
        assert first["from"] == f"bot@{DOMAIN}"
        assert second["from"] == f"other@{DOMAIN}/res"
        await logout(romeo)
        await close(gateway)
    run(main())


def test_iq_to_the_component_gets_its_answer(srv: ServerHarness) -> None:
    async def main() -> None:
        gateway = await connect(srv)
        romeo = await login("romeo@localhost/a", PASSWORD, srv.port(), plugins=("xep_0092",))
        version = await romeo.plugin["xep_0092"].get_version(f"bot@{DOMAIN}")
        assert version["from"] == f"bot@{DOMAIN}"
        assert version["software_version"]["name"] == "Test Gateway"
        assert version["software_version"]["version"] == "4.2"
        await logout(romeo)
        await close(gateway)
    run(main())


def test_wrong_secret_is_not_authorized(srv: ServerHarness) -> None:
    async def main() -> None:
        assert await refused(srv, secret="guess") == ["not-authorized"]
    run(main())


def test_unknown_domain_is_host_unknown(srv: ServerHarness) -> None:
    async def main() -> None:
        assert await refused(srv, jid="nope.localhost") == ["host-unknown"]
        # A virtual host is no component either.
        assert await refused(srv, jid="localhost") == ["host-unknown"]
    run(main())


def test_sending_from_another_domain_is_invalid_from(srv: ServerHarness) -> None:
    async def main() -> None:
        gateway = await connect(srv)
        gone = gateway.disconnected
        gateway.send_message(mto="romeo@localhost", mbody="spoofed", mfrom="bot@localhost")
        await asyncio.wait_for(gone, TIMEOUT)
        assert gateway.stream_errors == ["invalid-from"]
    run(main())


def test_second_connection_is_a_conflict_and_the_first_stays(srv: ServerHarness) -> None:
    async def main() -> None:
        first = await connect(srv)
        assert await refused(srv) == ["conflict"]
        romeo = await login("romeo@localhost/a", PASSWORD, srv.port())
        romeo.send_message(mto=f"bot@{DOMAIN}", mbody="still there?")
        await next_message(first.messages, lambda m: m["body"] == "still there?")
        await logout(romeo)
        await close(first)
        # Once the first is gone, the domain can be served again.
        again = await connect(srv)
        await close(again)
    run(main())


def test_stanzas_to_a_disconnected_component_bounce(srv: ServerHarness) -> None:
    async def main() -> None:
        gateway = await connect(srv)
        await close(gateway)
        romeo = await login("romeo@localhost/a", PASSWORD, srv.port(), plugins=("xep_0092",))
        romeo.send_message(mto=f"bot@{DOMAIN}", mbody="anyone?", mtype="chat")
        error = await next_message(romeo.messages, lambda m: m["type"] == "error")
        assert error["from"] == f"bot@{DOMAIN}"
        assert error["error"]["condition"] == "service-unavailable"
        with pytest.raises(IqError) as info:
            await romeo.plugin["xep_0092"].get_version(f"bot@{DOMAIN}")
        assert info.value.iq["error"]["condition"] == "service-unavailable"
        await logout(romeo)
    run(main())


def test_listed_under_the_parent_domain_and_in_status(srv: ServerHarness) -> None:
    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, srv.port(), plugins=("xep_0030",))
        items = await romeo.plugin["xep_0030"].get_items(jid="localhost")
        assert DOMAIN in [item[0] for item in items["disco_items"]["items"]]
        await logout(romeo)
    run(main())
    status = admin(srv, "server.status")
    assert status["listeners"]["component"] == [["127.0.0.1", component_port(srv)]]
    modules = {(m["name"], m["host"]): m["status"] for m in admin(srv, "module.list")}
    assert modules[("component", DOMAIN)] == "loaded"
    assert modules[("component_listener", "*")] == "loaded"


def test_reload_keeps_the_component_and_unload_disconnects_it(srv: ServerHarness) -> None:
    async def main() -> None:
        gateway = await connect(srv)
        romeo = await login("romeo@localhost/a", PASSWORD, srv.port())
        args = {"name": "component", "host": DOMAIN}
        [reloaded] = await asyncio.to_thread(admin, srv, "module.reload", **args)
        assert reloaded["status"] == "loaded"
        romeo.send_message(mto=f"bot@{DOMAIN}", mbody="after reload")
        await next_message(gateway.messages, lambda m: m["body"] == "after reload")

        gone = gateway.disconnected
        await asyncio.to_thread(admin, srv, "module.unload", **args)
        await asyncio.wait_for(gone, TIMEOUT)
        assert gateway.stream_errors == ["host-gone"]
        romeo.send_message(mto=f"bot@{DOMAIN}", mbody="anyone?")
        error = await next_message(romeo.messages, lambda m: m["type"] == "error")
        assert error["error"]["condition"] == "service-unavailable"
        await logout(romeo)
    run(main())


def admin(srv: ServerHarness, cmd: str, **args: Any) -> Any:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(srv.admin_socket))
        sock.sendall(json.dumps({"id": 1, "cmd": cmd, "args": args}).encode() + b"\n")
        reply = json.loads(sock.makefile().readline())
    assert reply["ok"] is True, reply
    return reply["result"]


# -- what slixmpp never sends: raw streams ------------------------------------------------


def raw_stream(srv: ServerHarness) -> tuple[socket.socket, str]:
    """An opened, not yet authenticated component stream and the server's stream id."""
    sock = socket.create_connection(("127.0.0.1", component_port(srv)), 5)
    sock.sendall(f"<stream:stream xmlns='jabber:component:accept' "
                 f"xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}'>".encode())
    header = receive(sock, ">", 5)
    found = re.search(r"\bid='([^']+)'", header)
    assert found is not None, header
    return sock, found.group(1)


def handshake(sock: socket.socket, stream_id: str) -> None:
    digest = hashlib.sha1((stream_id + SECRET).encode()).hexdigest()
    sock.sendall(f"<handshake>{digest}</handshake>".encode())
    assert "<handshake/>" in receive(sock, "<handshake/>", 5)


def test_nothing_is_routed_before_the_handshake(srv: ServerHarness) -> None:
    delivered: list[Any] = []

    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, srv.port())
        sock, _ = raw_stream(srv)
        with sock:
            sock.sendall(f"<message to='romeo@localhost/a' from='bot@{DOMAIN}'>"
                         "<body>too early</body></message>".encode())
            answer = await asyncio.to_thread(receive, sock, "</stream:stream>", 5)
        assert "<not-authorized" in answer and answer.endswith("</stream:stream>")
        # The stream is gone; the message never reached romeo.
        romeo.send_message(mto="romeo@localhost/a", mbody="marker")
        while (msg := await asyncio.wait_for(romeo.messages.get(), TIMEOUT))["body"] != "marker":
            delivered.append(msg)
        await logout(romeo)
    run(main())
    assert delivered == []


@pytest.mark.parametrize("attrs", ["to='romeo@localhost'", f"from='bot@{DOMAIN}'"])
def test_missing_to_or_from_is_improper_addressing(srv: ServerHarness, attrs: str) -> None:
    sock, stream_id = raw_stream(srv)
    with sock:
        handshake(sock, stream_id)
        sock.sendall(f"<message {attrs}><body>x</body></message>".encode())
        answer = receive(sock, "</stream:stream>", 5)
    assert "<improper-addressing" in answer


def test_accepted_then_stanzas_in_order(srv: ServerHarness) -> None:
    """A burst from the component arrives complete and in order (one write, many stanzas)."""
    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, srv.port())
        sock, stream_id = raw_stream(srv)
        with sock:
            handshake(sock, stream_id)
            burst = "".join(f"<message to='romeo@localhost/a' from='n{i}@{DOMAIN}' "
                            f"type='chat'><body>{i}</body></message>" for i in range(50))
            sock.sendall(burst.encode())
            bodies: list[str] = []
            await until(lambda: _drain(romeo, bodies) >= 50, "50 messages")
        assert bodies == [str(i) for i in range(50)]
        await logout(romeo)
    run(main())


def _drain(client: Client, into: list[str]) -> int:
    while not client.messages.empty():
        into.append(client.messages.get_nowait()["body"])
    return len(into)


def test_stanzas_in_jabber_client_are_accepted_too(srv: ServerHarness) -> None:
    """Some component libraries write xmlns='jabber:client' on their stanzas."""
    async def main() -> None:
        romeo = await login("romeo@localhost/a", PASSWORD, srv.port())
        sock, stream_id = raw_stream(srv)
        with sock:
            handshake(sock, stream_id)
            sock.sendall(f"<message xmlns='jabber:client' to='romeo@localhost/a' "
                         f"from='bot@{DOMAIN}'><body>client ns</body></message>".encode())
            got = await next_message(romeo.messages, lambda m: m["body"] == "client ns")
        assert got["from"] == f"bot@{DOMAIN}"
        await logout(romeo)
    run(main())
