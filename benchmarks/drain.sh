#!/usr/bin/env bash
# How fast one worker drains calls to a slow endpoint once they are queued (the sender out of the way).
#
#   bash benchmarks/drain.sh                     # 10,000 calls, 100 ms endpoint, -p 2 -t 128
#   N=20000 DELAY_MS=1000 THREADS=512 bash benchmarks/drain.sh
#
# Starts the C receiver and `dramatiq dispatch.tasks` on the bench vhost (run `make bench` once to
# create it), queues every call with one URL.map, then times reading every result from the first get().
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000} DELAY_MS=${DELAY_MS:-100} PROCESSES=${PROCESSES:-2} THREADS=${THREADS:-128}
PORT=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
cc -O2 -o "$work/receiver" benchmarks/receiver/receiver.c
"$work/receiver" "$PORT" > "$work/receiver.log" 2>&1 &
receiver=$!
export DISPATCH_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/dispatch-bench
export DISPATCH_RESULTS_URL=redis://127.0.0.1:6379/8 DISPATCH_QUEUE=dispatch-drain
.venv/bin/dramatiq dispatch.tasks -p "$PROCESSES" -t "$THREADS" > "$work/worker.log" 2>&1 &
worker=$!
trap 'kill $worker $receiver 2>/dev/null; wait $worker 2>/dev/null; rm -rf "$work"' EXIT
N=$N DELAY_MS=$DELAY_MS PORT=$PORT .venv/bin/python - <<'PY'
import os, time
from dispatch import URL
n, delay_ms, port = int(os.environ["N"]), int(os.environ["DELAY_MS"]), os.environ["PORT"]
URL(f"http://127.0.0.1:{port}/multiply").send(x=1, y=1, delay_ms=delay_ms).get(timeout=60)  # worker up
handles = URL(f"http://127.0.0.1:{port}/multiply").map([{"x": i, "y": 2, "delay_ms": delay_ms} for i in range(n)])
started = time.perf_counter()
assert all(handle.get(timeout=600) == 2 * i for i, handle in enumerate(handles))
print(f"{n} calls, {delay_ms} ms endpoint: drained at {n / (time.perf_counter() - started):,.0f} calls/s")
PY
