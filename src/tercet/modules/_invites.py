"""The invitation service shared by ``invites``, ``invites_register`` and ``invites_page``.

:class:`InviteService` (offered as the ``invites`` service by the ``invites`` module) keeps
the host's invites in its ``invites`` map store (token -> record, see
tercet.protocol.invites), and redeems them: one use counted down, the inviter and the new
account made mutual contacts for a contact invite (XEP-0379 §3), then ``invite-redeemed``
fired (:class:`InviteRedeemed`). An invite's role is stored on the new account before its
first login. Account creation outside a client stream (the web form) goes through
:func:`create_account`, which fires the same registration events as in-band registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tercet.module import MapStore, ModuleApi, StanzaError
from tercet.modules._registration import Registered, RegistrationAttempt
from tercet.modules._rosterlib import BOTH, RosterFull, RosterRecord, RosterService
from tercet.protocol.invites import Invite, InviteKind, looks_like_token, make_invite

#: Session data key: the token a client presented with <preauth/> (XEP-0445 §3).
SESSION_TOKEN = "invites.token"
#: The service ``invites_register`` offers: its presence says tokens open registration.
REGISTRATION_SERVICE = "invites-registration"


@dataclass(frozen=True, slots=True)
class InviteRedeemed:
    """Payload of ``invite-redeemed``: ``username`` was created with ``invite``."""

    username: str
    host: str
    invite: Invite


class LandingPages:
    """Offered as the ``invites-landing`` service by ``invites_page``: the web page of a
    token, for the ``landing-url`` of XEP-0401 §5.1."""

    def __init__(self, url_for: Any) -> None:
        self.url_for = url_for

    def url(self, token: str) -> str:
        return str(self.url_for(token))


class TooManyInvites(Exception):
    """The host holds ``invites_max`` usable invites already."""


class InviteService:
    """Create, find, list, revoke and redeem the invites of one host."""

    def __init__(self, module: ModuleApi, store: MapStore, max_invites: int) -> None:
        self.module = module
        self.store = store
        self.max_invites = max_invites

    # -- reading ---------------------------------------------------------------------------
    async def get(self, token: str) -> Invite | None:
        """The invite with ``token`` (usable or not), or None."""
        if not looks_like_token(token):
            return None
        return Invite.from_json(await self.store.get(None, token))

    async def valid(self, token: str) -> Invite | None:
        """The invite with ``token`` if it may be used now (not expired, not used up)."""
        invite = await self.get(token)
        return invite if invite is not None and invite.usable(self.module.now()) else None

    async def all(self) -> list[Invite]:
        found = [Invite.from_json(v) for v in (await self.store.get_all(None)).values()]
        return sorted((i for i in found if i is not None), key=lambda i: i.created)

    def landing_url(self, token: str) -> str | None:
        pages = self.module.find("invites-landing", LandingPages)
        return None if pages is None else pages.url(token)

    @property
    def registration(self) -> bool:
        """Whether the host accepts tokens at registration (``invites_register`` offers
        the ``invites-registration`` service)."""
        return bool(self.module.providers(REGISTRATION_SERVICE))

    def uri(self, invite: Invite) -> str:
        return invite.uri(self.registration)

    def describe(self, invite: Invite) -> dict[str, Any]:
        return invite.describe(self.module.now(), self.landing_url(invite.token),
                               self.registration)

    # -- writing ---------------------------------------------------------------------------
    async def create(self, *, kind: InviteKind = "account", ttl: int, uses: int = 1,
                     inviter: str | None = None, username: str | None = None,
                     role: str | None = None, groups: tuple[str, ...] = (),
                     created_by: str | None = None) -> Invite:
        """A new invite, stored; ValueError when a value is out of bounds,
        TooManyInvites when the host holds ``invites_max`` usable ones."""
        invite = make_invite(self.module.host, self.module.now(), kind=kind, ttl=ttl,
                             uses=uses, inviter=inviter, username=username, role=role,
                             groups=groups, created_by=created_by)
        async with self.module.lock("invites"):
            if len(await self.purge()) >= self.max_invites:
                raise TooManyInvites(str(self.max_invites))
            await self.store.set(None, invite.token, invite.to_json())
        self.module.log.info("invite %s… created by %s (%s, %d use(s))", invite.token[:6],
                             created_by or "?", kind, uses)
        return invite

    async def revoke(self, token: str) -> bool:
        """Delete an invite; False when there was none."""
        async with self.module.lock("invites"):
            if await self.get(token) is None:
                return False
            await self.store.set(None, token, None)
        self.module.log.info("invite %s… revoked", token[:6])
        return True

    async def purge(self) -> list[Invite]:
        """Delete expired and used-up invites; return the usable ones."""
        now = self.module.now()
        found = await self.all()
        dead = {i.token: None for i in found if not i.usable(now)}
        if dead:
            await self.store.set_keys(None, dead)
        return [i for i in found if i.usable(now)]

    async def purge_timer(self) -> float:
        async with self.module.lock("invites"):
            await self.purge()
        return 3600.0

    # -- redeeming -------------------------------------------------------------------------
    def refusal(self, invite: Invite | None, username: str) -> StanzaError | None:
        """Why ``username`` may not register with ``invite`` (already validated once:
        XEP-0445 §3, expiry is not checked again), or None."""
        if invite is None or invite.uses_left <= 0:
            return StanzaError("forbidden", "The invitation is no longer valid.", type="auth")
        if invite.username is not None and invite.username != username:
            return StanzaError("not-allowed", "This invitation is for another username.")
        return None

    async def redeem(self, token: str, username: str) -> Invite | None:
        """Count one use of ``token`` for the new account ``username``, make the contacts
        of a contact invite, fire ``invite-redeemed``. None when the token is gone."""
        async with self.module.lock("invites"):
            invite = await self.get(token)
            if invite is None or invite.uses_left <= 0:
                return None
            used = invite.used(f"{username}@{self.module.host}")
            await self.store.set(None, token, used.to_json() if used.uses_left else None)
        self.module.log.info("%s@%s registered with invite %s…", username, self.module.host,
                             token[:6])
        if invite.role:
            await self.give_role(username, invite.role)
        if invite.kind == "contact" and invite.inviter:
            await self.befriend(invite, username)
        await self.module.fire_async("invite-redeemed",
                                     InviteRedeemed(username, self.module.host, invite))
        return used

    async def use_for_contact(self, token: str, inviter: str, contact: str) -> Invite | None:
        """Count one use of the contact invite ``token`` of ``inviter`` by ``contact``, an
        existing account elsewhere that asks for a subscription with it (XEP-0379 §3.4);
        None when it is no usable contact invite of ``inviter``."""
        async with self.module.lock("invites"):
            invite = await self.valid(token)
            if invite is None or invite.kind != "contact" or invite.inviter != inviter:
                return None
            used = invite.used(contact)
            await self.store.set(None, token, used.to_json() if used.uses_left else None)
        self.module.log.info("%s used the contact invitation %s… of %s", contact, token[:6],
                             inviter)
        return used

    async def give_role(self, username: str, role: str) -> None:
        """Store the invite's role on the new account (before its first login, so the
        role applies from it), with an auth provider that keeps roles."""
        set_role = getattr(self.module.auth, "set_role", None)
        if set_role is None:
            self.module.log.warning("cannot give %s the role %s: the auth provider keeps "
                                    "no roles", username, role)
            return
        await set_role(username, role)

    async def befriend(self, invite: Invite, username: str) -> None:
        """XEP-0379 §3: the inviter and the new account subscribe to each other (both
        accounts are on this host, so the server writes both rosters directly)."""
        roster = self.module.find("roster", RosterService)
        inviter = invite.inviter or ""
        node, _, domain = inviter.partition("@")
        if roster is None or domain != self.module.host or not node:
            self.module.log.warning("cannot add %s as a contact of %s: no roster here",
                                    inviter, username)
            return
        new_jid = f"{username}@{self.module.host}"
        for owner, contact in ((node, new_jid), (username, inviter)):
            try:
                await roster.change(owner, _Mutual(contact, invite.groups, roster.max_items))
            except RosterFull:
                self.module.log.warning("roster of %s is full; %s not added", owner, contact)


@dataclass(frozen=True, slots=True)
class _Mutual:
    """A roster change: ``contact`` becomes a mutual contact, in ``groups``."""

    contact: str
    groups: tuple[str, ...]
    limit: int

    def __call__(self, record: RosterRecord) -> None:
        record.set_state(self.contact, BOTH, self.limit)
        item = record.items[self.contact]
        item["groups"] = sorted(set(item.get("groups", [])) | set(self.groups))


async def create_account(module: ModuleApi, username: str, password: str,
                         ip: str) -> StanzaError | None:
    """Create an account outside a client stream (the web registration form), with the
    same events as in-band registration (``user-registering`` may refuse it,
    ``user-registered`` follows). None on success, else the error to show."""
    auth = module.auth
    if auth is None:
        return StanzaError("service-unavailable")
    refusal = await module.fire_async(
        "user-registering", RegistrationAttempt(username, module.host, ip, None))
    if isinstance(refusal, StanzaError):
        return refusal
    if await auth.user_exists(username):
        return StanzaError("conflict", "The requested username already exists.")
    try:
        await auth.create_user(username, password)
    except ValueError:  # SASLprep refused the password (RFC 4013)
        return StanzaError("not-acceptable", "The password is not acceptable.", type="modify")
    except Exception:
        if await auth.user_exists(username):
            return StanzaError("conflict", "The requested username already exists.")
        module.log.exception("could not create %s", username)
        return StanzaError("internal-server-error", type="wait")
    await module.fire_async("user-registered", Registered(username, module.host, ip))
    return None
