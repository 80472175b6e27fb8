"""Roles and permissions through real module handlers (docs/roles.md): every privileged
XMPP action tried as every role, built-in and custom, on one server.

The actors: an anonymous user (tercet:guest), plain accounts with the stored roles
tercet:registered and tercet:member, a custom role that adds ``muc:create-room`` to
tercet:member, the host's ``admins`` (tercet:admin), a custom role that takes
``muc:create-room`` away from tercet:admin, and the global ``admins`` (tercet:operator).
A stored role is read at login (``accounts.logged_in``, what the SASL modules call).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from moduletest import ModuleTestServer, TestClient, condition

from tercet.core import accounts
from tercet.protocol.stanza import Element

MUC = "http://jabber.org/protocol/muc"
PUBSUB = "http://jabber.org/protocol/pubsub"
DISCO_INFO = "http://jabber.org/protocol/disco#info"

EXTRA = """admins = ["op@localhost"]
custom_roles = [
  { name = "helpdesk", inherits = "tercet:member", allow = ["muc:create-room"] },
  { name = "junior-admin", inherits = "tercet:admin", deny = ["muc:create-room"] },
]
"""
HOST = """admins = ["admin@localhost"]

[virtualhosts."anon.localhost"]
authentication = "anonymous"

[components."conference.localhost"]
module = "muc"
restrict_room_creation = "admin"

[components."pubsub.localhost"]
module = "pubsub"
"""

#: actor -> (JID, stored role or None).
ACTORS: dict[str, tuple[str, str | None]] = {
    "guest": ("visitor@anon.localhost/a", None),
    "registered": ("reg@localhost/a", None),
    "member": ("mem@localhost/a", "tercet:member"),
    "helpdesk": ("help@localhost/a", "helpdesk"),
    "admin": ("admin@localhost/a", None),
    "junior-admin": ("junior@localhost/a", "junior-admin"),
    "operator": ("op@localhost/a", None),
}

# The expected outcome of each action for each actor, in ACTORS' order.
TABLE: dict[str, tuple[bool, ...]] = {
    #                    guest  reg    member help   admin  junior operator
    "muc:create-room":   (False, False, False, True, True, False, True),
    "pubsub:create-node": (False, False, False, False, True, True, True),
    "disco:be-discovered-admin": (False, False, False, False, True, True, True),
}


async def as_actor(srv: ModuleTestServer, actor: str) -> TestClient:
    jid, role = ACTORS[actor]
    user, _, rest = jid.partition("@")
    host = rest.partition("/")[0]
    auth = srv.server.hosts[host].auth
    assert auth is not None
    await auth.create_user(user, "password")
    if role is not None:
        await auth.set_role(user, role)  # type: ignore[attr-defined]
    client = await srv.connect(jid, create=False)
    await accounts.logged_in(srv.server, client.session)
    return client


async def create_room(client: TestClient, actor: str) -> bool:
    await client.send(f"<presence to='{actor}@conference.localhost/me'>"
                      f"<x xmlns='{MUC}'/></presence>")
    got = client.received()
    errors = [s for s in got if s.get("type") == "error"]
    if errors:
        assert condition(errors[0]) == "not-allowed", errors[0]
        return False
    assert any(s.name == "presence" for s in got), got
    return True


async def create_node(client: TestClient, actor: str) -> bool:
    await client.send(f"<iq type='set' id='c' to='pubsub.localhost'><pubsub "
                      f"xmlns='{PUBSUB}'><create node='{actor}'/></pubsub></iq>")
    reply = next(s for s in client.received() if s.get("id") == "c")
    if reply.get("type") == "error":
        assert condition(reply) == "forbidden", reply
        return False
    assert reply.get("type") == "result", reply
    return True


async def discovered_admin(client: TestClient, actor: str) -> bool:
    bare = client.session.bare_jid
    await client.send(f"<iq type='get' id='d' to='{bare}'><query xmlns='{DISCO_INFO}'/></iq>")
    reply = next(s for s in client.received() if s.get("id") == "d")
    query = reply.find("query", DISCO_INFO)
    assert query is not None, reply
    identity = query.find("identity", DISCO_INFO)
    assert isinstance(identity, Element) and identity.get("category") == "account"
    return identity.get("type") == "admin"


ACTIONS: dict[str, Callable[[TestClient, str], Awaitable[bool]]] = {
    "muc:create-room": create_room,
    "pubsub:create-node": create_node,
    "disco:be-discovered-admin": discovered_admin,
}


@pytest.mark.parametrize("action", list(TABLE))
def test_each_role_tries_each_action(action: str) -> None:
    async def main() -> None:
        async with ModuleTestServer(EXTRA, HOST) as srv:
            outcomes = {}
            for actor in ACTORS:
                client = await as_actor(srv, actor)
                outcomes[actor] = await ACTIONS[action](client, actor.replace("-", ""))
            assert outcomes == dict(zip(ACTORS, TABLE[action], strict=True))
    asyncio.run(asyncio.wait_for(main(), 30))


def test_module_api_roles_and_legacy_names() -> None:
    """``role_of`` names each actor's role; the 1.0 role names still grant."""
    async def main() -> None:
        async with ModuleTestServer(EXTRA, HOST) as srv:
            api = srv.server.modules.loaded[("muc", "conference.localhost")].api
            assert api is not None
            roles = {}
            for actor in ACTORS:
                client = await as_actor(srv, actor)
                roles[actor] = api.role_of(client.session)
            assert roles == {"guest": "tercet:guest", "registered": "tercet:registered",
                             "member": "tercet:member", "helpdesk": "helpdesk",
                             "admin": "tercet:admin", "junior-admin": "junior-admin",
                             "operator": "tercet:operator"}
            # Remote users are guests; a local member is only registered on an
            # unrelated host (anon.localhost is not under localhost).
            assert api.role_of("someone@remote.example") == "tercet:guest"
            anon = srv.server.modules.loaded[("disco", "anon.localhost")].api
            assert anon is not None
            assert anon.role_of("mem@localhost") == "tercet:registered"
            assert anon.role_of("op@localhost") == "tercet:operator"

            api.default_permission("user", ":legacy-test")  # COMPAT: 1.0 name
            assert api.may(":legacy-test", "reg@localhost")
            assert not api.may(":legacy-test", "visitor@anon.localhost")
            with pytest.raises(ValueError):
                api.default_permission("helpdesk", ":x")  # grants go to built-in roles
    asyncio.run(asyncio.wait_for(main(), 30))


def test_role_read_at_login_not_before() -> None:
    """A role stored while a session is open applies from the account's next login,
    then to all its sessions."""
    async def main() -> None:
        async with ModuleTestServer(EXTRA, HOST) as srv:
            first = await as_actor(srv, "registered")
            auth = srv.server.hosts["localhost"].auth
            await auth.set_role("reg", "helpdesk")  # type: ignore[union-attr]
            assert not await create_room(first, "one")
            second = await srv.connect("reg@localhost/b", create=False)
            await accounts.logged_in(srv.server, second.session)
            assert await create_room(second, "two")
            assert await create_room(first, "three")  # the account's role, once read
    asyncio.run(asyncio.wait_for(main(), 30))


def test_custom_roles_follow_a_configuration_reload() -> None:
    async def main() -> None:
        async with ModuleTestServer(EXTRA, HOST) as srv:
            client = await as_actor(srv, "helpdesk")
            assert await create_room(client, "before")
            path = srv.server.config.path
            path.write_text(path.read_text().replace(
                'allow = ["muc:create-room"]', 'allow = ["pubsub:create-node"]'))
            assert await srv.server.reload() is not None
            assert not await create_room(client, "after")
            assert await create_node(client, "after")
    asyncio.run(asyncio.wait_for(main(), 30))
