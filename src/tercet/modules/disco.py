"""Service Discovery (XEP-0030) of the server: identities, features, forms and items.

Everything is collected from what modules registered with add_identity / add_feature /
add_extension / add_item; nodes can be answered by hooking ``disco-info-node/<node>``.
"""

from __future__ import annotations

from typing import Any

from tercet.core.moduleapi import ModuleApi

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
META = {"summary": "Service discovery", "stage": "stable", "xeps": ["XEP-0030", "XEP-0128"]}


def load(module: ModuleApi) -> None:
    is_component = module.host_kind(module.host) == "component"
    if not is_component:
        module.add_identity("server", "im", module.option("name", "Tercet", type=str))
    module.add_feature(NS_INFO)
    module.add_feature(NS_ITEMS)

    def info(event: Any) -> Any:
        node = event.stanza.iq_payload().get("node")
        if node:
            return module.fire(f"disco-info-node/{node}", event)
        reply = event.stanza.reply()
        query = reply.tag("query", NS_INFO)
        for ident in module.identities():
            attrs = {"category": ident.category, "type": ident.type}
            if ident.name:
                attrs["name"] = ident.name
            query.tag("identity", NS_INFO, attrs)
        for var in sorted(set(module.features())):
            query.tag("feature", NS_INFO, {"var": var})
        for form in module.extensions():
            query.append(form.copy())
        event.origin.send(reply)
        return True

    def items(event: Any) -> Any:
        node = event.stanza.iq_payload().get("node")
        if node:
            return module.fire(f"disco-items-node/{node}", event)
        reply = event.stanza.reply()
        query = reply.tag("query", NS_ITEMS)
        listed = set()
        for jid, name, item_node in module.items():
            attrs = {"jid": jid}
            if name:
                attrs["name"] = name
            if item_node:
                attrs["node"] = item_node
            query.tag("item", NS_ITEMS, attrs)
            listed.add(jid)
        if not is_component:
            # Components under this domain are its services (XEP-0030 §4.2 example).
            for other in module.hosts:
                if other not in listed and other.endswith("." + module.host) \
                        and module.host_kind(other) == "component":
                    query.tag("item", NS_ITEMS, {"jid": other})
        event.origin.send(reply)
        return True

    module.hook(f"iq-get/host/{NS_INFO}:query", info)
    module.hook(f"iq-get/host/{NS_ITEMS}:query", items)
