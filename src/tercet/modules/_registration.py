"""Payloads of the in-band registration events (XEP-0077): shared by the register module,
which fires them, and the modules that hook them (tombstones, welcome, watchregistrations).
Not a module itself: it has no load()."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tercet.module import ClientSession


@dataclass(frozen=True, slots=True)
class RegistrationAttempt:
    """Payload of ``user-registering``: return a StanzaError from a handler to refuse.
    ``session`` is None for an account created outside a client stream (the web form of
    invites_page)."""

    username: str
    host: str
    ip: str
    session: ClientSession | None


@dataclass(frozen=True, slots=True)
class Registered:
    """Payload of ``user-registered`` (after the account exists); ``session`` is the
    client stream that registered it, None for the web form."""

    username: str
    host: str
    ip: str
    session: ClientSession | None = None
