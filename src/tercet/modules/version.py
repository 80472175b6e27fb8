"""Software Version (XEP-0092) of the server.

``hide_os_type = true`` leaves out the <os/> element. Otherwise <os/> names the operating
system only ("Linux"), not its release, which would tell an attacker which kernel
vulnerabilities to try (XEP-0092 §4 warns about exposing the OS)."""

from __future__ import annotations

import platform
from typing import Any

from tercet.module import ModuleApi, Option, StanzaEvent

NS_VERSION = "jabber:iq:version"
META = {"summary": "Software version", "stage": "stable", "xeps": ["XEP-0092"]}
OPTIONS: list[Option[Any]] = [
    Option("hide_os_type", bool, False, "Do not reveal the OS in version replies (XEP-0092).",
           cite="XEP-0092 §4"),
]


def load(module: ModuleApi) -> None:
    hide_os = module.option("hide_os_type")
    info = module.server_info
    os_name = platform.system().strip()

    def version(event: StanzaEvent) -> bool:
        reply = event.stanza.reply()
        query = reply.tag("query", NS_VERSION)
        query.text_tag("name", info["name"]).text_tag("version", info["version"])
        if not hide_os and os_name:
            query.text_tag("os", os_name)
        event.origin.send(reply)
        return True

    module.add_feature(NS_VERSION)
    module.hook(f"iq-get/host/{NS_VERSION}:query", version)
