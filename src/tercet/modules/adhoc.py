"""Ad-hoc commands (XEP-0050): the commands node, sessions and actions, for the commands
other modules register (``tercet.modules._adhoc``).

The list (§2.2, disco#items of the commands node) shows only the commands the requester's
role may run; running one without the permission is ``forbidden``. A session (§3.3) is
bound to the full JID that started it, ends when the command completes or is cancelled
(§3.5), and expires ``adhoc_session_timeout`` seconds after its last stage (answered
``not-allowed`` with ``<session-expired/>``, §4.6); each requester holds at most
``adhoc_max_sessions`` (the oldest is dropped). "prev" (§3.4) shows the previous form again
with the session data it had. Commands live on virtual hosts; components (the MUC) answer
their own nodes.

Built in: ``ping`` (any local user; as Prosody's ``mod_ping`` offers it).
"""

from __future__ import annotations

import copy
import inspect
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from tercet.module import JID, ModuleApi, Option, StanzaError, StanzaEvent
from tercet.modules._adhoc import (
    NS_COMMANDS,
    SERVICE,
    Command,
    CommandRequest,
    CommandResult,
    register_command,
)
from tercet.protocol.dataforms import FormError, find_form, parse_submit
from tercet.protocol.stanza import Element

NS_ITEMS = "http://jabber.org/protocol/disco#items"
META = {"summary": "Ad-hoc commands", "stage": "stable", "xeps": ["XEP-0050"]}

SESSION_TIMEOUT = Option(
    "adhoc_session_timeout", float, 600.0,
    "Seconds a command session waits for its next stage before it expires.",
    min=10, max=86400, cite="XEP-0050 §3.3")
MAX_SESSIONS = Option(
    "adhoc_max_sessions", int, 5,
    "Command sessions one requester (full JID) may hold at once; the oldest is dropped.",
    min=1, max=1000, cite="XEP-0050 §3.3")
#: Sessions on a host, all requesters together: a bound on memory whatever the number of
#: requesters (the oldest goes first).
MAX_HOST_SESSIONS = Option(
    "adhoc_max_host_sessions", int, 10_000,
    "Command sessions kept on one host, all requesters together.",
    min=1, max=10_000_000, cite="XEP-0050 §3.3")
OPTIONS: list[Option[Any]] = [SESSION_TIMEOUT, MAX_SESSIONS, MAX_HOST_SESSIONS]
PERMISSIONS = {":ping": "tercet:registered"}

#: §3.4 and §4: the action attribute's values.
ACTIONS = frozenset(("execute", "cancel", "prev", "next", "complete"))
#: The forms (stages) one session remembers for "prev".
MAX_STAGES = 32


def command_error(condition: str, specific: str, text: str | None = None) -> StanzaError:
    """A stanza error with the XEP-0050 §4.6 application condition ``specific``."""
    return StanzaError(condition, text, extra=Element(specific, NS_COMMANDS))


@dataclass(slots=True)
class _Stage:
    """A form shown to the requester and the session data when it was shown."""

    result: CommandResult
    data: dict[str, Any]


@dataclass(slots=True)
class _Session:
    id: str
    command: Command
    owner: str
    touched: float
    data: dict[str, Any] = field(default_factory=dict)
    stages: list[_Stage] = field(default_factory=list)


class Sessions:
    """The command sessions of one host, oldest first, bounded per requester and in all."""

    def __init__(self, per_owner: int, total: int) -> None:
        self.per_owner = per_owner
        self.total = total
        self._by_id: OrderedDict[str, _Session] = OrderedDict()

    def add(self, session: _Session) -> None:
        owned = [s for s in self._by_id.values() if s.owner == session.owner]
        for old in owned[: max(0, len(owned) - self.per_owner + 1)]:
            del self._by_id[old.id]
        self._by_id[session.id] = session
        while len(self._by_id) > self.total:
            self._by_id.popitem(last=False)

    def get(self, sid: str) -> _Session | None:
        return self._by_id.get(sid)

    def touch(self, session: _Session, now: float) -> None:
        session.touched = now
        if session.id in self._by_id:
            self._by_id.move_to_end(session.id)

    def drop(self, sid: str) -> None:
        self._by_id.pop(sid, None)

    def sweep(self, older_than: float) -> int:
        """Forget sessions untouched since ``older_than``; they are in touch order."""
        gone = 0
        while self._by_id:
            sid, session = next(iter(self._by_id.items()))
            if session.touched >= older_than:
                break
            del self._by_id[sid]
            gone += 1
        return gone

    def __len__(self) -> int:
        return len(self._by_id)


class Adhoc:
    """The commands node and the sessions of one host."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.timeout = module.option(SESSION_TIMEOUT)
        self.sessions = Sessions(module.option(MAX_SESSIONS), module.option(MAX_HOST_SESSIONS))

    def commands(self) -> list[Command]:
        return [c for c in self.module.providers(SERVICE) if isinstance(c, Command)]

    def find(self, node: str) -> Command | None:
        return next((c for c in self.commands() if c.node == node), None)

    def sweep(self) -> float:
        """Sessions expired for a whole timeout go (until then they answer
        session-expired, so the requester learns why)."""
        self.sessions.sweep(self.module.now() - 2 * self.timeout)
        return self.timeout

    # -- discovery (§2) ---------------------------------------------------------------
    def on_list(self, event: StanzaEvent) -> bool:
        reply = event.stanza.reply()
        query = reply.tag("query", NS_ITEMS, {"node": NS_COMMANDS})
        for command in self.commands():
            if self.module.may(command.permission, event):
                query.tag("item", NS_ITEMS, {"jid": self.module.host, "node": command.node,
                                             "name": command.name})
        event.origin.send(reply)
        return True

    # -- execution (§3) ---------------------------------------------------------------
    async def on_command(self, event: StanzaEvent) -> bool:
        stanza = event.stanza
        payload = stanza.iq_payload()
        assert payload is not None
        try:
            reply = await self.step(event, payload)
        except StanzaError as err:
            event.origin.send(stanza.error_reply(err))
            return True
        except FormError as err:
            event.origin.send(stanza.error_reply(command_error(
                "bad-request", "bad-payload", str(err))))
            return True
        except Exception:
            # A broken command must not leave the iq unanswered; the details are the
            # operator's (RFC 6120 §8.3.3.6), never the requester's.
            self.module.log.exception("command %s failed", payload.get("node"))
            event.origin.send(stanza.error_reply(StanzaError("internal-server-error")))
            return True
        answer = stanza.reply()
        answer.append(reply)
        event.origin.send(answer)
        return True

    async def step(self, event: StanzaEvent, payload: Element) -> Element:
        node = payload.get("node") or ""
        action = payload.get("action") or "execute"
        if action not in ACTIONS:
            raise command_error("bad-request", "malformed-action")
        actor = event.from_
        if actor is None:
            raise StanzaError("bad-request")
        sid = payload.get("sessionid")
        if sid is None:
            return await self.start(event, actor, node, action, payload)
        session = self.session_for(sid, node, actor)
        if not self.module.may(session.command.permission, event):
            self.sessions.drop(sid)
            raise StanzaError("forbidden")
        if action == "cancel":
            self.sessions.drop(sid)
            return self.element(session, "canceled")
        if action == "prev":
            return self.previous(session)
        return await self.advance(event, actor, session, action, payload)

    async def start(self, event: StanzaEvent, actor: JID, node: str, action: str,
                    payload: Element) -> Element:
        command = self.find(node)
        if command is None:
            raise StanzaError("item-not-found", "No such command")
        if not self.module.may(command.permission, event):
            raise StanzaError("forbidden")
        if action != "execute":
            raise command_error("bad-request", "bad-action", "Start a command with execute")
        session = _Session(secrets.token_urlsafe(12), command, str(actor), self.module.now())
        self.sessions.add(session)
        return await self.run(event, actor, session, "execute", payload)

    def session_for(self, sid: str, node: str, actor: JID) -> _Session:
        session = self.sessions.get(sid)
        # §3.3: a session is its requester's; another JID is told it does not exist.
        if session is None or session.owner != str(actor) or session.command.node != node:
            raise command_error("bad-request", "bad-sessionid")
        if self.find(node) is not session.command:  # its module was unloaded or reloaded
            self.sessions.drop(sid)
            raise command_error("bad-request", "bad-sessionid")
        if self.module.now() - session.touched > self.timeout:
            self.sessions.drop(sid)
            raise command_error("not-allowed", "session-expired")
        return session

    def previous(self, session: _Session) -> Element:
        """§3.4: back to the previous stage, with the data it had."""
        if len(session.stages) < 2 or "prev" not in session.stages[-1].result.actions:
            raise command_error("bad-request", "bad-action")
        session.stages.pop()
        stage = session.stages[-1]
        session.data = copy.deepcopy(stage.data)
        self.sessions.touch(session, self.module.now())
        return self.element(session, stage.result.status, stage.result)

    async def advance(self, event: StanzaEvent, actor: JID, session: _Session, action: str,
                      payload: Element) -> Element:
        allowed = session.stages[-1].result.actions if session.stages else ()
        if action == "execute":
            action = allowed[0] if allowed else "complete"  # §3.4: the default action
        if action not in allowed:
            raise command_error("bad-request", "bad-action")
        return await self.run(event, actor, session, action, payload)

    async def run(self, event: StanzaEvent, actor: JID, session: _Session, action: str,
                  payload: Element) -> Element:
        form = find_form(payload)
        request = CommandRequest(event.origin, actor, self.module.host, action,
                                 parse_submit(form) if form is not None else None,
                                 session.data, len(session.stages))
        outcome = session.command.handler(request)
        result = await outcome if inspect.isawaitable(outcome) else outcome
        if result.status == "completed":
            self.sessions.drop(session.id)
        else:
            if len(session.stages) >= MAX_STAGES:
                self.sessions.drop(session.id)
                raise StanzaError("resource-constraint", "Too many stages")
            session.stages.append(_Stage(result, copy.deepcopy(session.data)))
            self.sessions.touch(session, self.module.now())
        return self.element(session, result.status, result)

    @staticmethod
    def element(session: _Session, status: str,
                result: CommandResult | None = None) -> Element:
        """The ``<command/>`` of a response (§4)."""
        el = Element("command", NS_COMMANDS, {"node": session.command.node,
                                              "sessionid": session.id, "status": status})
        if result is None:
            return el
        if status == "executing":
            actions = el.tag("actions", attrs={"execute": result.actions[0]})
            for name in result.actions:
                actions.tag(name)
        for note in result.notes:
            el.text_tag("note", note.text, attrs={"type": note.type})
        if result.form is not None:
            el.append(result.form.copy())
        return el


def ping(_request: CommandRequest) -> CommandResult:
    return CommandResult.done("Pong")


def load(module: ModuleApi) -> None:
    adhoc = Adhoc(module)
    module.add_feature(NS_COMMANDS)
    module.hook(f"disco-items-node/{NS_COMMANDS}", adhoc.on_list)
    module.hook(f"disco-info-node/{NS_COMMANDS}", on_commands_info)
    module.hook(f"iq-set/host/{NS_COMMANDS}:command", adhoc.on_command)
    module.add_timer(adhoc.timeout, adhoc.sweep)
    register_command(module, Command("ping", "Ping", ping, ":ping"))


def on_commands_info(event: StanzaEvent) -> bool:
    """§2.2: the commands node itself is an item with its own info."""
    reply = event.stanza.reply()
    query = reply.tag("query", "http://jabber.org/protocol/disco#info",
                      {"node": NS_COMMANDS})
    query.tag("identity", attrs={"category": "automation", "type": "command-list",
                                 "name": "Commands"})
    event.origin.send(reply)
    return True
