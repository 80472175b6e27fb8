"""Bind 2 (XEP-0386, ``urn:xmpp:bind:0``): bind a resource inside the SASL2 exchange.

Advertised as a SASL2 inline feature; ``<bind><tag>Client</tag>...</bind>`` inside
``<authenticate/>`` binds a server-chosen resource ``<tag>.<random>`` (§3: the server
picks the resource, the tag only makes it readable) and answers ``<bound/>`` inside
``<success/>``. ``resource-bind`` fires once <success/> has left, as after a legacy bind.

Inline features (§4): every other child of <bind/> fires ``bind2-inline/<ns>:<name>``
(``Bind2Inline``); modules that support one (carbons, csi_simple, smacks) hook that
event and ``bind2-features`` (a ``StreamFeaturesEvent`` on the
<inline/> of the advertised <bind/>) to list it. Unknown inline requests are ignored.
When stream management resumed a session inline in SASL2 (a ``<resumed/>`` in the
<success/>), nothing is bound.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from tercet.module import ClientSession, ModuleApi, Option, StreamFeaturesEvent
from tercet.modules._sasllib import Bind2Inline, Sasl2Success
from tercet.protocol.jid import JID, InvalidJID
from tercet.protocol.stanza import Element

NS = "urn:xmpp:bind:0"
NS_SM = "urn:xmpp:sm:3"
META = {"summary": "Bind 2 (resource binding inside SASL2)", "stage": "beta",
        "xeps": ["XEP-0386"], "requires": ["sasl2"]}
OPTIONS: list[Option[Any]] = []
# A tag is a label for people ("Conversations"); longer ones are cut (XEP-0386 §3 gives
# no bound, RFC 7622 §3.4 caps the whole resource at 1023 bytes).
MAX_TAG = 64


def load(module: ModuleApi) -> None:
    module.depends("sasl2")
    max_resources: int = module.option("c2s_max_resources")

    def inline(event: StreamFeaturesEvent) -> None:
        bind = event.features.tag("bind", NS)
        features = Element("inline", NS)
        module.fire("bind2-features", StreamFeaturesEvent(event.session, features))
        if features.children:
            bind.append(features)
        return None

    def on_success(event: Sasl2Success) -> None:
        request = event.request.find("bind", NS)
        session = event.session
        if request is None or session.username is None:
            return None
        if event.success.find("resumed", NS_SM) is not None:
            return None  # XEP-0198 inline resumption gave the client its old session
        if len(module.sessions(session.username)) >= max_resources:
            session.log.info("Bind2 refused: %d resources bound already", max_resources)
            return None  # authenticated but not bound: the client may bind later or leave
        resource = _resource(session.username, module.host, request.child_text("tag", NS))
        session.bind(resource)
        session.log.info("bound %s (Bind2)", session.full_jid)
        bound = event.success.tag("bound", NS)
        for child in request.elements():
            if child.name != "tag" or child.xmlns != NS:
                module.fire(f"bind2-inline/{child.xmlns}:{child.name}",
                            Bind2Inline(session, child, bound))
        event.after.append(lambda: _resource_bound(module, session))
        return None

    module.hook("sasl2-inline", inline)
    module.hook("sasl2-success", on_success, 10)


def _resource_bound(module: ModuleApi, session: ClientSession) -> object:
    return module.fire("resource-bind", session)


def _resource(username: str, host: str, tag: str | None) -> str:
    """``<tag>.<random>`` (or the random part alone when the tag is unusable)."""
    suffix = secrets.token_hex(4)
    clean = re.sub(r"[\s/]+", " ", (tag or "").strip())[:MAX_TAG].strip()
    if clean:
        try:
            resource = JID.parse(f"{username}@{host}/{clean}.{suffix}").resource
        except InvalidJID:
            resource = None
        if resource:
            return resource
    return suffix
