"""What SASL (RFC 6120 §6, saslauth) and SASL2 (XEP-0388, sasl2) share, and the payloads of
the events SASL2 and Bind2 (XEP-0386) fire so that other modules can take part.

The mechanisms themselves are sans-I/O (tercet.protocol.sasl); this is the glue between a
mechanism and a client session: its context, account look-ups, base64 payloads and the
check of the authorization identity.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field

from tercet.module import AuthProvider, ClientSession, ModuleApi
from tercet.modules._authguard import AuthGuard
from tercet.protocol.jid import InvalidJID, nodeprep, prep_jid
from tercet.protocol.sasl import NeedCredentials, SaslContext, ServerMechanism, Step
from tercet.protocol.stanza import Element

# SASL payloads are small; anything larger is abuse (bounded well below the stanza limit).
MAX_SASL_DATA = 16 * 1024


def sasl_context(session: ClientSession, *, allow_plain: bool, anonymous: bool,
                 iterations: int) -> SaslContext:
    """The mechanisms' view of ``session``: its TLS channel bindings and encryption."""
    bindings = session.tls_info.get("channel_bindings", {}) if session.secure else {}
    return SaslContext(channel_bindings=dict(bindings), secure=session.secure,
                       allow_plain_insecure=allow_plain, anonymous=anonymous,
                       scram_iterations=iterations)


async def resolve_credentials(mech: ServerMechanism, step: Step,
                              auth: AuthProvider | None, *,
                              guard: AuthGuard | None = None,
                              session: ClientSession | None = None) -> Step:
    """Answer the mechanism's NeedCredentials steps from the account store, after the
    wait the ``guard`` imposes on this address and account (earlier failures)."""
    while isinstance(step, NeedCredentials):
        creds = None
        username = nodeprep_or_none(step.username)
        if guard is not None and session is not None and username is not None:
            await guard.before_attempt(session, username)
        if auth is not None and username is not None:
            creds = await auth.get_credentials(username)
        step = mech.credentials(creds)
    return step


class SaslSettings:
    """The options legacy SASL and SASL2 both follow, read at load (one place, so the two
    offer the same mechanisms under the same rules)."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.require_tls: bool = module.option("c2s_require_encryption")
        self.allow_plain: bool = module.option("allow_unencrypted_plain_auth")
        self.anonymous = module.option("authentication") == "anonymous"
        self.iterations: int = module.option("scram_iterations")
        self.max_failures: int = module.option("sasl_max_failures")

    def context(self, session: ClientSession) -> SaslContext:
        return sasl_context(session, allow_plain=self.allow_plain, anonymous=self.anonymous,
                            iterations=self.iterations)


def decode_payload(text: str) -> bytes | None:
    """A base64 SASL payload: None when absent, b"" for "=" (RFC 6120 §6.4.2).

    Raises ``ValueError`` (``binascii.Error`` is one) for bad or oversized data.
    """
    text = text.strip()
    if not text:
        return None
    if text == "=":
        return b""
    if len(text) > MAX_SASL_DATA:
        raise ValueError("too large")
    return base64.b64decode(text, validate=True)


def encode_payload(data: bytes) -> str:
    return base64.b64encode(data).decode() if data else "="


def nodeprep_or_none(username: str) -> str | None:
    try:
        return nodeprep(username)
    except InvalidJID:
        return None


def authorized_username(username: str, authzid: str | None, host: str) -> str | None:
    """The account to authenticate as, or None when the name or authzid is not acceptable.

    Accounts are stored under their nodeprep'd name (RFC 6122 §A), SASL names are only
    SASLprep'd (RFC 4013): compare and bind on the prepared form.
    """
    user = nodeprep_or_none(username)
    if user is None:
        return None
    if authzid and prep_jid(authzid) not in (user, f"{user}@{host}"):
        return None
    return user


# -- SASL2 / Bind2 event payloads ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class UserAgent:
    """XEP-0388 §2.2.1 <user-agent/>: a stable client id (a UUID) and display names."""

    id: str | None = None
    software: str | None = None
    device: str | None = None


@dataclass(frozen=True, slots=True)
class Sasl2Request:
    """``sasl2-authenticate/<MECHANISM>``: a mechanism sasl2 does not know itself (FAST's
    HT-*). A handler authenticates in one round trip and returns a :class:`Sasl2Outcome`."""

    session: ClientSession
    element: Element  # the <authenticate/>
    initial: bytes | None
    user_agent: UserAgent


@dataclass(frozen=True, slots=True)
class Sasl2Outcome:
    """``username`` (nodeprep'd) on success, else ``condition`` (RFC 6120 §6.5) with an
    optional ``text`` for the user (a disabled account's reason, 1.3)."""

    username: str | None = None
    condition: str = "not-authorized"
    additional_data: bytes | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Sasl2Success:
    """``sasl2-success`` (awaited): authentication succeeded, <success/> not sent yet.

    Handlers act on the inline requests of ``request`` (the <authenticate/>) and add their
    answers to ``success``; ``after`` collects callables run once <success/> is sent (for
    events whose handlers may write to the client, such as ``resource-bind``).
    """

    session: ClientSession
    request: Element
    success: Element
    user_agent: UserAgent
    mechanism: str
    after: list[Callable[[], object]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Bind2Inline:
    """``bind2-inline/<ns>:<name>``: a child of a Bind2 <bind/> other than <tag/>
    (XEP-0386 §4), e.g. carbons <enable/>. A handler acts on ``element`` for the freshly
    bound ``session``, may add its answer to ``bound`` and returns True."""

    session: ClientSession
    element: Element
    bound: Element
