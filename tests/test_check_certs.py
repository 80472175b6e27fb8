"""`tercet check certs` on generated certificates: valid, wrong name, expired, CA-issued
(trusted with --cafile), and an XmppAddr-only certificate (s2s but not c2s)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tercet.cli.check_cmds import OID_XMPP_ADDR
from tercet.cli.main import cli

NOW = dt.datetime.now(dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, sans: list[x509.GeneralName], *, days: tuple[int, int] = (-1, 90),
          issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
          ca: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(issuer[0].subject if issuer else _name(subject))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW + dt.timedelta(days=days[0]))
               .not_valid_after(NOW + dt.timedelta(days=days[1]))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    if issuer:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer[1].public_key()), critical=False)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(
        key.public_key()), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def _write(certs: Path, host: str, pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
           *extra: x509.Certificate) -> None:
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (pair[0], *extra))
    (certs / f"{host}.crt").write_bytes(pem)
    key = certs / f"{host}.key"
    key.write_bytes(pair[1].private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    key.chmod(0o600)


def _xmpp_addr(domain: str) -> x509.OtherName:
    value = domain.encode()
    return x509.OtherName(OID_XMPP_ADDR, bytes([0x0C, len(value)]) + value)


def test_check_certs(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = _cert("Test CA", [], days=(-1, 3650), ca=True)
    (tmp_path / "ca.pem").write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    _write(certs, "good.test", _cert("good.test", [x509.DNSName("good.test")], issuer=ca))
    _write(certs, "self.test", _cert("self.test", [x509.DNSName("self.test")]))
    _write(certs, "wrong.test", _cert("other.test", [x509.DNSName("other.test")], issuer=ca))
    _write(certs, "old.test", _cert("old.test", [x509.DNSName("old.test")],
                                    days=(-90, -1), issuer=ca))
    _write(certs, "soon.test", _cert("soon.test", [x509.DNSName("soon.test")],
                                     days=(-1, 5), issuer=ca))
    _write(certs, "addr.test", _cert("addr.test", [_xmpp_addr("addr.test")], issuer=ca))
    hosts = ["good", "self", "wrong", "old", "soon", "addr"]
    (tmp_path / "tercet.toml").write_text(
        'certificates = "certs"\ndata_path = "data"\n'
        + "".join(f'[virtualhosts."{h}.test"]\n' for h in hosts))

    result = CliRunner().invoke(cli, ["-c", str(tmp_path / "tercet.toml"), "check", "certs",
                                      "--json", "--cafile", str(tmp_path / "ca.pem")])
    assert result.exit_code == 1, result.output
    out = {h["host"]: h for h in json.loads(result.output)["hosts"]}

    def messages(host: str) -> list[tuple[str, str]]:
        return [(p["severity"], p["message"]) for p in out[host]["problems"]]

    good = out["good.test"]
    assert (good["c2s"], good["s2s"], good["chain"]) == (True, True, "trusted")
    assert good["problems"] == []
    assert out["self.test"]["chain"] == "self-signed"
    assert [s for s, _ in messages("self.test")] == ["warning"]
    wrong = out["wrong.test"]
    assert (wrong["c2s"], wrong["s2s"]) == (False, False)
    assert ("error", "not valid for clients of wrong.test (it covers other.test)") in \
        messages("wrong.test")
    assert any(s == "error" and m.startswith("expired on") for s, m in messages("old.test"))
    assert any(s == "warning" and m.startswith("expires on") for s, m in messages("soon.test"))
    addr = out["addr.test"]
    assert (addr["c2s"], addr["s2s"]) == (False, True)
    assert addr["names"] == ["xmpp:addr.test"]

    # Without the private CA, the chain is not trusted: a warning, not an error.
    result = CliRunner().invoke(cli, ["-c", str(tmp_path / "tercet.toml"), "check", "certs",
                                      "--json"])
    good = {h["host"]: h for h in json.loads(result.output)["hosts"]}["good.test"]
    assert good["chain"].startswith("untrusted")
    assert [p["severity"] for p in good["problems"]] == ["warning"]

    # Plain `tercet check` is unchanged, and text output works.
    (tmp_path / "tercet.toml").write_text('certificates = "certs"\ndata_path = "data"\n'
                                          '[virtualhosts."good.test"]\n')
    (tmp_path / "data").mkdir(mode=0o700)
    result = CliRunner().invoke(cli, ["-c", str(tmp_path / "tercet.toml"), "check", "certs",
                                      "--cafile", str(tmp_path / "ca.pem")])
    assert result.exit_code == 0, result.output
    assert "chain:       trusted" in result.output
    result = CliRunner().invoke(cli, ["-c", str(tmp_path / "tercet.toml"), "check"])
    assert result.exit_code == 0 and "no problems found" in result.output
