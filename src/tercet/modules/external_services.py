"""External Service Discovery (XEP-0215): STUN/TURN and other services for local clients.

Services come from the ``external_services`` option (a list of tables, see
docs/external_services.md) and from other modules through
``module.provides("external_service", {...})`` with the same keys. ``host`` and ``port``
default to ``external_service_host`` (the virtual host) and ``external_service_port``.
A TURN/TURNS service with ``secret`` (a string, or ``true`` for ``external_service_secret``)
gets time-limited credentials by the TURN REST API scheme (draft-uberti-behave-turn-rest):
username ``<expiry>:<username>`` (or ``<expiry>``) and password
base64(HMAC-SHA1(secret, username)), valid ``ttl`` seconds (``external_service_ttl``).

Requests (urn:xmpp:extdisco:2, and :1 for clients of XEP-0215 v0.6): ``services``
(optionally of one ``type``) and ``credentials`` for given ``type``/``host`` (and
optional ``port``) of restricted services. Only local clients may ask (``forbidden``
otherwise, like Prosody's default policy).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from tercet.module import Invalid, ModuleApi, Option, StanzaEvent, check_value
from tercet.protocol.errors import StanzaError
from tercet.protocol.stanza import Element

NAMESPACES = ("urn:xmpp:extdisco:2", "urn:xmpp:extdisco:1")
META = {"summary": "External service discovery", "stage": "stable", "xeps": ["XEP-0215"]}
DEFAULT_TTL = 86400
# Item keys and their types; "secret" is a string or true (external_service_secret).
ITEM_KEYS: dict[str, Any] = {
    "type": str, "transport": str, "host": str, "port": int, "username": str,
    "password": str, "secret": str | bool, "restricted": bool, "expires": int, "ttl": int,
    "name": str,
}
# Service types whose secret yields TURN REST API credentials.
TURN_TYPES = frozenset(("turn", "turns"))


def value_ok(key: str, value: Any) -> bool:
    """Whether ``value`` has the type of item key ``key`` (booleans are not integers)."""
    if key == "secret":
        return isinstance(value, str) or value is True
    spec = ITEM_KEYS[key]
    if spec is bool:
        return isinstance(value, bool)
    return isinstance(value, spec) and not isinstance(value, bool)


def _valid_services(value: list[dict[str, Any]]) -> list[Invalid]:
    """Config check of ``external_services``: every table has a type, known keys only."""
    example = 'Write it like { type = "turn", transport = "udp", secret = true }.'
    for index, item in enumerate(value, 1):
        if not isinstance(item.get("type"), str):
            return [Invalid("a service table with a type", f"item {index} without one",
                            example)]
        for key, val in item.items():
            if key not in ITEM_KEYS:
                return [Invalid("the keys " + ", ".join(ITEM_KEYS),
                                f"{key!r} in item {index}", example)]
            if not value_ok(key, val):
                wrong = check_value(key, val, str if key == "secret" else ITEM_KEYS[key])[0]
                kind = "a string or true" if key == "secret" else wrong.expected
                return [Invalid(f"{key} to be {kind}", f"{wrong.found} in item {index}",
                                example)]
    return []


OPTIONS: list[Option[Any]] = [
    Option("external_services", list[dict[str, Any]], [],
           "External services (XEP-0215): tables with type, transport, host, port, "
           "username, password, secret, restricted, expires, ttl, name.",
           example=[{"type": "turn", "transport": "udp", "secret": True}],
           validate=_valid_services),
    Option("external_service_host", str, None,
           "Default host of external services (default: the virtual host)."),
    Option("external_service_port", int, None, "Default port of external services.",
           min=1, max=65535),
    Option("external_service_secret", str, None,
           "Shared secret for TURN credentials of services with secret = true."),
    Option("external_service_ttl", int, DEFAULT_TTL,
           "Seconds that generated TURN credentials stay valid.", min=60, max=30 * 86400),
]


@dataclass(frozen=True, slots=True)
class Service:
    """One service as announced (XEP-0215 §3 attributes)."""

    type: str
    host: str
    transport: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = None
    restricted: bool = False
    expires: int | None = None
    name: str | None = None

    def element(self, xmlns: str) -> Element:
        attrs = {"type": self.type, "host": self.host}
        for key in ("transport", "username", "password", "name"):
            value = getattr(self, key)
            if value is not None:
                attrs[key] = value
        if self.port is not None:
            attrs["port"] = str(self.port)
        if self.expires is not None:
            attrs["expires"] = dt.datetime.fromtimestamp(
                self.expires, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.restricted:
            attrs["restricted"] = "1"
        return Element("service", xmlns, attrs)


def turn_credentials(secret: str, expiry: int, user: str | None) -> tuple[str, str]:
    """TURN REST API credentials: (username, base64 HMAC-SHA1 of it keyed by the secret)."""
    username = f"{expiry}:{user}" if user else str(expiry)
    mac = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(mac).decode("ascii")


@dataclass(frozen=True, slots=True)
class Defaults:
    host: str
    port: int | None
    secret: str | None
    ttl: int


def prepare(item: dict[str, Any], defaults: Defaults, now: float) -> Service | None:
    """The announced form of one configured service, or None if it has no type."""
    kind = item.get("type")
    if not isinstance(kind, str):
        return None

    def get(key: str) -> Any:
        value = item.get(key)
        return value if value is not None and value_ok(key, value) else None

    username, password = get("username"), get("password")
    ttl, expires = get("ttl"), get("expires")
    if expires is None and ttl is not None:
        expires = int(now) + ttl
    restricted = password is not None or item.get("restricted") is True
    secret = item.get("secret")
    if secret is True:
        secret = defaults.secret
    if isinstance(secret, str) and kind in TURN_TYPES:
        expiry = expires if expires is not None else int(now) + (ttl or defaults.ttl)
        username, password = turn_credentials(secret, expiry, username)
        restricted = True
    return Service(kind, get("host") or defaults.host, get("transport"),
                   get("port") or defaults.port, username, password, restricted, expires,
                   get("name"))


def load(module: ModuleApi) -> None:
    configured: list[Any] = module.option("external_services")
    defaults = Defaults(
        module.option("external_service_host") or module.host,
        module.option("external_service_port"),
        module.option("external_service_secret"),
        module.option("external_service_ttl"))
    for index, item in enumerate(configured, 1):
        if prepare(item, defaults, 0) is None:
            module.log.error("external_services item %d has no type; it is ignored", index)

    def services() -> list[Service]:
        items = configured + [p for p in module.providers("external_service")
                              if isinstance(p, dict)]
        now = module.now()
        return [s for item in items if (s := prepare(item, defaults, now)) is not None]

    def payload(event: StanzaEvent) -> Element:
        request = event.stanza.iq_payload()
        assert request is not None  # the event is named after the payload
        return request

    def answer(event: StanzaEvent, found: list[Service]) -> bool:
        request = payload(event)
        reply = event.stanza.reply()
        wrapper = reply.tag(request.name, request.xmlns)
        for service in found:
            wrapper.append(service.element(request.xmlns))
        event.origin.send(reply)
        return True

    def error(event: StanzaEvent, condition: str, text: str | None = None) -> bool:
        event.origin.send(event.stanza.error_reply(StanzaError(condition, text)))
        return True

    def on_services(event: StanzaEvent) -> bool:
        if event.origin.kind != "c2s":
            return error(event, "forbidden")
        wanted = payload(event).get("type")
        return answer(event, [s for s in services() if wanted is None or s.type == wanted])

    def on_credentials(event: StanzaEvent) -> bool:
        if event.origin.kind != "c2s":
            return error(event, "forbidden")
        requested: set[tuple[str, str, int]] = set()
        for want in payload(event).find_all("service"):
            kind, host = want.get("type"), want.get("host")
            if not kind or not host:
                return error(event, "bad-request", "a service needs type and host")
            port = want.get("port") or "0"
            requested.add((kind, host, int(port) if port.isdigit() else -1))
        # A request without a port matches every port of that type and host.
        return answer(event, [s for s in services() if s.restricted and (
            (s.type, s.host, s.port or 0) in requested or (s.type, s.host, 0) in requested)])

    for ns in NAMESPACES:
        module.add_feature(ns)
        module.hook(f"iq-get/host/{ns}:services", on_services)
        module.hook(f"iq-get/host/{ns}:credentials", on_credentials)
