"""Peer certificate status against a private CA (net/certverify.py)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pki import CA  # noqa: E402

from tercet.net.certverify import TrustStore, identities, status  # noqa: E402

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


@pytest.fixture(scope="module")
def trust(ca: CA, tmp_path_factory: pytest.TempPathFactory) -> TrustStore:
    return TrustStore(str(ca.write(tmp_path_factory.mktemp("ca") / "ca.pem")), None,
                      system=False)


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"dns": ("a.test",)}, "valid"),
    ({"dns": ("*.test",)}, "name-mismatch"),           # "*.test" is too broad
    ({"dns": ("b.test",)}, "name-mismatch"),
    ({"dns": ("b.test",), "cn": "a.test"}, "name-mismatch"),  # never the CN with SANs
    ({"xmpp": ("a.test",)}, "valid"),
    ({"srv": ("_xmpp-server.a.test",)}, "valid"),
    ({"dns": ("a.test",), "expired": True}, "expired"),
    ({"dns": ("a.test",), "self_signed": True}, "untrusted"),
])
def test_status(ca: CA, trust: TrustStore, kwargs: dict[str, object],
                expected: str) -> None:
    issued = ca.issue(**kwargs)  # type: ignore[arg-type]
    assert status([issued.cert], "a.test", trust, NOW, chain_verified=False) == expected


def test_no_certificate_and_other_anchors(ca: CA, trust: TrustStore) -> None:
    assert status([], "a.test", trust, NOW, chain_verified=False) == "none"
    other = CA("Another CA").issue(("a.test",))
    assert status([other.cert], "a.test", trust, NOW, chain_verified=False) == "untrusted"
    # Inbound, OpenSSL already checked the chain: only expiry and the name remain.
    assert status([other.cert], "a.test", trust, NOW, chain_verified=True) == "valid"


def test_identities_reads_other_names(ca: CA) -> None:
    ids = identities(ca.issue(("a.test",), xmpp=("a.test",),
                              srv=("_xmpp-server.a.test",)).cert)
    assert ids.dns_ids == ("a.test",) and ids.xmpp_addrs == ("a.test",)
    assert ids.srv_ids == ("_xmpp-server.a.test",)
