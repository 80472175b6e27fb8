"""Entity Time (XEP-0202): UTC time and offset of the server."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tercet.core.moduleapi import ModuleApi

NS_TIME = "urn:xmpp:time"
META = {"summary": "Entity time", "stage": "stable", "xeps": ["XEP-0202"]}


def load(module: ModuleApi) -> None:
    def entity_time(event: Any) -> bool:
        now = dt.datetime.fromtimestamp(module.now(), dt.timezone.utc)
        reply = event.stanza.reply()
        reply.tag("time", NS_TIME).text_tag("tzo", "+00:00").text_tag(
            "utc", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        event.origin.send(reply)
        return True

    module.add_feature(NS_TIME)
    module.hook(f"iq-get/host/{NS_TIME}:time", entity_time)
