"""XEP-0398 in the vcard module: vcard-temp PHOTO <-> XEP-0084 PEP avatar, and the
XEP-0153 hash the server puts in presence; each direction, loops and errors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import zlib
from collections.abc import Awaitable, Callable

from moduletest import ModuleTestServer, TestClient, condition
from test_pep import online
from test_pubsub import EVENT, events, iq

from tercet.modules._avatars import image_size
from tercet.modules._pubsub import PepService
from tercet.protocol.stanza import Element

VCARD = "vcard-temp"
DATA = "urn:xmpp:avatar:data"
META = "urn:xmpp:avatar:metadata"
UPDATE = "vcard-temp:x:update"
INFO = "http://jabber.org/protocol/disco#info"


def png(width: int, height: int) -> bytes:
    """A valid greyscale PNG of the given size."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                             8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


IMAGE = png(3, 2)
SHA1 = hashlib.sha1(IMAGE).hexdigest()  # noqa: S324 - the XEP's hash
B64 = base64.b64encode(IMAGE).decode()


def with_server(extra: str = "") -> Callable[
        [Callable[[ModuleTestServer], Awaitable[None]]], Callable[[], None]]:
    def wrap(fn: Callable[[ModuleTestServer], Awaitable[None]]) -> Callable[[], None]:
        def test() -> None:
            async def main() -> None:
                async with ModuleTestServer(extra) as srv:
                    await fn(srv)
            asyncio.run(asyncio.wait_for(main(), 30))
        test.__name__ = fn.__name__
        return test
    return wrap


def pep_of(srv: ModuleTestServer) -> PepService:
    pep = srv.server.hosts["localhost"].providers["pep"][0]
    assert isinstance(pep, PepService)
    return pep


def reply_to(client: TestClient, id_: str) -> Element:
    for i, stanza in enumerate(client.conn.stanzas):
        if stanza.name == "iq" and stanza.get("id") == id_:
            return client.conn.stanzas.pop(i)
    raise AssertionError(f"no reply in {client.conn.stanzas}")


async def vcard_set(client: TestClient, inner: str) -> Element:
    await client.send(f"<iq type='set' id='vc'><vCard xmlns='{VCARD}'>{inner}</vCard></iq>")
    return reply_to(client, "vc")


async def vcard_get(client: TestClient) -> Element:
    await client.send(f"<iq type='get' id='vg'><vCard xmlns='{VCARD}'/></iq>")
    reply = reply_to(client, "vg")
    assert reply.get("type") == "result", reply
    card = reply.find("vCard", VCARD)
    assert card is not None
    return card


PHOTO = f"<FN>Juliet</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>{B64}</BINVAL></PHOTO>"


@with_server()
async def test_vcard_photo_becomes_pep_avatar(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    watcher = await srv.connect("juliet@localhost/phone")
    await online(watcher, META)
    watcher.received()
    reply = await vcard_set(juliet, PHOTO)
    assert reply.get("type") == "result", reply
    pep = pep_of(srv)
    data = await pep.get_items("juliet", DATA)
    assert [i for i, _ in data] == [SHA1]
    assert base64.b64decode(data[0][1].text) == IMAGE
    meta = await pep.get_items("juliet", META)
    assert [i for i, _ in meta] == [SHA1]
    info = meta[0][1].find("info", META)
    assert info is not None
    assert info.attrs == {"id": SHA1, "bytes": str(len(IMAGE)), "type": "image/png",
                          "width": "3", "height": "2"}
    config = await pep.node_config("juliet", META)
    assert config is not None and config["access_model"] == "open"
    # Contacts' clients learn of it the XEP-0084 way.
    notified = [i.get("id") for e in events(watcher) for items in e.find_all("items", EVENT)
                if items.get("node") == META for i in items.find_all("item", EVENT)]
    assert notified == [SHA1]
    # Setting the same vCard again publishes nothing new.
    await vcard_set(juliet, PHOTO)
    assert events(watcher) == []


@with_server()
async def test_pep_avatar_becomes_vcard_photo(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    await vcard_set(juliet, "<FN>Juliet</FN><NICKNAME>jc</NICKNAME>")
    reply = await iq(juliet, f"<publish node='{DATA}'><item id='{SHA1}'>"
                     f"<data xmlns='{DATA}'>{B64}</data></item></publish>", to=None)
    assert reply.get("type") == "result", reply
    reply = await iq(juliet, f"<publish node='{META}'><item id='{SHA1}'>"
                     f"<metadata xmlns='{META}'><info id='{SHA1}' type='image/png' "
                     f"bytes='{len(IMAGE)}'/></metadata></item></publish>", to=None)
    assert reply.get("type") == "result", reply
    card = await vcard_get(juliet)
    assert card.child_text("FN") == "Juliet" and card.child_text("NICKNAME") == "jc"
    photo = card.find("PHOTO")
    assert photo is not None and photo.child_text("TYPE") == "image/png"
    assert base64.b64decode(photo.child_text("BINVAL") or "") == IMAGE
    # Others read it too (vcard-temp is public).
    romeo = await srv.connect("romeo@localhost/r")
    await romeo.send(f"<iq type='get' id='r' to='juliet@localhost'><vCard xmlns='{VCARD}'/>"
                     "</iq>")
    assert romeo.expect("iq", type="result").find("vCard", VCARD).find("PHOTO") is not None  # type: ignore[union-attr]


@with_server()
async def test_metadata_without_data_or_wrong_hash_is_ignored(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    # An avatar hosted elsewhere (url): no data here to copy.
    await iq(juliet, f"<publish node='{META}'><item id='{SHA1}'><metadata xmlns='{META}'>"
             f"<info id='{SHA1}' type='image/png' bytes='9' url='https://example.org/a.png'/>"
             "</metadata></item></publish>", to=None)
    assert (await vcard_get(juliet)).find("PHOTO") is None
    # Data whose sha1 is not its id.
    await iq(juliet, f"<publish node='{DATA}'><item id='{'0' * 40}'>"
             f"<data xmlns='{DATA}'>{B64}</data></item></publish>", to=None)
    await iq(juliet, f"<publish node='{META}'><item id='{'0' * 40}'><metadata "
             f"xmlns='{META}'><info id='{'0' * 40}' type='image/png' bytes='9'/>"
             "</metadata></item></publish>", to=None)
    assert (await vcard_get(juliet)).find("PHOTO") is None


@with_server()
async def test_disabling_either_side_removes_the_other(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    await vcard_set(juliet, PHOTO)
    # XEP-0084 §4.5: empty metadata disables the avatar; the vCard loses its PHOTO.
    await iq(juliet, f"<publish node='{META}'><item id='current'><metadata xmlns='{META}'/>"
             "</item></publish>", to=None)
    card = await vcard_get(juliet)
    assert card.find("PHOTO") is None and card.child_text("FN") == "Juliet"
    # Back again from the vCard side, then a vCard without PHOTO disables the avatar.
    await vcard_set(juliet, PHOTO)
    pep = pep_of(srv)
    assert (await pep.get_items("juliet", META, max_items=1))[0][0] == SHA1
    await vcard_set(juliet, "<FN>Juliet</FN>")
    meta = await pep.get_items("juliet", META, max_items=1)
    assert meta[0][1].find("info", META) is None


@with_server()
async def test_retracting_metadata_removes_photo(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    await vcard_set(juliet, PHOTO)
    reply = await iq(juliet, f"<retract node='{META}'><item id='{SHA1}'/></retract>", to=None)
    assert reply.get("type") == "result", reply
    assert (await vcard_get(juliet)).find("PHOTO") is None


@with_server()
async def test_invalid_photo_is_refused(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    reply = await vcard_set(juliet, "<PHOTO><TYPE>image/png</TYPE><BINVAL>!!not base64"
                            "</BINVAL></PHOTO>")
    assert condition(reply) == "bad-request", reply
    assert (await vcard_get(juliet)).find("PHOTO") is None
    assert await pep_of(srv).get_items("juliet", DATA) == []


@with_server("pep_max_payload_size = 256")
async def test_avatar_too_big_for_pep_is_refused(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    big = base64.b64encode(png(40, 40) + b"\x00" * 400).decode()
    reply = await vcard_set(juliet, f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{big}</BINVAL>"
                            "</PHOTO>")
    assert condition(reply) == "not-acceptable", reply  # pubsub payload-too-big
    assert (await vcard_get(juliet)).find("PHOTO") is None


@with_server()
async def test_presence_carries_photo_hash(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    phone = await srv.connect("juliet@localhost/phone")
    await phone.send("<presence/>")
    phone.received()
    await juliet.send(f"<presence><x xmlns='{UPDATE}'><photo>forged</photo></x></presence>")
    seen = [p for p in phone.received() if p.name == "presence"]
    update = seen[-1].find("x", UPDATE)
    assert update is not None and update.find("photo", UPDATE) is not None
    assert update.child_text("photo", UPDATE) == ""  # no avatar: empty <photo/>
    await vcard_set(juliet, PHOTO)
    await juliet.send("<presence/>")
    seen = [p for p in phone.received() if p.name == "presence"]
    updates = list(seen[-1].find_all("x", UPDATE))
    assert len(updates) == 1 and updates[0].child_text("photo", UPDATE) == SHA1
    # Unavailable presence is left alone.
    await juliet.send("<presence type='unavailable'/>")
    seen = [p for p in phone.received() if p.name == "presence"]
    assert seen and seen[-1].find("x", UPDATE) is None


@with_server()
async def test_account_advertises_conversion(srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    await juliet.send(f"<iq type='get' id='d' to='juliet@localhost'><query xmlns='{INFO}'/>"
                      "</iq>")
    query = juliet.expect("iq", type="result").find("query", INFO)
    assert query is not None
    assert "urn:xmpp:pep-vcard-conversion:0" in {
        f.get("var") for f in query.find_all("feature", INFO)}


@with_server('modules_disabled = ["pep", "bookmarks", "vcard4"]')
async def test_without_pep_vcard_works_and_hash_comes_from_vcard(
        srv: ModuleTestServer) -> None:
    juliet = await srv.connect("juliet@localhost/balcony")
    phone = await srv.connect("juliet@localhost/phone")
    await phone.send("<presence/>")
    assert (await vcard_set(juliet, PHOTO)).get("type") == "result"
    await juliet.send("<presence/>")
    seen = [p for p in phone.received() if p.name == "presence"]
    assert seen[-1].find("x", UPDATE).child_text("photo", UPDATE) == SHA1  # type: ignore[union-attr]


def test_image_sizes() -> None:
    assert image_size(png(7, 5)) == (7, 5)
    gif = b"GIF89a" + struct.pack("<HH", 16, 9) + b"\x00" * 10
    assert image_size(gif) == (16, 9)
    jpeg = (b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 4) + b"ab"
            + b"\xff\xc0" + struct.pack(">HBHH", 11, 8, 20, 30) + b"\x00" * 6)
    assert image_size(jpeg) == (30, 20)
    assert image_size(b"not an image") is None


@with_server()
async def test_photo_stored_before_conversion_is_published_on_bind(
        srv: ModuleTestServer) -> None:
    await srv.create_user("juliet")
    store = srv.server.storage.open("localhost", "vcard", "keyval")
    await store.set("juliet", f"<vCard xmlns='{VCARD}'>{PHOTO}</vCard>")
    await srv.connect("juliet@localhost/balcony")
    meta = await pep_of(srv).get_items("juliet", META)
    assert [i for i, _ in meta] == [SHA1]
    # Once: a later avatar change in PEP is not overwritten at the next login.
    await pep_of(srv).publish("juliet", META, "current", Element("metadata", META))
    await srv.connect("juliet@localhost/phone")
    meta = await pep_of(srv).get_items("juliet", META, max_items=1)
    assert meta[0][1].find("info", META) is None
