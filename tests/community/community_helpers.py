"""Helpers for the community module tests: a module test server with one plugin loaded and
a fake clock (running and waiting: ``helpers.run``, ``helpers.until``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# The module test harness lives in tests/modules (not a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "modules"))

from moduletest import ModuleTestServer, TestClient

from tercet.protocol.stanza import Element

COMMUNITY = Path(__file__).resolve().parents[2] / "community"
MODULES = sorted(p.name for p in COMMUNITY.iterdir() if (p / "pyproject.toml").is_file())
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def server_with(plugin_dir: Path, extra: str = "", host_extra: str = "") -> ModuleTestServer:
    """A module test server whose plugin directory is ``plugin_dir``."""
    return ModuleTestServer(f'installer_plugin_path = "{plugin_dir}"\n{extra}', host_extra)


async def load(srv: ModuleTestServer, name: str, host: str = "localhost") -> Any:
    """Load community module ``name``; it must come from the plugin directory and load."""
    entry = await srv.server.modules.load(name, host)
    assert entry.status == "loaded", entry.error
    assert entry.source.origin == "plugin" and entry.source.version == "1.1.0"
    return entry


class FakeClock:
    """The server's clock, moved by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def messages(client: TestClient) -> list[Element]:
    """The messages received since the last call (other stanzas are dropped)."""
    return [el for el in client.received() if el.name == "message"]


def error_condition(stanza: Element) -> str | None:
    error = stanza.find("error")
    if error is None:
        return None
    for child in error.elements():
        if child.xmlns == NS_STANZAS and child.name != "text":
            return child.name
    return None
