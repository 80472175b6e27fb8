"""Invitations from a client (XEP-0401 §4-5): the ad-hoc commands (XEP-0050)
``urn:xmpp:invite#invite`` (a user invites a contact) and
``urn:xmpp:invite#create-account`` (an administrator invites someone to create an
account, optionally with a reserved username and as the administrator's contact).

Both answer a result form of FORM_TYPE ``urn:xmpp:invite#invitation`` with the ``uri``,
the ``landing-url`` when ``invites_page`` is loaded, and ``expire`` (XEP-0082 DateTime).
The tokens are the ``invites`` module's (``tercet invite list`` shows them). Users may
run ``invite`` only with ``allow_user_invites = true`` (as Prosody's option): their
invitations create accounts too.
"""

from __future__ import annotations

from typing import Any

from tercet.module import InvalidJID, ModuleApi, Option
from tercet.modules._adhoc import Command, CommandRequest, CommandResult, register_command
from tercet.modules._invites import InviteService, TooManyInvites
from tercet.protocol.dataforms import Field, build_form
from tercet.protocol.invites import Invite, iso_time, parse_duration
from tercet.protocol.jid import nodeprep
from tercet.protocol.stanza import Element

NS_INVITE = "urn:xmpp:invite"
FORM_TYPE = f"{NS_INVITE}#invitation"
META = {"summary": "Invitations from clients (ad-hoc commands)", "stage": "beta",
        "xeps": ["XEP-0401"]}
PERMISSIONS = {":create-account": "tercet:admin"}
OPTIONS: list[Option[Any]] = [
    Option("allow_user_invites", bool, False,
           "Whether users (not only administrators) may create invitations for their "
           "contacts, which also let them create an account here.", cite="XEP-0401 §4.1"),
    # Without it one user could fill the host's invites_max alone.
    Option("invites_max_per_user", int, 50,
           "Most usable invitations one user may hold through the invite commands.",
           min=1, max=100_000, cite="XEP-0379 §4.2"),
]


def load(module: ModuleApi) -> None:
    module.depends("adhoc")
    module.depends("invites")
    commands = _Commands(module)
    register_command(module, Command(f"{NS_INVITE}#invite", "Invite user",
                                     commands.invite, ":invite"))
    register_command(module, Command(f"{NS_INVITE}#create-account", "Create account",
                                     commands.create_account, ":create-account"))
    module.default_permission("user" if module.option("allow_user_invites") else "admin",
                              ":invite")


class _Commands:
    def __init__(self, module: ModuleApi) -> None:
        self.module = module

    @property
    def service(self) -> InviteService:
        return self.module.require("invites", InviteService)

    def ttl(self) -> int:
        return parse_duration(self.module.option("invite_expiry"))

    async def invite(self, request: CommandRequest) -> CommandResult:
        """§4.1: a contact invitation from the requester, at once (no form)."""
        actor = request.actor
        if actor.node is None or actor.domain != self.module.host:
            return CommandResult.fail("Only users of this server can invite contacts")
        return await self.made(kind="contact", inviter=str(actor.bare),
                               created_by=str(actor.bare))

    async def create_account(self, request: CommandRequest) -> CommandResult:
        """§4.3: a form (username, roster-subscription), then the invitation."""
        if request.form is None:
            return CommandResult.ask(build_form([
                Field("username", "text-single", "Username"),
                Field.boolean("roster-subscription", False, "Roster subscription"),
            ], title="Create an account invitation"))
        username = (request.form.get_text("username") or "").strip()
        if username:
            try:
                username = nodeprep(username, self.module.global_option("jid_profile"))
            except InvalidJID:
                return CommandResult.fail("The username is not valid")
            if await self.module.account_exists(username):
                return CommandResult.fail("That account already exists")
        subscribe = bool(request.form.get_bool("roster-subscription"))
        actor = request.actor
        contact = subscribe and actor.node is not None and actor.domain == self.module.host
        return await self.made(kind="contact" if contact else "account",
                               inviter=str(actor.bare) if contact else None,
                               username=username or None, created_by=str(actor.bare))

    async def made(self, **args: Any) -> CommandResult:
        creator = args["created_by"]
        held = sum(i.created_by == creator for i in await self.service.all()
                   if i.usable(self.module.now()))
        if held >= self.module.option("invites_max_per_user"):
            return CommandResult.fail("You have too many pending invitations; wait until "
                                      "some are used or expire")
        try:
            invite = await self.service.create(ttl=self.ttl(), **args)
        except TooManyInvites:
            return CommandResult.fail("Too many invitations are pending; try again later")
        return CommandResult.done(form=self.result(invite))

    def result(self, invite: Invite) -> Element:
        """The result form of XEP-0401 §4.1."""
        fields = [Field("uri", "text-single", "Invitation URI", (self.service.uri(invite),))]
        landing = self.service.landing_url(invite.token)
        if landing is not None:
            fields.append(Field("landing-url", "text-single", "Invitation web page",
                                (landing,)))
        fields.append(Field("expire", "text-single", "Valid until",
                            (iso_time(invite.expires),)))
        return build_form(fields, type_="result", form_type=FORM_TYPE)
