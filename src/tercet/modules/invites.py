"""Invitations (XEP-0401, XEP-0379, XEP-0445): tokens that let someone create an account on
a host whose registration is otherwise closed, and become a contact of whoever invited
them. docs/invites.md.

This module keeps the tokens (``invites`` map store) and offers them to the other two as
the ``invites`` service (tercet.modules._invites.InviteService): ``invites_register``
accepts them at in-band registration, ``invites_page`` serves the web landing page. The
admin socket commands ``invite.create``, ``invite.list`` and ``invite.revoke`` (what
``tercet invite`` uses) live here, and the server side of pre-authenticated roster
subscription (XEP-0379 §3.4) for users with accounts elsewhere. Expired and used-up
tokens are deleted hourly.
"""

from __future__ import annotations

import inspect
from typing import Any

from tercet.module import (
    AdminCommandError,
    AdminRequest,
    Invalid,
    ModuleApi,
    Option,
    StanzaEvent,
)
from tercet.modules._invites import InviteService, TooManyInvites
from tercet.modules._rosterlib import RosterFull, RosterService
from tercet.protocol.invites import DEFAULT_TTL, KINDS, MAX_TTL, parse_duration
from tercet.protocol.jid import JID, InvalidJID, nodeprep
from tercet.protocol.stanza import Element

NS_PARS = "urn:xmpp:pars:0"
#: Longest token attribute looked at; ours are 32 characters.
MAX_TOKEN = 128

META = {"summary": "Invitation tokens for account creation and contacts", "stage": "beta",
        "xeps": ["XEP-0379", "XEP-0401"]}

#: The role ``--admin`` gives (the host's administrators, as Prosody's prosody:admin).
ADMIN_ROLE = "tercet:admin"


def _valid_ttl(value: str) -> list[Invalid]:
    try:
        seconds = parse_duration(value)
    except ValueError:
        return [Invalid('a duration such as "30s", "12h", "7d" or "2w"', repr(value),
                        'Write it like: invite_expiry = "7d".')]
    if seconds > MAX_TTL:
        return [Invalid(f"at most {MAX_TTL // 86400} days", repr(value),
                        "Shorten it: an invitation is a password anyone holding it can use.")]
    return []


OPTIONS: list[Option[Any]] = [
    Option("invite_expiry", str, f"{DEFAULT_TTL // 86400}d",
           "How long an invitation stays valid unless its creator says otherwise.",
           validate=_valid_ttl, cite="XEP-0379 §4.2"),
    # A token is a bearer credential: the store holds only usable ones (expired and
    # used-up tokens are purged), and at most this many, so a user creating contact
    # invitations in a loop cannot grow it without bound.
    Option("invites_max", int, 10_000, "Most usable invitations a host holds at once.",
           min=1, max=1_000_000, cite="XEP-0379 §4.2"),
]


def load(module: ModuleApi) -> None:
    service = InviteService(module, module.open_store("invites", "map"),
                            module.option("invites_max"))
    module.provides("invites", service)
    commands = _Commands(module, service, parse_duration(module.option("invite_expiry")))
    for verb in COMMANDS:
        module.hook_global(f"admin/invite.{verb}", commands.dispatch)
    module.hook_global(f"invites-admin/{module.host}", commands.handle)
    module.add_timer(60.0, service.purge_timer)
    # Before the presence module (priority -1) handles the request.
    module.hook("presence/bare", _Pars(module, service).on_presence, 10)


#: The admin socket commands (``invite.<verb>``).
COMMANDS = ("create", "list", "revoke")


class _Commands:
    """The admin socket commands. The socket runs the first handler of a command only,
    whichever host's module that is, so it passes the request on to the module of the
    host the request names (``host``; default: its own) over ``invites-admin/<host>``."""

    def __init__(self, module: ModuleApi, service: InviteService, default_ttl: int) -> None:
        self.module = module
        self.service = service
        self.default_ttl = default_ttl

    async def dispatch(self, req: AdminRequest) -> Any:
        host = str(req.arg("host") or self.module.host)
        result = self.module.fire_global(f"invites-admin/{host}", req)
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            raise AdminCommandError(f"the invites module is not loaded on {host}")
        if isinstance(result, AdminCommandError):
            raise result
        return result[0]

    async def handle(self, req: AdminRequest) -> tuple[Any] | AdminCommandError:
        """This host's answer, in a tuple (an empty list is an answer too), or the error:
        events do not carry exceptions back."""
        verb = req.cmd.rpartition(".")[2]
        try:
            if verb == "create":
                return (await self.create(req),)
            if verb == "list":
                return (await self.list_(),)
            return (await self.revoke(req),)
        except AdminCommandError as exc:
            return exc

    async def create(self, req: AdminRequest) -> dict[str, Any]:
        """``invite.create``: kind, ttl, uses, inviter, username, role, admin, groups."""
        kind = str(req.arg("kind") or ("contact" if req.arg("inviter") else "account"))
        if kind not in KINDS:
            raise AdminCommandError(f"kind must be one of {', '.join(KINDS)}")
        role = ADMIN_ROLE if req.arg("admin") else (str(req.arg("role") or "") or None)
        try:
            ttl = parse_duration(req.arg("ttl") or self.default_ttl)
            invite = await self.service.create(
                kind="contact" if kind == "contact" else "account",
                ttl=ttl, uses=int(req.arg("uses", 1)),
                inviter=await self.inviter(req.arg("inviter")),
                username=self.username(req.arg("username")), role=role,
                groups=tuple(str(g) for g in req.arg("groups") or ()),
                created_by=str(req.arg("created_by") or "admin socket"))
        except ValueError as exc:
            raise AdminCommandError(str(exc)) from None
        except TooManyInvites:
            raise AdminCommandError(f"{self.module.host} holds the most invitations "
                                    "invites_max allows; revoke some first") from None
        return self.service.describe(invite)

    async def inviter(self, value: Any) -> str | None:
        if not value:
            return None
        try:
            jid = JID.parse(str(value))
        except InvalidJID:
            raise ValueError(f"{value!r} is not a JID") from None
        if jid.node is None or jid.domain != self.module.host:
            raise ValueError(f"the inviter must be an account of {self.module.host}")
        if not await self.module.account_exists(jid.node):
            raise ValueError(f"{jid.bare} has no account")
        return str(jid.bare)

    def username(self, value: Any) -> str | None:
        if not value:
            return None
        try:
            return nodeprep(str(value), self.module.global_option("jid_profile"))
        except InvalidJID:
            raise ValueError(f"{value!r} is not a valid username") from None

    async def list_(self) -> list[dict[str, Any]]:
        """``invite.list``: the usable invitations of the host, oldest first."""
        async with self.module.lock("invites"):
            usable = await self.service.purge()
        return [self.service.describe(i) for i in usable]

    async def revoke(self, req: AdminRequest) -> dict[str, Any]:
        """``invite.revoke``: delete the invitation ``token``; says whether it existed."""
        token = str(req.arg("token") or "").strip()
        if not token:
            raise AdminCommandError("name the token to revoke")
        return {"token": token, "host": self.module.host,
                "revoked": await self.service.revoke(token)}


class _Pars:
    """Pre-authenticated roster subscription (XEP-0379 §3.4-3.5) done by the server for
    the inviting user: a subscription request carrying a valid token of one of the user's
    contact invitations is approved, and the user asks for the contact's presence in
    return, without the user having to be online. A token that is unknown, expired, used
    up or not the user's is ignored (§4.1): the request goes on as any other."""

    def __init__(self, module: ModuleApi, service: InviteService) -> None:
        self.module = module
        self.service = service

    async def on_presence(self, event: StanzaEvent) -> None:
        stanza, to, sender = event.stanza, event.to, event.from_
        if stanza.get("type") != "subscribe" or to is None or to.node is None \
                or sender is None:
            return None
        pars = stanza.find("preauth", NS_PARS)
        token = pars.get("token") if pars is not None else None
        roster = self.module.find("roster", RosterService)
        if not token or roster is None or not await self.module.account_exists(to.node):
            return None
        contact = str(sender.bare)
        if await self.service.use_for_contact(token[:MAX_TOKEN], str(to.bare),
                                              contact) is None:
            return None
        try:
            # §3.4: approve in advance (RFC 6121 §3.4), so the request now being handled
            # is answered "subscribed"; and ask for the contact's presence (§3.5).
            await roster.outbound(to.node, contact, "subscribed")
            await roster.outbound(to.node, contact, "subscribe")
        except RosterFull:
            return None
        await self.module.send(Element("presence", attrs={
            "type": "subscribe", "from": str(to.bare), "to": contact}))
        return None
