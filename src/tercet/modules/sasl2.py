"""Extensible SASL Profile (XEP-0388, ``urn:xmpp:sasl:2``): SASL without a stream restart.

The same mechanisms, channel binding and limits as legacy SASL (saslauth: SCRAM-*-PLUS
with the TLS channel bindings we have, PLAIN only over TLS unless allowed, the
``sasl_max_failures`` count shared with legacy attempts on the stream); the shared parts
live in ``_sasllib``. Other modules take part through events:

* ``sasl2-inline`` (a ``StreamFeaturesEvent`` whose ``features`` is the <inline/> element):
  add inline features (Bind2, FAST);
* ``sasl2-authenticate/<MECHANISM>`` (``Sasl2Request``, awaited): a mechanism not offered
  here (FAST's HT-*), answered in one round trip with a ``Sasl2Outcome``;
* ``sasl2-success`` (``Sasl2Success``, awaited): act on inline requests, fill <success/>
  (an <authorization-identifier/> added there replaces the one computed here).
"""

from __future__ import annotations

import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from tercet.module import (
    ClientSession,
    ModuleApi,
    Option,
    StreamElementEvent,
    StreamError,
    StreamFeaturesEvent,
)
from tercet.modules._authguard import SERVICE as GUARD_SERVICE
from tercet.modules._authguard import AuthGuard
from tercet.modules._sasllib import (
    Sasl2Outcome,
    Sasl2Request,
    Sasl2Success,
    SaslSettings,
    UserAgent,
    authorized_username,
    decode_payload,
    encode_payload,
    resolve_credentials,
)
from tercet.protocol.sasl import (
    Challenge,
    Failure,
    ServerMechanism,
    Step,
    Success,
    offered_mechanisms,
    server_mechanism,
)
from tercet.protocol.stanza import Element

NS = "urn:xmpp:sasl:2"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"  # failure conditions keep RFC 6120's namespace
META = {"summary": "Extensible SASL Profile (SASL2)", "stage": "beta", "xeps": ["XEP-0388"],
        "requires": ["saslauth"]}
OPTIONS: list[Option[Any]] = []
# XEP-0388 §2.2.1: the id is a UUID; software and device are short display strings.
MAX_USER_AGENT_FIELD = 256
_KEY = "sasl2"


class _Sasl2(SaslSettings):
    """SASL2 negotiation for one host's client streams."""

    def features(self, event: StreamFeaturesEvent) -> None:
        session = event.session
        if session.authenticated or (self.require_tls and not session.secure):
            return None
        auth = event.features.tag("authentication", NS)
        for name in offered_mechanisms(self.context(session)):
            auth.text_tag("mechanism", name, NS)
        inline = Element("inline", NS)
        self.module.fire("sasl2-inline", StreamFeaturesEvent(session, inline))
        if inline.children:
            auth.append(inline)
        return None

    def on_authenticate(self, event: StreamElementEvent) -> Awaitable[None] | bool:
        session, el = event.session, event.element
        if session.authenticated:
            raise StreamError("policy-violation", "already authenticated")
        session.sasl_mechanism = None
        if self.require_tls and not session.secure:
            return self.fail(session, "encryption-required")
        name = el.get("mechanism") or ""
        try:
            initial = decode_payload(el.child_text("initial-response", NS) or "")
        except (ValueError, binascii.Error):
            return self.fail(session, "incorrect-encoding")
        agent = _user_agent(el)
        session.data[_KEY] = (el, agent, name)
        ctx = self.context(session)
        mech = server_mechanism(name, ctx) if name in offered_mechanisms(ctx) else None
        if mech is None:
            return self._external(session, Sasl2Request(session, el, initial, agent))
        session.sasl = mech
        session.sasl_mechanism = mech.name
        return self.drive(session, mech, mech.start(initial))

    async def _external(self, session: ClientSession, request: Sasl2Request) -> None:
        name = request.element.get("mechanism") or ""
        outcome = await self.module.fire_async(f"sasl2-authenticate/{name}", request)
        if not isinstance(outcome, Sasl2Outcome):
            self.fail(session, "invalid-mechanism")
            return
        session.sasl_mechanism = name  # a module serves it (FAST's HT-*)
        if outcome.username is None:
            self.fail(session, outcome.condition, outcome.text)
        else:
            await self.succeed(session, outcome.username, outcome.additional_data)

    async def drive(self, session: ClientSession, mech: ServerMechanism, step: Step) -> None:
        # The same failure counts and waits as RFC 6120 SASL (saslauth offers the guard).
        guard = self.module.find(GUARD_SERVICE, AuthGuard)
        step = await resolve_credentials(mech, step, self.module.auth, guard=guard,
                                         session=session)
        if isinstance(step, Challenge):
            el = Element("challenge", NS)
            el.append(encode_payload(step.data))
            session.send_element(el)
        elif isinstance(step, Success):
            username = authorized_username(step.username, step.authzid, self.module.host)
            if username is None:
                self.fail(session, "invalid-authzid" if step.authzid else "not-authorized")
            else:
                if guard is not None:
                    self.module.spawn(guard.succeeded(session))
                await self.succeed(session, username, step.additional_data)
        elif isinstance(step, Failure):
            if guard is not None and step.condition == "not-authorized":
                await guard.failed(session, mech.name)
            self.fail(session, step.condition, step.text)

    async def succeed(self, session: ClientSession, username: str,
                      additional: bytes | None) -> None:
        request, agent, mechanism = session.data.pop(_KEY)
        session.sasl = None
        session.set_authenticated(username)
        await self.module.account_login(session)  # its role, and the last login recorded
        success = Element("success", NS)
        if additional is not None:
            success.text_tag("additional-data", encode_payload(additional), NS)
        event = Sasl2Success(session, request, success, agent, mechanism)
        await self.module.fire_async("sasl2-success", event)
        # XEP-0388 §2.3: the full JID when a resource was bound inline, else the bare JID;
        # a handler that gave the client a session (inline resumption) has set it already.
        ident = success.find("authorization-identifier", NS)
        if ident is not None:
            success.remove(ident)
        else:
            jid = session.full_jid if session.bound else f"{username}@{self.module.host}"
            ident = Element("authorization-identifier", NS)
            ident.append(jid or "")
        success.children.insert(1 if additional is not None else 0, ident)
        session.send_element(success)
        session.log.info("authenticated as %s@%s (SASL2)", username, self.module.host)
        self.module.fire_detached("authentication-success", session)
        for after in event.after:
            result = after()
            if isinstance(result, Awaitable):
                await result

    def fail(self, session: ClientSession, condition: str, text: str | None = None) -> bool:
        session.sasl = None
        session.data.pop(_KEY, None)
        session.auth_failures += 1
        el = Element("failure", NS)
        el.tag(condition, NS_SASL)
        if text:
            el.text_tag("text", text, NS)
        session.send_element(el)
        self.module.fire_detached("authentication-failure", session)
        if session.auth_failures >= self.max_failures:
            session.close(StreamError("policy-violation", "too many failed authentications"))
        return True

    def on_response(self, event: StreamElementEvent) -> Awaitable[None] | bool:
        session = event.session
        mech = session.sasl
        if mech is None or _KEY not in session.data:
            return self.fail(session, "malformed-request")
        try:
            data = decode_payload(event.element.text) or b""
        except (ValueError, binascii.Error):
            return self.fail(session, "incorrect-encoding")
        return self.drive(session, mech, mech.step(data))

    def on_abort(self, event: StreamElementEvent) -> bool:
        return self.fail(event.session, "aborted")

    def on_legacy(self, event: StreamElementEvent) -> bool | None:
        """RFC 6120 <auth/>, <response/> or <abort/> while a SASL2 exchange is under way:
        only ``urn:xmpp:sasl:2`` elements continue it (XEP-0388 §2.4), so this ends the
        exchange with ``malformed-request`` instead of letting legacy SASL drive (and
        answer for) the SASL2 mechanism."""
        if _KEY not in event.session.data:
            return None  # a legacy exchange: saslauth's
        return self.fail(event.session, "malformed-request", "not a SASL2 element")


def load(module: ModuleApi) -> None:
    sasl2 = _Sasl2(module)
    # After legacy SASL's <mechanisms/> (50): clients that know both see both.
    module.hook("stream-features", sasl2.features, 45)
    handlers: dict[str, Callable[[StreamElementEvent], object]] = {
        "authenticate": sasl2.on_authenticate, "response": sasl2.on_response,
        "abort": sasl2.on_abort}
    for name, handler in handlers.items():
        module.hook(f"stream/{NS}:{name}", handler)
    for name in ("auth", "response", "abort"):  # before saslauth's (0)
        module.hook(f"stream/{NS_SASL}:{name}", sasl2.on_legacy, 10)


def _user_agent(el: Element) -> UserAgent:
    """XEP-0388 §2.2.1 <user-agent/>, fields cut to a sane length (they are only labels)."""
    ua = el.find("user-agent", NS)
    if ua is None:
        return UserAgent()

    def short(text: str | None) -> str | None:
        return text[:MAX_USER_AGENT_FIELD] if text else None

    return UserAgent(id=short(ua.get("id")), software=short(ua.child_text("software", NS)),
                     device=short(ua.child_text("device", NS)))
