#!/usr/bin/env bash
# The HA drill's detection part at the DEFAULT timing (issue 8), and the sidecar's idle cost.
#
#   Benchmarks/drill/detection.sh [--runs N] [--idle SECONDS] [--bin KVMHA] [--out FILE]
#
# Builds the drill's lab (Tests/Harness/drill/drill-net.sh: namespaces A, B, C, storage, manager; nfs-ganesha
# NFSv3; a private libvirtd per host with two running VMs each) and runs `kvmha serve` on every host with the
# default timing (interval 5 s, ioTimeout 4 s, deadAfter 30 s, fenceAfter 20 s + fenceDelay 5 s, fenceAction
# log), its pool an nfs:// URL through libnfs, its API on the management address.
#
# 1. Idle cost: once every host calls every other alive, samples each sidecar's /proc/PID/stat (utime + stime)
#    and /proc/PID/status (VmRSS) every 5 s for --idle seconds (default 60) with nobody asking anything.
# 2. Detection, --runs times (default 10): B's sidecar is SIGKILLed at a random moment of its beat cycle
#    (after it has been seen alive by A and C, plus 0-5 s); the manager asks A and C for CheckOnHost(B)
#    every 100 ms (curl inside the manager's namespace) until both say dead; then, 0-5 s later (so that its
#    beats fall at a random moment of A's and C's scan cycle), B is started again.
#    Times are from the kill and from B's last record on storage (its wallTimeMs).
#
# Prints a Markdown summary; raw figures go to --out (default Benchmarks/drill/last-run.txt).
# Default binary: .build/release/kvmha (swift build -c release --product kvmha). Root needed. Everything it
# starts it stops, also on failure (and the lab's watcher cleans up if this script is killed).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
runs=10
idle=60
bin=$root/.build/release/kvmha
out=$root/Benchmarks/drill/last-run.txt
while (($#)); do
    case $1 in
        --runs) runs=$2; shift ;;
        --idle) idle=$2; shift ;;
        --bin) bin=$2; shift ;;
        --out) out=$2; shift ;;
        *) echo "usage: $0 [--runs N] [--idle SECONDS] [--bin KVMHA] [--out FILE]" >&2; exit 64 ;;
    esac
    shift
done
[[ $(id -u) == 0 ]] || { echo "run as root (network namespaces)" >&2; exit 2; }
[[ -x $bin ]] || { echo "no kvmha binary at $bin: swift build -c release --product kvmha" >&2; exit 2; }
for tool in curl jq ip; do command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install $tool)" >&2; exit 2; }; done

net=$root/Tests/Harness/drill/drill-net.sh
work=$(mktemp -d /tmp/kvmha-drill-bench.XXXXXX)
chmod 755 "$work" # the private libvirtds run as nobody
lab=$work/lab
declare -A pid
cleanup() {
    local host
    for host in "${!pid[@]}"; do kill -9 "${pid[$host]}" 2>/dev/null || true; done
    for host in "${!pid[@]}"; do wait "${pid[$host]}" 2>/dev/null || true; done
    "$net" down "$lab" || echo "detection.sh: drill-net.sh down failed; see $lab" >&2
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

now() { date +%s.%N; }
# Seconds between two `now` values, 2 decimals.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

"$net" up "$lab" --watch $$ >"$work/net.env"
# shellcheck disable=SC1091
source "$lab/net.env"
pool=5f0c1d2e-drill-pool
declare -A ns=([a]=$DRILL_NS_A [b]=$DRILL_NS_B [c]=$DRILL_NS_C)
declare -A ip=([a]=$DRILL_IP_A [b]=$DRILL_IP_B [c]=$DRILL_IP_C)

n=0
for host in a b c; do
    for vm in 1 2; do
        n=$((n + 1))
        cat >"$work/vm-$host-$vm.xml" <<EOF
<domain type='test'><name>i-$n-$vm-VM</name><uuid>6a1b2c3d-0000-4000-8000-$(printf '%012d' "$n")</uuid>
<memory unit='MiB'>512</memory><os><type arch='x86_64'>hvm</type></os></domain>
EOF
        "$net" virsh "$lab" "$host" create "$work/vm-$host-$vm.xml" >/dev/null
    done
    token="drill-bench-$host-$(date +%s%N)"
    printf '%s\n' "$token" >"$work/token-$host"
    chmod 600 "$work/token-$host"
    printf 'Authorization: Bearer %s\n' "$token" >"$work/auth-$host"
    mkdir -p "$work/state-$host"
done

start_sidecar() {
    local host=$1
    ip netns exec "${ns[$host]}" env KVMHA_API_ADDRESS="${ip[$host]}" KVMHA_API_PORT=7733 \
        KVMHA_API_TOKEN_FILE="$work/token-$host" \
        "$bin" serve --host-ip "${ip[$host]}" --pool "$pool=$DRILL_NFS_URL" --state-dir "$work/state-$host" \
        --libvirt-uri "test+unix:///default?socket=$lab/libvirt-$host/sock/libvirt-sock" --log-level info \
        </dev/null >>"$work/kvmha-$host.log" 2>&1 &
    pid[$host]=$!
}

# The verdict HOST gives on PEER (empty when no answer).
verdict() {
    ip netns exec "$DRILL_NS_MANAGER" curl -s --max-time 3 -H "@$work/auth-$1" "http://${ip[$1]}:7733/v1/peers/${ip[$2]}" |
        jq -r '.overall.verdict // empty' 2>/dev/null || true
}

# Waits (bounded) until CHECKER says PEER is alive.
wait_alive() {
    local checker=$1 peer=$2 deadline=$((SECONDS + 90))
    while [[ $(verdict "$checker" "$peer") != alive ]]; do
        ((SECONDS < deadline)) || { echo "$checker never saw $peer alive; logs in $work" >&2; exit 1; }
        sleep 0.5
    done
}

for host in a b c; do start_sidecar "$host"; done
for checker in a b c; do for peer in a b c; do [[ $checker != "$peer" ]] && wait_alive "$checker" "$peer"; done; done
echo "all three hosts alive to each other" >&2

# 1. Idle cost.
clk=$(getconf CLK_TCK)
declare -A cpu0 rss_sum rss_max
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
for host in a b c; do cpu0[$host]=$(cpu_ticks "${pid[$host]}"); rss_sum[$host]=0; rss_max[$host]=0; done
samples=0
t0=$(now)
for ((i = 0; i <= idle; i += 5)); do
    for host in a b c; do
        r=$(rss_kib "${pid[$host]}")
        rss_sum[$host]=$((rss_sum[$host] + r))
        ((r > rss_max[$host])) && rss_max[$host]=$r
    done
    samples=$((samples + 1))
    ((i + 5 <= idle)) && sleep 5
done
t1=$(now)
{
    echo "# idle: $(elapsed "$t0" "$t1") s, $samples RSS samples per host, binary $bin"
    echo "# host cpu_percent_of_one_core rss_mean_mib rss_max_mib threads"
    for host in a b c; do
        ticks=$(($(cpu_ticks "${pid[$host]}") - cpu0[$host]))
        awk -v h="$host" -v t="$ticks" -v clk="$clk" -v s="$(elapsed "$t0" "$t1")" -v sum="${rss_sum[$host]}" \
            -v n="$samples" -v max="${rss_max[$host]}" -v th="$(awk '/^Threads:/ { print $2 }' "/proc/${pid[$host]}/status")" \
            'BEGIN { printf "idle %s %.3f %.1f %.1f %d\n", h, 100 * t / clk / s, sum / n / 1024, max / 1024, th }'
    done
} >"$work/idle.txt"
cat "$work/idle.txt" >&2

# 2. Detection.
record=$DRILL_EXPORT_DIR/KVMHA/kvmha/${ip[b]}.record
echo "# run a_since_kill c_since_kill a_since_last_beat c_since_last_beat last_beat_before_kill" >"$work/runs.txt"
for ((run = 1; run <= runs; run++)); do
    wait_alive a b
    wait_alive c b
    # A random moment of B's 5 s beat cycle.
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", r % 500 / 100 }')"
    kill -9 "${pid[b]}"
    t_kill=$(now)
    wait "${pid[b]}" 2>/dev/null || true
    last_ms=$(sed -n 2p "$record" | jq -r .wallTimeMs)
    last=$(awk -v ms="$last_ms" 'BEGIN { printf "%.3f", ms / 1000 }')
    declare -A dead=()
    deadline=$((SECONDS + 60))
    while [[ -z ${dead[a]:-} || -z ${dead[c]:-} ]]; do
        ((SECONDS < deadline)) || { echo "run $run: no dead verdict within 60 s; logs in $work" >&2; exit 1; }
        for checker in a c; do
            if [[ -z ${dead[$checker]:-} && $(verdict "$checker" b) == dead ]]; then dead[$checker]=$(now); fi
        done
        sleep 0.1
    done
    line="$run $(elapsed "$t_kill" "${dead[a]}") $(elapsed "$t_kill" "${dead[c]}") $(elapsed "$last" "${dead[a]}") $(elapsed "$last" "${dead[c]}") $(elapsed "$last" "$t_kill")"
    echo "$line" >>"$work/runs.txt"
    echo "run $line" >&2
    unset dead
    # B starts again at a random moment of A's and C's scan cycle: restarting it right at the detection would put
    # its beats just after their scans every time (detection then always takes the longest).
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", r % 500 / 100 }')"
    start_sidecar b
done

# Summary: min / median / mean / max of a column of runs.txt.
stats() {
    grep -v '^#' "$work/runs.txt" | awk -v c="$1" '{ print $c }' | sort -n |
        awk '{ v[NR] = $1; s += $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
            printf "%.2f / %.2f / %.2f / %.2f", v[1], m, s / NR, v[NR] }'
}
{
    echo "# kvmha HA drill benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# command: Benchmarks/drill/detection.sh --runs $runs --idle $idle --bin $bin"
    cat "$work/idle.txt"
    cat "$work/runs.txt"
} >"$out"

cat <<EOF

| measured (s) | min / median / mean / max |
|---|---|
| A: B killed → first \`dead\` | $(stats 2) |
| C: B killed → first \`dead\` | $(stats 3) |
| A: B's last beat → first \`dead\` | $(stats 4) |
| C: B's last beat → first \`dead\` | $(stats 5) |
| B's last beat → kill (random phase) | $(stats 6) |

| host | CPU (% of one core) | RSS mean (MiB) | RSS max (MiB) | threads |
|---|---|---|---|---|
$(grep '^idle' "$work/idle.txt" | awk '{ printf "| %s | %s | %s | %s | %s |\n", toupper($2), $3, $4, $5, $6 }')

raw figures: $out
EOF
