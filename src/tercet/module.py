"""The public module API: the one import path a Tercet module uses.

A module is a Python module with ``load(module: ModuleApi)`` (sync or async), optional
``unload``/``save``/``restore``, an ``OPTIONS`` list of the options it owns, and ``META``::

    from tercet.module import Element, ModuleApi, Option, StanzaEvent

    NS = "urn:xmpp:ping"
    OPTIONS: list[Option[Any]] = []

    def load(module: ModuleApi) -> None:
        module.add_feature(NS)
        module.hook(f"iq-get/host/{NS}:ping", pong)

    def pong(event: StanzaEvent) -> bool:
        event.origin.send(event.stanza.reply())
        return True

Modules import from here, from the sans-I/O wire library ``tercet.protocol`` (stream and
SASL machinery) and from their own private helpers; nothing else in ``tercet`` is theirs to
use (an import-graph test enforces it), so everything behind this surface can change
without breaking them. Each name keeps the version it was added in; see docs/modules.md.
"""

from __future__ import annotations

from tercet.auth import AuthProvider
from tercet.auth.errors import AuthError, UserExists, UserNotFound
from tercet.core.accounts import UserDeleted
from tercet.core.admin import AdminCommandError, AdminRequest, SessionReport
from tercet.core.config import (
    Invalid,
    Option,
    check_value,
    did_you_mean,
    valid_bare_jids,
    valid_interfaces,
)
from tercet.core.host import Identity
from tercet.core.http import AltConnection, HttpHandler, HttpRoute, HttpRoutes
from tercet.core.moduleapi import ModuleApi, ModuleError, Timer
from tercet.core.modulemanager import LoadedModule
from tercet.core.network import (
    ConnectSpec,
    FramedStream,
    ListenSpec,
    MessageLink,
    PeerUnreachable,
    ReadLimiter,
    StreamLimits,
    TrafficPolicy,
)
from tercet.core.router import StanzaEvent
from tercet.core.services import RosterLookup
from tercet.core.session import C2SSession as ClientSession
from tercet.core.session import (
    ComponentSession,
    SendFilter,
    ServerSession,
    ServerStreamEvent,
    Session,
)
from tercet.core.stats import STANZA_KINDS, STREAM_TYPES, ServerStats, StanzaCounts
from tercet.core.streamevents import (
    ComponentHandshake,
    StreamElementEvent,
    StreamFeaturesEvent,
)
from tercet.protocol.errors import StanzaError, StreamError
from tercet.protocol.jid import JID, InvalidJID
from tercet.protocol.stanza import NS_CLIENT, NS_DELAY, Element, Sealed, iq, message, presence
from tercet.storage.base import (
    MAX_ARCHIVE_PAGE,
    ArchiveAppend,
    ArchiveItem,
    ArchiveKeyNotFound,
    ArchiveQuery,
    ArchiveStore,
    KeyValStore,
    MapStore,
    StorageError,
)
from tercet.storage.timed import StorageObserver

__all__ = [
    "JID",
    "MAX_ARCHIVE_PAGE",
    "NS_CLIENT",
    "NS_DELAY",
    "STANZA_KINDS",
    "STREAM_TYPES",
    "AdminCommandError",
    "AdminRequest",
    "AltConnection",
    "ArchiveAppend",
    "ArchiveItem",
    "ArchiveKeyNotFound",
    "ArchiveQuery",
    "ArchiveStore",
    "AuthError",
    "AuthProvider",
    "ClientSession",
    "ComponentHandshake",
    "ComponentSession",
    "ConnectSpec",
    "Element",
    "FramedStream",
    "HttpHandler",
    "HttpRoute",
    "HttpRoutes",
    "Identity",
    "Invalid",
    "InvalidJID",
    "KeyValStore",
    "ListenSpec",
    "LoadedModule",
    "MapStore",
    "MessageLink",
    "ModuleApi",
    "ModuleError",
    "Option",
    "PeerUnreachable",
    "ReadLimiter",
    "RosterLookup",
    "ServerSession",
    "ServerStats",
    "ServerStreamEvent",
    "Sealed",
    "SendFilter",
    "SessionReport",
    "Session",
    "StanzaCounts",
    "StanzaError",
    "StanzaEvent",
    "StorageError",
    "StorageObserver",
    "StreamElementEvent",
    "StreamError",
    "StreamFeaturesEvent",
    "StreamLimits",
    "Timer",
    "TrafficPolicy",
    "UserDeleted",
    "UserExists",
    "UserNotFound",
    "check_value",
    "did_you_mean",
    "iq",
    "message",
    "presence",
    "valid_bare_jids",
    "valid_interfaces",
]
