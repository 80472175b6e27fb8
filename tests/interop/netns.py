"""A private network namespace for tests with real peer servers.

:class:`Netns` creates a namespace with a unique name (``tercet-<pid>-<n>``), brings its
loopback up and gives the test everything name resolution needs inside it:

* addresses: the whole of 127.0.0.0/8 is on ``lo`` (``127.0.0.1/8``), so each peer simply gets
  its own 127.0.0.x (:meth:`Netns.address`); nothing is added or routed, and nothing outside
  the namespace is touched;
* ``/etc/netns/NAME/hosts`` and ``/etc/netns/NAME/resolv.conf``, which ``ip netns exec``
  mounts over ``/etc/hosts`` and ``/etc/resolv.conf`` for every process it starts;
* an authoritative DNS responder (``netns_dns.py``, dnspython) on 127.0.0.53 port 53 inside
  the namespace, answering A and SRV records from a zone file the fixture rewrites
  (:meth:`Netns.add_host`, :meth:`Netns.add_srv`); Prosody resolves peers through DNS only.

Processes are started inside with :meth:`Netns.spawn` (``ip netns exec NAME ...``, optionally
as another user through ``setpriv``) and stopped by their PID. Test code that must reach the
servers runs with :meth:`Netns.run`: a thread of this process joins the namespace with
``setns(2)`` (network namespaces are per thread) and runs the coroutine on its own event loop,
so every socket it opens lives in the namespace. :meth:`Netns.close` undoes everything, in
order, and is what the fixture calls whether the test passed or not.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from helpers import RUN_TIMEOUT, accepts, run, until_sync

T = TypeVar("T")

#: <linux/sched.h>; ``os.CLONE_NEWNET`` only exists from Python 3.12.
CLONE_NEWNET = 0x40000000
#: Where ``ip netns add`` pins a namespace, and where ``ip netns exec`` finds its /etc files.
NETNS_RUN_DIR = Path("/run/netns")
NETNS_ETC_DIR = Path("/etc/netns")
DNS_ADDRESS = "127.0.0.53"
DNS_PORT = 53
#: Bound on starting a helper process (the DNS responder imports dnspython: ~0.2 s).
START_TIMEOUT = 10.0
#: Bound on a process's exit after SIGTERM, before SIGKILL.
STOP_TIMEOUT = 5.0
#: Bound on one ``ip`` command.
IP_TIMEOUT = 10.0
#: How much longer than its coroutine's own deadline a :meth:`Netns.run` thread may take.
JOIN_MARGIN = 5.0

_names = itertools.count(1)


def missing_requirements() -> list[str]:
    """What this machine lacks to create namespaces (empty when nothing)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces need CAP_SYS_ADMIN)")
    if shutil.which("ip") is None:
        missing.append("the `ip` command (Debian package iproute2)")
    if shutil.which("setpriv") is None:
        missing.append("the `setpriv` command (util-linux)")
    return missing


def ip(*args: str) -> str:
    """Run ``ip ARGS`` and return its output; a failure raises with ip's own message."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def enter(name: str) -> None:
    """Move the *calling thread* into network namespace ``name`` (setns(2)); sockets it
    opens from then on belong to that namespace, whichever thread later uses them."""
    fd = os.open(NETNS_RUN_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if hasattr(os, "setns"):
            os.setns(fd, CLONE_NEWNET)
        else:  # COMPAT Python 3.11
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"setns({name}): {os.strerror(errno)}")
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class NetnsProcess:
    """A process started inside a namespace; its output goes to ``log``."""

    label: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Zone:
    """The records the DNS responder serves; :meth:`write` replaces its file atomically
    (the responder reloads it when the file changes)."""

    path: Path
    records: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, name: str, rdtype: str, rdata: str) -> None:
        self.records.setdefault(fqdn(name), []).append((rdtype, rdata))
        self.write()

    def remove(self, name: str, rdtype: str | None = None) -> None:
        kept = [r for r in self.records.get(fqdn(name), []) if rdtype not in (None, r[0])]
        self.records[fqdn(name)] = kept
        if not kept:
            del self.records[fqdn(name)]
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"records": self.records}, indent=1))
        os.replace(tmp, self.path)


def fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


class Netns:
    """One test network namespace; see the module docstring. Use the ``ns`` fixture (or
    :func:`netns` outside pytest) rather than calling :meth:`create` and :meth:`close`."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"tercet-{os.getpid()}-{next(_names)}"
        # Readable by the unprivileged users peers run as (pytest's tmp_path is not).
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.workdir.chmod(0o755)
        self.etc = NETNS_ETC_DIR / self.name
        self.zone = Zone(self.workdir / "zone.json")
        self.hosts: dict[str, str] = {}
        self.processes: list[NetnsProcess] = []
        #: (title, path) of every log worth showing when a test fails.
        self.logs: list[tuple[str, Path]] = []
        self._next_address = 2
        self._created = False
        self._dns: NetnsProcess | None = None

    # -- setting up ----------------------------------------------------------------------

    def create(self) -> Netns:
        ip("netns", "add", self.name)
        self._created = True
        ip("-n", self.name, "link", "set", "lo", "up")
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "resolv.conf").write_text(
            f"# {self.name}: the interop tests' DNS responder\n"
            f"nameserver {DNS_ADDRESS}\noptions timeout:1 attempts:2\n")
        self._write_hosts()
        self.zone.write()
        self._start_dns()
        return self

    def _start_dns(self) -> None:
        ready = self.workdir / "dns.ready"
        process = self.spawn("dns", [sys.executable, str(Path(__file__).with_name(
            "netns_dns.py")), str(self.zone.path), DNS_ADDRESS, str(DNS_PORT), str(ready)])
        until_sync(lambda: ready.exists() or not process.running(),
                   "the DNS responder to listen", timeout=START_TIMEOUT)
        if not process.running():
            raise RuntimeError(f"the DNS responder exited:\n{process.output()}")
        self._dns = process

    def dns_log(self) -> str:
        """The DNS responder's log: one line per query, with the answer's rcode."""
        return self._dns.output() if self._dns is not None else ""

    def address(self) -> str:
        """A fresh 127.0.0.x for one peer (never the responder's 127.0.0.53)."""
        n = self._next_address
        self._next_address += 2 if n + 1 == 53 else 1
        if n > 254:
            raise RuntimeError("out of 127.0.0.x addresses")
        return f"127.0.0.{n}"

    def add_host(self, name: str, address: str) -> None:
        """``name`` resolves to ``address``: an A record, and a line in the hosts file."""
        self.zone.add(name, "A", address)
        self.hosts[name.lower().rstrip(".")] = address
        self._write_hosts()

    def add_srv(self, domain: str, target: str, port: int, *,
                service: str = "xmpp-server", priority: int = 0, weight: int = 5) -> None:
        """An SRV record ``_<service>._tcp.<domain>`` -> ``target:port`` (RFC 2782)."""
        self.zone.add(f"_{service}._tcp.{domain}", "SRV",
                      f"{priority} {weight} {port} {fqdn(target)}")

    def _write_hosts(self) -> None:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{address}\t{name}" for name, address in self.hosts.items()]
        # In place, not replaced: running processes see the bind mount of this very inode.
        with open(self.etc / "hosts", "w") as f:
            f.write("\n".join(lines) + "\n")

    # -- processes -------------------------------------------------------------------------

    def spawn(self, label: str, argv: Sequence[str], *, user: str | None = None,
              cwd: Path | None = None, env: dict[str, str] | None = None) -> NetnsProcess:
        """Start ``argv`` inside the namespace (as ``user`` if given), output to
        ``workdir/<label>.out``. ``ip netns exec`` and ``setpriv`` both exec, so the PID
        recorded is the program's own."""
        command = ["ip", "netns", "exec", self.name]
        if user is not None:
            command += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        log = self.workdir / f"{label}.out"
        base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        with open(log, "wb") as out:
            popen = subprocess.Popen([*command, *argv], stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, cwd=cwd,
                                     env={**base_env, **(env or {})}, start_new_session=True)
        process = NetnsProcess(label, popen, log)
        self.processes.append(process)
        self.logs.append((f"{label} output", log))
        return process

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = RUN_TIMEOUT) -> T:
        """Call ``fn(*args)`` in a thread that joined the namespace and return its result
        (or raise its exception) here; the thread may take at most ``timeout``."""
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                enter(self.name)
                outcome["value"] = fn(*args)
            except BaseException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=target, name=f"in-{self.name}", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise AssertionError(f"code in namespace {self.name} outlived its {timeout} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]  # type: ignore[no-any-return]

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = RUN_TIMEOUT) -> T:
        """Run ``coro`` on a fresh event loop in a thread that joined the namespace (so
        its sockets are in it) and return its result here; it fails after ``timeout``."""
        try:
            return self.call(run, coro, timeout, timeout=timeout + JOIN_MARGIN)
        finally:
            coro.close()  # a no-op once it ran; silences "never awaited" if it could not

    def accepts(self, address: str, port: int) -> bool:
        """Whether something in the namespace accepts TCP connections on ``address:port``."""
        return self.call(accepts, port, address, timeout=IP_TIMEOUT)

    # -- tearing down ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process (last started first), kill anything else still inside the
        namespace, delete it and its /etc files and the work directory. Every step runs
        even if an earlier one failed; the first failure is raised at the end."""
        errors: list[BaseException] = []
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as exc:
                errors.append(exc)
        if self._created:
            for step in (self._kill_leftovers, lambda: ip("netns", "del", self.name)):
                try:
                    step()
                except Exception as exc:
                    errors.append(exc)
            self._created = False
        shutil.rmtree(self.etc, ignore_errors=True)
        if os.environ.get("TERCET_INTEROP_KEEP"):
            print(f"kept {self.workdir} (TERCET_INTEROP_KEEP)")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise errors[0]

    def _kill_leftovers(self) -> None:
        # Only processes inside our own namespace, all descendants of what we started (a
        # daemon that forked away from its PID, say); never this process itself.
        pids = [int(p) for p in ip("netns", "pids", self.name).split()
                if int(p) != os.getpid()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        until_sync(lambda: not any(pid_alive(p) for p in pids),
                   f"processes {pids} in {self.name} to die", timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def netns() -> Iterator[Netns]:
    """A created :class:`Netns`, closed on the way out."""
    ns = Netns()
    try:
        yield ns.create()
    finally:
        ns.close()


class HasLog(Protocol):
    def log_text(self) -> str: ...


def logged(peer: HasLog, text: str, timeout: float = 10.0) -> None:
    """Wait (bounded) until ``text`` is in ``peer``'s log: peers write their logs
    asynchronously (ejabberd's logger buffers), so a line may trail the traffic it
    describes by a moment."""
    until_sync(lambda: text in peer.log_text(), f"{text!r} in the log", timeout=timeout)


def wait_listening(ns: Netns, process: NetnsProcess, name: str, address: str,
                   ports: Sequence[int], timeout: float = START_TIMEOUT) -> None:
    """Wait (bounded) until ``process`` accepts connections on every port, or exits."""
    def up() -> bool:
        return not process.running() or all(ns.accepts(address, p) for p in ports)

    until_sync(up, f"{name} to listen", timeout=timeout)


def exited_error(name: str, process: NetnsProcess, log: str) -> RuntimeError:
    """The error for a peer that exited during start, with its output and log."""
    return RuntimeError(f"{name} exited ({process.popen.returncode}):\n{process.output()}\n"
                        f"{log}")
