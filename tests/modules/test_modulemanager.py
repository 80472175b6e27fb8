"""Loading, unloading and reloading modules at runtime, through real plugin discovery."""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import pytest
from helpers import run, until
from moduletest import ModuleTestServer

from tercet.core.moduleapi import ModuleError


def install_fake_plugin(plugin_path: Path, name: str, source: str, version: str = "1.0") -> None:
    """Lay a plugin out exactly as the installer does: <plugin_path>/<name>/ with a dist-info."""
    target = plugin_path / name
    target.mkdir(parents=True, exist_ok=True)
    (target / f"tercet_mod_{name}.py").write_text(textwrap.dedent(source))
    dist = target / f"tercet_mod_{name}-{version}.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: tercet-mod-{name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(
        f"[tercet.modules]\n{name} = tercet_mod_{name}\n")


ECHO = """
    NS = "urn:example:echo"
    META = {"summary": "echo", "stage": "alpha", "xeps": []}
    state = {"count": 0}

    def load(module):
        module.add_feature(NS)
        def on_echo(event):
            state["count"] += 1
            reply = event.stanza.reply()
            reply.tag("echo", NS).append(str(state["count"]) + ":" + VERSION)
            event.origin.send(reply)
            return True
        module.hook("iq-get/host/" + NS + ":echo", on_echo)

    def save(module):
        return state["count"]

    def restore(module, saved):
        state["count"] = saved

    VERSION = "v1"
"""

ECHO_IQ = ("<iq xmlns='jabber:client' type='get' id='e' to='localhost'>"
           "<echo xmlns='urn:example:echo'/></iq>")


@pytest.fixture
def plugin_dir() -> Path:
    with tempfile.TemporaryDirectory(prefix="tercet-plugins-") as d:
        yield Path(d)


def test_load_unload_reload_with_state(plugin_dir: Path) -> None:
    install_fake_plugin(plugin_dir, "echo", ECHO)

    async def main() -> None:
        async with ModuleTestServer(f'installer_plugin_path = "{plugin_dir}"') as srv:
            mm = srv.server.modules
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send(ECHO_IQ)
            romeo.expect("iq", type="error")  # not loaded yet: service-unavailable
            entry = await mm.load("echo", "localhost")
            assert entry.status == "loaded" and entry.source.origin == "plugin"
            assert "urn:example:echo" in srv.server.hosts["localhost"].features
            await romeo.send(ECHO_IQ)
            assert romeo.expect("iq", type="result").find("echo", "urn:example:echo") \
                .text == "1:v1"  # type: ignore[union-attr]
            # A newer version on disk; reload keeps the counter through save/restore.
            install_fake_plugin(plugin_dir, "echo", ECHO.replace('"v1"', '"v2"'), "2.0")
            await mm.reload("echo", "localhost")
            await romeo.send(ECHO_IQ)
            assert romeo.expect("iq", type="result").find("echo", "urn:example:echo") \
                .text == "2:v2"  # type: ignore[union-attr]
            await mm.unload("echo", "localhost")
            assert "urn:example:echo" not in srv.server.hosts["localhost"].features
            await romeo.send(ECHO_IQ)
            romeo.expect("iq", type="error")
    run(main())


def test_failing_module_is_marked_and_leaves_nothing_behind(plugin_dir: Path) -> None:
    install_fake_plugin(plugin_dir, "broken", """
        def load(module):
            module.add_feature("urn:example:half")
            module.hook("iq-get/host/urn:example:half:q", lambda e: True)
            raise RuntimeError("boom")
    """)

    async def main() -> None:
        async with ModuleTestServer(f'installer_plugin_path = "{plugin_dir}"') as srv:
            entry = await srv.server.modules.load("broken", "localhost")
            assert entry.status == "failed" and "RuntimeError: boom" in (entry.error or "")
            host = srv.server.hosts["localhost"]
            assert "urn:example:half" not in host.features
            assert not host.events.has_handlers("iq-get/host/urn:example:half:q")
            romeo = await srv.connect("romeo@localhost/a")
            await romeo.send("<iq xmlns='jabber:client' type='get' id='p' to='localhost'>"
                             "<ping xmlns='urn:xmpp:ping'/></iq>")
            romeo.expect("iq", type="result")  # the rest keeps running
    run(main())


def test_dependencies_load_first_and_go_with_their_dependant(plugin_dir: Path) -> None:
    install_fake_plugin(plugin_dir, "base", """
        def load(module):
            module.add_feature("urn:example:base")
    """)
    install_fake_plugin(plugin_dir, "top", """
        def load(module):
            module.depends("base")
            module.add_feature("urn:example:top")
    """)

    async def main() -> None:
        async with ModuleTestServer(f'installer_plugin_path = "{plugin_dir}"') as srv:
            mm = srv.server.modules
            await mm.load("top", "localhost")
            assert mm.loaded[("base", "localhost")].status == "loaded"
            features = srv.server.hosts["localhost"].features
            assert "urn:example:base" in features and "urn:example:top" in features
            gone = await mm.unload("base", "localhost")
            assert gone == ["top", "base"]
            assert "urn:example:top" not in features
            with pytest.raises(ModuleError):
                await mm.unload("top", "localhost")
    run(main())


def test_conflicting_module_refused(plugin_dir: Path) -> None:
    install_fake_plugin(plugin_dir, "rival", """
        META = {"conflicts": ["ping"]}
        def load(module):
            pass
    """)

    async def main() -> None:
        async with ModuleTestServer(f'installer_plugin_path = "{plugin_dir}"') as srv:
            entry = await srv.server.modules.load("rival", "localhost")
            assert entry.status == "failed" and "conflicts" in (entry.error or "")
    run(main())


def test_timers_are_cancelled_on_unload(plugin_dir: Path) -> None:
    install_fake_plugin(plugin_dir, "ticker", """
        ticks = []
        timers = []
        def load(module):
            timers.append(module.add_timer(0.01, lambda: ticks.append(1) or 0.01))
    """)

    async def main() -> None:
        async with ModuleTestServer(f'installer_plugin_path = "{plugin_dir}"') as srv:
            entry = await srv.server.modules.load("ticker", "localhost")
            ticks = entry.pymodule.ticks  # type: ignore[union-attr]
            await until(lambda: len(ticks) >= 2, "the timer to repeat")
            (timer,) = entry.pymodule.timers  # type: ignore[union-attr]
            await srv.server.modules.unload("ticker", "localhost")
            # Rather than waiting a while to see no tick: the loop's only pending call to
            # the callback is cancelled, so it cannot run again.
            assert timer.stopped and timer.handle.cancelled()
    run(main())


def test_module_for_another_tercet_version_is_refused(plugin_dir: Path) -> None:
    install_fake_plugin(plugin_dir, "future", """
        META = {"tercet": ">=99.0"}
        def load(module):
            module.add_feature("urn:example:future")
    """)

    async def main() -> None:
        async with ModuleTestServer(f'installer_plugin_path = "{plugin_dir}"') as srv:
            entry = await srv.server.modules.load("future", "localhost")
            assert entry.status == "failed" and "needs Tercet >=99.0" in (entry.error or "")
            assert "urn:example:future" not in srv.server.hosts["localhost"].features
    run(main())


def test_unloading_a_global_module_unloads_its_per_host_dependants(plugin_dir: Path) -> None:
    install_fake_plugin(plugin_dir, "gbase", """
        GLOBAL = True
        def load(module):
            pass
    """)
    install_fake_plugin(plugin_dir, "hosted", """
        def load(module):
            module.depends("gbase")
            module.add_feature("urn:example:hosted")
        def save(module):
            return module.host
        restored = []
        def restore(module, state):
            restored.append(state)
    """)

    async def main() -> None:
        async with ModuleTestServer(f'installer_plugin_path = "{plugin_dir}"') as srv:
            mm = srv.server.modules
            await mm.load("hosted", "localhost")
            assert mm.loaded[("gbase", "*")].dependants == {("hosted", "localhost")}
            # Reload brings the dependant back on its own host, with its own state.
            await mm.reload("gbase", "*")
            hosted = mm.loaded[("hosted", "localhost")]
            assert hosted.status == "loaded"
            assert hosted.pymodule is not None and hosted.pymodule.restored == ["localhost"]
            gone = await mm.unload("gbase", "*")
            assert gone == ["hosted", "gbase"]
            assert ("hosted", "localhost") not in mm.loaded
            assert "urn:example:hosted" not in srv.server.hosts["localhost"].features
    run(main())


def test_a_dependency_whose_async_load_fails_is_not_left_loading(plugin_dir: Path) -> None:
    install_fake_plugin(plugin_dir, "slowbase", """
        async def load(module):
            raise RuntimeError("cannot start")
    """)
    install_fake_plugin(plugin_dir, "needsslow", """
        def load(module):
            module.depends("slowbase")
    """)

    async def main() -> None:
        async with ModuleTestServer(f'installer_plugin_path = "{plugin_dir}"') as srv:
            mm = srv.server.modules
            entry = await mm.load("needsslow", "localhost")
            assert entry.status == "failed" and "cannot start" in (entry.error or "")
            base = mm.loaded[("slowbase", "localhost")]
            assert base.status == "failed", base.status
    run(main())
