"""Message of the day: when a client session sends its first available presence, the server
sends it a message with ``motd_text`` (as Prosody's mod_motd does).

The message is routed like any other message from the host (``module.send``), so archiving
or carbons modules see it too. Nothing is sent while ``motd_text`` is empty.
"""

from __future__ import annotations

from typing import Any

from tercet.module import ClientSession, ModuleApi, Option
from tercet.protocol.stanza import message

META = {"summary": "Message of the day at login", "stage": "stable", "xeps": []}
OPTIONS: list[Option[Any]] = [
    Option("motd_text", str, "", "The message of the day ({host} is replaced); empty: none."),
    Option("motd_subject", str, "", "Subject of the message; empty: none."),
]


def format_motd(text: str, host: str) -> str:
    """What users read: each line stripped (TOML multi-line strings keep indentation),
    leading and trailing blank lines dropped, ``{host}`` replaced by the domain."""
    lines = [line.strip() for line in text.strip().splitlines()]
    return "\n".join(lines).replace("{host}", host)


def load(module: ModuleApi) -> None:
    text = module.option("motd_text")
    subject = module.option("motd_subject")

    async def on_initial_presence(session: ClientSession) -> None:
        # An observer: it returns None, so other handlers of the event still run.
        body = format_motd(text, module.host)
        if not body:
            return
        stanza = message(to=session.full_jid, from_=module.host, body=body)
        if subject:
            stanza.text_tag("subject", subject)
        await module.send(stanza)  # delivery may wait (e.g. on storage)

    # Fired (and awaited) by the presence module once per session, after its first available
    # presence (RFC 6121 §4.2).
    module.hook("initial-presence", on_initial_presence)
