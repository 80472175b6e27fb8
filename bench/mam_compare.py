#!/usr/bin/env python3
"""MAM (XEP-0313) benchmark, Tercet beside Prosody 0.12 in one run (bench/README.md, "MAM").

1. Archive write overhead: the shared generator's 1:1 messages scenario (N=1000, closed
   loop, window 2, 20 s) against prosody (shared config, no mod_mam), prosody-mam
   (prosody-mam.cfg.lua: + mod_mam, archive on SQL/SQLite3), tercet (tercet-bench.toml)
   and tercet-mam (tercet-bench-mam.toml: + mam), each freshly restarted.
2. Fill: puser1's archive gets 100,000 messages on both servers (mam_fill.py, servers
   stopped).
3. Query latency: mam_bench.py, 200 random 50-item pages (+20 warm-up) on prosody-mam and
   tercet-mam, each freshly restarted.

    python bench/mam_compare.py                      # ~8 minutes
    python bench/mam_compare.py --table bench/results/mam-<time>
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import DATA, HERE, PY, SHARED, Target, bench, fmt, load, verdict  # noqa: E402

PROSODY_MAM_CFG = DATA / "prosody" / "prosody-mam.cfg.lua"
PROSODY_DB = DATA / "prosody" / "data" / "prosody-mam.sqlite"


def targets() -> dict[str, Target]:
    servers = str(SHARED / "servers.sh")
    tercet = str(HERE / "tercet.sh")
    # Prosody with our config: started exactly as servers.sh starts it (as user prosody,
    # setsid, launcher PID recorded), stopped by servers.sh's generic "stop <name>".
    start_pm = ["bash", "-c", (
        f"set -e; mkdir -p {DATA}/prosody/data; cp {HERE}/prosody-mam.cfg.lua {PROSODY_MAM_CFG}; "
        f"chown -R prosody:prosody {DATA}/prosody; cd {DATA}/prosody; "
        "setsid setpriv --reuid=prosody --regid=prosody --init-groups env HOME=/var/lib/prosody "
        f"bash -c \"ulimit -n $(ulimit -Hn); exec prosody -F --config {PROSODY_MAM_CFG}\" "
        f">{DATA}/prosody/stdout.log 2>&1 </dev/null & echo $! > {DATA}/prosody-mam.launch.pid")]
    tercet_mam = ["env", f"TERCET_BENCH_CONFIG={HERE}/tercet-bench-mam.toml", tercet]
    return {
        "prosody": Target("prosody", 5222, [servers, "start", "prosody"],
                          [servers, "stop", "prosody"], DATA / "prosody.launch.pid"),
        "prosody-mam": Target("prosody-mam", 5222, start_pm, [servers, "stop", "prosody-mam"],
                              DATA / "prosody-mam.launch.pid"),
        "tercet": Target("tercet", 5522, [tercet, "start"], [tercet, "stop"],
                         DATA / "tercet.launch.pid"),
        "tercet-mam": Target("tercet-mam", 5522, [*tercet_mam, "start"], [*tercet_mam, "stop"],
                             DATA / "tercet.launch.pid"),
    }


def run_all(cfg: argparse.Namespace, out: Path) -> None:
    ts = targets()
    common = ["--quiet-wait", str(cfg.quiet_wait)]
    if "messages" in cfg.only:
        print("== messages N=1000 closed loop, mam off/on", flush=True)
        for name in ("prosody", "prosody-mam", "tercet", "tercet-mam"):
            t = ts[name]
            pid = t.restart()
            path = out / f"messages_{name}.json"
            try:
                bench([PY, str(SHARED / "xmppbench.py"), "--port", str(t.port), "--server-pid",
                       str(pid), "--label", name, "--json", str(path), "--scenario", "messages",
                       "--users", "1000", "--window", "2", "--duration", str(cfg.duration),
                       *common], pid, path)
            finally:
                t.stop()
    if "fill" in cfg.only:
        print(f"== fill: {cfg.archive:,} messages for puser1 on both", flush=True)
        for name in ("prosody-mam", "tercet-mam"):  # a start creates Prosody's table
            ts[name].restart()
            ts[name].stop()
        subprocess.run([PY, str(HERE / "mam_fill.py"), "prosody", "--prosody-db",
                        str(PROSODY_DB), "--messages", str(cfg.archive), "--ids-out",
                        str(DATA / "mam-ids-prosody.txt")], check=True, timeout=600)
        subprocess.run(["chown", "prosody:prosody", str(PROSODY_DB)], check=True)
        subprocess.run([PY, str(HERE / "mam_fill.py"), "tercet", "--messages",
                        str(cfg.archive), "--ids-out", str(DATA / "mam-ids-tercet.txt")],
                       check=True, timeout=600)
    if "query" in cfg.only:
        print(f"== MAM queries: {cfg.queries} random {cfg.page}-item pages", flush=True)
        for name, ids in (("prosody-mam", "mam-ids-prosody.txt"),
                          ("tercet-mam", "mam-ids-tercet.txt")):
            t = ts[name]
            pid = t.restart()
            path = out / f"query_{name}.json"
            cmd = [PY, str(HERE / "mam_bench.py"), "--port", str(t.port), "--server-pid",
                   str(pid), "--label", name, "--json", str(path), "--ids", str(DATA / ids),
                   "--queries", str(cfg.queries), "--page", str(cfg.page), *common]
            print("   $", " ".join(cmd), flush=True)
            try:
                subprocess.run(cmd, check=False, timeout=600)
            finally:
                t.stop()


def tables(out: Path) -> str:
    lines: list[str] = []
    add = lines.append
    rows = {n: load(out, f"messages_{n}.json")
            for n in ("prosody", "prosody-mam", "tercet", "tercet-mam")}
    if any(rows.values()):
        add("### 1:1 messages, N=1000, closed loop (window 2), mam off / on\n")
        add("| server | mam | deliveries/s | latency p50 / p99 ms | server CPU % | "
            "server µs CPU/delivery | others CPU % |")
        add("|---|---|---|---|---|---|---|")
        for n, r in rows.items():
            if r is None:
                continue
            m, lat = r["messages"], r["messages"].get("latency") or {}
            add(f"| {n.split('-')[0]} | {'on' if n.endswith('mam') else 'off'} | "
                f"{fmt(m['delivered_per_s'], 0)} | {fmt(lat.get('p50_ms'))} / "
                f"{fmt(lat.get('p99_ms'))} | {fmt(m['cpu']['server_cpu_pct'], 0)} | "
                f"{fmt(m.get('server_cpu_us_per_delivery'))} | "
                f"{fmt(m['cpu'].get('others_cpu_pct'), 0)} |")
        add("\n| server | deliveries/s, mam on ÷ off | µs CPU/delivery added by mam |")
        add("|---|---|---|")
        for s in ("prosody", "tercet"):
            off, on = rows.get(s), rows.get(f"{s}-mam")
            if off and on:
                a, b = off["messages"], on["messages"]
                add(f"| {s} | {b['delivered_per_s'] / a['delivered_per_s']:.2f} | "
                    f"{b['server_cpu_us_per_delivery'] - a['server_cpu_us_per_delivery']:+.1f} |")
    q = {n: load(out, f"query_{n}.json") for n in ("prosody-mam", "tercet-mam")}
    if any(q.values()):
        add("\n### MAM query, random 50-item pages of a 100,000-message archive\n")
        add("| server | queries | errors | latency p50 / p90 / p99 / max ms | mean ms | "
            "server CPU ms/query | others CPU % |")
        add("|---|---|---|---|---|---|---|")
        for n, r in q.items():
            if r is None:
                continue
            lat = r["latency"]
            add(f"| {n.split('-')[0]} | {r['queries']} | {r['error_count']} | "
                f"{fmt(lat.get('p50_ms'), 2)} / {fmt(lat.get('p90_ms'), 2)} / "
                f"{fmt(lat.get('p99_ms'), 2)} / {fmt(lat.get('max_ms'), 2)} | "
                f"{fmt(r['mean_ms'], 2)} | {fmt(r['server_cpu_ms_per_query'], 2)} | "
                f"{fmt(r['cpu'].get('others_cpu_pct'), 0)} |")
    pm, tm = rows.get("prosody-mam"), rows.get("tercet-mam")
    if pm and tm:
        add("\n| metric | prosody | tercet | tercet vs prosody |\n|---|---|---|---|")
        a, b = pm["messages"], tm["messages"]
        add(f"| messages/s with mam (higher) | {fmt(a['delivered_per_s'], 0)} | "
            f"{fmt(b['delivered_per_s'], 0)} | "
            f"{verdict(b['delivered_per_s'] / a['delivered_per_s'])} |")
        add(f"| server µs CPU per delivery with mam (lower) | "
            f"{fmt(a['server_cpu_us_per_delivery'])} | {fmt(b['server_cpu_us_per_delivery'])} | "
            f"{verdict(a['server_cpu_us_per_delivery'] / b['server_cpu_us_per_delivery'])} |")
        if q.get("prosody-mam") and q.get("tercet-mam"):
            for k in ("p50_ms", "p99_ms"):
                pa, tb = q["prosody-mam"]["latency"][k], q["tercet-mam"]["latency"][k]
                add(f"| MAM page latency {k[:3]} ms (lower) | {fmt(pa, 2)} | {fmt(tb, 2)} | "
                    f"{verdict(pa / tb)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=["messages", "fill", "query"],
                    choices=["messages", "fill", "query"])
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--archive", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--page", type=int, default=50)
    ap.add_argument("--quiet-wait", type=float, default=30.0)
    ap.add_argument("--out", default=None, help="results dir (default results/mam-<time>)")
    ap.add_argument("--table", default=None)
    cfg = ap.parse_args(argv)
    if cfg.table:
        print(tables(Path(cfg.table)))
        return 0
    out = Path(cfg.out) if cfg.out else HERE / "results" / time.strftime("mam-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(cfg), indent=1))
    run_all(cfg, out)
    text = tables(out)
    (out / "tables.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    os.environ.setdefault("TERCET_PYTHON", PY)  # tercet.sh runs the server with it
    sys.exit(main())
