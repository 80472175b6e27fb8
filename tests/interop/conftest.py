"""Fixtures for tests with real peer servers in a private network namespace (see README.md).

``ns`` is a fresh :class:`netns.Netns` with its DNS responder running, ``pki`` a private CA
whose certificate every peer trusts, ``prosody`` and ``tercet`` factories of started Prosody
and Tercet peers. They need root, ``ip`` and ``setpriv`` (and Prosody for ``prosody``):
without them the tests are skipped, except under CI (``CI=true``), where a missing service is
a failure, never a skip. When a test fails, the tail of every peer's log, the DNS
responder's query log included, is attached to its report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import netns
import netns_prosody as prosody_peer
import netns_tercet as tercet_peer
import pytest
from netns_ca import PrivatePKI

#: The logs each test's fixtures registered, for the failure report.
LOGS = pytest.StashKey[list[tuple[str, Path]]]()
#: How much of each log a failure report shows.
LOG_TAIL_LINES = 150


def require(missing: list[str]) -> None:
    """Skip the test when something is missing, but fail it under CI."""
    if not missing:
        return
    message = "interop tests need " + "; ".join(missing)
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: services a test needs must be there)", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def netns_support() -> None:
    """Skip (or, under CI, fail) unless this machine can create namespaces."""
    require(netns.missing_requirements())


@pytest.fixture
def ns(request: pytest.FixtureRequest, netns_support: None) -> Iterator[netns.Netns]:
    namespace = netns.Netns()
    request.node.stash[LOGS] = namespace.logs
    try:
        yield namespace.create()
    finally:
        namespace.close()


@pytest.fixture
def pki(ns: netns.Netns) -> PrivatePKI:
    return PrivatePKI(ns.workdir / "pki")


@pytest.fixture
def prosody(ns: netns.Netns, pki: PrivatePKI
            ) -> Iterator[Callable[..., prosody_peer.Prosody]]:
    """``prosody("prosody-a.test", secure_auth=True, ...)``: a started Prosody peer (see
    :class:`netns_prosody.Prosody` for the options). All are stopped after the test."""
    require(prosody_peer.missing_requirements())
    started: list[prosody_peer.Prosody] = []

    def make(domain: str, **options: Any) -> prosody_peer.Prosody:
        peer = prosody_peer.Prosody(ns, pki, domain, **options)
        started.append(peer)
        return peer.start()

    yield make
    for peer in reversed(started):
        peer.stop()


@pytest.fixture
def tercet(ns: netns.Netns, pki: PrivatePKI) -> Iterator[Callable[..., tercet_peer.Tercet]]:
    """``tercet("tercet-a.test", users={"alice": "secret"}, ...)``: a started Tercet peer
    (see :class:`netns_tercet.Tercet` for the options), its accounts created before it
    starts. All are stopped after the test."""
    started: list[tercet_peer.Tercet] = []

    def make(domain: str, *, users: dict[str, str] | None = None,
             **options: Any) -> tercet_peer.Tercet:
        peer = tercet_peer.Tercet(ns, pki, domain, **options)
        started.append(peer)
        for user, password in (users or {}).items():
            peer.add_user(user, password)
        return peer.start()

    yield make
    for peer in reversed(started):
        peer.stop()


def _tail(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines()
    skipped = len(lines) - LOG_TAIL_LINES
    head = [f"[... {skipped} earlier lines in {path}]"] if skipped > 0 else []
    return "\n".join(head + lines[-LOG_TAIL_LINES:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    logs = item.stash.get(LOGS, None)
    # Before teardown: the peers' directories still exist.
    if report.failed and report.when in ("setup", "call") and logs:
        for title, path in logs:
            if path.exists():
                report.sections.append((title, _tail(path)))
