"""The soak scenario (bench/soak.py) end to end, shortened to seconds: a real Tercet started
as operators start it (`tercet start`, STARTTLS required, the default modules plus
http_openmetrics), accounts and rosters made by bench/provision.py, and the soak run
against it with a small population: logins, messages, presence, graceful and abrupt
disconnects, a ping every second and the server's loop-lag histogram, sampled every 2 s.

This proves the machinery, not the server's figures: the samples are there and say what
the server holds, the churn and every kind of traffic happened, nothing failed, and the
descriptors came back to the idle baseline once every session closed. The growth
thresholds are deliberately loose for 20 s (an hour's 20 MB/h would flag the warm-up
of any run this short): only gross growth fails it, over 1 MB/s of RSS or one leaked
descriptor a second, or a p99 ten times the first half's (bench/README.md, "Soak")."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import free_port
from procsite import TERCET, admin_socket, c2s_port, init_site, tls_port, wait_port

from tercet.core.config import DEFAULT_MODULES

BENCH = Path(__file__).resolve().parents[2] / "bench"
USERS = 12
ONLINE = 8
DURATION = 20
INTERVAL = 2
#: Loose on purpose (see the module docstring): only gross growth fails a 20 s run.
LENIENT = ["--max-rss-slope", "3600", "--max-fd-slope", "3600",
           "--max-latency-growth", "10", "--fd-slack", "5", "--max-errors", "0"]


def site_with_metrics(directory: Path) -> tuple[Path, int]:
    """`tercet init` with free ports, plus plain HTTP on loopback serving /metrics."""
    config = init_site(directory)
    taken = {c2s_port(config), tls_port(config)}  # picked, not bound yet: not those again
    http = next(p for p in (free_port() for _ in range(10)) if p not in taken)
    modules = ", ".join(f'"{m}"' for m in (*DEFAULT_MODULES, "http_openmetrics"))
    config.write_text(f"http_ports = [{http}]\nhttps_ports = []\n"
                      f'http_interfaces = ["127.0.0.1"]\nlog = "warning"\n'
                      f"modules_enabled = [{modules}]\n" + config.read_text()
                      .replace('log = "info"', ""))
    return config, http


def provision(config: Path) -> None:
    for args in (["accounts"], ["rosters", "--contacts", "4"]):
        out = subprocess.run([sys.executable, str(BENCH / "provision.py"), *args, "--config",
                              str(config), "--users", str(USERS), "--prefix", "soak"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, int]]:
    config, http = site_with_metrics(tmp_path / "site")
    provision(config)
    log = (tmp_path / "server.log").open("w")  # read when the test fails
    proc = subprocess.Popen([*TERCET, "-c", str(config), "start"], stdout=subprocess.DEVNULL,
                            stderr=log, text=True)
    log.close()
    try:
        wait_port(c2s_port(config))
        wait_port(http)
        yield proc, config, http
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        admin_socket(config).unlink(missing_ok=True)


def run_soak(proc: subprocess.Popen[str], config: Path, http: int,
             out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / "soak.py"), "--port", str(c2s_port(config)),
         "--server-pid", str(proc.pid), "--users", str(USERS), "--online", str(ONLINE),
         "--rate", "40", "--presence-rate", "4", "--churn", "1.5", "--abrupt", "0.5",
         "--offline-share", "0.2", "--duration", str(DURATION), "--interval", str(INTERVAL),
         "--warmup", "4", "--settle", "10", "--timeout", "10",
         "--metrics-url", f"http://127.0.0.1:{http}/metrics", "--out", str(out), *LENIENT],
        capture_output=True, text=True, timeout=DURATION + 60)


def test_soak_runs_end_to_end_and_finds_no_gross_growth(
        running: tuple[subprocess.Popen[str], Path, int], tmp_path: Path) -> None:
    proc, config, http = running
    out = tmp_path / "soak.jsonl"
    done = run_soak(proc, config, http, out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == 0, (report["flags"], done.stderr[-3000:])
    assert lines[0]["type"] == "config" and lines[-1] == report
    samples = [r for r in lines if r["type"] == "sample"]
    load = [r for r in samples if r["phase"] == "load"]
    assert [r["phase"] for r in samples[:2]] == ["baseline", "ramp"]
    assert samples[-1]["phase"] == "after"
    assert len(load) == DURATION // INTERVAL

    # Every load sample read the server's process and carried traffic.
    for r in load:
        assert r["rss_kb"] > 10_000 and r["fds"] > r["connections"] >= ONLINE // 2
        assert r["sessions"] > 0 and r["ping_ms"]["p99"] is not None
    # The server's own loop lag came through /metrics.
    assert any(r["server_lag_mean_ms"] is not None for r in load)

    totals = report["totals"]
    assert totals["errors"] == 0 and report["error_texts"] == []
    # Most messages to online accounts arrived (some meet a session as it is churned).
    assert totals["delivered"] > 0.5 * (totals["sent"] - totals["sent_offline"]) > 0
    assert totals["logins"] > ONLINE + 5  # churned sessions were replaced
    assert totals["logouts"] > 0 and totals["resets"] > 0  # both ways of leaving
    assert totals["stored_delivered"] > 0  # offline storage kept and then delivered
    assert totals["presence_received"] > totals["presence_sent"] > 0
    assert report["fds"]["after_close"] <= report["fds"]["baseline"] + 5
    assert report["flags"] == []


def load_soak() -> Any:
    """bench/soak.py as a module (bench/ is scripts, not a package)."""
    if "bench_soak" in sys.modules:
        return sys.modules["bench_soak"]
    spec = importlib.util.spec_from_file_location("bench_soak", BENCH / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_soak"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def synthetic(t: float, rss_mb: float, fds: int, phase: str = "load") -> dict[str, Any]:
    empty = {"p50": None, "p99": None, "max": None}
    return {"type": "sample", "phase": phase, "t": t, "rss_kb": rss_mb * 1024, "fds": fds,
            "connections": 100, "fd_excess": fds - 100, "latency_ms": {**empty, "p99": 5.0},
            "ping_ms": {**empty, "p99": 1.0}, "gen_lag_ms": empty, "server_lag_mean_ms": 0.5,
            "others_cpu_pct": 10.0,
            "error_texts": [], **dict.fromkeys(("logins", "logouts", "resets", "sent_offline",
                                                "skipped", "behind", "stored_delivered",
                                                "bounced", "presence_sent", "presence_received",
                                                "ping_timeouts", "errors"), 0),
            "sent": 1000, "delivered": 1000}


@pytest.mark.parametrize(("rss_per_hour", "fds_per_hour", "after_fds", "flagged"), [
    (0, 0, 20, []),
    (60, 0, 20, ["RSS grows 60.0 MB/h"]),
    (0, 120, 20, ["descriptors beyond the open connections grow 120.0/h"]),
    (0, 0, 40, ["descriptors did not come back to the baseline"]),
])
def test_the_report_flags_growth_after_the_warm_up(rss_per_hour: float, fds_per_hour: float,
                                                   after_fds: int, flagged: list[str]) -> None:
    """An hour sampled every 10 s, a steep warm-up (+30 MB in 5 minutes, left out), then
    the given growth; fds come back to ``after_fds`` against a baseline of 20."""
    soak = load_soak()
    samples = [synthetic(0, 70, 20, "baseline")]
    for k in range(1, 361):
        t = k * 10.0
        warm = min(t, 300) / 300 * 30
        samples.append(synthetic(t, 70 + warm + rss_per_hour * t / 3600,
                                 120 + int(fds_per_hour * t / 3600)))
    samples.append(synthetic(3600.5, 100, after_fds, "after"))
    cfg = {"warmup": 300.0, "duration": 3600.0, "rate": 100.0, "max_rss_slope": 20.0,
           "max_fd_slope": 50.0, "fd_slack": 5, "max_latency_growth": 2.0, "max_errors": 0}
    report = soak.make_report(cfg, samples)
    assert [f for f in report["flags"] if not any(f.startswith(x) for x in flagged)] == []
    assert len(report["flags"]) == len(flagged)
    assert report["rss_slope_mb_per_h"][1] == pytest.approx(rss_per_hour, abs=0.5)


@pytest.mark.parametrize(("late_p99", "flagged"), [(12.0, False), (50.0, True)])
def test_latency_is_flagged_when_it_grows_by_a_factor_and_a_floor(late_p99: float,
                                                                  flagged: bool) -> None:
    """p99 of 5 ms in the first half: 12 ms is more than twice that but within the 10 ms
    floor (jitter on a shared machine), 50 ms is growth."""
    soak = load_soak()
    samples = [synthetic(0, 70, 20, "baseline")]
    for k in range(1, 61):
        sample = synthetic(k * 10.0, 80, 120)
        sample["latency_ms"]["p99"] = 5.0 if k <= 35 else late_p99
        samples.append(sample)
    samples.append(synthetic(600.5, 80, 20, "after"))
    cfg = {"warmup": 100.0, "duration": 600.0, "rate": 100.0, "max_rss_slope": 20.0,
           "max_fd_slope": 50.0, "fd_slack": 5, "max_latency_growth": 2.0, "max_errors": 0}
    report = soak.make_report(cfg, samples)
    assert report["latency_p99_ms"][0] == 5.0
    assert bool(report["flags"]) is flagged, report["flags"]
