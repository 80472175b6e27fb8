#!/bin/bash
# Start/stop Tercet for the benchmark harness (like ../../shared/bench/servers.sh does for
# Prosody): runs under $TERCET_PYTHON (default python3, which needs uvloop installed), records the launcher PID in
# /tmp/benchdata/tercet.launch.pid and only ever signals that PID.
# Usage: bench/tercet.sh start|stop|pid   (env TERCET_BENCH_CONFIG overrides the config)
set -u
B=$(cd "$(dirname "$0")" && pwd)
D=${BENCH_DATA:-/tmp/benchdata}
PY=${TERCET_PYTHON:-python3}
CFG=${TERCET_BENCH_CONFIG:-$B/tercet-bench.toml}
PIDF=$D/tercet.launch.pid
mkdir -p "$D/tercet"
case "${1:-}" in
 start)
   if [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; then
     echo "already running (pid $(cat "$PIDF"))"; exit 1; fi
   rm -f "$D/tercet/tercet.pid"
   # exec: the launcher PID is the server's PID (no wrapper process to account for).
   setsid bash -c "ulimit -n \$(ulimit -Hn); cd '$B/..'; exec '$PY' -m tercet -c '$CFG' start" \
     >"$D/tercet/stdout.log" 2>&1 </dev/null &
   echo $! > "$PIDF"
   # wait (bounded: 30 s) until the c2s port accepts connections
   port=$(sed -n 's/^c2s_ports = \[\([0-9]*\)\].*/\1/p' "$CFG")
   for _ in $(seq 1 300); do
     if ! kill -0 "$(cat "$PIDF")" 2>/dev/null; then
       echo "tercet exited; see $D/tercet/stdout.log"; cat "$D/tercet/stdout.log"; rm -f "$PIDF"; exit 1; fi
     (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && { echo "started tercet (pid $(cat "$PIDF"), port $port)"; exit 0; }
     sleep 0.1
   done
   echo "tercet did not open port $port within 30 s"; exit 1 ;;
 stop)
   [ -f "$PIDF" ] || { echo "no pid file for tercet"; exit 0; }
   pid=$(cat "$PIDF")
   kill -TERM "$pid" 2>/dev/null
   for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
   kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
   rm -f "$PIDF"; echo "stopped tercet ($pid)" ;;
 pid)
   cat "$PIDF" ;;
 *) echo "usage: $0 start|stop|pid"; exit 1 ;;
esac
