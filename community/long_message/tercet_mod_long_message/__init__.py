"""Over-long messages: a message body longer than ``long_message_limit`` characters is cut
at the limit before it is delivered, with a note saying how long it was.

With ``long_message_dir`` and ``long_message_url`` set, the full text is instead written to a
file in that directory (which a web server publishes at that URL) and the cut body ends with
the link; the link is also given as XEP-0066 out-of-band data so clients can show it as one.
Files older than ``long_message_expire`` seconds are deleted (checked at load, then hourly
at most), so the directory does not grow without bound.

Applies to messages sent by this host's users (the ``pre-message`` events).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from tercet.module import ModuleApi, ModuleError, Option, StanzaEvent
from tercet.protocol.stanza import Element

META = {"summary": "Truncate or publish over-long messages", "stage": "beta",
        "xeps": ["XEP-0066"]}
NS_OOB = "jabber:x:oob"  # XEP-0066 §4
NS_XHTML_IM = "http://jabber.org/protocol/xhtml-im"
FILE_RE = re.compile(r"^[A-Za-z0-9_-]{22}\.txt$")  # what new_file_name() makes, nothing else
OPTIONS: list[Option[Any]] = [
    Option("long_message_limit", int, 5000, "Longest body (characters) delivered as is.",
           min=100, max=10_000_000),
    Option("long_message_dir", str, "", "Absolute directory for full texts (link mode)."),
    Option("long_message_url", str, "", "URL at which long_message_dir is published."),
    Option("long_message_expire", int, 7 * 86400,
           "Seconds after which published files are deleted.", min=60, max=3650 * 86400),
]


def load(module: ModuleApi) -> None:
    limit = module.option("long_message_limit")
    directory = module.option("long_message_dir")
    base_url = module.option("long_message_url")
    expire: int = module.option("long_message_expire")
    if bool(directory) != bool(base_url):
        raise ModuleError("set both long_message_dir and long_message_url, or neither")
    if directory and not Path(directory).is_absolute():
        raise ModuleError(f"long_message_dir must be an absolute path, not {directory!r}")
    folder = Path(directory) if directory else None
    base_url = base_url if base_url.endswith("/") else base_url + "/"

    def on_message(event: StanzaEvent) -> Awaitable[None] | None:
        stanza = event.stanza
        if stanza.get("type") == "error":
            return None
        long_bodies = [b for b in stanza.find_all("body", stanza.xmlns) if len(b.text) > limit]
        if not long_bodies:
            return None
        stanza.remove_children("html", NS_XHTML_IM)  # rich text would no longer match
        if folder is None:
            for body in long_bodies:
                cut(body, f"[… cut: {len(body.text)} characters in all]")
            return None  # routing goes on with the shortened stanza
        return publish(stanza, long_bodies)

    def cut(body: Element, note: str) -> None:
        body.children = [body.text[:limit] + "\n" + note]

    async def publish(stanza: Element, bodies: list[Element]) -> None:
        assert folder is not None
        for body in bodies:
            name = new_file_name()
            try:  # off the event loop: the sender's session waits, nobody else does
                await asyncio.to_thread(_write_text, folder / name, body.text)
            except OSError as exc:
                module.log.warning("cannot write to %s: %s; cutting instead", folder, exc)
                cut(body, f"[… cut: {len(body.text)} characters in all]")
                continue
            url = base_url + name
            cut(body, f"[… full text: {url}]")
            stanza.tag("x", NS_OOB).text_tag("url", url)

    async def expire_files() -> float:
        assert folder is not None
        deleted = await asyncio.to_thread(_delete_older, folder, module.now() - expire)
        if deleted:
            module.log.info("deleted %d expired file(s) from %s", deleted, folder)
        return min(expire / 4, 3600.0)

    for to_type in ("bare", "full", "host"):
        module.hook(f"pre-message/{to_type}", on_message, 50)
    if folder is not None:
        module.add_timer(0, expire_files)


def new_file_name() -> str:
    """An unguessable name: a link is only known to those who received the message."""
    return secrets.token_urlsafe(16) + ".txt"


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name)  # the web server never serves half a file
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _delete_older(folder: Path, cutoff: float) -> int:
    """Delete this module's files last modified before ``cutoff``; one pass over the folder."""
    if not folder.is_dir():
        return 0
    deleted = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if FILE_RE.match(entry.name) and entry.is_file() and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                deleted += 1
    return deleted
