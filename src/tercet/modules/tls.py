"""STARTTLS on client streams (RFC 6120 §5), required unless c2s_require_encryption=false."""

from __future__ import annotations

from tercet.core.moduleapi import ModuleApi
from tercet.protocol.stanza import Element

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
META = {"summary": "STARTTLS (RFC 6120 §5)", "stage": "stable", "xeps": []}


def load(module: ModuleApi) -> None:
    def features(event: object) -> None:
        session = event.session  # type: ignore[attr-defined]
        if session.secure or not module.tls_available:
            return None
        starttls = event.features.tag("starttls", NS_TLS)  # type: ignore[attr-defined]
        if module.option("c2s_require_encryption", True, type=bool):
            starttls.tag("required", NS_TLS)
        return None

    async def starttls(event: object) -> bool:
        session = event.session  # type: ignore[attr-defined]
        if session.secure or not module.tls_available:
            # RFC 6120 §5.4.2.2: failure, then close the stream.
            session.send_raw(Element("failure", NS_TLS).to_xml(None))
            session.close()
            return True
        session.send_raw(Element("proceed", NS_TLS).to_xml(None))
        await session.conn.start_tls()
        return True

    module.hook("stream-features", features, 100)
    module.hook(f"stream/{NS_TLS}:starttls", starttls)
