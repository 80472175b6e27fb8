"""SASL2 (XEP-0388) and Bind2 (XEP-0386) end to end: a raw client over real TLS against a
real server on port 0 (slixmpp has neither), slixmpp for the other party."""

from __future__ import annotations

import asyncio
import base64

import pytest
from harness import ServerHarness
from helpers import run, until
from sasl2client import NS_BIND2, NS_SASL2, RawClient
from xmpp import available, login, logout

from tercet.protocol.sasl import client_mechanism
from tercet.protocol.stanza import Element

PASSWORD = "s3cret pass"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_CARBONS = "urn:xmpp:carbons:2"
MODULES = 'modules_enabled = ["sasl2", "bind2", "carbons"]'


@pytest.fixture
def users(make_server) -> ServerHarness:  # noqa: ANN001
    server: ServerHarness = make_server(host_extra=MODULES)
    server.create_user("romeo", PASSWORD)
    server.create_user("juliet", PASSWORD)
    return server


def ident(success: Element) -> str:
    return success.child_text("authorization-identifier", NS_SASL2) or ""


def test_features_list_the_same_mechanisms_and_inline_bind(users: ServerHarness) -> None:
    async def main() -> None:
        client = await RawClient().connect(users.port(direct_tls=True))
        legacy = client.features.find("mechanisms", NS_SASL)
        assert legacy is not None
        assert client.mechanisms() == [m.text for m in legacy.find_all("mechanism", NS_SASL)]
        assert "SCRAM-SHA-256-PLUS" in client.mechanisms()
        assert "PLAIN" in client.mechanisms()
        auth = client.features.find("authentication", NS_SASL2)
        assert auth is not None
        inline = auth.find("inline", NS_SASL2)
        assert inline is not None
        bind = inline.find("bind", NS_BIND2)
        assert bind is not None
        vars_ = [f.get("var") for f in (bind.find("inline", NS_BIND2) or bind).find_all(
            "feature", NS_BIND2)]
        assert NS_CARBONS in vars_
        await client.close()
    run(main())


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS",
                                  "PLAIN"])
def test_login_without_stream_restart(users: ServerHarness, mech: str) -> None:
    async def main() -> None:
        client = await RawClient().connect(users.port(direct_tls=True))
        success = await client.login(mech, "romeo", PASSWORD)
        assert success.name == "success", success
        assert ident(success) == "romeo@localhost"
        # No new stream header: the same stream goes on with a legacy bind.
        client.send(f"<iq type='set' id='b1'><bind xmlns='{NS_BIND}'>"
                    "<resource>raw</resource></bind></iq>")
        result = await client.next_named("iq")
        assert result.get("type") == "result"
        bind = result.find("bind", NS_BIND)
        assert bind is not None and bind.child_text("jid", NS_BIND) == "romeo@localhost/raw"
        await client.close()
    run(main())


def test_wrong_password_fails_and_is_counted(users: ServerHarness) -> None:
    async def main() -> None:
        client = await RawClient().connect(users.port(direct_tls=True))
        for attempt in range(3):  # sasl_max_failures defaults to 3
            failure = await client.login("SCRAM-SHA-256", "romeo", "wrong")
            assert failure.name == "failure" and failure.xmlns == NS_SASL2
            assert failure.find("not-authorized", NS_SASL) is not None, attempt
        error = await client.next()
        assert error.name == "error" and error.find_ns(
            "urn:ietf:params:xml:ns:xmpp-streams") is not None
        assert error.find_ns("urn:ietf:params:xml:ns:xmpp-streams").name == "policy-violation"
        await client.close()
    run(main())


def test_unknown_mechanism_fails(users: ServerHarness) -> None:
    async def main() -> None:
        client = await RawClient().connect(users.port(direct_tls=True))
        client.authenticate("X-NOPE", b"x")
        failure = await client.next()
        assert failure.name == "failure"
        assert failure.find("invalid-mechanism", NS_SASL) is not None
        # A failed attempt leaves the stream usable.
        success = await client.login("SCRAM-SHA-256", "romeo", PASSWORD)
        assert success.name == "success"
        await client.close()
    run(main())


def test_bind2_binds_enables_carbons_and_delivers(users: ServerHarness) -> None:
    async def main() -> None:
        client = await RawClient().connect(users.port(direct_tls=True))
        inner = (f"<bind xmlns='{NS_BIND2}'><tag>Raw Client</tag>"
                 f"<enable xmlns='{NS_CARBONS}'/></bind>")
        success = await client.login("SCRAM-SHA-256-PLUS", "romeo", PASSWORD, inner)
        assert success.name == "success", success
        assert success.find("bound", NS_BIND2) is not None
        jid = ident(success)
        assert jid.startswith("romeo@localhost/Raw Client.") and len(jid) > 28
        client.send("<presence/>")
        juliet = await login("juliet@localhost/balcony", PASSWORD, users.port())
        other = await login("romeo@localhost/other", PASSWORD, users.port())
        await available(juliet)
        juliet.send_message(mto=jid, mbody="to the raw client", mtype="chat")
        msg = await client.next_named("message")
        assert msg.child_text("body") == "to the raw client"
        assert msg.get("to") == jid
        # Inline carbons: what romeo's other resource sends comes back as a <sent/> copy.
        other.send_message(mto="juliet@localhost/balcony", mbody="from other", mtype="chat")
        carbon = await client.next_named("message")
        assert carbon.find("sent", NS_CARBONS) is not None
        await logout(juliet, other)
        await client.close()
    run(main())


def test_bind2_without_tag_gets_a_resource(users: ServerHarness) -> None:
    async def main() -> None:
        client = await RawClient().connect(users.port(direct_tls=True))
        success = await client.login("SCRAM-SHA-256", "romeo", PASSWORD,
                                     f"<bind xmlns='{NS_BIND2}'/>")
        assert success.find("bound", NS_BIND2) is not None
        jid = ident(success)
        assert jid.startswith("romeo@localhost/") and len(jid) > len("romeo@localhost/")
        client.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        pong = await asyncio.wait_for(client.next_named("iq"), 10)
        assert pong.get("id") == "p1"
        await client.close()
    run(main())



# -- Inline CSI, stream management and resumption (XEP-0352, XEP-0198) ---------------------

NS_CSI = "urn:xmpp:csi:0"
NS_SM = "urn:xmpp:sm:3"
QUIET = 1.0  # seconds to wait for something that must not come


@pytest.fixture
def mobile(make_server) -> ServerHarness:  # noqa: ANN001
    server: ServerHarness = make_server(host_extra=(
        'modules_enabled = ["sasl2", "bind2", "carbons", "csi_simple", "smacks"]\n'
        "smacks_hibernation_time = 60\n"))
    server.create_user("romeo", PASSWORD)
    server.create_user("juliet", PASSWORD)
    return server


def bind2_features(client: RawClient) -> list[str | None]:
    auth = client.features.find("authentication", NS_SASL2)
    inline = auth.find("inline", NS_SASL2) if auth is not None else None
    bind = inline.find("bind", NS_BIND2) if inline is not None else None
    features = bind.find("inline", NS_BIND2) if bind is not None else None
    return [f.get("var") for f in features.find_all("feature", NS_BIND2)] \
        if features is not None else []


async def nothing_comes(client: RawClient) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.next(), QUIET)


def test_bind2_inline_inactive_holds_presence_not_messages(mobile: ServerHarness) -> None:
    async def main() -> None:
        client = await RawClient().connect(mobile.port(direct_tls=True))
        assert NS_CSI in bind2_features(client)
        success = await client.login(
            "SCRAM-SHA-256-PLUS", "romeo", PASSWORD,
            f"<bind xmlns='{NS_BIND2}'><tag>Phone</tag><inactive xmlns='{NS_CSI}'/></bind>")
        assert success.name == "success", success
        jid = ident(success)
        juliet = await login("juliet@localhost/balcony", PASSWORD, mobile.port())
        juliet.send_presence(pto=jid, pshow="away")
        await juliet.get_roster(timeout=10)  # the server has handled the presence
        await nothing_comes(client)  # held: the session started inactive
        juliet.send_message(mto=jid, mbody="wake up", mtype="chat")
        presence = await client.next()  # what was held goes first, then the message
        assert presence.name == "presence" and presence.child_text("show") == "away"
        msg = await client.next()
        assert msg.name == "message" and msg.child_text("body") == "wake up"
        await logout(juliet)
        await client.close()
    run(main())



def test_bind2_inline_sm_enable_and_acks(mobile: ServerHarness) -> None:
    async def main() -> None:
        client = await RawClient().connect(mobile.port(direct_tls=True))
        assert NS_SM in bind2_features(client)
        success = await client.login(
            "SCRAM-SHA-256-PLUS", "romeo", PASSWORD,
            f"<bind xmlns='{NS_BIND2}'><tag>Phone</tag>"
            f"<enable xmlns='{NS_SM}' resume='true'/></bind>")
        assert success.name == "success", success
        bound = success.find("bound", NS_BIND2)
        enabled = bound.find("enabled", NS_SM) if bound is not None else None
        assert enabled is not None, success
        assert enabled.get("resume") == "true" and enabled.get("id")
        # Two stanzas handled since <enable/>: <r/> is answered with h=2.
        client.send("<presence/>")
        client.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        pong = await client.next_named("iq")
        assert pong.get("id") == "p1"
        client.send(f"<r xmlns='{NS_SM}'/>")
        answer = await client.next_named("a")
        assert answer.xmlns == NS_SM and answer.get("h") == "2"
        # What the server sent (presence echo, pong) is counted and can be acknowledged.
        session = mobile.server.hosts["localhost"].user_sessions("romeo")
        (state,) = [s.data["smacks"] for s in session.values()]
        assert len(state.queue) == 2
        client.send(f"<a xmlns='{NS_SM}' h='2'/>")
        await until(lambda: not state.queue, "the acknowledged stanzas dropped")
        await client.close()
    run(main())


async def hibernate_with_messages(server: ServerHarness) -> tuple[str, str]:
    """Romeo logs in with Bind2 + inline SM, his connection dies, Juliet sends 20
    messages: (resumption id, his full JID)."""
    client = await RawClient().connect(server.port(direct_tls=True))
    success = await client.login(
        "SCRAM-SHA-256-PLUS", "romeo", PASSWORD,
        f"<bind xmlns='{NS_BIND2}'><tag>Phone</tag>"
        f"<enable xmlns='{NS_SM}' resume='true'/></bind>")
    bound = success.find("bound", NS_BIND2)
    enabled = bound.find("enabled", NS_SM) if bound is not None else None
    assert enabled is not None, success
    jid = ident(success)
    client.send("<presence/>")
    await client.next_named("presence")
    assert client.writer is not None
    client.writer.transport.abort()  # no stream close, no TLS close_notify
    host = server.server.hosts["localhost"]
    resource = jid.split("/", 1)[1]
    await until(lambda: host.user_sessions("romeo")[resource].detached, "hibernation")
    juliet = await login("juliet@localhost/j", PASSWORD, server.port())
    for i in range(20):
        juliet.send_message(mto="romeo@localhost", mbody=f"msg{i}", mtype="chat")
    session = host.user_sessions("romeo")[resource]
    await until(lambda: len(session.data["smacks"].queue) >= 20, "20 messages queued")
    await logout(juliet)
    return enabled.get("id") or "", jid


def test_sasl2_inline_resumption_delivers_exactly_once(mobile: ServerHarness) -> None:
    async def main() -> None:
        previd, jid = await hibernate_with_messages(mobile)
        client = await RawClient().connect(mobile.port(direct_tls=True))
        auth = client.features.find("authentication", NS_SASL2)
        inline = auth.find("inline", NS_SASL2) if auth is not None else None
        assert inline is not None and inline.find("sm", NS_SM) is not None
        success = await client.login(
            "SCRAM-SHA-256-PLUS", "romeo", PASSWORD,
            f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>"
            f"<bind xmlns='{NS_BIND2}'><tag>Other</tag></bind>")
        assert success.name == "success", success
        resumed = success.find("resumed", NS_SM)
        assert resumed is not None and resumed.get("previd") == previd, success
        assert success.find("bound", NS_BIND2) is None  # resumed: nothing new bound
        assert ident(success) == jid
        got: list[str] = []
        handled = 0
        while len(got) < 20:
            el = await client.next()
            if el.name in ("message", "presence", "iq"):
                handled += 1
            if el.name == "message":
                got.append(el.child_text("body") or "")
        # Acknowledge everything, then a round trip: nothing more may come.
        client.send(f"<a xmlns='{NS_SM}' h='{handled}'/>")
        client.send("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        while True:
            el = await client.next()
            if el.name == "iq" and el.get("id") == "end":
                break
            if el.name == "message":
                got.append(el.child_text("body") or "")
        assert sorted(got) == sorted(f"msg{i}" for i in range(20))
        host = mobile.server.hosts["localhost"]
        assert list(host.user_sessions("romeo")) == [jid.split("/", 1)[1]]
        await client.close()
    run(main())


def test_sasl2_inline_resumption_unknown_id_fails_and_binds(mobile: ServerHarness) -> None:
    async def main() -> None:
        client = await RawClient().connect(mobile.port(direct_tls=True))
        success = await client.login(
            "SCRAM-SHA-256-PLUS", "romeo", PASSWORD,
            f"<resume xmlns='{NS_SM}' previd='nope' h='0'/>"
            f"<bind xmlns='{NS_BIND2}'><tag>Phone</tag></bind>")
        assert success.name == "success", success
        failed = success.find("failed", NS_SM)
        assert failed is not None and failed.find_ns(
            "urn:ietf:params:xml:ns:xmpp-stanzas").name == "item-not-found"
        assert success.find("bound", NS_BIND2) is not None
        assert ident(success).startswith("romeo@localhost/Phone.")
        await client.close()
    run(main())



# -- FAST (XEP-0484) -------------------------------------------------------------------

NS_FAST = "urn:xmpp:fast:0"


@pytest.fixture
def fast_users(make_server) -> ServerHarness:  # noqa: ANN001
    server: ServerHarness = make_server(
        host_extra='modules_enabled = ["sasl2", "bind2", "carbons", "fast"]')
    server.create_user("romeo", PASSWORD)
    server.create_user("juliet", PASSWORD)
    return server


async def token_by_password(server: ServerHarness, ua_id: str,
                            mech: str = "HT-SHA-256-ENDP") -> str:
    client = await RawClient().connect(server.port(direct_tls=True))
    client.ua_id = ua_id
    success = await client.login("SCRAM-SHA-256-PLUS", "romeo", PASSWORD,
                                 f"<request-token xmlns='{NS_FAST}' mechanism='{mech}'/>")
    assert success.name == "success", success
    token = success.find("token", NS_FAST)
    assert token is not None and token.get("expiry", "").endswith("Z")
    await client.close()
    return token.get("token") or ""


async def fast_client(server: ServerHarness, ua_id: str) -> RawClient:
    client = await RawClient().connect(server.port(direct_tls=True))
    client.ua_id = ua_id
    return client


def test_fast_mechanisms_are_inline(fast_users: ServerHarness) -> None:
    async def main() -> None:
        client = await fast_client(fast_users, "ua")
        auth = client.features.find("authentication", NS_SASL2)
        assert auth is not None
        inline = auth.find("inline", NS_SASL2)
        fast = inline.find("fast", NS_FAST) if inline is not None else None
        assert fast is not None
        mechs = [m.text for m in fast.find_all("mechanism", NS_FAST)]
        assert "HT-SHA-256-NONE" in mechs and "HT-SHA-256-ENDP" in mechs
        assert not any(m.startswith("HT-") for m in client.mechanisms())
        await client.close()
    run(main())


@pytest.mark.parametrize("mech", ["HT-SHA-256-ENDP", "HT-SHA-256-NONE"])
def test_fast_login_with_the_token_alone(fast_users: ServerHarness, mech: str) -> None:
    async def main() -> None:
        token = await token_by_password(fast_users, "ua-1", mech)
        client = await fast_client(fast_users, "ua-1")
        success = await client.fast_login(
            mech, "romeo", token, f"<fast xmlns='{NS_FAST}' count='1'/>"
            f"<bind xmlns='{NS_BIND2}'><tag>Fast</tag></bind>")
        assert success.name == "success", success
        jid = ident(success)
        assert jid.startswith("romeo@localhost/Fast.")
        juliet = await login("juliet@localhost/balcony", PASSWORD, fast_users.port())
        juliet.send_message(mto=jid, mbody="fast hello", mtype="chat")
        msg = await client.next_named("message")
        assert msg.child_text("body") == "fast hello"
        await logout(juliet)
        await client.close()
    run(main())


def test_fast_token_is_bound_to_its_user_agent_and_counts(fast_users: ServerHarness) -> None:
    async def main() -> None:
        token = await token_by_password(fast_users, "ua-2")
        other = await fast_client(fast_users, "another-ua")
        failure = await other.fast_login("HT-SHA-256-ENDP", "romeo", token)
        assert failure.name == "failure" and failure.find("not-authorized", NS_SASL)
        await other.close()
        first = await fast_client(fast_users, "ua-2")
        ok = await first.fast_login("HT-SHA-256-ENDP", "romeo", token,
                                    f"<fast xmlns='{NS_FAST}' count='5'/>")
        assert ok.name == "success"
        await first.close()
        replay = await fast_client(fast_users, "ua-2")
        failure = await replay.fast_login("HT-SHA-256-ENDP", "romeo", token,
                                          f"<fast xmlns='{NS_FAST}' count='5'/>")
        assert failure.name == "failure"
        await replay.close()
    run(main())


def test_fast_token_rotation(fast_users: ServerHarness) -> None:
    async def main() -> None:
        old = await token_by_password(fast_users, "ua-3")
        client = await fast_client(fast_users, "ua-3")
        success = await client.fast_login(
            "HT-SHA-256-ENDP", "romeo", old,
            f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-ENDP'/>")
        assert success.name == "success"
        new_el = success.find("token", NS_FAST)
        assert new_el is not None
        new = new_el.get("token") or ""
        assert new and new != old
        await client.close()
        # Until the new token is used, the old one still works (the <success/> may be lost).
        again = await fast_client(fast_users, "ua-3")
        assert (await again.fast_login("HT-SHA-256-ENDP", "romeo", old)).name == "success"
        await again.close()
        with_new = await fast_client(fast_users, "ua-3")
        assert (await with_new.fast_login("HT-SHA-256-ENDP", "romeo", new)).name == "success"
        await with_new.close()
        stale = await fast_client(fast_users, "ua-3")
        assert (await stale.fast_login("HT-SHA-256-ENDP", "romeo", old)).name == "failure"
        await stale.close()
    run(main())


def test_fast_token_dies_with_the_password_and_when_disabled(fast_users: ServerHarness) -> None:
    async def main() -> None:
        token = await token_by_password(fast_users, "ua-4")
        auth = fast_users.server.hosts["localhost"].auth  # type: ignore[union-attr]
        await fast_users.acall(auth.set_password("romeo", "a new password"))
        client = await fast_client(fast_users, "ua-4")
        failure = await client.fast_login("HT-SHA-256-ENDP", "romeo", token)
        assert failure.name == "failure" and failure.find("not-authorized", NS_SASL)
        await client.close()

        await fast_users.acall(auth.set_password("romeo", PASSWORD))
        token = await token_by_password(fast_users, "ua-4")
        await fast_users.acall(auth.set_disabled("romeo", True))
        client = await fast_client(fast_users, "ua-4")
        failure = await client.fast_login("HT-SHA-256-ENDP", "romeo", token)
        assert failure.name == "failure" and failure.find("account-disabled", NS_SASL)
        await client.close()
    run(main())


@pytest.mark.parametrize("legacy", ["response", "abort", "auth"])
def test_legacy_sasl_element_inside_sasl2_is_malformed(users: ServerHarness,
                                                       legacy: str) -> None:
    """XEP-0388: a SASL2 exchange continues with urn:xmpp:sasl:2 elements only; an RFC 6120
    <response/> (or <abort/>, <auth/>) in the middle of one ends it with a SASL2
    <failure><malformed-request/></failure>, and never authenticates."""
    async def main() -> None:
        client = await RawClient().connect(users.port(direct_tls=True))
        mech = client_mechanism("SCRAM-SHA-256", "romeo", PASSWORD, None)
        client.authenticate("SCRAM-SHA-256", mech.start())
        challenge = await client.next()
        assert challenge.name == "challenge"
        response = base64.b64encode(mech.step(base64.b64decode(challenge.text))).decode()
        attrs = " mechanism='SCRAM-SHA-256'" if legacy == "auth" else ""
        client.send(f"<{legacy} xmlns='{NS_SASL}'{attrs}>{response}</{legacy}>")
        failure = await client.next()
        assert failure.name == "failure" and failure.xmlns == NS_SASL2, failure.to_xml()
        assert failure.find("malformed-request", NS_SASL) is not None
        assert not any(s for s in users.server.hosts["localhost"].user_sessions(
            "romeo").values())
        # The stream is still usable: a proper SASL2 login works.
        success = await client.login("SCRAM-SHA-256", "romeo", PASSWORD)
        assert success.name == "success"
        await client.close()
    run(main())


def test_fast_token_only_for_its_mechanism(fast_users: ServerHarness) -> None:
    """XEP-0484 §4.4: a token asked for with channel binding fails without it."""
    async def main() -> None:
        token = await token_by_password(fast_users, "ua-5", "HT-SHA-256-ENDP")
        client = await fast_client(fast_users, "ua-5")
        failure = await client.fast_login("HT-SHA-256-NONE", "romeo", token)
        assert failure.name == "failure" and failure.find("not-authorized", NS_SASL)
        await client.close()
        client = await fast_client(fast_users, "ua-5")
        assert (await client.fast_login("HT-SHA-256-ENDP", "romeo", token)).name == "success"
        await client.close()
    run(main())


def test_fast_count_is_per_token_and_positive(fast_users: ServerHarness) -> None:
    """XEP-0484 §4.4: count is a positive integer, growing per token; the client starts it
    again with a new token, which the server accepts."""
    async def main() -> None:
        old = await token_by_password(fast_users, "ua-6")
        for bad in ("0", "-3", "many"):
            client = await fast_client(fast_users, "ua-6")
            failure = await client.fast_login("HT-SHA-256-ENDP", "romeo", old,
                                              f"<fast xmlns='{NS_FAST}' count='{bad}'/>")
            assert failure.name == "failure" and failure.find("malformed-request", NS_SASL)
            await client.close()
        client = await fast_client(fast_users, "ua-6")
        success = await client.fast_login(
            "HT-SHA-256-ENDP", "romeo", old, f"<fast xmlns='{NS_FAST}' count='7'/>"
            f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-ENDP'/>")
        new_el = success.find("token", NS_FAST)
        assert success.name == "success" and new_el is not None
        await client.close()
        client = await fast_client(fast_users, "ua-6")
        ok = await client.fast_login("HT-SHA-256-ENDP", "romeo", new_el.get("token") or "",
                                     f"<fast xmlns='{NS_FAST}' count='1'/>")
        assert ok.name == "success", ok.to_xml()
        await client.close()
    run(main())


def test_fast_lost_new_token_keeps_the_current_one(fast_users: ServerHarness) -> None:
    """XEP-0484 §4.5/§6.1: the token in use stays valid until a newer one is used; a new
    token that never arrived is replaced by the next one issued, not kept."""
    async def main() -> None:
        current = await token_by_password(fast_users, "ua-7")
        request = f"<request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-ENDP'/>"
        tokens = []
        for _ in range(2):  # both <success/>s "lost": the client keeps using ``current``
            client = await fast_client(fast_users, "ua-7")
            success = await client.fast_login("HT-SHA-256-ENDP", "romeo", current, request)
            token_el = success.find("token", NS_FAST)
            assert success.name == "success" and token_el is not None
            tokens.append(token_el.get("token") or "")
            await client.close()
        lost, latest = tokens
        client = await fast_client(fast_users, "ua-7")
        assert (await client.fast_login("HT-SHA-256-ENDP", "romeo", lost)).name == "failure"
        await client.close()
        client = await fast_client(fast_users, "ua-7")
        assert (await client.fast_login("HT-SHA-256-ENDP", "romeo", current)).name == "success"
        await client.close()
        client = await fast_client(fast_users, "ua-7")
        assert (await client.fast_login("HT-SHA-256-ENDP", "romeo", latest)).name == "success"
        await client.close()
    run(main())
