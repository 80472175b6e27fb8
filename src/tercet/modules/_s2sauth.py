"""Certificate authentication of server streams: the trust policy and SASL EXTERNAL.

The network layer checks the peer's certificate for the stream's domain right after TLS
and records the result in ``ServerSession.cert_status`` (RFC 6120 §13.7.2, RFC 9525).
This file decides what that allows, with Prosody's options:

=====================  ==================================================================
certificate "valid"    SASL EXTERNAL (XEP-0178) when the peer offers it, else dialback
not valid              dialback (XEP-0220), unless the policy requires a certificate:
                       ``s2s_secure_auth = true`` for every domain but those in
                       ``s2s_insecure_domains``, or the domain is in ``s2s_secure_domains``;
                       then a ``policy-violation`` stream error, in both directions
=====================  ==================================================================
"""

from __future__ import annotations

import base64
import binascii

from tercet.module import Element, ModuleApi, ServerSession, ServerStreamEvent, StreamError

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


class TrustPolicy:
    """``s2s_secure_auth``, ``s2s_secure_domains``, ``s2s_insecure_domains``."""

    def __init__(self, module: ModuleApi) -> None:
        self.secure_auth = bool(module.option("s2s_secure_auth"))
        self.secure_domains = {d.lower() for d in module.option("s2s_secure_domains")}
        self.insecure_domains = {d.lower() for d in module.option("s2s_insecure_domains")}
        self.blocked = tuple(d.lower().rstrip(".") for d in module.option("s2s_blocked_domains"))

    def requires_certificate(self, domain: str) -> bool:
        if domain in self.insecure_domains:
            return False
        return self.secure_auth or domain in self.secure_domains

    def dialback_allowed(self, session: ServerSession, domain: str) -> bool:
        """Dialback proves control of DNS, not a certificate: under the policy it is
        allowed only when the certificate is valid anyway (a peer that prefers dialback).
        Never for a blocked domain (a stream without ``from`` names it only here)."""
        if any(domain == b or domain.endswith("." + b) for b in self.blocked):
            return False
        return not self.requires_certificate(domain) or cert_valid_for(session, domain)

    def refuse(self, session: ServerSession, domain: str) -> None:
        """A stream error and a close; logged once, with the peer and the reason."""
        session.log.warning(
            "refusing %s %s: its certificate is %s and the trust policy "
            "(s2s_secure_auth / s2s_secure_domains) requires a valid one",
            "stream from" if session.direction == "in" else "stream to", domain,
            session.cert_status or "not presented (no TLS)")
        session.close(StreamError("policy-violation", "a valid certificate is required"))


def cert_valid_for(session: ServerSession, domain: str) -> bool:
    return session.cert_status == "valid" and session.remote_domain == domain


class CertAuth:
    """The policy at stream setup, and SASL EXTERNAL for s2s (XEP-0178), both sides."""

    def __init__(self, module: ModuleApi, policy: TrustPolicy) -> None:
        self.module = module
        self.policy = policy

    # -- receiving side -----------------------------------------------------------------
    def check_inbound(self, event: ServerStreamEvent) -> bool | None:
        """``s2s-features`` (first): refuse a secured stream whose certificate the
        policy requires but that is not valid for the domain it claims."""
        session = event.session
        domain = session.remote_domain
        if not session.secure or domain is None or session.remote_domains:
            return None
        if self.policy.requires_certificate(domain) and not cert_valid_for(session, domain):
            self.policy.refuse(session, domain)
            return True
        return None

    def offer(self, event: ServerStreamEvent) -> None:
        """XEP-0178 §3: EXTERNAL only when the certificate is valid for the stream's
        ``from`` domain, once the stream is secured and before it is authenticated."""
        session = event.session
        domain = session.remote_domain
        if session.secure and domain is not None and domain not in session.remote_domains \
                and cert_valid_for(session, domain):
            event.element.tag("mechanisms", NS_SASL).text_tag("mechanism", "EXTERNAL")
        return None

    def auth(self, event: ServerStreamEvent) -> bool:
        session = event.session
        if session.direction != "in":
            raise StreamError("unsupported-stanza-type")
        domain = session.remote_domain
        if event.element.get("mechanism") != "EXTERNAL":
            return self._fail(session, "invalid-mechanism")
        try:
            authzid = base64.b64decode(event.element.text or "", validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return self._fail(session, "incorrect-encoding")  # RFC 6120 §6.4.2
        # XEP-0178 §3 step 7: the authorization identity is empty ("=") or the domain.
        if authzid not in ("", "=") and authzid.lower() != domain:
            return self._fail(session, "invalid-authzid")
        if domain is None or not session.secure or not cert_valid_for(session, domain):
            return self._fail(session, "not-authorized")
        session.send_element(Element("success", NS_SASL))
        session.log.info("%s authenticated by certificate (SASL EXTERNAL)", domain)
        session.set_authenticated(domain, "EXTERNAL")
        session.restart_stream()  # RFC 6120 §6.4.6
        return True

    def _fail(self, session: ServerSession, condition: str) -> bool:
        failure = Element("failure", NS_SASL)
        failure.tag(condition, NS_SASL)
        session.send_element(failure)
        session.log.info("SASL EXTERNAL from %s failed: %s", session.remote_domain, condition)
        return True

    # -- initiating side ----------------------------------------------------------------
    def features_out(self, event: ServerStreamEvent) -> bool | None:
        """``s2s-features-out`` after TLS: enforce the policy, then EXTERNAL if offered."""
        session = event.session
        remote = session.remote_domain
        assert remote is not None and session.local_domain is not None
        if session.authenticated:
            return True  # the features of the stream restarted after SASL
        if self.policy.requires_certificate(remote) and not cert_valid_for(session, remote):
            session.negotiated.set()
            self.policy.refuse(session, remote)
            return True
        mechanisms = event.element.find("mechanisms", NS_SASL)
        offered = mechanisms is not None and any(
            m.text.strip() == "EXTERNAL" for m in mechanisms.find_all("mechanism", NS_SASL))
        if not session.secure or not offered:
            return None  # dialback, if the peer offers it
        # XEP-0178 §3 step 6: the authorization identity is our domain.
        auth = Element("auth", NS_SASL, {"mechanism": "EXTERNAL"},
                       [base64.b64encode(session.local_domain.encode()).decode()])
        session.send_element(auth)
        return True

    def success(self, event: ServerStreamEvent) -> bool:
        session = event.session
        if session.direction != "out" or session.authenticated:
            raise StreamError("unsupported-stanza-type")
        assert session.remote_domain is not None
        session.log.info("authenticated to %s by certificate (SASL EXTERNAL)",
                         session.remote_domain)
        session.restart_stream()  # RFC 6120 §6.4.6: our new header goes out first
        session.negotiated.set()
        session.set_authenticated(session.remote_domain, "EXTERNAL")
        return True

    def failure(self, event: ServerStreamEvent) -> bool:
        session = event.session
        if session.direction != "out":
            raise StreamError("unsupported-stanza-type")
        # The peer offered EXTERNAL, so it judged our certificate valid, then refused it:
        # nothing better to try on this stream.
        session.log.warning("%s refused SASL EXTERNAL", session.remote_domain)
        session.negotiated.set()
        session.close()
        return True
