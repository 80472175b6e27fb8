"""A stream management acknowledgement covers the archive: the <a/> for a message goes
out only after the message's archive entry is written (XEP-0198 §4 acknowledges receipt;
the client may then forget the message)."""

from __future__ import annotations

import inspect

from helpers import run
from moduletest import ModuleTestServer

from tercet.core.streamevents import StreamElementEvent
from tercet.module import ArchiveQuery
from tercet.protocol.stanza import Element

NS_SM = "urn:xmpp:sm:3"


def test_the_ack_waits_for_the_archive_writer() -> None:
    async def main() -> None:
        async with ModuleTestServer(host_extra='modules_enabled = ["mam"]') as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await srv.connect("juliet@localhost/b")
            host = srv.server.hosts["localhost"]

            def stream(name: str) -> object:
                event = StreamElementEvent(romeo.session, Element(name, NS_SM))
                return host.events.fire(f"stream/{NS_SM}:{name}", event)
            stream("enable")
            romeo.received()
            await romeo.send("<message to='juliet@localhost/b' type='chat'>"
                             "<body>archived before it is acknowledged</body></message>")
            mam = srv.server.modules.loaded[("mam", "localhost")].api
            assert mam is not None
            archive = mam.open_archive("archive")
            # The writer task has not run yet: the entry is only queued.
            assert await archive.count("romeo", ArchiveQuery()) == 0
            pending = stream("r")
            assert inspect.isawaitable(pending), "the <a/> must wait for the archive"
            assert not [e for e in romeo.received() if e.name == "a"]
            await pending
            # (h counts what the connection read; these stanzas were routed directly.)
            assert len([e for e in romeo.received() if e.name == "a"]) == 1
            items = await archive.find("romeo", ArchiveQuery())
            assert [i.value.child_text("body") for i in items] == [
                "archived before it is acknowledged"]
    run(main())

