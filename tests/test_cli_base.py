"""The base of the `tercet` command: init, cert, check, version (CliRunner and a real run)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tercet.auth.internal import InternalHashedProvider
from tercet.cli.main import cli
from tercet.cli.templates import render_config
from tercet.core.certs import generate_self_signed
from tercet.core.config import Config
from tercet.storage.manager import StorageConfig, StorageManager

SRC = Path(__file__).resolve().parents[1] / "src"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory made by `tercet init` with domain example.org."""
    result = run("init", str(tmp_path / "site"), "--domain", "example.org")
    assert result.exit_code == 0, result.output
    return tmp_path / "site"


def cfg(site: Path) -> str:
    return str(site / "tercet.toml")


# -- init -------------------------------------------------------------------------------------


def test_init_creates_a_working_setup(site: Path) -> None:
    assert (site / "data").is_dir()
    assert (site / "data").stat().st_mode & 0o777 == 0o700
    assert (site / "certs" / "example.org.key").stat().st_mode & 0o777 == 0o600
    config = Config.load(site / "tercet.toml")
    assert config.hosts == ["example.org"]
    assert config.get("c2s_interfaces") == ["127.0.0.1", "::1"]
    assert config.check() == []


def test_init_prints_next_steps(tmp_path: Path) -> None:
    result = run("init", str(tmp_path / "s"))
    assert "Next steps" in result.stdout
    assert "check" in result.stdout and "user add admin@localhost" in result.stdout
    assert "Generating a self-signed certificate for localhost" in result.stderr


def test_init_refuses_to_overwrite_without_force(site: Path) -> None:
    before = (site / "certs" / "example.org.crt").read_bytes()
    result = run("init", str(site), "--domain", "example.org")
    assert result.exit_code == 1
    assert "already exists" in result.stderr
    assert run("init", str(site), "--domain", "example.org", "--force").exit_code == 0
    assert (site / "certs" / "example.org.crt").read_bytes() != before


def test_init_rejects_bad_domain(tmp_path: Path) -> None:
    result = run("init", str(tmp_path), "--domain", "not a domain")
    assert result.exit_code == 2
    assert "not a valid domain" in result.stderr


@pytest.mark.parametrize("domain", ["localhost", "example.org", "bücher.example"])
def test_rendered_template_is_valid_and_clean(tmp_path: Path, domain: str) -> None:
    text = render_config(domain, admins=[f"admin@{domain}"])
    config = Config.from_text(text, tmp_path / "tercet.toml")
    assert config.hosts == [domain]
    assert config.get("admins") == [f"admin@{domain}"]
    assert config.check() == []
    assert text.count("\n#") > 20          # commented for an operator


# -- check ------------------------------------------------------------------------------------


def test_check_clean(site: Path) -> None:
    result = run("-c", cfg(site), "check")
    assert result.exit_code == 0
    assert "no problems found" in result.stdout


def test_check_warnings_exit_0(site: Path) -> None:
    with open(site / "tercet.toml", "a", encoding="utf-8") as handle:
        handle.write('c2s_port = [5222]\n')        # lands in the host table: unknown key
    result = run("-c", cfg(site), "check")
    assert result.exit_code == 0
    assert 'Did you mean "c2s_ports"?' in result.stdout
    assert "0 error(s), 1 warning(s)" in result.stdout


def test_check_config_error_exit_1(site: Path) -> None:
    path = site / "tercet.toml"
    path.write_text(path.read_text().replace("c2s_ports = [5222]", 'c2s_ports = "5222"'))
    result = run("-c", cfg(site), "check")
    assert result.exit_code == 1
    assert f"{path}:" in result.stdout
    assert "c2s_ports: expected a list of integers" in result.stdout


def test_check_missing_certificate_is_an_error(site: Path) -> None:
    (site / "certs" / "example.org.crt").unlink()
    result = run("-c", cfg(site), "--", "check", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    [problem] = report["problems"]
    assert problem["key"] == 'virtualhosts."example.org"'
    assert f"tercet -c {site / 'tercet.toml'} cert generate example.org" in problem["fix"]


def test_check_wrong_certificate_host(site: Path) -> None:
    generate_self_signed("other.example", site / "certs")
    (site / "certs" / "other.example.crt").replace(site / "certs" / "example.org.crt")
    (site / "certs" / "other.example.key").replace(site / "certs" / "example.org.key")
    result = run("-c", cfg(site), "check")
    assert result.exit_code == 1
    assert "not valid for example.org" in result.stdout


def test_check_json_with_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "tercet.toml"
    path.write_text('admins = ["a@b"\n')
    result = run("-c", str(path), "check", "--json")
    assert result.exit_code == 1
    [problem] = json.loads(result.stdout)["problems"]
    assert problem["line"] is not None
    assert "TOML syntax error" in problem["message"]


def test_config_from_environment(site: Path) -> None:
    result = run("check", env={"TERCET_CONFIG": cfg(site)})
    assert result.exit_code == 0


def test_missing_config_file(tmp_path: Path) -> None:
    result = run("-c", str(tmp_path / "none.toml"), "cert", "show")
    assert result.exit_code == 1
    assert "config file not found" in result.stderr


# -- cert -------------------------------------------------------------------------------------


def test_cert_show(site: Path) -> None:
    result = run("-c", cfg(site), "cert", "show")
    assert result.exit_code == 0
    assert "example.org" in result.stdout
    assert "(self-signed)" in result.stdout
    report = json.loads(run("-c", cfg(site), "cert", "show", "example.org", "--json").stdout)
    assert report[0]["sans"] == ["example.org"]
    assert report[0]["problems"] == []


def test_cert_show_unknown_host_exit_1(site: Path) -> None:
    result = run("-c", cfg(site), "cert", "show", "nowhere.example")
    assert result.exit_code == 1
    assert "no certificate found for nowhere.example" in result.stdout


def test_cert_generate(site: Path) -> None:
    result = run("-c", cfg(site), "cert", "generate", "conference.example.org")
    assert result.exit_code == 0
    assert str(site / "certs" / "conference.example.org.crt") in result.stdout
    assert "not a configured virtual host" in result.stderr
    again = run("-c", cfg(site), "cert", "generate", "conference.example.org")
    assert again.exit_code == 1
    assert "--force" in again.stderr
    assert run("-c", cfg(site), "cert", "generate", "conference.example.org",
               "--force", "--days", "30").exit_code == 0


def test_cert_import(site: Path, tmp_path: Path) -> None:
    live = tmp_path / "live" / "example.org"
    cert, key = generate_self_signed("example.org", live)
    cert.rename(live / "fullchain.pem")
    key.rename(live / "privkey.pem")
    result = run("-c", cfg(site), "cert", "import", str(tmp_path / "live"))
    assert result.exit_code == 0, result.output
    assert "imported example.org" in result.stdout
    assert "fullchain" not in result.stdout and str(live) in result.stderr   # progress
    copied = (site / "certs" / "example.org.crt").read_bytes()
    assert copied == (live / "fullchain.pem").read_bytes()


def test_cert_import_wildcard(site: Path, tmp_path: Path) -> None:
    cert, key = make_wildcard(tmp_path / "wild")
    result = run("-c", cfg(site), "cert", "import", str(cert), str(key))
    assert result.exit_code == 0, result.output
    assert "imported *.example.org" in result.stdout
    assert (site / "certs" / "*.example.org.crt").exists()


def make_wildcard(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "*.example.org")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.example.org")]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir()
    (directory / "wild.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "wild.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (directory / "wild.key").chmod(0o600)
    return directory / "wild.crt", directory / "wild.key"


def test_cert_import_expired_exits_1(site: Path, tmp_path: Path) -> None:
    generate_self_signed("example.org", tmp_path / "old", days=1,
                         now=lambda: dt.datetime(2001, 1, 1, tzinfo=dt.UTC))
    result = run("-c", cfg(site), "cert", "import", str(tmp_path / "old"))
    assert result.exit_code == 1
    assert "expired" in result.stderr


def test_cert_import_nothing_usable(site: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run("-c", cfg(site), "cert", "import", str(tmp_path / "empty"))
    assert result.exit_code == 1
    assert "no certificate found" in result.stderr


# -- misc -------------------------------------------------------------------------------------


def test_version() -> None:
    result = run("version")
    assert result.exit_code == 0
    assert result.stdout.startswith("tercet ")
    assert "cryptography" in result.stdout
    assert run("--version").stdout.startswith("tercet ")


@pytest.mark.parametrize("args", [[], ["init"], ["cert"], ["cert", "import"], ["check"],
                                  ["cert", "show"], ["cert", "generate"], ["version"]])
def test_help_everywhere(args: list[str]) -> None:
    result = run(*args, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout


def test_usage_error_exit_2() -> None:
    assert run("no-such-command").exit_code == 2
    assert run("cert", "generate").exit_code == 2


def test_commands_can_be_added() -> None:
    assert {"init", "cert", "check", "version"} <= set(cli.commands)


# -- a real process ---------------------------------------------------------------------------


def test_subprocess_init_and_check(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    site = tmp_path / "site"

    def tercet(*args: str, module: str = "tercet.cli.main") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", module, *args], env=env, text=True,
                              capture_output=True, timeout=60, check=False)

    done = tercet("init", str(site), "--domain", "example.net")
    assert done.returncode == 0, done.stderr
    assert "Next steps" in done.stdout
    done = tercet("-c", str(site / "tercet.toml"), "check", module="tercet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no problems found" in done.stdout
    (site / "tercet.toml").write_text("scram_iterations = 1\n")
    done = tercet("-c", str(site / "tercet.toml"), "check")
    assert done.returncode == 1
    assert "scram_iterations: expected a value from 4096 to 1000000, found 1" in done.stdout
    assert tercet("frobnicate").returncode == 2


def test_a_piped_password_is_read_without_a_warning(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    site = tmp_path / "site"
    assert run("init", str(site), "--domain", "example.net").exit_code == 0

    def tercet(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tercet", "-c", str(site / "tercet.toml"),
                               *args], env=env, text=True, input=stdin, capture_output=True,
                              timeout=60, check=False)

    done = tercet("user", "add", "romeo@example.net", stdin="first secret\n")
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "created romeo@example.net" in done.stdout
    done = tercet("user", "passwd", "romeo@example.net", stdin="second secret\n")
    assert done.returncode == 0 and "Warning" not in done.stderr, done.stderr
    config = Config.load(site / "tercet.toml")

    async def check() -> tuple[bool, bool]:
        storage = StorageManager(StorageConfig.from_option(config.get("storage")),
                                 config.data_path)
        try:
            await storage.ready()
            provider = InternalHashedProvider(storage.open("example.net", "accounts", "keyval"))
            return (await provider.test_password("romeo", "second secret"),
                    await provider.test_password("romeo", "first secret"))
        finally:
            await storage.close()
    assert asyncio.run(check()) == (True, False)


def test_init_systemd_writes_a_unit_whose_command_runs(tmp_path: Path) -> None:
    result = run("init", str(tmp_path / "site"), "--domain", "example.net", "--systemd", "xmpp")
    assert result.exit_code == 0, result.output
    unit = (tmp_path / "site" / "tercet.service").read_text()
    fields = dict(line.split("=", 1) for line in unit.splitlines()
                  if "=" in line and not line.startswith("#"))
    assert fields["User"] == "xmpp" and fields["ReadWritePaths"] == f'"{tmp_path / "site"}"'
    assert fields["ExecReload"] == "/bin/kill -HUP $MAINPID"
    command = shlex.split(fields["ExecStart"])
    assert command[0] == sys.executable and command[-1] == "start"
    # The very command systemd will run, asked to check instead of start.
    done = subprocess.run([*command[:-1], "check"], capture_output=True, text=True,
                          timeout=60, check=False,
                          env=dict(os.environ, PYTHONPATH=str(SRC)))
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_names_a_module_that_does_not_exist(site: Path) -> None:
    config = site / "tercet.toml"
    config.write_text(config.read_text() + '\nmodules_enabled = ["muc_mamm"]\n')
    result = run("-c", str(config), "check", "--json")
    assert result.exit_code == 1
    [problem] = [p for p in json.loads(result.stdout)["problems"] if p["severity"] == "error"]
    assert "'muc_mamm' is neither built in nor an installed plugin" in problem["message"]
    assert "muc_mam" in problem["fix"] and "tercet plugin install muc_mamm" in problem["fix"]
