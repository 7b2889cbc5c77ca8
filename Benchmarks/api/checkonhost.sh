#!/usr/bin/env bash
# CheckOnHost (GET /v1/peers/{ip}) under wrk on loopback, with every pool healthy and again while one of
# the answering daemon's pools is frozen (a FUSE mount whose operations hang, as a hard NFS mount whose
# server stopped answering).
#
#   Benchmarks/api/checkonhost.sh [KVMHA_BINARY]
#
# Builds nothing: pass the binary (default .build/release/kvmha; `swift build -c release --product kvmha`).
# Needs wrk, openssl, curl, fusermount and the freezefs venv (scripts/install-test-deps.sh); run as root
# (FUSE). Environment: DURATION (20s), THREADS (1), CONNECTIONS (32), PORT (17733), RUNS (3).
# Everything it starts it stops, also on failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/.build/release/kvmha}
duration=${DURATION:-20s}
threads=${THREADS:-1}
connections=${CONNECTIONS:-32}
port=${PORT:-17733}
runs=${RUNS:-3}
python=${KVMHA_TEST_PYTHON:-$root/.venv/bin/python}

for tool in wrk openssl curl fusermount; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install $tool)" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "no kvmha binary at $bin: swift build -c release --product kvmha" >&2; exit 2; }
[ -x "$python" ] || { echo "no freezefs python at $python: scripts/install-test-deps.sh" >&2; exit 2; }

work=$(mktemp -d /tmp/kvmha-bench-api.XXXXXX)
pids=()
cleanup() {
    rm -f "$work/frozen"
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    fusermount -u "$work/mnt" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

token=$(openssl rand -hex 32)
printf '%s\n' "$token" >"$work/token"
chmod 600 "$work/token"
mkdir -p "$work/p1" "$work/backing" "$work/mnt" "$work/state-a" "$work/state-b"

# Pool p2 reaches daemon A through freezefs; daemon B uses the same files directly.
"$python" "$root/Tests/Harness/freezefs/freezefs.py" "$work/backing" "$work/mnt" --control "$work/frozen" \
    >"$work/freezefs.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q READY "$work/freezefs.log" && break; sleep 0.1; done
grep -q READY "$work/freezefs.log" || { cat "$work/freezefs.log" >&2; exit 1; }

common=(--interval 1s --io-timeout 500ms --dead-after 5s --fence-action none --libvirt-uri test:///default
    --log-level notice)
KVMHA_API_ADDRESS=127.0.0.1 KVMHA_API_PORT=$port KVMHA_API_TOKEN_FILE=$work/token \
    "$bin" serve --host-ip 127.0.0.1 --pool "p1=$work/p1" --pool "p2=$work/mnt" --state-dir "$work/state-a" \
    "${common[@]}" >"$work/a.log" 2>&1 &
pids+=($!)
KVMHA_API_ADDRESS=127.0.0.2 KVMHA_API_PORT=$port KVMHA_API_TOKEN_FILE=$work/token \
    "$bin" serve --host-ip 127.0.0.2 --pool "p1=$work/p1" --pool "p2=$work/backing" --state-dir "$work/state-b" \
    "${common[@]}" >"$work/b.log" 2>&1 &
pids+=($!)

url=http://127.0.0.1:$port/v1/peers/127.0.0.2
ask() { curl -s --max-time 5 -H "Authorization: Bearer $token" "$@"; }
# Polling for readiness is fine here: this is a benchmark, not a test.
for _ in $(seq 300); do ask "$url" | grep -q '"overall":{[^}]*"verdict":"alive"' && break; sleep 0.1; done
ask "$url" | grep -q '"verdict":"alive"' || { echo "peer never became alive" >&2; tail -20 "$work/a.log" >&2; exit 1; }

echo "== kvmha $("$bin" --version), $(nproc) cores, wrk -t$threads -c$connections -d$duration =="
echo "== answer: $(ask "$url")"
# CPU time (user + system, clock ticks) of the answering daemon, A.
ticks() { awk '{print $14 + $15}' "/proc/${pids[1]}/stat"; }
bench() {
    for run in $(seq "$runs"); do
        echo "-- $1, run $run"
        local before after out requests
        before=$(ticks)
        out=$(wrk -t"$threads" -c"$connections" -d"$duration" --latency -H "Authorization: Bearer $token" "$url")
        after=$(ticks)
        grep -E 'Requests/sec|Latency |50%|90%|99%|requests in|Non-2xx|Socket errors' <<<"$out"
        requests=$(awk '/requests in/ {print $1}' <<<"$out")
        awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
            'BEGIN { printf "  daemon CPU per request: %.1f µs\n", t / hz / n * 1e6 }'
    done
}

bench "all pools healthy"

touch "$work/frozen"
# Wait until daemon A has given up on p2 (a beat timed out and the pool thread is stuck).
for _ in $(seq 100); do
    ask "http://127.0.0.1:$port/v1/health" | grep -q '"ioStuckSeconds":[0-9]' && break
    sleep 0.1
done
echo "== p2 frozen: $(ask "http://127.0.0.1:$port/v1/health" | grep -o '"pool":"p2"[^}]*')"
echo "== answer: $(ask "$url")"
bench "p2 frozen"
echo "== answer at the end: $(ask "$url")"
echo "== blocked FUSE operations: $(grep -c BLOCKED "$work/freezefs.log" || true)"
rm -f "$work/frozen"
