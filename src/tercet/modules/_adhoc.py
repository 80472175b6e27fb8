"""Ad-hoc commands (XEP-0050) as other modules offer them: the types and the one call.

A module offers a command on its host with :func:`register_command`::

    async def uptime(request: CommandRequest) -> CommandResult:
        return CommandResult.done(f"up {module.now() - started:.0f} s")

    PERMISSIONS = {":uptime": "tercet:registered"}  # module level, as OPTIONS
    ...
    register_command(module, Command("uptime", "Get uptime", uptime, ":uptime"))

The ``adhoc`` module lists the commands a requester may run under the commands node
(§2.2), answers disco#info on each command node (§2.3), keeps the sessions (§3.3) and
calls the handler once per stage. A handler gets a :class:`CommandRequest` (the submitted
form, parsed, and ``data``, a dict kept for the session across stages) and returns a
:class:`CommandResult`: a form to fill (status ``executing``) or the end (``completed``)
with notes and an optional result form. "prev" (§3.4) and "cancel" (§3.5) are handled by
the ``adhoc`` module without the handler: "prev" shows the previous form again with the
``data`` it had then. A handler refuses with a ``StanzaError``; a bad value in a submitted
form raises ``FormError`` (answered ``bad-request`` with ``<bad-payload/>``, §4.6).

Registrations are the registering module's: undone when it unloads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tercet.module import JID, ModuleApi, Session, StanzaError, StanzaEvent
from tercet.protocol.dataforms import Submitted
from tercet.protocol.stanza import Element

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"
#: The service kind commands are offered under (``module.provides``).
SERVICE = "adhoc-command"
#: §4.5: the note types.
NOTE_TYPES = frozenset(("info", "warn", "error"))
#: §3.4: the actions a form stage may allow besides execute.
STAGE_ACTIONS = ("prev", "next", "complete")


@dataclass(frozen=True, slots=True)
class Note:
    """A ``<note/>`` (§4.5): ``type`` is info, warn or error."""

    text: str
    type: str = "info"

    def __post_init__(self) -> None:
        if self.type not in NOTE_TYPES:
            raise ValueError(f"unknown note type {self.type!r}")


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """One stage of a command as its handler sees it.

    ``action`` is "execute" for the first stage, then "next" or "complete" (§3.4);
    ``form`` is the submitted data form (None when the request carried none); ``data``
    belongs to the session and survives between stages; ``stage`` counts the forms the
    requester has answered (0 at the first call)."""

    origin: Session
    actor: JID
    host: str
    action: str
    form: Submitted | None
    data: dict[str, Any]
    stage: int


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a handler answers: a form to fill (``executing``) or the end (``completed``)."""

    status: str
    form: Element | None = None
    notes: tuple[Note, ...] = ()
    #: For ``executing``: the actions the requester may take next (§3.4); the first
    #: is the default that "execute" means.
    actions: tuple[str, ...] = ("complete",)

    @classmethod
    def ask(cls, form: Element, *, actions: tuple[str, ...] = ("complete",),
            notes: tuple[Note, ...] = ()) -> CommandResult:
        """Show ``form`` and wait for the next stage."""
        if not actions or any(a not in STAGE_ACTIONS for a in actions):
            raise ValueError(f"a stage allows some of {STAGE_ACTIONS}, not {actions}")
        return cls("executing", form, notes, actions)

    @classmethod
    def done(cls, *notes: Note | str, form: Element | None = None) -> CommandResult:
        """The command finished; plain strings become info notes."""
        return cls("completed", form,
                   tuple(n if isinstance(n, Note) else Note(n) for n in notes), ())

    @classmethod
    def fail(cls, text: str) -> CommandResult:
        """The command finished without doing what was asked (an error note, §4.5)."""
        return cls("completed", None, (Note(text, "error"),), ())


CommandHandler = Callable[[CommandRequest], "CommandResult | Awaitable[CommandResult]"]


@dataclass(frozen=True, slots=True)
class Command:
    """A command offered on a host: ``node`` names it (§2.2), ``permission`` is the action
    ``module.may`` checks for the requester (":x" is the registering module's ``x``)."""

    node: str
    name: str
    handler: CommandHandler = field(compare=False)
    permission: str


def register_command(module: ModuleApi, command: Command) -> Command:
    """Offer ``command`` on ``module``'s host until the module unloads; answers disco#info
    on its node (§2.3) for requesters with the permission. Returns it, permission
    qualified."""
    permission = command.permission
    if permission.startswith(":"):
        permission = f"{module.name}{permission}"
    registered = replace(command, permission=permission)
    module.provides(SERVICE, registered)

    def on_info(event: StanzaEvent) -> bool:
        if not module.may(registered.permission, event):
            event.origin.send(event.stanza.error_reply(StanzaError("forbidden")))
            return True
        reply = event.stanza.reply()
        query = reply.tag("query", NS_INFO, {"node": registered.node})
        query.tag("identity", NS_INFO, {"category": "automation", "type": "command-node",
                                        "name": registered.name})
        query.tag("feature", NS_INFO, {"var": NS_COMMANDS})
        query.tag("feature", NS_INFO, {"var": NS_DATA})
        event.origin.send(reply)
        return True

    module.hook(f"disco-info-node/{registered.node}", on_info)
    return registered
