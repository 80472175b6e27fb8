#!/usr/bin/env python3
"""MAM (XEP-0313) query latency: one client pages a large archive at random positions.

Logs in as ``--user`` (PLAIN over plaintext c2s, as the bench configs allow; resource
bind, no presence), then issues ``--queries`` MAM queries one after the other, each an
iq set ``<query xmlns='urn:xmpp:mam:2'>`` with an RSM set asking for a ``--page`` -item
page right after (``<after>id</after>``) or right before (``<before>id</before>``) an id
picked at random from ``--ids`` (the archive's ids in order, written by mam_fill.py);
the two kinds alternate. Latency = iq sent → iq result received (all ``<result/>``
messages come before it). Every page is checked: exactly ``--page`` results, the first
and last ids the ones expected from the id list, and the iq result carries ``<fin>``.
``--warmup`` queries first, not measured. Server CPU (utime+stime of ``--server-pid`` and
its descendants) over the measured queries gives ms CPU per query. Bounded: each query
times out after ``--timeout`` s, the whole phase after ``--max-seconds``.

    python bench/mam_bench.py --port 5522 --ids /tmp/benchdata/mam-ids-tercet.txt \
        --server-pid PID --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import re
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "bench"
sys.path.insert(0, str(SHARED))
import xmppbench as xb  # noqa: E402  (CPU accounting and quiet-wait of the shared generator)

NS_MAM = "urn:xmpp:mam:2"
RESULT_RX = re.compile(rb"<result\b([^>]*)>")
ID_RX = re.compile(rb"(?<![\w-])id=['\"]([^'\"]+)['\"]")


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float) -> None:
        self.r, self.w, self.timeout = reader, writer, timeout
        self.buf = b""

    def send(self, data: str) -> None:
        self.w.write(data.encode())

    async def until(self, rx: re.Pattern[bytes]) -> re.Match[bytes]:
        """Read until ``rx`` matches the buffer; consume up to the end of the match."""
        deadline = time.monotonic() + self.timeout
        while True:
            m = rx.search(self.buf)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timeout waiting for {rx.pattern!r}")
            chunk = await asyncio.wait_for(self.r.read(1 << 16), left)
            if not chunk:
                raise ConnectionError(f"closed while waiting for {rx.pattern!r}: "
                                      f"{self.buf[-300:]!r}")
            self.buf += chunk

    def consume(self, m: re.Match[bytes]) -> bytes:
        data, self.buf = self.buf[:m.end()], self.buf[m.end():]
        return data

    def header(self, domain: str) -> None:
        self.send(f"<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' "
                  "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")

    async def login(self, domain: str, user: str, password: str) -> None:
        self.header(domain)
        self.consume(await self.until(re.compile(rb"</stream:features>")))
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                  f"{token}</auth>")
        m = await self.until(re.compile(rb"<success\b[^>]*(/>|>.*?</success>)|<failure\b",
                                        re.S))
        if m.group(0).startswith(b"<failure"):
            raise RuntimeError("authentication failed")
        self.consume(m)
        self.header(domain)
        self.consume(await self.until(re.compile(rb"</stream:features>")))
        self.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  "<resource>mambench</resource></bind></iq>")
        self.consume(await self.until(re.compile(rb"<iq\b[^>]*id=['\"]bind['\"].*?</iq>", re.S)))

    async def query(self, n: int, kind: str, ref: str, page: int) -> tuple[list[bytes], bytes]:
        """One MAM query; returns (result ids, the iq result)."""
        qid = f"q{n}"
        self.send(f"<iq type='set' id='{qid}'><query xmlns='{NS_MAM}' queryid='{qid}'>"
                  f"<set xmlns='http://jabber.org/protocol/rsm'><max>{page}</max>"
                  f"<{kind}>{ref}</{kind}></set></query></iq>")
        end = re.compile(rb"<iq\b[^>]*id=['\"]" + qid.encode() + rb"['\"][^>]*(/>|>.*?</iq>)",
                         re.S)
        data = self.consume(await self.until(end))
        ids = []
        for m in RESULT_RX.finditer(data):
            found = ID_RX.search(m.group(1))
            if found:
                ids.append(found.group(1))
        return ids, data[data.rfind(b"<iq"):]


async def run(cfg: argparse.Namespace) -> dict:
    ids = [line.strip() for line in Path(cfg.ids).read_text().splitlines() if line.strip()]
    rng = random.Random(cfg.seed)
    pids = xb.proc_tree(cfg.server_pid) if cfg.server_pid else []
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(cfg.host, cfg.port), cfg.timeout)
    c = Client(reader, writer, cfg.timeout)
    await c.login(cfg.domain, cfg.user, cfg.password)
    waited = others_before = None
    lat_us: list[float] = []
    errors: list[str] = []
    cpu = {}
    total = cfg.warmup + cfg.queries
    deadline = time.monotonic() + cfg.max_seconds
    meter = xb.CpuMeter(pids)
    gen0 = xb.self_cpu_s()
    for n in range(total):
        if n == cfg.warmup:
            if cfg.quiet_wait:
                waited, others_before = xb.wait_quiet(pids, cfg.quiet_wait, 15.0, cfg.label)
            meter.start()
            gen0 = xb.self_cpu_s()
        if time.monotonic() > deadline:
            errors.append(f"stopped at query {n}: --max-seconds reached")
            break
        kind = "after" if n % 2 == 0 else "before"
        if kind == "after":
            i = rng.randrange(0, len(ids) - cfg.page)
            expect = (ids[i + 1], ids[i + cfg.page])
        else:
            i = rng.randrange(cfg.page, len(ids))
            expect = (ids[i - cfg.page], ids[i - 1])
        t0 = time.perf_counter()
        got, iq = await c.query(n, kind, ids[i], cfg.page)
        dt = (time.perf_counter() - t0) * 1e6
        ok = (b"type='result'" in iq or b'type="result"' in iq) and b"<fin" in iq
        if not ok or len(got) != cfg.page or (got[0].decode(), got[-1].decode()) != expect:
            errors.append(f"query {n} ({kind} #{i}): {len(got)} results, "
                          f"first/last {got[:1]}/{got[-1:]}, iq {iq[:200]!r}")
        if n >= cfg.warmup:
            lat_us.append(dt)
    if lat_us:
        cpu = meter.stop(xb.self_cpu_s() - gen0)
        cpu = xb.add_others(cpu) if pids else cpu
    writer.write(b"</stream:stream>")
    try:
        await asyncio.wait_for(writer.drain(), 2)
    finally:
        writer.close()
    summary = xb.summarize_lat_us(lat_us) or {}
    n_ok = len(lat_us)
    result = {
        "label": cfg.label, "user": cfg.user, "archive_size": len(ids), "page": cfg.page,
        "queries": n_ok, "errors": errors[:20], "error_count": len(errors),
        "latency": summary,
        "mean_ms": round(sum(lat_us) / n_ok / 1000, 3) if n_ok else None,
        "cpu": cpu, "quiet_wait_s": waited, "others_before_pct": others_before,
        "server_cpu_ms_per_query": (round(1000 * cpu["server_cpu_s"] / n_ok, 3)
                                    if n_ok and cpu.get("server_cpu_s") is not None else None),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5522)
    ap.add_argument("--domain", default="localhost")
    ap.add_argument("--user", default="puser1")
    ap.add_argument("--password", default="pass")
    ap.add_argument("--ids", required=True, help="archive ids in order (mam_fill.py)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--page", type=int, default=50)
    ap.add_argument("--seed", type=int, default=313)
    ap.add_argument("--timeout", type=float, default=10.0, help="per query / login step (s)")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="bound on the whole run")
    ap.add_argument("--server-pid", type=int, action="append", default=[])
    ap.add_argument("--quiet-wait", type=float, default=0.0)
    ap.add_argument("--label", default="")
    ap.add_argument("--json", default=None)
    cfg = ap.parse_args(argv)
    xb.check_loopback(cfg.host)
    result = asyncio.run(run(cfg))
    lat = result["latency"]
    print(f"[{cfg.label}] {result['queries']} MAM queries ({cfg.page}-item pages, archive of "
          f"{result['archive_size']:,}): p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms, "
          f"server CPU {result['server_cpu_ms_per_query']} ms/query, "
          f"errors {result['error_count']}", flush=True)
    if cfg.json:
        Path(cfg.json).write_text(json.dumps(result, indent=1))
    return 0 if result["error_count"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
