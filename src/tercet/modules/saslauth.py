"""SASL authentication of client streams (RFC 6120 §6), channel binding per XEP-0440.

The mechanisms are sans-I/O state machines (tercet.protocol.sasl); this module feeds them
the peer's data, looks accounts up when they ask, and speaks the XML of RFC 6120 §6.4.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable
from typing import Any

from tercet.module import (
    ClientSession,
    ModuleApi,
    Option,
    StreamElementEvent,
    StreamFeaturesEvent,
)
from tercet.modules._authguard import SERVICE as GUARD_SERVICE
from tercet.modules._authguard import AuthGuard
from tercet.modules._sasllib import SaslSettings, decode_payload, resolve_credentials
from tercet.modules._sasllib import nodeprep_or_none as _nodeprep
from tercet.protocol.errors import StreamError
from tercet.protocol.jid import prep_jid
from tercet.protocol.sasl import (
    Challenge,
    Failure,
    ServerMechanism,
    Step,
    Success,
    channel_binding_types,
    offered_mechanisms,
    server_mechanism,
)
from tercet.protocol.stanza import Element

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"
META = {"summary": "SASL authentication (RFC 6120 §6)", "stage": "stable",
        "xeps": ["XEP-0440"]}
# RFC 6120 §6.4.5 leaves the retry count to the server; beyond this the stream closes.
DEFAULT_MAX_FAILURES = 3

OPTIONS: list[Option[Any]] = [
    Option("allow_unencrypted_plain_auth", bool, False,
           "Offer PLAIN authentication on unencrypted connections.", cite="RFC 4616 §6"),
    Option("sasl_max_failures", int, DEFAULT_MAX_FAILURES,
           "Failed authentication attempts before the connection is closed.",
           min=1, max=100, cite="RFC 6120 §6.4.5"),
]


class _Sasl(SaslSettings):
    """SASL negotiation for one host's client streams, with the options read at load."""

    def features(self, event: StreamFeaturesEvent) -> None:
        session = event.session
        if session.authenticated or (self.require_tls and not session.secure):
            return None
        ctx = self.context(session)
        mechs = event.features.tag("mechanisms", NS_SASL)
        for name in offered_mechanisms(ctx):
            mechs.text_tag("mechanism", name)
        cb_types = channel_binding_types(ctx)
        if cb_types:
            cb = event.features.tag("sasl-channel-binding", NS_SASL_CB)
            for cb_type in cb_types:
                cb.tag("channel-binding", NS_SASL_CB, {"type": cb_type})
        return None



    def __init__(self, module: ModuleApi) -> None:
        super().__init__(module)
        self.guard = AuthGuard(module)

    async def drive(self, session: ClientSession, step: Step) -> None:
        mech: ServerMechanism = session.sasl
        step = await resolve_credentials(mech, step, self.module.auth, guard=self.guard,
                                         session=session)
        if isinstance(step, Challenge):
            _send(session, "challenge", step.data)
        elif isinstance(step, Success):
            await self.succeed(session, step)
        elif isinstance(step, Failure):
            if step.condition == "not-authorized":  # wrong credentials, not a bad request
                await self.guard.failed(session, mech.name)
            self.fail(session, step.condition, step.text)

    async def succeed(self, session: ClientSession, step: Success) -> None:
        # Accounts are stored under their nodeprep'd name (RFC 6122 §A), SASL names are
        # only SASLprep'd (RFC 4013): compare and bind on the prepared form.
        username = _nodeprep(step.username)
        if username is None:
            self.fail(session, "not-authorized")
            return
        authzid = step.authzid
        if authzid and prep_jid(authzid) not in (username, f"{username}@{self.module.host}"):
            self.fail(session, "invalid-authzid")
            return
        session.sasl = None
        session.set_authenticated(username)
        await self.module.account_login(session)  # its role, and the last login recorded
        _send(session, "success", step.additional_data)
        session.restart_stream()
        session.log.info("authenticated as %s@%s", username, self.module.host)
        self.module.fire_detached("authentication-success", session)
        self.module.spawn(self.guard.succeeded(session))

    def fail(self, session: ClientSession, condition: str, text: str | None = None) -> None:
        session.sasl = None
        session.auth_failures += 1
        el = Element("failure", NS_SASL)
        el.tag(condition, NS_SASL)
        if text:
            el.text_tag("text", text, NS_SASL)
        session.send_element(el)
        self.module.fire_detached("authentication-failure", session)
        if session.auth_failures >= self.max_failures:
            session.close(StreamError("policy-violation", "too many failed authentications"))

    def on_auth(self, event: StreamElementEvent) -> Awaitable[None] | bool:
        session = event.session
        if session.authenticated:
            raise StreamError("policy-violation", "already authenticated")
        session.sasl_mechanism = None
        if self.require_tls and not session.secure:
            self.fail(session, "encryption-required")
            return True
        name = event.element.get("mechanism") or ""
        ctx = self.context(session)
        mech = server_mechanism(name, ctx) if name in offered_mechanisms(ctx) else None
        if mech is not None:
            session.sasl_mechanism = mech.name
        if mech is None:
            self.fail(session, "invalid-mechanism")
            return True
        try:
            initial = _decode(event.element)
        except (ValueError, binascii.Error):
            self.fail(session, "incorrect-encoding")
            return True
        session.sasl = mech
        return self.drive(session, mech.start(initial))

    def on_response(self, event: StreamElementEvent) -> Awaitable[None] | bool:
        session = event.session
        if session.sasl is None:
            self.fail(session, "malformed-request")
            return True
        try:
            data = _decode(event.element) or b""
        except (ValueError, binascii.Error):
            self.fail(session, "incorrect-encoding")
            return True
        return self.drive(session, session.sasl.step(data))

    def on_abort(self, event: StreamElementEvent) -> bool:
        self.fail(event.session, "aborted")
        return True


def load(module: ModuleApi) -> None:
    sasl = _Sasl(module)
    sasl.guard.start()
    module.provides(GUARD_SERVICE, sasl.guard)  # SASL2 counts failures in the same place
    module.hook("stream-features", sasl.features, 50)
    module.hook(f"stream/{NS_SASL}:auth", sasl.on_auth)
    module.hook(f"stream/{NS_SASL}:response", sasl.on_response)
    module.hook(f"stream/{NS_SASL}:abort", sasl.on_abort)


def _send(session: ClientSession, name: str, data: bytes | None = None,
          condition: str | None = None) -> None:
    """Send a SASL element (RFC 6120 §6.4) carrying base64 ``data`` or a ``condition``."""
    el = Element(name, NS_SASL)
    if condition:
        el.tag(condition, NS_SASL)
    elif data is not None:
        el.append(base64.b64encode(data).decode() if data else "=")
    session.send_element(el)


def _decode(el: Element) -> bytes | None:
    """The base64 payload of ``el``: None when absent, b"" for "=" (RFC 6120 §6.4.2)."""
    return decode_payload(el.text)
