"""tercet.core.certs: generation, import, lookup, description and checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from tercet.core import certs
from tercet.core.certs import (
    CertError,
    certificate_for_host,
    certificate_problems,
    check_certificate,
    describe,
    find_certificate,
    generate_self_signed,
    import_certificates,
    tls_server_end_point,
)
from tercet.core.config import Config

NOW = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def make_cert(
    names: list[str], *, key: Key | None = None, issuer: tuple[x509.Name, Key] | None = None,
    not_before: dt.datetime = NOW - dt.timedelta(days=30), days: int = 90,
    algorithm: hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None = None, ca: bool = False,
) -> tuple[x509.Certificate, Key]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "x")])
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    if algorithm is None and not isinstance(issuer_key, ed25519.Ed25519PrivateKey):
        algorithm = hashes.SHA256()
    return builder.sign(issuer_key, algorithm), key


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: Key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_pair(directory: Path, name: str, cert: x509.Certificate, key: Key) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(pem(cert))
    key_path.write_bytes(key_pem(key))
    key_path.chmod(0o600)
    return cert_path, key_path


def certbot_dir(root: Path, host: str) -> Path:
    """A CA-issued leaf in the layout of /etc/letsencrypt/live/<host>."""
    ca_cert, ca_key = make_cert(["Test CA"], ca=True, days=3650)
    leaf, leaf_key = make_cert([host, f"www.{host}"], issuer=(ca_cert.subject, ca_key))
    live = root / host
    live.mkdir(parents=True)
    (live / "cert.pem").write_bytes(pem(leaf))
    (live / "chain.pem").write_bytes(pem(ca_cert))
    (live / "fullchain.pem").write_bytes(pem(leaf) + pem(ca_cert))
    (live / "privkey.pem").write_bytes(key_pem(leaf_key))
    return live


# -- generate / describe -------------------------------------------------------------------


def test_generate_self_signed(tmp_path: Path) -> None:
    cert_path, key_path = generate_self_signed("Example.ORG", tmp_path / "certs")
    assert cert_path == tmp_path / "certs" / "example.org.crt"
    assert key_path == tmp_path / "certs" / "example.org.key"
    assert key_path.stat().st_mode & 0o777 == 0o600
    info = describe(cert_path)
    assert info["sans"] == ["example.org"]
    assert info["subject"] == info["issuer"] == "CN=example.org"
    assert info["self_signed"] is True
    assert info["key"] == "EC secp256r1"
    lifetime = dt.datetime.fromisoformat(info["not_after"]) - dt.datetime.fromisoformat(
        info["not_before"])
    assert lifetime == dt.timedelta(days=365)
    der = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_bytes(
        serialization.Encoding.DER)
    assert info["sha256"].replace(":", "").lower() == hashlib.sha256(der).hexdigest()
    assert check_certificate(cert_path, key_path, "example.org") == []


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    generate_self_signed("example.org", tmp_path)
    with pytest.raises(CertError, match="already exists"):
        generate_self_signed("example.org", tmp_path)
    generate_self_signed("example.org", tmp_path, overwrite=True)


def test_generate_idn_host(tmp_path: Path) -> None:
    cert_path, _ = generate_self_signed("bücher.example", tmp_path)
    assert cert_path.name == "bücher.example.crt"
    assert describe(cert_path)["sans"] == ["xn--bcher-kva.example"]
    assert check_certificate(cert_path, tmp_path / "bücher.example.key", "bücher.example") == []


def test_generate_rejects_bad_host(tmp_path: Path) -> None:
    with pytest.raises(CertError, match="not a valid host name"):
        generate_self_signed("bad host", tmp_path)


def test_describe_ca_issued_chain(tmp_path: Path) -> None:
    live = certbot_dir(tmp_path, "example.org")
    info = describe(live / "fullchain.pem")
    assert info["self_signed"] is False
    assert info["issuer"] == "CN=Test CA"
    assert info["chain_length"] == 2
    assert info["sans"] == ["example.org", "www.example.org"]


def test_describe_unreadable(tmp_path: Path) -> None:
    (tmp_path / "junk.crt").write_text("not a certificate")
    with pytest.raises(CertError, match="no PEM or DER certificate"):
        describe(tmp_path / "junk.crt")


# -- check -----------------------------------------------------------------------------------


def test_check_expired(tmp_path: Path) -> None:
    cert, key = make_cert(["example.org"], not_before=NOW - dt.timedelta(days=100), days=90)
    paths = write_pair(tmp_path, "example.org", cert, key)
    [problem] = certificate_problems(*paths, "example.org", now=lambda: NOW)
    assert problem.severity == "error"
    assert "expired on 2030-05-22 (10 days ago)" in problem.message


def test_check_expires_soon(tmp_path: Path) -> None:
    cert, key = make_cert(["example.org"], not_before=NOW - dt.timedelta(days=80), days=90)
    paths = write_pair(tmp_path, "example.org", cert, key)
    [problem] = certificate_problems(*paths, "example.org", now=lambda: NOW)
    assert problem.severity == "warning"
    assert "in 10 days" in problem.message


def test_check_not_yet_valid(tmp_path: Path) -> None:
    cert, key = make_cert(["example.org"], not_before=NOW + dt.timedelta(days=1))
    paths = write_pair(tmp_path, "example.org", cert, key)
    [message] = check_certificate(*paths, "example.org", now=lambda: NOW)
    assert "not valid before" in message


def test_check_key_mismatch(tmp_path: Path) -> None:
    cert, _ = make_cert(["example.org"])
    other = ec.generate_private_key(ec.SECP256R1())
    paths = write_pair(tmp_path, "example.org", cert, other)
    [message] = check_certificate(*paths, "example.org", now=lambda: NOW)
    assert "is not the private key of" in message


def test_check_host_not_in_san(tmp_path: Path) -> None:
    cert, key = make_cert(["other.org"])
    paths = write_pair(tmp_path, "x", cert, key)
    [message] = check_certificate(*paths, "example.org", now=lambda: NOW)
    assert "not valid for example.org (it covers other.org)" in message


def test_check_no_san(tmp_path: Path) -> None:
    cert, key = make_cert([])
    paths = write_pair(tmp_path, "x", cert, key)
    [message] = check_certificate(*paths, "example.org", now=lambda: NOW)
    assert "no subjectAltName" in message


@pytest.mark.parametrize(("host", "ok"), [
    ("conference.example.org", True),
    ("example.org", False),                 # a wildcard does not cover its parent
    ("a.b.example.org", False),             # nor more than one label
])
def test_check_wildcard(tmp_path: Path, host: str, ok: bool) -> None:
    cert, key = make_cert(["*.example.org"])
    paths = write_pair(tmp_path, "*.example.org", cert, key)
    assert (check_certificate(*paths, host, now=lambda: NOW) == []) is ok


def test_check_unreadable_and_key_permissions(tmp_path: Path) -> None:
    cert, key = make_cert(["example.org"])
    cert_path, key_path = write_pair(tmp_path, "example.org", cert, key)
    [missing] = check_certificate(tmp_path / "nope.crt", key_path, "example.org")
    assert "cannot read" in missing
    key_path.chmod(0o644)
    [problem] = certificate_problems(cert_path, key_path, "example.org", now=lambda: NOW)
    assert problem.severity == "warning"
    assert "chmod 600" in problem.fix


def test_check_encrypted_key(tmp_path: Path) -> None:
    cert, key = make_cert(["example.org"])
    cert_path, key_path = write_pair(tmp_path, "example.org", cert, key)
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    [message] = check_certificate(cert_path, key_path, "example.org")
    assert "passphrase" in message


@pytest.mark.filterwarnings("ignore:DSA is deprecated")
def test_check_dsa_key_names_the_fix(tmp_path: Path) -> None:
    cert, key = make_cert(["example.org"])
    cert_path, key_path = write_pair(tmp_path, "example.org", cert, key)
    # A DSA key made by openssl, as an operator with an old setup would have one.
    subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DSA", "-pkeyopt",
                    "dsa_paramgen_bits:2048", "-out", str(tmp_path / "dsa.param")],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "genpkey", "-paramfile", str(tmp_path / "dsa.param"),
                    "-out", str(key_path)], check=True, capture_output=True)
    [message] = check_certificate(cert_path, key_path, "example.org")
    assert "DSA key" in message and "ECDSA" in message


# -- import ----------------------------------------------------------------------------------


def test_import_certbot_dir(tmp_path: Path) -> None:
    live = certbot_dir(tmp_path / "live", "example.org")
    dest = tmp_path / "certs"
    seen: list[str] = []
    hosts = import_certificates([live], dest, progress=seen.append)
    assert hosts == ["example.org", "www.example.org"]
    assert len(seen) == 2
    for host in hosts:
        assert (dest / f"{host}.key").stat().st_mode & 0o777 == 0o600
        assert describe(dest / f"{host}.crt")["chain_length"] == 2
        assert check_certificate(dest / f"{host}.crt", dest / f"{host}.key", host,
                                 now=lambda: NOW) == []


def test_import_live_dir_of_certbot_dirs(tmp_path: Path) -> None:
    certbot_dir(tmp_path / "live", "a.example")
    certbot_dir(tmp_path / "live", "b.example")
    (tmp_path / "live" / "README").write_text("certbot readme")
    hosts = import_certificates([tmp_path / "live"], tmp_path / "certs")
    assert sorted(hosts) == ["a.example", "b.example", "www.a.example", "www.b.example"]


def test_import_loose_files_paired_by_public_key(tmp_path: Path) -> None:
    cert1, key1 = make_cert(["one.example"])
    cert2, key2 = make_cert(["two.example"])
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.pem").write_bytes(pem(cert1))
    (src / "b.pem").write_bytes(pem(cert2))
    (src / "first.key").write_bytes(key_pem(key2))     # names do not have to match
    (src / "second.key").write_bytes(key_pem(key1))
    files = [src / "a.pem", src / "b.pem", src / "first.key", src / "second.key"]
    hosts = import_certificates(files, tmp_path / "certs")
    assert sorted(hosts) == ["one.example", "two.example"]
    assert check_certificate(tmp_path / "certs" / "one.example.crt",
                             tmp_path / "certs" / "one.example.key", "one.example",
                             now=lambda: NOW) == []


def test_import_wildcard_is_found_for_subdomains(tmp_path: Path) -> None:
    cert, key = make_cert(["*.example.org"])
    src = write_pair(tmp_path / "src", "wild", cert, key)
    assert import_certificates(src, tmp_path / "certs") == ["*.example.org"]
    found = find_certificate(tmp_path / "certs", "conference.example.org")
    assert found == (tmp_path / "certs" / "*.example.org.crt",
                     tmp_path / "certs" / "*.example.org.key")


def test_import_without_matching_key(tmp_path: Path) -> None:
    cert, _ = make_cert(["example.org"])
    (tmp_path / "a.crt").write_bytes(pem(cert))
    with pytest.raises(CertError, match="no private key"):
        import_certificates([tmp_path / "a.crt"], tmp_path / "certs")


def test_import_certbot_dir_with_wrong_key(tmp_path: Path) -> None:
    live = certbot_dir(tmp_path, "example.org")
    (live / "privkey.pem").write_bytes(key_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(CertError, match="does not match"):
        import_certificates([live], tmp_path / "certs")


def test_import_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CertError, match="no certificate found"):
        import_certificates([tmp_path / "empty"], tmp_path / "certs")


# -- lookup ----------------------------------------------------------------------------------


def test_find_certificate_order(tmp_path: Path) -> None:
    assert find_certificate(tmp_path, "chat.example.org") is None
    live = certbot_dir(tmp_path, "chat.example.org")
    assert find_certificate(tmp_path, "chat.example.org") == (
        live / "fullchain.pem", live / "privkey.pem")
    cert, key = make_cert(["*.example.org"])
    wild = write_pair(tmp_path, "*.example.org", cert, key)
    assert find_certificate(tmp_path, "chat.example.org") == wild
    cert, key = make_cert(["chat.example.org"])
    exact = write_pair(tmp_path, "chat.example.org", cert, key)
    assert find_certificate(tmp_path, "Chat.Example.org") == exact


def test_certificate_for_host_prefers_configured_files(tmp_path: Path) -> None:
    generate_self_signed("a.example", tmp_path / "certs")
    generate_self_signed("special", tmp_path / "elsewhere")
    config = Config.from_text(
        '[virtualhosts."a.example"]\n[virtualhosts."b.example"]\n'
        'certificate = "elsewhere/special.crt"\nkey = "elsewhere/special.key"\n',
        tmp_path / "tercet.toml")
    assert certificate_for_host(config, "a.example") == (
        tmp_path / "certs" / "a.example.crt", tmp_path / "certs" / "a.example.key")
    assert certificate_for_host(config, "b.example") == (
        tmp_path / "elsewhere" / "special.crt", tmp_path / "elsewhere" / "special.key")
    assert certificate_for_host(config, "c.example") is None


# -- channel binding -------------------------------------------------------------------------


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_tls_server_end_point_uses_the_signature_hash() -> None:
    cert, _ = make_cert(["example.org"], algorithm=hashes.SHA384())
    assert tls_server_end_point(der(cert)) == hashlib.sha384(der(cert)).digest()
    cert, _ = make_cert(["example.org"], algorithm=hashes.SHA512())
    assert tls_server_end_point(der(cert)) == hashlib.sha512(der(cert)).digest()


# DER AlgorithmIdentifier OIDs (RFC 8017 appendix A.2.4); all encode to the same length.
_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")
_WEAK_RSA = {"sha1": bytes.fromhex("06092a864886f70d010105"),
             "md5": bytes.fromhex("06092a864886f70d010104")}


@pytest.mark.parametrize("weak", ["sha1", "md5"])
def test_tls_server_end_point_upgrades_md5_and_sha1_to_sha256(weak: str) -> None:
    # Current OpenSSL will not sign with SHA-1/MD5, so relabel a SHA-256 signature: the
    # binding only reads the algorithm, it never verifies the signature.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert, _ = make_cert(["example.org"], key=key)
    data = der(cert).replace(_SHA256_RSA, _WEAK_RSA[weak])
    algorithm = x509.load_der_x509_certificate(data).signature_hash_algorithm
    assert algorithm is not None and algorithm.name == weak
    assert tls_server_end_point(data) == hashlib.sha256(data).digest()


def test_tls_server_end_point_undefined_for_ed25519() -> None:
    cert, _ = make_cert(["example.org"], key=ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(ValueError, match="undefined"):
        tls_server_end_point(der(cert))


def test_module_exports() -> None:
    for name in certs.__all__:
        assert hasattr(certs, name)
