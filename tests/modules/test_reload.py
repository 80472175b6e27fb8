"""`tercet reload` applies what changed: modules that read a changed option are reloaded,
modules_enabled is followed, and options that only a restart can apply keep their running
value and are reported (issue: a reload relaxed STARTTLS but left SASL offering nothing)."""

from __future__ import annotations

from pathlib import Path

from helpers import run
from moduletest import BASE, ModuleTestServer

from tercet.protocol.stanza import Element

INFO = "http://jabber.org/protocol/disco#info"


def rewrite(srv: ModuleTestServer, extra: str = "", host_extra: str = "") -> None:
    path: Path = srv.server.config.path
    sock = srv.server.config.get("admin_socket")
    path.write_text(BASE.format(extra=extra, host_extra=host_extra, sock=sock))


def identity_name(reply: Element) -> str | None:
    query = reply.find("query", INFO)
    assert query is not None
    identity = next(i for i in query.find_all("identity", INFO) if i.get("category") == "server")
    return identity.get("name")


def test_a_changed_option_reloads_the_modules_that_read_it() -> None:
    async def main() -> None:
        async with ModuleTestServer('name = "Before"') as srv:
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send("<iq type='get' id='d1' to='localhost'>"
                             f"<query xmlns='{INFO}'/></iq>")
            assert identity_name(romeo.expect("iq", id="d1")) == "Before"
            saslauth = srv.server.modules.loaded[("saslauth", "localhost")].api
            rewrite(srv, 'name = "After"\nallow_unencrypted_plain_auth = true')
            report = await srv.server.reload()
            assert report is not None
            assert any(r.startswith("disco@localhost (name)") for r in report.reloaded)
            assert any(r.startswith("saslauth@localhost") and "allow_unencrypted_plain_auth"
                       in r for r in report.reloaded), report.reloaded
            # The module was reloaded: a new instance read the new values.
            assert srv.server.modules.loaded[("saslauth", "localhost")].api is not saslauth
            await romeo.send("<iq type='get' id='d2' to='localhost'>"
                             f"<query xmlns='{INFO}'/></iq>")
            assert identity_name(romeo.expect("iq", id="d2")) == "After"
            assert not report.failed and not report.restart_needed
    run(main())


def test_modules_enabled_is_followed_both_ways() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            loaded = srv.server.modules.loaded
            assert ("mam", "localhost") not in loaded
            rewrite(srv, host_extra='modules_enabled = ["mam"]')
            report = await srv.server.reload()
            assert report is not None and report.loaded == ["mam@localhost"]
            assert loaded[("mam", "localhost")].status == "loaded"
            rewrite(srv)
            report = await srv.server.reload()
            assert report is not None and report.unloaded == ["mam@localhost"]
            assert ("mam", "localhost") not in loaded
            assert ("roster", "localhost") in srv.server.modules.loaded  # defaults stay
    run(main())


def test_restart_only_options_keep_their_running_value() -> None:
    async def main() -> None:
        async with ModuleTestServer() as srv:
            rewrite(srv, 'c2s_interfaces = ["127.0.0.2"]\nsqlite_synchronous = "full"')
            report = await srv.server.reload()
            assert report is not None
            assert report.restart_needed == ["sqlite_synchronous", "c2s_interfaces"]
            assert srv.server.config.get("c2s_interfaces") == ["127.0.0.1", "::1"]
            assert srv.server.config.get("sqlite_synchronous") == "normal"
            assert report.reloaded == []  # c2s was not reloaded for a value it keeps
    run(main())


def test_a_broken_file_changes_nothing() -> None:
    async def main() -> None:
        async with ModuleTestServer('name = "Kept"') as srv:
            srv.server.config.path.write_text("name = \n")
            assert await srv.server.reload() is None
            assert srv.server.config.get("name") == "Kept"
    run(main())
