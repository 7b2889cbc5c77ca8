#!/bin/sh
# Runs a private libvirtd in the foreground for tests: everything (config, sockets, runtime state, logs)
# lives under STATE_DIR, nothing system-wide is touched.
#
#   run-libvirtd.sh STATE_DIR
#
# Clients use the test driver through it: test+unix:///default?socket=STATE_DIR/sock/libvirt-sock
# (`/default` is the one test-driver state that all clients of the daemon share, so events made by one
# client reach the others). If NOTIFY_SOCKET is set, libvirtd sends READY=1 there once it accepts clients.
# The process execs into libvirtd (same pid): stop it with SIGTERM.
# LIBVIRTD_IDLE_EXIT (seconds, default 30): libvirtd exits by itself after that long without clients, so a
# test run that crashes before stopping it leaves no daemon behind for long.
#
# Why unprivileged: as root, libvirtd writes /run/libvirt/common/system.token whatever its config says;
# as an ordinary user (nobody) it runs in session mode and keeps all of that under XDG_RUNTIME_DIR.
# Why LIBVIRT_DRIVER_DIR points at an empty folder: only the built-in test driver is needed; the qemu,
# lxc, network... modules would otherwise load, probe the host and slow start-up.
set -eu

state_dir=${1:?usage: run-libvirtd.sh STATE_DIR}
user=nobody

mkdir -p "$state_dir/sock" "$state_dir/home" "$state_dir/run" "$state_dir/drivers"
chmod 755 "$state_dir"
chown "$user:" "$state_dir/sock" "$state_dir/home" "$state_dir/run"

cat >"$state_dir/libvirtd.conf" <<CONF
unix_sock_dir = "$state_dir/sock"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:$state_dir/run/libvirtd.log"
CONF

exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    HOME="$state_dir/home" \
    XDG_RUNTIME_DIR="$state_dir/run" \
    XDG_CONFIG_HOME="$state_dir/home/.config" \
    XDG_CACHE_HOME="$state_dir/home/.cache" \
    LIBVIRT_DRIVER_DIR="$state_dir/drivers" \
    ${NOTIFY_SOCKET:+NOTIFY_SOCKET="$NOTIFY_SOCKET"} \
    setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups \
    libvirtd --config "$state_dir/libvirtd.conf" --timeout "${LIBVIRTD_IDLE_EXIT:-30}"
