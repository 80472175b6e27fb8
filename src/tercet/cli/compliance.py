"""The XMPP Compliance Suites for servers (XEP-0459 for 2022, XEP-0479 for 2023, whose
server requirements are the same: "Changes since 2022: None") as data, and what a
configuration enables of them. Used by ``tercet check features``.

Each row of :data:`REQUIREMENTS` is one feature of a suite's table (XEP-0479 §2), with the
two server columns (Server, Advanced Server) and the Tercet modules that provide it. A
feature whose providers may be a component (the table's "Support can be enabled via an
external component or an internal server module") counts when a component of the
configuration loads them. Client-only rows (N/A for servers) are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tercet.core.config import Config, plugin_path_of
from tercet.core.config.core_options import ALWAYS_LOADED
from tercet.core.modulemanager import available_sources, import_source

SUITES = ("Core", "Web", "IM", "Mobile", "A/V Calling")
SUITE_DOCS = ("XEP-0459 (Compliance Suites 2022)", "XEP-0479 (Compliance Suites 2023)")


@dataclass(frozen=True, slots=True)
class Setup:
    """What one host has: its modules and its components' modules, and the config."""

    host: str
    modules: frozenset[str]
    component_modules: frozenset[str]
    config: Config

    def has(self, *modules: str, component: bool = False) -> bool:
        found = self.modules | (self.component_modules if component else frozenset())
        return all(m in found for m in modules)


@dataclass(frozen=True, slots=True)
class Requirement:
    """One feature row: ``server``/``advanced`` are the table's Server and Advanced
    Server columns; ``enable`` says what to turn on; ``met`` decides."""

    suite: str
    feature: str
    specs: tuple[str, ...]
    server: bool
    advanced: bool
    enable: str
    met: Callable[[Setup], bool] = field(compare=False)


def _modules(*names: str, component: bool = False) -> Callable[[Setup], bool]:
    return lambda s: s.has(*names, component=component)


def _direct_tls(setup: Setup) -> bool:
    return "c2s" in setup.modules and bool(setup.config.get("c2s_direct_tls_ports"))


def _req(suite: str, feature: str, specs: tuple[str, ...], server: bool, advanced: bool,
         enable: str, met: Callable[[Setup], bool]) -> Requirement:
    return Requirement(suite, feature, specs, server, advanced, enable, met)


#: XEP-0479 §2.1-2.5, server columns.
REQUIREMENTS: tuple[Requirement, ...] = (
    _req("Core", "Core features", ("RFC 6120",), True, True,
         'the s2s module (federation): modules_enabled += ["s2s"]',
         _modules("c2s", "saslauth", "bind", "s2s")),
    _req("Core", "TLS", ("RFC 7590",), True, True, 'the tls module', _modules("tls")),
    _req("Core", "Direct TLS", ("XEP-0368",), False, True,
         "c2s_direct_tls_ports (e.g. [5223])", _direct_tls),
    _req("Core", "Feature discovery", ("XEP-0030",), True, True, "the disco module",
         _modules("disco")),
    _req("Core", "Feature broadcasts", ("XEP-0115",), False, True, "the disco module",
         _modules("disco")),
    _req("Core", "Server extensibility", ("XEP-0114",), True, True,
         'the component_listener module: modules_enabled += ["component_listener"]',
         _modules("component_listener")),
    _req("Core", "Event publishing", ("XEP-0163",), False, True, "the pep module",
         _modules("pep")),
    _req("Web", "Web connection mechanisms", ("RFC 7395", "XEP-0206"), True, True,
         'the websocket and bosh modules: modules_enabled += ["websocket", "bosh"]',
         _modules("websocket", "bosh")),
    _req("IM", "Core features", ("RFC 6121",), True, True, "the roster module",
         _modules("roster", "presence")),
    _req("IM", "User avatar compatibility", ("XEP-0398", "XEP-0153"), False, True,
         "the vcard and pep modules", _modules("vcard", "pep")),
    _req("IM", "vcard-temp", ("XEP-0054",), True, True, "the vcard module",
         _modules("vcard")),
    _req("IM", "Outbound message synchronization", ("XEP-0280",), True, True,
         "the carbons module", _modules("carbons")),
    _req("IM", "User blocking", ("XEP-0191",), False, True, "the blocklist module",
         _modules("blocklist")),
    _req("IM", "Group chat", ("XEP-0045", "XEP-0249"), True, True,
         'a MUC component: [components."conference.<host>"] module = "muc"',
         _modules("muc", component=True)),
    _req("IM", "Advanced group chat", ("XEP-0048", "XEP-0313", "XEP-0402", "XEP-0410"),
         False, True, 'the bookmarks module and muc_mam in the MUC component\'s '
         'modules_enabled', lambda s: s.has("bookmarks") and s.has("muc", "muc_mam",
                                                                     component=True)),
    _req("IM", "Persistent storage of private data via PubSub", ("XEP-0223",), False, True,
         "the pep module", _modules("pep")),
    _req("IM", "Private XML storage", ("XEP-0049",), False, True, "the private module",
         _modules("private")),
    _req("IM", "Stream management", ("XEP-0198",), False, True, "the smacks module",
         _modules("smacks")),
    _req("IM", "History storage / retrieval", ("XEP-0313",), False, True,
         'the mam module: modules_enabled += ["mam"]', _modules("mam")),
    _req("IM", "File upload", ("XEP-0363",), True, True,
         'an upload component: [components."upload.<host>"] module = "http_file_share"',
         _modules("http_file_share", component=True)),
    _req("Mobile", "Stream management", ("XEP-0198",), True, True, "the smacks module",
         _modules("smacks")),
    _req("Mobile", "Client state indication", ("XEP-0352",), True, True,
         'the csi_simple module: modules_enabled += ["csi_simple"]',
         _modules("csi_simple")),
    _req("Mobile", "Third party push notifications", ("XEP-0357",), False, True,
         'the cloud_notify module: modules_enabled += ["cloud_notify"]',
         _modules("cloud_notify")),
    _req("A/V Calling", "STUN/TURN server discovery", ("XEP-0215",), True, True,
         'the external_services module with your TURN server: '
         'modules_enabled += ["external_services"]', _modules("external_services")),
)


def setup_for(config: Config, host: str) -> Setup:
    """The modules ``host`` loads (with those every host loads) and its components'."""
    modules = set(config.modules_for_host(host)) | set(ALWAYS_LOADED)
    component_modules: set[str] = set()
    for name, module in config.components.items():
        component_modules.add(module)
        component_modules.update(config.get_host_only("modules_enabled", name) or ())
    # Modules that load others (module.depends) count as loading them.
    if modules & {"invites_register", "invites_page"}:
        modules.add("invites")
    return Setup(host, frozenset(modules), frozenset(component_modules), config)


def evaluate(setup: Setup) -> dict[str, Any]:
    """Per suite: the levels reached and each server feature, met or not."""
    suites: dict[str, Any] = {}
    for suite in SUITES:
        rows = [r for r in REQUIREMENTS if r.suite == suite]
        features = [{"feature": r.feature, "specs": list(r.specs), "server": r.server,
                     "advanced_server": r.advanced, "enabled": r.met(setup),
                     "enable": r.enable} for r in rows]
        suites[suite] = {
            "server": all(f["enabled"] for f in features if f["server"]),
            "advanced_server": all(f["enabled"] for f in features if f["advanced_server"]),
            "features": features,
        }
    # XEP-0479 §2.2-2.5: every suite also needs the Core suite at the same level.
    for suite in SUITES[1:]:
        for level in ("server", "advanced_server"):
            suites[suite][level] = suites[suite][level] and suites["Core"][level]
    return suites


def advice(suites: dict[str, Any]) -> list[str]:
    """What to enable for the Advanced Server level of every suite, one line each."""
    seen: set[str] = set()
    out = []
    for suite, result in suites.items():
        for f in result["features"]:
            if f["advanced_server"] and not f["enabled"] and f["enable"] not in seen:
                seen.add(f["enable"])
                out.append(f"{suite}: {f['feature']} ({', '.join(f['specs'])}): "
                           f"enable {f['enable']}")
    return out


def module_xeps(config: Config) -> dict[str, list[str]]:
    """Module name -> the XEPs its ``META`` names, for every findable module (built-in
    and installed plugins); a module that cannot be imported names none."""
    out: dict[str, list[str]] = {}
    for source in available_sources(plugin_path_of(config.path)):
        try:
            meta = getattr(import_source(source), "META", {}) or {}
        except Exception:  # noqa: BLE001 - `check config` reports broken modules
            continue
        xeps = meta.get("xeps") if isinstance(meta, dict) else None
        out[source.name] = sorted(str(x) for x in xeps or ())
    return out


def enabled_xeps(setup: Setup, xeps_of: dict[str, list[str]]) -> list[str]:
    """The XEPs the host's modules and the components' modules implement."""
    found = {x for m in setup.modules | setup.component_modules for x in xeps_of.get(m, ())}
    return sorted(found)
