#!/usr/bin/env bash
# nfs-ganesha (VFS FSAL) on 127.0.0.1 for tests: non-default ports, all state under one directory.
#
#   ganesha-harness.sh start   DIR [--v3] [--lease SECONDS] [--watch PID]
#   ganesha-harness.sh stop    DIR            kill ganesha (and rpcbind, netns); idempotent; DIR is kept
#   ganesha-harness.sh restart DIR            kill ganesha and start it again on the same ports and export
#   ganesha-harness.sh freeze  DIR            SIGSTOP ganesha (a hung server)
#   ganesha-harness.sh thaw    DIR            SIGCONT ganesha
#   ganesha-harness.sh env     DIR            print the KEY=VALUE lines of `start` again
#
# DIR must be absolute; it is created if missing. It holds export/ (the exported folder), ganesha.conf,
# ganesha.log, recovery/, and harness.env (the KEY=VALUE lines, shell-quoted so it can be sourced).
# `start` prints KEY=VALUE lines on stdout (values unquoted; split at the first '=').
#
# NFSv4 only by default: no rpcbind needed. `--v3` also serves NFSv3 + MOUNT: ganesha must register
# with rpcbind, so the harness runs its own rpcbind in a network namespace it creates (port 111 never
# opens on the host) and in a private mount namespace whose /run is a tmpfs (so /run/rpcbind.sock is
# this harness's own and concurrent harnesses cannot collide). ganesha runs in that mount namespace
# but in the host's network namespace and registers through the private /run/rpcbind.sock.
# `--lease SECONDS` sets the NFSv4 lease (default 10; short leases make expiry testable).
# `--watch PID` stops everything once process PID is gone (a crashed test leaves nothing behind).
#
# Needs root and: nfs-ganesha nfs-ganesha-vfs (always), rpcbind iproute2 util-linux (for --v3).
set -euo pipefail

readonly PSEUDO=/export
readonly HOST=127.0.0.1
readonly READY_TIMEOUT_S=30

die() { echo "ganesha-harness: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop|restart|freeze|thaw|env DIR [--v3] [--lease SECONDS] [--watch PID]"; }

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found — install it: apt-get install -y $2"
}

# True while PID names a live (not zombie) process.
alive() {
    local pid=$1 state
    [[ -n $pid && -r /proc/$pid/stat ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# Sends SIGNAL (after CONT, in case it is frozen) and waits; KILL after 5 s.
terminate() {
    local pid=$1 signal=${2:-TERM} i
    alive "$pid" || return 0
    kill -CONT "$pid" 2>/dev/null || true
    kill "-$signal" "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || return 0
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || return 0
        sleep 0.05
    done
    die "process $pid survives SIGKILL"
}

listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

# A random TCP port in 20000-32767 (below Linux's ephemeral range, so no client's source port) that nothing
# listens on and that is not in "$@". A port taken between this check and ganesha's bind is retried.
free_port() {
    local p taken
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12768))
        taken=0
        for q in "$@"; do [[ $p == "$q" ]] && taken=1; done
        ((taken)) && continue
        listening "$p" && continue
        echo "$p"
        return 0
    done
    die "no free TCP port found"
}

load_state() {
    [[ -f $DIR/harness.env ]] || die "$DIR is not a started harness (no harness.env)"
    # shellcheck disable=SC1091
    source "$DIR/harness.env"
}

write_config() {
    local protocols=$1 mnt_line=""
    [[ -n ${GANESHA_MOUNT_PORT:-} ]] && mnt_line="MNT_Port = $GANESHA_MOUNT_PORT;"
    cat >"$DIR/ganesha.conf" <<EOF
# Written by ganesha-harness.sh
NFS_CORE_PARAM {
    Bind_addr = $HOST;
    NFS_Port = $GANESHA_NFS_PORT;
    $mnt_line
    Protocols = $protocols;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    # The NFSv3 MOUNT path is the pseudo path, so one export path serves both versions.
    Mount_Path_Pseudo = true;
}
NFSV4 {
    # Without it ganesha refuses state-changing calls for 90 s after every start.
    Graceless = true;
    Lease_Lifetime = $GANESHA_LEASE_SECONDS;
    RecoveryBackend = fs;
    RecoveryRoot = "$DIR/recovery";
}
EXPORT {
    Export_Id = 1;
    Path = "$DIR/export";
    Pseudo = $PSEUDO;
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = $protocols;
    Transports = TCP;
    SecType = sys;
    # Otherwise files changed directly in the exported folder are served stale for up to a minute.
    Attr_Expiration_Time = 0;
    FSAL { Name = VFS; }
}
EOF
}

# Starts ganesha on the ports in the state and waits until it serves them. Returns 2 if a port was
# taken meanwhile (the caller picks others), 1 on any other failure.
launch_ganesha() {
    local pid i
    if [[ -s $DIR/ganesha.log ]]; then
        cat "$DIR/ganesha.log" >>"$DIR/ganesha.log.old"
        : >"$DIR/ganesha.log"
    fi
    rm -f "$DIR/ganesha.pid"
    if [[ -n ${RPCBIND_PID:-} ]]; then
        # Into the private mount namespace (its /run holds our rpcbind.sock); nsenter execs, so $! is ganesha.
        nsenter --mount="/proc/$RPCBIND_PID/ns/mnt" -- ganesha.nfsd -F -f "$DIR/ganesha.conf" \
            -L "$DIR/ganesha.log" -p "$DIR/ganesha.pid" </dev/null >>"$DIR/ganesha.out" 2>&1 &
    else
        ganesha.nfsd -F -f "$DIR/ganesha.conf" -L "$DIR/ganesha.log" -p "$DIR/ganesha.pid" \
            </dev/null >>"$DIR/ganesha.out" 2>&1 &
    fi
    pid=$!
    GANESHA_PID=$pid
    for ((i = 0; i < READY_TIMEOUT_S * 20; i++)); do
        if ! alive "$pid"; then
            if grep -q -i -E "Cannot bind|Address already in use" "$DIR/ganesha.log" 2>/dev/null; then
                return 2
            fi
            echo "ganesha-harness: ganesha exited during start-up; last log lines:" >&2
            tail -n 20 "$DIR/ganesha.log" "$DIR/ganesha.out" >&2 2>/dev/null || true
            return 1
        fi
        if grep -q "NFS SERVER INITIALIZED" "$DIR/ganesha.log" 2>/dev/null &&
            listening "$GANESHA_NFS_PORT" &&
            { [[ -z ${GANESHA_MOUNT_PORT:-} ]] || listening "$GANESHA_MOUNT_PORT"; }; then
            return 0
        fi
        sleep 0.05
    done
    echo "ganesha-harness: ganesha not serving after ${READY_TIMEOUT_S}s; last log lines:" >&2
    tail -n 20 "$DIR/ganesha.log" >&2 2>/dev/null || true
    terminate "$pid"
    return 1
}

start_rpcbind() {
    local i
    GANESHA_NETNS="kvmha-ganesha-$$-$RANDOM"
    ip netns add "$GANESHA_NETNS" || die "ip netns add $GANESHA_NETNS failed (root needed)"
    # fd 3 keeps the namespace reachable after the tmpfs hides /run/netns.
    unshare --mount --propagation private -- bash -c '
        exec 3<"/run/netns/$1"
        mount -t tmpfs -o mode=0755 kvmha-ganesha-run /run
        exec nsenter --net=/proc/self/fd/3 -- rpcbind -f' _ "$GANESHA_NETNS" \
        </dev/null >>"$DIR/rpcbind.out" 2>&1 &
    RPCBIND_PID=$!
    # Ready when rpcbind itself runs (unshare and nsenter exec into it) and its socket exists.
    for ((i = 0; i < READY_TIMEOUT_S * 20; i++)); do
        alive "$RPCBIND_PID" || { cat "$DIR/rpcbind.out" >&2; die "rpcbind exited during start-up"; }
        if [[ $(cat "/proc/$RPCBIND_PID/comm" 2>/dev/null) == rpcbind ]] &&
            nsenter --mount="/proc/$RPCBIND_PID/ns/mnt" -- test -S /run/rpcbind.sock 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    die "rpcbind not ready after ${READY_TIMEOUT_S}s"
}

save_state() {
    GANESHA_URL_V4=""
    GANESHA_URL_V3=""
    if [[ -n ${GANESHA_NFS_PORT:-} ]]; then
        GANESHA_URL_V4="nfs://$HOST$PSEUDO?version=4&nfsport=$GANESHA_NFS_PORT"
        if [[ -n ${GANESHA_MOUNT_PORT:-} ]]; then
            GANESHA_URL_V3="nfs://$HOST$PSEUDO?version=3&nfsport=$GANESHA_NFS_PORT&mountport=$GANESHA_MOUNT_PORT"
        fi
    fi
    local keys=(GANESHA_DIR GANESHA_EXPORT_DIR GANESHA_PSEUDO GANESHA_HOST GANESHA_NFS_PORT
        GANESHA_MOUNT_PORT GANESHA_PROTOCOLS GANESHA_LEASE_SECONDS GANESHA_PID GANESHA_URL_V4 GANESHA_URL_V3
        GANESHA_NETNS RPCBIND_PID GANESHA_WATCHER_PID)
    local k
    : >"$DIR/harness.env.tmp"
    for k in "${keys[@]}"; do
        printf '%s=%q\n' "$k" "${!k:-}" >>"$DIR/harness.env.tmp"
    done
    mv "$DIR/harness.env.tmp" "$DIR/harness.env"
}

print_state() {
    load_state
    local k
    for k in GANESHA_DIR GANESHA_EXPORT_DIR GANESHA_PSEUDO GANESHA_HOST GANESHA_NFS_PORT GANESHA_MOUNT_PORT \
        GANESHA_PROTOCOLS GANESHA_LEASE_SECONDS GANESHA_PID GANESHA_URL_V4 GANESHA_URL_V3 GANESHA_NETNS RPCBIND_PID; do
        [[ -n ${!k:-} ]] && echo "$k=${!k}"
    done
    return 0
}

cmd_start() {
    local v3=0 watch="" rc attempt i
    GANESHA_LEASE_SECONDS=10
    while (($#)); do
        case $1 in
            --v3) v3=1 ;;
            --lease)
                shift
                GANESHA_LEASE_SECONDS=${1:-}
                [[ $GANESHA_LEASE_SECONDS =~ ^[1-9][0-9]*$ ]] || die "--lease needs seconds"
                ;;
            --watch)
                shift
                watch=${1:-}
                [[ $watch =~ ^[0-9]+$ ]] || die "--watch needs a PID"
                ;;
            *) die "unknown option $1" ;;
        esac
        shift
    done
    [[ $(id -u) == 0 ]] || die "must run as root"
    need ganesha.nfsd "nfs-ganesha nfs-ganesha-vfs"
    need ss iproute2
    [[ -n $(find /usr/lib /usr/lib64 -name 'libfsalvfs.so' -print -quit 2>/dev/null) ]] ||
        die "ganesha VFS FSAL missing — install it: apt-get install -y nfs-ganesha-vfs"
    if ((v3)); then
        need rpcbind rpcbind
        need ip iproute2
        need unshare util-linux
        need nsenter util-linux
    fi
    [[ -f $DIR/harness.env ]] && alive "$(. "$DIR/harness.env"; echo "${GANESHA_PID:-}")" &&
        die "a harness is already running in $DIR"
    mkdir -p "$DIR/export" "$DIR/recovery"

    GANESHA_DIR=$DIR
    GANESHA_EXPORT_DIR=$DIR/export
    GANESHA_PSEUDO=$PSEUDO
    GANESHA_HOST=$HOST
    GANESHA_NETNS=""
    RPCBIND_PID=""
    GANESHA_NFS_PORT=""
    GANESHA_MOUNT_PORT=""
    GANESHA_WATCHER_PID=""
    GANESHA_PID=""
    if ((v3)); then GANESHA_PROTOCOLS="3,4"; else GANESHA_PROTOCOLS="4"; fi
    save_state # so that `stop` cleans up whatever the next steps leave behind

    if ((v3)); then
        start_rpcbind
        save_state
    fi
    for attempt in 1 2 3 4 5; do
        GANESHA_NFS_PORT=$(free_port)
        ((v3)) && GANESHA_MOUNT_PORT=$(free_port "$GANESHA_NFS_PORT")
        write_config "$GANESHA_PROTOCOLS"
        rc=0
        launch_ganesha || rc=$?
        save_state
        [[ $rc == 0 ]] && break
        if [[ $rc != 2 || $attempt == 5 ]]; then
            cmd_stop
            die "ganesha did not start (see $DIR/ganesha.log)"
        fi
    done

    if [[ -n $watch ]]; then
        # Detached watcher: when the owner dies without calling stop, clean up after it. It records its own
        # PID, since setsid forks (and $! names setsid) when the caller made this script a group leader.
        rm -f "$DIR/watcher.pid"
        KVMHA_HARNESS_WATCHER=1 setsid bash -c '
            echo $$ >"$3/watcher.pid"
            while [[ -d /proc/$1 ]] && [[ $(awk "{print \$3}" /proc/$1/stat 2>/dev/null) != Z ]]; do sleep 1; done
            exec "$2" stop "$3"' _ "$watch" "$SELF" "$DIR" </dev/null >/dev/null 2>&1 &
        for ((i = 0; i < 100; i++)); do
            [[ -s $DIR/watcher.pid ]] && break
            sleep 0.02
        done
        GANESHA_WATCHER_PID=$(cat "$DIR/watcher.pid" 2>/dev/null || true)
        save_state
    fi
    print_state
}

cmd_stop() {
    [[ -f $DIR/harness.env ]] || return 0
    load_state
    [[ -n ${GANESHA_PID:-} ]] && terminate "$GANESHA_PID"
    [[ -n ${RPCBIND_PID:-} ]] && terminate "$RPCBIND_PID"
    if [[ -n ${GANESHA_NETNS:-} ]] && ip netns list 2>/dev/null | grep -q -w -- "$GANESHA_NETNS"; then
        ip netns del "$GANESHA_NETNS" || echo "ganesha-harness: could not delete netns $GANESHA_NETNS" >&2
    fi
    if [[ -n ${GANESHA_WATCHER_PID:-} && -z ${KVMHA_HARNESS_WATCHER:-} ]]; then
        kill -TERM "$GANESHA_WATCHER_PID" 2>/dev/null || true
    fi
    rm -f "$DIR/harness.env"
}

cmd_restart() {
    load_state
    terminate "$GANESHA_PID"
    local rc=0
    launch_ganesha || rc=$?
    save_state
    [[ $rc == 0 ]] || die "ganesha did not restart on port $GANESHA_NFS_PORT (see $DIR/ganesha.log)"
    print_state
}

# True when every thread of PID is stopped by a signal (state T), false when none is.
all_threads_stopped() {
    local stat state
    for stat in /proc/"$1"/task/*/stat; do
        state=$(awk '{print $3}' "$stat" 2>/dev/null) || continue
        [[ $state == T ]] || return 1
    done
    return 0
}

# STOP or CONT ganesha, and wait until it has taken effect: kill() only queues the signal, and a thread
# that is running at that moment could still answer a request sent right after "freeze" returned.
cmd_signal() {
    local i
    load_state
    alive "$GANESHA_PID" || die "ganesha ($GANESHA_PID) is not running"
    kill "-$1" "$GANESHA_PID"
    for ((i = 0; i < 200; i++)); do
        if [[ $1 == STOP ]]; then
            all_threads_stopped "$GANESHA_PID" && return 0
        else
            ! all_threads_stopped "$GANESHA_PID" && return 0
        fi
        sleep 0.01
    done
    die "ganesha did not take SIG$1 within 2 s"
}

# Callers such as Swift test processes start us with most signals blocked, and every daemon would inherit
# that mask (rpcbind and the watcher then ignore SIGTERM): start over with default signal handling.
if [[ -z ${KVMHA_HARNESS_SIGNALS_RESET:-} ]]; then
    KVMHA_HARNESS_SIGNALS_RESET=1 exec env --default-signal "$BASH" "${BASH_SOURCE[0]}" "$@"
fi
unset KVMHA_HARNESS_SIGNALS_RESET

# Close every descriptor inherited beyond stdio (255 is bash's own script descriptor, close-on-exec): a
# caller that starts several harnesses at once may leak the pipes of one into another, and a daemon
# holding a caller's pipe keeps that caller from ever seeing end-of-file.
for fd_path in /proc/$$/fd/*; do
    fd=${fd_path##*/}
    if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2 && fd != 255)); then
        exec {fd}>&- 2>/dev/null || true
    fi
done
unset fd fd_path

(($# >= 2)) || usage
COMMAND=$1
DIR=$2
shift 2
[[ $DIR == /* ]] || die "DIR must be an absolute path: $DIR"
# Canonical (no "//", which starts a comment in ganesha's config syntax, and no trailing slash).
DIR=$(realpath -m -- "$DIR")
[[ $DIR != *'"'* ]] || die "DIR must not contain a double quote"
SELF=$(readlink -f "${BASH_SOURCE[0]}")

case $COMMAND in
    start) cmd_start "$@" ;;
    stop) cmd_stop ;;
    restart) cmd_restart ;;
    freeze) cmd_signal STOP ;;
    thaw) cmd_signal CONT ;;
    env) print_state ;;
    *) usage ;;
esac
