"""Certificates on disk: generate, import, find, describe and check them.

Layout of the certificates directory (the same conventions Prosody uses)::

    <dir>/<host>.crt, <dir>/<host>.key          one pair per host (PEM; the .crt may hold
                                                the whole chain, leaf first)
    <dir>/*.<parent>.crt, .key                  a wildcard certificate for the parent domain
    <dir>/<host>/fullchain.pem, privkey.pem     a certbot-style directory

Host names are used in their lower-case U-label form, like everywhere in Tercet.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import idna
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tercet.core.config import Config, normalize_host

__all__ = [
    "CertError",
    "CertProblem",
    "certificate_for_host",
    "certificate_problems",
    "check_certificate",
    "describe",
    "find_certificate",
    "generate_self_signed",
    "import_certificates",
    "tls_server_end_point",
]

#: Warn when a certificate expires within this many days.
EXPIRY_WARNING_DAYS = 14

PrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
Clock = Callable[[], dt.datetime]


class CertError(Exception):
    """An operation on certificate files failed; the message is meant for the operator."""


@dataclass(frozen=True, slots=True)
class CertProblem:
    """What is wrong (``message``) and what to do about it (``fix``)."""

    severity: Literal["error", "warning"]
    message: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.message}; {self.fix}" if self.fix else self.message


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _a_label(host: str) -> str:
    """ASCII (A-label) form used inside certificates."""
    return str(idna.encode(host, uts46=True).decode("ascii")).lower()


def _file_host(dns_name: str) -> str:
    """U-label form used for file names; keeps a leading wildcard label."""
    wildcard = dns_name.startswith("*.")
    name = dns_name[2:] if wildcard else dns_name
    try:
        name = normalize_host(name)
    except ValueError:
        name = name.lower()
    return f"*.{name}" if wildcard else name


# --------------------------------------------------------------------------------------
# Writing files


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write atomically; the file has ``mode`` from the moment it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def generate_self_signed(
    host: str, dir: str | os.PathLike[str], *, days: int = 365, overwrite: bool = False,
    now: Clock = _utcnow,
) -> tuple[Path, Path]:
    """Create ``<dir>/<host>.crt`` and ``<host>.key`` (EC P-256, SAN = host, key mode 0600)."""
    try:
        name = normalize_host(host)
        ascii_name = _a_label(name)
    except (ValueError, idna.IDNAError) as exc:
        raise CertError(f"{host!r} is not a valid host name: {exc}") from None
    directory = Path(dir)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    if not overwrite and (cert_path.exists() or key_path.exists()):
        raise CertError(f"{cert_path} or {key_path} already exists; "
                        "remove them or pass overwrite (--force) to replace them")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ascii_name)])
    start = now() - dt.timedelta(minutes=5)          # tolerate small clock skew
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(ascii_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_file(key_path, _key_pem(key), 0o600)
    _write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


# --------------------------------------------------------------------------------------
# Reading files


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertError(f"cannot read {path}: {exc.strerror}") from None


def _load_chain(path: Path) -> list[x509.Certificate]:
    data = _read(path)
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        try:
            chain = [x509.load_der_x509_certificate(data)]
        except ValueError:
            raise CertError(f"{path} holds no PEM or DER certificate") from None
    return chain


def _load_key(path: Path) -> PrivateKey:
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CertError(f"{path} is encrypted with a passphrase; store it unencrypted "
                        "(readable only by the server's user)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertError(f"{path} holds no usable PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
                      | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        kind = type(key).__name__
        if "DSA" in kind.upper() and "ECDSA" not in kind.upper():
            # TLS 1.3 has no DSA signatures, and current libraries deprecate DSA.
            raise CertError(f"{path} holds a DSA key, which TLS 1.3 cannot use; make an "
                            "RSA (3072 bits) or ECDSA (P-256) key and certificate instead")
        raise CertError(f"{path} holds a {kind}, not a certificate key")
    return key


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo))


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [n.lower() for n in san.value.get_values_for_type(x509.DNSName)]


def _common_names(cert: x509.Certificate) -> list[str]:
    return [str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _matches_host(pattern: str, host: str) -> bool:
    """RFC 6125 §6.4: a wildcard stands for exactly one whole left-most label."""
    if pattern == host:
        return True
    if pattern.startswith("*."):
        label, dot, parent = host.partition(".")
        return bool(label) and bool(dot) and parent == pattern[2:]
    return False


def _not_after(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_after_utc


def _not_before(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_before_utc


# --------------------------------------------------------------------------------------
# Import


@dataclass(frozen=True, slots=True)
class _Pair:
    chain: list[x509.Certificate]
    key: PrivateKey
    source: Path


def _candidate_files(
    paths: Iterable[str | os.PathLike[str]],
) -> tuple[list[tuple[Path, bool]], list[_Pair]]:
    """Loose files to pair up (with whether the operator named them), and certbot-style
    directories already paired."""
    loose: list[tuple[Path, bool]] = []
    pairs: list[_Pair] = []
    for item in map(Path, paths):
        if item.is_file():
            loose.append((item, True))
        elif _is_certbot_dir(item):
            pairs.append(_certbot_pair(item))
        elif item.is_dir():
            for child in sorted(item.iterdir()):
                if _is_certbot_dir(child):
                    pairs.append(_certbot_pair(child))
                elif child.is_file() and child.suffix in (".crt", ".pem", ".key", ".cer"):
                    loose.append((child, False))
        else:
            raise CertError(f"{item} does not exist")
    return loose, pairs


def _is_certbot_dir(path: Path) -> bool:
    return (path / "fullchain.pem").is_file() and (path / "privkey.pem").is_file()


def _certbot_pair(directory: Path) -> _Pair:
    chain = _load_chain(directory / "fullchain.pem")
    key = _load_key(directory / "privkey.pem")
    if _spki(chain[0].public_key()) != _spki(key.public_key()):
        raise CertError(f"{directory}/privkey.pem does not match {directory}/fullchain.pem")
    return _Pair(chain, key, directory)


def _pair_loose(files: list[tuple[Path, bool]]) -> list[_Pair]:
    """Match each certificate file with the key file holding its public key. Certificates
    found by scanning a directory without a matching key (CA files) are skipped."""
    keys: dict[bytes, PrivateKey] = {}
    chains: list[tuple[Path, bool, list[x509.Certificate]]] = []
    for path, explicit in files:
        data = _read(path)
        if b"PRIVATE KEY-----" in data:
            key = _load_key(path)
            keys[_spki(key.public_key())] = key
        if b"CERTIFICATE-----" in data or path.suffix in (".crt", ".cer"):
            chains.append((path, explicit, _load_chain(path)))
    pairs = []
    for path, explicit, chain in chains:
        match = keys.get(_spki(chain[0].public_key()))
        if match is not None:
            pairs.append(_Pair(chain, match, path))
        elif explicit:
            raise CertError(f"no private key among the given files matches {path}; "
                            "pass the key file too")
    return pairs


def import_certificates(
    paths: Iterable[str | os.PathLike[str]], dest_dir: str | os.PathLike[str],
    *, progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Copy certificates with their keys into ``dest_dir`` as ``<host>.crt``/``<host>.key``.

    ``paths`` may name PEM files (certificates and keys, paired by public key) or
    directories: a certbot-style one with fullchain.pem/privkey.pem, or one holding such
    directories (``/etc/letsencrypt/live``) or loose files. Each certificate is stored once
    per SAN DNS name. Returns the host names written.
    """
    loose, pairs = _candidate_files(paths)
    pairs += _pair_loose(loose)
    if not pairs:
        raise CertError("no certificate found in " + ", ".join(str(p) for p in paths))
    dest = Path(dest_dir)
    written: list[str] = []
    for pair in pairs:
        names = _dns_names(pair.chain[0]) or _common_names(pair.chain[0])
        chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pair.chain)
        for name in names:
            host = _file_host(name)
            if progress is not None:
                progress(f"{pair.source} -> {dest / host}.crt")
            _write_file(dest / f"{host}.key", _key_pem(pair.key), 0o600)
            _write_file(dest / f"{host}.crt", chain_pem, 0o644)
            written.append(host)
    return written


# --------------------------------------------------------------------------------------
# Lookup


def find_certificate(certs_dir: str | os.PathLike[str], host: str) -> tuple[Path, Path] | None:
    """The certificate and key for ``host``: ``<host>.crt``, then ``*.<parent>.crt``,
    then ``<host>/fullchain.pem``."""
    directory = Path(certs_dir)
    name = _file_host(host)
    candidates = [(directory / f"{name}.crt", directory / f"{name}.key")]
    if "." in name:
        wildcard = "*." + name.split(".", 1)[1]
        candidates.append((directory / f"{wildcard}.crt", directory / f"{wildcard}.key"))
    candidates.append((directory / name / "fullchain.pem", directory / name / "privkey.pem"))
    for cert, key in candidates:
        if cert.is_file() and key.is_file():
            return cert, key
    return None


def certificate_for_host(config: Config, host: str) -> tuple[Path, Path] | None:
    """The host's configured ``certificate``/``key``, else what the certificates
    directory holds for it."""
    cert, key = config.resolve_path("certificate", host), config.resolve_path("key", host)
    if cert is not None and key is not None:
        return cert, key
    directory = config.resolve_path("certificates", host)
    return find_certificate(directory, host) if directory is not None else None


# --------------------------------------------------------------------------------------
# Inspection


def _key_description(key: Any) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def describe(cert_path: str | os.PathLike[str]) -> dict[str, Any]:
    """JSON-ready facts about the leaf certificate of a file; raises :class:`CertError`."""
    path = Path(cert_path)
    chain = _load_chain(path)
    cert = chain[0]
    fingerprint = cert.fingerprint(hashes.SHA256()).hex().upper()
    return {
        "path": str(path),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "sans": _dns_names(cert),
        "not_before": _not_before(cert).isoformat(),
        "not_after": _not_after(cert).isoformat(),
        "self_signed": _is_self_signed(cert),
        "sha256": ":".join(fingerprint[i:i + 2] for i in range(0, len(fingerprint), 2)),
        "serial": format(cert.serial_number, "x"),
        "key": _key_description(cert.public_key()),
        "chain_length": len(chain),
    }


def certificate_problems(
    cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str], host: str,
    *, now: Clock = _utcnow, warn_days: int = EXPIRY_WARNING_DAYS,
) -> list[CertProblem]:
    """Everything wrong with a certificate/key pair for ``host``, with severities."""
    cert_file, key_file = Path(cert_path), Path(key_path)
    try:
        cert = _load_chain(cert_file)[0]
        key = _load_key(key_file)
    except CertError as exc:
        return [CertProblem("error", str(exc))]
    problems = _validity_problems(cert_file, cert, now(), warn_days)
    problems += _name_problems(cert_file, cert, host)
    if _spki(cert.public_key()) != _spki(key.public_key()):
        problems.append(CertProblem("error", f"{key_file} is not the private key of {cert_file}",
                                    "import the certificate and its key again as a pair"))
    if os.name == "posix" and key_file.stat().st_mode & 0o077:
        problems.append(CertProblem("warning", f"{key_file} is readable by other users",
                                    f"run: chmod 600 {key_file}"))
    return problems


def _validity_problems(path: Path, cert: x509.Certificate, now: dt.datetime,
                       warn_days: int) -> list[CertProblem]:
    after, before = _not_after(cert), _not_before(cert)
    if now > after:
        days = (now - after).days
        return [CertProblem("error", f"{path} expired on {after:%Y-%m-%d} ({days} days ago)",
                            "renew it, then run `tercet cert import`")]
    if now < before:
        return [CertProblem("error", f"{path} is not valid before {before:%Y-%m-%d %H:%M} UTC",
                            "check the system clock")]
    left = after - now
    if left < dt.timedelta(days=warn_days):
        return [CertProblem("warning", f"{path} expires on {after:%Y-%m-%d} (in {left.days} "
                            "days)", "renew it soon")]
    return []


def _name_problems(path: Path, cert: x509.Certificate, host: str) -> list[CertProblem]:
    wildcard = host.startswith("*.")      # a wildcard file name checks its own pattern
    try:
        wanted = _a_label(normalize_host(host[2:] if wildcard else host))
    except (ValueError, idna.IDNAError):
        return [CertProblem("error", f"{host!r} is not a valid host name")]
    names = _dns_names(cert)
    if not names:
        return [CertProblem("error", f"{path} has no subjectAltName DNS names",
                            f"get a certificate that lists {host}")]
    if wildcard:
        wanted = "*." + wanted
    if wanted not in names and not any(_matches_host(n, wanted) for n in names):
        return [CertProblem("error", f"{path} is not valid for {host} (it covers "
                            f"{', '.join(names)})", f"get a certificate that lists {host}")]
    return []


def check_certificate(cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str],
                      host: str, *, now: Clock = _utcnow) -> list[str]:
    """Problems as plain messages; empty if the pair is fine for ``host``."""
    return [str(p) for p in certificate_problems(cert_path, key_path, host, now=now)]


# --------------------------------------------------------------------------------------
# Channel binding


def tls_server_end_point(cert_der: bytes) -> bytes:
    """RFC 5929 §4.1 ``tls-server-end-point`` channel binding data for a certificate.

    The hash of the DER certificate with its signature's hash algorithm, SHA-256 when that
    is MD5 or SHA-1. Raises ValueError when the binding is undefined (signatures without a
    separate hash, e.g. Ed25519): then ``-PLUS`` with this binding must not be offered.
    """
    cert = x509.load_der_x509_certificate(cert_der)
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        raise ValueError("tls-server-end-point is undefined for this signature algorithm")
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert_der)
    return digest.finalize()
