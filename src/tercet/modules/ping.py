"""XMPP Ping (XEP-0199): the server answers pings to itself and, as Prosody does, pings to
an account's bare JID on the account's behalf (RFC 6121 §8.5.1.1: an IQ to a bare JID is
handled by the server). A ping to an account that does not exist is left unhandled, so the
router answers ``service-unavailable`` (RFC 6121 §8.5.1). Pings to a full JID reach the
client."""

from __future__ import annotations

from tercet.module import ModuleApi, StanzaEvent

NS_PING = "urn:xmpp:ping"
META = {"summary": "XMPP Ping", "stage": "stable", "xeps": ["XEP-0199"]}


def load(module: ModuleApi) -> None:
    def pong(event: StanzaEvent) -> bool:
        event.origin.send(event.stanza.reply())
        return True

    async def pong_account(event: StanzaEvent) -> bool | None:
        if event.to_type != "self" and not await module.account_exists(
                event.to.node if event.to is not None else None):
            return None
        return pong(event)

    module.add_feature(NS_PING)
    module.hook(f"iq-get/host/{NS_PING}:ping", pong)
    module.hook(f"iq-get/bare/{NS_PING}:ping", pong_account)
