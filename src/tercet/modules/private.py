"""Private XML Storage (XEP-0049): a user stores XML fragments for themself only.

Each fragment is kept in the map store "private" under the key ``<ns>:<name>`` of its root
element, as serialised XML. A get names one fragment; a set may carry several. Errors:

* an iq to another account: ``forbidden`` (XEP-0049 §2.3 prefers it to service-unavailable);
* no child element (or several in a get): ``not-acceptable`` (the XEP's "Bad Format" has no
  RFC 6120 condition; implementations answer not-acceptable);
* a fragment in ``jabber:client``, ``jabber:server`` or ``jabber:iq:private``:
  ``not-acceptable`` (the reserved namespaces of XEP-0049 §2.3);
* more than ``private_max_items`` fragments for one user: ``policy-violation``, so one
  account cannot grow the store without limit.

Setting an empty element deletes the fragment; getting a missing one echoes the request.

Another module may keep one namespace's fragment elsewhere (``bookmarks`` keeps
``storage:bookmarks`` in PEP, XEP-0411) by hooking two host events named after the key,
each with a :class:`PrivateFragment`:

* ``private-get/<ns>:<name>``: return the Element to answer with (None: this module
  answers from its store);
* ``private-set/<ns>:<name>``: return True when the handler stored the fragment (this
  module then drops any copy of its own), a StanzaError to refuse the whole set, or None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tercet.module import ClientSession, ModuleApi, Option, StanzaEvent
from tercet.protocol.errors import StanzaError, StreamError
from tercet.protocol.stanza import Element
from tercet.protocol.xmlstream import parse_fragment

NS_PRIVATE = "jabber:iq:private"
RESERVED = frozenset(("jabber:client", "jabber:server", NS_PRIVATE))
META = {"summary": "Private XML storage", "stage": "stable", "xeps": ["XEP-0049"]}
DEFAULT_MAX_ITEMS = 256

OPTIONS: list[Option[Any]] = [
    Option("private_max_items", int, DEFAULT_MAX_ITEMS,
           "Private XML fragments (distinct namespaces) one user may store (XEP-0049).",
           min=1, max=100_000),
]


def key_of(el: Element) -> str:
    return f"{el.xmlns}:{el.name}"


@dataclass(frozen=True, slots=True)
class PrivateFragment:
    """Payload of ``private-get/<key>`` (``element``: the empty element asked for) and
    ``private-set/<key>`` (``element``: the fragment being stored)."""

    username: str
    element: Element


class _PrivateStorage:
    """Private XML get and set over the ``private`` map store, with the quota read at load."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.store = module.open_map("private")
        self.max_items: int = module.option("private_max_items")


    async def on_private(self, event: StanzaEvent) -> bool | None:
        stanza, origin = event.stanza, event.origin
        if not isinstance(origin, ClientSession) or origin.username is None:
            return None  # "self" is a local client asking about its own account
        query = stanza.iq_payload()
        assert query is not None  # the event is named after the payload
        fragments = list(query.elements())
        if not fragments or (stanza.get("type") == "get" and len(fragments) > 1):
            return _error(event, "not-acceptable", "expected one child element")
        if any(f.xmlns in RESERVED for f in fragments):
            return _error(event, "not-acceptable", "reserved namespace")
        username = origin.username
        if stanza.get("type") == "get":
            return await self.get(event, username, fragments[0])
        return await self.set_(event, username, fragments)

    async def get(self, event: StanzaEvent, username: str, wanted: Element) -> bool:
        key = key_of(wanted)
        found = await self.module.fire_async(f"private-get/{key}",
                                             PrivateFragment(username, wanted))
        reply = event.stanza.reply()
        query = reply.tag("query", NS_PRIVATE)
        if isinstance(found, Element):
            query.append(found)
            event.origin.send(reply)
            return True
        text = await self.store.get(username, key)
        found = None
        if isinstance(text, str):
            try:
                found = parse_fragment(text)
            except StreamError:
                self.module.log.error("stored private XML of %s is not valid XML", username)
        query.append(found or Element(wanted.name, wanted.xmlns))
        event.origin.send(reply)
        return True

    async def set_(self, event: StanzaEvent, username: str, fragments: list[Element]) -> bool:
        values: dict[str, str | None] = {}
        for fragment in fragments:
            key = key_of(fragment)
            taken = await self.module.fire_async(f"private-set/{key}",
                                                 PrivateFragment(username, fragment))
            if isinstance(taken, StanzaError):
                event.origin.send(event.stanza.error_reply(taken))
                return True
            # An empty element (no children) deletes, as clients clear data that way; a
            # fragment another module took is not kept here either.
            values[key] = fragment.to_xml(None) if fragment.children and not taken else None
        if not await self.within_quota(username, values):
            return _error(event, "policy-violation", "too many private XML fragments")
        await self.store.set_keys(username, values)
        event.origin.send(event.stanza.reply())
        return True

    async def within_quota(self, username: str, values: dict[str, str | None]) -> bool:
        """Whether storing ``values`` keeps the user within ``private_max_items``."""
        added = [k for k, v in values.items()
                 if v is not None and await self.store.get(username, k) is None]
        if not added:  # replacing or deleting never grows the store
            return True
        keys = set(await self.store.get_all(username)) | set(added)
        keys -= {k for k, v in values.items() if v is None}
        return len(keys) <= self.max_items



def load(module: ModuleApi) -> None:
    storage = _PrivateStorage(module)
    module.add_feature(NS_PRIVATE)
    # iq.py tries the "self" names before the "bare" ones for one's own account.
    module.hook(f"iq/self/{NS_PRIVATE}:query", storage.on_private)
    module.hook(f"iq/bare/{NS_PRIVATE}:query", _forbidden)


def _error(event: StanzaEvent, condition: str, text: str | None = None) -> bool:
    """Answer ``event`` with a ``condition`` error; the request is handled."""
    event.origin.send(event.stanza.error_reply(StanzaError(condition, text)))
    return True


def _forbidden(event: StanzaEvent) -> bool:
    """Nobody reads or changes another account's private XML."""
    return _error(event, "forbidden")
