"""Entity capabilities (XEP-0115) as PEP uses them: which nodes a resource wants
notifications for (``<node>+notify`` features, XEP-0163 §4).

A caps hash is looked up once: an unknown one is asked for with disco#info, the answer
is checked against the hash (§5.1, §5.4) and only a matching answer is cached, so one
client cannot poison the cache for others. Both tables are bounded.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict

from tercet.protocol.stanza import Element

NS_CAPS = "http://jabber.org/protocol/caps"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"
NOTIFY = "+notify"


def caps_ver(query: Element) -> str:
    """The XEP-0115 §5.1 verification string (SHA-1, base64) of a disco#info <query/>."""
    # Sort first, then add "<": the separator would change the order ("a+b<" < "a<").
    identities = sorted("/".join((i.get("category") or "", i.get("type") or "",
                                  i.get("xml:lang") or "", i.get("name") or ""))
                        for i in query.find_all("identity", NS_INFO))
    parts = [i + "<" for i in identities]
    parts += [v + "<" for v in sorted(f.get("var") or ""
                                      for f in query.find_all("feature", NS_INFO))]
    forms = []
    for form in query.find_all("x", NS_DATA):
        fields = {f.get("var") or "": sorted(v.text for v in f.find_all("value", NS_DATA))
                  for f in form.find_all("field", NS_DATA)}
        typed = fields.pop("FORM_TYPE", None)
        if typed:  # §5.4: forms without FORM_TYPE are ignored
            forms.append((typed[0], fields))
    for form_type, fields in sorted(forms, key=lambda f: f[0]):
        parts.append(form_type + "<")
        for var in sorted(fields):
            parts.append(var + "<")
            parts += [v + "<" for v in fields[var]]
    digest = hashlib.sha1("".join(parts).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def notify_nodes(query: Element) -> frozenset[str]:
    """The nodes a disco#info answer asks notifications for (``<ns>+notify``)."""
    return frozenset(var[:-len(NOTIFY)] for f in query.find_all("feature", NS_INFO)
                     if (var := f.get("var") or "").endswith(NOTIFY))


def presence_caps(stanza: Element) -> tuple[str, str] | None:
    """(node, ver) of a presence's legacy caps with the sha-1 hash (§4), else None."""
    c = stanza.find("c", NS_CAPS)
    if c is None or c.get("hash") != "sha-1" or not c.get("ver") or not c.get("node"):
        return None
    return c.get("node") or "", c.get("ver") or ""


class CapsCache:
    """Verified hashes -> +notify nodes, and each known resource's current hash."""

    def __init__(self, max_hashes: int, max_resources: int) -> None:
        self.max_hashes = max_hashes
        self.max_resources = max_resources
        self.features: OrderedDict[str, frozenset[str]] = OrderedDict()
        self.resources: OrderedDict[str, str] = OrderedDict()
        self.by_bare: dict[str, set[str]] = {}

    def learn(self, ver: str, query: Element) -> bool:
        """Cache ``query`` as the answer for ``ver`` if it hashes to it (§5.4 step 7)."""
        if caps_ver(query) != ver:
            return False
        self.features[ver] = notify_nodes(query)
        self.features.move_to_end(ver)
        while len(self.features) > self.max_hashes:
            self.features.popitem(last=False)
        return True

    def set_resource(self, full_jid: str, ver: str | None) -> None:
        """Record ``full_jid``'s current hash; None forgets it (unavailable)."""
        bare = full_jid.split("/", 1)[0]
        if ver is None:
            self.resources.pop(full_jid, None)
            found = self.by_bare.get(bare)
            if found is not None:
                found.discard(full_jid)
                if not found:
                    del self.by_bare[bare]
            return
        self.resources[full_jid] = ver
        self.resources.move_to_end(full_jid)
        self.by_bare.setdefault(bare, set()).add(full_jid)
        while len(self.resources) > self.max_resources:
            old, _ = self.resources.popitem(last=False)
            self.set_resource(old, None)

    def wants(self, full_jid: str) -> frozenset[str] | None:
        """The +notify nodes of ``full_jid``, or None when its hash is not known."""
        ver = self.resources.get(full_jid)
        return None if ver is None else self.features.get(ver)

    def resources_of(self, bare: str) -> set[str]:
        return self.by_bare.get(bare, set())
