"""Service administration (XEP-0133) as ad-hoc commands (XEP-0050) on a virtual host.

Each command is its own permission, ``admin_adhoc:<command>`` (``admin_adhoc:add-user``...),
granted to ``tercet:admin`` by default, so a custom role can be given some of them. Commands
that name accounts take several JIDs where the XEP has ``accountjids`` (jid-multi), and act
on accounts of this host only. Outcomes are notes (§4.5 of XEP-0050): "Operation finished
successfully" (info) or an error note saying what went wrong, as clients and the Smack
integration tests expect.

The message of the day (§4.26-4.28) is kept in this host's store and sent to each session
at its first available presence (``initial-presence``), from the host, until deleted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tercet.module import (
    ClientSession,
    InvalidJID,
    ModuleApi,
    Option,
    StreamError,
    message,
)
from tercet.modules._adhoc import (
    Command,
    CommandRequest,
    CommandResult,
    Note,
    register_command,
)
from tercet.modules._rosterlib import RosterService
from tercet.protocol.dataforms import Field, FormError, Submitted, build_form
from tercet.protocol.stanza import Element

NS_ADMIN = "http://jabber.org/protocol/admin"
NS_ROSTER = "jabber:iq:roster"
META = {"summary": "Service administration commands", "stage": "stable",
        "xeps": ["XEP-0133"]}
OPTIONS: list[Option[Any]] = []

OK = "Operation finished successfully"
MOTD_STORE = "motd"
#: XEP-0133 §4.16: the choices of max_items ("none": all).
MAX_ITEMS = ("25", "50", "75", "100", "150", "200", "none")

Handler = Callable[[CommandRequest], Awaitable[CommandResult]]


def admin_form(fields: Iterable[Field], title: str, type_: str = "form") -> Element:
    return build_form(fields, type_=type_, title=title, form_type=NS_ADMIN)


def accounts_field(multi: bool = True) -> Field:
    if multi:
        return Field("accountjids", "jid-multi", "The Jabber ID(s)", required=True)
    return Field("accountjid", "jid-single", "The Jabber ID", required=True)


def password_field(var: str = "password", label: str = "The password") -> Field:
    return Field(var, "text-private", label, required=True)


@dataclass(frozen=True, slots=True)
class Spec:
    """One row of the command table: node suffix, name, form fields (None: no form)."""

    suffix: str
    name: str
    fields: tuple[Field, ...] | None


class AdminCommands:
    """The XEP-0133 commands of one host."""

    def __init__(self, module: ModuleApi) -> None:
        self.module = module
        self.motd_store = module.open_keyval(MOTD_STORE)

    # -- helpers ---------------------------------------------------------------------------
    def local_user(self, text: str) -> str:
        """The username of ``text`` on this host; ValueError with the note to show."""
        try:
            jid = self.module.parse_jid(text.strip())
        except InvalidJID:
            raise ValueError("Please provide a valid JID") from None
        if jid.node is None:
            raise ValueError("Please provide a valid JID")
        if jid.domain != self.module.host:
            raise ValueError("Cannot act on a remote user: "
                             f"{jid.bare} is not an account of {self.module.host}")
        return jid.node

    def jids(self, form: Submitted, var: str) -> list[str]:
        return [v for v in (form.get_list(var) or []) if v.strip()]

    async def each_account(self, form: Submitted,
                           act: Callable[[str], Awaitable[str | None]]) -> CommandResult:
        """Run ``act(username)`` for every JID of ``accountjids`` (or ``accountjid``);
        ``act`` returns an error text or None."""
        jids = self.jids(form, "accountjids") or self.jids(form, "accountjid")
        if not jids:
            return CommandResult.fail("Please provide at least one JID")
        failed: list[str] = []
        for text in jids:
            try:
                problem = await act(self.local_user(text))
            except ValueError as exc:
                problem = str(exc)
            if problem is not None:
                failed.append(f"{text}: {problem}")
        if failed:
            return CommandResult.fail("\n".join(failed))
        return CommandResult.done(OK)

    async def existing(self, username: str) -> str | None:
        return None if await self.module.account_exists(username) else "User does not exist"

    def close_sessions(self, username: str, error: StreamError | None) -> int:
        sessions = list(self.module.sessions(username).values())
        for session in sessions:
            self.module.close_session(session, error)
        return len(sessions)

    # -- accounts (§4.1-4.7) ---------------------------------------------------------------
    async def add_user(self, form: Submitted) -> CommandResult:
        text = form.get_text("accountjid") or ""
        if not text.strip():
            return CommandResult.fail("Please provide a valid JID")
        try:
            jid = self.module.parse_jid(text.strip())
        except InvalidJID:
            return CommandResult.fail("Please provide a valid JID")
        if jid.node is None or jid.resource is not None:
            return CommandResult.fail("Please provide a valid JID")
        if jid.domain != self.module.host:
            return CommandResult.fail("Cannot create remote user")
        password = form.get_text("password") or ""
        if password != (form.get_text("password-verify") or ""):
            return CommandResult.fail("Passwords do not match")
        if not password:
            return CommandResult.fail("Please provide a password")
        auth = self.module.auth
        if auth is None:
            return CommandResult.fail("This host has no account service")
        if await auth.user_exists(jid.node):
            return CommandResult.fail("User already exists")
        try:
            await auth.create_user(jid.node, password)
        except ValueError:
            return CommandResult.fail("The password is not acceptable")
        self.module.log.info("account %s created by an admin command", jid.bare)
        return CommandResult.done(OK)

    async def delete_user(self, form: Submitted) -> CommandResult:
        async def delete(username: str) -> str | None:
            return None if await self.module.delete_account(username) \
                else "User does not exist"
        return await self.each_account(form, delete)

    async def set_disabled(self, form: Submitted, disabled: bool) -> CommandResult:
        auth = self.module.auth
        if auth is None:
            return CommandResult.fail("This host has no account service")

        async def change(username: str) -> str | None:
            if (problem := await self.existing(username)) is not None:
                return problem
            await auth.set_disabled(username, disabled)
            if disabled:
                self.close_sessions(username, StreamError("not-authorized",
                                                          "account disabled", remote=False))
            return None
        return await self.each_account(form, change)

    async def disable_user(self, form: Submitted) -> CommandResult:
        return await self.set_disabled(form, True)

    async def reenable_user(self, form: Submitted) -> CommandResult:
        return await self.set_disabled(form, False)

    async def end_user_session(self, form: Submitted) -> CommandResult:
        """§4.5: a full JID ends that session, a bare JID every session of the account."""
        jids = self.jids(form, "accountjids") or self.jids(form, "accountjid")
        if not jids:
            return CommandResult.fail("Please provide at least one JID")
        failed = []
        for text in jids:
            try:
                username = self.local_user(text)
                resource = self.module.parse_jid(text.strip()).resource
            except (ValueError, InvalidJID) as exc:
                failed.append(f"{text}: {exc}")
                continue
            sessions = self.module.sessions(username)
            chosen = [s for r, s in sessions.items() if resource is None or r == resource]
            for session in chosen:
                self.module.close_session(session, None)
        return CommandResult.fail("\n".join(failed)) if failed else CommandResult.done(OK)

    async def change_password(self, form: Submitted) -> CommandResult:
        auth = self.module.auth
        if auth is None:
            return CommandResult.fail("This host has no account service")
        password = form.get_text("password") or ""
        if not password:
            return CommandResult.fail("Please provide a password")

        async def change(username: str) -> str | None:
            if (problem := await self.existing(username)) is not None:
                return problem
            try:
                await auth.set_password(username, password)
            except ValueError:
                return "The password is not acceptable"
            return None
        return await self.each_account(form, change)

    async def get_roster(self, form: Submitted) -> CommandResult:
        """§4.10: the roster inside the result form."""
        jids = self.jids(form, "accountjid") or self.jids(form, "accountjids")
        if len(jids) != 1:
            return CommandResult.fail("Please provide one JID")
        try:
            username = self.local_user(jids[0])
        except ValueError as exc:
            return CommandResult.fail(str(exc))
        if await self.existing(username) is not None:
            return CommandResult.fail("User does not exist")
        roster = self.module.find("roster", RosterService)
        items = (await roster.load(username)).items if roster is not None else {}
        result = admin_form([Field("accountjid", "jid-single", None,
                                   (f"{username}@{self.module.host}",))],
                            "Roster", "result")
        query = result.tag("query", NS_ROSTER)
        for contact, item in sorted(items.items()):
            attrs = {"jid": contact, "subscription": str(item.get("subscription", "none"))}
            if item.get("name"):
                attrs["name"] = str(item["name"])
            el = query.tag("item", NS_ROSTER, attrs)
            for group in item.get("groups", ()):
                el.text_tag("group", str(group))
        return CommandResult.done(form=result)

    # -- statistics (§4.11-4.21) -----------------------------------------------------------
    def online_users(self) -> list[str]:
        return sorted({s.bare_jid for s in self.module.all_sessions() if s.bare_jid})

    async def registered_num(self, _form: Submitted) -> CommandResult:
        auth = self.module.auth
        count = len(await auth.users()) if auth is not None else 0
        return CommandResult.done(form=admin_form(
            [Field("registeredusersnum", "text-single", "The number of registered users",
                   (str(count),))], "Registered users", "result"))

    async def online_num(self, _form: Submitted) -> CommandResult:
        return CommandResult.done(form=admin_form(
            [Field("onlineusersnum", "text-single", "The number of online users",
                   (str(len(self.online_users())),))], "Online users", "result"))

    async def online_list(self, form: Submitted) -> CommandResult:
        limit = form.get_choice("max_items", MAX_ITEMS) or "none"
        users = self.online_users()
        if limit != "none":
            users = users[: int(limit)]
        return CommandResult.done(form=admin_form(
            [Field("onlineuserjids", "text-multi", "The list of all online users",
                   tuple(users))], "Online users", "result"))

    # -- announcements and the message of the day (§4.23-4.28) ----------------------------
    async def announce(self, form: Submitted) -> CommandResult:
        text = "\n".join(form.get_list("announcement") or []).strip()
        if not text:
            return CommandResult.fail("Please provide an announcement")
        sessions = self.module.all_sessions()  # a snapshot, bounded by the bound sessions
        for session in sessions:
            await self.module.send(message(to=str(session.full_jid), from_=self.module.host,
                                           body=text, type_="headline"))
        self.module.log.info("announcement sent to %d session(s)", len(sessions))
        return CommandResult.done(OK)

    async def current_motd(self) -> str:
        stored = await self.motd_store.get(None)
        return stored if isinstance(stored, str) else ""

    async def set_motd(self, form: Submitted) -> CommandResult:
        text = "\n".join(form.get_list("motd") or []).strip()
        await self.motd_store.set(None, text or None)
        return CommandResult.done(OK)

    async def delete_motd(self, _form: Submitted) -> CommandResult:
        await self.motd_store.set(None, None)
        return CommandResult.done(OK)

    async def send_motd(self, session: ClientSession) -> None:
        """An observer of ``initial-presence``: returns None so others still run."""
        text = await self.current_motd()
        if text and session.full_jid:
            await self.module.send(message(to=session.full_jid, from_=self.module.host,
                                           body=text, type_="normal"))


def form_command(spec: Spec, act: Callable[[Submitted], Awaitable[CommandResult]],
                 prefill: Callable[[], Awaitable[tuple[Field, ...]]] | None = None,
                 ) -> Handler:
    """A one-form command: the form first, then ``act`` on the submitted values. A command
    without fields, or executed with its form already submitted, acts at once."""
    async def handler(request: CommandRequest) -> CommandResult:
        form = request.form
        if spec.fields is None or (form is not None and form.type == "submit"):
            return await act(form if form is not None else Submitted(None, "submit"))
        if form is not None and form.type == "cancel":  # XEP-0004 §3.1
            return CommandResult.done(Note("Canceled"))
        if request.stage > 0:
            raise FormError(None, "the request carries no submitted form")
        fields = await prefill() if prefill is not None else spec.fields
        return CommandResult.ask(admin_form(fields, spec.name))
    return handler


MOTD_FIELD = Field("motd", "text-multi", "Message of the day", required=True)
SPECS = {
    "add-user": Spec("add-user", "Add a User", (
        accounts_field(multi=False), password_field(),
        password_field("password-verify", "Retype password"))),
    "delete-user": Spec("delete-user", "Delete a User", (accounts_field(),)),
    "disable-user": Spec("disable-user", "Disable a User", (accounts_field(),)),
    "reenable-user": Spec("reenable-user", "Re-Enable a User", (accounts_field(),)),
    "end-user-session": Spec("end-user-session", "End User Session", (accounts_field(),)),
    "change-user-password": Spec("change-user-password", "Change User Password", (
        accounts_field(multi=False), password_field())),
    "get-user-roster": Spec("get-user-roster", "Get User Roster",
                            (accounts_field(multi=False),)),
    "get-registered-users-num": Spec("get-registered-users-num",
                                     "Get Number of Registered Users", None),
    "get-online-users-num": Spec("get-online-users-num", "Get Number of Online Users", None),
    "get-online-users-list": Spec("get-online-users-list", "Get List of Online Users", (
        Field("max_items", "list-single", "Maximum number of items to show", ("25",),
              tuple((v, None) for v in MAX_ITEMS)),)),
    "announce": Spec("announce", "Send Announcement to Online Users", (
        Field("announcement", "text-multi", "Announcement", required=True),)),
    "set-motd": Spec("set-motd", "Set Message of the Day", (MOTD_FIELD,)),
    "edit-motd": Spec("edit-motd", "Edit Message of the Day", (MOTD_FIELD,)),
    "delete-motd": Spec("delete-motd", "Delete Message of the Day", None),
}


#: One permission per command (docs/roles.md), admins' by default.
PERMISSIONS = {f":{suffix}": "tercet:admin" for suffix in SPECS}


def load(module: ModuleApi) -> None:
    module.depends("adhoc")
    commands = AdminCommands(module)
    acts: dict[str, Callable[[Submitted], Awaitable[CommandResult]]] = {
        "add-user": commands.add_user,
        "delete-user": commands.delete_user,
        "disable-user": commands.disable_user,
        "reenable-user": commands.reenable_user,
        "end-user-session": commands.end_user_session,
        "change-user-password": commands.change_password,
        "get-user-roster": commands.get_roster,
        "get-registered-users-num": commands.registered_num,
        "get-online-users-num": commands.online_num,
        "get-online-users-list": commands.online_list,
        "announce": commands.announce,
        "set-motd": commands.set_motd,
        "edit-motd": commands.set_motd,
        "delete-motd": commands.delete_motd,
    }

    async def motd_prefill() -> tuple[Field, ...]:
        current = await commands.current_motd()
        return (Field("motd", "text-multi", "Message of the day",
                      tuple(current.splitlines()), required=True),)

    for suffix, spec in SPECS.items():
        prefill = motd_prefill if suffix == "edit-motd" else None
        handler = form_command(spec, acts[suffix], prefill)
        register_command(module, Command(f"{NS_ADMIN}#{suffix}", spec.name, handler,
                                         f":{suffix}"))
    module.hook("initial-presence", commands.send_motd)
