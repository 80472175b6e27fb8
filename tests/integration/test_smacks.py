"""Stream Management (XEP-0198) end to end: slixmpp's xep_0198 plugin over real TLS for
enable and acks, raw TLS streams for killed connections and resumption."""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import time

import pytest
from harness import ServerHarness
from helpers import run, until
from xmpp import available, login, logout

from tercet.storage.base import ArchiveQuery

PASSWORD = "s3cret pass"
NS_SM = "urn:xmpp:sm:3"
HEADER = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


@pytest.fixture
def users(make_server) -> ServerHarness:  # noqa: ANN001
    srv: ServerHarness = make_server(host_extra="modules_enabled = ['smacks']\n"
                                     "smacks_hibernation_time = 60\n")
    for name in ("romeo", "juliet", "tybalt"):
        srv.create_user(name, PASSWORD)
    return srv


class Clock:
    """A settable server clock (``module.now()``): real time plus an offset."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def sweep(srv: ServerHarness) -> None:
    """Run smacks' hibernation check now, on the server's loop."""
    async def run_sweep() -> None:
        srv.server.hosts["localhost"].providers["smacks"][0].sweep()
    await srv.acall(run_sweep())


class Raw:
    """A client stream over STARTTLS, written by hand: what slixmpp cannot do on purpose
    (die without a stream close, resume with a chosen id)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = ""

    @classmethod
    async def login(cls, user: str, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = cls(reader, writer)
        raw.send(HEADER)
        await raw.expect("</stream:features>")
        raw.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await raw.expect("<proceed")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        await writer.start_tls(ctx)
        raw.buffer = ""
        raw.send(HEADER)
        await raw.expect("</stream:features>")
        token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
        raw.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                 f"{token}</auth>")
        await raw.expect("<success")
        raw.buffer = ""
        raw.send(HEADER)
        features = await raw.expect("</stream:features>")
        assert NS_SM in features
        return raw

    def send(self, text: str) -> None:
        self.writer.write(text.encode())

    async def expect(self, pattern: str, timeout: float = 10) -> str:
        """Read until ``pattern`` (a regex) matches; return and consume the text up to it."""
        async def read() -> str:
            while True:
                found = re.search(pattern, self.buffer, re.S)
                if found:
                    text = self.buffer[:found.end()]
                    self.buffer = self.buffer[found.end():]
                    return text
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError(f"stream ended before {pattern!r}: {self.buffer!r}")
                self.buffer += data.decode()
        return await asyncio.wait_for(read(), timeout)

    async def bind(self, resource: str) -> None:
        self.send(f"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  f"<resource>{resource}</resource></bind></iq>")
        await self.expect("</iq>")

    async def enable(self) -> str:
        self.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        enabled = await self.expect("<enabled[^>]*>")
        found = re.search(r"id=['\"]([^'\"]+)", enabled)
        assert found, enabled
        return found.group(1)

    def kill(self) -> None:
        """Drop the TCP connection: no stream close, no TLS close_notify."""
        transport = self.writer.transport
        transport.abort()

    async def close(self) -> None:
        self.send("</stream:stream>")
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


def bodies(text: str) -> list[str]:
    return re.findall(r"<body>([^<]*)</body>", text)


async def read_bodies(raw: Raw, count: int, timeout: float = 10) -> list[str]:
    """Read until ``count`` message bodies (at least) arrived; acks every <r/>."""
    found: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(found) < count:
        text = await raw.expect(r"</message>|<r [^>]*/>|<r/>",
                                timeout=max(0.1, deadline - loop.time()))
        found += bodies(text)
    return found


def test_enable_and_ack_counting(users: ServerHarness) -> None:
    async def main() -> None:
        romeo = await login("romeo@localhost/sm", PASSWORD, users.port(),
                            plugins=("xep_0198",))
        sm = romeo.plugin["xep_0198"]
        await until(lambda: sm.enabled_in and sm.sm_id is not None, "sm enabled")
        juliet = await login("juliet@localhost/j", PASSWORD, users.port())
        await available(romeo)
        for i in range(7):
            juliet.send_message(mto="romeo@localhost/sm", mbody=f"m{i}")
        for _ in range(7):
            await asyncio.wait_for(romeo.messages.get(), 10)
        # The server acknowledges what romeo sent (presence, plus slixmpp's window acks).
        sm.request_ack()
        await until(lambda: sm.last_ack == sm.seq, "the server's ack matches what we sent")
        assert sm.seq >= 1
        # And the server kept what it sent until romeo acknowledged it.
        session = next(iter(users.server.hosts["localhost"].user_sessions("romeo").values()))
        state = session.data["smacks"]
        await until(lambda: len(state.queue) <= 1, "romeo's acks emptied the server queue")
        await logout(romeo, juliet)
    run(main())


def test_enable_before_authentication_fails(users: ServerHarness) -> None:
    async def main() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", users.port())
        raw = Raw(reader, writer)
        raw.send(HEADER)
        await raw.expect("</stream:features>")
        raw.send(f"<enable xmlns='{NS_SM}'/>")
        failed = await raw.expect("</failed>")
        assert "unexpected-request" in failed
        writer.close()
    run(main())


def test_ack_beyond_what_was_sent_is_a_stream_error(users: ServerHarness) -> None:
    async def main() -> None:
        raw = await Raw.login("romeo", users.port())
        await raw.bind("x")
        await raw.enable()
        raw.send(f"<a xmlns='{NS_SM}' h='5'/>")
        error = await raw.expect("</stream:stream>")
        assert "undefined-condition" in error and "handled-count-too-high" in error
        raw.writer.close()
    run(main())


def test_h_wraps_at_2_32(users: ServerHarness) -> None:
    async def main() -> None:
        raw = await Raw.login("romeo", users.port())
        await raw.bind("wrap")
        await raw.enable()
        session = users.server.hosts["localhost"].user_sessions("romeo")["wrap"]
        state = session.data["smacks"]
        state.in_base = session.stanzas_in + 2  # as if 2^32 - 2 stanzas had been handled
        for i in range(3):
            raw.send(f"<iq type='get' id='p{i}' to='localhost'>"
                     "<ping xmlns='urn:xmpp:ping'/></iq>")
        raw.send(f"<r xmlns='{NS_SM}'/>")
        ack = await raw.expect(r"<a [^>]*/>")
        assert re.search(r"h=['\"]1['\"]", ack), ack
        # Outbound: the client's h wraps too.
        state.acked = 2**32 - 1
        state.queue.clear()
        raw.send(f"<a xmlns='{NS_SM}' h='{2**32 - 1}'/>")
        await raw.close()
    run(main())


async def _kill_with_messages_in_flight(srv: ServerHarness) -> str:
    """romeo enables resumption, his connection dies, juliet sends 20 messages."""
    romeo = await Raw.login("romeo", srv.port())
    await romeo.bind("phone")
    previd = await romeo.enable()
    romeo.send("<presence/>")
    await romeo.expect("</presence>|<presence[^>]*/>")
    romeo.kill()
    host = srv.server.hosts["localhost"]
    await until(lambda: host.user_sessions("romeo")["phone"].detached, "hibernation")
    juliet = await login("juliet@localhost/j", PASSWORD, srv.port())
    for i in range(20):
        juliet.send_message(mto="romeo@localhost", mbody=f"msg{i}", mtype="chat")
    session = host.user_sessions("romeo")["phone"]
    await until(lambda: len(session.data["smacks"].queue) >= 20, "20 messages queued")
    await logout(juliet)
    return previd


def test_killed_connection_then_resumed_gets_all_20_once(users: ServerHarness) -> None:
    async def main() -> None:
        previd = await _kill_with_messages_in_flight(users)
        romeo = await Raw.login("romeo", users.port())
        romeo.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        resumed = await romeo.expect(r"<resumed[^>]*/>")
        assert previd in resumed
        got = await read_bodies(romeo, 20)
        # Nothing more arrives: ack everything, wait a moment, check again.
        romeo.send(f"<a xmlns='{NS_SM}' h='{len(got) + 1}'/>")
        romeo.send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        tail = await romeo.expect("id=['\"]end['\"]")
        got += bodies(tail)
        assert sorted(got) == sorted(f"msg{i}" for i in range(20))
        assert len(got) == 20
        await romeo.close()
    run(main())


def test_not_resumed_in_time_goes_to_offline_once(users: ServerHarness) -> None:
    async def main() -> None:
        clock = Clock()
        users.server.clock = clock
        await _kill_with_messages_in_flight(users)
        host = users.server.hosts["localhost"]
        clock.offset = 59  # smacks_hibernation_time = 60: not yet
        await sweep(users)
        assert host.user_sessions("romeo")["phone"].detached
        clock.offset = 61
        await sweep(users)
        assert "phone" not in host.user_sessions("romeo")
        offline = users.server.storage.open("localhost", "offline", "archive")

        async def stored() -> bool:
            return await users.acall(offline.count("romeo", ArchiveQuery())) == 20
        await until(stored, "the offline writes (detached)")
        romeo = await login("romeo@localhost/laptop", PASSWORD, users.port())
        await available(romeo)
        got = []
        while len(got) < 20:
            msg = await asyncio.wait_for(romeo.messages.get(), 10)
            got.append(msg["body"])
        await asyncio.sleep(0.5)
        assert romeo.messages.empty()
        assert sorted(got) == sorted(f"msg{i}" for i in range(20))
        await logout(romeo)
    run(main())


def test_what_csi_held_is_resent_on_resumption(make_server) -> None:  # noqa: ANN001
    """romeo is inactive (XEP-0352) and juliet's chat state is held back when his
    connection dies: it goes into the stream management queue, and the resumption
    delivers it."""
    srv: ServerHarness = make_server(subdir="csi", host_extra=(
        "modules_enabled = ['csi_simple']\nsmacks_hibernation_time = 60\n"))
    for name in ("romeo", "juliet"):
        srv.create_user(name, PASSWORD)

    async def main() -> None:
        host = srv.server.hosts["localhost"]
        romeo = await Raw.login("romeo", srv.port())
        await romeo.bind("phone")
        previd = await romeo.enable()
        romeo.send("<inactive xmlns='urn:xmpp:csi:0'/>")
        session = host.user_sessions("romeo")["phone"]
        await until(lambda: "csi_simple" in session.data, "romeo to be inactive")
        juliet = await Raw.login("juliet", srv.port())
        await juliet.bind("j")
        juliet.send("<message to='romeo@localhost/phone' type='chat'><composing "
                    "xmlns='http://jabber.org/protocol/chatstates'/></message>")
        await until(lambda: session.data["csi_simple"].count == 1, "the chat state held")
        romeo.kill()
        await until(lambda: session.detached, "hibernation")
        again = await Raw.login("romeo", srv.port())
        again.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        await again.expect(r"<resumed[^>]*/>")
        await again.expect("composing", timeout=5)
        await again.close()
        await juliet.close()
    run(main())


def test_unknown_id_fails_and_bind_still_works(users: ServerHarness) -> None:
    async def main() -> None:
        romeo = await Raw.login("romeo", users.port())
        romeo.send(f"<resume xmlns='{NS_SM}' previd='nope' h='0'/>")
        failed = await romeo.expect("</failed>")
        assert "item-not-found" in failed
        await romeo.bind("after")
        assert "after" in users.server.hosts["localhost"].user_sessions("romeo")
        await romeo.close()
    run(main())


def test_another_account_cannot_resume(users: ServerHarness) -> None:
    async def main() -> None:
        romeo = await Raw.login("romeo", users.port())
        await romeo.bind("phone")
        previd = await romeo.enable()
        romeo.kill()
        host = users.server.hosts["localhost"]
        await until(lambda: host.user_sessions("romeo")["phone"].detached, "hibernation")
        tybalt = await Raw.login("tybalt", users.port())
        tybalt.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        failed = await tybalt.expect("</failed>")
        assert "item-not-found" in failed
        assert host.user_sessions("romeo")["phone"].detached
        await tybalt.close()
    run(main())


def test_queue_bound_closes_and_loses_nothing(make_server) -> None:  # noqa: ANN001
    srv: ServerHarness = make_server(subdir="bound", host_extra="smacks_max_queue_size = 5\n")
    for name in ("romeo", "juliet"):
        srv.create_user(name, PASSWORD)

    async def main() -> None:
        romeo = await Raw.login("romeo", srv.port())
        await romeo.bind("slow")
        await romeo.enable()  # and never acks
        juliet = await login("juliet@localhost/j", PASSWORD, srv.port())
        for i in range(8):
            juliet.send_message(mto="romeo@localhost/slow", mbody=f"b{i}", mtype="chat")
        error = await romeo.expect("</stream:stream>")
        assert "policy-violation" in error
        host = srv.server.hosts["localhost"]
        await until(lambda: not host.user_sessions("romeo"), "the session to end")
        await asyncio.sleep(0.5)
        again = await login("romeo@localhost/fresh", PASSWORD, srv.port())
        await available(again)
        got = []
        while len(got) < 8:
            got.append((await asyncio.wait_for(again.messages.get(), 10))["body"])
        await asyncio.sleep(0.3)
        assert again.messages.empty()
        assert sorted(got) == sorted(f"b{i}" for i in range(8))
        await logout(juliet, again)
    run(main())


DELAY = re.compile(r"<delay [^>]*xmlns=['\"]urn:xmpp:delay['\"][^>]*/>|"
                   r"<delay xmlns=['\"]urn:xmpp:delay['\"][^>]*/>")


def delays(message: str) -> list[tuple[str, str]]:
    """(from, stamp) of every XEP-0203 delay in one serialised stanza."""
    out = []
    for tag in DELAY.findall(message):
        found_from = re.search(r"from=['\"]([^'\"]*)", tag)
        found_stamp = re.search(r"stamp=['\"]([^'\"]*)", tag)
        out.append((found_from.group(1) if found_from else "",
                    found_stamp.group(1) if found_stamp else ""))
    return out


def epoch(stamp: str) -> float:
    import calendar
    base, _, frac = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{frac or 0}")


async def read_messages(raw: Raw, count: int) -> list[str]:
    """The next ``count`` serialised <message/> stanzas."""
    found: list[str] = []
    while len(found) < count:
        text = await raw.expect(r"<message.*?</message>")
        found.append(text[text.rindex("<message"):])
    return found


def test_resent_stanzas_carry_one_delay_with_the_queueing_time(users: ServerHarness) -> None:
    """XEP-0198 §4: what is delivered again is stamped (XEP-0203) with the time it was
    first queued, by this server, once, however often it is resent."""
    async def main() -> None:
        clock = Clock()
        users.server.clock = clock
        queued_at = time.time()
        previd = await _kill_with_messages_in_flight(users)
        clock.offset = 30  # resumed "30 s later": the stamps still say when they came
        first = await Raw.login("romeo", users.port())
        first.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        await first.expect(r"<resumed[^>]*/>")
        messages = await read_messages(first, 20)
        stamps = []
        for msg in messages:
            [(by, stamp)] = delays(msg)
            assert by == "localhost"
            stamps.append(epoch(stamp))
        assert all(queued_at - 1 <= s <= queued_at + 20 for s in stamps), stamps
        assert stamps == sorted(stamps)
        # Lost again before acking anything: the second resend has the same single delay.
        first.kill()
        host = users.server.hosts["localhost"]
        await until(lambda: host.user_sessions("romeo")["phone"].detached, "hibernation")
        second = await Raw.login("romeo", users.port())
        second.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        await second.expect(r"<resumed[^>]*/>")
        again = await read_messages(second, 20)
        assert [delays(m) for m in again] == [delays(m) for m in messages]
        await second.close()
    run(main())


def test_expired_hibernation_archives_once_and_stores_offline_with_the_queueing_time(
        make_server) -> None:  # noqa: ANN001
    """Not resumed in time, with an archive: all 20 are in the archive once (archived
    when they arrived, not again when routed to offline storage) and in offline storage
    once, each delivered at the next login with one delay from this server, stamped
    when it was first queued rather than when the hibernation ended."""
    srv: ServerHarness = make_server(subdir="smmam", host_extra=(
        "modules_enabled = ['smacks', 'mam']\nsmacks_hibernation_time = 60\n"))
    for name in ("romeo", "juliet"):
        srv.create_user(name, PASSWORD)

    async def main() -> None:
        clock = Clock()
        srv.server.clock = clock
        queued_at = time.time()
        await _kill_with_messages_in_flight(srv)
        host = srv.server.hosts["localhost"]
        clock.offset = 3600
        await sweep(srv)
        assert "phone" not in host.user_sessions("romeo")
        offline = srv.server.storage.open("localhost", "offline", "archive")
        archive = srv.server.storage.open("localhost", "archive", "archive")

        async def stored() -> bool:
            return await srv.acall(offline.count("romeo", ArchiveQuery())) == 20
        await until(stored, "the offline writes (detached)")
        items = await srv.acall(archive.find("romeo", ArchiveQuery()))
        archived = sorted(i.value.child_text("body") or "" for i in items)
        assert archived == sorted(f"msg{i}" for i in range(20))  # once each
        romeo = await Raw.login("romeo", srv.port())
        await romeo.bind("laptop")
        romeo.send("<presence/>")
        messages = await read_messages(romeo, 20)
        assert sorted(bodies("".join(messages))) == sorted(f"msg{i}" for i in range(20))
        for msg in messages:
            [(by, stamp)] = delays(msg)
            assert by == "localhost" and queued_at - 1 <= epoch(stamp) <= queued_at + 20
        romeo.send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        tail = await romeo.expect("id=['\"]end['\"]")
        assert bodies(tail) == []
        await romeo.close()
    run(main())


def test_shutdown_stores_what_hibernated_sessions_did_not_acknowledge(
        make_server) -> None:  # noqa: ANN001
    """A server stopped while a session hibernates routes its 20 unacknowledged messages
    to offline storage before the storage closes: after a restart they are all there."""
    srv: ServerHarness = make_server(subdir="stop", host_extra=(
        "modules_enabled = ['smacks']\nsmacks_hibernation_time = 60\n"))
    for name in ("romeo", "juliet"):
        srv.create_user(name, PASSWORD)

    async def fill() -> None:
        await _kill_with_messages_in_flight(srv)
    run(fill())
    srv.stop()
    again: ServerHarness = make_server(subdir="stop", host_extra=(
        "modules_enabled = ['smacks']\nsmacks_hibernation_time = 60\n"))
    offline = again.server.storage.open("localhost", "offline", "archive")
    items = again.call(offline.find("romeo", ArchiveQuery()))
    assert sorted(i.value.child_text("body") or "" for i in items) == sorted(
        f"msg{i}" for i in range(20))
