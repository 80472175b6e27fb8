"""Files written by ``tercet init``."""

from __future__ import annotations

from collections.abc import Iterable

from tercet.core.config import DEFAULT_MODULES, toml_repr


def _wrapped_list(items: Iterable[str], indent: str = "#   ", width: int = 88) -> str:
    lines: list[str] = []
    line = indent
    for item in items:
        piece = f'"{item}", '
        if len(line) + len(piece) > width:
            lines.append(line.rstrip())
            line = indent
        line += piece
    lines.append(line.rstrip().rstrip(","))
    return "\n".join(lines)


def render_config(domain: str, *, admins: Iterable[str] = (), data_path: str = "data",
                  certificates: str = "certs") -> str:
    """A commented tercet.toml for one virtual host, listening on loopback only."""
    modules = _wrapped_list(DEFAULT_MODULES)
    return f"""\
# Tercet configuration (TOML, https://toml.io).
#
# Option names follow Prosody's where the concept is the same. `tercet check` validates
# this file and the certificates; the full option list is in docs/configuration.md.
#
# TOML puts every key written below a [table] heading into that table, so global
# options must stay above the first [virtualhosts...] or [components...] heading.

# Accounts with the admin role (bare JIDs), e.g. ["admin@{domain}"].
admins = {toml_repr(list(admins), limit=10_000)}

# Databases, the admin socket and installed plugins live here. Relative paths are
# relative to this file's directory.
data_path = {toml_repr(data_path)}

# Log level ("debug", "info", "warn", "error"), or a table:
#   log = {{ level = "info", file = "tercet.log" }}
log = "info"

# Storage driver: "sqlite" (default), "memory" (lost on restart) or "postgresql".
storage = "sqlite"

# Modules loaded for every host. Leave this commented out to get the default set:
# modules_enabled = [
{modules}
# ]
# To switch off some of them, list them here:
# modules_disabled = ["offline"]

# --- Client connections (c2s) ---------------------------------------------------------
# Loopback only, so a fresh server is not exposed. To accept clients from the network:
#   c2s_interfaces = ["*", "::"]
c2s_interfaces = ["127.0.0.1", "::1"]
c2s_ports = [5222]              # STARTTLS
c2s_direct_tls_ports = [5223]   # TLS from the first byte (XEP-0368)
c2s_require_encryption = true
allow_unencrypted_plain_auth = false

# --- Accounts ---------------------------------------------------------------------------
# "internal_hashed" stores salted SCRAM keys only; "anonymous" gives throw-away accounts.
authentication = "internal_hashed"
# Let clients create accounts themselves (XEP-0077):
allow_registration = false

# --- Certificates -----------------------------------------------------------------------
# Searched for <host>.crt/<host>.key, *.<parent>.crt, then <host>/fullchain.pem.
# `tercet cert import /etc/letsencrypt/live` copies certbot's certificates here.
certificates = {toml_repr(certificates)}

# Addresses shown to other servers and users (XEP-0157):
# contact_info = {{ admin = ["mailto:admin@{domain}"], abuse = ["mailto:abuse@{domain}"] }}

# --- Virtual hosts ------------------------------------------------------------------------
# One table per domain. Any option above can be overridden inside it.
[virtualhosts.{toml_repr(domain)}]
# enabled = true
# certificate = "{certificates}/{domain}.crt"
# key = "{certificates}/{domain}.key"

# --- Components -------------------------------------------------------------------------
# A multi-user chat service, for example:
# [components."conference.{domain}"]
# module = "muc"
#
# An external component (XEP-0114): a gateway or bot running as its own process that
# connects to component_ports (5347, loopback only). See docs/components.md.
# [components."gateway.{domain}"]
# component_secret = "<output of: openssl rand -hex 32>"
"""


def render_systemd_unit(*, python: str, config_file: str, directory: str, user: str) -> str:
    """A systemd service for the site ``tercet init`` made: runs ``start`` in the
    foreground under ``python`` (the interpreter of the environment Tercet is installed
    in), reloads the configuration on ``systemctl reload`` (SIGHUP), and may write only
    its own site directory. Paths are absolute; systemd quotes them itself."""
    return f"""\
# systemd unit for Tercet, written by `tercet init --systemd`.
# Install:  sudo cp tercet.service /etc/systemd/system/
#           sudo systemctl daemon-reload && sudo systemctl enable --now tercet
# The user must exist and own {directory}:
#           sudo useradd --system --home-dir {directory} {user}
#           sudo chown -R {user}: {directory}

[Unit]
Description=Tercet XMPP server
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
User={user}
Group={user}
ExecStart="{python}" -m tercet -c "{config_file}" start
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5s
# Files the server creates are its own alone (it also sets 0700/0600 itself).
UMask=0077
# Clients and peers hold one descriptor each.
LimitNOFILE=65536
NoNewPrivileges=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectSystem=strict
ProtectHome=read-only
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
ReadWritePaths="{directory}"
# Ports below 1024 (e.g. 443 for direct TLS) need: AmbientCapabilities=CAP_NET_BIND_SERVICE

[Install]
WantedBy=multi-user.target
"""
