"""Tell admins about new registrations (XEP-0077 accounts).

Each JID of ``registration_watchers`` (default: the ``admins``) gets a message, of type
``registration_notification_type``, reading ``registration_notification`` with
``{username}``, ``{host}`` and ``{ip}`` replaced.
"""

from __future__ import annotations

import inspect
from typing import Any

from tercet.core.config import register_option
from tercet.core.moduleapi import ModuleApi
from tercet.modules._text import render
from tercet.protocol.jid import JID, InvalidJID
from tercet.protocol.stanza import Element

META = {"summary": "Notify admins of new registrations", "stage": "stable", "xeps": []}
DEFAULT_NOTIFICATION = "User {username} just registered on {host} from {ip}"

register_option("registration_watchers", list[str], None,
                "JIDs told about new registrations (default: the admins).",
                owner="watchregistrations")
register_option("registration_notification", str, DEFAULT_NOTIFICATION,
                "Text of the notification ({username}, {host}, {ip} are replaced).",
                owner="watchregistrations")
register_option("registration_notification_type", str, "chat",
                "Message type of the notification.", choices=("chat", "normal", "headline"),
                owner="watchregistrations")


def load(module: ModuleApi) -> None:
    admins = list(module.option("admins", [], type=list))
    watchers = _valid(module, module.option("registration_watchers", None, type=list)
                      or admins)
    text = module.option("registration_notification", DEFAULT_NOTIFICATION, type=str)
    mtype = module.option("registration_notification_type", "chat", type=str,
                          choices=("chat", "normal", "headline"))

    async def on_registered(event: Any) -> None:
        body = render(text, {"username": event.username, "host": event.host,
                             "ip": event.ip})
        for jid in watchers:
            message = Element("message", attrs={"to": jid, "from": module.host,
                                                "type": mtype})
            message.text_tag("body", body)
            await sent(module.send(message))

    module.hook("user-registered", on_registered)


def _valid(module: ModuleApi, jids: list[Any]) -> list[str]:
    out = []
    for text in jids:
        try:
            out.append(str(JID.parse(str(text))))
        except InvalidJID:
            module.log.error("registration_watchers: %r is not a JID, ignored", text)
    return out


async def sent(result: Any) -> None:
    """Wait for routing to finish when a handler on the way was asynchronous."""
    if inspect.isawaitable(result):
        await result
