"""HTTP File Upload (XEP-0363, component ``http_file_share``) against a real server:
slixmpp over real TLS for discovery and slots, aiohttp for PUT and GET, every refusal of
§4 and §5, ranges and caching, expiry, deleted accounts; and a real ``tercet start``
process whose memory must not grow with the size of an upload."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from harness import ServerHarness, free_port
from helpers import run, until
from procsite import TERCET, admin_socket, c2s_port, init_site, tercet, wait_port
from slixmpp import JID
from slixmpp.exceptions import IqError
from xmpp import Client, login, logout

from tercet.core.accounts import delete_account
from tercet.core.certs import generate_self_signed
from tercet.modules._fileshare import Grant, sign

PASSWORD = "s3cret pass"
SECRET = "test-signing-key"
NS = "urn:xmpp:http:upload:0"
SERVICE = JID("upload.localhost")

GLOBAL = """
http_ports = [{port}]
https_ports = []
http_interfaces = ["127.0.0.1"]
http_default_host = "upload.localhost"
"""

COMPONENT = """
[virtualhosts."other.test"]

[components."upload.localhost"]
module = "http_file_share"
http_external_url = "http://127.0.0.1:{port}/"
http_file_share_secret = "{secret}"
http_file_share_size_limit = 100000
http_file_share_daily_quota = 250000
http_file_share_allowed_file_types = ["text/plain", "image/*", "application/*"]
http_file_share_denied_file_types = ["application/x-executable"]
{more}
"""


def start_server(directory: Path, more: str = "") -> ServerHarness:
    port = free_port()
    server = ServerHarness(directory, GLOBAL.format(port=port),
                           COMPONENT.format(port=port, secret=SECRET, more=more))
    generate_self_signed("other.test", directory / "certs")
    server.start()
    server.create_user("romeo", PASSWORD)
    server.create_user("juliet", PASSWORD, host="other.test")
    return server


@pytest.fixture
def share(tmp_path: Path) -> Iterator[ServerHarness]:
    server = start_server(tmp_path / "srv")
    try:
        yield server
    finally:
        server.stop()


async def romeo(server: ServerHarness) -> Client:
    return await login("romeo@localhost/up", PASSWORD, server.port(),
                       plugins=("xep_0030", "xep_0363"))


async def slot(client: Client, name: str, size: int, ctype: str) -> tuple[str, str, str]:
    """(put URL, get URL, Authorization header) of a new slot."""
    iq = await client.plugin["xep_0363"].request_slot(SERVICE, name, size, ctype)
    got = iq["http_upload_slot"]
    headers = {h["name"]: h["value"] for h in got["put"]["headers"]}
    assert list(headers) == ["Authorization"]  # §5: nothing but the allowed headers
    return got["put"]["url"], got["get"]["url"], headers["Authorization"]


async def slot_error(client: Client, name: str, size: Any, ctype: str) -> Any:
    """The <error/> of a refused slot request, as an ElementTree element."""
    with pytest.raises(IqError) as refused:
        await client.plugin["xep_0363"].request_slot(SERVICE, name, size, ctype)
    return refused.value.iq.xml.find("{jabber:client}error")


def condition(error: Any) -> str:
    return next(c.tag.split("}")[1] for c in error
                if c.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}")
                and not c.tag.endswith("}text"))


async def put(url: str, data: Any, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.put(url, data=data,
                                                         headers=headers) as resp:
        return resp.status, await resp.text()


async def fetch(url: str, method: str = "GET", **kw: Any) -> tuple[int, bytes, Any]:
    async with aiohttp.ClientSession() as http, http.request(method, url, **kw) as resp:
        return resp.status, await resp.read(), resp.headers


def test_discovery_upload_and_download(share: ServerHarness) -> None:
    """The service is in the server's disco#items with max-file-size in its info;
    slixmpp's own upload (slot + PUT) works, and the file comes back with safe headers."""
    async def main() -> None:
        client = await romeo(share)
        disco = client.plugin["xep_0030"]
        items = await disco.get_items(jid="localhost")
        assert "upload.localhost" in [i[0] for i in items["disco_items"]["items"]]
        found = await client.plugin["xep_0363"].find_upload_service()
        assert found is not None and found["from"] == SERVICE
        form = found["disco_info"].xml.find("{jabber:x:data}x")
        fields = {f.get("var"): f.findtext("{jabber:x:data}value") for f in form}
        assert fields == {"FORM_TYPE": NS, "max-file-size": "100000"}

        data = b"hello, file share\n" * 100
        url = await client.plugin["xep_0363"].upload_file(
            "notes.txt", input_file=BytesIO(data), content_type="text/plain")
        status, body, headers = await fetch(url)
        assert (status, body) == (200, data)
        assert headers["Content-Type"].startswith("text/plain")
        assert headers["Content-Disposition"].startswith("inline;")
        assert "filename*=UTF-8''notes.txt" in headers["Content-Disposition"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "immutable" in headers["Cache-Control"]
        assert int(headers["Cache-Control"].split("max-age=")[1].split(",")[0]) > 86400
        assert headers["ETag"] and headers["Last-Modified"]
        assert headers["Accept-Ranges"] == "bytes"

        status, body, headers = await fetch(url, "HEAD")
        assert (status, body) == (200, b"")
        assert headers["Content-Length"] == str(len(data))
        await logout(client)
    run(main())


def test_ranges_and_conditional_requests(share: ServerHarness) -> None:
    async def main() -> None:
        client = await romeo(share)
        data = bytes(range(256)) * 4
        put_url, get_url, auth = await slot(client, "blob.bin", len(data),
                                            "application/octet-stream")
        assert await put(put_url, data, {"Authorization": auth,
                                         "Content-Type": "application/octet-stream"}) \
            == (201, "created\n")
        status, body, headers = await fetch(get_url, headers={"Range": "bytes=10-19"})
        assert (status, body) == (206, data[10:20])
        assert headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        # Downloads that are not media are attachments.
        assert headers["Content-Disposition"].startswith("attachment;")
        status, body, _ = await fetch(get_url, headers={"Range": "bytes=1000-"})
        assert (status, body) == (206, data[1000:])
        status, _, headers = await fetch(get_url, headers={"Range": "bytes=5000-6000"})
        assert status == 416
        assert headers["Content-Range"] == f"bytes */{len(data)}"
        _, _, headers = await fetch(get_url)
        status, body, _ = await fetch(get_url, headers={"If-None-Match": headers["ETag"]})
        assert (status, body) == (304, b"")
        status, _, _ = await fetch(get_url, headers={
            "If-Modified-Since": headers["Last-Modified"]})
        assert status == 304
        # Another file name under the same slot is not this file.
        status, _, _ = await fetch(get_url.rsplit("/", 1)[0] + "/other.bin")
        assert status == 404
        await logout(client)
    run(main())


def test_web_clients_may_upload_from_another_origin(share: ServerHarness) -> None:
    """Both routes are CORS routes: a browser's preflight for the PUT is granted."""
    async def main() -> None:
        client = await romeo(share)
        put_url, _, _ = await slot(client, "web.txt", 3, "text/plain")
        status, _, headers = await fetch(put_url, "OPTIONS", headers={
            "Origin": "https://chat.example", "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert status == 204
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert "PUT" in headers["Access-Control-Allow-Methods"]
        assert "Authorization" in headers["Access-Control-Allow-Headers"]
        await logout(client)
    run(main())


def test_put_refusals(share: ServerHarness) -> None:
    """§5: only the PUT the slot describes, once, with its token."""
    async def main() -> None:
        client = await romeo(share)
        data = b"x" * 1000
        put_url, get_url, auth = await slot(client, "a.txt", len(data), "text/plain")
        plain = {"Content-Type": "text/plain"}
        status, _, _ = await fetch(get_url)
        assert status == 404  # nothing uploaded yet
        assert (await put(put_url, data, plain))[0] == 401
        payload, _, mac = auth.removeprefix("Bearer ").partition(".")
        forged = "Bearer " + payload + "." + ("A" if mac[0] != "A" else "B") + mac[1:]
        assert (await put(put_url, data, {**plain, "Authorization": forged}))[0] == 401
        other_url, _, _ = await slot(client, "b.txt", len(data), "text/plain")
        assert (await put(other_url, data, {**plain, "Authorization": auth}))[0] == 400
        with_auth = {"Authorization": auth}
        assert (await put(put_url, data, {**with_auth, "Content-Type": "image/png"}))[0] \
            == 415
        assert (await put(put_url, data + b"y", {**with_auth, **plain}))[0] == 413
        assert (await put(put_url, data[:-1], {**with_auth, **plain}))[0] == 400

        async def chunks(total: int) -> AsyncIterator[bytes]:
            for _ in range(total // 100):
                yield b"z" * 100
        # Without Content-Length (chunked), the slot's size still bounds the body.
        assert (await put(put_url, chunks(2000), {**with_auth, **plain}))[0] == 413
        assert (await put(put_url, chunks(1000), {**with_auth, **plain}))[0] == 201
        assert (await put(put_url, data, {**with_auth, **plain}))[0] == 409
        status, body, _ = await fetch(get_url)
        assert (status, body) == (200, b"z" * 1000)
        await logout(client)
    run(main())


def test_an_interrupted_upload_leaves_nothing_and_may_be_retried(
        share: ServerHarness) -> None:
    async def main() -> None:
        client = await romeo(share)
        data = b"r" * 5000
        put_url, get_url, auth = await slot(client, "retry.txt", len(data), "text/plain")
        host_port, _, path = put_url.removeprefix("http://").partition("/")
        host, _, port = host_port.partition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write((f"PUT /{path} HTTP/1.1\r\nHost: {host_port}\r\n"
                      f"Authorization: {auth}\r\nContent-Type: text/plain\r\n"
                      f"Content-Length: {len(data)}\r\n\r\n").encode() + data[:2000])
        await writer.drain()
        slot_id = path.split("/")[-2]
        await until(lambda: stored_files(share) == [f"{slot_id}.part"], "the upload")
        writer.close()  # the client goes away half-way
        await until(lambda: stored_files(share) == [], "the partial file to go")
        assert (await fetch(get_url))[0] == 404
        assert await put(put_url, data, {"Authorization": auth,
                                         "Content-Type": "text/plain"}) == (201, "created\n")
        assert (await fetch(get_url))[1] == data
        del reader
        await logout(client)
    run(main())


def test_expired_slot(share: ServerHarness) -> None:
    """A token past its expiry (signed with the right key) is refused with 410."""
    async def main() -> None:
        client = await romeo(share)
        put_url, _, _ = await slot(client, "late.txt", 3, "text/plain")
        slot_id = put_url.split("/")[-2]
        token = sign(SECRET.encode(), Grant(slot_id, "late.txt", 3, "text/plain",
                                            int(time.time()) - 1))
        assert (await put(put_url, b"abc", {"Authorization": f"Bearer {token}",
                                            "Content-Type": "text/plain"}))[0] == 410
        await logout(client)
    run(main())


def test_slot_request_errors(share: ServerHarness) -> None:
    """§4.2 and the service's policy: size, name, type, quota, access."""
    async def main() -> None:
        client = await romeo(share)
        error = await slot_error(client, "big.txt", 100001, "text/plain")
        assert (error.get("type"), condition(error)) == ("modify", "not-acceptable")
        assert error.findtext(f"{{{NS}}}file-too-large/{{{NS}}}max-file-size") == "100000"
        error = await slot_error(client, "neg.txt", "-5", "text/plain")
        assert condition(error) == "bad-request"
        error = await slot_error(client, "dir/name.txt", 5, "text/plain")
        assert condition(error) == "bad-request"
        error = await slot_error(client, "..", 5, "text/plain")
        assert condition(error) == "bad-request"
        error = await slot_error(client, "evil", 5, "application/x-executable")
        assert condition(error) == "not-acceptable"  # denied
        error = await slot_error(client, "movie.mp4", 5, "video/mp4")
        assert condition(error) == "not-acceptable"  # not in the allowed list
        error = await slot_error(client, "page.html", 5, "text/html\r\nX: y")
        assert condition(error) == "not-acceptable"  # not a media type

        # Quota: 250000 bytes a day; two slots of 100000 fit, a third does not.
        await slot(client, "one.png", 100000, "image/png")
        await slot(client, "two.png", 100000, "image/png")
        error = await slot_error(client, "three.png", 100000, "image/png")
        assert (error.get("type"), condition(error)) == ("wait", "resource-constraint")
        stamp = error.find(f"{{{NS}}}retry").get("stamp")
        assert stamp is not None and stamp.endswith("Z")
        await slot(client, "small.png", 40000, "image/png")  # still within the quota

        # A user of another virtual host than the parent (localhost) may not.
        juliet = await login("juliet@other.test/up", PASSWORD, share.port(),
                             plugins=("xep_0363",))
        error = await slot_error(juliet, "a.txt", 5, "text/plain")
        assert (error.get("type"), condition(error)) == ("auth", "forbidden")
        await logout(client, juliet)
    run(main())


def test_access_list(tmp_path: Path) -> None:
    server = start_server(tmp_path / "srv", 'http_file_share_access = ["other.test"]')
    try:
        async def main() -> None:
            client = await romeo(server)
            error = await slot_error(client, "a.txt", 5, "text/plain")
            assert condition(error) == "forbidden"
            juliet = await login("juliet@other.test/up", PASSWORD, server.port(),
                                 plugins=("xep_0363",))
            await slot(juliet, "a.txt", 5, "text/plain")
            await logout(client, juliet)
        run(main())
    finally:
        server.stop()


def stored_files(server: ServerHarness) -> list[str]:
    return sorted(p.name for p in (server.directory / "data" / "http_file_share"
                                   / "upload.localhost").iterdir())


async def upload(client: Client, name: str, data: bytes) -> str:
    put_url, get_url, auth = await slot(client, name, len(data), "text/plain")
    status, _ = await put(put_url, data, {"Authorization": auth,
                                          "Content-Type": "text/plain"})
    assert status == 201
    return get_url


def test_expiry_job_deletes_old_files(share: ServerHarness) -> None:
    async def main() -> None:
        client = await romeo(share)
        url = await upload(client, "old.txt", b"old")
        assert len(stored_files(share)) == 1
        assert share.server is not None
        service = share.server.hosts["upload.localhost"].providers["http_file_share"][0]
        later = time.time() + 8 * 86400
        share.server.clock = lambda: later  # a week and a day on
        assert await share.acall(service.expire()) == 1
        assert stored_files(share) == []
        status, _, _ = await fetch(url)
        assert status == 404
        await logout(client)
    run(main())


def test_deleting_an_account_deletes_its_files(share: ServerHarness) -> None:
    async def main() -> None:
        client = await romeo(share)
        url = await upload(client, "mine.txt", b"mine")
        assert (await fetch(url))[0] == 200
        assert share.server is not None
        await logout(client)
        assert await share.acall(delete_account(share.server, "localhost", "romeo"))
        await until(lambda: stored_files(share) == [], "romeo's files to be deleted")
        assert (await fetch(url))[0] == 404
    run(main())


# -- memory: a real server process ----------------------------------------------------------

UPLOAD_SIZE = 200 * 1024 * 1024
RSS_GROWTH_LIMIT = 32 * 1024 * 1024


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_large_upload_does_not_grow_server_memory(tmp_path: Path) -> None:
    """200 MB streamed from a generator into `tercet start`: the server's RSS, sampled
    throughout, stays within a few MiB of where it was before the upload."""
    port = free_port()
    lines = (f"\n[components.\"upload.localhost\"]\nmodule = \"http_file_share\"\n"
             f"http_external_url = \"http://127.0.0.1:{port}/\"\n"
             f"http_file_share_size_limit = {UPLOAD_SIZE}\n")
    config = init_site(tmp_path / "site")
    text = config.read_text()
    head = (f"http_ports = [{port}]\nhttps_ports = []\n"
            "http_default_host = \"upload.localhost\"\n")
    config.write_text(head + text + lines)
    added = tercet(config, "user", "add", "romeo@localhost", "--password", PASSWORD)
    assert added.returncode == 0, added.stderr
    proc = subprocess.Popen([*TERCET, "-c", str(config), "start"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(c2s_port(config))
        wait_port(port)
        samples: list[int] = []
        run(_upload_while_sampling(config, proc.pid, samples), timeout=300)
        before, peak = samples[0], max(samples)
        assert len(samples) > 10
        assert peak - before < RSS_GROWTH_LIMIT, (before, peak)
        stored = list((config.parent / "data" / "http_file_share" / "upload.localhost").iterdir())
        assert [p.stat().st_size for p in stored] == [UPLOAD_SIZE]
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        admin_socket(config).unlink(missing_ok=True)


async def _upload_while_sampling(config: Path, pid: int, samples: list[int]) -> None:
    client = await login("romeo@localhost/big", PASSWORD, c2s_port(config),
                         plugins=("xep_0363",))
    put_url, _, auth = await slot(client, "big.bin", UPLOAD_SIZE,
                                  "application/octet-stream")
    samples.append(rss(pid))
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(rss(pid))
            await asyncio.sleep(0.05)

    async def body() -> AsyncIterator[bytes]:
        block = os.urandom(1024 * 1024)
        for i in range(UPLOAD_SIZE // len(block)):
            if i % 4 == 0:  # also every 4 MB sent, however fast the upload runs
                samples.append(rss(pid))
            yield block

    sampler = asyncio.ensure_future(sample())
    try:
        status, _ = await put(put_url, body(), {
            "Authorization": auth, "Content-Type": "application/octet-stream",
            "Content-Length": str(UPLOAD_SIZE)})
    finally:
        done.set()
        await sampler
    samples.append(rss(pid))
    assert status == 201
    await logout(client)
