"""server_status: a status iq for admins, and a JSON status file rewritten periodically."""

from __future__ import annotations

import json
from pathlib import Path

from community_helpers import FakeClock, error_condition, load, server_with
from helpers import run, until

from tercet import __version__

NS = "urn:tercet:status"
QUERY = (f"<iq xmlns='jabber:client' type='get' id='s' to='localhost'>"
         f"<status xmlns='{NS}'/></iq>")
ADMINS = 'admins = ["admin@localhost"]'


def test_admins_get_the_status_others_are_forbidden(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["server_status"], ADMINS) as srv:
            clock = FakeClock(srv.server.started + 42.7)
            srv.server.clock = clock
            await load(srv, "server_status")
            assert NS in srv.server.hosts["localhost"].features
            admin = await srv.connect("admin@localhost/a")
            romeo = await srv.connect("romeo@localhost/a")
            await admin.send(QUERY)
            reply = admin.expect("iq", type="result", id="s")
            status = reply.find("status", NS)
            assert status is not None
            assert status.get("software") == "Tercet" and status.get("version") == __version__
            assert status.get("uptime") == "42" and status.get("sessions") == "2"
            assert [(h.get("name"), h.get("sessions")) for h in status.find_all("host")] == [
                ("localhost", "2")]
            await romeo.send(QUERY)
            refused = romeo.expect("iq", type="error", id="s")
            assert error_condition(refused) == "forbidden"
            await srv.server.modules.unload("server_status", "localhost")
            assert NS not in srv.server.hosts["localhost"].features
            await admin.send(QUERY)
            assert error_condition(admin.expect("iq", type="error")) == "service-unavailable"
    run(main())


def test_status_file_is_written_and_refreshed(community_plugins: dict[str, Path],
                                              tmp_path: Path) -> None:
    target = tmp_path / "status-localhost.json"
    options = (f'server_status_file = "{tmp_path}/status-{{host}}.json"\n'
               "server_status_interval = 0.02")

    def sessions() -> int | None:
        try:
            return int(json.loads(target.read_text())["sessions"])
        except (OSError, ValueError):
            return None

    async def main() -> None:
        async with server_with(community_plugins["server_status"], options) as srv:
            await load(srv, "server_status")
            await until(lambda: sessions() == 0)
            data = json.loads(target.read_text())
            assert data["host"] == "localhost" and data["hosts"] == {"localhost": 0}
            assert data["version"] == __version__ and data["uptime"] >= 0
            await srv.connect("romeo@localhost/a")
            await srv.connect("juliet@localhost/a")
            await until(lambda: sessions() == 2)  # rewritten on the next tick
            assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed
    run(main())


def test_relative_status_file_is_refused(community_plugins: dict[str, Path]) -> None:
    async def main() -> None:
        async with server_with(community_plugins["server_status"],
                               'server_status_file = "status.json"') as srv:
            entry = await srv.server.modules.load("server_status", "localhost")
            assert entry.status == "failed" and "absolute path" in (entry.error or "")
            assert NS not in srv.server.hosts["localhost"].features  # nothing left behind
    run(main())
