"""ANONYMOUS (RFC 4505): a guest login under a fresh random username.

The optional message is trace information (RFC 4505 §2-3: an email address or up to 255
characters of UTF-8); it is checked for size and encoding, then ignored. Offered and
accepted only on hosts configured as anonymous (``SaslContext.anonymous``); the username
is ``secrets.token_hex(8)``, which is a valid localpart under either JID profile.
"""

from __future__ import annotations

import secrets

from tercet.protocol.sasl import Failure, SaslContext, Step, Success
from tercet.protocol.sasl.scram import AccountCredentials

__all__ = ["AnonymousServer"]

#: RFC 4505 §3: the trace token is at most 255 characters.
MAX_TRACE_CHARS = 255


class AnonymousServer:
    """The server side of ANONYMOUS: one (possibly empty) message, then Success."""

    name = "ANONYMOUS"

    def __init__(self, ctx: SaslContext) -> None:
        self._ctx = ctx
        self._done = False

    def start(self, initial: bytes | None) -> Step:
        """Succeed at once; ``initial`` is optional trace information."""
        if self._done:
            raise RuntimeError("ANONYMOUS: exchange already finished")
        self._done = True
        if not self._ctx.anonymous:
            return Failure("not-authorized")
        try:
            trace = (initial or b"").decode("utf-8")
        except UnicodeDecodeError:
            return Failure("malformed-request")
        if len(trace) > MAX_TRACE_CHARS or "\x00" in trace:
            return Failure("malformed-request")
        return Success(secrets.token_hex(8), None, None)

    def step(self, data: bytes) -> Step:
        """ANONYMOUS never challenges, so there is nothing to step."""
        raise RuntimeError("ANONYMOUS: step() not expected")

    def credentials(self, creds: AccountCredentials | None) -> Step:
        """ANONYMOUS never asks for credentials."""
        raise RuntimeError("ANONYMOUS: credentials() not expected")
