"""Run Prosody's scansion scripts against Tercet: one fresh server per script.

The server is configured like Prosody's own test configuration
(``../shared/scansion/prosody.cfg.lua``): same admins, plaintext PLAIN logins, blocked
messages bounced, in-memory storage, the same modules where Tercet has them (plus the
fragment ``services.toml.part`` next to this file for contact_info/external_services).
Prosody's test config uses ``authentication = "insecure"`` (any password works); here each
account a script names is created with the password the script states.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
PROJECT = TESTS.parent
SHARED = (PROJECT / ".." / "shared").resolve()
CORPUS = SHARED / "scansion"
RUNNER = SHARED / "tools" / "scansion" / "run.py"
SERVICES_FRAGMENT = HERE / "services.toml.part"

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from harness import ServerHarness  # noqa: E402 (after the sys.path entry above)

from tercet.protocol.jid import JID  # noqa: E402

# The scripts the issue requires to pass.
REQUIRED = [
    "basic", "basic_message", "basic_roster", "blocking", "disco_self", "issue1121",
    "keep_full_sub_req", "presence_preapproval", "lastactivity", "uptime", "vcard_temp",
    "server_contact_info", "tombstones", "extdisco", "version",
    "mam_prefs_prep", "mam_extended",
    # Publish-subscribe (XEP-0060) and PEP (XEP-0163). pep_itemreply and
    # pep_publish_subscribe are not here: they expect an empty roster to carry ver='1'
    # and the first push to carry ver='1' too, which would let a client that missed that
    # push believe it is up to date (RFC 6121 §2.6); Tercet answers ver='0' first.
    "pubsub_advanced", "pubsub_basic", "pubsub_config", "pubsub_createdelete",
    "pubsub_max_items", "pubsub_multi_items", "pubsub_preconditions",
    "pubsub_resend_on_sub", "pep_nickname", "pep_pubsub_max", "bookmarks2",
    "empty_bookmarks",
    # Multi-user chat (XEP-0045). muc_nickname_robotface is not here: its nick has a code
    # point unassigned in Unicode 3.2, which strict stringprep (RFC 6122) refuses where
    # the address is parsed, so the router answers jid-malformed; Prosody parses leniently
    # and lets the room refuse the same nick, with its own text.
    "muc_affiliation_notify", "muc_create_destroy", "muc_mediated_invite",
    "muc_members_only_change", "muc_members_only_deregister", "muc_nickname_change",
    "muc_outcast_reason", "muc_password", "muc_presence_probe", "muc_register",
    "muc_show_offline", "muc_subject_issue_667", "muc_whois_anyone_member", "issue1224",
    "issue505", "issue978", "issue978-multi",
    # HTTP File Share (XEP-0363).
    "http_upload",
]

# Prosody module name -> Tercet module name, where they differ.
RENAMED = {"vcard_legacy": "vcard", "user_account_management": "register"}
# Loaded by Prosody without being listed (its autoload list), or replaced here by a fresh
# server per script (debug_reset).
AUTOLOADED = ["offline"]
SKIPPED = {"debug_reset", "scansion_record"}
COMPONENTS = {"conference.localhost": "muc", "pubsub.localhost": "pubsub",
              "upload.localhost": "http_file_share"}
# The component tables of Prosody's test config, where Tercet has the module they name.
COMPONENT_SETTINGS = {
    "conference.localhost": {"admins": '["admin@localhost"]', "modules_enabled": "muc_mam"},
    "pubsub.localhost": {"expose_publisher": "true"},
    "upload.localhost": {"http_file_share_size_limit": "10000000",
                         "http_file_share_allowed_file_types": '["text/plain", "image/*"]'},
}

RUNNER_TIMEOUT = 180  # seconds for one script, server start excluded


def available() -> str | None:
    """None when the corpus and runner are here, else the reason to skip."""
    if not CORPUS.is_dir():
        return f"no scansion corpus at {CORPUS} (../shared is not present)"
    if not RUNNER.is_file():
        return f"no scansion runner at {RUNNER} (../shared/tools is not present)"
    return None


def tercet_has(module: str) -> bool:
    return find_spec(f"tercet.modules.{module}") is not None


def prosody_modules(cfg: Path) -> list[str]:
    """The modules_enabled entries of Prosody's test config that are not commented out."""
    text = cfg.read_text(encoding="utf-8")
    start = text.find("modules_enabled")
    end = text.find("}", start)
    names = []
    for line in text[start:end].splitlines():
        match = re.match(r'\s*"([\w-]+)"\s*;', line)
        if match:
            names.append(match.group(1))
    return names


def tercet_modules() -> list[str]:
    """Prosody's test modules that Tercet has, under Tercet's names."""
    wanted = [RENAMED.get(n, n) for n in prosody_modules(CORPUS / "prosody.cfg.lua")
              if n not in SKIPPED] + AUTOLOADED
    return [m for i, m in enumerate(wanted) if m not in wanted[:i] and tercet_has(m)]


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def server_config() -> tuple[str, str]:
    """(global TOML, TOML after the localhost table) for ServerHarness."""
    fragment = SERVICES_FRAGMENT.read_text(encoding="utf-8") \
        if SERVICES_FRAGMENT.is_file() else ""
    given = set(tomllib.loads(fragment)) if fragment else set()
    settings = {
        "c2s_require_encryption": "false",
        "allow_unencrypted_plain_auth": "true",
        "bounce_blocked_messages": "true",
        "hide_os_type": "true",
        "allow_registration": "false",
        "storage": '"memory"',
        # Components with HTTP routes (upload.localhost) load the HTTP server: let the OS
        # pick its ports, as for c2s.
        "http_ports": "[0]",
        "https_ports": "[0]",
        "modules_enabled": toml_list(tercet_modules()),
    }
    lines = [f"{k} = {v}" for k, v in settings.items() if k not in given]
    extra = "\n".join(lines) + "\n" + fragment  # the fragment may open tables: keep it last
    host_extra = "".join(component_table(host, module)
                         for host, module in COMPONENTS.items() if tercet_has(module))
    return extra, host_extra


def component_table(host: str, module: str) -> str:
    """The component's TOML table: its module and the settings Prosody's config gives it
    (a modules_enabled entry only when Tercet has that module)."""
    lines = [f'\n[components."{host}"]', f'module = "{module}"']
    for key, value in COMPONENT_SETTINGS.get(host, {}).items():
        if key == "modules_enabled":
            if not tercet_has(value):
                continue
            value = toml_list([value])
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Account:
    username: str
    host: str
    password: str


def accounts_of(script: Path) -> list[Account]:
    """The distinct accounts of the script's [Client] headers (jid + password)."""
    header = re.split(r"^-{3,}\s*$", script.read_text(encoding="utf-8"), maxsplit=1,
                      flags=re.MULTILINE)[0]
    found: dict[tuple[str, str], Account] = {}
    for block in re.split(r"^\[", header, flags=re.MULTILINE)[1:]:
        if not block.startswith("Client]"):
            continue
        props = dict(re.findall(r"^\s+(\w+):\s*(.*?)\s*$", block, flags=re.MULTILINE))
        if "jid" not in props:
            continue
        jid = JID.parse(props["jid"])
        if jid.node is not None:
            found.setdefault((jid.node, jid.domain),
                             Account(jid.node, jid.domain, props.get("password", "")))
    return list(found.values())


def script_path(name: str, workdir: Path) -> Path:
    """The script to run; version.scs is read as Tercet's own (its software name)."""
    path = CORPUS / f"{name}.scs"
    if name != "version":
        return path
    copy = workdir / path.name
    copy.write_text(path.read_text(encoding="utf-8").replace(
        "<name>Prosody</name>", "<name>Tercet</name>"), encoding="utf-8")
    return copy


@dataclass(frozen=True)
class Outcome:
    passed: bool
    output: str


def run_script(name: str) -> Outcome:
    """Start a fresh server, provision the script's accounts, run the script, stop."""
    with tempfile.TemporaryDirectory(prefix=f"scansion-{name}-") as tmp:
        workdir = Path(tmp)
        script = script_path(name, workdir)
        extra, host_extra = server_config()
        harness = ServerHarness(workdir / "server", extra, host_extra).start()
        try:
            for account in accounts_of(script):
                harness.create_user(account.username, account.password, account.host)
            return run_runner(script, harness.port())
        finally:
            harness.stop()


def run_runner(script: Path, port: int) -> Outcome:
    try:
        proc = subprocess.run(
            [sys.executable, str(RUNNER), "--host", "127.0.0.1", "--port", str(port),
             "--script-timeout", str(RUNNER_TIMEOUT - 10), str(script)],
            capture_output=True, text=True, timeout=RUNNER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout if isinstance(exc.stdout, str) else ""
        return Outcome(False, f"the runner did not finish in {RUNNER_TIMEOUT} s\n{partial}")
    return Outcome(proc.returncode == 0, proc.stdout + proc.stderr)


def all_scripts() -> list[str]:
    return sorted(p.stem for p in CORPUS.glob("*.scs"))
