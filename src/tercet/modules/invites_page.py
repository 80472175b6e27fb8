"""The web landing page of an invitation (XEP-0401 §5.2, XEP-0379 §3.3):
``GET /invite/<token>`` says who invites whom to what, lists suitable clients with the
``xmpp:`` link to open, and carries a plain registration form for clients without
XEP-0445; ``POST /invite/<token>`` creates the account from that form.

The page is self-contained (no scripts, styles inline, no external resources) and every
value in it is HTML-escaped. The form needs no separate CSRF token: the invitation token is
the secret, and it is part of the form (a page on another site cannot know it). Responses
forbid framing, caching and referrers, so the token in the URL does not leak to the
client download sites linked from the page. A token that is unknown answers 404, one that
expired (and is not purged yet) 410, each with a page that says so.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tercet.module import HttpRoute, ModuleApi, Option, StanzaError
from tercet.modules._invites import InviteService, LandingPages, create_account
from tercet.protocol.invites import Invite, iso_time
from tercet.protocol.jid import InvalidJID, nodeprep

META = {"summary": "Web landing page and registration form for invitations",
        "stage": "beta", "xeps": ["XEP-0401", "XEP-0379"]}
OPTIONS: list[Option[Any]] = [
    Option("site_name", str, "", "Name of the service shown on web pages (default: the "
           "host's name)."),
]

#: RFC 7622 §3.3.1: a localpart is at most 1023 octets; passwords get the same bound so a
#: form field cannot make the server hash megabytes.
MAX_FIELD = 1023
HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'"),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True, slots=True)
class Client:
    """A client suggested on the page; ``preauth``: it opens invitation links itself
    (XEP-0401/XEP-0445), so the reader needs no web form."""

    name: str
    platforms: str
    url: str
    preauth: bool


CLIENTS: tuple[Client, ...] = (
    Client("Conversations", "Android", "https://conversations.im/", True),
    Client("Monal", "iOS, macOS", "https://monal-im.org/", True),
    Client("Siskin IM", "iOS", "https://siskin.im/", True),
    Client("Dino", "Linux", "https://dino.im/", False),
    Client("Gajim", "Windows, Linux", "https://gajim.org/", False),
    Client("Converse.js", "web browser", "https://conversejs.org/", False),
)


def load(module: ModuleApi) -> None:
    module.depends("http")
    module.depends("invites")
    page = _Page(module)
    route = module.add_http_route("GET", "/{token}", page.show, base="/invite")
    module.add_http_route("POST", "/{token}", page.submit, base="/invite")
    page.route = route
    module.provides("invites-landing", LandingPages(page.url))


class _Page:
    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.route: HttpRoute | None = None
        self.site = module.option("site_name") or module.host

    @property
    def service(self) -> InviteService:
        return self.module.require("invites", InviteService)

    def url(self, token: str) -> str:
        assert self.route is not None
        return self.module.http_url(self.route).replace("{token}", token)

    async def find(self, request: web.Request) -> Invite | web.Response:
        """The usable invite of the URL, or the page that says why there is none."""
        invite = await self.service.get(request.match_info["token"])
        if invite is None:
            return self.respond(404, "Invitation not found", _p(
                "This invitation link is not valid. Check that you copied all of it, or ask "
                "for a new one."))
        if not invite.usable(self.module.now()):
            return self.respond(410, "Invitation expired", _p(
                "This invitation has expired or has already been used. Ask the person who "
                "sent it for a new one."))
        return invite

    async def show(self, request: web.Request) -> web.StreamResponse:
        invite = await self.find(request)
        if isinstance(invite, web.Response):
            return invite
        return self.respond(200, self.title(invite), self.body(invite))

    def title(self, invite: Invite) -> str:
        if invite.kind == "contact" and invite.inviter:
            return f"{invite.inviter} invites you to chat"
        return f"You are invited to {self.site}"

    def body(self, invite: Invite, error: str = "", username: str = "") -> str:
        uri = self.service.uri(invite)
        parts = [
            _p(f"You have been invited to create an account on <b>{_e(self.site)}</b>, a "
               "server of the XMPP instant messaging network. XMPP is provider-independent: "
               "with an account here you can talk to people on any XMPP server."),
            f'<p><a class="button" href="{_e(uri)}">Open the invitation in your app</a></p>',
            _p(f"This invitation is valid until {_e(iso_time(invite.expires))}."),
            "<h2>1. Install an app</h2>",
            _p("If the button above does nothing, you need an XMPP app first. Install one "
               "of these, then come back to this page and press the button again:"),
            self.client_list(uri),
            "<h2>2. Or create your account here</h2>",
            _p("If your app cannot open invitation links, choose a username and a password "
               "here, then sign in with them in your app."),
            self.form(invite, error, username),
        ]
        return "\n".join(parts)

    def client_list(self, uri: str) -> str:
        rows = []
        for c in CLIENTS:
            how = (f'opens <a href="{_e(uri)}">the invitation link</a>' if c.preauth
                   else "create the account below first")
            rows.append(f'<li><a href="{_e(c.url)}" rel="noreferrer">{_e(c.name)}</a> '
                        f"({_e(c.platforms)}): {how}</li>")
        return "<ul>\n" + "\n".join(rows) + "\n</ul>"

    def form(self, invite: Invite, error: str, username: str) -> str:
        fixed = invite.username
        name_attrs = (f'value="{_e(fixed)}" readonly' if fixed else f'value="{_e(username)}"')
        message = f'<p class="error" role="alert">{_e(error)}</p>' if error else ""
        return f"""{message}<form method="post" action="{_e(invite.token)}">
<input type="hidden" name="token" value="{_e(invite.token)}">
<p><label>Username<br><input name="username" {name_attrs} required maxlength="{MAX_FIELD}"
 autocomplete="username"> @{_e(self.module.host)}</label></p>
<p><label>Password<br><input name="password" type="password" required
 maxlength="{MAX_FIELD}" autocomplete="new-password"></label></p>
<p><label>Password again<br><input name="password2" type="password" required
 maxlength="{MAX_FIELD}" autocomplete="new-password"></label></p>
<p><button type="submit">Create account</button></p>
</form>"""

    async def submit(self, request: web.Request) -> web.StreamResponse:
        invite = await self.find(request)
        if isinstance(invite, web.Response):
            return invite
        form = await request.post()
        values = {k: str(form.get(k, ""))[:MAX_FIELD + 1]
                  for k in ("token", "username", "password", "password2")}
        if values["token"] != invite.token:
            return self.respond(400, "Invalid form", _p("The form does not belong to this "
                                                         "invitation. Reload the page."))
        checked, problem = self.check(invite, values)
        if checked is None:
            return self.retry(invite, problem, values["username"])
        error = await self.register(request, invite, checked, values["password"])
        if error is not None:
            return self.retry(invite, error, values["username"])
        jid = f"{checked}@{self.module.host}"
        return self.respond(200, "Your account is ready", "\n".join([
            _p(f"Your address is <b>{_e(jid)}</b>. Sign in with it and your password in "
               "your XMPP app."),
            _p(f"{_e(invite.inviter)} is already in your contact list.")
            if invite.kind == "contact" and invite.inviter else "",
        ]))

    def check(self, invite: Invite, values: dict[str, str]) -> tuple[str | None, str]:
        """The prepared username, or None and what is wrong with the form."""
        if not values["username"] or not values["password"]:
            return None, "Choose a username and a password."
        if len(values["username"]) > MAX_FIELD or len(values["password"]) > MAX_FIELD:
            return None, "The username or the password is too long."
        if values["password"] != values["password2"]:
            return None, "The two passwords differ."
        try:
            username = nodeprep(values["username"], self.module.global_option("jid_profile"))
        except InvalidJID:
            username = ""
        if not username:
            return None, "That username cannot be used: choose another one."
        refusal = self.service.refusal(invite, username)
        if refusal is not None:
            return None, refusal.text or "This invitation cannot be used."
        return username, ""

    async def register(self, request: web.Request, invite: Invite, username: str,
                       password: str) -> str | None:
        async with self.module.lock(f"invite:{invite.token}"):
            current = await self.service.valid(invite.token)
            refusal = self.service.refusal(current, username)
            if refusal is not None:
                return refusal.text or "This invitation cannot be used."
            error = await create_account(self.module, username, password,
                                         request.remote or "")
            if error is not None:
                return _error_text(error)
            await self.service.redeem(invite.token, username)
        self.module.log.info("%s@%s created from the invitation page", username,
                             self.module.host)
        return None

    def retry(self, invite: Invite, error: str, username: str) -> web.Response:
        status = 409 if "exists" in error else 400
        return self.respond(status, self.title(invite), self.body(invite, error, username))

    def respond(self, status: int, title: str, body: str) -> web.Response:
        return web.Response(status=status, text=_document(title, body),
                            content_type="text/html", charset="utf-8", headers=HEADERS)


def _error_text(error: StanzaError) -> str:
    if error.condition == "conflict":
        return "That username already exists: choose another one."
    if error.condition == "not-acceptable":
        return "That password cannot be used: choose another one."
    return "The account could not be created. Try again later."


def _e(text: str | None) -> str:
    return html.escape(text or "", quote=True)


def _p(inner: str) -> str:
    return f"<p>{inner}</p>"


STYLE = """body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em;
line-height:1.5;color:#222}a.button,button{display:inline-block;padding:.6em 1.2em;
background:#2a6ebb;color:#fff;border:0;border-radius:4px;text-decoration:none;
font-size:1em}.error{color:#a00;font-weight:bold}input{font-size:1em;padding:.3em}"""


def _document(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="referrer" content="no-referrer">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n"
            f"<body><h1>{_e(title)}</h1>\n{body}\n</body></html>\n")
