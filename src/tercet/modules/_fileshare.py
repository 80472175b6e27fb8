"""XEP-0363 HTTP File Upload, the parts of ``http_file_share`` that are not XMPP: upload
tokens, the checks a slot request passes, the record of uploads, and the HTTP side
(a streaming PUT to disk, GET with ranges and caching). docs/file_share.md.

An upload slot is a record in the component's ``uploads`` archive (key: the slot id,
``with``: the uploader's bare JID, ``when``: the request time) plus a token the client
sends back as ``Authorization: Bearer <token>`` with its PUT (XEP-0363 §5): the slot, file
name, size, type and the token's expiry, signed with HMAC-SHA256. Files live in the
module's data directory, named by slot id (never by the client's file name).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from tercet.module import ArchiveQuery, ArchiveStore, Element

NS = "urn:xmpp:http:upload:0"

# A file name is one path segment of the URL and a name in Content-Disposition: no
# separators, no control characters, at most what common filesystems allow (255 bytes).
MAX_FILENAME_BYTES = 255
# RFC 9110 §8.3.1: type "/" subtype, both tokens (parameters are dropped before this).
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,128}$")
_SLOT = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
DEFAULT_TYPE = "application/octet-stream"
# Bytes gathered from the request before one write to disk: bounds memory per upload
# while keeping the number of thread hops low.
WRITE_BATCH = 256 * 1024
# Browsers and proxies may keep a file this long at most (RFC 9111 §5.2.2.1; a year is
# the customary ceiling), never past the file's own expiry.
MAX_CACHE_AGE = 365 * 86400
# Served with every file: the content never runs as a page of ours (no scripts, no
# framing), and browsers do not guess another type than the one declared.
SAFE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

log = logging.getLogger("tercet.mod.http_file_share")


# -- tokens --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Grant:
    """What an upload token allows: one PUT of ``size`` bytes of ``content_type`` to
    ``slot``/``filename`` until ``expires`` (epoch seconds)."""

    slot: str
    filename: str
    size: int
    content_type: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def sign(secret: bytes, grant: Grant) -> str:
    """The token for ``grant``: base64url(JSON) "." base64url(HMAC-SHA256)."""
    body = json.dumps([grant.slot, grant.filename, grant.size, grant.content_type,
                       grant.expires], separators=(",", ":"), ensure_ascii=True)
    payload = _b64(body.encode("ascii"))
    return f"{payload}.{_mac(secret, payload)}"


def verify(secret: bytes, token: str) -> Grant | None:
    """The grant of a token signed with ``secret``; None when it is malformed or its
    signature is wrong (expiry is the caller's to check)."""
    payload, dot, mac = token.partition(".")
    if not dot or len(token) > 4096 or not token.isascii():
        return None
    if not hmac.compare_digest(mac.encode("ascii"),
                               _mac(secret, payload).encode("ascii")):
        return None
    try:
        slot, filename, size, ctype, expires = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        return None
    if not (isinstance(slot, str) and isinstance(filename, str) and isinstance(size, int)
            and isinstance(ctype, str) and isinstance(expires, int)):
        return None
    return Grant(slot, filename, size, ctype, expires)


# -- request checks (XEP-0363 §4) --------------------------------------------------------

def valid_filename(name: str | None) -> bool:
    if not name or name in (".", "..") or len(name.encode("utf-8")) > MAX_FILENAME_BYTES:
        return False
    return not any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in name)


def parse_size(text: str | None) -> int | None:
    """A file size: a non-negative decimal integer of sane length, else None."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    return int(text)


def media_type(text: str | None) -> str | None:
    """The lower-cased ``type/subtype`` of a Content-Type value (parameters dropped);
    ``application/octet-stream`` when absent (XEP-0363 §4: the attribute is optional);
    None when malformed."""
    if text is None or not text.strip():
        return DEFAULT_TYPE
    main = text.split(";", 1)[0].strip().lower()
    return main if _MEDIA_TYPE.match(main) else None


def type_matches(ctype: str, patterns: Sequence[str]) -> bool:
    """Whether ``ctype`` is one of ``patterns``: exact types, ``type/*`` or ``*``."""
    major = ctype.split("/", 1)[0]
    for pattern in patterns:
        pattern = pattern.strip().lower()
        if pattern in ("*", "*/*", ctype) or pattern == f"{major}/*":
            return True
    return False


def content_disposition(filename: str, inline: bool) -> str:
    """RFC 6266: ``inline`` or ``attachment`` with the name UTF-8 encoded (§4.3) and an
    ASCII fallback for old clients."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\%' else "_"
                       for c in filename)
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# -- the record of uploads -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Upload:
    """One slot handed out: who asked, for what, when."""

    slot: str
    owner: str
    filename: str
    size: int
    content_type: str
    when: float


class Uploads:
    """Slots in the component's archive store, all under one archive owner so that the
    expiry job can take the oldest in bounded pages (``with`` is the uploader)."""

    OWNER = "uploads"

    def __init__(self, store: ArchiveStore) -> None:
        self.store = store

    async def add(self, upload: Upload) -> None:
        record = Element("request", NS, {"filename": upload.filename,
                                         "size": str(upload.size),
                                         "content-type": upload.content_type})
        await self.store.append(self.OWNER, record, when=upload.when, with_jid=upload.owner,
                                key=upload.slot)

    async def get(self, slot: str) -> Upload | None:
        found = await self.store.find(self.OWNER, ArchiveQuery(ids=[slot], limit=1))
        return _upload(found[0].key, found[0].with_jid, found[0].value, found[0].when) \
            if found else None

    async def find(self, q: ArchiveQuery) -> list[Upload]:
        return [_upload(i.key, i.with_jid, i.value, i.when)
                for i in await self.store.find(self.OWNER, q)]

    async def remove(self, slots: Sequence[str]) -> None:
        if slots:
            await self.store.delete(self.OWNER, ArchiveQuery(ids=list(slots)))


def _upload(key: str, owner: str, record: Element, when: float) -> Upload:
    return Upload(key, owner, record.get("filename") or "file",
                  parse_size(record.get("size")) or 0,
                  record.get("content-type") or DEFAULT_TYPE, when)


class Files:
    """The files on disk: ``<dir>/<slot>``, and ``<dir>/<slot>.part`` while uploading."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, slot: str) -> Path:
        return self.directory / slot

    def partial(self, slot: str) -> Path:
        return self.directory / f"{slot}.part"

    def remove(self, slots: Sequence[str]) -> None:
        """Delete the files of ``slots`` (blocking: call it in a thread)."""
        for slot in slots:
            for path in (self.path(slot), self.partial(slot)):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass


def valid_slot(slot: str) -> bool:
    return bool(_SLOT.match(slot))


# -- HTTP ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ServeSettings:
    secret: bytes
    expires_after: int  # seconds; 0: files never expire
    safe_types: tuple[str, ...]
    clock: Callable[[], float]


class _Refused(Exception):
    """An upload refused with an HTTP status (and a short reason for the body)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class FileShareHttp:
    """The PUT and GET handlers of the file share."""

    def __init__(self, uploads: Uploads, files: Files, settings: ServeSettings) -> None:
        self.uploads = uploads
        self.files = files
        self.settings = settings
        self.busy: set[str] = set()  # slots with an upload in progress

    def expired(self, upload: Upload) -> bool:
        after = self.settings.expires_after
        return after > 0 and upload.when + after <= self.settings.clock()

    # -- PUT (XEP-0363 §5) -------------------------------------------------------------------
    async def put(self, request: web.Request) -> web.StreamResponse:
        try:
            grant = await self._check_put(request)
            if grant.slot in self.busy or self.files.path(grant.slot).exists():
                raise _Refused(409, "this slot has been used")
            self.busy.add(grant.slot)
            try:
                await self._store(request, grant)
            finally:
                self.busy.discard(grant.slot)
        except _Refused as refused:
            headers = {"WWW-Authenticate": "Bearer"} if refused.status == 401 else None
            return web.Response(status=refused.status, text=refused.reason + "\n",
                                headers=headers)
        log.info("upload of %d bytes to slot %s complete", grant.size, grant.slot)
        return web.Response(status=201, text="created\n")

    async def _check_put(self, request: web.Request) -> Grant:
        """The grant of a PUT that may proceed; _Refused otherwise. Everything that can be
        checked before the body is read is checked here."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _Refused(401, "an upload needs the slot's Authorization header")
        grant = verify(self.settings.secret, token.strip())
        if grant is None:
            raise _Refused(401, "invalid upload token")
        if grant.expires < self.settings.clock():
            raise _Refused(410, "this upload slot has expired")
        info = request.match_info
        if info.get("slot") != grant.slot or info.get("filename") != grant.filename:
            raise _Refused(400, "the token is for another slot")
        sent_type = request.headers.get("Content-Type")
        if sent_type is not None and media_type(sent_type) != grant.content_type:
            raise _Refused(415, f"this slot is for {grant.content_type}")
        length = request.content_length
        if length is not None and length > grant.size:
            raise _Refused(413, f"this slot is for {grant.size} bytes")
        if length is not None and length != grant.size:
            raise _Refused(400, f"this slot is for {grant.size} bytes")
        if await self.uploads.get(grant.slot) is None:
            raise _Refused(410, "this upload slot is gone")
        return grant

    async def _store(self, request: web.Request, grant: Grant) -> None:
        """Stream the body into a temporary file, make it durable, then give it its name:
        a file under its final name is always whole."""
        partial, final = self.files.partial(grant.slot), self.files.path(grant.slot)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                received = await _receive(request, fd, grant.size)
                await asyncio.to_thread(os.fsync, fd)
            finally:
                os.close(fd)
            if received != grant.size:
                raise _Refused(400, f"received {received} of {grant.size} bytes")
            await asyncio.to_thread(_rename_durably, partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    # -- GET and HEAD ------------------------------------------------------------------------
    async def get(self, request: web.Request) -> web.StreamResponse:
        slot, name = request.match_info.get("slot", ""), request.match_info.get("filename")
        upload = await self.uploads.get(slot) if valid_slot(slot) else None
        if upload is None or upload.filename != name or self.expired(upload):
            raise web.HTTPNotFound()
        path = self.files.path(slot)
        if not path.is_file():
            raise web.HTTPNotFound()  # not uploaded (yet)
        inline = type_matches(upload.content_type, self.settings.safe_types)
        headers = dict(SAFE_HEADERS)
        headers["Content-Type"] = upload.content_type
        headers["Content-Disposition"] = content_disposition(upload.filename, inline)
        headers["Cache-Control"] = f"public, max-age={self._max_age(upload)}, immutable"
        # aiohttp serves ranges (206/416), conditional requests (ETag, Last-Modified:
        # 304/412) and HEAD, and streams the file (sendfile) without reading it whole.
        return web.FileResponse(path, headers=headers)

    def _max_age(self, upload: Upload) -> int:
        if self.settings.expires_after <= 0:
            return MAX_CACHE_AGE
        left = upload.when + self.settings.expires_after - self.settings.clock()
        return max(0, min(MAX_CACHE_AGE, int(left)))


async def _receive(request: web.Request, fd: int, size: int) -> int:
    """Copy the request body to ``fd`` in batches of WRITE_BATCH bytes; returns the count.
    More than ``size`` bytes: 413 without reading further. aiohttp pauses reading the
    socket while its own buffer is full, so memory stays bounded whatever the size."""
    received = 0
    pending = bytearray()
    async for chunk in request.content.iter_any():
        received += len(chunk)
        if received > size:
            raise _Refused(413, f"this slot is for {size} bytes")
        pending += chunk
        if len(pending) >= WRITE_BATCH:
            await asyncio.to_thread(_write_all, fd, pending)
            pending = bytearray()
    if pending:
        await asyncio.to_thread(_write_all, fd, pending)
    return received


def _write_all(fd: int, data: bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _rename_durably(partial: Path, final: Path) -> None:
    os.replace(partial, final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
