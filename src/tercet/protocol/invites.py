"""Invitations (XEP-0401, XEP-0379, XEP-0445): the invite record, its tokens and its URIs.

Shared by the ``invites`` modules and the ``tercet invite`` command (which works on the
store directly when the server is stopped), so both read and write one format. Pure data:
no I/O, the clock is passed in.

Two kinds of invitation exist (XEP-0401 §1):

* ``account``: an operator invites someone to create an account
  (``xmpp:example.org?register;preauth=TOKEN``, XEP-0445 §2.2; with a reserved username
  ``xmpp:juliet@example.org?register;preauth=TOKEN``, §2.1);
* ``contact``: a user invites someone to become a contact, registering here if they
  have no account (``xmpp:romeo@example.org?roster;preauth=TOKEN;ibr=y``, XEP-0379 §3.2
  and XEP-0445 §2.3). Redeeming it makes the two mutual contacts.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote

InviteKind = Literal["account", "contact"]
KINDS: tuple[InviteKind, ...] = ("account", "contact")

#: XEP-0379 §4.1 suggests at least 80 bits; we use 160, base32 (URI-safe, no padding).
TOKEN_BYTES = 20
#: Bounds on what one invite carries (the operator types them; a record stays small).
MAX_GROUPS = 16
MAX_TEXT = 256
#: The longest validity an invite may have: a token is a bearer credential (XEP-0379 §4.2
#: "the token SHOULD be limited" in time).
MAX_TTL = 366 * 86400
DEFAULT_TTL = 7 * 86400

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_TOKEN = re.compile(r"^[a-z2-7]{16,64}$")


def new_token() -> str:
    """A fresh random token: 160 bits from the OS's CSPRNG, lowercase base32."""
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode().rstrip("=").lower()


def looks_like_token(text: str) -> bool:
    """Whether ``text`` could be one of our tokens (cheap check before a store lookup)."""
    return bool(_TOKEN.match(text))


def parse_duration(text: str | int) -> int:
    """Seconds in ``"30s"``, ``"15m"``, ``"12h"``, ``"7d"``, ``"2w"`` or a bare number of
    seconds; ValueError for anything else."""
    if isinstance(text, int):
        seconds = text
    else:
        match = _DURATION.match(text)
        if match is None:
            raise ValueError(f"not a duration: {text!r} (write e.g. 30s, 15m, 12h, 7d, 2w)")
        seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def iso_time(when: float) -> str:
    """XEP-0082 DateTime in UTC, whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


@dataclass(frozen=True, slots=True)
class Invite:
    """One invitation, as stored (``to_json``) under its token in the host's
    ``invites`` map store."""

    token: str
    host: str
    kind: InviteKind
    created: float
    expires: float
    #: How many accounts may still be created with it (1 = single use, XEP-0445 §4).
    uses_left: int = 1
    #: Contact invites: the bare JID of the inviting user (XEP-0379).
    inviter: str | None = None
    #: Account invites may reserve a username (XEP-0445 §4).
    username: str | None = None
    #: The role the new account gets, and roster groups for the new contacts.
    role: str | None = None
    groups: tuple[str, ...] = ()
    #: Who created it ("tercet invite", an admin's JID, a user's JID), for the list.
    created_by: str | None = None
    used_by: tuple[str, ...] = field(default=())

    def usable(self, now: float) -> bool:
        """Not expired and not used up (XEP-0445 §3: expiry is checked when the token is
        presented; a redeemed single-use token is gone)."""
        return self.uses_left > 0 and now < self.expires

    def used(self, account: str) -> Invite:
        """This invite after creating ``account`` with it."""
        return replace(self, uses_left=max(0, self.uses_left - 1),
                       used_by=(*self.used_by, account)[-MAX_GROUPS:])

    def uri(self, ibr: bool = True) -> str:
        """The XMPP URI clients open (XEP-0401 §5.1, XEP-0445 §2). ``ibr``: the host
        accepts the token at registration; without it a contact invitation's URI omits
        ``ibr=y`` (XEP-0401 §5.1 "MUST omit")."""
        token = quote(self.token, safe="")
        if self.kind == "contact" and self.inviter:
            return f"xmpp:{_uri_jid(self.inviter)}?roster;preauth={token}" + (
                ";ibr=y" if ibr else "")
        target = f"{self.username}@{self.host}" if self.username else self.host
        return f"xmpp:{_uri_jid(target)}?register;preauth={token}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["groups"] = list(self.groups)
        data["used_by"] = list(self.used_by)
        return data

    @classmethod
    def from_json(cls, data: Any) -> Invite | None:
        """A stored record, or None when it is not one (never raises on bad data)."""
        if not isinstance(data, dict):
            return None
        try:
            kind: InviteKind = "contact" if data.get("kind") == "contact" else "account"
            return cls(token=str(data["token"]), host=str(data["host"]), kind=kind,
                       created=float(data["created"]), expires=float(data["expires"]),
                       uses_left=int(data.get("uses_left", 0)),
                       inviter=_opt(data.get("inviter")), username=_opt(data.get("username")),
                       role=_opt(data.get("role")),
                       groups=tuple(str(g) for g in data.get("groups") or ())[:MAX_GROUPS],
                       created_by=_opt(data.get("created_by")),
                       used_by=tuple(str(u) for u in data.get("used_by") or ()))
        except (KeyError, TypeError, ValueError):
            return None

    def describe(self, now: float, landing_url: str | None = None,
                 ibr: bool = True) -> dict[str, Any]:
        """What ``invite create/list --json`` print for it."""
        return {"token": self.token, "host": self.host, "kind": self.kind,
                "uri": self.uri(ibr), "landing_url": landing_url,
                "created": iso_time(self.created), "expires": iso_time(self.expires),
                "expired": now >= self.expires, "uses_left": self.uses_left,
                "inviter": self.inviter, "username": self.username, "role": self.role,
                "groups": list(self.groups), "created_by": self.created_by,
                "used_by": list(self.used_by)}


def _opt(value: Any) -> str | None:
    return str(value) if value else None


def _uri_jid(jid: str) -> str:
    # RFC 5122 §2.3: a JID in a URI is percent-encoded except for the characters the
    # IRI grammar allows unescaped; "@" separates node and domain.
    return quote(jid, safe="@.-_~!$&'()*+,=:")


def make_invite(host: str, now: float, *, kind: InviteKind = "account",
                ttl: int = DEFAULT_TTL, uses: int = 1, inviter: str | None = None,
                username: str | None = None, role: str | None = None,
                groups: tuple[str, ...] | list[str] = (),
                created_by: str | None = None) -> Invite:
    """A new invite with a fresh token; ValueError names what is out of bounds."""
    if not 0 < ttl <= MAX_TTL:
        raise ValueError(f"the validity must be between 1 second and {MAX_TTL // 86400} days")
    if not 1 <= uses <= 10_000:
        raise ValueError("the number of uses must be between 1 and 10000")
    if kind == "contact" and not inviter:
        raise ValueError("a contact invite needs the inviting user's JID")
    if len(groups) > MAX_GROUPS or any(not g or len(g) > MAX_TEXT for g in groups):
        raise ValueError(f"at most {MAX_GROUPS} groups, each 1 to {MAX_TEXT} characters")
    if role is not None and not 0 < len(role) <= MAX_TEXT:
        raise ValueError("the role name is empty or too long")
    return Invite(token=new_token(), host=host, kind=kind, created=now, expires=now + ttl,
                  uses_left=uses, inviter=inviter, username=username, role=role,
                  groups=tuple(groups), created_by=created_by)
