"""Pre-authenticated in-band registration (XEP-0445): an invitation token opens
registration for one client stream, even where ``allow_registration`` is false.

The server advertises ``<register xmlns='urn:xmpp:ibr-token:0'/>`` (XEP-0445 §3) and, for
clients written against XEP-0401 before XEP-0445 was split out of it (Conversations),
``<register xmlns='urn:xmpp:invite'/>``. The client sends
``<iq type='set'><preauth xmlns='urn:xmpp:pars:0' token='…'/></iq>`` before
``jabber:iq:register``; a valid token is remembered on the stream, which the register
module then serves even when registration is closed. The token's expiry is checked only
there (§3: later steps of the session are not refused for expiry); a use is counted once
the account exists (§3: "MUST NOT be considered used until the actual registration has
succeeded"), and a reserved username must be the one registered (§4).
"""

from __future__ import annotations

from typing import Any

from tercet.module import (
    ClientSession,
    ModuleApi,
    Option,
    StanzaError,
    StreamElementEvent,
    StreamFeaturesEvent,
)
from tercet.modules._invites import REGISTRATION_SERVICE, SESSION_TOKEN, InviteService
from tercet.modules._registration import Registered, RegistrationAttempt

NS_PARS = "urn:xmpp:pars:0"
NS_IBR_TOKEN = "urn:xmpp:ibr-token:0"
# COMPAT: the stream feature of XEP-0401 0.3, still looked for by deployed clients.
NS_INVITE = "urn:xmpp:invite"
#: Longest token attribute looked at; ours are 32 characters (tercet.protocol.invites).
MAX_TOKEN_LENGTH = 128

META = {"summary": "In-band registration with an invitation token", "stage": "beta",
        "xeps": ["XEP-0445", "XEP-0401"]}
OPTIONS: list[Option[Any]] = []


def load(module: ModuleApi) -> None:
    module.depends("invites")
    module.depends("register")
    gate = _Gate(module)
    module.provides(REGISTRATION_SERVICE, gate)
    module.hook("stream-features", gate.features, 5)
    module.hook(f"unauthenticated-iq/{NS_PARS}:preauth", gate.on_preauth)
    module.hook("registration-allowed", gate.allowed)
    module.hook("user-registering", gate.registering, 10)
    module.hook("user-registered", gate.registered)


class _Gate:
    def __init__(self, module: ModuleApi) -> None:
        self.module = module

    @property
    def service(self) -> InviteService:
        return self.module.require("invites", InviteService)

    def features(self, event: StreamFeaturesEvent) -> None:
        session = event.session
        if not session.authenticated and (session.secure or not self.module.option(
                "c2s_require_encryption")):
            event.features.tag("register", NS_IBR_TOKEN)
            event.features.tag("register", NS_INVITE)

    async def on_preauth(self, event: StreamElementEvent) -> bool:
        session, stanza = event.session, event.element
        if stanza.get("type") in ("result", "error"):
            return True  # never answered (RFC 6120 §8.3.1)
        if stanza.get("type") != "set":
            session.send(stanza.error_reply(StanzaError("bad-request")))
            return True
        if self.module.option("c2s_require_encryption") and not session.secure:
            session.send(stanza.error_reply(StanzaError(
                "policy-violation", "Encryption is required", type="modify")))
            return True
        payload = stanza.iq_payload()
        token = (payload.get("token") if payload is not None else None) or ""
        invite = await self.service.valid(token[:MAX_TOKEN_LENGTH])
        if invite is None:  # XEP-0445 §3, the error of its example
            session.log.info("invitation token refused")
            session.send(stanza.error_reply(StanzaError(
                "item-not-found", "The provided token is invalid or expired", type="cancel")))
            return True
        session.data[SESSION_TOKEN] = invite.token
        session.log.info("invitation token %s… accepted", invite.token[:6])
        session.send(stanza.reply())
        return True

    def allowed(self, session: ClientSession) -> bool | None:
        return True if session.data.get(SESSION_TOKEN) else None

    async def registering(self, attempt: RegistrationAttempt) -> StanzaError | None:
        session = attempt.session
        token = session.data.get(SESSION_TOKEN) if session is not None else None
        if not token:
            return None  # open registration, or the web form (which checks its token)
        invite = await self.service.get(str(token))
        return self.service.refusal(invite, attempt.username)

    async def registered(self, event: Registered) -> None:
        session = event.session
        token = session.data.pop(SESSION_TOKEN, None) if session is not None else None
        if token:
            await self.service.redeem(str(token), event.username)
