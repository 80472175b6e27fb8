"""Finding and reaching a peer server: asynchronous DNS, then Happy Eyeballs.

``Resolver`` looks up SRV, AAAA and A records with dnspython's asyncio resolver, using the
system's ``/etc/resolv.conf`` unless the operator names nameservers (``dns_nameservers``);
addresses in ``/etc/hosts`` win over DNS. There is no built-in public nameserver: without a
configuration, only the hosts file answers.

``connect_domain`` orders the targets (``tercet.protocol.srv``) and tries them one after the
other; across the addresses of one target it races connection attempts started 250 ms apart
(RFC 8305 §5), first success wins and the others are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from tercet.protocol.srv import (
    SERVICE_DIRECT_TLS,
    SERVICE_STARTTLS,
    NoService,
    SrvRecord,
    Target,
    plan_targets,
)

log = logging.getLogger("tercet.dns")

#: RFC 8305 §5: "Connection Attempt Delay" recommended default 250 ms.
ATTEMPT_DELAY = 0.25
#: Seconds one TCP connection attempt may take (RFC 8305 §5 leaves it to the
#: implementation; Prosody's connect_timeout is 20 s).
CONNECT_TIMEOUT = 20.0
#: Overall bound on resolving and connecting to one domain, all targets together.
OVERALL_TIMEOUT = 60.0
#: Seconds a single DNS query may take (resolver lifetime).
DNS_TIMEOUT = 5.0
#: RFC 2782 places no limit on the number of records; we try at most this many targets
#: and this many addresses per target, so one domain cannot make us loop without bound.
MAX_TARGETS = 16
MAX_ADDRESSES = 16


class ResolveError(Exception):
    """The domain does not resolve to any address (remote-server-not-found)."""


class ConnectError(Exception):
    """Addresses were found but no connection was made; ``timeout`` when the bound hit."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


def parse_nameserver(text: str) -> tuple[str, int]:
    """``"127.0.0.1"``, ``"127.0.0.1:5353"``, ``"::1"`` or ``"[::1]:5353"`` -> (ip, port).

    Raises ValueError when it is not an IP address (names would need a resolver)."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = int(rest.lstrip(":"))
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return host, port


class HostsFile:
    """Addresses from ``/etc/hosts`` (re-read when it changes)."""

    def __init__(self, path: Path = Path("/etc/hosts")) -> None:
        self.path = path
        self._mtime: float | None = None
        self._table: dict[str, list[str]] = {}

    def lookup(self, name: str) -> list[str]:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return []
        if mtime != self._mtime:
            self._table = self._parse(self.path.read_text(errors="replace"))
            self._mtime = mtime
        return list(self._table.get(name.lower().rstrip("."), ()))

    @staticmethod
    def _parse(text: str) -> dict[str, list[str]]:
        table: dict[str, list[str]] = {}
        for line in text.splitlines():
            fields = line.partition("#")[0].split()
            if len(fields) < 2:
                continue
            try:
                ipaddress.ip_address(fields[0].partition("%")[0])
            except ValueError:
                continue
            for name in fields[1:]:
                addrs = table.setdefault(name.lower().rstrip("."), [])
                if fields[0] not in addrs:
                    addrs.append(fields[0])
        return table


class Resolver:
    """SRV and address lookups for s2s (RFC 6120 §3.2), all asynchronous."""

    def __init__(self, nameservers: Sequence[str] = (), *, hosts: HostsFile | None = None,
                 timeout: float = DNS_TIMEOUT) -> None:
        self.hosts = hosts if hosts is not None else HostsFile()
        self._dns: dns.asyncresolver.Resolver | None
        if nameservers:
            res = dns.asyncresolver.Resolver(configure=False)
            res.nameservers = [dns.nameserver.Do53Nameserver(*parse_nameserver(n))
                               for n in nameservers]
            self._dns = res
        else:
            try:
                self._dns = dns.asyncresolver.Resolver()  # /etc/resolv.conf
            except dns.resolver.NoResolverConfiguration:
                log.warning("no nameserver configured (/etc/resolv.conf): only /etc/hosts "
                            "resolves peer names")
                self._dns = None
        if self._dns is not None:
            self._dns.lifetime = timeout
            self._dns.timeout = timeout

    async def _query(self, name: str, rdtype: str) -> list[object] | None:
        """The answer's records; None when the name or type does not exist."""
        if self._dns is None:
            return None
        try:
            answer = await self._dns.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            log.info("DNS %s %s failed: %s", rdtype, name, exc)
            return None
        return list(answer)

    @property
    def has_nameservers(self) -> bool:
        """Whether DNS can be asked at all (else only the hosts file answers)."""
        return self._dns is not None

    async def dns_addresses(self, host: str) -> list[str]:
        """``host``'s AAAA and A records from DNS only, ignoring the hosts file: what a
        remote peer would find (``tercet check dns``)."""
        v6, v4 = await asyncio.gather(self._query(host, "AAAA"), self._query(host, "A"))
        return [r.to_text() for r in (v6 or []) + (v4 or [])]  # type: ignore[attr-defined]

    async def srv(self, name: str) -> list[SrvRecord] | None:
        found = await self._query(name, "SRV")
        if found is None:
            return None
        return [SrvRecord(int(r.priority), int(r.weight), int(r.port),  # type: ignore[attr-defined]
                          r.target.to_text(omit_final_dot=True) or ".")  # type: ignore[attr-defined]
                for r in found]

    async def addresses(self, host: str) -> list[str]:
        """Addresses of ``host``, interleaved IPv6/IPv4 (RFC 8305 §4), hosts file first."""
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        from_hosts = self.hosts.lookup(host)
        if from_hosts:
            return _interleave(from_hosts)[:MAX_ADDRESSES]
        v6, v4 = await asyncio.gather(self._query(host, "AAAA"), self._query(host, "A"))
        addrs = [r.to_text() for r in (v6 or []) + (v4 or [])]  # type: ignore[attr-defined]
        return _interleave(addrs)[:MAX_ADDRESSES]

    async def targets(self, domain: str,
                      rand: Callable[[int], int] | None = None) -> list[Target]:
        """Ordered targets for ``domain`` (raises NoService for a "." SRV target)."""
        tls, plain = await asyncio.gather(self.srv(f"{SERVICE_DIRECT_TLS}.{domain}."),
                                          self.srv(f"{SERVICE_STARTTLS}.{domain}."))
        return plan_targets(domain, tls, plain, rand)[:MAX_TARGETS]


def _interleave(addrs: list[str]) -> list[str]:
    """RFC 8305 §4: alternate address families, IPv6 first."""
    v6 = [a for a in addrs if ":" in a]
    v4 = [a for a in addrs if ":" not in a]
    out: list[str] = []
    for i in range(max(len(v6), len(v4))):
        out.extend(x[i] for x in (v6, v4) if i < len(x))
    return out


@dataclass(frozen=True, slots=True)
class Connected:
    """A connected TCP socket and the target it reached."""

    sock: socket.socket
    target: Target
    address: str


async def _attempt(address: str, port: int, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def happy_eyeballs(addresses: Sequence[str], port: int, *,
                         delay: float = ATTEMPT_DELAY,
                         timeout: float = CONNECT_TIMEOUT) -> tuple[socket.socket, str]:
    """Race connections to ``addresses`` started ``delay`` apart (RFC 8305 §5); a failure
    starts the next attempt at once. The first to connect wins; the rest are cancelled
    and closed. Raises ConnectError when all fail."""
    pending: dict[asyncio.Task[socket.socket], str] = {}
    errors: list[str] = []
    index = 0
    winner: tuple[socket.socket, str] | None = None
    try:
        while winner is None:
            if index < len(addresses):
                addr = addresses[index]
                index += 1
                pending[asyncio.ensure_future(_attempt(addr, port, timeout))] = addr
            if not pending:
                break
            done, _ = await asyncio.wait(pending, timeout=delay if index < len(addresses)
                                         else None, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                addr = pending.pop(task)
                exc = task.exception()
                if exc is not None:
                    errors.append(f"{addr}: {exc or type(exc).__name__}")
                elif winner is None:
                    winner = (task.result(), addr)
                else:
                    task.result().close()
    finally:
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                (await task).close()  # connected just as it was cancelled
    if winner is None:
        raise ConnectError("; ".join(errors) or "no address",
                           timeout=any("Timeout" in e for e in errors))
    return winner


async def connect_domain(resolver: Resolver, domain: str, *,
                         delay: float = ATTEMPT_DELAY,
                         connect_timeout: float = CONNECT_TIMEOUT,
                         overall_timeout: float = OVERALL_TIMEOUT) -> Connected:
    """Resolve ``domain`` (RFC 6120 §3.2) and connect to the first target that answers.

    Raises ResolveError when nothing resolves (or the domain says it has no XMPP
    service), ConnectError when nothing connected (``timeout`` set when the overall bound
    ran out)."""
    try:
        async with asyncio.timeout(overall_timeout):
            return await _connect_targets(resolver, domain, delay, connect_timeout)
    except TimeoutError:
        raise ConnectError(f"no connection to {domain} within {overall_timeout} s",
                           timeout=True) from None


async def _connect_targets(resolver: Resolver, domain: str, delay: float,
                           connect_timeout: float) -> Connected:
    try:
        targets = await resolver.targets(domain)
    except NoService:
        raise ResolveError(f"{domain} offers no XMPP server service") from None
    resolved_any = False
    errors: list[str] = []
    timed_out = False
    for target in targets:
        addresses = await resolver.addresses(target.host)
        if not addresses:
            errors.append(f"{target.host}: no address")
            continue
        resolved_any = True
        try:
            sock, addr = await happy_eyeballs(addresses, target.port, delay=delay,
                                              timeout=connect_timeout)
        except ConnectError as exc:
            errors.append(f"{target.host}:{target.port}: {exc}")
            timed_out = timed_out or exc.timeout
            continue
        return Connected(sock, target, addr)
    if not resolved_any:
        raise ResolveError(f"{domain} does not resolve ({'; '.join(errors)})")
    raise ConnectError(f"cannot connect to {domain} ({'; '.join(errors)})", timeout=timed_out)
