"""Invitations (XEP-0445 pre-authenticated registration, XEP-0401 admin commands) and the
service outage status form (XEP-0455), XML in and XML out on unauthenticated streams."""

from __future__ import annotations

import inspect
from typing import Any

from helpers import run
from moduletest import ModuleTestServer
from test_adhoc import cmd, command, list_nodes
from test_disco import INFO, query
from test_register import Stranger, condition, with_clock

from tercet.core.admin import AdminRequest
from tercet.modules._invites import InviteRedeemed, InviteService
from tercet.modules.adhoc import NS_COMMANDS
from tercet.protocol.invites import Invite

MODULES = 'modules_enabled = ["invites_register"]\n'
PARS = "urn:xmpp:pars:0"
DATA = "jabber:x:data"


class Channel:
    def send(self, obj: dict[str, Any]) -> None:
        pass


async def admin(srv: ModuleTestServer, cmd: str, **args: Any) -> Any:
    """Run an admin command as the admin socket does: its first handler, errors raised."""
    handler = srv.server.events.handlers(f"admin/{cmd}")[0].handler
    result = handler(AdminRequest(cmd, args, Channel()))
    return await result if inspect.isawaitable(result) else result


def service(srv: ModuleTestServer) -> InviteService:
    found = srv.server.hosts["localhost"].providers["invites"][0]
    assert isinstance(found, InviteService)
    return found


async def preauth(s: Stranger, token: str, type_: str = "set") -> Any:
    await s.send(f"<iq type='{type_}' id='pa' to='localhost'>"
                 f"<preauth xmlns='{PARS}' token='{token}'/></iq>")
    return s.expect(id="pa")


def test_preauth_errors() -> None:
    async def main() -> None:
        async with ModuleTestServer(host_extra=MODULES) as srv:
            s = Stranger(srv)
            reply = await preauth(s, "whatever", "get")
            assert condition(reply) == "bad-request"
            reply = await preauth(s, "")
            assert condition(reply) == "item-not-found"
            assert reply.find("error").get("type") == "cancel"  # type: ignore[union-attr]
            plain = Stranger(srv, secure=False)
            assert plain.features().find("register", "urn:xmpp:ibr-token:0") is None
            made = await admin(srv, "invite.create", host="localhost")
            assert condition(await preauth(plain, made["token"])) == "policy-violation"
            # Registration stays closed for a stream that presented nothing valid.
            assert condition(await s.register("eve", "pw")) == "service-unavailable"
    run(main())


def test_expiry_is_checked_only_at_preauth() -> None:
    """XEP-0445 §3: a token valid at <preauth/> still registers after it expires."""
    async def main() -> None:
        async with ModuleTestServer(host_extra=MODULES) as srv:
            clock = with_clock(srv)
            made = await admin(srv, "invite.create", host="localhost", ttl="60s",
                               role="tercet:member", groups=["Team"])
            s = Stranger(srv)
            assert (await preauth(s, made["token"])).get("type") == "result"
            clock.now += 3600
            redeemed: list[InviteRedeemed] = []
            srv.server.hosts["localhost"].events.hook("invite-redeemed", redeemed.append)
            assert (await s.register("juliet", "pw")).get("type") == "result"
            assert [(r.username, r.invite.role, r.invite.groups) for r in redeemed] == [
                ("juliet", "tercet:member", ("Team",))]
            info = await srv.server.hosts["localhost"].auth.account_info(  # type: ignore[union-attr]
                "juliet")
            assert info.role == "tercet:member"  # stored before the first login
            # A new stream cannot present the expired token.
            assert condition(await preauth(Stranger(srv), made["token"])) == "item-not-found"
    run(main())


def test_revoked_after_preauth_is_refused() -> None:
    async def main() -> None:
        async with ModuleTestServer(host_extra=MODULES) as srv:
            made = await admin(srv, "invite.create", host="localhost")
            s = Stranger(srv)
            assert (await preauth(s, made["token"])).get("type") == "result"
            assert (await admin(srv, "invite.revoke", host="localhost",
                                token=made["token"]))["revoked"] is True
            reply = await s.register("juliet", "pw")
            assert condition(reply) == "forbidden"
            assert not await srv.server.hosts["localhost"].auth.user_exists("juliet")
    run(main())


def test_admin_create_validates() -> None:
    async def main() -> None:
        async with ModuleTestServer(host_extra=MODULES) as srv:
            from tercet.core.admin import AdminCommandError
            for args in ({"ttl": "forever"}, {"uses": 0}, {"inviter": "nobody@localhost"},
                         {"inviter": "x@elsewhere"}, {"username": "a b@"},
                         {"kind": "party"}):
                try:
                    await admin(srv, "invite.create", host="localhost", **args)
                except AdminCommandError:
                    continue
                raise AssertionError(f"accepted {args}")
            try:
                await admin(srv, "invite.list", host="other.example")
            except AdminCommandError as exc:
                assert "not loaded on other.example" in str(exc)
            else:
                raise AssertionError("listed the invitations of an unknown host")
            made = await admin(srv, "invite.create", host="localhost", admin=True,
                               username="Juliet")
            assert made["role"] == "tercet:admin" and made["username"] == "juliet"
            stored = await service(srv).get(made["token"])
            assert isinstance(stored, Invite) and stored.uses_left == 1
    run(main())


def test_outage_status_form_in_disco_info() -> None:
    extra = ('outage_status_urls = ["https://status.example.org/status.json", '
             '"https://backup.example.net/status.json"]\n')

    async def main() -> None:
        async with ModuleTestServer(
                extra, 'modules_enabled = ["service_outage_status"]\n') as srv:
            client = await srv.connect("romeo@localhost/a")
            reply = await query(client, INFO, to="localhost")
            forms = reply.find("query", INFO).find_all("x", DATA)  # type: ignore[union-attr]
            sos = [f for f in forms if any(
                v.text == "urn:xmpp:sos:0" for fl in f.find_all("field", DATA)
                if fl.get("var") == "FORM_TYPE" for v in fl.find_all("value", DATA))]
            assert len(sos) == 1 and sos[0].get("type") == "result"
            field = next(fl for fl in sos[0].find_all("field", DATA)
                         if fl.get("var") == "external-status-addresses")
            assert [v.text for v in field.find_all("value", DATA)] == [
                "https://status.example.org/status.json",
                "https://backup.example.net/status.json"]
        async with ModuleTestServer(
                host_extra='modules_enabled = ["service_outage_status"]\n') as srv:
            client = await srv.connect("romeo@localhost/a")
            reply = await query(client, INFO, to="localhost")
            assert "urn:xmpp:sos:0" not in reply.to_xml(None)
    run(main())


ADHOC = 'modules_enabled = ["invites_adhoc", "invites_register", "roster"]\n'
INVITE_NODE = "urn:xmpp:invite#invite"
CREATE_NODE = "urn:xmpp:invite#create-account"


def values(reply: Any) -> dict[str, str]:
    form = cmd(reply).find("x", DATA)
    assert form is not None, reply
    return {f.get("var"): f.child_text("value", DATA) for f in form.find_all("field", DATA)}


def test_adhoc_invite_commands() -> None:
    """XEP-0401 §4: users invite contacts (when allowed), admins create account invites."""
    async def main() -> None:
        async with ModuleTestServer('admins = ["admin@localhost"]\n', ADHOC) as srv:
            user = await srv.connect("romeo@localhost/a")
            assert INVITE_NODE not in await list_nodes(user)  # allow_user_invites = false
            assert condition(await command(user, INVITE_NODE)) == "forbidden"

            admin_client = await srv.connect("admin@localhost/a")
            assert {INVITE_NODE, CREATE_NODE} <= await list_nodes(admin_client)
            first = cmd(await command(admin_client, CREATE_NODE))
            assert first.get("status") == "executing"
            form = (f"<x xmlns='{DATA}' type='submit'><field var='username'>"
                    "<value>Juliet</value></field><field var='roster-subscription'>"
                    "<value>1</value></field></x>")
            done = await command(admin_client, CREATE_NODE, "complete",
                                 first.get("sessionid"), form)
            assert cmd(done).get("status") == "completed"
            got = values(done)
            assert got["FORM_TYPE"] == "urn:xmpp:invite#invitation"
            token = got["uri"].split("preauth=")[1].split(";")[0]
            assert got["uri"] == f"xmpp:admin@localhost?roster;preauth={token};ibr=y"
            assert got["expire"].endswith("Z") and "landing-url" not in got
            stored = await service(srv).get(token)
            assert stored is not None and stored.username == "juliet"

            # The invitation works: registration, then mutual contacts.
            s = Stranger(srv)
            assert (await preauth(s, token)).get("type") == "result"
            assert (await s.register("juliet", "pw")).get("type") == "result"
            roster = srv.server.hosts["localhost"].providers["roster"][0]
            assert await roster.subscription("admin", "juliet@localhost") == "both"
            assert await roster.subscription("juliet", "admin@localhost") == "both"

        async with ModuleTestServer("allow_user_invites = true\n", ADHOC) as srv:
            user = await srv.connect("romeo@localhost/a")
            reply = await command(user, INVITE_NODE)
            assert cmd(reply).get("status") == "completed"
            assert values(reply)["uri"].startswith("xmpp:romeo@localhost?roster;preauth=")
    run(main())


def test_pars_subscription_of_an_existing_account() -> None:
    """XEP-0379 §3.4-3.5: a subscription request with the token of the inviter's contact
    invitation is approved and answered with a request back, the inviter offline."""
    async def main() -> None:
        async with ModuleTestServer(host_extra='modules_enabled = ["invites", "roster"]\n'
                                    ) as srv:
            await srv.create_user("romeo")
            made = await admin(srv, "invite.create", host="localhost",
                               inviter="romeo@localhost")
            # No invites_register here: the URI does not offer registration (XEP-0401 §5.1).
            assert made["uri"] == f"xmpp:romeo@localhost?roster;preauth={made['token']}"
            juliet = await srv.connect("juliet@localhost/phone")
            await juliet.send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
            # §3.4: Juliet's client pre-approves Romeo and asks with the token.
            await juliet.send("<presence to='romeo@localhost' type='subscribed'/>")
            await juliet.send("<presence to='romeo@localhost' type='subscribe'>"
                              f"<preauth xmlns='{PARS}' token='{made['token']}'/></presence>")
            roster = srv.server.hosts["localhost"].providers["roster"][0]
            assert await roster.subscription("romeo", "juliet@localhost") == "both"
            assert await roster.subscription("juliet", "romeo@localhost") == "both"
            assert await service(srv).get(made["token"]) is None  # single use

            # A token that is not valid is ignored: an ordinary pending request.
            tybalt = await srv.connect("tybalt@localhost/a")
            await tybalt.send("<presence to='romeo@localhost' type='subscribe'>"
                              f"<preauth xmlns='{PARS}' token='{made['token']}'/></presence>")
            assert await roster.subscription("romeo", "tybalt@localhost") == "none"
            record = await roster.load("romeo")
            assert "tybalt@localhost" in record.pending
    run(main())


def test_invited_registrations_are_not_throttled_per_ip() -> None:
    """Closed registration: the invitation's uses limit it, not the per-IP throttle."""
    async def main() -> None:
        async with ModuleTestServer(host_extra=MODULES) as srv:
            made = await admin(srv, "invite.create", host="localhost", uses=2)
            for name in ("alice", "bob"):
                s = Stranger(srv, ip="198.51.100.7")
                assert (await preauth(s, made["token"])).get("type") == "result"
                assert (await s.register(name, "pw")).get("type") == "result", name
            s = Stranger(srv, ip="198.51.100.7")
            assert condition(await preauth(s, made["token"])) == "item-not-found"
    run(main())


def test_invites_per_user_are_bounded() -> None:
    async def main() -> None:
        extra = "allow_user_invites = true\ninvites_max_per_user = 2\n"
        async with ModuleTestServer(extra, ADHOC) as srv:
            user = await srv.connect("romeo@localhost/a")
            for _ in range(2):
                assert values(await command(user, INVITE_NODE))["uri"]
            reply = await command(user, INVITE_NODE)
            assert [n.get("type") for n in cmd(reply).find_all("note", NS_COMMANDS)] == [
                "error"]
            other = await srv.connect("tybalt@localhost/a")
            assert values(await command(other, INVITE_NODE))["uri"]
    run(main())
