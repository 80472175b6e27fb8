"""PLAIN (RFC 4616): authzid NUL authcid NUL passwd, in one message.

* Syntax: RFC 4616 §2. Exactly two NULs, UTF-8, non-empty authcid and passwd; anything
  else fails ``malformed-request`` (RFC 6120 §6.5.6).
* Preparation: authcid and passwd are SASLprep'd as query strings (RFC 4616 §2, §5); the
  password is checked against the stored SCRAM keys (``check_password``, SHA-256 first).
* Security: the password travels in clear, so PLAIN is only offered on encrypted streams
  unless the host allows it explicitly (RFC 4616 §6, RFC 6120 §13.8); used anyway it fails
  ``encryption-required`` (RFC 6120 §6.5.3).
* Unknown users cost the same key derivation as known ones and fail ``not-authorized`` like
  a wrong password; ``account-disabled`` is only reported with the right password.
"""

from __future__ import annotations

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
from tercet.protocol.sasl.scram import (
    MAX_MESSAGE_BYTES,
    AccountCredentials,
    check_password,
    decoy_credentials,
)

__all__ = ["PlainClient", "PlainServer"]


def _parse(data: bytes) -> tuple[str | None, str, str] | None:
    """(authzid, prepared authcid, passwd) or None when malformed (RFC 4616 §2)."""
    parts = data.split(b"\x00")
    if len(data) > MAX_MESSAGE_BYTES or len(parts) != 3:
        return None
    try:
        authzid, authcid, passwd = (part.decode("utf-8") for part in parts)
        authcid = saslprep(authcid, allow_unassigned=True)
    except ValueError:  # UnicodeDecodeError or a prohibited code point
        return None
    if not authcid or not passwd:
        return None
    return authzid or None, authcid, passwd


class PlainServer:
    """The server side of PLAIN: one response, then NeedCredentials, then the verdict."""

    name = "PLAIN"

    def __init__(self, ctx: SaslContext) -> None:
        self._ctx = ctx
        self._state = "start"
        self._authzid: str | None = None
        self._authcid = ""
        self._password = ""

    def start(self, initial: bytes | None) -> Step:
        """Begin with the initial response, if any (none: empty challenge, RFC 6120 §6.4.2)."""
        self._expect("start")
        if not (self._ctx.secure or self._ctx.allow_plain_insecure):
            return self._fail("encryption-required")
        if not initial:
            self._state = "response"
            return Challenge(b"")
        return self._on_response(initial)

    def step(self, data: bytes) -> Step:
        """Handle the response to the empty challenge."""
        self._expect("response")
        return self._on_response(data)

    def credentials(self, creds: AccountCredentials | None) -> Step:
        """Check the password against ``creds`` (None: no such user)."""
        self._expect("credentials")
        password, self._password = self._password, ""
        if creds is None:
            # Same PBKDF2 work as a real check, so timing does not tell users apart.
            decoy = decoy_credentials("SHA-256", self._authcid, self._ctx.scram_iterations)
            check_password(AccountCredentials({"SHA-256": decoy}), password)
            return self._fail("not-authorized")
        if not check_password(creds, password):
            return self._fail("not-authorized")
        if creds.disabled:
            return self._fail("account-disabled", creds.disabled_reason)
        self._state = "done"
        return Success(self._authcid, self._authzid, None)

    def _expect(self, state: str) -> None:
        if self._state != state:
            raise RuntimeError(f"PLAIN: call not expected in state {self._state!r}")

    def _fail(self, condition: str, text: str | None = None) -> Failure:
        self._state = "done"
        self._password = ""
        return Failure(condition, text)

    def _on_response(self, data: bytes) -> Step:
        parsed = _parse(data)
        if parsed is None:
            return self._fail("malformed-request")
        self._authzid, self._authcid, self._password = parsed
        if not authzid_allowed(self._authzid, self._authcid):
            return self._fail("invalid-authzid")
        self._state = "credentials"
        return NeedCredentials(self._authcid)


class PlainClient:
    """The client side of PLAIN (RFC 4616 §2)."""

    name = "PLAIN"

    def __init__(self, username: str, password: str, *, authzid: str | None = None) -> None:
        parts = (
            authzid or "",
            saslprep(username, allow_unassigned=True),
            saslprep(password, allow_unassigned=True),
        )
        if any("\x00" in part for part in parts) or not parts[1] or not parts[2]:
            raise ValueError("PLAIN needs a non-empty username and password without NUL")
        self._message = b"\x00".join(part.encode("utf-8") for part in parts)

    def start(self) -> bytes:
        """The initial response: authzid NUL authcid NUL passwd."""
        return self._message

    def step(self, challenge: bytes) -> bytes:
        """PLAIN has no challenges; an empty one asks for the initial response again."""
        if challenge:
            raise SaslProtocolError("PLAIN does not use challenges")
        return self._message

    def verify(self, success_data: bytes | None) -> bool:
        """PLAIN carries no additional data with success (RFC 4616 has none to check)."""
        return not success_data
