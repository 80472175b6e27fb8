"""Bidirectional server-to-server streams (XEP-0288): one TCP connection per peer pair.

Receiving side: the stream features offer ``<bidi xmlns='urn:xmpp:features:bidi'/>``
once TLS is done (§2.1: STARTTLS first) and until the peer authenticated; a peer that
sends ``<bidi xmlns='urn:xmpp:bidi'/>`` (§2.2, no answer) makes the stream bidirectional:
once a pair (our domain, theirs) authenticated on it, by SASL EXTERNAL or dialback, the
s2s links send our stanzas for that pair back over it (``S2SLinks.adopt``), unless we
already have our own stream to that domain.

Initiating side: when the peer offers the feature, ``<bidi/>`` goes out before
authenticating (§2.2: "SHOULD be done before either SASL negotiation or Server
Dialback"), and stanzas the peer then sends on our stream are accepted from its domain to
ours (net/s2s.py, ``_route_in_bidi``); without bidi such a stanza still ends the stream
with ``not-authorized``.

Dialback over a bidirectional stream is unchanged (§2.2): the receiving server verifies
the key over another connection, never the one the request came on, and sends only after
the peer's identity was verified.
"""

from __future__ import annotations

from typing import Any

from tercet.module import Element, ModuleApi, Option, ServerStreamEvent, StreamError
from tercet.modules._s2slib import S2SLinks

GLOBAL = True
META = {"summary": "Bidirectional server-to-server streams (XEP-0288)", "stage": "alpha",
        "xeps": ["XEP-0288"]}
OPTIONS: list[Option[Any]] = []
NS_FEATURE = "urn:xmpp:features:bidi"  # XEP-0288 §2.1
NS_BIDI = "urn:xmpp:bidi"  # XEP-0288 §2.2


def load(module: ModuleApi) -> None:
    module.depends("s2s")
    bidi = Bidi(module)
    module.hook_global("s2s-features", bidi.offer, 10)
    # After STARTTLS (100) and before SASL EXTERNAL (50) and dialback (0).
    module.hook_global("s2s-features-out", bidi.request, 75)
    module.hook_global(f"s2s/{NS_BIDI}:bidi", bidi.enable)


class Bidi:
    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.require_encryption = bool(module.option("s2s_require_encryption"))

    def _after_tls(self, secure: bool) -> bool:
        # §2.1: "If the initiating entity chooses to use TLS, STARTTLS negotiation MUST be
        # completed before enabling bidirectionality"; we always choose it when required.
        return secure or not self.require_encryption

    def offer(self, event: ServerStreamEvent) -> None:
        """§2.1: the feature, on a secured stream not yet authenticated."""
        session = event.session
        if self._after_tls(session.secure) and not session.remote_domains:
            event.element.tag("bidi", NS_FEATURE)
        return None

    def request(self, event: ServerStreamEvent) -> None:
        """§2.2: ask for bidirectionality before authenticating; never answers, so
        authentication (SASL EXTERNAL or dialback) follows on the same features, after
        STARTTLS (§2.1), whose handler answers these features first when it applies."""
        session = event.session
        if session.bidi or session.authenticated or not self._after_tls(session.secure):
            return None
        if event.element.find("bidi", NS_FEATURE) is None:
            return None
        session.send_element(Element("bidi", NS_BIDI))
        session.bidi = True
        session.log.debug("asked %s for a bidirectional stream", session.remote_domain)
        return None

    def enable(self, event: ServerStreamEvent) -> bool:
        """§2.2: the initiating side asks; there is no reply. Pairs that authenticated
        before the request (it SHOULD come first) are adopted now."""
        session = event.session
        if session.direction != "in":
            raise StreamError("unsupported-stanza-type")  # only the initiator asks
        session.bidi = True
        session.log.info("%s asked for a bidirectional stream",
                         session.remote_domain or "the peer")
        if session.pairs:
            self.module.require("s2s", S2SLinks).adopt(session)
        return True
