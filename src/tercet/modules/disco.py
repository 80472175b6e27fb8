"""Service Discovery (XEP-0030) of the server and of accounts, with the server's entity
capabilities (XEP-0115) and extended info forms (XEP-0128).

The server's answer is collected from what modules registered with add_identity /
add_feature / add_extension / add_item. Forms sharing a FORM_TYPE are merged into one,
because XEP-0128 §3 allows one form per FORM_TYPE (XEP-0115 §5.4 rejects duplicates). The
answer and its caps hash are cached and rebuilt when a module loads or unloads anywhere.

Accounts (an iq to a bare JID) are answered on the user's behalf (RFC 6121 §8.5.1.1) to
the user and to contacts with a presence subscription ``from`` or ``both``; anyone else
gets ``service-unavailable`` so the account's existence is not revealed. Account features
come from ``module.provides("account-feature", "urn:...")`` in any module and from
handlers of the ``account-disco-info`` event (an :class:`AccountDiscoEvent`). An
account's disco#items holds what ``account-disco-items`` handlers add (PEP nodes), for
every authorised requester; resources are not listed (presence tells who is online). Full
JIDs go to the client (iq.py).

Nodes: the caps node ``<CAPS_NODE>#<ver>`` is answered here (XEP-0115 §6.2); other nodes
on the host fire ``disco-info-node/<node>`` / ``disco-items-node/<node>`` (the handler
replies itself), on accounts ``account-disco-info-node`` / ``account-disco-items-node``
(set ``exists``, fill ``reply``). A node nobody answers is ``item-not-found``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any

from tercet.module import (
    ClientSession,
    Identity,
    ModuleApi,
    Option,
    Session,
    StanzaEvent,
    StreamFeaturesEvent,
)
from tercet.modules._rosterlib import contact_subscription
from tercet.protocol.errors import StanzaError
from tercet.protocol.stanza import Element

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_DATA = "jabber:x:data"
# XEP-0115 §4: a URI identifying the software that generated the hash.
CAPS_NODE = "https://tercet.im"
META = {"summary": "Service discovery and server capabilities", "stage": "stable",
        "xeps": ["XEP-0030", "XEP-0115", "XEP-0128"]}
#: docs/roles.md: accounts whose role has it show the XEP-0030 account identity
#: type "admin" (as Prosody's ``be-discovered-admin``).
PERMISSIONS = {":be-discovered-admin": "tercet:admin"}

OPTIONS: list[Option[Any]] = [
    Option("name", str, None,
           "Name of the server identity in disco#info (default: the software name)."),
]


class AccountDiscoEvent:
    """Payload of ``account-disco-info(-node)`` and ``account-disco-items(-node)``.

    ``reply`` is the <query/> being built; handlers add children (``add_feature`` for
    the common case). ``owner`` is True when the account asks about itself. Node
    handlers set ``exists`` when they know the node.
    """

    __slots__ = ("exists", "node", "origin", "owner", "reply", "stanza", "username")

    def __init__(self, origin: Session, stanza: Element, username: str, node: str | None,
                 reply: Element, owner: bool) -> None:
        self.origin = origin
        self.stanza = stanza
        self.username = username
        self.node = node
        self.reply = reply
        self.owner = owner
        self.exists = False

    def add_feature(self, var: str) -> None:
        self.reply.tag("feature", NS_INFO, {"var": var})


# -- building answers and hashes ---------------------------------------------------------

def build_info(identities: Iterable[Identity], features: Iterable[str],
               forms: Iterable[Element]) -> Element:
    """A disco#info <query/>: identities and features without duplicates, one form per
    FORM_TYPE (later forms of a type add their fields to the first)."""
    query = Element("query", NS_INFO)
    seen: set[tuple[str, str, str | None, str | None]] = set()
    for ident in identities:
        key = (ident.category, ident.type, ident.lang, ident.name)
        if key in seen:
            continue
        seen.add(key)
        attrs = {"category": ident.category, "type": ident.type}
        if ident.name:
            attrs["name"] = ident.name
        if key[2]:
            attrs["xml:lang"] = key[2]
        query.tag("identity", NS_INFO, attrs)
    for var in sorted(set(features)):
        query.tag("feature", NS_INFO, {"var": var})
    for form in merge_forms(forms):
        query.append(form)
    return query


def form_type(form: Element) -> str | None:
    """The FORM_TYPE value of a data form, or None (XEP-0068)."""
    for field in form.find_all("field", NS_DATA):
        if field.get("var") == "FORM_TYPE":
            return field.child_text("value", NS_DATA) or ""
    return None


def merge_forms(forms: Iterable[Element]) -> list[Element]:
    """Copies of ``forms`` with those of equal FORM_TYPE merged into the first."""
    out: list[Element] = []
    by_type: dict[str, Element] = {}
    for form in forms:
        ftype = form_type(form)
        first = by_type.get(ftype) if ftype is not None else None
        if first is None:
            copy = form.copy()
            out.append(copy)
            if ftype is not None:
                by_type[ftype] = copy
            continue
        for field in form.find_all("field", NS_DATA):
            if field.get("var") != "FORM_TYPE":
                first.append(field.copy())
    return out


def caps_ver(query: Element) -> str:
    """The XEP-0115 §5.1 verification string of a disco#info <query/> (SHA-1, base64)."""
    parts: list[str] = []
    identities = sorted(
        "/".join((i.get("category") or "", i.get("type") or "", i.get("xml:lang") or "",
                  i.get("name") or ""))
        for i in query.find_all("identity", NS_INFO))
    parts += [f"{s}<" for s in identities]
    parts += [f"{v}<" for v in sorted(f.get("var") or ""
                                      for f in query.find_all("feature", NS_INFO))]
    # §5.4: forms without a hidden FORM_TYPE are ignored.
    typed = [(t, f) for f in query.find_all("x", NS_DATA) if (t := form_type(f)) is not None]
    for ftype, form in sorted(typed, key=lambda tf: tf[0]):
        parts.append(f"{ftype}<")
        fields = sorted(((fl.get("var") or "", fl) for fl in form.find_all("field", NS_DATA)
                         if fl.get("var") != "FORM_TYPE"), key=lambda vf: vf[0])
        for var, field in fields:
            parts.append(f"{var}<")
            parts += [f"{v.text}<" for v in sorted(field.find_all("value", NS_DATA),
                                                    key=lambda v: v.text)]
    digest = hashlib.sha1("".join(parts).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


# -- the module ----------------------------------------------------------------------------

class _HostDisco:
    """Disco of the host itself, its answer and caps hash cached until a module
    (un)loads anywhere."""

    def __init__(self, module: ModuleApi, local: bool) -> None:
        self.module = module
        self.local = local
        self.cache: dict[str, tuple[Element, str]] = {}

    def host_info(self) -> tuple[Element, str]:
        """The cached host <query/> and its caps ver, built on first use."""
        if "info" not in self.cache:
            query = build_info(self.module.identities(), self.module.features(),
                               self.module.extensions())
            self.cache["info"] = query, caps_ver(query)
        return self.cache["info"]

    def invalidate(self, _event: object) -> None:
        self.cache.clear()

    def on_host_info(self, event: StanzaEvent) -> object:
        node = requested_node(event)
        query, ver = self.host_info()
        if node and node != f"{CAPS_NODE}#{ver}":
            result = self.module.fire(f"disco-info-node/{node}", event)
            return result if result is not None else not_found(event)
        reply = event.stanza.reply()
        answer = query.copy()
        if node:
            answer.set("node", node)
        reply.append(answer)
        event.origin.send(reply)
        return True

    def on_host_items(self, event: StanzaEvent) -> object:
        node = requested_node(event)
        if node:
            result = self.module.fire(f"disco-items-node/{node}", event)
            return result if result is not None else not_found(event)
        reply = event.stanza.reply()
        query = reply.tag("query", NS_ITEMS)
        listed: set[str] = set()
        for jid, item_name, item_node in self.module.items():
            attrs = {"jid": jid}
            if item_name:
                attrs["name"] = item_name
            if item_node:
                attrs["node"] = item_node
            query.tag("item", NS_ITEMS, attrs)
            listed.add(jid)
        if self.local:
            # Components under this domain are its services (XEP-0030 §4.2 example).
            for other in self.module.hosts:
                if other not in listed and other.endswith("." + self.module.host) \
                        and self.module.host_kind(other) == "component":
                    query.tag("item", NS_ITEMS, {"jid": other})
        event.origin.send(reply)
        return True

    def stream_features(self, event: StreamFeaturesEvent) -> None:
        _, ver = self.host_info()
        event.features.tag("c", NS_CAPS, {"hash": "sha-1", "node": CAPS_NODE, "ver": ver})


def load(module: ModuleApi) -> None:
    local = module.host_kind(module.host) == "local"
    if local:
        name = module.option("name") or module.server_info["name"]
        module.add_identity("server", "im", name)
    module.add_feature(NS_INFO)
    module.add_feature(NS_ITEMS)
    disco = _HostDisco(module, local)
    module.hook_global("module-loaded", disco.invalidate)
    module.hook_global("module-unloaded", disco.invalidate)
    module.hook(f"iq-get/host/{NS_INFO}:query", disco.on_host_info)
    module.hook(f"iq-get/host/{NS_ITEMS}:query", disco.on_host_items)
    if local:
        module.hook("stream-features", disco.stream_features)
        _load_accounts(module)


def not_found(event: StanzaEvent) -> bool:
    event.origin.send(event.stanza.error_reply(StanzaError("item-not-found")))
    return True


def requested_node(event: StanzaEvent) -> str | None:
    """The ``node`` of a disco request (XEP-0030 §3.2), if any."""
    payload = event.stanza.iq_payload()
    return payload.get("node") if payload is not None else None


class _AccountDisco:
    """Disco of accounts (iq to a bare JID), answered by the server on their behalf."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module

    async def target(self, event: StanzaEvent) -> tuple[str, bool] | None:
        """(username, is_owner) when the requester may discover the account, else None."""
        if event.to_type == "self":
            origin = event.origin
            if not isinstance(origin, ClientSession) or origin.username is None:
                return None
            return origin.username, True
        if event.from_ is None or event.to is None or event.to.node is None:
            return None
        username = event.to.node
        sub = await contact_subscription(self.module, username, str(event.from_.bare))
        return (username, False) if sub in ("from", "both") else None

    def reply_query(self, event: StanzaEvent, ns: str, node: str | None, username: str) -> \
            tuple[Element, Element]:
        reply = event.stanza.reply()
        # Psi and others expect a from on answers about their own account.
        reply.attrs.setdefault("from", f"{username}@{self.module.host}")
        query = reply.tag("query", ns, {"node": node} if node else None)
        return reply, query

    async def on_info(self, event: StanzaEvent) -> bool | None:
        found = await self.target(event)
        if found is None:
            return None  # the router answers service-unavailable
        username, owner = found
        node = requested_node(event)
        reply, query = self.reply_query(event, NS_INFO, node, username)
        if not node:
            query.tag("identity", NS_INFO, {"category": "account",
                                            "type": self.account_type(username)})
        disco = AccountDiscoEvent(event.origin, event.stanza, username, node, query, owner)
        disco.add_feature(NS_INFO)
        disco.add_feature(NS_ITEMS)
        if node:
            return await self.finish_node(event, "account-disco-info-node", disco, reply)
        for var in self.module.providers("account-feature"):
            if isinstance(var, str):
                disco.add_feature(var)
        await self.module.fire_async("account-disco-info", disco)
        dedupe_features(query)
        event.origin.send(reply)
        return True

    async def on_items(self, event: StanzaEvent) -> bool | None:
        found = await self.target(event)
        if found is None:
            return None
        username, owner = found
        node = requested_node(event)
        reply, query = self.reply_query(event, NS_ITEMS, node, username)
        disco = AccountDiscoEvent(event.origin, event.stanza, username, node, query, owner)
        if node:
            return await self.finish_node(event, "account-disco-items-node", disco, reply)
        # Only what modules add (PEP nodes): clients learn resources from presence, and a
        # client that walks its own items for PEP nodes expects nothing else (Prosody
        # lists none either).
        await self.module.fire_async("account-disco-items", disco)
        event.origin.send(reply)
        return True

    async def finish_node(self, event: StanzaEvent, name: str, disco: AccountDiscoEvent,
                          reply: Element) -> bool:
        result = await self.module.fire_async(name, disco)
        if result is not None:
            return True  # the handler replied itself
        event.origin.send(reply) if disco.exists else not_found(event)
        return True

    def account_type(self, username: str) -> str:
        if self.module.may(":be-discovered-admin", f"{username}@{self.module.host}"):
            return "admin"
        if self.module.option("authentication") == "anonymous":
            return "anonymous"
        return "registered"


def _load_accounts(module: ModuleApi) -> None:
    """Disco of accounts (iq to a bare JID), answered by the server on their behalf."""
    accounts = _AccountDisco(module)
    module.hook(f"iq-get/bare/{NS_INFO}:query", accounts.on_info)
    module.hook(f"iq-get/bare/{NS_ITEMS}:query", accounts.on_items)


def dedupe_features(query: Element) -> None:
    """Drop repeated <feature/>s that several account-feature sources added."""
    seen: set[str | None] = set()
    kept: list[Element | str] = []
    for child in query.children:
        if isinstance(child, Element) and child.name == "feature":
            if child.get("var") in seen:
                continue
            seen.add(child.get("var"))
        kept.append(child)
    query.children = kept
