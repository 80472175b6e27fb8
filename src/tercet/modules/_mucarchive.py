"""MUC archives (XEP-0313 §3.3.2 with XEP-0045 rooms) as data: which groupchat messages
are kept, what an archived message looks like, what a reader may see, join history cut to
the ``<history/>`` limits, and XEP-0425 moderation elements. No I/O, no store: the
``muc_mam`` module does those and calls these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tercet.modules._muc.api import NS_MUC_USER, HistoryLimits
from tercet.protocol.stanza import NS_DELAY, Element

NS_HINTS = "urn:xmpp:hints"
NS_RETRACT = "urn:xmpp:message-retract:1"
NS_MODERATE = "urn:xmpp:message-moderate:1"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
# XEP-0425 before 0.3 (2023): the request and the notice wrapped in XEP-0422 <apply-to/>.
# Clients of that era still send and expect it, so the notice and the tombstone carry
# both forms, as Prosody's does.
NS_FASTEN = "urn:xmpp:fasten:0"
NS_MODERATE_0 = "urn:xmpp:message-moderate:0"
NS_RETRACT_0 = "urn:xmpp:message-retract:0"

# Payloads that make a groupchat message worth keeping without a <body/>: end-to-end
# encrypted content (XEP-0384 OMEMO, XEP-0373 OpenPGP, XEP-0380 hints) and chat markers
# (XEP-0333), which clients read from the archive to know what was seen.
_CONTENT_NS = frozenset((
    "eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2", "urn:xmpp:openpgp:0",
    "urn:xmpp:eme:0", "urn:xmpp:chat-markers:0", NS_RETRACT))

# XEP-0045 affiliations that may always read the real JIDs of a semi-anonymous room
# (§5.2: admins and owners are moderators whenever they are present).
REVEAL_AFFILIATIONS = frozenset(("owner", "admin"))


def historic(stanza: Element) -> bool:
    """Whether a groupchat message belongs in the room's archive.

    XEP-0334 §4: ``no-store``/``no-permanent-store`` never, ``store`` always. Otherwise a
    message with a body or with content that stands for one (``_CONTENT_NS``); a subject
    change alone is not (XEP-0045 §8.1: the room sends its subject on join itself).
    """
    if stanza.find("no-store", NS_HINTS) is not None \
            or stanza.find("no-permanent-store", NS_HINTS) is not None:
        return False
    if stanza.find("store", NS_HINTS) is not None:
        return True
    if stanza.find("body") is not None:
        return True
    return any(c.xmlns in _CONTENT_NS for c in stanza.elements())


def archived_form(stanza: Element, occupant_jid: str, real_jid: str) -> Element:
    """The copy of a broadcast message that goes into the archive.

    ``from`` is the occupant JID, no ``to``. The sender's real bare JID is kept as the
    XEP-0313 §3.3.2 ``<x xmlns='muc#user'><item jid/></x>`` (the form results carry in
    non-anonymous rooms); any such element the sender put in is removed first, so the
    one in the archive is always the room's own.
    """
    stored = stanza.copy()
    stored.set("to", None)
    stored.set("from", occupant_jid)
    stored.remove_children("x", NS_MUC_USER)
    stored.tag("x", NS_MUC_USER).tag("item", NS_MUC_USER, {"jid": real_jid})
    return stored


def real_jid_of(stored: Element) -> str | None:
    x = stored.find("x", NS_MUC_USER)
    item = None if x is None else x.find("item", NS_MUC_USER)
    return None if item is None else item.get("jid")


def presented(stored: Element, reveal: bool) -> Element:
    """What a reader gets of an archived message: the real JID only when ``reveal``
    (XEP-0045 §5.2.1/§7.2.4: in semi-anonymous rooms only moderators see real JIDs)."""
    out = stored.copy()
    if not reveal:
        out.remove_children("x", NS_MUC_USER)
    return out


@dataclass(frozen=True, slots=True)
class HistoryItem:
    key: str
    value: Element
    when: float


def history_window(limits: HistoryLimits, room_length: int, now: float) -> \
        tuple[int, float | None] | None:
    """How many messages and since when a join asks for (XEP-0045 §7.2.15), capped at the
    room's history length; None when no history is wanted."""
    wanted = room_length if limits.maxstanzas is None else min(limits.maxstanzas,
                                                               room_length)
    if wanted <= 0 or limits.maxchars == 0:
        return None
    since = limits.since
    if limits.seconds is not None:
        by_seconds = now - limits.seconds
        since = by_seconds if since is None else max(since, by_seconds)
    return wanted, since


def history_messages(items: Sequence[HistoryItem], room_jid: str, maxchars: int | None,
                     stamp_of: Callable[[float], str], *, reveal: bool) -> list[Element]:
    """Join history (oldest first) from archive items (oldest first): each with its
    XEP-0203 delay and XEP-0359 stanza-id, real JIDs only with ``reveal`` (non-anonymous
    rooms; the joining occupant is not known here, see docs/muc_mam.md), and, with
    ``maxchars``, only the newest messages whose XML fits (§7.2.15 counts the characters
    of the whole stanzas)."""
    out: list[Element] = []
    used = 0
    for item in reversed(items):
        msg = presented(item.value, reveal=reveal)
        msg.tag("delay", NS_DELAY, {"from": room_jid, "stamp": stamp_of(item.when)})
        msg.tag("stanza-id", "urn:xmpp:sid:0", {"id": item.key, "by": room_jid})
        if maxchars is not None:
            used += len(msg.to_xml())
            if used > maxchars:
                break
        out.append(msg)
    out.reverse()
    return out


# -- XEP-0425 moderation ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Moderation:
    """A parsed ``<moderate id=... xmlns='urn:xmpp:message-moderate:1'>`` request."""

    stanza_id: str
    reason: str | None


def parse_moderate(payload: Element) -> Moderation | None:
    """The request, or None when it is not a retraction (XEP-0425 §4: ``<retract/>``).

    ``payload`` is ``<moderate id=… xmlns='…moderate:1'>`` or, in the 0.2 form,
    ``<apply-to id=… xmlns='urn:xmpp:fasten:0'><moderate xmlns='…moderate:0'>``."""
    if payload.xmlns == NS_FASTEN:
        target = payload.get("id")
        moderate = payload.find("moderate", NS_MODERATE_0)
        if moderate is None or moderate.find("retract", NS_RETRACT_0) is None:
            return None
        reason = moderate.child_text("reason", NS_MODERATE_0)
    else:
        target = payload.get("id")
        if payload.find("retract", NS_RETRACT) is None:
            return None
        reason = payload.child_text("reason", NS_MODERATE)
    if not target:
        return None
    return Moderation(target, reason.strip() if reason and reason.strip() else None)


def _moderated(by: str, occupant_id: str | None) -> Element:
    mod = Element("moderated", NS_MODERATE, {"by": by})
    if occupant_id is not None:
        mod.tag("occupant-id", NS_OCCUPANT_ID, {"id": occupant_id})
    return mod


def tombstone(stored: Element, by: str, reason: str | None, when_stamp: str) -> Element:
    """The archived message with its content replaced by XEP-0424 ``<retracted/>``
    (XEP-0425 §5: the archive keeps a tombstone). ``from``, ``id``, the type and the
    occupant-id stay; so does the real JID for those allowed to see it."""
    out = Element("message", stored.xmlns, {k: v for k, v in stored.attrs.items()
                                            if k in ("from", "id", "type")})
    for keep in ("occupant-id", "x"):
        ns = NS_OCCUPANT_ID if keep == "occupant-id" else NS_MUC_USER
        found = stored.find(keep, ns)
        if found is not None:
            out.append(found.copy())
    retracted = out.tag("retracted", NS_RETRACT, {"stamp": when_stamp})
    retracted.append(_moderated(by, None))
    if reason is not None:
        retracted.text_tag("reason", reason, NS_RETRACT)
    legacy = out.tag("moderated", NS_MODERATE_0, {"by": by, "stamp": when_stamp})
    legacy.tag("retracted", NS_RETRACT_0, {"stamp": when_stamp})
    if reason is not None:
        legacy.text_tag("reason", reason, NS_MODERATE_0)
    return out


def retraction_message(room_jid: str, stanza_id: str, by: str, reason: str | None,
                       occupant_id: str | None, msg_id: str) -> Element:
    """The groupchat message that tells occupants a message was retracted (§4)."""
    msg = Element("message", attrs={"type": "groupchat", "from": room_jid, "id": msg_id})
    retract = msg.tag("retract", NS_RETRACT, {"id": stanza_id})
    retract.append(_moderated(by, occupant_id))
    if reason is not None:
        retract.text_tag("reason", reason, NS_RETRACT)
    legacy = msg.tag("apply-to", NS_FASTEN, {"id": stanza_id}).tag(
        "moderated", NS_MODERATE_0, {"by": by})
    legacy.tag("retract", NS_RETRACT_0)
    if reason is not None:
        legacy.text_tag("reason", reason, NS_MODERATE_0)
    msg.tag("store", NS_HINTS)  # XEP-0334 §4.4: clients that sync later need it
    return msg
