"""BOSH (XEP-0124, XEP-0206) against a real server: a raw BOSH client logging in with
SCRAM and talking to a slixmpp client on TCP, long polling, stream management across
BOSH sessions, and every error path of the binding (rids, sids, hosts, sizes, pauses,
inactivity, termination from either side)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
import pytest
from boshclient import NS_SASL, BoshClient, body_xml
from harness import ServerHarness
from helpers import run, until
from xmpp import available, login, logout

from tercet.protocol.bosh import NS_HTTPBIND
from tercet.protocol.xmlstream import NS_STREAM, parse_fragment

PASSWORD = "s3cret"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_SM = "urn:xmpp:sm:3"
HTTP = """
http_ports = [0]
https_ports = [0]
http_interfaces = ["127.0.0.1"]
https_interfaces = ["127.0.0.1"]
{more}
"""
PLAIN_OK = "c2s_require_encryption = false\nallow_unencrypted_plain_auth = true"
MODULES = 'modules_enabled = ["bosh", "http_altconnect", "smacks", "csi_simple", "carbons"]'


def start(make_server: Any, more: str = "", secure: bool = True,
          subdir: str = "srv") -> ServerHarness:
    settings = (PLAIN_OK + "\n" if secure else "") + more
    server: ServerHarness = make_server(extra=HTTP.format(more=settings),
                                        host_extra=MODULES, subdir=subdir)
    server.create_user("romeo", PASSWORD)
    server.create_user("juliet", PASSWORD)
    return server


def bosh_url(server: ServerHarness, tls: bool = False, path: str = "/http-bind") -> str:
    assert server.server is not None
    port = server.server.net.bound()["http/tls" if tls else "http"][0][1]
    return f"{'https' if tls else 'http'}://localhost:{port}{path}"


def client(server: ServerHarness, **kw: Any) -> BoshClient:
    return BoshClient.new(bosh_url(server), **kw)


def mechanisms(features: Any) -> list[str]:
    mechs = features.find("mechanisms", NS_SASL)
    return [] if mechs is None else [m.text for m in mechs.find_all("mechanism")]


def sessions(server: ServerHarness, user: str = "romeo") -> list[Any]:
    assert server.server is not None
    host = server.server.hosts["localhost"]
    return [s for s in host.all_sessions() if s.username == user]


def session_of(server: ServerHarness, sid: str | None) -> Any:
    """The server's BOSH session ``sid`` (white-box, so that tests need not guess when
    a request has arrived), or None."""
    assert server.server is not None and sid is not None
    for route in server.server.http_routes.routes():
        bosh = getattr(route.handler, "__self__", None)
        if route.module == "bosh" and bosh is not None and sid in bosh.sessions:
            return bosh.sessions[sid]
    return None


def held(server: ServerHarness, sid: str | None) -> int:
    """How many requests of session ``sid`` the server holds."""
    session = session_of(server, sid)
    return 0 if session is None else len(session._held)


def test_scram_login_and_messages_with_a_tcp_client(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        created = await bosh.create()
        assert created.status == 200
        assert created.content_type == "text/xml; charset=utf-8"  # XEP-0124 §7.1
        body = created.body
        attrs = body.attrs
        assert (body.name, body.xmlns) == ("body", NS_HTTPBIND)
        assert len(attrs["sid"]) >= 32
        assert (attrs["wait"], attrs["hold"], attrs["requests"]) == ("30", "1", "2")
        assert (attrs["inactivity"], attrs["polling"], attrs["maxpause"]) == ("60", "5", "120")
        assert attrs["ver"] == "1.6" and attrs["from"] == "localhost"
        assert attrs["{urn:xmpp:xbosh}restartlogic"] == "true"  # XEP-0206 §4
        assert attrs["{urn:xmpp:xbosh}version"] == "1.0"
        assert attrs.get("authid")
        features = body.find("features", NS_STREAM)
        assert features is not None
        assert {"PLAIN", "SCRAM-SHA-1"} <= set(mechanisms(features))
        await bosh.authenticate("romeo", PASSWORD, "SCRAM-SHA-256")
        features = await bosh.restart()
        jid = await bosh.bind("web")
        assert jid == "romeo@localhost/web"

        juliet = await login("juliet@localhost/balcony", PASSWORD, server.port())
        await bosh.send("<presence xmlns='jabber:client'/>")
        await available(juliet)
        juliet.send_message(mto=jid, mbody="wherefore", mtype="chat")
        got = await bosh.recv_named("message")
        assert got.xmlns == "jabber:client"
        assert got.attrs["from"] == "juliet@localhost/balcony"
        assert got.child_text("body") == "wherefore"
        # COMPAT (XEP-0206 §2): a stanza in the wrapper's namespace means jabber:client.
        await bosh.send("<message to='juliet@localhost/balcony' type='chat'>"
                        "<body>art thou</body></message>")
        reply = await asyncio.wait_for(juliet.messages.get(), 10)
        assert reply["body"] == "art thou" and str(reply["from"]) == jid
        await logout(juliet)
        await bosh.close()
    run(main())


def test_negotiation_within_the_servers_bounds(make_server: Any) -> None:
    """XEP-0124 §7.2: wait and hold at most the client's and the server's; requests
    above hold; the client's 'content' is the responses' Content-Type."""
    server = start(make_server, more="bosh_max_wait = 20\nbosh_max_requests = 3")

    async def main() -> None:
        bosh = client(server)
        attrs = (await bosh.create(wait="600", hold="5")).body.attrs
        assert (attrs["wait"], attrs["hold"], attrs["requests"]) == ("20", "1", "3")
        assert attrs["ver"] == "1.6"
        await bosh.close()
        bosh = client(server)
        answer = await bosh.create(wait="10", hold="1", ver="2.3", content="text/plain")
        assert answer.content_type == "text/plain"
        assert (answer.body.attrs["wait"], answer.body.attrs["ver"]) == ("10", "1.11")
        await bosh.close()
    run(main())


def test_a_held_request_is_answered_when_a_stanza_arrives(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        jid = await bosh.login("romeo", PASSWORD)
        juliet = await login("juliet@localhost/balcony", PASSWORD, server.port())
        poll = asyncio.ensure_future(bosh.exchange())  # held: nothing to say yet
        await until(lambda: held(server, bosh.sid) == 1, "the request held")
        assert not poll.done()
        juliet.send_message(mto=jid, mbody="hark", mtype="chat")
        answer = await poll
        assert [p.child_text("body") for p in answer.payloads] == ["hark"]
        await logout(juliet)
        await bosh.close()
    run(main())


def test_an_empty_body_after_wait(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        await bosh.login("romeo", PASSWORD, wait="1")
        answer = await bosh.exchange()
        assert answer.status == 200 and answer.payloads == []
        assert answer.body.attrs.get("type") is None  # still in session
        await bosh.close()
    run(main())


def test_a_newer_request_releases_the_held_one(make_server: Any) -> None:
    """XEP-0124 §8: with hold=1 a second request answers the first at once."""
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        await bosh.login("romeo", PASSWORD)
        first = asyncio.ensure_future(bosh.exchange())
        await until(lambda: held(server, bosh.sid) == 1, "the request held")
        second = asyncio.ensure_future(bosh.exchange(
            "<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"))
        assert (await first).payloads == []
        answer = await second
        assert [p.attrs.get("id") for p in answer.payloads] == ["p1"]
        await bosh.close()
    run(main())


def test_requests_are_processed_in_rid_order(make_server: Any) -> None:
    """XEP-0124 §14.2: a request that overtakes the one before it waits for it."""
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        await bosh.login("romeo", PASSWORD)
        ping = ("<iq xmlns='jabber:client' type='get' id='{}'>"
                "<ping xmlns='urn:xmpp:ping'/></iq>")
        first = bosh.next_body(ping.format("p1"))
        second = asyncio.ensure_future(bosh.post(bosh.next_body(ping.format("p2"))))
        await until(lambda: len(session_of(server, bosh.sid)._pending) == 1, "the gap")
        answers = [await bosh.post(first), await second]
        ids = [p.attrs.get("id") for a in answers for p in a.payloads]
        assert ids == ["p1", "p2"]
        await bosh.close()
    run(main())


def test_repeated_rid_gets_the_identical_response(make_server: Any) -> None:
    """XEP-0124 §14.3: a client that lost a response sends the request again."""
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        await bosh.login("romeo", PASSWORD)
        data = bosh.next_body("<iq xmlns='jabber:client' type='get' id='p1'>"
                              "<ping xmlns='urn:xmpp:ping'/></iq>")
        first = await bosh.post(data)
        assert [p.attrs.get("id") for p in first.payloads] == ["p1"]
        again = await bosh.post(data)
        assert again.raw == first.raw
        # The session goes on: the ping was processed once.
        data = bosh.next_body("<iq xmlns='jabber:client' type='get' id='p2'>"
                              "<ping xmlns='urn:xmpp:ping'/></iq>")
        assert [p.attrs.get("id") for p in (await bosh.post(data)).payloads] == ["p2"]
        await bosh.close()
    run(main())


def test_repeated_rid_of_a_held_request(make_server: Any) -> None:
    """XEP-0124 §14.3: the older copy gets a recoverable error, the newer the answer."""
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        jid = await bosh.login("romeo", PASSWORD)
        data = bosh.next_body()
        first = asyncio.ensure_future(bosh.post(data))
        await until(lambda: held(server, bosh.sid) == 1, "the request held")
        second = asyncio.ensure_future(bosh.post(data))
        # Whichever copy came first gets the error, as soon as the other arrives.
        done, _ = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
        (early,) = done
        assert early.result().body.attrs.get("type") == "error"
        late = second if early is first else first
        juliet = await login("juliet@localhost/balcony", PASSWORD, server.port())
        juliet.send_message(mto=jid, mbody="again", mtype="chat")
        assert [p.child_text("body") for p in (await late).payloads] == ["again"]
        await logout(juliet)
        await bosh.close()
    run(main())


def test_rid_outside_the_window_ends_the_session(make_server: Any) -> None:
    """XEP-0124 §14.2: a rid beyond the window is item-not-found, and the session is
    gone; so is a rid too old to be retransmitted (§14.3)."""
    server = start(make_server)

    async def main() -> None:
        for rid_offset in (3, -5):
            bosh = client(server)
            await bosh.login("romeo", PASSWORD)
            answer = await bosh.post(bosh.next_body(at_rid=bosh.rid + rid_offset))
            assert answer.body.attrs == {"type": "terminate", "condition": "item-not-found"}
            after = await bosh.exchange()
            assert after.body.attrs.get("condition") == "item-not-found"
            await bosh.close()
            await until(lambda: not sessions(server), "the session ended")
    run(main())


def test_unknown_sid_and_bad_requests(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        answer = await bosh.post(body_xml(rid="1234567", sid="no-such-session"))
        assert answer.body.attrs == {"type": "terminate", "condition": "item-not-found"}
        for bad in (body_xml(to="localhost"),  # no rid
                    body_xml(rid="12x", to="localhost"),
                    body_xml(rid="99999999999999999999", to="localhost"),
                    "<body xmlns='urn:other' rid='5' to='localhost'/>",
                    f"<body xmlns='{NS_HTTPBIND}' rid='5' to='localhost'>text</body>",
                    f"<body xmlns='{NS_HTTPBIND}' rid='5'",
                    f"<!DOCTYPE x><body xmlns='{NS_HTTPBIND}' rid='5' to='localhost'/>",
                    body_xml(rid="5", to="localhost", wait="-1", ver="1.6")):
            answer = await bosh.post(bad)
            assert answer.status == 200
            assert answer.body.attrs == {"type": "terminate", "condition": "bad-request"}, bad
        # XEP-0124 §17.1: a legacy client (no 'ver') gets the HTTP error instead.
        answer = await bosh.post(body_xml(rid="5", to="localhost", wait="x"))
        assert answer.status == 400
        await bosh.close()
    run(main())


def test_host_unknown_and_improper_addressing(make_server: Any) -> None:
    server = start(make_server, more='[virtualhosts."other.test"]')

    async def main() -> None:
        for to, condition in (("nowhere.example", "host-unknown"),
                              ("other.test", "host-unknown"),  # bosh not enabled there
                              ("", "improper-addressing")):
            bosh = client(server)
            answer = await bosh.post(body_xml(rid="100", to=to, wait="5", ver="1.6"))
            assert answer.body.attrs == {"type": "terminate", "condition": condition}
            await bosh.close()
    run(main())


def test_oversized_bodies(make_server: Any) -> None:
    """A stanza over c2s_stanza_size_limit is the stream's policy-violation, carried as
    remote-stream-error (XEP-0206 §6); a body over twice the limit is refused (413)."""
    server = start(make_server, more="c2s_stanza_size_limit = 10000")

    async def main() -> None:
        bosh = client(server)
        await bosh.login("romeo", PASSWORD)
        big = f"<message xmlns='jabber:client'><body>{'x' * 10000}</body></message>"
        answer = await bosh.exchange(big)
        body = answer.body
        assert body.attrs["type"] == "terminate"
        assert body.attrs["condition"] == "remote-stream-error"
        error = body.find("error", NS_STREAM)
        assert error is not None and error.find("policy-violation", NS_STREAMS) is not None
        await bosh.close()
        bosh = client(server)
        await bosh.create()
        answer = await bosh.post(bosh.next_body("<presence/>" * 3000))
        assert answer.status == 413
        await bosh.close()
    run(main())


def test_stream_errors_are_remote_stream_errors(make_server: Any) -> None:
    """XEP-0206 §6: stanzas first, then the <stream:error/>, in a terminate body."""
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        await bosh.login("romeo", PASSWORD)
        answer = await bosh.exchange("<message xmlns='jabber:client' from='juliet@localhost'"
                                     " to='romeo@localhost'><body>x</body></message>")
        body = answer.body
        assert (body.attrs["type"], body.attrs["condition"]) == (
            "terminate", "remote-stream-error")
        error = body.find("error", NS_STREAM)
        assert error is not None and error.find("invalid-from", NS_STREAMS) is not None
        assert (await bosh.exchange()).body.attrs.get("condition") == "item-not-found"
        await bosh.close()
    run(main())


def test_terminate_from_the_client(make_server: Any) -> None:
    """XEP-0124 §13: payloads are delivered, then the session ends."""
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        jid = await bosh.login("romeo", PASSWORD)
        juliet = await login("juliet@localhost/balcony", PASSWORD, server.port())
        await available(juliet)
        answer = await bosh.exchange(
            "<message xmlns='jabber:client' to='juliet@localhost/balcony' type='chat'>"
            "<body>adieu</body></message>", type="terminate")
        assert answer.body.attrs.get("type") == "terminate"
        assert "condition" not in answer.body.attrs
        got = await asyncio.wait_for(juliet.messages.get(), 10)
        assert got["body"] == "adieu" and str(got["from"]) == jid
        await until(lambda: not sessions(server), "the session ended")
        after = await bosh.exchange()
        assert after.body.attrs.get("condition") == "item-not-found"
        await logout(juliet)
        await bosh.close()
    run(main())


def test_inactivity_ends_the_session(make_server: Any) -> None:
    """XEP-0124 §10: no request for 'inactivity' seconds: the client is gone."""
    server = start(make_server, more="bosh_max_inactivity = 1")

    async def main() -> None:
        bosh = client(server)
        await bosh.login("romeo", PASSWORD)
        assert bosh.created is not None and bosh.created.attrs["inactivity"] == "1"
        await until(lambda: not sessions(server), "the session ended")
        answer = await bosh.exchange()
        assert answer.body.attrs == {"type": "terminate", "condition": "item-not-found"}
        await bosh.close()
    run(main())


def test_pause(make_server: Any) -> None:
    """XEP-0124 §10: a pause answers every held request, its own answer empty, and the
    session may then be silent for the pause instead of 'inactivity'."""
    server = start(make_server, more="bosh_max_pause = 30")

    async def main() -> None:
        bosh = client(server)
        jid = await bosh.login("romeo", PASSWORD)
        assert bosh.created is not None and bosh.created.attrs["maxpause"] == "30"
        poll = asyncio.ensure_future(bosh.exchange())
        await until(lambda: held(server, bosh.sid) == 1, "the request held")
        paused = await bosh.exchange(pause="1")
        assert paused.payloads == [] and paused.body.attrs.get("type") is None
        assert (await poll).body.attrs.get("type") is None
        # A pause shorter than 'inactivity' is allowed too (§10): the session lasts it.
        await until(lambda: not sessions(server), "the paused session ended")
        assert jid
        await bosh.close()
    run(main())


def test_a_pause_outlasts_inactivity(make_server: Any) -> None:
    server = start(make_server, more="bosh_max_inactivity = 1\nbosh_max_pause = 60")

    async def main() -> None:
        bosh = client(server)
        await bosh.login("romeo", PASSWORD)
        paused = await bosh.exchange(pause="60")
        assert paused.body.attrs.get("type") is None
        await asyncio.sleep(2)  # twice 'inactivity': the pause keeps the session
        assert sessions(server)
        data = bosh.next_body("<iq xmlns='jabber:client' type='get' id='back'>"
                              "<ping xmlns='urn:xmpp:ping'/></iq>")
        answer = await bosh.post(data)
        assert [p.attrs.get("id") for p in answer.payloads] == ["back"]
        # Back to normal after the pause (§10): the session ends after 'inactivity'.
        await until(lambda: not sessions(server), "the session ended")
        await bosh.close()
    run(main())


def test_polling_too_often(make_server: Any) -> None:
    """XEP-0124 §12: a polling session (hold 0) may not poll faster than 'polling'."""
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        await bosh.create(hold="0")
        assert bosh.created is not None and bosh.created.attrs["hold"] == "0"
        # The creation response had nothing (hold 0: no waiting for the features).
        assert (await bosh.exchange()).body.find("features", NS_STREAM) is not None
        empty = await bosh.exchange()
        assert empty.body.attrs.get("type") is None and empty.payloads == []
        # An empty poll right after an empty answer is too soon.
        again = await bosh.exchange()
        assert again.body.attrs == {"type": "terminate", "condition": "policy-violation"}
        await bosh.close()
    run(main())


def test_acks(make_server: Any) -> None:
    """XEP-0124 §9: a client asking for acks gets them, and its own acks free the
    retransmission buffer."""
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        first = bosh.rid + 1
        await bosh.login("romeo", PASSWORD, ack="1")
        assert bosh.created is not None and bosh.created.attrs["ack"] == str(first)
        # §9.1: answering an older request, the server says which rid it has up to.
        poll = asyncio.ensure_future(bosh.exchange())
        await until(lambda: held(server, bosh.sid) == 1, "the request held")
        newer = asyncio.ensure_future(bosh.exchange())
        assert (await poll).body.attrs.get("ack") == str(bosh.rid)
        newer.cancel()
        # §9.2: what the client acknowledges is not kept for retransmission any more.
        ping = bosh.next_body("<iq xmlns='jabber:client' type='get' id='p'>"
                              "<ping xmlns='urn:xmpp:ping'/></iq>")
        answered = await bosh.post(ping)
        assert [p.attrs.get("id") for p in answered.payloads] == ["p"]
        assert (await bosh.post(ping)).raw == answered.raw
        pinged = bosh.rid
        await bosh.exchange("<iq xmlns='jabber:client' type='get' id='q'>"
                            "<ping xmlns='urn:xmpp:ping'/></iq>", ack=str(pinged))
        gone = await bosh.post(ping)
        assert gone.body.attrs == {"type": "terminate", "condition": "item-not-found"}
        await bosh.close()
    run(main())


def test_stream_management_resumes_on_a_new_bosh_session(make_server: Any) -> None:
    """An inactive session hibernates like a dropped TCP connection (XEP-0198 §5)."""
    server = start(make_server, more="bosh_max_inactivity = 1")

    async def main() -> None:
        bosh = client(server)
        await bosh.login("romeo", PASSWORD)
        await bosh.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        enabled = await bosh.recv_named("enabled")
        assert enabled.attrs.get("resume") == "true"
        # The client vanishes; the server notices by inactivity and keeps the session.
        await until(lambda: all(s.detached for s in sessions(server)), "hibernation")
        assert sessions(server)
        again = client(server)
        await again.create()
        again.inbox.clear()
        await again.authenticate("romeo", PASSWORD)
        await again.restart(to=None)  # 'to' is a SHOULD on restarts (XEP-0206 §5)
        await again.send(f"<resume xmlns='{NS_SM}' previd='{enabled.attrs['id']}' h='0'/>")
        resumed = await again.recv_named("resumed")
        assert resumed.attrs.get("previd") == enabled.attrs["id"]
        await again.send("<iq xmlns='jabber:client' type='get' id='r2'>"
                         "<ping xmlns='urn:xmpp:ping'/></iq>")
        while (await again.recv_named("iq")).attrs.get("id") != "r2":
            pass
        assert len(sessions(server)) == 1
        await again.close()
        await bosh.close()
    run(main())


def test_encryption_and_mechanisms(make_server: Any) -> None:
    """As on TCP: plain HTTP offers nothing under c2s_require_encryption; HTTPS, a
    trusted proxy's X-Forwarded-Proto or consider_bosh_secure make the session secure."""
    plain = start(make_server, secure=False)
    considered = start(make_server, secure=False, more="consider_bosh_secure = true",
                       subdir="considered")
    ctx = ssl.create_default_context(cafile=str(plain.directory / "certs" / "localhost.crt"))

    async def features(bosh: BoshClient) -> list[str]:
        answer = await bosh.create()
        found = answer.body.find("features", NS_STREAM)
        await bosh.close()
        return mechanisms(found)

    async def main() -> None:
        assert await features(client(plain)) == []
        tls = BoshClient.new(bosh_url(plain, tls=True), ssl=ctx)
        mechs = await features(tls)
        assert "SCRAM-SHA-1" in mechs
        assert "SCRAM-SHA-1-PLUS" not in mechs  # no one TLS channel under a session
        assert "SCRAM-SHA-1" in await features(client(considered))
        proxied = client(plain)
        answer = await proxied.post(proxied.next_body(attrs={
            "to": "localhost", "wait": "5", "ver": "1.6", "xmpp_version": "1.0"}),
                                    headers={"X-Forwarded-Proto": "https"})
        assert "SCRAM-SHA-1" in mechanisms(answer.body.find("features", NS_STREAM))
        await proxied.close()
        # An HTTPS session's sid does not work over plain HTTP.
        tls = BoshClient.new(bosh_url(plain, tls=True), ssl=ctx)
        await tls.create()
        sneaky = client(plain)
        sneaky.sid, sneaky.rid = tls.sid, tls.rid
        assert (await sneaky.exchange()).body.attrs.get("condition") == "item-not-found"
        await sneaky.close()
        await tls.close()
    run(main())


def test_get_cors_and_host_meta(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        url = bosh_url(server)
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 200 and resp.content_type == "text/html"
                assert "BOSH" in await resp.text()
            async with http.options(url, headers={
                    "Origin": "https://chat.example",
                    "Access-Control-Request-Method": "POST"}) as resp:
                assert resp.status == 204
                assert resp.headers["Access-Control-Allow-Origin"] == "*"
                assert "POST" in resp.headers["Access-Control-Allow-Methods"]
            async with http.post(url, data=body_xml(rid="77", sid="x"),
                                 headers={"Origin": "https://chat.example"}) as resp:
                assert resp.headers["Access-Control-Allow-Origin"] == "*"
            meta = url.replace("/http-bind", "/.well-known/host-meta.json")
            async with http.get(meta) as resp:
                links = (await resp.json())["links"]
            assert {"rel": "urn:xmpp:alt-connections:xbosh", "href": url} in links
    run(main())


def test_shutdown_terminates_with_system_shutdown(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        await bosh.login("romeo", PASSWORD)
        poll = asyncio.ensure_future(bosh.exchange())
        await until(lambda: held(server, bosh.sid) == 1, "the request held")
        stopping = asyncio.ensure_future(asyncio.to_thread(server.stop))
        answer = await poll
        assert answer.body.attrs == {"type": "terminate", "condition": "system-shutdown"}
        await stopping
        await bosh.close()
    run(main())


def test_stanzas_in_the_bosh_namespace_and_parse_helpers() -> None:
    # A tiny check of the test client's own body writer.
    body = parse_fragment(body_xml("<presence/>", rid="5", xmpp_restart="true"))
    assert body.attrs["{urn:xmpp:xbosh}restart"] == "true"
    assert body.find("presence", NS_HTTPBIND) is not None


@pytest.mark.parametrize("hold", ["1", "2"])
def test_hold_two(make_server: Any, hold: str) -> None:
    """XEP-0124 §8: at most 'hold' requests wait; a newer one releases the oldest."""
    server = start(make_server, more="bosh_hold = 2\nbosh_max_requests = 3")

    async def main() -> None:
        bosh = client(server)
        answer = await bosh.create(hold=hold)
        assert answer.body.attrs["hold"] == hold
        bosh.inbox.clear()
        first = asyncio.ensure_future(bosh.exchange())
        second = asyncio.ensure_future(bosh.exchange())
        if hold == "1":
            assert (await first).payloads == []  # released by the second
        else:
            await until(lambda: held(server, bosh.sid) == 2, "both requests held")
            assert not first.done()
        third = asyncio.ensure_future(bosh.exchange())
        if hold == "1":
            assert (await second).payloads == []
        else:
            assert (await first).payloads == []  # the oldest makes room
            await until(lambda: held(server, bosh.sid) == 2, "two requests held")
            assert not second.done()
        third.cancel()
        second.cancel()
        await bosh.close()
    run(main())


def test_the_queue_of_a_client_that_stops_asking_is_bounded(make_server: Any) -> None:
    """Elements wait for the next request only up to the stream's send buffer (8 MiB),
    as unread data on TCP does; beyond it the stream ends with policy-violation."""
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        jid = await bosh.login("romeo", PASSWORD)
        juliet = await login("juliet@localhost/balcony", PASSWORD, server.port())
        text = "x" * 100_000
        for _ in range(100):
            juliet.send_message(mto=jid, mbody=text, mtype="chat")
        await until(lambda: not sessions(server), "the session ended")
        answer = await bosh.exchange()
        body = answer.body
        assert body.attrs["condition"] == "remote-stream-error"
        error = body.find("error", NS_STREAM)
        assert error is not None and error.find("policy-violation", NS_STREAMS) is not None
        await logout(juliet)
        await bosh.close()
    run(main())


def test_unloading_the_module_terminates_its_sessions(make_server: Any) -> None:
    server = start(make_server)

    async def main() -> None:
        bosh = client(server)
        await bosh.login("romeo", PASSWORD)
        poll = asyncio.ensure_future(bosh.exchange())
        await until(lambda: held(server, bosh.sid) == 1, "the request held")
        assert server.server is not None
        await server.acall(server.server.modules.unload("bosh", "localhost"))
        answer = await poll
        assert answer.body.attrs == {"type": "terminate", "condition": "system-shutdown"}
        await until(lambda: not sessions(server), "the session ended")
        await bosh.close()
    run(main())
