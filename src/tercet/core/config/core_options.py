"""The options the core itself reads: accounts, storage, logging, certificates, plugins.

Everything a feature reads (listeners, registration, offline storage, ...) is declared by
the module that owns the feature, in its ``OPTIONS`` list.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .schema import (
    Invalid,
    Option,
    Schema,
    did_you_mean,
    found_text,
    toml_repr,
    valid_bare_jids,
    valid_urls,
)

#: The modules loaded when ``modules_enabled`` is not set.
#: Loaded on every virtual host whatever modules_enabled says: without them a host has no
#: client streams at all.
ALWAYS_LOADED: tuple[str, ...] = ("c2s", "tls", "saslauth", "bind", "iq", "message",
                                  "presence")
DEFAULT_MODULES: tuple[str, ...] = (
    "roster", "saslauth", "tls", "disco", "ping", "version", "time", "uptime",
    "lastactivity", "private", "vcard", "blocklist", "offline", "register",
    "server_contact_info", "c2s", "bind", "iq", "message", "presence",
    # Stream management (XEP-0198) on by default: mobile clients lose messages without
    # it, and it costs nothing to a client that does not enable it (docs/smacks.md).
    "smacks",
    # Message carbons (XEP-0280) on by default, as in Prosody: only resources that enable
    # them get copies (docs/carbons.md). csi_simple stays opt-in, as in Prosody.
    "carbons",
    # PEP (XEP-0163) on by default, as in Prosody's default config: avatars, bookmarks,
    # OMEMO keys and nicknames live there (docs/pep.md).
    "pep",
    # On top of PEP: bookmarks (XEP-0402, converted for XEP-0048 clients) because every
    # client needs them, and vCard4 (XEP-0292) as in Prosody's default config.
    "bookmarks", "vcard4",
)

_STORAGE_DRIVERS = ("sqlite", "memory", "postgresql")


def _valid_storage(value: str | dict[str, Any]) -> list[Invalid]:
    drivers = [value] if isinstance(value, str) else [
        v for v in value.values() if isinstance(v, str)]
    for driver in drivers:
        if driver not in _STORAGE_DRIVERS:
            hint = did_you_mean(driver, _STORAGE_DRIVERS) or (
                "Ignore this if a plugin provides that driver.")
            return [Invalid("a built-in storage driver (" + ", ".join(_STORAGE_DRIVERS) + ")",
                            toml_repr(driver), hint, severity="warning")]
    return []


_LOG_LEVELS = ("debug", "info", "warn", "warning", "error")


def _valid_log(value: str | dict[str, Any]) -> list[Invalid]:
    table = {"level": value} if isinstance(value, str) else value
    unknown = sorted(set(table) - {"level", "file"})
    if unknown:
        return [Invalid("a table with the keys level and file", f"the key {unknown[0]!r}",
                        'Write it like: log = { level = "info", file = "tercet.log" }.')]
    level = table.get("level", "info")
    if level not in _LOG_LEVELS:
        return [Invalid("a level among " + ", ".join(_LOG_LEVELS), toml_repr(level),
                        did_you_mean(str(level), _LOG_LEVELS))]
    if not isinstance(table.get("file", ""), str):
        return [Invalid("a file name string", found_text(table["file"]),
                        'Write it like: log = { level = "info", file = "tercet.log" }.')]
    return []


def _valid_custom_roles(value: list[dict[str, Any]]) -> list[Invalid]:
    # Imported here: the permission model is not part of the configuration package, and
    # collecting what modules declare imports module files (which import this one).
    from tercet.core.modulemanager import declared_permissions
    from tercet.core.permissions import CUSTOM_ROLES_EXAMPLE, custom_role_problems

    known = declared_permissions()
    fixes = {"nothing": "Add allow or deny entries, or give accounts the parent role.",
             "no module": "Check the name against docs/roles.md, or install the plugin "
                          "that declares it."}
    out = []
    for problem in custom_role_problems(value, known):
        fix = next((f for word, f in fixes.items() if word in problem),
                   f"Write roles like: {CUSTOM_ROLES_EXAMPLE}.")
        out.append(Invalid("custom roles that work (docs/roles.md)", problem, fix,
                           severity="warning"))
    return out


def _valid_duration(value: str | int) -> list[Invalid]:
    from tercet.core.durations import parse_duration

    try:
        parse_duration(value)
    except ValueError:
        return [Invalid('a duration such as "30s", "12h" or "7d"', toml_repr(value),
                        'Write it like: user_deletion_grace_period = "7d".')]
    return []


CORE_OPTIONS: tuple[Option[Any], ...] = (
    Option("admins", list[str], [],
           "Bare JIDs with the tercet:admin role on this host (global: tercet:operator, "
           "every host).", example=["admin@example.org"], validate=valid_bare_jids),
    Option("custom_roles", list[dict[str, Any]], [],
           "Roles of your own: tables of name, inherits, allow, deny (docs/roles.md).",
           scope="global", validate=_valid_custom_roles,
           example=[{"name": "helpdesk", "inherits": "tercet:member",
                     "allow": ["muc:create-room"]}]),
    Option[str | int]("user_deletion_grace_period", str | int, 0,
                      "How long a deleted account stays locked, its data kept, before it "
                      "is purged (\"7d\"; 0: deleted at once).",
                      validate=_valid_duration, example="7d"),
    Option("modules_enabled", list[str], list(DEFAULT_MODULES),
           "Modules to load; a host's list adds to the global one."),
    Option("modules_disabled", list[str], [], "Modules not to load, even if enabled.",
           example=["offline"]),
    Option("scram_iterations", int, 4096, "PBKDF2 iterations for new SCRAM credentials.",
           min=4096, max=1_000_000, cite="RFC 7677 §4"),
    Option("data_path", str, "data", "Directory for databases, sockets and plugins.",
           scope="global", path_base="config", restart=True),
    Option[str | dict[str, Any]]("storage", str | dict[str, Any], "sqlite",
                                 "Storage driver, or a table of store name -> driver.",
                                 validate=_valid_storage, restart=True),
    Option("sqlite_synchronous", str, "normal",
           "When SQLite waits for the disk: \"normal\" (with its write-ahead log, a power "
           "loss may drop the last transactions, a crash of the server never does) or "
           "\"full\" (every commit reaches the disk first; slower writes).",
           choices=("normal", "full"), scope="global", restart=True),
    Option[str | dict[str, Any]]("log", str | dict[str, Any], "info",
                                 'Log level, or a table { level = "info", file = "tercet.log" }.',
                                 scope="global", validate=_valid_log),
    Option("pidfile", str, "tercet.pid", "File holding the server's process id.",
           scope="global", path_base="data", restart=True),
    Option("certificates", str, "certs", "Directory searched for certificates.",
           path_base="config", restart=True),
    Option("certificate", str, None, "Certificate file (PEM chain) for this host.",
           path_base="config", example="certs/example.org.crt", restart=True),
    Option("key", str, None, "Private key file (PEM) for this host.",
           path_base="config", example="certs/example.org.key", restart=True),
    Option("tls_min_version", str, "1.2", "Oldest TLS version accepted.",
           choices=("1.2", "1.3"), cite="RFC 9325 §3.1.1", restart=True),
    Option("authentication", str, "internal_hashed", "Account provider.",
           choices=("internal_hashed", "anonymous")),
    Option("jid_profile", str, "stringprep",
           "JID preparation: RFC 6122 stringprep or RFC 7622 PRECIS.",
           choices=("stringprep", "precis"), scope="global"),
    Option("admin_socket", str, "admin.sock", "Unix socket of the admin shell.",
           scope="global", path_base="data", restart=True),
    Option("installer_plugin_path", str, "plugins", "Directory plugins are installed into.",
           scope="global", path_base="data"),
    Option("plugin_repositories", list[str], [], "Plugin repository URLs.",
           scope="global", example=["https://example.org/tercet/"], validate=valid_urls),
)

_CORE = Schema(replace(option, owner="core") for option in CORE_OPTIONS)


def core_schema() -> Schema:
    """The options of the core alone (owner "core"); modules' options are collected by
    ``tercet.core.modulemanager.declared_schema``."""
    return _CORE
