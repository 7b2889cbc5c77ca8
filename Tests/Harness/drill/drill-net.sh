#!/usr/bin/env bash
# The HA drill's little data centre (issue 8): network namespaces joined by two bridges, an NFSv3 server,
# and one private libvirtd per host. Nothing is reachable from the root namespace and nothing leaves the
# machine: the namespaces have no link to it at all.
#
#   drill-net.sh up       DIR [--watch PID]     create everything below; print KEY=VALUE lines
#   drill-net.sh down     DIR                   kill every process in the namespaces, delete them; idempotent
#   drill-net.sh libvirtd DIR HOST              (re)start HOST's private libvirtd, empty (no domains)
#   drill-net.sh virsh    DIR HOST ARGS...      virsh against HOST's libvirtd
#   drill-net.sh link     DIR HOST mgmt|stor up|down    a host's management or storage link
#   drill-net.sh poweroff DIR HOST              SIGKILL every process in HOST's namespace (sidecar, libvirtd),
#                                               then both of its links down: it answers nothing any more
#   drill-net.sh poweron  DIR HOST              both links up again (start its libvirtd and sidecar after)
#   drill-net.sh env      DIR                   print the KEY=VALUE lines again
#
# HOST is a, b or c. DIR (absolute) holds the state: net.env (sourceable), storage/ (ganesha config, logs,
# export/ = the exported folder), libvirt-HOST/ (each libvirtd's state), and logs.
#
# Layout (addresses from the documentation ranges of RFC 5737, so even a mistake routes nowhere):
#
#   namespace      links                                   addresses
#   <run>-br       bridges brm (management) and brs (storage), one port per link below
#   <run>-a/b/c    mgmt0 -> brm, stor0 -> brs              192.0.2.11/12/13, 198.51.100.11/12/13
#   <run>-st       stor0 -> brs; rpcbind + nfs-ganesha     198.51.100.2 (NFSv3, export /export)
#   <run>-mg       mgmt0 -> brm; the management server      192.0.2.2
#
# <run> is kvd<pid>-<n>, <pid> the --watch PID (or this script's), so concurrent drills never collide and
# leftovers of a crashed run are recognisable. Every veth is created inside the bridge namespace and its
# other end moved straight into its host's namespace: no interface ever appears in the root namespace.
#
# A host's "management link down" cuts it from the other hosts and the manager while it still reaches
# storage; "storage link down" leaves it reachable but unable to write a beat.
#
# Needs root and: iproute2, nfs-ganesha nfs-ganesha-vfs, rpcbind, libvirt-daemon libvirt-clients, util-linux.
set -euo pipefail

readonly MGMT_NET=192.0.2
readonly STOR_NET=198.51.100
readonly PSEUDO=/export
readonly NFS_PORT=2049
readonly MOUNT_PORT=20048
readonly READY_TIMEOUT_S=30
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly RUN_LIBVIRTD=$HERE/../libvirt/run-libvirtd.sh

die() { echo "drill-net: $*" >&2; exit 1; }
usage() { die "usage: $0 up|down|libvirtd|virsh|link|poweroff|poweron|env DIR [...]"; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found — install it: apt-get install -y $2"; }

alive() {
    local pid=$1 state
    [[ -n $pid && -r /proc/$pid/stat ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

host_index() {
    case $1 in
        a) echo 11 ;;
        b) echo 12 ;;
        c) echo 13 ;;
        *) die "unknown host $1 (a, b or c)" ;;
    esac
}

load_state() {
    [[ -f $DIR/net.env ]] || die "$DIR holds no drill network (no net.env)"
    # shellcheck disable=SC1091
    source "$DIR/net.env"
}

save_state() {
    local k
    : >"$DIR/net.env.tmp"
    for k in DRILL_RUN DRILL_DIR DRILL_NS_BRIDGE DRILL_NS_A DRILL_NS_B DRILL_NS_C DRILL_NS_STORAGE DRILL_NS_MANAGER \
        DRILL_IP_A DRILL_IP_B DRILL_IP_C DRILL_IP_MANAGER DRILL_IP_STORAGE DRILL_STORAGE_IP_A DRILL_STORAGE_IP_B \
        DRILL_STORAGE_IP_C DRILL_NFS_URL DRILL_EXPORT_DIR DRILL_WATCHER_PID; do
        printf '%s=%q\n' "$k" "${!k:-}" >>"$DIR/net.env.tmp"
    done
    mv "$DIR/net.env.tmp" "$DIR/net.env"
}

print_state() {
    load_state
    local k
    for k in DRILL_RUN DRILL_NS_BRIDGE DRILL_NS_A DRILL_NS_B DRILL_NS_C DRILL_NS_STORAGE DRILL_NS_MANAGER DRILL_IP_A \
        DRILL_IP_B DRILL_IP_C DRILL_IP_MANAGER DRILL_IP_STORAGE DRILL_STORAGE_IP_A DRILL_STORAGE_IP_B DRILL_STORAGE_IP_C \
        DRILL_NFS_URL DRILL_EXPORT_DIR; do
        echo "$k=${!k}"
    done
}

host_ns() {
    case $1 in
        a) echo "$DRILL_NS_A" ;;
        b) echo "$DRILL_NS_B" ;;
        c) echo "$DRILL_NS_C" ;;
        *) die "unknown host $1 (a, b or c)" ;;
    esac
}

all_namespaces() {
    echo "$DRILL_NS_A" "$DRILL_NS_B" "$DRILL_NS_C" "$DRILL_NS_STORAGE" "$DRILL_NS_MANAGER" "$DRILL_NS_BRIDGE"
}

ns_exists() { [[ -e /run/netns/$1 ]]; }

# SIGKILLs every process in namespace NS and waits (bounded) until none is left.
kill_namespace() {
    local ns=$1 i pids
    ns_exists "$ns" || return 0
    for ((i = 0; i < 100; i++)); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [[ -z $pids ]] && return 0
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep 0.05
    done
    echo "drill-net: processes survive in $ns: $(ip netns pids "$ns" | tr '\n' ' ')" >&2
    return 1
}

# Deletes namespaces of earlier runs whose owner process is gone (a run killed before its watcher could act).
sweep_leftovers() {
    local name owner
    for name in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^kvd[0-9]+-[0-9]+-(a|b|c|st|mg|br)$' || true); do
        owner=${name#kvd}
        owner=${owner%%-*}
        alive "$owner" && continue
        kill_namespace "$name" || true
        ip netns del "$name" 2>/dev/null || true
    done
}

ns_add() {
    ip netns add "$1" || die "ip netns add $1 failed (root needed)"
    ip -n "$1" link set lo up
    # No IPv6: no router solicitations or duplicate-address probes on the drill's links.
    ip netns exec "$1" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}

# A veth pair whose bridge end BR_IF is a port of BRIDGE and whose other end is IF in namespace NS.
plug() {
    local bridge=$1 br_if=$2 ns=$3 if=$4 address=$5
    ip -n "$DRILL_NS_BRIDGE" link add "$br_if" type veth peer name "$if" netns "$ns"
    ip -n "$DRILL_NS_BRIDGE" link set "$br_if" master "$bridge" up
    ip -n "$ns" addr add "$address/24" dev "$if"
    ip -n "$ns" link set "$if" up
}

write_ganesha_config() {
    local dir=$DIR/storage
    cat >"$dir/ganesha.conf" <<EOF
# Written by drill-net.sh: NFSv3 (and 4) inside the storage namespace only.
NFS_CORE_PARAM {
    Bind_addr = $DRILL_IP_STORAGE;
    NFS_Port = $NFS_PORT;
    MNT_Port = $MOUNT_PORT;
    Protocols = 3, 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Mount_Path_Pseudo = true;
}
NFSV4 {
    Graceless = true;
    RecoveryBackend = fs;
    RecoveryRoot = "$dir/recovery";
}
EXPORT {
    Export_Id = 1;
    Path = "$dir/export";
    Pseudo = $PSEUDO;
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 3, 4;
    Transports = TCP;
    SecType = sys;
    # The drill changes disk files' mtimes directly in the exported folder: no attribute caching.
    Attr_Expiration_Time = 0;
    FSAL { Name = VFS; }
}
EOF
}

# rpcbind and ganesha in the storage namespace. `ip netns exec` gives them a mount namespace of their own
# (slave to the host's), where a tmpfs over /run makes /run/rpcbind.sock private to this drill.
start_storage() {
    local dir=$DIR/storage i
    mkdir -p "$dir/export" "$dir/recovery"
    write_ganesha_config
    # setsid: out of the caller's process group, which a test harness may SIGKILL as a whole once we return.
    ip netns exec "$DRILL_NS_STORAGE" setsid bash -c '
        set -e
        mount -t tmpfs -o mode=0755 kvmha-drill-run /run
        rpcbind -f </dev/null >>"$1/rpcbind.out" 2>&1 &
        for ((i = 0; i < 600; i++)); do [[ -S /run/rpcbind.sock ]] && break; sleep 0.05; done
        [[ -S /run/rpcbind.sock ]] || { echo "rpcbind did not start" >&2; exit 1; }
        exec ganesha.nfsd -F -f "$1/ganesha.conf" -L "$1/ganesha.log" -p "$1/ganesha.pid"' _ "$dir" \
        </dev/null >>"$dir/ganesha.out" 2>&1 &
    for ((i = 0; i < READY_TIMEOUT_S * 20; i++)); do
        if grep -q "NFS SERVER INITIALIZED" "$dir/ganesha.log" 2>/dev/null &&
            [[ -n $(ip netns exec "$DRILL_NS_STORAGE" ss -Hltn "sport = :$MOUNT_PORT" 2>/dev/null) ]] &&
            [[ -n $(ip netns exec "$DRILL_NS_STORAGE" ss -Hltn "sport = :111" 2>/dev/null) ]]; then
            return 0
        fi
        [[ -z $(ip netns pids "$DRILL_NS_STORAGE" 2>/dev/null) ]] && break
        sleep 0.05
    done
    echo "drill-net: ganesha not serving; last lines:" >&2
    tail -n 20 "$dir/ganesha.log" "$dir/ganesha.out" "$dir/rpcbind.out" >&2 2>/dev/null || true
    return 1
}

cmd_up() {
    local watch="" i
    while (($#)); do
        case $1 in
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
    need ip iproute2
    need ss iproute2
    need ganesha.nfsd "nfs-ganesha nfs-ganesha-vfs"
    need rpcbind rpcbind
    need libvirtd libvirt-daemon
    need virsh libvirt-clients
    need setpriv util-linux
    [[ -n $(find /usr/lib /usr/lib64 -name 'libfsalvfs.so' -print -quit 2>/dev/null) ]] ||
        die "ganesha VFS FSAL missing — install it: apt-get install -y nfs-ganesha-vfs"
    [[ -f $DIR/net.env ]] && die "$DIR already holds a drill network (run down first)"
    mkdir -p "$DIR"
    chmod 755 "$DIR"
    # The libvirtds run as nobody (run-libvirtd.sh): every folder above DIR must let them through.
    setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$DIR" ||
        die "$DIR is not reachable for user nobody (the private libvirtds run as nobody): chmod o+x its parents"
    sweep_leftovers

    # Named after the watched process, so a later `up` can sweep the leftovers once it is gone ("kvdm" when
    # nothing is watched: never swept).
    if [[ -n $watch ]]; then DRILL_RUN="kvd$watch-$((RANDOM % 10000))"; else DRILL_RUN="kvdm$$-$((RANDOM % 10000))"; fi
    DRILL_DIR=$DIR
    DRILL_NS_BRIDGE=$DRILL_RUN-br
    DRILL_NS_A=$DRILL_RUN-a
    DRILL_NS_B=$DRILL_RUN-b
    DRILL_NS_C=$DRILL_RUN-c
    DRILL_NS_STORAGE=$DRILL_RUN-st
    DRILL_NS_MANAGER=$DRILL_RUN-mg
    DRILL_IP_A=$MGMT_NET.11
    DRILL_IP_B=$MGMT_NET.12
    DRILL_IP_C=$MGMT_NET.13
    DRILL_IP_MANAGER=$MGMT_NET.2
    DRILL_IP_STORAGE=$STOR_NET.2
    DRILL_STORAGE_IP_A=$STOR_NET.11
    DRILL_STORAGE_IP_B=$STOR_NET.12
    DRILL_STORAGE_IP_C=$STOR_NET.13
    DRILL_NFS_URL="nfs://$DRILL_IP_STORAGE$PSEUDO?version=3"
    DRILL_EXPORT_DIR=$DIR/storage/export
    DRILL_WATCHER_PID=""
    save_state # from here on, `down` cleans up whatever exists

    if [[ -n $watch ]]; then
        # Detached: when the owner dies without calling down, clean up after it.
        rm -f "$DIR/watcher.pid"
        KVMHA_DRILL_WATCHER=1 setsid bash -c '
            echo $$ >"$3/watcher.pid"
            while [[ -d /proc/$1 ]] && [[ $(awk "{print \$3}" /proc/$1/stat 2>/dev/null) != Z ]]; do sleep 1; done
            exec "$2" down "$3"' _ "$watch" "$SELF" "$DIR" </dev/null >/dev/null 2>&1 &
        for ((i = 0; i < 100; i++)); do
            [[ -s $DIR/watcher.pid ]] && break
            sleep 0.02
        done
        DRILL_WATCHER_PID=$(cat "$DIR/watcher.pid" 2>/dev/null || true)
        save_state
    fi

    # Any failure from here on (set -e, die) takes everything down again.
    trap 'trap - EXIT; cmd_down || true; echo "drill-net: could not build the drill network (see $DIR)" >&2' EXIT
    local ns host
    for ns in $(all_namespaces); do ns_add "$ns"; done
    ip -n "$DRILL_NS_BRIDGE" link add brm type bridge
    ip -n "$DRILL_NS_BRIDGE" link add brs type bridge
    ip -n "$DRILL_NS_BRIDGE" link set brm up
    ip -n "$DRILL_NS_BRIDGE" link set brs up
    plug brm m-a "$DRILL_NS_A" mgmt0 "$DRILL_IP_A"
    plug brm m-b "$DRILL_NS_B" mgmt0 "$DRILL_IP_B"
    plug brm m-c "$DRILL_NS_C" mgmt0 "$DRILL_IP_C"
    plug brm m-mg "$DRILL_NS_MANAGER" mgmt0 "$DRILL_IP_MANAGER"
    plug brs s-a "$DRILL_NS_A" stor0 "$DRILL_STORAGE_IP_A"
    plug brs s-b "$DRILL_NS_B" stor0 "$DRILL_STORAGE_IP_B"
    plug brs s-c "$DRILL_NS_C" stor0 "$DRILL_STORAGE_IP_C"
    plug brs s-st "$DRILL_NS_STORAGE" stor0 "$DRILL_IP_STORAGE"
    start_storage
    for host in a b c; do start_libvirtd "$host"; done
    trap - EXIT
    print_state
}

cmd_down() {
    [[ -f $DIR/net.env ]] || return 0
    load_state
    local ns failed=0
    for ns in $(all_namespaces); do
        kill_namespace "$ns" || failed=1
        if ns_exists "$ns"; then
            ip netns del "$ns" 2>/dev/null || { echo "drill-net: could not delete netns $ns" >&2; failed=1; }
        fi
    done
    if [[ -n ${DRILL_WATCHER_PID:-} && -z ${KVMHA_DRILL_WATCHER:-} ]]; then
        kill -TERM "$DRILL_WATCHER_PID" 2>/dev/null || true
    fi
    ((failed)) && return 1
    rm -f "$DIR/net.env"
}

libvirt_uri() { echo "test+unix:///default?socket=$DIR/libvirt-$1/sock/libvirt-sock"; }

# Starts HOST's libvirtd inside HOST's namespace (killing a previous one first), with no domains.
#
# The test driver's shared state (`/default`) lives only while some client is connected, and starts with a
# built-in running domain "test" (the same UUID on every host, which would look like one VM on three hosts).
# So a client that never disconnects is started first, also inside the namespace (`virsh event --loop`, its
# output is libvirt-HOST/events.log), and "test" is removed through it until a fresh connection sees no
# domain: then the holder is connected and the state sticks.
start_libvirtd() {
    local host=$1 ns state uri i
    ns=$(host_ns "$host")
    state=$DIR/libvirt-$host
    uri=$(libvirt_uri "$host")
    for pidfile in "$state/libvirtd.pid" "$state/holder.pid"; do
        if [[ -s $pidfile ]] && alive "$(cat "$pidfile")"; then kill -KILL "$(cat "$pidfile")" 2>/dev/null || true; fi
    done
    mkdir -p "$state"
    rm -f "$state/sock/libvirt-sock"
    # The namespaces' cleanup stops it; the long idle exit keeps it up while its sidecar is "powered off".
    LIBVIRTD_IDLE_EXIT=${LIBVIRTD_IDLE_EXIT:-3600} ip netns exec "$ns" setsid "$RUN_LIBVIRTD" "$state" \
        </dev/null >>"$state.out" 2>&1 &
    echo $! >"$state/libvirtd.pid"
    for ((i = 0; i < READY_TIMEOUT_S * 20; i++)); do
        virsh -q -c "$uri" list --all >/dev/null 2>&1 && break
        alive "$(cat "$state/libvirtd.pid")" || { tail -n 20 "$state.out" >&2 2>/dev/null; die "libvirtd of $host exited"; }
        sleep 0.05
    done
    ip netns exec "$ns" setsid virsh -q -c "$uri" event --all --loop --timestamp </dev/null >>"$state/events.log" 2>&1 &
    echo $! >"$state/holder.pid"
    for ((i = 0; i < READY_TIMEOUT_S * 10; i++)); do
        virsh -q -c "$uri" destroy test >/dev/null 2>&1 || true
        virsh -q -c "$uri" undefine test >/dev/null 2>&1 || true
        [[ -z $(virsh -q -c "$uri" list --all --name 2>/dev/null | tr -d '[:space:]') ]] && return 0
        alive "$(cat "$state/holder.pid")" || die "the libvirt client holding $host's test-driver state exited"
        sleep 0.1
    done
    die "libvirtd of host $host still has domains after removing \"test\" (see $state)"
}

cmd_link() {
    (($# == 3)) || die "usage: link DIR HOST mgmt|stor up|down"
    load_state
    local ns if
    ns=$(host_ns "$1")
    case $2 in
        mgmt) if=mgmt0 ;;
        stor) if=stor0 ;;
        *) die "link is mgmt or stor, not $2" ;;
    esac
    [[ $3 == up || $3 == down ]] || die "state is up or down, not $3"
    ip -n "$ns" link set "$if" "$3"
    if [[ $3 == up ]]; then
        # Leaves `down` with the address (its route comes back with the link); wait until the link carries.
        local i
        for ((i = 0; i < 100; i++)); do
            ip -n "$ns" -o link show "$if" | grep -q 'state UP' && return 0
            sleep 0.02
        done
        die "$if in $ns did not come up"
    fi
}

# Callers such as Swift test processes may start us with signals blocked, which every daemon would inherit.
if [[ -z ${KVMHA_DRILL_SIGNALS_RESET:-} ]]; then
    KVMHA_DRILL_SIGNALS_RESET=1 exec env --default-signal "$BASH" "${BASH_SOURCE[0]}" "$@"
fi
unset KVMHA_DRILL_SIGNALS_RESET

(($# >= 2)) || usage
COMMAND=$1
DIR=$2
shift 2
[[ $DIR == /* ]] || die "DIR must be an absolute path: $DIR"
DIR=$(realpath -m -- "$DIR")
[[ $DIR != *'"'* ]] || die "DIR must not contain a double quote"
SELF=$(readlink -f "${BASH_SOURCE[0]}")

case $COMMAND in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    env) print_state ;;
    libvirtd)
        (($# == 1)) || die "usage: libvirtd DIR HOST"
        load_state
        host_index "$1" >/dev/null
        start_libvirtd "$1"
        ;;
    virsh)
        (($# >= 2)) || die "usage: virsh DIR HOST ARGS..."
        load_state
        host=$1
        shift
        host_index "$host" >/dev/null
        exec virsh -q -c "$(libvirt_uri "$host")" "$@"
        ;;
    link) cmd_link "$@" ;;
    poweroff)
        (($# == 1)) || die "usage: poweroff DIR HOST"
        load_state
        kill_namespace "$(host_ns "$1")"
        # A host without power does not answer on the network either (not even with a TCP reset).
        ip -n "$(host_ns "$1")" link set mgmt0 down
        ip -n "$(host_ns "$1")" link set stor0 down
        ;;
    poweron)
        (($# == 1)) || die "usage: poweron DIR HOST"
        load_state
        cmd_link "$1" mgmt up
        cmd_link "$1" stor up
        ;;
    *) usage ;;
esac
