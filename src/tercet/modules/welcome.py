"""Welcome message: greet accounts created by in-band registration (XEP-0077).

The server sends ``welcome_message`` (placeholders ``{username}`` and ``{host}``) from the
host to the new account's bare JID right after ``user-registered``; the account has no
session yet, so the offline store keeps it until the first login.
"""

from __future__ import annotations

from typing import Any

from tercet.module import ModuleApi, Option
from tercet.modules._registration import Registered
from tercet.modules._text import render
from tercet.protocol.stanza import Element

META = {"summary": "Welcome message for new accounts", "stage": "stable", "xeps": []}
DEFAULT_WELCOME = "Hello {username}, welcome to the {host} IM server!"

OPTIONS: list[Option[Any]] = [
    Option("welcome_message", str, DEFAULT_WELCOME,
           "Message sent to new accounts ({username} and {host} are replaced)."),
]


def load(module: ModuleApi) -> None:
    text = module.option("welcome_message")

    async def on_registered(event: Registered) -> None:
        message = Element("message", attrs={"to": f"{event.username}@{event.host}",
                                            "from": module.host})
        message.text_tag("body", render(text, {"username": event.username,
                                               "host": event.host}))
        await module.send(message)
        module.log.debug("welcomed %s@%s", event.username, event.host)

    module.hook("user-registered", on_registered)
