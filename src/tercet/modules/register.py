"""In-Band Registration (XEP-0077): creating an account on an unauthenticated stream,
changing one's password, and cancelling one's account.

Creation is off unless ``allow_registration = true``; password change and cancellation
always work for logged-in users (as Prosody's mod_user_account_management). Creation is
refused for IPs in ``registration_denylist``, limited to one per
``min_seconds_between_registrations`` per IP (IPs in ``registration_allowlist``, by default
loopback, are exempt; the times are kept in the host's store, so a restart does not reset
the throttle), and other modules may refuse it from the ``user-registering`` event
(mod_tombstones does) by returning a StanzaError. After success ``user-registered`` fires
(mod_welcome, mod_watchregistrations). Cancellation goes through the one account deletion
path (``module.delete_account``, tercet.core.accounts).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from tercet.module import (
    ClientSession,
    MapStore,
    ModuleApi,
    ModuleError,
    Option,
    Session,
    StanzaError,
    StanzaEvent,
    StreamElementEvent,
    StreamFeaturesEvent,
)
from tercet.modules._ratelimit import Network, ip_in
from tercet.modules._registration import Registered, RegistrationAttempt
from tercet.protocol.jid import InvalidJID, nodeprep
from tercet.protocol.stanza import Element

NS_REGISTER = "jabber:iq:register"
NS_FEATURE = "http://jabber.org/features/iq-register"
NS_DATA = "jabber:x:data"
META = {"summary": "In-band registration, password change, account removal",
        "stage": "stable", "xeps": ["XEP-0077"]}

DEFAULT_INSTRUCTIONS = "Choose a username and password for use with this service."
# Bound on the per-IP throttle table; the oldest IP is forgotten first (as Prosody's
# registration_throttle_cache_size). XEP-0077 §10 asks servers to guard against mass
# registrations without fixing a mechanism.
DEFAULT_THROTTLE_CACHE = 100
LOOPBACK = ["127.0.0.1", "::1"]
#: Host-wide map: IP -> time of its last registration, so a restart keeps the throttle.
THROTTLE_STORE = "register_throttle"


OPTIONS: list[Option[Any]] = [
    Option("allow_registration", bool, False, "Allow in-band registration (XEP-0077)."),
    Option("min_seconds_between_registrations", int, 300,
           "Seconds between two registrations from one IP (0: no limit).",
           min=0, max=365 * 86400, cite="XEP-0077 §10"),
    Option("registration_allowlist", list[str], LOOPBACK,
           "IPs/CIDRs exempt from the registration throttle."),
    Option("registration_denylist", list[str], [], "IPs/CIDRs that may not register accounts."),
    Option("allowlist_registration_only", bool, False,
           "Only IPs in registration_allowlist may register."),
    Option("registration_throttle_cache_size", int, DEFAULT_THROTTLE_CACHE,
           "IPs remembered by the registration throttle.", min=1, max=1_000_000),
    Option("registration_instructions", str, DEFAULT_INSTRUCTIONS,
           "Instructions shown in the registration form."),
]


class Throttle:
    """When each IP last registered, for at most ``size`` IPs (least recent dropped).

    With a ``store`` (a host-wide map: IP -> time), the times survive a restart: an IP
    not in memory is looked up there (``recall``) before it is judged, and each
    registration is written through; entries older than the period are swept."""

    def __init__(self, period: float, size: int, clock: Callable[[], float],
                 store: MapStore | None = None) -> None:
        self.period = period
        self.size = size
        self.clock = clock
        self.store = store
        self._last: OrderedDict[str, float] = OrderedDict()

    def allows(self, ip: str) -> bool:
        last = self._last.get(ip)
        return self.period <= 0 or last is None or self.clock() - last >= self.period

    def _remember(self, ip: str, when: float) -> None:
        self._last[ip] = when
        self._last.move_to_end(ip)
        while len(self._last) > self.size:
            self._last.popitem(last=False)

    async def recall(self, ip: str) -> None:
        """Load ``ip``'s last registration from the store, if memory does not have it."""
        if self.store is None or self.period <= 0 or ip in self._last:
            return
        stored = await self.store.get(None, ip)
        if isinstance(stored, (int, float)) and self.clock() - stored < self.period:
            self._remember(ip, float(stored))

    async def record(self, ip: str) -> None:
        now = self.clock()
        self._remember(ip, now)
        if self.store is not None and self.period > 0:
            await self.store.set(None, ip, now)

    async def sweep(self) -> float:
        """Forget stored times older than the period (bounded by registrations made)."""
        if self.store is not None and self.period > 0:
            now = self.clock()
            stale = {ip: None for ip, when in (await self.store.get_all(None)).items()
                     if not isinstance(when, (int, float)) or now - when >= self.period}
            if stale:
                await self.store.set_keys(None, stale)
        return max(self.period, 60.0)


def parse_networks(name: str, entries: Iterable[object]) -> list[Network]:
    """IPs and CIDRs of option ``name``; a bad entry stops the module with a clear error."""
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(str(entry), strict=False))
        except ValueError:
            raise ModuleError(f"{name}: {entry!r} is not an IP address or CIDR "
                              "(write e.g. \"192.0.2.7\" or \"2001:db8::/32\")") from None
    return out


def form_values(query: Element) -> dict[str, str]:
    """username/password from a data form (XEP-0004) if present, else the legacy fields."""
    form = query.find("x", NS_DATA)
    if form is not None:
        values = {}
        for field in form.find_all("field", NS_DATA):
            var = field.get("var")
            if var:
                values[var] = field.child_text("value", NS_DATA) or ""
        return values
    return {name: query.child_text(name, NS_REGISTER) or ""
            for name in ("username", "password") if query.find(name, NS_REGISTER) is not None}


def registration_form(instructions: str) -> Element:
    """The reply payload to a registration request (XEP-0077 §3.1, with a §4 form)."""
    query = Element("query", NS_REGISTER)
    query.text_tag("instructions", instructions)
    query.tag("username")
    query.tag("password")
    form = query.tag("x", NS_DATA, {"type": "form"})
    form.text_tag("title", "Creating a new account")
    form.text_tag("instructions", instructions)
    form.tag("field", attrs={"var": "FORM_TYPE", "type": "hidden"}).text_tag(
        "value", NS_REGISTER)
    for var, kind, label in (("username", "text-single", "Username"),
                             ("password", "text-private", "Password")):
        form.tag("field", attrs={"var": var, "type": kind, "label": label}).tag("required")
    return query


def check_credentials(values: dict[str, str],
                      profile: str = "stringprep") -> tuple[str, str] | StanzaError:
    """The prepared username and the password, or the error to answer."""
    missing = [n for n in ("username", "password") if not values.get(n)]
    if missing:
        text = "\n".join(f"{n.capitalize()}: Required value missing" for n in missing)
        return StanzaError("not-acceptable", text, type="modify")
    try:
        username = nodeprep(values["username"], profile)
    except InvalidJID:
        username = ""
    if not username:
        return StanzaError("not-acceptable", "The requested username is invalid.",
                           type="modify")
    return username, values["password"]


def load(module: ModuleApi) -> None:
    module.add_feature(NS_REGISTER)
    load_creation(module)
    load_account_management(module)


class _Creation:
    """Account creation on unauthenticated streams, with the options read at load."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.allow: bool = module.option("allow_registration")
        self.profile: str = module.global_option("jid_profile")
        # declared by the c2s module
        self.require_tls: bool = module.option("c2s_require_encryption")
        self.instructions: str = module.option("registration_instructions")
        self.allowlist = parse_networks("registration_allowlist",
                                        module.option("registration_allowlist"))
        self.denylist = parse_networks("registration_denylist",
                                       module.option("registration_denylist"))
        self.allowlist_only: bool = module.option("allowlist_registration_only")
        self.throttle = Throttle(module.option("min_seconds_between_registrations"),
                                 module.option("registration_throttle_cache_size"),
                                 module.now, module.open_map(THROTTLE_STORE))

    def features(self, event: StreamFeaturesEvent) -> None:
        session = event.session
        if self.allow and not session.authenticated and (session.secure or not self.require_tls):
            event.features.tag("register", NS_FEATURE)

    def ip_refusal(self, ip: str, throttled: bool = True) -> StanzaError | None:
        if ip_in(ip, self.denylist):
            return StanzaError("forbidden", "Your IP address is blocklisted", type="auth")
        allowed = ip_in(ip, self.allowlist)
        if self.allowlist_only and not allowed:
            return StanzaError("forbidden", "Your IP address is not allowlisted", type="auth")
        if throttled and not allowed and not self.throttle.allows(ip):
            return StanzaError("policy-violation",
                               "Too many registrations from this IP address recently",
                               type="wait")
        return None

    def open_for(self, session: ClientSession) -> bool:
        """Registration is open, or another module opens it for this stream: handlers of
        ``registration-allowed`` (synchronous; invites_register, after a valid invitation
        token, XEP-0445 §3) return True."""
        return self.allow or self.module.fire("registration-allowed", session) is True

    def on_query(self, event: StreamElementEvent) -> Awaitable[bool] | bool:
        session, stanza = event.session, event.element
        if not self.open_for(session):
            return reply_error(session, stanza, StanzaError("service-unavailable"))
        if self.require_tls and not session.secure:
            return reply_error(session, stanza, StanzaError(
                "policy-violation", "Encryption is required", type="modify"))
        if stanza.get("type") == "get":
            reply = stanza.reply()
            reply.append(registration_form(self.instructions))
            session.send(reply)
            return True
        if stanza.get("type") != "set":
            if stanza.get("type") in ("result", "error"):
                return True  # never answered (RFC 6120 §8.3.1)
            return reply_error(session, stanza, StanzaError("bad-request"))
        query = stanza.iq_payload()
        assert query is not None
        if query.find("remove", NS_REGISTER) is not None:
            return reply_error(session, stanza, StanzaError("registration-required"))
        return self.create(session, stanza, form_values(query))

    async def create(self, session: ClientSession, stanza: Element, values: dict[str, str]) -> bool:
        checked = check_credentials(values, self.profile)
        if isinstance(checked, StanzaError):
            return reply_error(session, stanza, checked)
        username, password = checked
        ip = session.peer
        await self.throttle.recall(ip)
        # Where registration is closed, an invitation opened it: its token limits how
        # many accounts it creates, so the per-IP throttle does not apply (a household
        # behind one address registering with one reusable invitation).
        refusal = self.ip_refusal(ip, throttled=self.allow) or await self.module.fire_async(
            "user-registering", RegistrationAttempt(username, self.module.host, ip, session))
        if isinstance(refusal, StanzaError):
            session.log.info("registration of %s from %s refused: %s (%s)", username, ip,
                             refusal.condition, refusal.text or "by a module")
            return reply_error(session, stanza, refusal)
        error = await self.create_account(username, password)
        if error is not None:
            return reply_error(session, stanza, error)
        if not ip_in(ip, self.allowlist):
            await self.throttle.record(ip)
        session.send(stanza.reply())
        session.log.info("registered %s@%s from %s", username, self.module.host, ip)
        await self.module.fire_async("user-registered",
                                     Registered(username, self.module.host, ip, session))
        return True

    async def create_account(self, username: str, password: str) -> StanzaError | None:
        auth = self.module.auth
        if auth is None:
            return StanzaError("service-unavailable")
        if await auth.user_exists(username):
            return StanzaError("conflict", "The requested username already exists.")
        try:
            await auth.create_user(username, password)
        except ValueError:  # SASLprep refused the password (RFC 4013)
            return StanzaError("not-acceptable", "The password is not acceptable.",
                               type="modify")
        except Exception:
            if await auth.user_exists(username):  # created by a concurrent request
                return StanzaError("conflict", "The requested username already exists.")
            self.module.log.exception("could not create %s", username)
            return StanzaError("internal-server-error", type="wait")
        return None


def load_creation(module: ModuleApi) -> None:
    """Account creation on unauthenticated streams."""
    creation = _Creation(module)
    module.add_timer(max(creation.throttle.period, 60.0), creation.throttle.sweep)
    module.hook("stream-features", creation.features, 5)
    module.hook(f"unauthenticated-iq/{NS_REGISTER}:query", creation.on_query)


class _AccountManagement:
    """Registration info, password change and cancellation for logged-in users."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.profile: str = module.global_option("jid_profile")

    def on_query(self, event: StanzaEvent) -> Awaitable[bool | None] | bool | None:
        origin, stanza = event.origin, event.stanza
        username = origin.username if isinstance(origin, ClientSession) else None
        if username is None:
            return None  # "self" is a local client asking about its own account
        if stanza.get("type") == "get":
            reply = stanza.reply()
            query = reply.tag("query", NS_REGISTER)
            query.tag("registered")
            query.text_tag("username", username)
            query.tag("password")
            origin.send(reply)
            return True
        payload = stanza.iq_payload()
        assert payload is not None
        if payload.find("remove", NS_REGISTER) is not None:
            return self.cancel(origin, username, stanza)
        return self.change_password(origin, username, stanza, form_values(payload))

    def on_host_query(self, event: StanzaEvent) -> Awaitable[bool | None] | bool | None:
        # COMPAT: clients that address the server instead of their own account.
        if not self.module.is_host_client(event.origin):
            return None
        return self.on_query(event)

    async def cancel(self, origin: Session, username: str, stanza: Element) -> bool:
        answered: list[bool] = []

        def answer() -> None:  # XEP-0077 §3.2: after the removal, before the stream error
            answered.append(True)
            origin.send(stanza.reply())
        try:
            deleted = await self.module.delete_account(username, before_close=answer)
        except Exception:
            self.module.log.exception("could not delete %s", username)
            if not answered:
                origin.send(stanza.error_reply(StanzaError("internal-server-error",
                                                           type="wait")))
            return True
        if not deleted:
            origin.send(stanza.error_reply(StanzaError("item-not-found")))
        else:
            self.module.log.info("%s@%s removed their account", username, self.module.host)
        return True

    async def change_password(self, origin: Session, own: str, stanza: Element,
                              values: dict[str, str]) -> bool | None:
        checked = check_credentials(values, self.profile)
        if isinstance(checked, StanzaError):
            origin.send(stanza.error_reply(checked))
            return True
        username, password = checked
        if username != own:
            origin.send(stanza.error_reply(StanzaError("bad-request")))
            return True
        auth = self.module.auth
        if auth is None:
            return None  # no account service: the router answers service-unavailable
        try:
            await auth.set_password(username, password)
        except ValueError:
            origin.send(stanza.error_reply(StanzaError(
                "not-acceptable", "The password is not acceptable.", type="modify")))
            return True
        origin.log.info("password changed")
        origin.send(stanza.reply())
        return True


def load_account_management(module: ModuleApi) -> None:
    """Registration info, password change and cancellation for logged-in users."""
    management = _AccountManagement(module)
    module.hook(f"iq/self/{NS_REGISTER}:query", management.on_query)
    module.hook(f"iq/host/{NS_REGISTER}:query", management.on_host_query)


def reply_error(session: ClientSession, stanza: Element, error: StanzaError) -> bool:
    session.send(stanza.error_reply(error))
    return True
