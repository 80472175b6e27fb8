"""XMPP Ping (XEP-0199): the server answers pings addressed to it."""

from __future__ import annotations

from typing import Any

from tercet.core.moduleapi import ModuleApi

NS_PING = "urn:xmpp:ping"
META = {"summary": "XMPP Ping", "stage": "stable", "xeps": ["XEP-0199"]}


def load(module: ModuleApi) -> None:
    def pong(event: Any) -> bool:
        event.origin.send(event.stanza.reply())
        return True

    module.add_feature(NS_PING)
    module.hook(f"iq-get/host/{NS_PING}:ping", pong)
