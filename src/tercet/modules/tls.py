"""STARTTLS on client streams (RFC 6120 §5), required unless c2s_require_encryption=false."""

from __future__ import annotations

from tercet.module import Element, ModuleApi, StreamElementEvent, StreamFeaturesEvent

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
META = {"summary": "STARTTLS (RFC 6120 §5)", "stage": "stable", "xeps": []}


def load(module: ModuleApi) -> None:
    def features(event: StreamFeaturesEvent) -> None:
        session = event.session
        if session.secure or session.framed or not module.tls_available:
            return None
        starttls = event.features.tag("starttls", NS_TLS)
        if module.option("c2s_require_encryption"):  # declared by the c2s module
            starttls.tag("required", NS_TLS)
        return None

    async def starttls(event: StreamElementEvent) -> bool:
        session = event.session
        if session.secure or session.framed or not module.tls_available:
            # RFC 6120 §5.4.2.2: failure, then close the stream.
            session.send_element(Element("failure", NS_TLS))
            session.close()
            return True
        session.send_element(Element("proceed", NS_TLS))
        await session.start_tls()
        return True

    module.hook("stream-features", features, 100)
    module.hook(f"stream/{NS_TLS}:starttls", starttls)
