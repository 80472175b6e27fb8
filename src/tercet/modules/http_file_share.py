"""HTTP File Upload (XEP-0363) as a component, Prosody's mod_http_file_share:
``[components."upload.example.org"] module = "http_file_share"``. docs/file_share.md.

Clients find the service in their server's disco#items (the disco module lists components
under the host's domain), read ``max-file-size`` from its disco#info (§2, an XEP-0128
form), ask for a slot (§4) and upload with HTTP PUT (§5) to the URL it names, carrying the
signed token of the slot's Authorization header. The HTTP side and the token live in
``_fileshare``; this file is the XMPP side, the policy (access, size, types, quota) and
the jobs that delete files: expiry, and the files of deleted accounts.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from tercet.module import (
    JID,
    MAX_ARCHIVE_PAGE,
    ArchiveQuery,
    Element,
    HttpRoute,
    ModuleApi,
    Option,
    StanzaError,
    StanzaEvent,
    UserDeleted,
)
from tercet.modules._fileshare import (
    NS,
    Files,
    FileShareHttp,
    Grant,
    ServeSettings,
    Upload,
    Uploads,
    media_type,
    parse_size,
    sign,
    type_matches,
    valid_filename,
)
from tercet.protocol.dataforms import Field, build_form
from tercet.protocol.stanza import NS_STANZAS

META = {"summary": "HTTP File Upload service (component)", "stage": "beta",
        "xeps": ["XEP-0363"]}

SIZE_LIMIT = Option("http_file_share_size_limit", int, 100 * 1024 * 1024,
                    "Largest file, in bytes (advertised as max-file-size).", min=1,
                    cite="XEP-0363 §2")
DAILY_QUOTA = Option[int | None](
    "http_file_share_daily_quota", int | None, None,
    "Bytes one user may request slots for in 24 hours; unset: 10 times the size limit "
    "(as Prosody).", min=1, cite="XEP-0363 §4.2")
DAILY_SLOTS = Option("http_file_share_daily_slots", int, 1000,
                     "Slots one user may request in 24 hours.", min=1,
                     max=MAX_ARCHIVE_PAGE, cite="XEP-0363 §4.2")
EXPIRES_AFTER = Option("http_file_share_expires_after", int, 7 * 86400,
                       "Seconds after which an uploaded file is deleted; 0: never.", min=0)
SLOT_LIFETIME = Option("http_file_share_slot_lifetime", int, 300,
                       "Seconds a slot's upload URL stays valid after the request.",
                       min=10, max=86400, cite="XEP-0363 §5")
ALLOWED_TYPES = Option("http_file_share_allowed_file_types", list[str], [],
                       'Content types that may be uploaded ("image/*" wildcards); '
                       "empty: any.", example=["image/*", "text/plain"])
DENIED_TYPES = Option("http_file_share_denied_file_types", list[str], [],
                      "Content types that may not be uploaded, whatever the allowed list "
                      "says.", example=["application/x-executable"])
SAFE_TYPES = Option("http_file_share_safe_file_types", list[str],
                    ["image/*", "video/*", "audio/*", "text/plain"],
                    "Content types browsers show inline; other files are downloads "
                    "(Content-Disposition: attachment).")
ACCESS = Option("http_file_share_access", list[str], [],
                "Who may request slots: bare JIDs and domains; empty: the users of the "
                "parent host (upload.example.org: example.org), or of every virtual host "
                "when the parent is not one.", example=["example.org", "bot@example.net"])
SECRET = Option[str | None]("http_file_share_secret", str | None, None,
                            "Key that signs upload tokens; unset: a random key kept in "
                            "the component's store.")
OPTIONS: list[Option[Any]] = [SIZE_LIMIT, DAILY_QUOTA, DAILY_SLOTS, EXPIRES_AFTER,
                              SLOT_LIFETIME, ALLOWED_TYPES, DENIED_TYPES, SAFE_TYPES,
                              ACCESS, SECRET]

DAY = 86400  # the quota's window (XEP-0363 §4.2 leaves quotas to the service)
# The expiry job: first run soon after start, then hourly, deleting files in batches so
# that one run never holds many records in memory or the store busy for long.
FIRST_CLEANUP = 60.0
CLEANUP_INTERVAL = 3600.0
CLEANUP_BATCH = 100
CLEANUP_MAX_BATCHES = 100


def _error(condition: str, text: str, extra: Element | None = None,
           type_: str | None = None) -> StanzaError:
    return StanzaError(condition, text, extra=extra, type=type_)


def error_reply(stanza: Element, err: StanzaError) -> Element:
    """The error reply, its <text/> without xml:lang as Prosody sends it (RFC 6120
    §8.3.2 makes the attribute optional; clients and test scripts compare the text)."""
    reply = stanza.reply()
    reply.set("type", "error")
    error = reply.tag("error", stanza.xmlns, {"type": err.type})
    error.tag(err.condition, NS_STANZAS)
    if err.text:
        error.text_tag("text", err.text, NS_STANZAS)
    if err.extra is not None:
        error.append(err.extra)
    return reply


class FileShare:
    """The service of one component: slot requests, expiry, deleted accounts."""

    def __init__(self, module: ModuleApi, uploads: Uploads, files: Files,
                 http: FileShareHttp) -> None:
        self.module = module
        self.uploads = uploads
        self.files = files
        self.http = http
        self.size_limit = module.option(SIZE_LIMIT)
        quota = module.option(DAILY_QUOTA)
        self.daily_quota = quota if quota is not None else 10 * self.size_limit
        self.secret = http.settings.secret
        self.route: HttpRoute | None = None  # the GET route, set by load()

    # -- slot requests (§4) --------------------------------------------------------------
    async def on_request(self, event: StanzaEvent) -> bool:
        request = event.stanza.iq_payload()
        sender = event.from_
        assert request is not None
        try:
            if sender is None or not self.may_request(sender):
                raise _error("forbidden", "You may not upload files here", type_="auth")
            upload = self.check(sender.bare, request)
            async with self.module.lock(str(sender.bare)):
                await self.check_quota(upload)
                await self.uploads.add(upload)
        except StanzaError as err:
            event.origin.send(error_reply(event.stanza, err))
            return True
        self.module.log.info("upload slot %s for %s: %d bytes", upload.slot, upload.owner,
                             upload.size)
        event.origin.send(self.slot_reply(event.stanza, upload))
        return True

    def may_request(self, jid: JID) -> bool:
        """``http_file_share_access``, or by default the users of the parent host."""
        if jid.node is None:
            return False
        access = self.module.option(ACCESS)
        if access:
            return str(jid.bare) in access or jid.domain in access
        parent = self.module.host.partition(".")[2]
        if self.module.host_kind(parent) == "local":
            return jid.domain == parent
        return self.module.host_kind(jid.domain) == "local"

    def check(self, owner: JID, request: Element) -> Upload:
        """The slot a request asks for, or the §4.2 error (Prosody's wording)."""
        filename = request.get("filename")
        if not valid_filename(filename):
            raise _error("bad-request", "Invalid filename")
        assert filename is not None
        size = parse_size(request.get("size"))
        if size is None:
            raise _error("bad-request", "File size must be positive integer")
        if size > self.size_limit:
            too_large = Element("file-too-large", NS)
            too_large.text_tag("max-file-size", str(self.size_limit))
            raise _error("not-acceptable", "File too large", too_large)
        ctype = media_type(request.get("content-type"))
        allowed = self.module.option(ALLOWED_TYPES)
        if ctype is None or (allowed and not type_matches(ctype, allowed)) \
                or type_matches(ctype, self.module.option(DENIED_TYPES)):
            raise _error("not-acceptable", "File type not allowed")
        return Upload(secrets.token_urlsafe(18), str(owner), filename, size, ctype,
                      self.module.now())

    async def check_quota(self, upload: Upload) -> None:
        """At most ``daily_quota`` bytes and ``daily_slots`` slots per 24 hours; the
        error says when enough of today's slots will have aged out (§4.2 <retry/>)."""
        recent = await self.uploads.find(ArchiveQuery(
            with_jid=upload.owner, start=upload.when - DAY,
            limit=self.module.option(DAILY_SLOTS)))
        used = sum(u.size for u in recent)
        slots_full = len(recent) >= self.module.option(DAILY_SLOTS)
        if not slots_full and used + upload.size <= self.daily_quota:
            return
        retry_at = upload.when + DAY
        for i, old in enumerate(recent):  # oldest first: when does enough age out?
            used -= old.size
            if used + upload.size <= self.daily_quota and \
                    len(recent) - i - 1 < self.module.option(DAILY_SLOTS):
                retry_at = old.when + DAY
                break
        stamp = datetime.fromtimestamp(retry_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        retry = Element("retry", NS, {"stamp": stamp})
        raise _error("resource-constraint", "Daily quota reached", retry, type_="wait")

    def slot_reply(self, stanza: Element, upload: Upload) -> Element:
        expires = int(upload.when) + self.module.option(SLOT_LIFETIME)
        token = sign(self.secret, Grant(upload.slot, upload.filename, upload.size,
                                        upload.content_type, expires))
        url = self.url(upload)
        reply = stanza.reply()
        slot = reply.tag("slot", NS)
        slot.tag("get", NS, {"url": url})
        # §5: only Authorization, Cookie and Expires may be given; we give one.
        slot.tag("put", NS, {"url": url}).text_tag("header", f"Bearer {token}", NS,
                                                   {"name": "Authorization"})
        return reply

    def url(self, upload: Upload) -> str:
        assert self.route is not None
        template = self.module.http_url(self.route)
        return template.replace("{slot}", upload.slot).replace(
            "{filename}", quote(upload.filename, safe=""))

    # -- deleting files ----------------------------------------------------------------------
    async def expire(self) -> int:
        """Delete files older than ``http_file_share_expires_after``, in batches; returns
        how many. The slot records of unfinished uploads age out with them."""
        after = self.module.option(EXPIRES_AFTER)
        if after <= 0:
            return 0
        cutoff = self.module.now() - after
        return await self._delete_all(ArchiveQuery(end=cutoff, limit=CLEANUP_BATCH))

    async def cleanup(self) -> float:
        """The timer's job: expire, then run again in CLEANUP_INTERVAL seconds."""
        try:
            removed = await self.expire()
        except Exception:
            self.module.log.exception("expiring uploaded files failed")
        else:
            if removed:
                self.module.log.info("deleted %d expired uploaded files", removed)
        return CLEANUP_INTERVAL

    async def on_user_deleted(self, event: UserDeleted) -> None:
        """A deleted account's files go with it."""
        owner = f"{event.username}@{event.host}"
        removed = await self._delete_all(ArchiveQuery(with_jid=owner, limit=CLEANUP_BATCH))
        if removed:
            self.module.log.info("deleted %d uploaded files of %s", removed, owner)

    async def _delete_all(self, query: ArchiveQuery) -> int:
        removed = 0
        for _ in range(CLEANUP_MAX_BATCHES):
            batch = [u.slot for u in await self.uploads.find(query)
                     if u.slot not in self.http.busy]
            if not batch:
                break
            # Files first: a record without a file is a 404; a file without a record
            # would never be found again.
            await asyncio.to_thread(self.files.remove, batch)
            await self.uploads.remove(batch)
            removed += len(batch)
        return removed


async def _secret(module: ModuleApi) -> bytes:
    """The configured key, else the one kept in the store (made on first start), so that
    tokens outlive a restart."""
    configured = module.option(SECRET)
    if configured:
        return configured.encode("utf-8")
    store = module.open_store("http_file_share_secret", "keyval")
    kept = await store.get(None)
    if isinstance(kept, dict) and isinstance(kept.get("key"), str):
        return bytes.fromhex(kept["key"])
    key = secrets.token_bytes(32)
    await store.set(None, {"key": key.hex()})
    return key


async def load(module: ModuleApi) -> None:
    module.depends("iq")
    module.depends("disco")
    module.depends("http")
    uploads = Uploads(module.open_store("uploads", "archive"))
    files = Files(module.data_dir())
    http = FileShareHttp(uploads, files, ServeSettings(
        secret=await _secret(module), expires_after=module.option(EXPIRES_AFTER),
        safe_types=tuple(module.option(SAFE_TYPES)), clock=module.now))
    share = FileShare(module, uploads, files, http)

    module.add_identity("store", "file", module.option("name") or "HTTP File Upload")
    module.add_feature(NS)
    module.add_extension(build_form(
        [Field("max-file-size", values=(str(share.size_limit),))], type_="result",
        form_type=NS))
    module.hook(f"iq-get/host/{NS}:request", share.on_request)
    module.hook_global("user-deleted", share.on_user_deleted)

    # Uploads come from web clients too: CORS routes (preflights allow Authorization).
    base = "/file_share"
    module.add_http_route("PUT", "/{slot}/{filename}", http.put, base=base, cors=True)
    share.route = module.add_http_route("GET", "/{slot}/{filename}", http.get, base=base,
                                        cors=True)
    module.provides("http_file_share", share)
    if module.option(EXPIRES_AFTER) > 0:
        module.add_timer(FIRST_CLEANUP, share.cleanup)
