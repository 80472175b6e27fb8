"""Push Notifications (XEP-0357 ``urn:xmpp:push:0``), Prosody's module and option names.

A client registers an *app server* (any JID: a component, a user's full JID) and a node
with ``<enable jid node>`` (optionally with a publish-options data form) and removes it
with ``<disable jid [node]>``, both iqs to its own account. Registrations are kept per
user in the keyval store ``cloud_notify``, at most ``push_max_devices`` of them (the
oldest goes first).

A notification is an iq set to the app server with a pubsub ``<publish/>`` of a
``urn:xmpp:push:summary`` form (§6), published when something important (a message with
a body, a subscription request) arrives for a user and a registered device has no live
session:

* the user has no available resource (the message goes to offline storage, or the
  subscription request waits): every registration of the user is notified;
* the session that enabled a registration is hibernated by stream management (XEP-0198
  §5) and no other session of the user is live and available: that registration is
  notified (a send filter on the session sees what is queued for it).

A message that another client of the user received live notifies nobody. An ``<error/>``
reply from an app server backs that registration off (``push_error_backoff`` doubling per
error, at most an hour); after ``push_max_errors`` errors in a row it is disabled.

What the summary reveals follows Prosody's options: the sender only with
``push_notification_with_sender``, the body only with ``push_notification_with_body``;
otherwise a message with a body is marked important by the placeholder body
``push_notification_important_body`` ("New Message!"; empty: no body at all).

A hibernated session that enabled push and has not been woken by a notification yet is
kept past ``smacks_hibernation_time``, up to ``push_max_hibernation_timeout`` after its
connection was lost (its device cannot come back before something wakes it); once a
notification went out, the device has ``smacks_hibernation_time`` from then to resume.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tercet.module import (
    ClientSession,
    Element,
    InvalidJID,
    ModuleApi,
    Option,
    SessionReport,
    StanzaError,
    StanzaEvent,
    StorageError,
    iq,
)
from tercet.modules._smlib import HIBERNATION_TIMEOUT, HibernationTimeout

NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"
SUMMARY = "urn:xmpp:push:summary"
KEY = "cloud_notify"
META = {"summary": "Push Notifications", "stage": "beta", "xeps": ["XEP-0357"]}

# Bounds on what a client may store per registration (XEP-0357 §5 sets none; these keep
# one user's records small). A node is an opaque token the app server gave the device.
MAX_NODE = 1024
MAX_FIELDS = 32
MAX_VALUE = 1024
# Push iqs awaiting their reply, server-wide per host; the oldest is forgotten first.
MAX_PENDING = 1000
MAX_BACKOFF = 3600.0

WITH_BODY = Option("push_notification_with_body", bool, False,
                   "Put the message body in notifications (the app server and the push "
                   "service see it).", cite="XEP-0357 §6")
MAX_ERRORS = Option("push_max_errors", int, 16,
                    "Error replies in a row from an app server after which the "
                    "registration is disabled.", min=1, max=1000, cite="XEP-0357 §7")
MAX_DEVICES = Option("push_max_devices", int, 5,
                     "Registrations (app server and node) kept per user; enabling one more "
                     "drops the oldest.", min=1, max=100, cite="XEP-0357 §5")
BACKOFF = Option("push_error_backoff", float, 30.0,
                 "Seconds a registration is not notified after an error reply, doubled "
                 "for each further error in a row (at most an hour).", min=0, max=3600,
                 cite="XEP-0357 §7")
WITH_SENDER = Option("push_notification_with_sender", bool, False,
                     "Put the sender's JID in notifications as last-message-sender (the app "
                     "server and the push service see it).", cite="XEP-0357 §6")
IMPORTANT_BODY = Option("push_notification_important_body", str, "New Message!",
                        "Body sent in place of the real one for a message with a body when "
                        "push_notification_with_body is false, so the app server can tell "
                        "an important push; empty: no body.", cite="XEP-0357 §6")
MAX_HIBERNATION = Option("push_max_hibernation_timeout", int, 259200,
                         "Seconds a session hibernated by stream management with push "
                         "enabled is kept, at most, while no notification has woken its "
                         "device (0: only smacks_hibernation_time).", min=0,
                         max=30 * 86400, cite="XEP-0198 §5")
OPTIONS: list[Option[Any]] = [WITH_BODY, WITH_SENDER, IMPORTANT_BODY, MAX_ERRORS, MAX_DEVICES,
                              BACKOFF, MAX_HIBERNATION]


@dataclass
class Pending:
    """What arrived for a user since a session of theirs was last live (the summary)."""

    messages: int = 0
    subscriptions: int = 0
    sender: str | None = None
    body: str | None = None


@dataclass
class Failures:
    count: int = 0
    not_before: float = 0.0


@dataclass
class SessionPush:
    """``session.data[KEY]``: the registrations this session enabled."""

    ids: set[str] = field(default_factory=set)
    # When the first notification went out for this session while hibernated.
    woken: float | None = None


def load(module: ModuleApi) -> None:
    push = CloudNotify(module)
    module.provides("account-feature", NS_PUSH)
    module.hook(f"iq-set/self/{NS_PUSH}:enable", push.on_enable)
    module.hook(f"iq-set/self/{NS_PUSH}:disable", push.on_disable)
    # Before offline storage (-1) and presence delivery; observers, they never stop a chain.
    module.hook("message/offline", push.on_offline, 10)
    module.hook("presence/bare", push.on_presence, 10)
    module.hook("iq/host", push.on_reply, 10)  # before iq dispatch (-1)
    module.hook("resource-bind", push.on_live)
    module.hook("session-closed", push.on_closed)
    module.hook("session-report", report)  # `c2s list` in the admin shell
    module.hook(HIBERNATION_TIMEOUT, push.on_hibernation_timeout)
    module.on_unload(push.unload)


class CloudNotify:
    """The module on one host: options, the registration store, what is in flight."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.with_body = module.option(WITH_BODY)
        self.with_sender = module.option(WITH_SENDER)
        self.important_body = module.option(IMPORTANT_BODY)
        self.max_hibernation = module.option(MAX_HIBERNATION)
        self.max_errors = module.option(MAX_ERRORS)
        self.max_devices = module.option(MAX_DEVICES)
        self.backoff = module.option(BACKOFF)
        self.store = module.open_keyval(KEY)  # user -> {id: registration}
        self.pending: dict[str, Pending] = {}  # user -> not seen live yet
        self.failures: dict[tuple[str, str], Failures] = {}  # (user, id)
        self.in_flight: dict[str, tuple[str, str, str]] = {}  # iq id -> user, id, jid
        self.ids = itertools.count(1)
        self.filtered: list[ClientSession] = []

    # -- enable and disable (§5, §8) ------------------------------------------------------
    async def on_enable(self, event: StanzaEvent) -> bool:
        user = self.own_user(event)
        payload = event.stanza.iq_payload()
        if user is None or payload is None:
            return self.refuse(event, "forbidden")
        jid = self.jid(payload.get("jid"))
        node = payload.get("node") or ""
        options = publish_options(payload.find("x", NS_DATA))
        if jid is None or not node or len(node) > MAX_NODE or options is None:
            return self.refuse(event, "bad-request")
        reg_id = f"{jid}<{node}"
        try:
            async with self.module.lock(user):
                regs = dict(await self.store.get(user) or {})
                regs.pop(reg_id, None)
                regs[reg_id] = {"jid": jid, "node": node, "options": options,
                                "when": self.module.now()}
                while len(regs) > self.max_devices:
                    oldest = min(regs, key=lambda r: float(regs[r].get("when", 0)))
                    self.forget(user, oldest)
                    del regs[oldest]
                await self.store.set(user, regs)
        except StorageError:
            self.module.log.exception("could not store a push registration of %s", user)
            return self.refuse(event, "internal-server-error")
        self.failures.pop((user, reg_id), None)
        origin = event.origin
        if self.module.is_host_client(origin):
            self.track(user, origin, reg_id)
        origin.send(event.stanza.reply())
        return True

    async def on_disable(self, event: StanzaEvent) -> bool:
        user = self.own_user(event)
        payload = event.stanza.iq_payload()
        if user is None or payload is None:
            return self.refuse(event, "forbidden")
        jid = self.jid(payload.get("jid"))
        node = payload.get("node")
        if jid is None:
            return self.refuse(event, "bad-request")
        try:
            async with self.module.lock(user):
                regs = dict(await self.store.get(user) or {})
                gone = [r for r, reg in regs.items()
                        if reg.get("jid") == jid and (node is None or reg.get("node") == node)]
                for reg_id in gone:
                    del regs[reg_id]
                    self.forget(user, reg_id)
                if gone:
                    await self.store.set(user, regs or None)
        except StorageError:
            self.module.log.exception("could not remove a push registration of %s", user)
            return self.refuse(event, "internal-server-error")
        event.origin.send(event.stanza.reply())
        return True

    def own_user(self, event: StanzaEvent) -> str | None:
        sender = event.from_
        if sender is None or sender.domain != self.module.host or sender.node is None:
            return None
        return sender.node

    def jid(self, text: str | None) -> str | None:
        if not text:
            return None
        try:
            return str(self.module.parse_jid(text))
        except InvalidJID:
            return None

    def refuse(self, event: StanzaEvent, condition: str) -> bool:
        event.origin.send(event.stanza.error_reply(StanzaError(condition)))
        return True

    def track(self, user: str, session: ClientSession, reg_id: str) -> None:
        """Tie ``reg_id`` to ``session`` (and to no other session of the user)."""
        for other in self.module.sessions(user).values():
            state = other.data.get(KEY)
            if isinstance(state, SessionPush):
                state.ids.discard(reg_id)
        state = session.data.get(KEY)
        if not isinstance(state, SessionPush):
            state = session.data[KEY] = SessionPush()

            def watch(stanza: Element) -> Element:
                return self.outgoing(session, stanza)
            session.add_send_filter(watch, 200)  # before anything that holds stanzas back
            session.data[KEY + ".filter"] = watch
            self.filtered.append(session)
        state.ids.add(reg_id)

    def forget(self, user: str, reg_id: str) -> None:
        self.failures.pop((user, reg_id), None)
        for session in self.module.sessions(user).values():
            state = session.data.get(KEY)
            if isinstance(state, SessionPush):
                state.ids.discard(reg_id)

    # -- what triggers a notification ------------------------------------------------------
    def on_offline(self, event: StanzaEvent) -> None:
        """A message for a user with no available resource: notify every registration."""
        to = event.to
        if to is not None and to.node is not None and important(event.stanza):
            self.module.spawn(self.notify(to.node, event.stanza, None))

    def on_presence(self, event: StanzaEvent) -> None:
        to = event.to
        if (event.stanza.get("type") != "subscribe" or to is None or to.node is None
                or to.domain != self.module.host):
            return
        if not any(s.available for s in self.module.sessions(to.node).values()):
            self.module.spawn(self.notify(to.node, event.stanza, None))
        # A hibernated session that is available gets it through its send filter.

    def outgoing(self, session: ClientSession, stanza: Element) -> Element:
        user = session.username
        if user is None:
            return stanza
        state = session.data.get(KEY)
        if not session.detached:
            self.pending.pop(user, None)  # the device is live again (resumed)
            if isinstance(state, SessionPush):
                state.woken = None
            return stanza
        if not isinstance(state, SessionPush) or not state.ids or not important(stanza):
            return stanza
        live = any(not s.detached and s.available and s is not session
                   for s in self.module.sessions(user).values())
        if not live:
            if state.woken is None:
                state.woken = self.module.now()
            self.module.spawn(self.notify(user, stanza, set(state.ids)))
        return stanza

    def on_hibernation_timeout(self, event: HibernationTimeout) -> None:
        """Keep a hibernated session with push enabled until its device was woken and had
        ``smacks_hibernation_time`` to resume, at most ``push_max_hibernation_timeout``
        after its connection was lost (Prosody's rule)."""
        state = event.session.data.get(KEY)
        if not isinstance(state, SessionPush) or not state.ids or self.max_hibernation <= 0:
            return
        cap = event.since + self.max_hibernation
        if state.woken is not None and state.woken < event.since:
            state.woken = None  # woken during an earlier hibernation, resumed since
        if state.woken is None:  # nothing woke the device yet: it cannot come back
            event.extend(min(cap, event.now + event.period))
        else:
            event.extend(min(cap, state.woken + event.period))

    def on_live(self, session: ClientSession) -> None:
        if session.username is not None:
            self.pending.pop(session.username, None)

    def on_closed(self, session: ClientSession) -> None:
        watch = session.data.pop(KEY + ".filter", None)
        if watch is not None:
            session.remove_send_filter(watch)
        if session in self.filtered:
            self.filtered.remove(session)

    def unload(self) -> None:
        for session in self.filtered:
            self.on_closed(session)

    # -- publishing (§6) and the app server's answer (§7) ----------------------------------
    async def notify(self, user: str, stanza: Element, only: set[str] | None) -> None:
        """Count ``stanza`` in the user's summary and publish it to the registrations
        (``only`` those ids, or all)."""
        pending = self.pending.setdefault(user, Pending())
        if stanza.name == "presence":
            pending.subscriptions += 1
        else:
            pending.messages += 1
            pending.sender = stanza.get("from")
            pending.body = stanza.child_text("body")
        try:
            regs: dict[str, Any] = await self.store.get(user) or {}
        except StorageError:
            self.module.log.exception("could not read the push registrations of %s", user)
            return
        now = self.module.now()
        for reg_id, reg in regs.items():
            if only is not None and reg_id not in only:
                continue
            failures = self.failures.get((user, reg_id))
            if failures is not None and now < failures.not_before:
                continue  # backing off after an error
            await self.publish(user, reg_id, reg, pending)

    async def publish(self, user: str, reg_id: str, reg: dict[str, Any],
                      pending: Pending) -> None:
        iq_id = f"push{next(self.ids)}"
        request = iq("set", iq_id, to=reg["jid"], from_=self.module.host)
        pubsub = request.tag("pubsub", NS_PUBSUB)
        item = pubsub.tag("publish", attrs={"node": reg["node"]}).tag("item")
        fields: list[tuple[str, str | None]] = [
            ("FORM_TYPE", SUMMARY), ("message-count", str(pending.messages)),
            ("pending-subscription-count", str(pending.subscriptions))]
        if self.with_sender:
            fields.append(("last-message-sender", pending.sender))
        if self.with_body:
            fields.append(("last-message-body", pending.body))
        elif pending.body is not None and self.important_body:
            fields.append(("last-message-body", self.important_body))
        item.tag("notification", NS_PUSH).append(
            form((name, [value]) for name, value in fields if value is not None))
        if reg.get("options"):
            pubsub.tag("publish-options").append(
                form((name, list(values)) for name, values in reg["options"]))
        self.in_flight[iq_id] = (user, reg_id, reg["jid"])
        while len(self.in_flight) > MAX_PENDING:
            del self.in_flight[next(iter(self.in_flight))]
        await self.module.send(request)

    async def on_reply(self, event: StanzaEvent) -> bool | None:
        stanza = event.stanza
        kind = stanza.get("type")
        if kind not in ("result", "error"):
            return None
        found = self.in_flight.get(stanza.get("id") or "")
        if found is None or str(event.from_) != found[2]:
            return None
        del self.in_flight[stanza.get("id") or ""]
        user, reg_id, _jid = found
        if kind == "result":
            self.failures.pop((user, reg_id), None)
            return True
        failures = self.failures.setdefault((user, reg_id), Failures())
        failures.count += 1
        failures.not_before = self.module.now() + min(
            MAX_BACKOFF, self.backoff * 2 ** (failures.count - 1))
        if failures.count >= self.max_errors:
            self.module.log.info("disabling push registration %s of %s after %d errors",
                                 reg_id, user, failures.count)
            await self.drop(user, reg_id)
        return True

    async def drop(self, user: str, reg_id: str) -> None:
        self.forget(user, reg_id)
        try:
            async with self.module.lock(user):
                regs = dict(await self.store.get(user) or {})
                if regs.pop(reg_id, None) is not None:
                    await self.store.set(user, regs or None)
        except StorageError:
            self.module.log.exception("could not disable a push registration of %s", user)


def important(stanza: Element) -> bool:
    """What wakes a device: a chat or normal message with a body, a subscription request."""
    if stanza.name == "presence":
        return stanza.get("type") == "subscribe"
    return (stanza.name == "message" and stanza.get("type", "normal") in ("chat", "normal")
            and stanza.find("body") is not None)


def publish_options(x: Element | None) -> list[list[Any]] | None:
    """The fields of a submitted publish-options form as JSON-able ``[var, [values]]``
    pairs; ``[]`` without a form, ``None`` when it is malformed or too large."""
    if x is None:
        return []
    if x.get("type") not in ("submit", None):
        return None
    fields: list[list[Any]] = []
    for f in x.find_all("field", NS_DATA):
        var = f.get("var")
        values = [v.text for v in f.find_all("value", NS_DATA)]
        if not var or len(var) > MAX_VALUE or any(len(v) > MAX_VALUE for v in values):
            return None
        fields.append([var, values[:MAX_FIELDS]])
    return None if len(fields) > MAX_FIELDS else fields


def form(fields: Iterable[tuple[str, list[str]]]) -> Element:
    x = Element("x", NS_DATA, {"type": "submit"})
    for name, values in fields:
        attrs = {"var": name, "type": "hidden"} if name == "FORM_TYPE" else {"var": name}
        f = x.tag("field", attrs=attrs)
        for value in values:
            f.text_tag("value", value)
    return x


def report(event: SessionReport) -> None:
    state = event.session.data.get(KEY)
    if isinstance(state, SessionPush) and state.ids:
        event.features["push"] = len(state.ids)
