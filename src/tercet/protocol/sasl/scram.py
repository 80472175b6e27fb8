"""SCRAM (RFC 5802) with SHA-1, SHA-256 (RFC 7677) and SHA-512, plain and -PLUS.

* Keys: RFC 5802 §3. ``ScramCredentials`` hold salt, iteration count, StoredKey and
  ServerKey; never the password. Hi() is PBKDF2 (``hashlib.pbkdf2_hmac``), Normalize() is
  SASLprep treating the password as a query (RFC 5802 §2.2).
* Messages: RFC 5802 §5 and the ABNF of §7, checked strictly. Syntax errors fail
  ``malformed-request``; a bad proof, nonce or channel binding fails ``not-authorized``
  (RFC 6120 §6.5.6, §6.5.10).
* GS2 header and channel binding: RFC 5802 §6. "n" and "y" only with plain SCRAM,
  "p=<cb-name>" only with -PLUS and only for a type in ``SaslContext.channel_bindings``.
  "y" while we offer -PLUS means someone stripped -PLUS from our list: ``not-authorized``.
* Authorization identity: ``authzid_allowed``; the caller checks the domain.
* Unknown users (and users without keys for this hash) get a decoy salt derived from a
  per-process secret, so the exchange looks the same and fails ``not-authorized`` at the
  same step as a wrong password (RFC 5802 §9 on user enumeration).
* A disabled account fails ``account-disabled`` (RFC 6120 §6.5.1), but only once the
  proof is right: without the password nobody learns that the account exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import sys
from dataclasses import dataclass

from tercet.protocol.sasl import (
    Challenge,
    Failure,
    NeedCredentials,
    SaslContext,
    SaslProtocolError,
    Step,
    Success,
    authzid_allowed,
)
from tercet.protocol.sasl.saslprep import saslprep

__all__ = [
    "HASHES",
    "AccountCredentials",
    "ScramClient",
    "ScramCredentials",
    "ScramServer",
    "check_password",
    "decoy_credentials",
    "derive_scram",
]

#: SCRAM hash names (IANA "Hash Function Textual Names") to hashlib names.
HASHES: dict[str, str] = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-512": "sha512"}
#: Bound on one SCRAM or PLAIN message (RFC 6120 §13.12, resource exhaustion). A 1023-byte
#: username plus a bare-JID authzid, every character escaped as "=2C", still fits.
MAX_MESSAGE_BYTES = 16384
#: Salt length for new credentials (RFC 7677 §3's example uses 16 bytes).
SALT_BYTES = 16
#: Client side: RFC 7677 §4 asks for at least 4096 iterations; the upper bound keeps a
#: hostile server from making us spend seconds of CPU on one attempt.
CLIENT_MIN_ITERATIONS = 4096
CLIENT_MAX_ITERATIONS = 1_000_000
# Check order for passwords given in clear (PLAIN): the RFC 7677 hash first.
_CHECK_ORDER = ("SHA-256", "SHA-512", "SHA-1")
# Per-process secret for decoy salts: stable within the process, unknown to everyone.
_DECOY_KEY = secrets.token_bytes(32)


@dataclass(frozen=True)
class ScramCredentials:
    """SCRAM keys for one hash (RFC 5802 §3)."""

    hash_name: str
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


@dataclass(frozen=True)
class AccountCredentials:
    """What the auth provider knows about an account: SCRAM keys by hash name."""

    scram: dict[str, ScramCredentials]
    disabled: bool = False
    #: Shown to the user with ``account-disabled`` (RFC 6120 §6.5.1 <text/>), if any.
    disabled_reason: str | None = None


# --- keys -----------------------------------------------------------------------------------


def _digest_name(hash_name: str) -> str:
    try:
        return HASHES[hash_name]
    except KeyError:
        raise ValueError(f"unknown SCRAM hash {hash_name!r}") from None


def _hmac(digest: str, key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, digest)


def _salted_password(digest: str, normalized: str, salt: bytes, iterations: int) -> bytes:
    """SaltedPassword := Hi(Normalize(password), salt, i) (RFC 5802 §3)."""
    return hashlib.pbkdf2_hmac(digest, normalized.encode("utf-8"), salt, iterations)


def _keys(digest: str, salted: bytes) -> tuple[bytes, bytes, bytes]:
    """ClientKey, StoredKey, ServerKey (RFC 5802 §3)."""
    client_key = _hmac(digest, salted, b"Client Key")
    stored_key = hashlib.new(digest, client_key).digest()
    return client_key, stored_key, _hmac(digest, salted, b"Server Key")


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def derive_scram(
    password: str, hash_name: str, salt: bytes | None = None, iterations: int = 4096
) -> ScramCredentials:
    """Keys for ``password`` (SASLprep'd as RFC 5802 §2.2 says) with a new or given salt.

    Raises ``ValueError`` for an unknown hash, a count below 1 or a password SASLprep
    prohibits.
    """
    digest = _digest_name(hash_name)
    if iterations < 1:
        raise ValueError("iteration count must be positive")
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    normalized = saslprep(password, allow_unassigned=True)
    _, stored_key, server_key = _keys(
        digest, _salted_password(digest, normalized, salt, iterations)
    )
    return ScramCredentials(hash_name, salt, iterations, stored_key, server_key)


def check_password(creds: AccountCredentials, password: str) -> bool:
    """Whether ``password`` matches the stored keys (SHA-256 first), in constant time.

    Ignores ``creds.disabled``; False when there are no keys or SASLprep rejects ``password``.
    """
    stored = next((creds.scram[h] for h in _CHECK_ORDER if h in creds.scram), None)
    if stored is None:
        return False
    try:
        candidate = derive_scram(password, stored.hash_name, stored.salt, stored.iterations)
    except ValueError:
        return False
    same_stored = hmac.compare_digest(candidate.stored_key, stored.stored_key)
    same_server = hmac.compare_digest(candidate.server_key, stored.server_key)
    return same_stored & same_server


def decoy_credentials(hash_name: str, username: str, iterations: int) -> ScramCredentials:
    """Keys no password matches, with a salt that is stable per user within this process."""
    digest = _digest_name(hash_name)
    seed = f"{hash_name}\0{username}".encode("utf-8", "surrogatepass")
    salt = hmac.digest(_DECOY_KEY, seed, "sha256")[:SALT_BYTES]
    size = hashlib.new(digest).digest_size
    return ScramCredentials(
        hash_name, salt, iterations, secrets.token_bytes(size), secrets.token_bytes(size)
    )


# --- syntax (RFC 5802 §7) -----------------------------------------------------------------

_SASLNAME = re.compile(r"(?:[^=,\x00]|=2C|=3D)+")
_PRINTABLE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
_CB_NAME = re.compile(r"[A-Za-z0-9.-]+")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_POSIT_NUMBER = re.compile(r"[1-9][0-9]{0,9}")
# Extensions are ALPHA "=" 1*value-char; the letters SCRAM itself uses may not reappear.
_EXTENSION = re.compile(r"[A-Za-z]=[^,\x00]+")
_RESERVED_ATTRS = frozenset("acemnprsiv")


def _decode_saslname(value: str) -> str:
    return value.replace("=2C", ",").replace("=3D", "=")


def _encode_saslname(value: str) -> str:
    return value.replace("=", "=3D").replace(",", "=2C")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _attr(item: str, key: str, pattern: re.Pattern[str]) -> str | None:
    if item[:2] == f"{key}=" and pattern.fullmatch(item, 2):
        return item[2:]
    return None


def _b64_attr(item: str, key: str) -> bytes | None:
    value = _attr(item, key, _BASE64)
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        return None


def _extensions_ok(items: list[str]) -> bool:
    return all(_EXTENSION.fullmatch(i) and i[0] not in _RESERVED_ATTRS for i in items)


def _decode_message(data: bytes) -> str | None:
    if len(data) > MAX_MESSAGE_BYTES:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


@dataclass(frozen=True, slots=True)
class _ClientFirst:
    gs2_header: str
    cb_flag: str  # "n", "y" or "p"
    cb_name: str | None
    authzid: str | None
    username: str
    nonce: str
    bare: str


@dataclass(frozen=True, slots=True)
class _ClientFinal:
    cbind: bytes
    nonce: str
    proof: bytes
    without_proof: str


def _parse_gs2_flag(flag: str) -> tuple[str, str | None] | None:
    if flag in ("n", "y"):
        return flag, None
    if flag[:2] == "p=" and _CB_NAME.fullmatch(flag, 2):
        return "p", flag[2:]
    return None


def _parse_client_first(text: str) -> _ClientFirst | None:
    """client-first-message (RFC 5802 §7); None when malformed."""
    parts = text.split(",", 2)
    if len(parts) != 3:
        return None
    flag, authz, bare = parts
    cbind = _parse_gs2_flag(flag)
    authzid = _attr(authz, "a", _SASLNAME) if authz else ""
    attrs = bare.split(",")  # a leading "m=" (reserved-mext) fails the "n=" test: RFC 5802 §5.1
    if cbind is None or authzid is None or len(attrs) < 2 or not _extensions_ok(attrs[2:]):
        return None
    user, nonce = _attr(attrs[0], "n", _SASLNAME), _attr(attrs[1], "r", _PRINTABLE)
    if user is None or nonce is None:
        return None
    username = _decode_saslname(user)
    try:  # RFC 5802 §5.1: fail if SASLprep (as a query) fails or changes the name
        if saslprep(username, allow_unassigned=True) != username:
            return None
    except ValueError:
        return None
    gs2_header = f"{flag},{authz},"
    return _ClientFirst(
        gs2_header, cbind[0], cbind[1], _decode_saslname(authzid) or None, username, nonce, bare
    )


def _parse_client_final(text: str) -> _ClientFinal | None:
    """client-final-message (RFC 5802 §7); None when malformed."""
    attrs = text.split(",")
    if len(attrs) < 3 or not _extensions_ok(attrs[2:-1]):
        return None
    cbind, nonce = _b64_attr(attrs[0], "c"), _attr(attrs[1], "r", _PRINTABLE)
    proof = _b64_attr(attrs[-1], "p")
    if cbind is None or nonce is None or proof is None:
        return None
    return _ClientFinal(cbind, nonce, proof, text[: text.rindex(",")])


def _parse_server_first(text: str) -> tuple[str, bytes, int] | None:
    """server-first-message (RFC 5802 §7); None when malformed or using "m=" (§5.1)."""
    attrs = text.split(",")
    if len(attrs) < 3 or not _extensions_ok(attrs[3:]):
        return None
    nonce, salt = _attr(attrs[0], "r", _PRINTABLE), _b64_attr(attrs[1], "s")
    count = _attr(attrs[2], "i", _POSIT_NUMBER)
    if nonce is None or salt is None or count is None:
        return None
    return nonce, salt, int(count)


# --- server -------------------------------------------------------------------------------


class ScramServer:
    """The server side of one SCRAM exchange (RFC 5802 §5).

    start/step(client-first) -> NeedCredentials -> credentials() -> Challenge(server-first)
    -> step(client-final) -> Success(additional_data=server-final) or Failure.
    """

    def __init__(
        self, hash_name: str, plus: bool, ctx: SaslContext, *, nonce: str | None = None
    ) -> None:
        self._digest = _digest_name(hash_name)
        self.hash_name = hash_name
        self.plus = plus
        # Interned: a session keeps its mechanism's name (session.sasl_mechanism), and
        # every session of a server uses one of a few.
        self.name = sys.intern(f"SCRAM-{hash_name}-PLUS" if plus else f"SCRAM-{hash_name}")
        self._ctx = ctx
        self._server_nonce = secrets.token_urlsafe(24) if nonce is None else nonce
        if not _PRINTABLE.fullmatch(self._server_nonce):
            raise ValueError("SCRAM nonce must be printable ASCII without ','")
        self._state = "start"
        self._first: _ClientFirst | None = None
        self._creds: ScramCredentials | None = None
        self._decoy = False
        self._disabled = False
        self._disabled_reason: str | None = None
        self._server_first = ""

    def start(self, initial: bytes | None) -> Step:
        """Begin with the initial response, if any (none: empty challenge, RFC 6120 §6.4.2)."""
        self._expect("start")
        if not initial:
            self._state = "client-first"
            return Challenge(b"")
        return self._on_client_first(initial)

    def step(self, data: bytes) -> Step:
        """Handle the client's response to our last challenge."""
        if self._state == "client-first":
            return self._on_client_first(data)
        self._expect("client-final")
        return self._on_client_final(data)

    def credentials(self, creds: AccountCredentials | None) -> Step:
        """Continue with the account found for the NeedCredentials username (None: no such user)."""
        self._expect("credentials")
        assert self._first is not None
        stored = creds.scram.get(self.hash_name) if creds is not None else None
        self._decoy = stored is None
        self._disabled = creds is not None and creds.disabled
        self._disabled_reason = creds.disabled_reason if creds is not None else None
        if stored is None:
            iterations = self._ctx.scram_iterations
            stored = decoy_credentials(self.hash_name, self._first.username, iterations)
        self._creds = stored
        self._server_first = (
            f"r={self._first.nonce}{self._server_nonce},s={_b64(stored.salt)},i={stored.iterations}"
        )
        self._state = "client-final"
        return Challenge(self._server_first.encode("ascii"))

    def _expect(self, state: str) -> None:
        if self._state != state:
            raise RuntimeError(f"{self.name}: call not expected in state {self._state!r}")

    def _fail(self, condition: str, text: str | None = None) -> Failure:
        self._state = "done"
        self._creds = None
        return Failure(condition, text)

    def _on_client_first(self, data: bytes) -> Step:
        text = _decode_message(data)
        first = _parse_client_first(text) if text is not None else None
        if first is None:
            return self._fail("malformed-request")
        condition = self._gs2_condition(first)
        if condition is not None:
            return self._fail(condition)
        if not authzid_allowed(first.authzid, first.username):
            return self._fail("invalid-authzid")
        self._first = first
        self._state = "credentials"
        return NeedCredentials(first.username)

    def _gs2_condition(self, first: _ClientFirst) -> str | None:
        """RFC 5802 §6: the channel binding flag must suit the mechanism and our offer."""
        if first.cb_flag == "p":
            if not self.plus:
                return "malformed-request"
            return None if first.cb_name in self._ctx.channel_bindings else "not-authorized"
        if self.plus:
            return "malformed-request"
        if first.cb_flag == "y" and self._ctx.channel_bindings:
            return "not-authorized"  # downgrade: we offered -PLUS, the client did not see it
        return None

    def _on_client_final(self, data: bytes) -> Step:
        first, stored = self._first, self._creds
        assert first is not None and stored is not None
        text = _decode_message(data)
        final = _parse_client_final(text) if text is not None else None
        if final is None or len(final.proof) != hashlib.new(self._digest).digest_size:
            return self._fail("malformed-request")
        nonce = f"{first.nonce}{self._server_nonce}".encode("ascii")
        cbind = first.gs2_header.encode("utf-8")
        if first.cb_name is not None:
            cbind += self._ctx.channel_bindings[first.cb_name]
        same_nonce = hmac.compare_digest(final.nonce.encode("ascii"), nonce)
        if not (same_nonce and hmac.compare_digest(final.cbind, cbind)):
            return self._fail("not-authorized")
        auth_message = f"{first.bare},{self._server_first},{final.without_proof}".encode()
        client_key = _xor(final.proof, _hmac(self._digest, stored.stored_key, auth_message))
        proof_ok = hmac.compare_digest(
            hashlib.new(self._digest, client_key).digest(), stored.stored_key
        )
        if self._decoy or not proof_ok:
            return self._fail("not-authorized")
        if self._disabled:
            return self._fail("account-disabled", self._disabled_reason)
        signature = _hmac(self._digest, stored.server_key, auth_message)
        self._state = "done"
        return Success(first.username, first.authzid, f"v={_b64(signature)}".encode("ascii"))


# --- client -------------------------------------------------------------------------------


class ScramClient:
    """The client side of one SCRAM exchange (RFC 5802 §5): start, step once, verify."""

    def __init__(
        self,
        hash_name: str,
        plus: bool,
        username: str,
        password: str,
        channel_binding: tuple[str, bytes] | None = None,
        *,
        authzid: str | None = None,
        nonce: str | None = None,
        min_iterations: int = CLIENT_MIN_ITERATIONS,
        max_iterations: int = CLIENT_MAX_ITERATIONS,
    ) -> None:
        self._digest = _digest_name(hash_name)
        self.name = f"SCRAM-{hash_name}-PLUS" if plus else f"SCRAM-{hash_name}"
        if plus and channel_binding is None:
            raise ValueError(f"{self.name} needs channel binding data")
        if channel_binding is not None and not _CB_NAME.fullmatch(channel_binding[0]):
            raise ValueError("invalid channel binding type name")
        self._nonce = secrets.token_urlsafe(18) if nonce is None else nonce
        if not _PRINTABLE.fullmatch(self._nonce):
            raise ValueError("SCRAM nonce must be printable ASCII without ','")
        self._password = saslprep(password, allow_unassigned=True)
        self._cb_data = channel_binding[1] if plus and channel_binding is not None else b""
        if plus and channel_binding is not None:
            flag = f"p={channel_binding[0]}"
        else:  # RFC 5802 §6: "y" = we could bind but the server did not offer -PLUS
            flag = "n" if channel_binding is None else "y"
        authz = f"a={_encode_saslname(authzid)}" if authzid else ""
        self._gs2_header = f"{flag},{authz},"
        user = _encode_saslname(saslprep(username, allow_unassigned=True))
        self._bare = f"n={user},r={self._nonce}"
        self._limits = (min_iterations, max_iterations)
        self._server_signature: bytes | None = None

    def start(self) -> bytes:
        """client-first-message."""
        return f"{self._gs2_header}{self._bare}".encode()

    def step(self, challenge: bytes) -> bytes:
        """client-final-message for the server-first-message ``challenge``.

        Raises ``SaslProtocolError`` if the server's message is malformed, its nonce does not
        extend ours or its iteration count is outside our limits.
        """
        if self._server_signature is not None:
            raise RuntimeError("SCRAM client stepped twice")
        text = _decode_message(challenge)
        parsed = _parse_server_first(text) if text is not None else None
        if text is None or parsed is None:
            raise SaslProtocolError("malformed server-first-message")
        nonce, salt, iterations = parsed
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise SaslProtocolError("server nonce does not extend the client nonce")
        if not self._limits[0] <= iterations <= self._limits[1]:
            raise SaslProtocolError("iteration count outside the accepted range")
        salted = _salted_password(self._digest, self._password, salt, iterations)
        client_key, stored_key, server_key = _keys(self._digest, salted)
        cbind = _b64(self._gs2_header.encode() + self._cb_data)
        without_proof = f"c={cbind},r={nonce}"
        auth_message = f"{self._bare},{text},{without_proof}".encode()
        proof = _xor(client_key, _hmac(self._digest, stored_key, auth_message))
        self._server_signature = _hmac(self._digest, server_key, auth_message)
        return f"{without_proof},p={_b64(proof)}".encode()

    def verify(self, success_data: bytes | None) -> bool:
        """Whether the server-final-message proves the server knew our keys."""
        text = _decode_message(success_data or b"")
        if self._server_signature is None or not text:
            return False
        attrs = text.split(",")
        signature = _b64_attr(attrs[0], "v")
        if signature is None or not _extensions_ok(attrs[1:]):
            return False
        return hmac.compare_digest(signature, self._server_signature)
