"""Sans-I/O SASL for XMPP (RFC 6120 §6, RFC 4422).

The c2s module drives a server mechanism; every call returns one step (a frozen dataclass)::

    mech = server_mechanism(name, ctx)      # None: unknown or not offered (invalid-mechanism)
    step = mech.start(initial)              # initial response; None or b"" when there is none
    step = mech.step(data)                  # after a Challenge
    step = mech.credentials(creds)          # after NeedCredentials: AccountCredentials or None

``Challenge`` asks the caller to send a challenge, ``NeedCredentials`` to look the account up,
``Success``/``Failure`` end the exchange. Failure conditions are those of RFC 6120 §6.5;
``Failure.text`` never carries exception text. Calling a mechanism out of turn raises
``RuntimeError`` (local misuse).

Mechanisms: SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-512 and their -PLUS variants (RFC 5802,
RFC 7677; channel binding types RFC 5929 and RFC 9266, advertised as XEP-0440 says),
PLAIN (RFC 4616) and ANONYMOUS (RFC 4505). Client mechanisms for SCRAM and PLAIN serve the
tests and s2s: ``client_mechanism(...).start() / .step(challenge) / .verify(success_data)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from tercet.protocol.jid import JID, InvalidJID, nodeprep

__all__ = [
    "SASL_CB_NS",
    "AccountCredentials",
    "Challenge",
    "ClientMechanism",
    "Failure",
    "NeedCredentials",
    "SaslContext",
    "SaslProtocolError",
    "ScramCredentials",
    "ServerMechanism",
    "Step",
    "Success",
    "authzid_allowed",
    "channel_binding_types",
    "check_password",
    "client_mechanism",
    "derive_scram",
    "offered_mechanisms",
    "parse_scram_name",
    "server_mechanism",
]

#: XEP-0440: namespace of the <sasl-channel-binding/> stream feature.
SASL_CB_NS = "urn:xmpp:sasl-cb:0"
# Channel binding types we know, best first: RFC 9266 (the TLS 1.3 one), then RFC 5929.
_CB_PREFERENCE = ("tls-exporter", "tls-server-end-point", "tls-unique")


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send ``data`` as a <challenge/> and feed the response to ``mech.step``."""

    data: bytes


@dataclass(frozen=True, slots=True)
class NeedCredentials:
    """Look ``username`` up and hand the result to ``mech.credentials``.

    ``username`` is the SASL name as the client sent it (SASLprep'd, not yet nodeprep'd).
    """

    username: str


@dataclass(frozen=True, slots=True)
class Success:
    """Authenticated as ``username`` (as in NeedCredentials); the caller still checks
    ``authzid``'s domain. ``additional_data`` goes into <success/> (SCRAM's verifier)."""

    username: str
    authzid: str | None = None
    additional_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """Authentication failed with an RFC 6120 §6.5 condition."""

    condition: str
    text: str | None = None


Step: TypeAlias = Challenge | NeedCredentials | Success | Failure


@dataclass(frozen=True)
class SaslContext:
    """What a mechanism needs to know about the stream and the host.

    ``channel_bindings`` maps channel binding type names (e.g. "tls-exporter") to the data
    of this TLS connection; ``secure`` is true once the stream is encrypted.
    """

    channel_bindings: Mapping[str, bytes] = field(default_factory=dict)
    secure: bool = False
    allow_plain_insecure: bool = False
    anonymous: bool = False
    scram_iterations: int = 4096


class SaslProtocolError(ValueError):
    """A client mechanism received data from the server that breaks the mechanism's rules."""


class ServerMechanism(Protocol):
    """The server side of one authentication exchange."""

    @property
    def name(self) -> str: ...

    def start(self, initial: bytes | None) -> Step: ...

    def step(self, data: bytes) -> Step: ...

    def credentials(self, creds: AccountCredentials | None) -> Step: ...


class ClientMechanism(Protocol):
    """The client side of one authentication exchange."""

    @property
    def name(self) -> str: ...

    def start(self) -> bytes: ...

    def step(self, challenge: bytes) -> bytes: ...

    def verify(self, success_data: bytes | None) -> bool: ...


def authzid_allowed(authzid: str | None, username: str) -> bool:
    """Whether ``username`` may ask for ``authzid`` (RFC 6120 §6.3.8).

    Only the user's own identity is accepted: empty, the localpart itself or the bare JID
    ``localpart@domain`` (the caller still checks that domain against the stream's host).
    """
    if not authzid:
        return True
    try:
        user = nodeprep(username)
        if "@" not in authzid:
            return nodeprep(authzid) == user
        jid = JID.parse(authzid)
    except InvalidJID:
        return False
    return jid.node == user and jid.resource is None


# The mechanisms import the step types above, so they come after them.
from tercet.protocol.sasl.anonymous import AnonymousServer
from tercet.protocol.sasl.plain import PlainClient, PlainServer
from tercet.protocol.sasl.scram import (
    HASHES,
    AccountCredentials,
    ScramClient,
    ScramCredentials,
    ScramServer,
    check_password,
    derive_scram,
)

_HASH_PREFERENCE = ("SHA-512", "SHA-256", "SHA-1")


def parse_scram_name(name: str) -> tuple[str, bool] | None:
    """Split a SCRAM mechanism name: "SCRAM-SHA-256-PLUS" gives ("SHA-256", True).

    None for anything that is not a SCRAM variant we implement.
    """
    if not name.startswith("SCRAM-"):
        return None
    hash_name = name.removeprefix("SCRAM-").removesuffix("-PLUS")
    if hash_name not in HASHES:
        return None
    return hash_name, name.endswith("-PLUS")


def server_mechanism(
    name: str, ctx: SaslContext, *, nonce: str | None = None
) -> ServerMechanism | None:
    """A fresh server mechanism, or None if ``name`` is unknown or not offered under ``ctx``.

    PLAIN is returned even when it is not offered, so that it fails ``encryption-required``.
    ``nonce`` fixes SCRAM's server nonce (tests only).
    """
    if ctx.anonymous:
        return AnonymousServer(ctx) if name == "ANONYMOUS" else None
    if name == "PLAIN":
        return PlainServer(ctx)
    parsed = parse_scram_name(name)
    if parsed is None:
        return None
    hash_name, plus = parsed
    if plus and not ctx.channel_bindings:
        return None
    return ScramServer(hash_name, plus, ctx, nonce=nonce)


def offered_mechanisms(
    ctx: SaslContext, available_hashes: Iterable[str] = ("SHA-1", "SHA-256", "SHA-512")
) -> list[str]:
    """Mechanism names to advertise, best first.

    ``available_hashes`` are the SCRAM hashes the accounts have keys for. Anonymous hosts
    offer ANONYMOUS only; -PLUS needs a channel binding type; PLAIN needs encryption unless
    ``allow_plain_insecure``.
    """
    if ctx.anonymous:
        return ["ANONYMOUS"]
    available = set(available_hashes)
    unknown = available.difference(HASHES)
    if unknown:
        raise ValueError(f"unknown SCRAM hash names: {sorted(unknown)}")
    hashes = [h for h in _HASH_PREFERENCE if h in available]
    names = [f"SCRAM-{h}-PLUS" for h in hashes] if ctx.channel_bindings else []
    names += [f"SCRAM-{h}" for h in hashes]
    if ctx.secure or ctx.allow_plain_insecure:
        names.append("PLAIN")
    return names


def channel_binding_types(ctx: SaslContext) -> list[str]:
    """Channel binding types to list in XEP-0440 <sasl-channel-binding/>, best first."""
    known = [t for t in _CB_PREFERENCE if t in ctx.channel_bindings]
    return known + sorted(t for t in ctx.channel_bindings if t not in _CB_PREFERENCE)


def client_mechanism(
    name: str,
    username: str,
    password: str,
    channel_binding: tuple[str, bytes] | None = None,
    *,
    authzid: str | None = None,
    nonce: str | None = None,
) -> ClientMechanism:
    """A client mechanism (SCRAM-*, SCRAM-*-PLUS or PLAIN); raises ``ValueError`` otherwise.

    ``channel_binding`` is (type, data) of the TLS connection: required for -PLUS, and with a
    non-PLUS SCRAM it makes the client say "y" (it could bind, the server did not offer it).
    ``nonce`` fixes SCRAM's client nonce (tests only).
    """
    if name == "PLAIN":
        return PlainClient(username, password, authzid=authzid)
    parsed = parse_scram_name(name)
    if parsed is None:
        raise ValueError(f"no client mechanism {name!r}")
    hash_name, plus = parsed
    return ScramClient(
        hash_name, plus, username, password, channel_binding, authzid=authzid, nonce=nonce
    )
