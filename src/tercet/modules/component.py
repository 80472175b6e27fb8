"""External components (XEP-0114): a separate process serves this component's domain.

A ``[components."gateway.example"]`` table with a ``component_secret`` and no ``module``
runs this module on that host (as Prosody's mod_component). The process connects to
``component_ports`` (module ``component_listener``), names this domain in its stream header
and proves the secret with the handshake; from then on every stanza routed to any address
at the domain is written to it, and it may send from any address at the domain (the
connection checks that). While no component is connected, iq requests and messages to the
domain are answered ``service-unavailable``.

One process per domain: a second connection while one is up is refused with ``conflict``
(Prosody's default), so a stray process cannot take over a working gateway.
"""

from __future__ import annotations

from typing import Any

from tercet.module import (
    ComponentHandshake,
    ComponentSession,
    ModuleApi,
    ModuleError,
    Option,
    StanzaError,
    StanzaEvent,
    StreamError,
)
from tercet.protocol.component import handshake_matches

META = {"summary": "External components (XEP-0114)", "stage": "beta", "xeps": ["XEP-0114"]}

SECRET = Option[str | None]("component_secret", str, None,
                            "Shared secret of the external component served on this host; "
                            "set it in the component's table.", cite="XEP-0114 §3")
OPTIONS: list[Option[Any]] = [SECRET]
SERVICE = "external-component"


class ExternalComponent:
    """The component's side of one host: the connected session, if any."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.session: ComponentSession | None = None
        self.handing_over = False  # a reload keeps the connection (save/restore)

    def connected(self) -> ComponentSession | None:
        session = self.session
        return session if session is not None and not session.closed else None

    def on_handshake(self, event: ComponentHandshake) -> bool:
        session = event.session
        secret = self.module.option(SECRET)  # read now: `tercet reload` may change it
        if not secret or not handshake_matches(event.digest, session.stream_id, secret):
            session.close(StreamError("not-authorized", "the handshake does not match"))
            return True
        if self.connected() is not None:
            session.close(StreamError("conflict", "the component is already connected"))
            return True
        self.session = session
        session.set_authenticated()
        self.module.log.info("external component connected from %s", session.peer)
        return True

    def deliver(self, event: StanzaEvent) -> bool:
        """Any stanza to the domain: to the component, or bounced while it is away."""
        session = self.connected()
        if session is not None:
            session.send(event.stanza)
            return True
        stanza = event.stanza
        kind, kind_type = stanza.name, stanza.get("type")
        if kind == "presence" or kind_type in ("error", "result"):
            return True  # never answered (RFC 6120 §8.3.1); presence is just dropped
        error = StanzaError("service-unavailable", "the component is not connected",
                            type="wait", by=self.module.host)
        reply = stanza.error_reply(error)
        if event.origin.kind == "c2s":
            event.origin.send(reply)
        else:
            self.module.send_detached(reply)
        return True

    def unloaded(self) -> None:
        session = self.connected()
        if session is not None and not self.handing_over:
            session.close(StreamError("host-gone", "the domain is no longer served",
                                      remote=False))


def load(module: ModuleApi) -> None:
    if module.host_kind(module.host) != "component":
        raise ModuleError("module component serves [components] tables only")
    if not module.option(SECRET):
        raise ModuleError(f"component_secret is not set for {module.host}: set it under "
                          f'[components."{module.host}"]')
    module.depends("component_listener")
    component = ExternalComponent(module)
    module.provides(SERVICE, component)
    module.hook("component-handshake", component.on_handshake)
    # After any other module of the host (-1), as a fallback: everything else goes out.
    for kind in ("message", "presence", "iq"):
        for to_type in ("host", "bare", "full"):
            module.hook(f"{kind}/{to_type}", component.deliver, -1)
    module.hook("iq/self", component.deliver, -1)
    module.on_unload(component.unloaded)


def save(module: ModuleApi) -> ComponentSession | None:
    """Before a reload: hand the connected component over to the next instance."""
    component = module.find(SERVICE, ExternalComponent)
    if component is None:
        return None
    component.handing_over = True
    return component.connected()


def restore(module: ModuleApi, state: Any) -> None:
    component = module.find(SERVICE, ExternalComponent)
    if component is not None and isinstance(state, ComponentSession) and not state.closed:
        component.session = state
