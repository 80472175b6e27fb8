"""Tell admins about new registrations (XEP-0077 accounts).

Each JID of ``registration_watchers`` (default: the ``admins``) gets a message, of type
``registration_notification_type``, reading ``registration_notification`` with
``{username}``, ``{host}`` and ``{ip}`` replaced.
"""

from __future__ import annotations

from typing import Any

from tercet.module import ModuleApi, Option
from tercet.modules._registration import Registered
from tercet.modules._text import render
from tercet.protocol.jid import JID, InvalidJID
from tercet.protocol.stanza import Element

META = {"summary": "Notify admins of new registrations", "stage": "stable", "xeps": []}
DEFAULT_NOTIFICATION = "User {username} just registered on {host} from {ip}"

OPTIONS: list[Option[Any]] = [
    Option("registration_watchers", list[str], None,
           "JIDs told about new registrations (default: the admins)."),
    Option("registration_notification", str, DEFAULT_NOTIFICATION,
           "Text of the notification ({username}, {host}, {ip} are replaced)."),
    Option("registration_notification_type", str, "chat",
           "Message type of the notification.", choices=("chat", "normal", "headline")),
]


def load(module: ModuleApi) -> None:
    admins = list(module.option("admins"))
    watchers = _valid(module, module.option("registration_watchers") or admins)
    text = module.option("registration_notification")
    mtype = module.option("registration_notification_type")

    async def on_registered(event: Registered) -> None:
        body = render(text, {"username": event.username, "host": event.host,
                             "ip": event.ip})
        for jid in watchers:
            message = Element("message", attrs={"to": jid, "from": module.host,
                                                "type": mtype})
            message.text_tag("body", body)
            await module.send(message)

    module.hook("user-registered", on_registered)


def _valid(module: ModuleApi, jids: list[object]) -> list[str]:
    out = []
    for text in jids:
        try:
            out.append(str(JID.parse(str(text))))
        except InvalidJID:
            module.log.error("registration_watchers: %r is not a JID, ignored", text)
    return out
