"""FAST (XEP-0484, ``urn:xmpp:fast:0``): exchange one SASL2 login for a token, then log in
with the token alone in one round trip (the HT-SHA-256-* mechanisms, protocol/sasl/ht.py).

* Advertised as a SASL2 inline feature listing the HT mechanisms whose channel binding
  this connection has (NONE always; ENDP with tls-server-end-point; UNIQ on TLS 1.2).
* ``<request-token mechanism='HT-…'/>`` in <authenticate/> (with a user-agent id): the
  <success/> carries ``<token token=… expiry=…/>``, good for that mechanism only (§4.4:
  a token asked for with channel binding does not work without). Per account and
  user-agent id the two slots of §6.1: the token last used ("current") and the newest
  one issued ("new"). Issuing one replaces an unused "new" token (§4.5 SHOULD) and keeps
  "current" until the new one is used (a lost <success/> must not lock the client out);
  using a token retires every token issued before it (§4.5 MUST): rotation.
* Storage holds no token: a token is HMAC(host secret, account, user-agent id, token id),
  and the ``fast`` map store keeps only the token id, expiry and use counter; the secret
  lives in the ``fast_secret`` keyval store. A dump of the tokens is worth nothing.
* A token stops working when the password changes, the account is disabled or deleted:
  each record keeps a fingerprint of the account's SCRAM keys (new salts on every
  password change) and the login checks it against the account store.
* ``<fast count='N'/>`` (§4.4, replay protection): a positive integer that must grow from
  login to login with the same token; it starts again with each new token (the client
  resets it then). ``<fast invalidate='true'/>`` logs in once more and forgets the
  client's tokens (§4.6).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

from tercet.module import ClientSession, ModuleApi, Option, StreamFeaturesEvent
from tercet.modules._sasllib import (
    Sasl2Outcome,
    Sasl2Request,
    Sasl2Success,
    nodeprep_or_none,
)
from tercet.protocol.sasl import AccountCredentials, SaslProtocolError
from tercet.protocol.sasl.ht import (
    HT_MECHANISMS,
    ht_binding,
    ht_initiator,
    ht_offered,
    ht_responder,
    parse_ht_initial,
)
from tercet.protocol.stanza import Element

NS = "urn:xmpp:fast:0"
META = {"summary": "Fast Authentication Streamlining Tokens", "stage": "beta",
        "xeps": ["XEP-0484"], "requires": ["sasl2"]}
OPTIONS: list[Option[Any]] = [
    Option("fast_token_ttl", int, 21 * 86400,
           "Seconds a FAST token stays valid after it is issued.",
           min=60, max=365 * 86400, cite="XEP-0484 §4.2"),
]


class _Fast:
    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.ttl: int = module.option("fast_token_ttl")
        self.tokens = module.open_store("fast", "map")
        self.secrets = module.open_store("fast_secret", "keyval")

    def inline(self, event: StreamFeaturesEvent) -> None:
        offered = ht_offered(_bindings(event.session))
        fast = event.features.tag("fast", NS)
        for name in offered:
            fast.text_tag("mechanism", name, NS)
        return None

    async def _secret(self) -> bytes:
        stored = await self.secrets.get(None)
        if isinstance(stored, dict) and isinstance(stored.get("key"), str):
            return base64.b64decode(stored["key"])
        key = secrets.token_bytes(32)
        await self.secrets.set(None, {"key": base64.b64encode(key).decode()})
        return key

    async def _token(self, username: str, agent: str, token_id: str) -> bytes:
        msg = "\x00".join((username, agent, token_id)).encode()
        mac = hmac.new(await self._secret(), msg, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=")

    async def authenticate(self, request: Sasl2Request) -> Sasl2Outcome:
        """``sasl2-authenticate/HT-SHA-256-*``."""
        name = request.element.get("mechanism") or ""
        cb_data = ht_binding(name, _bindings(request.session))
        agent = request.user_agent.id
        if cb_data is None:
            return Sasl2Outcome(condition="invalid-mechanism")
        try:
            sasl_name, mac = parse_ht_initial(request.initial)
        except SaslProtocolError:
            return Sasl2Outcome(condition="malformed-request")
        username = nodeprep_or_none(sasl_name)
        if username is None or agent is None:
            return Sasl2Outcome()
        async with self.module.lock(username):
            return await self._check(request, username, agent, mac, cb_data)

    async def _check(self, request: Sasl2Request, username: str, agent: str, mac: bytes,
                     cb_data: bytes) -> Sasl2Outcome:
        key = _agent_key(agent)
        record = await self.tokens.get(username, key)
        creds = await self._credentials(username)
        if not isinstance(record, dict) or creds is None:
            return Sasl2Outcome()
        if record.get("cred") != _fingerprint(creds):
            await self.tokens.set(username, key, None)  # the password changed: forget it
            return Sasl2Outcome()
        fast = request.element.find("fast", NS)
        count = _count(fast)
        if count is False:
            return Sasl2Outcome(condition="malformed-request")
        mechanism = request.element.get("mechanism") or ""
        for entry in record.get("tokens", []):
            token = await self._token(username, agent, entry["id"])
            if not hmac.compare_digest(ht_initiator(token, cb_data), mac):
                continue
            if entry["expires"] <= self.module.now():
                return Sasl2Outcome(condition="credentials-expired")
            if entry.get("mech", mechanism) != mechanism:
                return Sasl2Outcome()  # §4.4: bound to the mechanism it was issued for
            if creds.disabled:
                return Sasl2Outcome(condition="account-disabled",
                                    text=creds.disabled_reason)
            if count is not None and count <= entry.get("count", 0):
                return Sasl2Outcome(condition="credentials-expired")  # a replay
            if fast is not None and fast.get("invalidate") in ("true", "1"):
                await self.tokens.set(username, key, None)
            else:
                # Using a token retires the ones issued before it; it becomes "current".
                entry["used"] = True
                if count is not None:
                    entry["count"] = count
                record["tokens"] = [e for e in record["tokens"] if e is entry or
                                    e["issued"] > entry["issued"]]
                await self.tokens.set(username, key, record)
            return Sasl2Outcome(username=username,
                                additional_data=ht_responder(token, cb_data))
        return Sasl2Outcome()

    async def _credentials(self, username: str) -> AccountCredentials | None:
        auth = self.module.auth
        return None if auth is None else await auth.get_credentials(username)

    async def on_success(self, event: Sasl2Success) -> None:
        """Issue a token when the <authenticate/> asked for one."""
        req = event.request.find("request-token", NS)
        username, agent = event.session.username, event.user_agent.id
        if req is None or username is None or agent is None:
            return None
        if (req.get("mechanism") or "") not in HT_MECHANISMS:
            return None
        creds = await self._credentials(username)
        if creds is None:
            return None
        async with self.module.lock(username):
            key = _agent_key(agent)
            record = await self.tokens.get(username, key)
            if not isinstance(record, dict) or record.get("cred") != _fingerprint(creds):
                record = {"tokens": [], "cred": _fingerprint(creds)}
            now = self.module.now()
            token_id, expires = secrets.token_urlsafe(12), now + self.ttl
            entry = {"id": token_id, "issued": now, "expires": expires,
                     "mech": req.get("mechanism")}
            # Slots (§6.1): the token last used stays until the new one is used; a token
            # issued before and never used is replaced by this one (§4.5).
            current = [e for e in record["tokens"] if e.get("used") and e["expires"] > now]
            record["tokens"] = [*current[-1:], entry]
            await self.tokens.set(username, key, record)
        token = await self._token(username, agent, token_id)
        expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        event.success.append(Element("token", NS, {"token": token.decode(),
                                                   "expiry": expiry}))
        return None


def load(module: ModuleApi) -> None:
    module.depends("sasl2")
    fast = _Fast(module)
    module.hook("sasl2-inline", fast.inline)
    module.hook("sasl2-success", fast.on_success)
    for name in HT_MECHANISMS:
        module.hook(f"sasl2-authenticate/{name}", fast.authenticate)


def _bindings(session: ClientSession) -> dict[str, bytes]:
    return dict(session.tls_info.get("channel_bindings", {})) if session.secure else {}


def _agent_key(agent: str) -> str:
    # Store keys stay short and free of client-chosen characters.
    return hashlib.sha256(agent.encode()).hexdigest()[:32]


def _fingerprint(creds: AccountCredentials) -> str:
    """Changes whenever the password does: every change draws new salts."""
    digest = hashlib.sha256()
    for name in sorted(creds.scram):
        scram = creds.scram[name]
        digest.update(name.encode() + scram.salt + scram.stored_key)
    return digest.hexdigest()[:32]


def _count(fast: Element | None) -> int | None | bool:
    """The ``count`` of ``<fast/>`` (§4.4: a positive integer); None when absent, False
    when it is not a positive integer."""
    text = fast.get("count") if fast is not None else None
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        return False
    return value if value > 0 else False
