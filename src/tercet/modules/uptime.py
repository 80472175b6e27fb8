"""Server uptime through Last Activity (XEP-0012 §5): an iq:last query to the server
answers the seconds since the server started."""

from __future__ import annotations

from tercet.module import ModuleApi, StanzaEvent

NS_LAST = "jabber:iq:last"
META = {"summary": "Server uptime (XEP-0012)", "stage": "stable", "xeps": ["XEP-0012"]}


def load(module: ModuleApi) -> None:
    started = float(module.server_info["started"])

    def uptime(event: StanzaEvent) -> bool:
        seconds = max(0, int(module.now() - started))
        reply = event.stanza.reply()
        reply.tag("query", NS_LAST, {"seconds": str(seconds)})
        event.origin.send(reply)
        return True

    module.add_feature(NS_LAST)
    module.hook(f"iq-get/host/{NS_LAST}:query", uptime)
