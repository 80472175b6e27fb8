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
from tercet.protocol.errors import StreamError
from tercet.protocol.jid import InvalidJID, nodeprep, prep_jid
from tercet.protocol.sasl import (
    Challenge,
    Failure,
    NeedCredentials,
    SaslContext,
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
# SASL payloads are small; anything larger is abuse (bounded well below the stanza limit).
MAX_SASL_DATA = 16 * 1024

OPTIONS: list[Option[Any]] = [
    Option("allow_unencrypted_plain_auth", bool, False,
           "Offer PLAIN authentication on unencrypted connections.", cite="RFC 4616 §6"),
    Option("sasl_max_failures", int, DEFAULT_MAX_FAILURES,
           "Failed authentication attempts before the connection is closed.",
           min=1, max=100, cite="RFC 6120 §6.4.5"),
]


def load(module: ModuleApi) -> None:
    require_tls = module.option("c2s_require_encryption")
    allow_plain = module.option("allow_unencrypted_plain_auth")
    anonymous = module.option("authentication") == "anonymous"
    iterations = module.option("scram_iterations")
    max_failures = module.option("sasl_max_failures")

    def context(session: ClientSession) -> SaslContext:
        bindings = session.tls_info.get("channel_bindings", {}) if session.secure else {}
        return SaslContext(channel_bindings=dict(bindings), secure=session.secure,
                           allow_plain_insecure=allow_plain, anonymous=anonymous,
                           scram_iterations=iterations)

    def features(event: StreamFeaturesEvent) -> None:
        session = event.session
        if session.authenticated or (require_tls and not session.secure):
            return None
        ctx = context(session)
        mechs = event.features.tag("mechanisms", NS_SASL)
        for name in offered_mechanisms(ctx):
            mechs.text_tag("mechanism", name)
        cb_types = channel_binding_types(ctx)
        if cb_types:
            cb = event.features.tag("sasl-channel-binding", NS_SASL_CB)
            for cb_type in cb_types:
                cb.tag("channel-binding", NS_SASL_CB, {"type": cb_type})
        return None

    def send(session: ClientSession, name: str, data: bytes | None = None,
             condition: str | None = None) -> None:
        el = Element(name, NS_SASL)
        if condition:
            el.tag(condition, NS_SASL)
        elif data is not None:
            el.append(base64.b64encode(data).decode() if data else "=")
        session.send_element(el)

    def decode(el: Element) -> bytes | None:
        text = el.text.strip()
        if not text:
            return None
        if text == "=":
            return b""
        if len(text) > MAX_SASL_DATA:
            raise ValueError("too large")
        return base64.b64decode(text, validate=True)

    async def drive(session: ClientSession, step: Step) -> None:
        mech: ServerMechanism = session.sasl
        while isinstance(step, NeedCredentials):
            creds = None
            username = _nodeprep(step.username)
            if module.auth is not None and username is not None:
                creds = await module.auth.get_credentials(username)
            step = mech.credentials(creds)
        if isinstance(step, Challenge):
            send(session, "challenge", step.data)
        elif isinstance(step, Success):
            succeed(session, step)
        elif isinstance(step, Failure):
            fail(session, step.condition, step.text)

    def succeed(session: ClientSession, step: Success) -> None:
        # Accounts are stored under their nodeprep'd name (RFC 6122 §A), SASL names are
        # only SASLprep'd (RFC 4013): compare and bind on the prepared form.
        username = _nodeprep(step.username)
        if username is None:
            fail(session, "not-authorized")
            return
        authzid = step.authzid
        if authzid and prep_jid(authzid) not in (username, f"{username}@{module.host}"):
            fail(session, "invalid-authzid")
            return
        session.sasl = None
        session.set_authenticated(username)
        send(session, "success", step.additional_data)
        session.restart_stream()
        session.log.info("authenticated as %s@%s", username, module.host)
        module.fire_detached("authentication-success", session)

    def fail(session: ClientSession, condition: str, text: str | None = None) -> None:
        session.sasl = None
        session.auth_failures += 1
        el = Element("failure", NS_SASL)
        el.tag(condition, NS_SASL)
        if text:
            el.text_tag("text", text, NS_SASL)
        session.send_element(el)
        module.fire_detached("authentication-failure", session)
        if session.auth_failures >= max_failures:
            session.close(StreamError("policy-violation", "too many failed authentications"))

    def on_auth(event: StreamElementEvent) -> Awaitable[None] | bool:
        session = event.session
        if session.authenticated:
            raise StreamError("policy-violation", "already authenticated")
        if require_tls and not session.secure:
            fail(session, "encryption-required")
            return True
        name = event.element.get("mechanism") or ""
        ctx = context(session)
        mech = server_mechanism(name, ctx) if name in offered_mechanisms(ctx) else None
        if mech is None:
            fail(session, "invalid-mechanism")
            return True
        try:
            initial = decode(event.element)
        except (ValueError, binascii.Error):
            fail(session, "incorrect-encoding")
            return True
        session.sasl = mech
        return drive(session, mech.start(initial))

    def on_response(event: StreamElementEvent) -> Awaitable[None] | bool:
        session = event.session
        if session.sasl is None:
            fail(session, "malformed-request")
            return True
        try:
            data = decode(event.element) or b""
        except (ValueError, binascii.Error):
            fail(session, "incorrect-encoding")
            return True
        return drive(session, session.sasl.step(data))

    def on_abort(event: StreamElementEvent) -> bool:
        fail(event.session, "aborted")
        return True

    module.hook("stream-features", features, 50)
    module.hook(f"stream/{NS_SASL}:auth", on_auth)
    module.hook(f"stream/{NS_SASL}:response", on_response)
    module.hook(f"stream/{NS_SASL}:abort", on_abort)


def _nodeprep(username: str) -> str | None:
    try:
        return nodeprep(username)
    except InvalidJID:
        return None
