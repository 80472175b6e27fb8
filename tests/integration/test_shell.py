"""`tercet shell` against a real server: one-shot commands (text, --json, exit codes),
live watching of logs and stanzas over the admin socket, host deactivation, and the
interactive prompt driven in a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from harness import ServerHarness
from helpers import run
from xmpp import available, close, login

from tercet.cli.adminclient import AdminClient, AdminError
from tercet.cli.main import cli
from tercet.cli.shell import COMPLETION_TTL
from tercet.core.watch import _LogHandler

CAPS_NODE = "https://client.example/shell-test"
SRC = str(Path(__file__).resolve().parents[2] / "src")


def shell(h: ServerHarness, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["-c", str(h.config_path), "shell", *args], input=input)


async def ashell(h: ServerHarness, *args: str, input: str | None = None) -> Result:
    return await asyncio.to_thread(shell, h, *args, input=input)


def _admin(h: ServerHarness, cmd: str, **args: Any) -> Any:
    with AdminClient(h.admin_socket) as client:
        return client.call(cmd, **args)


def _events(client: AdminClient, want: int, timeout: float = 10) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(out) < want:
        out.append(client.next_event(max(0.01, deadline - time.monotonic())))
    return out


def _event_until(client: AdminClient, test: Any, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        event = client.next_event(max(0.01, deadline - time.monotonic()))
        if test(event):
            return event


def test_one_shot_commands(server: ServerHarness) -> None:
    server.create_user("alice", "pw")
    server.create_user("bob", "pw")

    async def main() -> None:
        alice = await login("alice@localhost", "pw", server.port(),
                            plugins=("xep_0030", "xep_0280", "xep_0198"))
        try:
            await alice.plugin["xep_0280"].enable()
            # Entity capabilities (XEP-0115 §4) naming the client software.
            alice.send_raw(f"<presence><c xmlns='http://jabber.org/protocol/caps' "
                           f"hash='sha-1' node='{CAPS_NODE}' ver='x6YZ6WxN+kabV0uV2Qbsv2ZqJvg='"
                           "/></presence>")
            while (await asyncio.wait_for(alice.presences.get(), 10))["from"] != \
                    alice.boundjid:
                pass
            result = await ashell(server, "--json", "c2s list")
            assert result.exit_code == 0, result.output
            rows = json.loads(result.output)
            assert len(rows) == 1
            row = rows[0]
            assert row["jid"] == str(alice.boundjid) and "/" in row["jid"]
            assert row["peer"].startswith("127.0.0.1")
            assert row["tls_version"].startswith("TLSv1") and row["tls_cipher"]
            # The client's software, from the node of its XEP-0115 capabilities.
            assert row["client"] == CAPS_NODE
            assert row["features"].get("carbons") is True
            assert row["features"]["sm"] == "resumable"  # slixmpp asks to resume

            result = await ashell(server, "c2s list")
            assert result.exit_code == 0, result.output
            lines = result.output.splitlines()
            assert lines[0].split()[:3] == ["JID", "PEER", "TLS"]
            assert str(alice.boundjid) in lines[1] and "carbons" in lines[1]

            result = await ashell(server, "--json", "c2s show alice@localhost")
            assert json.loads(result.output)[0]["jid"] == str(alice.boundjid)

            # Client state indication, loaded from the shell: the session says inactive.
            result = await ashell(server, "module load csi_simple")
            assert result.exit_code == 0 and "loaded" in result.output, result.output
            alice.send_raw("<inactive xmlns='urn:xmpp:csi:0'/>")
            async with asyncio.timeout(10):
                while True:
                    result = await ashell(server, "--json", "c2s show alice@localhost")
                    if json.loads(result.output)[0]["features"].get("csi") == "inactive":
                        break
                    await asyncio.sleep(0.05)
            alice.send_raw("<active xmlns='urn:xmpp:csi:0'/>")

            # announce: a headline from the host to every online session.
            result = await ashell(server, "announce", "localhost", "maintenance at noon")
            assert result.exit_code == 0, result.output
            assert "sent: 1" in result.output
            msg = await asyncio.wait_for(alice.messages.get(), 10)
            assert msg["body"] == "maintenance at noon" and msg["type"] == "headline"
            assert str(msg["from"]) == "localhost"

            # c2s close ends the session with the operator's reason.
            gone = alice.disconnected
            result = await ashell(server, "c2s close alice@localhost going away")
            assert result.exit_code == 0 and "closed: 1" in result.output, result.output
            await asyncio.wait_for(gone, 10)
        finally:
            await close(alice)
    run(main())

    for line, expect in (("server version", "version: "), ("server uptime", "uptime: "),
                         ("server memory", "rss: "), ("stats", "c2s_sessions: "),
                         ("host list", "localhost"), ("module list", "carbons"),
                         ("module info carbons", "XEP-0280"),
                         ("config get log", "value: warning"),
                         ("user list", "bob@localhost"), ("role list", "tercet:admin")):
        result = shell(server, line)
        assert result.exit_code == 0, (line, result.output)
        assert expect in result.output, (line, result.output)
    assert json.loads(shell(server, "--json", "server memory").output)["rss"] > 0


def test_exit_codes(server: ServerHarness, tmp_path: Path) -> None:
    assert shell(server, "c2s close").exit_code == 2            # missing argument
    assert shell(server, "frobnicate").exit_code == 2           # unknown command
    assert shell(server, "c2s list a b").exit_code == 2         # too many arguments
    assert shell(server, "user delete x@localhost").exit_code == 2  # needs --yes
    result = shell(server, "c2s show nobody@elsewhere")
    assert result.exit_code == 1 and "no such virtual host" in result.output
    result = shell(server, "--json", "user show nobody@localhost")
    assert result.exit_code == 1 and json.loads(result.output.splitlines()[0])["error"]
    # The embedded test server cannot be shut down from the socket: it says so.
    result = shell(server, "server shutdown --yes")
    assert result.exit_code == 1 and "embedded" in result.output
    # No server on the socket: 3.
    config = tmp_path / "down.toml"
    config.write_text(server.config_path.read_text().replace(
        str(server.admin_socket), str(tmp_path / "none.sock")))
    result = CliRunner().invoke(cli, ["-c", str(config), "shell", "c2s list"])
    assert result.exit_code == 3, result.output


def test_user_commands_read_password_from_stdin(server: ServerHarness) -> None:
    result = shell(server, "user create carol@localhost", input="s3cret-pw\n")
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output
    result = shell(server, "user password carol@localhost", input="n3w-pw\n")
    assert result.exit_code == 0 and "n3w-pw" not in result.output
    # A password on the line is refused, not taken.
    assert shell(server, "user password carol@localhost pw").exit_code == 2

    async def main() -> None:
        carol = await login("carol@localhost", "n3w-pw", server.port())
        await close(carol)
    run(main())
    assert shell(server, "user disable carol@localhost").exit_code == 0
    assert "disabled: True" in shell(server, "user show carol@localhost").output
    assert shell(server, "user enable carol@localhost").exit_code == 0
    result = shell(server, "user delete carol@localhost --yes")
    assert result.exit_code == 0, result.output
    assert "carol@localhost" not in shell(server, "user list").output


def test_watch_stanzas_redacts_bodies(server: ServerHarness) -> None:
    server.create_user("alice", "pw")
    server.create_user("bob", "pw")

    async def main() -> None:
        alice = await login("alice@localhost", "pw", server.port())
        bob = await login("bob@localhost", "pw", server.port())
        try:
            await available(alice, bob)
            for bodies in (False, True):
                with AdminClient(server.admin_socket) as watcher:
                    started = await asyncio.to_thread(
                        watcher.call, "watch.stanzas", jid="alice@localhost", bodies=bodies)
                    assert started["jid"] == "alice@localhost"
                    text = f"the secret plan {bodies}"
                    bob.send_message(mto="alice@localhost", mbody=text, mtype="chat")
                    assert (await asyncio.wait_for(alice.messages.get(), 10))["body"] == text
                    alice.send_message(mto="bob@localhost", mbody="re: " + text, mtype="chat")
                    assert (await asyncio.wait_for(bob.messages.get(), 10))["body"]

                    def is_msg(e: dict[str, Any]) -> bool:
                        return e["event"] == "stanza" and e["xml"].startswith("<message")
                    got = await asyncio.to_thread(_event_until, watcher, is_msg)
                    assert got["direction"] == "received"
                    assert got["session"] == str(alice.boundjid)
                    second = await asyncio.to_thread(_event_until, watcher, is_msg)
                    assert second["direction"] == "sent"
                    for event in (got, second):
                        if bodies:
                            assert text in event["xml"]
                        else:
                            assert text not in event["xml"]
                            assert "<body>[redacted]</body>" in event["xml"]
            # Watches end with their connection (once the server sees it close): no send
            # filter is left behind.
            assert server.server is not None
            sessions = server.server.hosts["localhost"].user_sessions("alice").values()
            async with asyncio.timeout(10):
                while any(s._filters is not None for s in sessions):  # noqa: SLF001
                    await asyncio.sleep(0.05)
        finally:
            await close(alice)
            await close(bob)
    run(main())


def test_watch_stanzas_through_the_cli(server: ServerHarness) -> None:
    """`tercet shell "watch stanzas JID"` prints lines as they come, until interrupted."""
    server.create_user("alice", "pw")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tercet", "-c", str(server.config_path), "shell",
         "watch stanzas alice@localhost"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONPATH": SRC})
    try:
        assert proc.stderr is not None and proc.stdout is not None
        assert "watching" in proc.stderr.readline()

        async def main() -> None:
            alice = await login("alice@localhost", "pw", server.port())
            await available(alice)
            alice.send_message(mto="alice@localhost", mbody="note to self", mtype="chat")
            await asyncio.wait_for(alice.messages.get(), 10)
            await close(alice)
        run(main())
        seen = []
        while not any("<message" in line for line in seen):
            seen.append(proc.stdout.readline())
        message = next(line for line in seen if "<message" in line)
        assert "note to self" not in message and "[redacted]" in message
    finally:
        proc.send_signal(2)  # Ctrl-C
        assert proc.wait(10) == 0


def test_watch_log(server: ServerHarness) -> None:
    server.create_user("alice", "pw")
    with AdminClient(server.admin_socket) as everything, \
            AdminClient(server.admin_socket) as errors_only:
        assert everything.call("watch.log", module="c2s")["level"] == "info"
        errors_only.call("watch.log", level="error")
        with pytest.raises(AdminError, match="level must be one of"):
            everything.call("watch.log", level="loud")

        async def main() -> None:
            alice = await login("alice@localhost", "pw", server.port())
            await close(alice)
        run(main())
        # The harness logs at "warning": the watch still sees info lines, of c2s only.
        event = _event_until(everything, lambda e: "bound alice@localhost" in e.get(
            "message", ""))
        assert event["level"] == "info" and event["logger"] == "tercet.c2s"
        with pytest.raises(TimeoutError):
            errors_only.next_event(0.5)
    # Closing the connections ended the watches: their handlers are gone.
    deadline = time.monotonic() + 10
    while any(isinstance(h, _LogHandler) for h in logging.getLogger().handlers):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _open_stream(port: int) -> bytes:
    """Open a client stream to localhost; everything the server sent until it closed."""
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        sock.sendall(b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
                     b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_host_deactivate_refuses_logins(server: ServerHarness) -> None:
    server.create_user("alice", "pw")

    async def main() -> None:
        alice = await login("alice@localhost", "pw", server.port())
        gone = alice.disconnected
        result = await ashell(server, "host deactivate localhost")
        assert result.exit_code == 0 and "closed: 1" in result.output, result.output
        await asyncio.wait_for(gone, 10)
        assert "host-gone" in alice.stream_errors
        rows = json.loads((await ashell(server, "--json", "host list")).output)
        assert rows[0]["active"] is False
        # A new client stream to the host is refused at once.
        refused = await asyncio.to_thread(_open_stream, server.port())
        assert b"<host-gone" in refused and b"</stream:stream>" in refused
        result = await ashell(server, "host activate localhost")
        assert result.exit_code == 0, result.output
        again = await login("alice@localhost", "pw", server.port())
        await close(again)
    run(main())


def test_muc_and_pubsub_commands(make_server: Any) -> None:
    h: ServerHarness = make_server(extra='[components."rooms.localhost"]\nmodule = "muc"\n'
                                         '[components."pubsub.localhost"]\nmodule = "pubsub"')
    h.create_user("alice", "pw")

    async def main() -> None:
        alice = await login("alice@localhost", "pw", h.port(), plugins=("xep_0045",))
        try:
            await alice.plugin["xep_0045"].join_muc_wait("tea@rooms.localhost", "Al")
            rows = json.loads((await ashell(h, "--json", "muc occupants tea@rooms.localhost"))
                              .output)
            assert rows == [{"nick": "Al", "role": "moderator", "affiliation": "owner",
                             "jid": "alice@localhost", "sessions": 1}]
            result = await ashell(h, "muc affiliations tea@rooms.localhost")
            assert "alice@localhost" in result.output and "owner" in result.output
            result = await ashell(h, "muc list")
            assert "tea@rooms.localhost" in result.output
            result = await ashell(h, "--json", "pubsub nodes pubsub.localhost")
            assert result.exit_code == 0 and json.loads(result.output) == [], result.output
        finally:
            await close(alice)
    run(main())


pexpect = pytest.importorskip("pexpect")


def test_interactive_shell_in_a_pty(server: ServerHarness, tmp_path: Path) -> None:
    server.create_user("alice", "pw")
    server.create_user("bob", "pw")
    history = tmp_path / "history"
    env = {**os.environ, "PYTHONPATH": SRC, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1",
           "TERCET_SHELL_HISTORY": str(history), "COLUMNS": "200", "LINES": "50"}
    child = pexpect.spawn(sys.executable, ["-m", "tercet", "-c", str(server.config_path),
                                           "shell"], env=env, encoding="utf-8", timeout=20,
                          dimensions=(50, 200))
    transcript = io.StringIO()
    child.logfile_read = transcript
    try:
        child.expect("admin shell")
        child.expect("tercet>")
        # Tab completes the command: "host l" + Tab is "host list" (the screen is redrawn in
        # pieces, so the proof is the command's output: "host l" alone is no command).
        child.send("host l\t")
        child.send("\r")
        child.expect("ACTIVE")
        child.expect("localhost")
        child.expect("tercet>")
        # Tab completes a host ("c2s list lo" + Tab; "lo" is no host) ...
        child.send("c2s list lo\t")
        child.send("\r")
        child.expect(r"\(none\)")
        child.expect("tercet>")
        # ... and the JID of a user online, which the server supplies.
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        bob = asyncio.run_coroutine_threadsafe(
            login("bob@localhost", "pw", server.port()), loop).result(20)
        try:
            time.sleep(COMPLETION_TTL + 0.5)  # the shell's list of JIDs is that old at most
            child.send("c2s show bo\t")
            child.send("\r")
            child.expect("TLS_CIPHER|tls_cipher")
            child.expect("tercet>")
        finally:
            asyncio.run_coroutine_threadsafe(close(bob), loop).result(20)
            del bob
            gc.collect()  # the client's finaliser needs its loop: collect it while it runs
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
        child.sendline("help")
        child.expect("Commands:")
        child.expect("tercet>")
        child.sendline("help c2s list")
        child.expect("admin command c2s.list")
        child.expect("tercet>")
        # A password is asked hidden and never shown.
        child.sendline("user password alice@localhost")
        child.expect("Password:")
        child.sendline("hidden-pw-1")
        child.expect("Again:")
        child.sendline("hidden-pw-1")
        child.expect("changed")
        child.expect("tercet>")
        child.sendline("frob")
        child.expect("usage: unknown command")
        child.expect("tercet>")
        # Module names complete too.
        child.send("module info carb\t")
        child.send("\r")
        child.expect("XEP-0280")
        child.expect("tercet>")
        # A watch streams until Ctrl-C, then the prompt is back.
        child.sendline("watch log debug")
        child.expect("Ctrl-C to stop")
        child.sendintr()
        child.expect("tercet>")
        child.sendline("server version")
        child.expect("version: ")
        child.expect("tercet>")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert "hidden-pw-1" not in transcript.getvalue()  # the terminal never showed it
    saved = history.read_text()
    assert "host list" in saved and "hidden-pw-1" not in saved

    async def main() -> None:
        alice = await login("alice@localhost", "hidden-pw-1", server.port())
        await close(alice)
    run(main())


def test_server_shutdown_stops_tercet_start(tmp_path: Path) -> None:
    """`server shutdown` stops a server run by `tercet start` as SIGTERM would."""
    from procsite import TERCET, c2s_port, init_site, tercet, wait_port

    site = init_site(tmp_path / "site")
    proc = subprocess.Popen([*TERCET, "-c", str(site), "start"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(c2s_port(site))
        assert tercet(site, "shell", "server shutdown").returncode == 2  # needs --yes
        done = tercet(site, "shell", "server shutdown --yes")
        assert done.returncode == 0, done.stderr
        assert "stopping: True" in done.stdout
        assert proc.wait(30) == 0
        assert tercet(site, "shell", "server version").returncode == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
