#!/usr/bin/env python3
"""Tercet and Prosody side by side, in one run on one machine (bench/README.md).

Runs each scenario against each server in turn (pairs close in time), restarting the server
before the runs that need a clean process, and prints markdown tables with the ratios.
Raw JSON goes to bench/results/<timestamp>/ (git-ignored).

    python3 bench/compare.py                  # everything (~15 minutes)
    python3 bench/compare.py --only messages  # one scenario
    python3 bench/compare.py --table results/20261122-0300   # tables again

Prerequisites (README, "Setup"): Prosody 0.12 installed, accounts user1..user5000 and
puser1..puser1000 (with 50-contact rosters) provisioned on both servers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
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
DATA = Path("/tmp/benchdata")
SCENARIOS = ("connect", "messages", "rate", "presence", "muc", "pep")


class Target:
    """One server under test: how to start and stop it, its port and its PID."""

    def __init__(self, name: str, port: int, start: list[str], stop: list[str],
                 pidfile: Path) -> None:
        self.name, self.port, self._start, self._stop = name, port, start, stop
        self.pidfile = pidfile

    def start(self) -> int:
        subprocess.run(self._start, check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # bounded wait for the port
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                time.sleep(1.0)  # let it finish loading modules after listening
                return self.pid()
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not open port {self.port}")

    def stop(self) -> None:
        subprocess.run(self._stop, check=False, capture_output=True, timeout=60)

    def restart(self) -> int:
        self.stop()
        return self.start()

    def pid(self) -> int:
        return int(self.pidfile.read_text().strip())


def prosody_elsewhere(prosody_config: str, port: int) -> Target:
    """Prosody with the shared config but c2s on ``port`` (when 5222 is taken by a process
    that is not ours): the config is copied with only ``c2s_ports`` changed and started as
    servers.sh starts it (as user prosody); servers.sh stops it by the recorded PID."""
    name = f"{prosody_config}-{port}"
    text = (SHARED / "configs" / f"{prosody_config}.cfg.lua").read_text()
    assert "c2s_ports = { 5222 }" in text
    cfg = DATA / "prosody" / f"{name}.cfg.lua"
    start = ["bash", "-c", (
        f"set -e; mkdir -p {DATA}/prosody/data; "
        f"cat > {cfg} <<'EOF'\n{text.replace('c2s_ports = { 5222 }', f'c2s_ports = {{ {port} }}')}"
        f"\nEOF\nchown -R prosody:prosody {DATA}/prosody; cd {DATA}/prosody; "
        "setsid setpriv --reuid=prosody --regid=prosody --init-groups env HOME=/var/lib/prosody "
        f"bash -c \"ulimit -n $(ulimit -Hn); exec prosody -F --config {cfg}\" "
        f">{DATA}/prosody/stdout.log 2>&1 </dev/null & echo $! > {DATA}/{name}.launch.pid")]
    return Target("prosody", port, start, [str(SHARED / "servers.sh"), "stop", name],
                  DATA / f"{name}.launch.pid")


def targets(prosody_config: str, prosody_port: int = 5222) -> dict[str, Target]:
    servers = str(SHARED / "servers.sh")
    tercet = str(HERE / "tercet.sh")
    if prosody_port != 5222:
        return {"prosody": prosody_elsewhere(prosody_config, prosody_port),
                "tercet": Target("tercet", 5522, [tercet, "start"], [tercet, "stop"],
                                 DATA / "tercet.launch.pid")}
    return {
        "prosody": Target("prosody", 5222, [servers, "start", prosody_config],
                          [servers, "stop", prosody_config],
                          DATA / f"{prosody_config}.launch.pid"),
        "tercet": Target("tercet", 5522, [tercet, "start"], [tercet, "stop"],
                         DATA / "tercet.launch.pid"),
    }


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
    ts = targets(cfg.prosody_config, cfg.prosody_port)
    order = [ts[n] for n in cfg.servers]
    common = ["--quiet-wait", str(cfg.quiet_wait)]
    steps: list[tuple[str, Callable[[Target], None]]] = []
    if "connect" in cfg.only:
        for n in cfg.connect_ns:
            def connect(t: Target, n: int = n) -> None:
                pid = t.restart()
                xmppbench(t, pid, out, f"connect{n}", "--scenario", "connect", "--users",
                          str(n), "--mech", "SCRAM-SHA-1", "--concurrency", "100",
                          "--procs", str(cfg.connect_procs), *common)
            steps.append((f"connect N={n}", connect))
    if "messages" in cfg.only:
        def messages(t: Target) -> None:
            pid = t.restart()
            xmppbench(t, pid, out, "messages1000", "--scenario", "messages", "--users", "1000",
                      "--window", str(cfg.window), "--duration", str(cfg.duration), *common)
        steps.append(("messages N=1000 closed loop", messages))
    if "rate" in cfg.only:
        def rate(t: Target) -> None:
            pid = t.restart()
            xmppbench(t, pid, out, "rate1000", "--scenario", "messages", "--users", "1000",
                      "--rate", "1000", "--duration", "12", "--warmup", "2", *common)
        steps.append(("messages N=1000 at 1000/s", rate))
    if "presence" in cfg.only:
        def presence(t: Target) -> None:
            pid = t.restart()
            path = out / f"presence_{t.name}.json"
            bench([PY, str(HERE / "presence_bench.py"), "--port", str(t.port), "--server-pid",
                   str(pid), "--label", t.name, "--json", str(path), "--users", "1000",
                   "--user-prefix", "puser", "--contacts", "50", "--duration", "15",
                   "--mech", cfg.presence_mech, *common], pid, path)
        steps.append(("presence N=1000 x 50 contacts", presence))
    if "muc" in cfg.only:
        for n in cfg.muc_ns:
            def muc(t: Target, n: int = n) -> None:
                # As the shared baseline: one room, one sender, closed loop (window 2),
                # 10 s run of which 8 s measured; the join phase is timed first.
                pid = t.restart()
                xmppbench(t, pid, out, f"muc{n}", "--scenario", "muc", "--users", str(n),
                          "--window", str(cfg.window), "--duration", "10", "--warmup", "2",
                          *common)
            steps.append((f"muc N={n} occupants, 1 sender", muc))
    if "pep" in cfg.only:
        def pep(t: Target) -> None:
            pid = t.restart()
            path = out / f"pep_{t.name}.json"
            bench([PY, str(HERE / "pep_bench.py"), "--port", str(t.port), "--server-pid",
                   str(pid), "--label", t.name, "--json", str(path), "--contacts", "100",
                   "--window", "1", "--duration", "20", "--warmup", "3", *common], pid, path)
        steps.append(("pep: 1 publisher, 100 contacts with +notify", pep))
    for title, step in steps:
        print(f"== {title}", flush=True)
        for t in order:
            step(t)
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


def tables(out: Path, servers: list[str]) -> str:
    lines: list[str] = []
    add = lines.append
    for n in (1000, 5000):
        rows = {s: load(out, f"connect{n}_{s}.json") for s in servers}
        if not any(rows.values()):
            continue
        add(f"\n### connect, SCRAM-SHA-1, N={n} (server restarted before)\n")
        add("| server | ok | logins/s | login p50 / p99 ms | server CPU ms/login | "
            "RSS before → after (MB) | RSS kB/session | others CPU % |")
        add("|---|---|---|---|---|---|---|---|")
        for s, r in rows.items():
            if r is None:
                continue
            c, rss = r["connect"], r.get("rss", {})
            add(f"| {s} | {c['results'].get('ok', 0):,} | {fmt(c['per_s'])} | "
                f"{fmt(c['login_ms']['p50'], 0)} / {fmt(c['login_ms']['p99'], 0)} | "
                f"{fmt(c.get('server_cpu_ms_per_op'), 2)} | "
                f"{rss.get('baseline_kb', 0) / 1024:.1f} → "
                f"{rss.get('after_connect_kb', 0) / 1024:.1f} | "
                f"{fmt(rss.get('per_session_kb'))} | {fmt(c['cpu'].get('others_cpu_pct'), 0)} |")
    for name, title in (("messages1000", "1:1 messages, N=1000, closed loop"),
                        ("rate1000", "1:1 messages, N=1000, open loop at 1,000 msgs/s")):
        rows = {s: load(out, f"{name}_{s}.json") for s in servers}
        if not any(rows.values()):
            continue
        add(f"\n### {title}\n")
        add("| server | deliveries/s | latency p50 / p90 / p99 ms | server CPU % | "
            "server µs CPU/delivery | RSS, last 15 s of the run, min → max (MB) | "
            "others CPU % |")
        add("|---|---|---|---|---|---|---|")
        for s, r in rows.items():
            if r is None:
                continue
            m, lat = r["messages"], r["messages"].get("latency") or {}
            # Samples (one a second) from the late part of the measured window, after the
            # ramp-up: the last three cover the drain and the closing of the sessions.
            rss = [kb for _, kb in r.get("rss_samples_kb", [])][-int(m["window_s"]):-3]
            add(f"| {s} | {fmt(m['delivered_per_s'], 0)} | {fmt(lat.get('p50_ms'))} / "
                f"{fmt(lat.get('p90_ms'))} / {fmt(lat.get('p99_ms'))} | "
                f"{fmt(m['cpu']['server_cpu_pct'], 0)} | "
                f"{fmt(m.get('server_cpu_us_per_delivery'))} | "
                f"{min(rss) / 1024:.1f} → {max(rss) / 1024:.1f} | "
                f"{fmt(m['cpu'].get('others_cpu_pct'), 0)} |" if rss else "")
    rows = {s: load(out, f"presence_{s}.json") for s in servers}
    if any(rows.values()):
        add("\n### presence, N=1000 users x 50 mutual contacts\n")
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
    muc_table(out, servers, add)
    pep_table(out, servers, add)
    add("\n### ratios (tercet / prosody, same run)\n")
    add(ratio_table(out))
    return "\n".join(lines)


def muc_table(out: Path, servers: list[str], add: Callable[[str], None]) -> None:
    rows = {(s, n): load(out, f"muc{n}_{s}.json") for n in (100, 1000) for s in servers}
    if not any(rows.values()):
        return
    add("\n### muc, N occupants in one room, 1 sender, closed loop, 8 s measured\n")
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


def pep_table(out: Path, servers: list[str], add: Callable[[str], None]) -> None:
    rows = {s: load(out, f"pep_{s}.json") for s in servers}
    if not any(rows.values()):
        return
    add("\n### pep, 1 publisher, 100 online contacts with +notify, closed loop (1 in flight)\n")
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
    rows = [
        ("logins/s, N=1000 (higher is better)", "connect1000", ("connect", "per_s"), False),
        ("server CPU per login, N=1000 (lower)", "connect1000",
         ("connect", "server_cpu_ms_per_op"), True),
        ("RSS per idle session, N=1000 (lower)", "connect1000", ("rss", "per_session_kb"), True),
        ("RSS per idle session, N=5000 (lower)", "connect5000", ("rss", "per_session_kb"), True),
        ("messages/s at saturation (higher)", "messages1000", ("messages", "delivered_per_s"),
         False),
        ("server CPU per message (lower)", "messages1000",
         ("messages", "server_cpu_us_per_delivery"), True),
        ("latency p50 at 1k/s (lower)", "rate1000", ("messages", "latency", "p50_ms"), True),
        ("latency p99 at 1k/s (lower)", "rate1000", ("messages", "latency", "p99_ms"), True),
        ("presences/s to contacts (higher)", "presence", ("status", "delivered_per_s"), False),
        ("server CPU per presence (lower)", "presence", ("status", "server_cpu_us_per_delivery"),
         True),
        ("server CPU per login with 50-contact roster (lower)", "presence",
         ("login", "server_cpu_ms_per_login"), True),
        ("MUC fan-out deliveries/s, 100 occupants (higher)", "muc100",
         ("muc", "delivered_per_s"), False),
        ("server CPU per MUC delivery, 100 occupants (lower)", "muc100",
         ("muc", "server_cpu_us_per_delivery"), True),
        ("MUC fan-out deliveries/s, 1000 occupants (higher)", "muc1000",
         ("muc", "delivered_per_s"), False),
        ("time for 1000 occupants to join (lower)", "muc1000", ("muc_join", "seconds"), True),
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=list(SCENARIOS), choices=SCENARIOS)
    ap.add_argument("--servers", nargs="*", default=["prosody", "tercet"])
    ap.add_argument("--prosody-config", default="prosody", choices=["prosody", "prosody-tuned"])
    ap.add_argument("--prosody-port", type=int, default=5222,
                    help="run Prosody's c2s on another port (a copy of its config)")
    ap.add_argument("--connect-ns", nargs="*", type=int, default=[1000, 5000])
    ap.add_argument("--connect-procs", type=int, default=2,
                    help="generator processes for logins (client PBKDF2 is the bottleneck)")
    ap.add_argument("--presence-mech", default="SCRAM-SHA-1", choices=["PLAIN", "SCRAM-SHA-1"])
    ap.add_argument("--window", type=int, default=2)
    ap.add_argument("--muc-ns", nargs="*", type=int, default=[100, 1000],
                    help="room sizes for the muc scenario")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--quiet-wait", type=float, default=30.0)
    ap.add_argument("--table", default=None, help="only print the tables of this results dir")
    cfg = ap.parse_args(argv)
    if cfg.table:
        print(tables(Path(cfg.table), cfg.servers))
        return 0
    out = HERE / "results" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(cfg), indent=1))
    run_all(cfg, out)
    text = tables(out, cfg.servers)
    (out / "tables.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
