"""SASL2 (XEP-0388) and Bind2 (XEP-0386) end to end: a raw client over real TLS against a
real server on port 0 (slixmpp has neither), slixmpp for the other party."""

from __future__ import annotations

import asyncio

import pytest
from harness import ServerHarness
from helpers import run
from sasl2client import NS_BIND2, NS_SASL2, RawClient
from xmpp import available, login, logout

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
