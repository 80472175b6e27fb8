"""Server Dialback (XEP-0220) with keys from a secret kept across restarts (XEP-0185).

As originating server: once an outbound stream is negotiated, send ``<db:result>`` with a
key; the peer answers valid or invalid. As receiving server: for a ``<db:result>`` on an
inbound stream, ask the originating domain's authoritative server over our own outbound
stream (``<db:verify>``), then answer. As authoritative server: recompute the key for a
``<db:verify>`` and say whether it matches. Verification runs as a task, never pausing the
stream it came on: two servers verifying each other at once would otherwise wait forever.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from tercet.module import (
    ModuleApi,
    Option,
    PeerUnreachable,
    ServerSession,
    ServerStreamEvent,
    StreamError,
)
from tercet.modules._s2sauth import TrustPolicy
from tercet.modules._s2slib import S2SLinks
from tercet.protocol import dialback as db
from tercet.protocol.dialback import NS_DIALBACK, NS_FEATURE, DialbackError

GLOBAL = True
META = {"summary": "Server Dialback (XEP-0220)", "stage": "alpha",
        "xeps": ["XEP-0220", "XEP-0185"]}
OPTIONS: list[Option[Any]] = []
#: Seconds the authoritative server may take to answer a db:verify (XEP-0220 leaves it
#: open; the same bound as a stream's authentication).
VERIFY_TIMEOUT = 30.0


async def load(module: ModuleApi) -> None:
    module.depends("s2s")
    store = module.open_keyval("dialback")
    secret = await store.get(None)
    if not isinstance(secret, str):
        # XEP-0185 §3: one secret per server, kept so keys survive a restart.
        secret = secrets.token_hex(32)
        await store.set(None, secret)
    dialback = Dialback(module, secret.encode())
    module.hook_global("s2s-features", dialback.offer)
    module.hook_global("s2s-features-out", dialback.features_out)
    module.hook_global(f"s2s/{NS_DIALBACK}:result", dialback.on_result)
    module.hook_global(f"s2s/{NS_DIALBACK}:verify", dialback.on_verify)


class Dialback:
    def __init__(self, module: ModuleApi, secret: bytes) -> None:
        self.module = module
        self.secret = secret
        self.require_encryption = module.option("s2s_require_encryption")
        self.policy = TrustPolicy(module)
        # (stream id, authoritative domain, our domain) -> the pending db:verify answer
        self.pending: dict[tuple[str, str, str], asyncio.Future[bool]] = {}

    def allowed(self, session: ServerSession, domain: str) -> bool:
        """Whether ``domain`` may authenticate by dialback on ``session`` under the trust
        policy (modules/_s2sauth.py): always without s2s_secure_auth / s2s_secure_domains
        (or for s2s_insecure_domains), else only with a certificate valid for it."""
        return self.policy.dialback_allowed(session, domain)

    def refuse(self, session: ServerSession, domain: str) -> None:
        self.policy.refuse(session, domain)

    def key(self, receiving: str, originating: str, stream_id: str) -> str:
        return db.dialback_key(self.secret, receiving, originating, stream_id)

    def offer(self, event: ServerStreamEvent) -> None:
        if event.session.secure or not self.require_encryption:
            event.element.tag("dialback", NS_FEATURE).tag("errors", NS_FEATURE)
        return None

    def features_out(self, event: ServerStreamEvent) -> bool | None:
        session = event.session
        session.negotiated.set()
        if event.element.find("dialback", NS_FEATURE) is None:
            return None
        assert session.local_domain is not None and session.remote_domain is not None
        if not self.allowed(session, session.remote_domain):
            self.refuse(session, session.remote_domain)
            return True
        key = self.key(session.remote_domain, session.local_domain, session.remote_stream_id)
        session.send_element(db.request("result", session.local_domain,
                                        session.remote_domain, key))
        return True

    def on_result(self, event: ServerStreamEvent) -> bool:
        session = event.session
        try:
            parsed = db.parse(event.element)
        except DialbackError as exc:
            raise StreamError(exc.condition) from None
        if session.direction == "out":  # the answer to our db:result
            if parsed.type == "valid" and parsed.from_ == session.remote_domain \
                    and parsed.to == session.local_domain:
                session.log.info("authenticated to %s by dialback", parsed.from_)
                session.set_authenticated(parsed.from_, "dialback")
            else:
                session.log.info("%s refused our dialback key (%s)", parsed.from_,
                                 parsed.condition or parsed.type)
                session.close()
            return True
        if parsed.type is not None:
            raise StreamError("unsupported-stanza-type")
        if not self.module.is_local_host(parsed.to):
            session.send_element(db.error_answer(parsed, "item-not-found"))
            return True
        if self.require_encryption and not session.secure:
            session.send_element(db.error_answer(parsed, "policy-violation", "auth"))
            return True
        if not self.allowed(session, parsed.from_):
            session.send_element(db.error_answer(parsed, "not-authorized", "auth"))
            self.refuse(session, parsed.from_)
            return True
        self.module.spawn(self._verify(session, parsed))
        return True

    async def _verify(self, session: Any, req: db.DialbackElement) -> None:
        """Receiving server: ask the originating domain's authoritative server."""
        links = self.module.require("s2s", S2SLinks)
        slot = (session.stream_id, req.from_, req.to)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.pending[slot] = future
        try:
            out = await links.stream_for(req.to, req.from_)
            if out is session:
                # XEP-0288 §2.2: never verify a key on the connection that brought it.
                raise PeerUnreachable("remote-server-not-found",
                                      "only the requesting stream leads there")
            out.send_element(db.request("verify", req.to, req.from_, req.key,
                                        session.stream_id))
            async with asyncio.timeout(VERIFY_TIMEOUT):
                valid = await future
        except TimeoutError:
            session.send_element(db.error_answer(req, "remote-server-timeout"))
            return
        except Exception as exc:  # PeerUnreachable and its like
            condition = getattr(exc, "condition", "remote-server-not-found")
            session.log.info("cannot verify %s: %s", req.from_, exc)
            session.send_element(db.error_answer(req, condition))
            return
        finally:
            self.pending.pop(slot, None)
        session.send_element(db.answer(req, valid))
        if valid:
            session.log.info("%s authenticated by dialback", req.from_)
            # The pair authenticated is (our domain, theirs): on a bidirectional stream,
            # its inverse is what we may send back (XEP-0288 §2.2).
            session.set_authenticated(req.from_, "dialback", req.to)
        else:
            session.log.info("%s failed dialback", req.from_)
            session.close(StreamError("not-authorized"))

    def on_verify(self, event: ServerStreamEvent) -> bool:
        session = event.session
        try:
            parsed = db.parse(event.element)
        except DialbackError as exc:
            raise StreamError(exc.condition) from None
        if parsed.type is None:
            # Authoritative server: is this the key we would have made?
            valid = self.module.is_local_host(parsed.to) and db.keys_match(
                parsed.key, self.key(parsed.from_, parsed.to, parsed.id or ""))
            session.send_element(db.answer(parsed, valid))
            return True
        # Receiving server: the answer to our db:verify.
        future = self.pending.get((parsed.id or "", parsed.from_, parsed.to))
        if future is not None and not future.done():
            future.set_result(parsed.type == "valid")
        return True
