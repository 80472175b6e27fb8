"""Bookmarks and avatars end to end with slixmpp over real TLS: what an old client stores
(XEP-0048 in private XML or legacy PEP, a vcard-temp PHOTO) a modern one sees (XEP-0402,
XEP-0084), and the other way round."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import zlib
from typing import Any

import pytest
from harness import ServerHarness
from helpers import run
from slixmpp import JID
from slixmpp.plugins.xep_0004 import Form
from slixmpp.plugins.xep_0048 import Bookmarks
from slixmpp.plugins.xep_0402.stanza import Conference
from xmpp import TIMEOUT, available, login, logout

from tercet.modules._pubsub import PepService

PASSWORD = "s3cret pass"
NATIVE = "urn:xmpp:bookmarks:1"
META = "urn:xmpp:avatar:metadata"
ROOM = "balcony@conference.localhost"
OLD = ("xep_0030", "xep_0045", "xep_0049", "xep_0060", "xep_0163", "xep_0223", "xep_0048")
NEW = ("xep_0030", "xep_0060", "xep_0115", "xep_0163", "xep_0402", "xep_0084")
VCARD = ("xep_0030", "xep_0054", "xep_0153")


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + b"\x40" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def users(make_server: Any) -> ServerHarness:
    server: ServerHarness = make_server()
    for name in ("romeo", "juliet"):
        server.create_user(name, PASSWORD)
    return server


def publish_options() -> Form:
    form = Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    for var, value in (("persist_items", "true"), ("max_items", "max"),
                       ("send_last_published_item", "never"), ("access_model", "whitelist")):
        form.add_field(var=f"pubsub#{var}", value=value)
    return form


async def interested(server: ServerHarness, client: Any, node: str) -> None:
    """Wait until the server has verified ``client``'s caps with ``node+notify``
    (XEP-0115 §5.4: it asks the client with disco#info first)."""
    full = str(client.boundjid)

    async def known() -> bool:
        assert server.server is not None
        pep = server.server.hosts["localhost"].providers["pep"][0]
        assert isinstance(pep, PepService)
        return node in (pep.caps.wants(full) or ())
    for _ in range(int(TIMEOUT / 0.05)):
        if await server.acall(known()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the server never learnt {full}'s interest in {node}")


async def native_rooms(client: Any) -> dict[str, Any]:
    result = await client.plugin["xep_0060"].get_items(client.boundjid.bare, NATIVE,
                                                       timeout=TIMEOUT)
    return {item["id"]: item["conference"] for item in result["pubsub"]["items"]}


async def private_rooms(client: Any) -> dict[str, Any]:
    result = await client.plugin["xep_0048"].get_bookmarks(method="xep_0049",
                                                           timeout=TIMEOUT)
    return {str(c["jid"]): c for c in result["private"]["bookmarks"]["conferences"]}


def test_private_xml_and_native_bookmarks_agree(users: ServerHarness) -> None:
    async def main() -> None:
        old = await login("juliet@localhost/old", PASSWORD, users.port(), plugins=OLD)
        new = await login("juliet@localhost/new", PASSWORD, users.port(), plugins=NEW)
        published: asyncio.Queue[Any] = asyncio.Queue()
        new.add_event_handler("pubsub_publish", published.put_nowait)
        new.plugin["xep_0163"].add_interest(NATIVE)
        await new.plugin["xep_0115"].update_caps(broadcast=False)
        await available(new)
        await interested(users, new, NATIVE)
        # An XEP-0048 client stores a room in private XML storage...
        bookmarks = Bookmarks()
        bookmarks.add_conference(ROOM, "Juliet", name="The Balcony", autojoin=True)
        await old.plugin["xep_0048"].set_bookmarks(bookmarks, method="xep_0049",
                                                   timeout=TIMEOUT)
        # ...the XEP-0402 client is notified (+notify) and finds it in the native node.
        event = await asyncio.wait_for(published.get(), TIMEOUT)
        assert event["pubsub_event"]["items"]["node"] == NATIVE
        assert event["pubsub_event"]["items"]["item"]["id"] == ROOM
        rooms = await native_rooms(new)
        assert list(rooms) == [ROOM]
        assert rooms[ROOM]["name"] == "The Balcony" and rooms[ROOM]["autojoin"] is True
        assert rooms[ROOM]["nick"] == "Juliet"
        # The XEP-0402 client adds a room; the XEP-0048 client sees both.
        conference = Conference()
        conference["name"] = "The Orchard"
        conference["autojoin"] = False
        conference["nick"] = "JC"
        await new.plugin["xep_0060"].publish(new.boundjid.bare, NATIVE,
                                             id="orchard@conference.localhost",
                                             payload=conference, options=publish_options(),
                                             timeout=TIMEOUT)
        rooms = await private_rooms(old)
        assert set(rooms) == {ROOM, "orchard@conference.localhost"}
        assert rooms["orchard@conference.localhost"]["nick"] == "JC"
        # A retraction by the new client removes it for the old one.
        await new.plugin["xep_0060"].retract(new.boundjid.bare, NATIVE, ROOM, notify=True,
                                             timeout=TIMEOUT)
        assert set(await private_rooms(old)) == {"orchard@conference.localhost"}
        # The legacy PEP node (XEP-0048 over XEP-0223) holds the same list.
        result = await old.plugin["xep_0048"].get_bookmarks(method="xep_0223",
                                                            timeout=TIMEOUT)
        legacy = result["pubsub"]["items"]["item"]["bookmarks"]["conferences"]
        assert [str(c["jid"]) for c in legacy] == ["orchard@conference.localhost"]
        # And a client writing that legacy node is converted too.
        bookmarks = Bookmarks()
        bookmarks.add_conference("tomb@conference.localhost", "Juliet", name="The Tomb")
        await old.plugin["xep_0048"].set_bookmarks(bookmarks, method="xep_0223",
                                                   timeout=TIMEOUT)
        assert list(await native_rooms(new)) == ["tomb@conference.localhost"]
        await logout(old, new)
    run(main())


def test_vcard_and_pep_avatars_agree(users: ServerHarness) -> None:
    async def main() -> None:
        image = png(4, 3)
        sha1 = hashlib.sha1(image).hexdigest()  # noqa: S324 - the XEP's hash
        legacy = await login("juliet@localhost/legacy", PASSWORD, users.port(),
                             plugins=VCARD)
        romeo = await login("romeo@localhost/modern", PASSWORD, users.port(), plugins=NEW)
        # A vcard-temp client sets a PHOTO (XEP-0153)...
        await legacy.plugin["xep_0153"].set_avatar(avatar=image, mtype="image/png",
                                                   timeout=TIMEOUT)
        # ...which any XEP-0084 client reads from PEP.
        juliet = JID("juliet@localhost")
        result = await romeo.plugin["xep_0060"].get_items(juliet, META, timeout=TIMEOUT)
        items = list(result["pubsub"]["items"])
        assert [i["id"] for i in items] == [sha1]
        info = items[0].xml.find(f"{{{META}}}metadata/{{{META}}}info")
        assert info is not None
        assert {k: info.get(k) for k in ("id", "type", "bytes", "width", "height")} == {
            "id": sha1, "type": "image/png", "bytes": str(len(image)), "width": "4",
            "height": "3"}
        data = await romeo.plugin["xep_0084"].retrieve_avatar(juliet, sha1, timeout=TIMEOUT)
        assert data["pubsub"]["items"]["item"]["avatar_data"]["value"] == image
        # The server's XEP-0153 hash is in the legacy client's presence.
        legacy.send_presence()
        while True:
            presence = await asyncio.wait_for(legacy.presences.get(), TIMEOUT)
            if presence["from"] == legacy.boundjid:
                break
        assert presence["vcard_temp_update"]["photo"] == sha1

        # Now the other way: romeo publishes a PEP avatar; his vCard shows it.
        other = png(2, 2)
        other_sha1 = hashlib.sha1(other).hexdigest()  # noqa: S324
        await romeo.plugin["xep_0084"].publish_avatar(other, timeout=TIMEOUT)
        await romeo.plugin["xep_0084"].publish_avatar_metadata(
            {"id": other_sha1, "type": "image/png", "bytes": len(other)}, timeout=TIMEOUT)
        result = await legacy.plugin["xep_0054"].get_vcard(JID("romeo@localhost"),
                                                           cached=False, timeout=TIMEOUT)
        photo = result["vcard_temp"]["PHOTO"]
        assert photo["TYPE"] == "image/png"
        assert photo["BINVAL"] == other
        assert base64.b64encode(other)  # the vCard carried it base64-encoded
        await logout(legacy, romeo)
    run(main())
