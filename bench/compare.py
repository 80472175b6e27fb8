#!/usr/bin/env python3
"""Tercet and Prosody side by side, in one run on one machine (bench/README.md).

Runs each scenario against each server in turn (pairs close in time), restarting the server
before the runs that need a clean process, and prints markdown tables with the ratios.
Raw JSON goes to bench/results/<timestamp>/ (git-ignored).

Every stream is encrypted unless ``--plaintext``: the scenarios of the shared generator
and of presence_bench.py / pep_bench.py negotiate STARTTLS, and ``directtls`` opens idle
sessions over direct TLS (XEP-0368) with tls_bench.py. Both servers run from copies of
their bench configs written into the data directory (``--data``): there the ports and
paths are set, Prosody gets a direct-TLS port, and a self-signed certificate for
localhost is created for each server when missing (README, "Over TLS (issue 14)").

    python3 bench/compare.py                  # everything over TLS (~40 minutes)
    python3 bench/compare.py --plaintext      # the same without TLS
    python3 bench/compare.py --only messages  # one scenario
    python3 bench/compare.py --short          # a validation run: N=200, 5 s phases
    python3 bench/compare.py --table results/20261122-0300   # tables again

Prerequisites (README, "Setup"): Prosody 0.12 installed, accounts user1..user10000,
puser1..puser1000 (with 50-contact rosters) and pepuser1..pepuser101 (a star) provisioned
on both servers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "bench"
# The interpreter Tercet is installed in (with uvloop); override with TERCET_PYTHON.
PY = os.environ.get("TERCET_PYTHON", sys.executable)
DATA = Path(os.environ.get("BENCH_DATA", "/tmp/benchdata"))
SCENARIOS = ("connect", "messages", "rate", "presence", "muc", "pep", "directtls")
# Descriptors a server or a generator process needs besides one per session.
FDS_SPARE = 1000
# The paths the bench configs are written with; the copies swap in --data.
CONFIG_DATA = "/tmp/benchdata/"


class Target:
    """One server under test: how to start and stop it, its ports and its PID."""

    def __init__(self, name: str, port: int, start: list[str], stop: list[str],
                 pidfile: Path, tls_port: int | None = None) -> None:
        self.name, self.port, self._start, self._stop = name, port, start, stop
        self.pidfile, self.tls_port = pidfile, tls_port

    def start(self) -> int:
        subprocess.run(self._start, check=True, capture_output=True, timeout=60)
        if not wait_port(self.port, 60):
            raise RuntimeError(f"{self.name} did not open port {self.port}")
        time.sleep(1.0)  # let it finish loading modules after listening
        return self.pid()

    def stop(self) -> None:
        subprocess.run(self._stop, check=False, capture_output=True, timeout=60)

    def restart(self) -> int:
        self.stop()
        return self.start()

    def pid(self) -> int:
        return int(self.pidfile.read_text().strip())


def wait_port(port: int, limit: float) -> bool:
    """Whether 127.0.0.1:``port`` accepts a connection within ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


# -- configs and certificates ---------------------------------------------------------------

def _swap(text: str, old: str, new: str, what: str) -> str:
    if old not in text:
        raise SystemExit(f"{what}: {old!r} not found; compare.py must follow the change")
    return text.replace(old, new)


def prosody_config_text(base: str, data: Path, port: int, tls_port: int) -> str:
    """The shared Prosody config with paths under ``data``, c2s on ``port`` and direct TLS
    (XEP-0368) on ``tls_port`` with the certificate the host uses for STARTTLS. Global
    options go before the first VirtualHost (after it they would belong to the host)."""
    what = f"shared config {base}.cfg.lua"
    text = (SHARED / "configs" / f"{base}.cfg.lua").read_text()
    text = _swap(text, CONFIG_DATA, f"{data}/", what)
    text = _swap(text, "c2s_ports = { 5222 }", f"c2s_ports = {{ {port} }}", what)
    cert = data / "prosody" / "certs" / "localhost"
    direct = ("-- Added by bench/compare.py: direct TLS (XEP-0368), loopback only.\n"
              f"c2s_direct_tls_ports = {{ {tls_port} }}\n"
              'c2s_direct_tls_interfaces = { "127.0.0.1" }\n'
              f'c2s_direct_tls_ssl = {{ certificate = "{cert}.crt"; key = "{cert}.key"; }}\n\n')
    at = _swap(text, "\nVirtualHost ", "\nVirtualHost ", what).index("\nVirtualHost ") + 1
    return text[:at] + direct + text[at:]


def tercet_config_text(data: Path, port: int, tls_port: int) -> str:
    """tercet-bench.toml with paths under ``data`` and the c2s ports given."""
    what = "tercet-bench.toml"
    text = (HERE / "tercet-bench.toml").read_text()
    text = _swap(text, CONFIG_DATA, f"{data}/", what)
    text = _swap(text, "c2s_ports = [5522]", f"c2s_ports = [{port}]", what)
    return _swap(text, "c2s_direct_tls_ports = [5523]", f"c2s_direct_tls_ports = [{tls_port}]",
                 what)


def ensure_certificates(data: Path, tercet_config: Path) -> None:
    """A self-signed EC P-256 certificate for localhost for each server, when missing:
    Tercet's with its own command, Prosody's with openssl (the same key type, so both
    handshakes sign with the same algorithm)."""
    if not (data / "tercet" / "certs" / "localhost.crt").exists():
        subprocess.run([PY, "-m", "tercet", "-c", str(tercet_config), "cert", "generate",
                        "localhost"], check=True, capture_output=True, timeout=60,
                       cwd=HERE.parent)
    certs = data / "prosody" / "certs"
    if not (certs / "localhost.crt").exists():
        certs.mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "365",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", str(certs / "localhost.key"),
                        "-out", str(certs / "localhost.crt")],
                       check=True, capture_output=True, timeout=60)


def targets(cfg: argparse.Namespace) -> dict[str, Target]:
    """Both servers from configs written into ``cfg.data`` (certificates made if missing).
    Prosody is started as servers.sh starts it (as user prosody, descriptor limit raised)
    and stopped by servers.sh, by the recorded PID."""
    data: Path = cfg.data
    (data / "prosody" / "data").mkdir(parents=True, exist_ok=True)
    (data / "tercet").mkdir(parents=True, exist_ok=True)
    pcfg = data / "prosody" / f"{cfg.prosody_config}-bench.cfg.lua"
    pcfg.write_text(prosody_config_text(cfg.prosody_config, data, cfg.prosody_port,
                                        cfg.prosody_tls_port))
    tcfg = data / "tercet-bench.toml"
    tcfg.write_text(tercet_config_text(data, cfg.tercet_port, cfg.tercet_tls_port))
    ensure_certificates(data, tcfg)
    name = f"{cfg.prosody_config}-bench"
    q = shlex.quote
    launch = (f"ulimit -n $(ulimit -Hn); exec prosody -F --config {q(str(pcfg))}")
    start = ["bash", "-c", (
        f"set -e; chown -R prosody:prosody {q(str(data / 'prosody'))}; "
        f"cd {q(str(data / 'prosody'))}; "
        "setsid setpriv --reuid=prosody --regid=prosody --init-groups env "
        f"HOME=/var/lib/prosody bash -c {q(launch)} "
        f">{q(str(data / 'prosody' / 'stdout.log'))} 2>&1 </dev/null & "
        f"echo $! > {q(str(data / f'{name}.launch.pid'))}")]
    tercet = ["env", f"TERCET_BENCH_CONFIG={tcfg}", str(HERE / "tercet.sh")]
    return {
        "prosody": Target("prosody", cfg.prosody_port, start,
                          [str(SHARED / "servers.sh"), "stop", name],
                          data / f"{name}.launch.pid", cfg.prosody_tls_port),
        "tercet": Target("tercet", cfg.tercet_port, [*tercet, "start"], [*tercet, "stop"],
                         data / "tercet.launch.pid", cfg.tercet_tls_port),
    }


# -- checks before measuring ----------------------------------------------------------------

def stream_features(port: int, direct_tls: bool, limit: float = 10.0) -> dict[str, Any]:
    """Open a stream (over TLS at once when ``direct_tls``) and read its features: what the
    server offers and, over TLS, the version and cipher negotiated."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["xmpp-client"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=limit)
    sock = ctx.wrap_socket(raw, server_hostname="localhost") if direct_tls else raw
    deadline = time.monotonic() + limit
    with sock:
        sock.sendall(b"<?xml version='1.0'?><stream:stream to='localhost' "
                     b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
                     b"version='1.0'>")
        buf = b""
        while b"</stream:features>" not in buf and len(buf) < 65536:
            if time.monotonic() > deadline:
                break
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        info: dict[str, Any] = {"starttls": b"urn:ietf:params:xml:ns:xmpp-tls" in buf,
                                "mechanisms": [m.decode() for m in
                                               re.findall(rb"<mechanism>([^<]+)<", buf)]}
        if isinstance(sock, ssl.SSLSocket):
            cipher = sock.cipher()
            info.update(version=sock.version(), cipher=cipher[0] if cipher else None,
                        alpn=sock.selected_alpn_protocol())
        return info


def preflight(cfg: argparse.Namespace, ts: dict[str, Target], out: Path) -> None:
    """Each server once: does it offer what the run needs (STARTTLS, a direct TLS port)?
    Fails before any measurement rather than in the middle of the run."""
    found: dict[str, Any] = {}
    for t in (ts[n] for n in cfg.servers):
        t.restart()
        try:
            info = {"c2s": stream_features(t.port, False)}
            if "directtls" in cfg.only and t.tls_port is not None:
                if not wait_port(t.tls_port, 10):
                    raise SystemExit(f"{t.name}: no direct TLS port {t.tls_port} (certificate?)")
                info["direct_tls"] = stream_features(t.tls_port, True)
        finally:
            t.stop()
        if not cfg.plaintext and not info["c2s"]["starttls"]:
            raise SystemExit(f"{t.name} does not offer STARTTLS on port {t.port}: no "
                             "certificate for localhost? (README, 'Over TLS')")
        print(f"   {t.name}: {info}", flush=True)
        found[t.name] = info
    (out / "preflight.json").write_text(json.dumps(found, indent=1))


def raise_fd_limit(cfg: argparse.Namespace) -> None:
    """Soft descriptor limit up to the hard one, inherited by the generators and by the
    servers (servers.sh and tercet.sh raise theirs to the hard limit they inherit). The
    largest run must fit: N sessions in a server, N / procs in a generator process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ns = [*(cfg.connect_ns if "connect" in cfg.only else []),
          *(cfg.direct_tls_ns if "directtls" in cfg.only else [])]
    if ns and max(ns) + FDS_SPARE > hard:
        raise SystemExit(f"N={max(ns)} needs {max(ns) + FDS_SPARE} descriptors per server; "
                         f"the hard limit is {hard} (README, 'Descriptor limits')")


# -- running --------------------------------------------------------------------------------

def setup(cfg: argparse.Namespace) -> None:
    """Accounts and rosters for every scenario, on both servers, in ``cfg.data``: Prosody's
    accounts by in-band registration (the shared generator), its rosters and all of Tercet's
    data with provision.py (Tercet stopped). Existing accounts are kept."""
    ts = targets(cfg)
    users = max([*cfg.connect_ns, *cfg.direct_tls_ns, *cfg.muc_ns, cfg.users])
    sets = (("user", users), ("puser", cfg.presence_users), ("pepuser", 101))
    prosody = ts["prosody"]
    prosody.restart()
    try:
        for prefix, n in sets:
            subprocess.run([PY, str(SHARED / "xmppbench.py"), "--port", str(prosody.port),
                            "--scenario", "register", "--users", str(n), "--user-prefix",
                            prefix, "--concurrency", "50"], check=True, timeout=3600)
    finally:
        prosody.stop()
    ts["tercet"].stop()
    provision = [PY, str(HERE / "provision.py")]
    prosody_data = ["--prosody-data", str(cfg.data / "prosody" / "data")]
    tercet = ["--config", str(cfg.data / "tercet-bench.toml")]
    rosters = (["--users", str(cfg.presence_users), "--prefix", "puser", "--contacts", "50"],
               ["--users", "101", "--prefix", "pepuser", "--star"])
    for args in rosters:
        subprocess.run([*provision, "rosters", *args, *prosody_data], check=True, timeout=600)
    for prefix, n in sets:
        subprocess.run([*provision, "accounts", "--users", str(n), "--prefix", prefix, *tercet],
                       check=True, timeout=3600)
    for args in rosters:
        subprocess.run([*provision, "rosters", *args, *tercet], check=True, timeout=600)

def sample_rss(pid: int, stop: threading.Event, out: list[tuple[float, int]]) -> None:
    """RSS (kB) of ``pid`` once a second until ``stop`` (flat = no queue growing)."""
    t0 = time.monotonic()
    while not stop.wait(1.0):
        try:
            with open(f"/proc/{pid}/status") as f:
                kb = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
        except (OSError, StopIteration):
            return
        out.append((round(time.monotonic() - t0, 1), kb))


def bench(cmd: list[str], pid: int, json_path: Path) -> dict[str, Any]:
    """Run one generator command with RSS sampling; returns its JSON result."""
    stop = threading.Event()
    rss: list[tuple[float, int]] = []
    sampler = threading.Thread(target=sample_rss, args=(pid, stop, rss), daemon=True)
    sampler.start()
    print("   $", " ".join(cmd), flush=True)
    try:
        subprocess.run(cmd, check=True, timeout=1200)
    finally:
        stop.set()
        sampler.join(5)
    result: dict[str, Any] = json.loads(json_path.read_text())
    result["rss_samples_kb"] = rss
    json_path.write_text(json.dumps(result, indent=1))
    return result


def xmppbench(t: Target, pid: int, out: Path, name: str, *args: str) -> dict[str, Any]:
    path = out / f"{name}_{t.name}.json"
    cmd = [PY, str(SHARED / "xmppbench.py"), "--port", str(t.port), "--server-pid", str(pid),
           "--label", t.name, "--json", str(path), *args]
    return bench(cmd, pid, path)


def run_all(cfg: argparse.Namespace, out: Path) -> None:
    ts = targets(cfg)
    order = [ts[n] for n in cfg.servers]
    common = ["--quiet-wait", str(cfg.quiet_wait)]
    # Every c2s stream of the scenarios below negotiates STARTTLS unless --plaintext.
    tls = [] if cfg.plaintext else ["--starttls"]
    steps: list[tuple[str, Callable[[Target], None]]] = []
    if "connect" in cfg.only:
        for n in cfg.connect_ns:
            def connect(t: Target, n: int = n) -> None:
                pid = t.restart()
                xmppbench(t, pid, out, f"connect{n}", "--scenario", "connect", "--users",
                          str(n), "--mech", "SCRAM-SHA-1", "--concurrency", "100",
                          "--procs", str(cfg.connect_procs), *tls, *common)
            steps.append((f"connect N={n}", connect))
    if "messages" in cfg.only:
        def messages(t: Target) -> None:
            pid = t.restart()
            xmppbench(t, pid, out, f"messages{cfg.users}", "--scenario", "messages",
                      "--users", str(cfg.users), "--window", str(cfg.window),
                      "--duration", str(cfg.duration), *tls, *common)
        steps.append((f"messages N={cfg.users} closed loop", messages))
    if "rate" in cfg.only:
        def rate(t: Target) -> None:
            pid = t.restart()
            xmppbench(t, pid, out, f"rate{cfg.users}", "--scenario", "messages", "--users",
                      str(cfg.users), "--rate", "1000", "--duration", str(cfg.rate_duration),
                      "--warmup", "2", *tls, *common)
        steps.append((f"messages N={cfg.users} at 1000/s", rate))
    if "presence" in cfg.only:
        def presence(t: Target) -> None:
            pid = t.restart()
            path = out / f"presence_{t.name}.json"
            bench([PY, str(HERE / "presence_bench.py"), "--port", str(t.port), "--server-pid",
                   str(pid), "--label", t.name, "--json", str(path), "--users",
                   str(cfg.presence_users), "--user-prefix", "puser", "--contacts", "50",
                   "--duration", str(cfg.presence_duration), "--mech", cfg.presence_mech,
                   *tls, *common], pid, path)
        steps.append((f"presence N={cfg.presence_users} x 50 contacts", presence))
    if "muc" in cfg.only:
        for n in cfg.muc_ns:
            def muc(t: Target, n: int = n) -> None:
                # As the shared baseline: one room, one sender, closed loop (window 2),
                # the first 2 s of the run not measured; the join phase is timed first.
                pid = t.restart()
                xmppbench(t, pid, out, f"muc{n}", "--scenario", "muc", "--users", str(n),
                          "--window", str(cfg.window), "--duration", str(cfg.muc_duration),
                          "--warmup", "2", *tls, *common)
            steps.append((f"muc N={n} occupants, 1 sender", muc))
    if "pep" in cfg.only:
        def pep(t: Target) -> None:
            pid = t.restart()
            path = out / f"pep_{t.name}.json"
            bench([PY, str(HERE / "pep_bench.py"), "--port", str(t.port), "--server-pid",
                   str(pid), "--label", t.name, "--json", str(path), "--contacts", "100",
                   "--window", "1", "--duration", str(cfg.pep_duration), "--warmup", "3",
                   *tls, *common], pid, path)
        steps.append(("pep: 1 publisher, 100 contacts with +notify", pep))
    if "directtls" in cfg.only:
        for n in cfg.direct_tls_ns:
            def directtls(t: Target, n: int = n) -> None:
                pid = t.restart()
                assert t.tls_port is not None
                if not wait_port(t.tls_port, 10):
                    raise RuntimeError(f"{t.name}: direct TLS port {t.tls_port} not open")
                path = out / f"directtls{n}_{t.name}.json"
                bench([PY, str(HERE / "tls_bench.py"), "--port", str(t.tls_port), "--mode",
                       "direct", "--users", str(n), "--mech", "SCRAM-SHA-1", "--concurrency",
                       "100", "--procs", str(cfg.connect_procs), "--server-pid", str(pid),
                       "--label", t.name, "--json", str(path), *common], pid, path)
            steps.append((f"direct TLS (XEP-0368) N={n}", directtls))
    try:
        print("== preflight: what each server offers", flush=True)
        preflight(cfg, ts, out)
        for title, step in steps:
            print(f"== {title}", flush=True)
            for t in order:
                try:
                    step(t)
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired,
                        RuntimeError) as exc:
                    # One failed measurement leaves a gap in the tables, not a dead run.
                    print(f"   !! {t.name}: {exc}", flush=True)
                finally:
                    t.stop()
    finally:
        for t in order:  # whatever happened, no server of ours outlives the run
            t.stop()


# -- tables ---------------------------------------------------------------------------------

def load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / name
    return json.loads(path.read_text()) if path.exists() else None


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def verdict(better_over_worse: float) -> str:
    """"2.00× better" or, below 1, "2.00× worse" (never "0.50× better")."""
    if better_over_worse >= 1:
        return f"{better_over_worse:.2f}× better"
    return f"{1 / better_over_worse:.2f}× worse"


def sizes(out: Path, prefix: str) -> list[int]:
    """The N of every ``<prefix><N>_<server>.json`` in ``out``, ascending."""
    found = set()
    for path in out.glob(f"{prefix}*_*.json"):
        n = path.stem.rsplit("_", 1)[0][len(prefix):]
        if n.isdigit():
            found.add(int(n))
    return sorted(found)


def transport(out: Path) -> str:
    """How the c2s streams of a run were carried (runs before issue 14 were plaintext)."""
    args = load(out, "args.json") or {}
    return "plaintext" if args.get("plaintext", True) else "STARTTLS"


def connect_table(rows: dict[str, dict[str, Any] | None], add: Callable[[str], None],
                  with_tls: bool = False) -> None:
    add("| server | ok | logins/s | login p50 / p99 ms | server CPU ms/login | "
        "RSS before → after (MB) | RSS kB/session | others CPU % |"
        + (" TLS |" if with_tls else ""))
    add("|---|---|---|---|---|---|---|---|" + ("---|" if with_tls else ""))
    for s, r in rows.items():
        if r is None or "connect" not in r:
            continue
        c, rss = r["connect"], r.get("rss", {})
        tls = c.get("tls") or {}
        add(f"| {s} | {c['results'].get('ok', 0):,} | {fmt(c['per_s'])} | "
            f"{fmt(c['login_ms']['p50'], 0)} / {fmt(c['login_ms']['p99'], 0)} | "
            f"{fmt(c.get('server_cpu_ms_per_op'), 2)} | "
            f"{rss.get('baseline_kb', 0) / 1024:.1f} → "
            f"{rss.get('after_connect_kb', 0) / 1024:.1f} | "
            f"{fmt(rss.get('per_session_kb'))} | {fmt(c['cpu'].get('others_cpu_pct'), 0)} |"
            + (f" {tls.get('version')}, {tls.get('cipher')} |" if with_tls else ""))


def messages_table(rows: dict[str, dict[str, Any] | None], add: Callable[[str], None]) -> None:
    add("| server | deliveries/s | latency p50 / p90 / p99 ms | server CPU % | "
        "server µs CPU/delivery | RSS, late in the run, min → max (MB) | others CPU % |")
    add("|---|---|---|---|---|---|---|")
    for s, r in rows.items():
        if r is None or "messages" not in r:
            continue
        m, lat = r["messages"], r["messages"].get("latency") or {}
        # Samples (one a second) from the late part of the measured window, after the
        # ramp-up: the last three cover the drain and the closing of the sessions.
        rss = [kb for _, kb in r.get("rss_samples_kb", [])][-int(m["window_s"]):-3]
        span = f"{min(rss) / 1024:.1f} → {max(rss) / 1024:.1f}" if rss else "–"
        add(f"| {s} | {fmt(m['delivered_per_s'], 0)} | {fmt(lat.get('p50_ms'))} / "
            f"{fmt(lat.get('p90_ms'))} / {fmt(lat.get('p99_ms'))} | "
            f"{fmt(m['cpu']['server_cpu_pct'], 0)} | "
            f"{fmt(m.get('server_cpu_us_per_delivery'))} | {span} | "
            f"{fmt(m['cpu'].get('others_cpu_pct'), 0)} |")


def tables(out: Path, servers: list[str]) -> str:
    lines: list[str] = []
    add = lines.append
    over = transport(out)
    add(f"c2s streams: **{over}** (SCRAM-SHA-1 where a login is measured)")
    for n in sizes(out, "connect"):
        add(f"\n### connect over {over}, SCRAM-SHA-1, N={n} (server restarted before)\n")
        connect_table({s: load(out, f"connect{n}_{s}.json") for s in servers}, add)
    for n in sizes(out, "directtls"):
        add(f"\n### connect over direct TLS (XEP-0368), SCRAM-SHA-1, N={n} "
            "(tls_bench.py, server restarted before)\n")
        connect_table({s: load(out, f"directtls{n}_{s}.json") for s in servers}, add,
                      with_tls=True)
    for n in sizes(out, "messages"):
        add(f"\n### 1:1 messages over {over}, N={n}, closed loop\n")
        messages_table({s: load(out, f"messages{n}_{s}.json") for s in servers}, add)
    for n in sizes(out, "rate"):
        add(f"\n### 1:1 messages over {over}, N={n}, open loop at 1,000 msgs/s\n")
        messages_table({s: load(out, f"rate{n}_{s}.json") for s in servers}, add)
    presence_table(out, servers, add, over)
    muc_table(out, servers, add, over)
    pep_table(out, servers, add, over)
    add(f"\n### ratios (tercet / prosody, same run, {over})\n")
    add(ratio_table(out))
    return "\n".join(lines)


def presence_table(out: Path, servers: list[str], add: Callable[[str], None],
                   over: str) -> None:
    rows = {s: load(out, f"presence_{s}.json") for s in servers}
    if not any(rows.values()):
        return
    n = next(r["users"] for r in rows.values() if r)
    add(f"\n### presence over {over}, N={n} users x 50 mutual contacts\n")
    add("| server | login: logins/s | login: server CPU ms/login | presences at login | "
        "status: presences/s to contacts | latency p50 / p99 ms | server µs CPU/presence | "
        "RSS after (MB) | others CPU % |")
    add("|---|---|---|---|---|---|---|---|---|")
    for s, r in rows.items():
        if r is None or "status" not in r:
            continue
        lg, st = r["login"], r["status"]
        add(f"| {s} | {fmt(lg['logins_per_s'])} | {fmt(lg['server_cpu_ms_per_login'], 2)} | "
            f"{lg['presences_received']:,} | {fmt(st['delivered_per_s'], 0)} | "
            f"{fmt(st['latency_ms']['p50'], 0)} / {fmt(st['latency_ms']['p99'], 0)} | "
            f"{fmt(st['server_cpu_us_per_delivery'])} | "
            f"{(r['rss_kb']['after_status'] or 0) / 1024:.1f} | "
            f"{fmt(st['cpu'].get('others_cpu_pct'), 0)} |")


def muc_table(out: Path, servers: list[str], add: Callable[[str], None],
              over: str = "plaintext") -> None:
    rows = {(s, n): load(out, f"muc{n}_{s}.json") for n in sizes(out, "muc") for s in servers}
    if not any(rows.values()):
        return
    add(f"\n### muc over {over}, N occupants in one room, 1 sender, closed loop\n")
    add("| server | N | join s (N joins) | deliveries/s | latency p50 / p90 / p99 ms | "
        "server CPU % | server µs CPU/delivery | RSS after run (MB) | others CPU % |")
    add("|---|---|---|---|---|---|---|---|---|")
    for (s, n), r in rows.items():
        if r is None or "muc" not in r:
            continue
        m, lat, join = r["muc"], r["muc"].get("latency") or {}, r.get("muc_join", {})
        add(f"| {s} | {n:,} | {fmt(join.get('seconds'))} | {fmt(m['delivered_per_s'], 0)} | "
            f"{fmt(lat.get('p50_ms'))} / {fmt(lat.get('p90_ms'))} / {fmt(lat.get('p99_ms'))} | "
            f"{fmt(m['cpu']['server_cpu_pct'], 0)} | "
            f"{fmt(m.get('server_cpu_us_per_delivery'))} | "
            f"{r.get('rss', {}).get('after_run_kb', 0) / 1024:.1f} | "
            f"{fmt(m['cpu'].get('others_cpu_pct'), 0)} |")


def pep_table(out: Path, servers: list[str], add: Callable[[str], None],
              over: str = "plaintext") -> None:
    rows = {s: load(out, f"pep_{s}.json") for s in servers}
    if not any(rows.values()):
        return
    add(f"\n### pep over {over}, 1 publisher, 100 online contacts with +notify, "
        "closed loop (1 in flight)\n")
    add("| server | publishes/s | notifications/s | publish → last notification p50 / p99 ms "
        "| publish → iq result p50 ms | server µs CPU/publish | server µs CPU/notification "
        "| errors / lost | server CPU % | others CPU % |")
    add("|---|---|---|---|---|---|---|---|---|---|")
    for s, r in rows.items():
        if r is None or "publish" not in r:
            continue
        p, last = r["publish"], r["publish"]["latency_last_ms"]
        add(f"| {s} | {fmt(p['publishes_per_s'], 0)} | {fmt(p['notifications_per_s'], 0)} | "
            f"{fmt(last['p50'], 2)} / {fmt(last['p99'], 2)} | "
            f"{fmt(p['latency_result_ms']['p50'], 2)} | {fmt(p['server_cpu_us_per_publish'])} "
            f"| {fmt(p['server_cpu_us_per_notification'])} | {p['errors']} / "
            f"{p['lost_publishes']} | {fmt(p['cpu']['server_cpu_pct'], 0)} | "
            f"{fmt(p['cpu'].get('others_cpu_pct'), 0)} |")


def ratio_table(out: Path) -> str:
    def get(name: str, server: str, *path: str) -> Any:
        r = load(out, f"{name}_{server}.json")
        for key in path:
            if not isinstance(r, dict):
                return None
            r = r.get(key)
        return r
    rows: list[tuple[str, str, tuple[str, ...], bool]] = []
    for n in sizes(out, "connect"):
        rows += [
            (f"logins/s, N={n} (higher is better)", f"connect{n}", ("connect", "per_s"), False),
            (f"server CPU ms per SCRAM login, N={n} (lower)", f"connect{n}",
             ("connect", "server_cpu_ms_per_op"), True),
            (f"RSS kB per idle session, N={n} (lower)", f"connect{n}",
             ("rss", "per_session_kb"), True)]
    for n in sizes(out, "directtls"):
        rows += [
            (f"direct TLS: server CPU ms per SCRAM login, N={n} (lower)", f"directtls{n}",
             ("connect", "server_cpu_ms_per_op"), True),
            (f"direct TLS: RSS kB per idle session, N={n} (lower)", f"directtls{n}",
             ("rss", "per_session_kb"), True)]
    for n in sizes(out, "messages"):
        rows += [
            (f"messages/s at saturation, N={n} (higher)", f"messages{n}",
             ("messages", "delivered_per_s"), False),
            (f"server µs CPU per message, N={n} (lower)", f"messages{n}",
             ("messages", "server_cpu_us_per_delivery"), True)]
    for n in sizes(out, "rate"):
        rows += [
            (f"latency p50 ms at 1k/s, N={n} (lower)", f"rate{n}",
             ("messages", "latency", "p50_ms"), True),
            (f"latency p99 ms at 1k/s, N={n} (lower)", f"rate{n}",
             ("messages", "latency", "p99_ms"), True)]
    rows += [
        ("presences/s to contacts (higher)", "presence", ("status", "delivered_per_s"), False),
        ("server CPU per presence (lower)", "presence", ("status", "server_cpu_us_per_delivery"),
         True),
        ("server CPU per login with 50-contact roster (lower)", "presence",
         ("login", "server_cpu_ms_per_login"), True)]
    for n in sizes(out, "muc"):
        rows += [
            (f"MUC fan-out deliveries/s, {n} occupants (higher)", f"muc{n}",
             ("muc", "delivered_per_s"), False),
            (f"server CPU per MUC delivery, {n} occupants (lower)", f"muc{n}",
             ("muc", "server_cpu_us_per_delivery"), True),
            (f"time for {n} occupants to join (lower)", f"muc{n}", ("muc_join", "seconds"),
             True)]
    rows += [
        ("PEP notifications/s, 100 contacts (higher)", "pep",
         ("publish", "notifications_per_s"), False),
        ("server CPU per PEP publish to 100 contacts (lower)", "pep",
         ("publish", "server_cpu_us_per_publish"), True),
    ]
    lines = ["| metric | prosody | tercet | tercet vs prosody |", "|---|---|---|---|"]
    for title, name, path, lower in rows:
        p, t = get(name, "prosody", *path), get(name, "tercet", *path)
        if p is None and t is None:
            continue
        if p and t:
            lines.append(f"| {title} | {fmt(p, 2)} | {fmt(t, 2)} | "
                         f"{verdict(p / t if lower else t / p)} |")
        else:
            lines.append(f"| {title} | {fmt(p, 2)} | {fmt(t, 2)} | – |")
    return "\n".join(lines)


# Smaller sizes and 5 s phases: checks that every scenario runs on both servers, not a
# measurement (the RSS per session of 200 sessions is noisy).
SHORT = {"connect_ns": [200], "direct_tls_ns": [200], "muc_ns": [50], "users": 200,
         "presence_users": 200, "duration": 5.0, "rate_duration": 5.0,
         "presence_duration": 5.0, "muc_duration": 5.0, "pep_duration": 5.0,
         "quiet_wait": 5.0}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=list(SCENARIOS), choices=SCENARIOS)
    ap.add_argument("--servers", nargs="*", default=["prosody", "tercet"])
    ap.add_argument("--plaintext", action="store_true",
                    help="c2s without TLS (default: STARTTLS on every stream)")
    ap.add_argument("--short", action="store_true",
                    help="validation run: N=200, 5 s phases (explicit options still win)")
    ap.add_argument("--data", type=Path, default=DATA,
                    help="data directory of both servers (configs, certificates, accounts)")
    ap.add_argument("--prosody-config", default="prosody", choices=["prosody", "prosody-tuned"])
    ap.add_argument("--prosody-port", type=int, default=5222)
    ap.add_argument("--prosody-tls-port", type=int, default=5223, help="direct TLS")
    ap.add_argument("--tercet-port", type=int, default=5522)
    ap.add_argument("--tercet-tls-port", type=int, default=5523, help="direct TLS")
    ap.add_argument("--connect-ns", nargs="*", type=int, default=[1000, 10000])
    ap.add_argument("--direct-tls-ns", nargs="*", type=int, default=[1000, 10000],
                    help="sessions for the direct TLS scenario")
    ap.add_argument("--connect-procs", type=int, default=2,
                    help="generator processes for logins (client PBKDF2 is the bottleneck)")
    ap.add_argument("--users", type=int, default=1000, help="sessions for messages and rate")
    ap.add_argument("--presence-users", type=int, default=1000)
    ap.add_argument("--presence-mech", default="SCRAM-SHA-1", choices=["PLAIN", "SCRAM-SHA-1"])
    ap.add_argument("--window", type=int, default=2)
    ap.add_argument("--muc-ns", nargs="*", type=int, default=[100, 1000],
                    help="room sizes for the muc scenario")
    ap.add_argument("--duration", type=float, default=20.0, help="messages, closed loop (s)")
    ap.add_argument("--rate-duration", type=float, default=12.0)
    ap.add_argument("--presence-duration", type=float, default=15.0)
    ap.add_argument("--muc-duration", type=float, default=10.0)
    ap.add_argument("--pep-duration", type=float, default=20.0)
    ap.add_argument("--quiet-wait", type=float, default=30.0)
    ap.add_argument("--table", default=None, help="only print the tables of this results dir")
    ap.add_argument("--setup", action="store_true",
                    help="only provision accounts and rosters on both servers (README, Setup)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    if ap.parse_args(argv).short:
        ap.set_defaults(**SHORT)
    cfg = ap.parse_args(argv)
    if cfg.table:
        print(tables(Path(cfg.table), cfg.servers))
        return 0
    cfg.data = cfg.data.resolve()
    # servers.sh and tercet.sh read these: the same data directory and interpreter.
    os.environ["BENCH_DATA"] = str(cfg.data)
    os.environ.setdefault("TERCET_PYTHON", PY)
    if cfg.setup:
        setup(cfg)
        return 0
    raise_fd_limit(cfg)
    out = HERE / "results" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(cfg), indent=1, default=str))
    run_all(cfg, out)
    text = tables(out, cfg.servers)
    (out / "tables.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
