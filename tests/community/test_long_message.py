"""long_message: over-long bodies are cut, or published as files and replaced by a link."""

from __future__ import annotations

import os
import time
from pathlib import Path

from community_helpers import load, messages, server_with
from helpers import run, until

NS_OOB = "jabber:x:oob"
NS_XHTML_IM = "http://jabber.org/protocol/xhtml-im"
TEXT = "".join(f"{i:04d} " for i in range(60))  # 300 characters


def chat(body: str) -> str:
    return ("<message xmlns='jabber:client' to='juliet@localhost/a' type='chat'>"
            f"<body>{body}</body><html xmlns='{NS_XHTML_IM}'><body "
            "xmlns='http://www.w3.org/1999/xhtml'><p>rich</p></body></html></message>")


def test_long_bodies_are_cut_with_a_note(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["long_message"],
                               "long_message_limit = 100") as srv:
            await load(srv, "long_message")
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/a")
            await romeo.send(chat(TEXT))
            [cut] = messages(juliet)
            assert cut.child_text("body") == TEXT[:100] + "\n[… cut: 300 characters in all]"
            assert cut.find("html", NS_XHTML_IM) is None  # no longer matches the body
            await romeo.send(chat(TEXT[:100]))  # at the limit: untouched
            [whole] = messages(juliet)
            assert whole.child_text("body") == TEXT[:100]
            assert whole.find("html", NS_XHTML_IM) is not None
            assert romeo.received() == []
    run(main())


def test_link_mode_publishes_the_text(community_plugins: dict[str, Path],
                                      tmp_path: Path) -> None:
    folder = tmp_path / "paste"
    options = (f'long_message_limit = 100\nlong_message_dir = "{folder}"\n'
               'long_message_url = "https://files.example/paste"')

    async def main() -> None:
        async with server_with(community_plugins["long_message"], options) as srv:
            await load(srv, "long_message")
            romeo = await srv.connect("romeo@localhost/a")
            juliet = await srv.connect("juliet@localhost/a")
            await romeo.send(chat(TEXT))
            await romeo.send(chat(TEXT))
            first, second = messages(juliet)
            [oob] = first.find_all("x", NS_OOB)
            url = oob.child_text("url") or ""
            assert url.startswith("https://files.example/paste/") and url.endswith(".txt")
            assert first.child_text("body") == TEXT[:100] + f"\n[… full text: {url}]"
            name = url.rsplit("/", 1)[1]
            assert (folder / name).read_text(encoding="utf-8") == TEXT
            other = second.find("x", NS_OOB).child_text("url")  # type: ignore[union-attr]
            assert other != url  # every message gets its own unguessable name
            assert sorted(p.name for p in folder.iterdir()) == sorted(
                [name, (other or "").rsplit("/", 1)[1]])
    run(main())


def test_expired_files_are_deleted_foreign_files_kept(community_plugins: dict[str, Path],
                                                      tmp_path: Path) -> None:
    folder = tmp_path / "paste"
    folder.mkdir()
    old, fresh, foreign = (folder / ("a" * 22 + ".txt"), folder / ("b" * 22 + ".txt"),
                           folder / "notes.txt")
    for path in (old, fresh, foreign):
        path.write_text("x")
    long_ago = time.time() - 2 * 86400
    os.utime(old, (long_ago, long_ago))
    os.utime(foreign, (long_ago, long_ago))
    options = (f'long_message_dir = "{folder}"\nlong_message_url = "https://f.example/"\n'
               "long_message_expire = 86400")

    async def main() -> None:
        async with server_with(community_plugins["long_message"], options) as srv:
            await load(srv, "long_message")
            await until(lambda: not old.exists())
            assert fresh.exists() and foreign.exists()
    run(main())


def test_dir_without_url_is_refused(community_plugins: dict[str, Path], tmp_path: Path) -> None:
    async def main() -> None:
        async with server_with(community_plugins["long_message"],
                               f'long_message_dir = "{tmp_path}"') as srv:
            entry = await srv.server.modules.load("long_message", "localhost")
            assert entry.status == "failed" and "long_message_url" in (entry.error or "")
    run(main())
