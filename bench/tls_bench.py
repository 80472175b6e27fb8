#!/usr/bin/env python3
"""Idle sessions over direct TLS (XEP-0368), STARTTLS or plaintext: RSS and CPU per login.

The shared generator (../../shared/bench/xmppbench.py) has no direct-TLS mode, so this
opens the sessions itself, with presence_bench.py's client (raw sockets, asyncio, uvloop
when installed, no XMPP library). Each session: TCP connect, the TLS handshake at once
(``--mode direct``, ALPN "xmpp-client" as XEP-0368 §3 asks) or after ``<starttls/>``
(``--mode starttls``) or none (``--mode plain``), SASL (SCRAM-SHA-1 or PLAIN), stream
restart, resource bind, initial presence; the same steps as the generator's ``connect``
scenario, so the three modes compare like with like.

1. The generator waits (at most ``--quiet-wait`` s) for the rest of the machine to go
   idle and reads the server's RSS (VmRSS of ``--server-pid`` and all its descendants).
2. login: ``--users`` sessions, ``--concurrency`` logins in flight, split over ``--procs``
   worker processes (the client's PBKDF2 is the generator's bottleneck). Reported:
   logins/s, login latency, server CPU ms per login.
3. idle: after ``--settle`` s the server's RSS again; (after − before) / sessions is the
   RSS per idle session. The sessions stay open ``--hold`` s more, then close.

Each worker needs one descriptor per session: the soft limit is raised to the hard limit
here, and a run that does not fit is refused before it starts (bench/README.md).

    python3 tls_bench.py --port 5523 --mode direct --users 1000 --server-pid PID --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import multiprocessing as mp
import os
import re
import resource
import socket
import ssl
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import presence_bench as pb  # noqa: E402  (client, SASL and /proc accounting)

MONO = time.monotonic_ns
RE_BIND = re.compile(rb"<iq\b[^>]*\bid=['\"]bind1['\"][\s\S]*?(?:/>|</iq>)")
RE_SESSION = re.compile(rb"<iq\b[^>]*\bid=['\"]sess1['\"]")
MAX_ERRORS = 20          # error texts kept per worker
FDS_SPARE = 200          # descriptors a worker needs besides its sessions
PHASE_LIMIT = 1800.0     # no phase waits longer than this (seconds)

_DIRECT_CONTEXT: ssl.SSLContext | None = None


def direct_context() -> ssl.SSLContext:
    """presence_bench's client context plus ALPN "xmpp-client" (XEP-0368 §3)."""
    global _DIRECT_CONTEXT
    if _DIRECT_CONTEXT is None:
        _DIRECT_CONTEXT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _DIRECT_CONTEXT.check_hostname = False
        _DIRECT_CONTEXT.verify_mode = ssl.CERT_NONE
        _DIRECT_CONTEXT.set_alpn_protocols(["xmpp-client"])
    return _DIRECT_CONTEXT


class Idle(pb.Client):
    """A session that logs in (SASL, bind, presence) and then only counts what arrives."""

    async def login(self) -> None:
        await self.open_stream()          # negotiates STARTTLS first when cfg.starttls
        await self.authenticate()
        self.buf.clear()
        features = await self.open_stream()
        self.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  f"<resource>{self.cfg.resource}</resource></bind></iq>")
        await self.expect(RE_BIND, "bind result")
        if b"xmpp-session" in features and b"<optional" not in features:
            self.send("<iq type='set' id='sess1'>"
                      "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
            await self.expect(RE_SESSION, "session result")
        rest, self.buf = bytes(self.buf), bytearray()
        self.scanning = True
        self.scan(rest)
        self.send("<presence/>")

    def tls_info(self) -> dict[str, Any]:
        obj = self.transport.get_extra_info("ssl_object") if self.transport else None
        if obj is None:
            return {"version": None}
        cipher = obj.cipher()
        return {"version": obj.version(), "cipher": cipher[0] if cipher else None,
                "alpn": obj.selected_alpn_protocol()}


async def login_share(cfg: argparse.Namespace, indices: list[int]) -> dict[str, Any]:
    """Log in the sessions of ``indices``; returns them with the figures of this worker."""
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(max(1, cfg.concurrency // cfg.procs))
    stats = pb.Stats()
    clients: list[Idle] = []
    errors: list[str] = []
    login_ms: list[float] = []
    direct = cfg.mode == "direct"

    async def one(index: int) -> None:
        async with sem:
            client = Idle(cfg, index, stats)
            t0 = MONO()
            try:
                await asyncio.wait_for(loop.create_connection(
                    lambda: client, cfg.host, cfg.port,
                    ssl=direct_context() if direct else None,
                    server_hostname=cfg.domain if direct else None), cfg.timeout)
                client.secure = direct
                await client.login()
                clients.append(client)
                login_ms.append((MONO() - t0) / 1e6)
            except (TimeoutError, OSError, ConnectionError) as exc:
                if len(errors) < MAX_ERRORS:
                    errors.append(f"{client.user}: {type(exc).__name__}: {exc}")
                if client.transport is not None:
                    client.transport.abort()

    # A phase that overruns keeps the sessions it has: the rest count as failed.
    tasks = [asyncio.ensure_future(one(i)) for i in indices]
    _, pending = await asyncio.wait(tasks, timeout=cfg.phase_timeout)
    for task in pending:
        task.cancel()
    if pending:
        errors.append(f"{len(pending)} logins unfinished after {cfg.phase_timeout:.0f} s")
        await asyncio.wait(pending)
    return {"clients": clients, "errors": errors, "login_ms": login_ms,
            "tls": clients[0].tls_info() if clients else {"version": None}}


async def worker_main(cfg: argparse.Namespace, indices: list[int], conn: Connection) -> None:
    """Wait for "login", log in, report, hold the sessions until "close"."""
    loop = asyncio.get_running_loop()
    # The pipe is read in a thread (blocking); the loop keeps serving the sessions.
    if await loop.run_in_executor(None, conn.recv) != "login":
        return
    cpu0 = sum(os.times()[:2])
    share = await login_share(cfg, indices)
    conn.send({"ok": len(share["clients"]), "failed": len(indices) - len(share["clients"]),
               "errors": share["errors"], "login_ms": share["login_ms"], "tls": share["tls"],
               "gen_cpu_s": sum(os.times()[:2]) - cpu0})
    await loop.run_in_executor(None, conn.recv)      # "close" (or EOF: the parent is gone)
    for client in share["clients"]:
        client.close()
    await asyncio.sleep(0.5)


def worker(cfg: argparse.Namespace, indices: list[int], conn: Connection) -> None:
    if cfg.uvloop:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
    try:
        asyncio.run(worker_main(cfg, indices, conn))
    except EOFError:
        pass
    finally:
        try:
            conn.send("closed")
        except OSError:
            pass


def raise_fd_limit(per_process: int) -> int:
    """Soft descriptor limit up to the hard one (workers inherit it); refuses a run that
    cannot fit, rather than failing half-way with EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if per_process + FDS_SPARE > hard:
        raise SystemExit(f"{per_process} sessions per process need {per_process + FDS_SPARE} "
                         f"descriptors; the hard limit is {hard}: use more --procs or raise it")
    return hard


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 1)


def collect(conns: list[Connection], limit: float) -> list[Any]:
    """One answer from each worker, all within ``limit`` seconds."""
    deadline = time.monotonic() + limit
    out = []
    for i, conn in enumerate(conns):
        if not conn.poll(max(0.0, deadline - time.monotonic())):
            raise RuntimeError(f"worker {i} did not answer in {limit:.0f} s")
        out.append(conn.recv())
    return out


def run(cfg: argparse.Namespace) -> dict[str, Any]:
    fd_limit = raise_fd_limit(-(-cfg.users // cfg.procs))
    pids = pb.process_tree(cfg.server_pid) if cfg.server_pid else []
    result: dict[str, Any] = {
        "label": cfg.label, "scenario": f"connect-{cfg.mode}", "mode": cfg.mode,
        "users": cfg.users, "procs": cfg.procs, "mech": cfg.mech,
        "concurrency": cfg.concurrency, "target": f"{cfg.host}:{cfg.port}",
        "server_pids": pids, "fd_limit": fd_limit, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    indices = list(range(cfg.first, cfg.first + cfg.users))
    ctx = mp.get_context("fork")
    conns, procs = [], []
    for w in range(cfg.procs):
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=worker, args=(cfg, indices[w::cfg.procs], child_end),
                           daemon=True)
        proc.start()
        conns.append(parent_end)
        procs.append(proc)
    try:
        if cfg.quiet_wait:
            result["others_before_login"] = pb.wait_quiet(cfg.server_pid, cfg.quiet_wait)
        rss0 = pb.rss_kb(cfg.server_pid) if pids else None
        meter = pb.Meter(cfg.server_pid)
        meter.start()
        for conn in conns:
            conn.send("login")
        shares = collect(conns, cfg.phase_timeout + 30)
        cpu = meter.stop()
        result["connect"] = summarize(shares, cpu)
        if rss0 is not None:
            time.sleep(cfg.settle)
            rss1 = pb.rss_kb(cfg.server_pid)
            ok = result["connect"]["results"]["ok"]
            result["rss"] = {"baseline_kb": rss0, "after_connect_kb": rss1,
                             "per_session_kb": round((rss1 - rss0) / ok, 2) if ok else None}
        report(cfg, result)
        time.sleep(max(0.0, cfg.hold - cfg.settle))
    finally:
        for conn in conns:
            try:
                conn.send("close")
            except OSError:
                pass
        try:
            collect(conns, 30)
        except (RuntimeError, EOFError, OSError):
            pass
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
    return result


def summarize(shares: list[Any], cpu: dict[str, float]) -> dict[str, Any]:
    """The workers' figures merged, in the shape of the shared generator's ``connect``."""
    if not all(isinstance(s, dict) for s in shares):
        raise RuntimeError(f"a worker ended before reporting its logins: {shares}")
    ok = sum(s["ok"] for s in shares)
    login_ms = [x for s in shares for x in s["login_ms"]]
    wall = cpu["wall_s"]
    gen_pct = 100 * sum(s["gen_cpu_s"] for s in shares) / wall
    # The meter counts the workers as "others": move them to the generator.
    cpu = dict(cpu, gen_cpu_pct=round(cpu["gen_cpu_pct"] + gen_pct, 1),
               others_cpu_pct=round(cpu["others_cpu_pct"] - gen_pct, 1))
    return {
        "results": {"ok": ok, "failed": sum(s["failed"] for s in shares)},
        "errors": [e for s in shares for e in s["errors"]][:MAX_ERRORS],
        "seconds": wall, "per_s": round(ok / wall, 1),
        "login_ms": {p: percentile(login_ms, q) for p, q in
                     (("p50", 50), ("p90", 90), ("p99", 99))},
        "server_cpu_ms_per_op": round(1000 * cpu["server_cpu_s"] / ok, 3) if ok else None,
        "tls": next((s["tls"] for s in shares if s["tls"].get("version")), {"version": None}),
        "cpu": cpu,
    }


def report(cfg: argparse.Namespace, result: dict[str, Any]) -> None:
    c = result["connect"]
    print(f"[{cfg.label}] {cfg.mode}: {c['results']} in {c['seconds']} s -> {c['per_s']}/s, "
          f"login ms {c['login_ms']}, server CPU {c['server_cpu_ms_per_op']} ms/login, "
          f"tls {c['tls']}, cpu {c['cpu']}", flush=True)
    for error in c["errors"][:5]:
        print("   ", error, flush=True)
    if "rss" in result:
        r = result["rss"]
        print(f"  RSS {r['baseline_kb']} -> {r['after_connect_kb']} kB: "
              f"{r['per_session_kb']} kB/session", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5223)
    ap.add_argument("--domain", default="localhost")
    ap.add_argument("--mode", default="direct", choices=["direct", "starttls", "plain"])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--user-prefix", default="user")
    ap.add_argument("--password", default="pass")
    ap.add_argument("--resource", default="bench")
    ap.add_argument("--mech", default="SCRAM-SHA-1", choices=["PLAIN", "SCRAM-SHA-1"])
    ap.add_argument("--concurrency", type=int, default=100, help="logins in flight, in all")
    ap.add_argument("--procs", type=int, default=2, help="generator processes")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds before the RSS reading")
    ap.add_argument("--hold", type=float, default=2.0, help="seconds the sessions stay idle")
    ap.add_argument("--timeout", type=float, default=60.0, help="per login step (s)")
    ap.add_argument("--phase-timeout", type=float, default=600.0)
    ap.add_argument("--server-pid", type=int, action="append", default=[])
    ap.add_argument("--quiet-wait", type=float, default=0.0)
    ap.add_argument("--no-uvloop", dest="uvloop", action="store_false")
    ap.add_argument("--label", default="")
    ap.add_argument("--json", default=None)
    cfg = ap.parse_args(argv)
    for info in socket.getaddrinfo(cfg.host, None):
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise SystemExit(f"refusing non-loopback target {cfg.host}")
    cfg.users = max(1, min(cfg.users, 100_000))
    cfg.procs = max(1, min(cfg.procs, 16, cfg.users))
    cfg.phase_timeout = min(cfg.phase_timeout, PHASE_LIMIT)
    cfg.hold = max(cfg.hold, cfg.settle)
    cfg.starttls = cfg.mode == "starttls"    # presence_bench's client reads this
    result = run(cfg)
    if cfg.json:
        Path(cfg.json).write_text(json.dumps(result, indent=1))
    return 0 if result["connect"]["results"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
