#!/usr/bin/env bash
# Package test: builds the .deb with packaging/build-deb.sh, checks its contents and lintian, installs it
# into a throw-away root and runs the installed kvmha from there, and verifies the systemd unit offline.
# Prints one line per check and closes with "N passed, M failed"; exits non-zero when any check failed.
#
#   Tests/Packaging/test-deb.sh
#
# The package is built from `git archive HEAD` when the working tree is clean (CI's fresh clone) and from
# the working tree otherwise, so uncommitted packaging changes are what gets tested; KVMHA_DEB_SOURCE=head
# or =worktree forces one. Runs as root (dpkg --root, apt-get); takes a release build's time the first
# time (the build's scratch directory, .build-deb, is reused after that).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
started=$SECONDS
passed=0
failed=0

TMP="$(mktemp -d /tmp/kvmha-deb-test.XXXXXX)"
# shellcheck disable=SC2317 # called by the trap
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT

pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() {
    failed=$((failed + 1))
    echo "FAIL $1"
    [ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/    /'
    return 0
}
finish() {
    echo "package test took $((SECONDS - started)) s (build $build_seconds s)"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

# systemd-analyze (the unit check), man (the man page check) and lintian may be missing on a minimal machine.
need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v man >/dev/null 2>&1 || need+=(man-db)
command -v lintian >/dev/null 2>&1 || need+=(lintian)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi

# --- 1. Build -------------------------------------------------------------------------------------------
source_mode="${KVMHA_DEB_SOURCE:-}"
if [ -z "$source_mode" ]; then
    if [ -z "$(git -C "$REPO" status --porcelain)" ]; then source_mode="head"; else source_mode="worktree"; fi
fi
echo "building the package from $([ "$source_mode" = head ] && echo "git HEAD" || echo "the working tree") (KVMHA_DEB_SOURCE=head|worktree to choose)"
build_started=$SECONDS
# lintian runs below as a check of its own.
if deb="$("$REPO/packaging/build-deb.sh" --source "$source_mode" --output "$TMP/out" --no-lintian \
    2>"$TMP/build.log")" && [ -f "$deb" ]; then
    build_seconds=$((SECONDS - build_started))
    pass "build-deb.sh builds $(basename "$deb") (${build_seconds} s)"
else
    build_seconds=$((SECONDS - build_started))
    fail "build-deb.sh" "$(tail -n 40 "$TMP/build.log")"
    finish
fi

version="$(sed -n 's/^ *static let current = "\([^"]*\)".*/\1/p' "$REPO/Sources/kvmha/KVMHA.swift" | head -n 1)"
arch="$(dpkg --print-architecture)"
if [ "$(basename "$deb")" = "kvmha-sidecar_${version}_${arch}.deb" ]; then
    pass "file name is kvmha-sidecar_<version>_<arch>.deb"
else
    fail "file name" "expected kvmha-sidecar_${version}_${arch}.deb, got $(basename "$deb")"
fi

# --- Contents: exactly these files ----------------------------------------------------------------------
# Mode, owner and path of every entry. Anything added to the package must be added here too.
cat >"$TMP/expected" <<'EOF'
drwxr-xr-x root/root ./
drwxr-xr-x root/root ./etc/
drwxr-xr-x root/root ./etc/kvmha/
-rw-r--r-- root/root ./etc/kvmha/sidecar.yaml
drwxr-xr-x root/root ./lib/
drwxr-xr-x root/root ./lib/systemd/
drwxr-xr-x root/root ./lib/systemd/system/
-rw-r--r-- root/root ./lib/systemd/system/kvmha-sidecar.service
drwxr-xr-x root/root ./usr/
drwxr-xr-x root/root ./usr/bin/
-rwxr-xr-x root/root ./usr/bin/kvmha
drwxr-xr-x root/root ./usr/share/
drwxr-xr-x root/root ./usr/share/bash-completion/
drwxr-xr-x root/root ./usr/share/bash-completion/completions/
-rw-r--r-- root/root ./usr/share/bash-completion/completions/kvmha
drwxr-xr-x root/root ./usr/share/doc/
drwxr-xr-x root/root ./usr/share/doc/kvmha-sidecar/
-rw-r--r-- root/root ./usr/share/doc/kvmha-sidecar/changelog.gz
-rw-r--r-- root/root ./usr/share/doc/kvmha-sidecar/copyright
-rw-r--r-- root/root ./usr/share/doc/kvmha-sidecar/third-party-notices.gz
drwxr-xr-x root/root ./usr/share/lintian/
drwxr-xr-x root/root ./usr/share/lintian/overrides/
-rw-r--r-- root/root ./usr/share/lintian/overrides/kvmha-sidecar
drwxr-xr-x root/root ./usr/share/man/
drwxr-xr-x root/root ./usr/share/man/man1/
-rw-r--r-- root/root ./usr/share/man/man1/kvmha.1.gz
EOF
dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }' | sort -k3 >"$TMP/actual"
sort -k3 -o "$TMP/expected" "$TMP/expected"
if diff -u "$TMP/expected" "$TMP/actual" >"$TMP/contents.diff"; then
    pass "dpkg-deb -c lists exactly the intended files"
else
    fail "dpkg-deb -c lists exactly the intended files" "$(cat "$TMP/contents.diff")"
fi

dpkg-deb -e "$deb" "$TMP/control"
if [ "$(cat "$TMP/control/conffiles")" = "/etc/kvmha/sidecar.yaml" ]; then
    pass "the default config is the package's one conffile"
else
    fail "conffiles" "$(cat "$TMP/control/conffiles")"
fi

# Depends come from dh_shlibdeps: the libraries the binary links, never the Swift runtime.
depends="$(dpkg-deb -f "$deb" Depends)"
problems=""
for library in libvirt0 libnfs13 libc6; do
    grep -Eq "(^|, )$library( |,|$)" <<<"$depends" || problems+="no $library; "
done
grep -qi swift <<<"$depends" && problems+="mentions swift; "
if [ -z "$problems" ]; then pass "Depends derived from the libraries: $depends"; else fail "Depends ($problems)" "$depends"; fi

# --- lintian --------------------------------------------------------------------------------------------
# (lintian's own remark about running as root is left out of the report.)
if lintian --fail-on error,warning "$deb" 2>&1 | grep -v 'running with root privileges' >"$TMP/lintian.log"
    [ "${PIPESTATUS[0]}" -eq 0 ]; then
    pass "lintian: no errors or warnings$( [ -s "$TMP/lintian.log" ] && printf ' (%s)' "$(tr '\n' ';' <"$TMP/lintian.log")")"
else
    fail "lintian" "$(cat "$TMP/lintian.log")"
fi
# Every override carries its reason: a comment right above it.
overrides="$REPO/packaging/debian/kvmha-sidecar.lintian-overrides"
if [ -f "$overrides" ]; then
    unjustified="$(awk '/^#/ { reason = 1; next } /^[[:space:]]*$/ { reason = 0; next } !reason { print }' "$overrides")"
    if [ -z "$unjustified" ]; then pass "each lintian override is justified in a comment"; else fail "lintian overrides without a comment" "$unjustified"; fi
fi

# --- 2. Install into a throw-away root ------------------------------------------------------------------
# `dpkg --root` into an empty tree, with the maintainer scripts run outside a chroot (dpkg's
# --force-script-chrootless; they honour $DPKG_ROOT). The tree's dpkg database is a copy of this
# machine's, so dpkg checks the package's Depends for real against a Debian 12 package set; the binary
# then runs against this machine's copies of exactly those libraries. That exercises the package itself
# (contents, conffile, postinst, purge) without a full Debian system in the root: debootstrap would add
# minutes and a mirror, and test Debian's libraries rather than this package.
root="$TMP/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
cp /var/lib/dpkg/status "$root/var/lib/dpkg/status"
: >"$root/var/lib/dpkg/available"
dpkg_root() {
    dpkg --root="$root" --force-script-chrootless --log="$TMP/dpkg.log" "$@"
}

installed() { [ "$(dpkg-query --root="$root" -W -f='${Status}' kvmha-sidecar 2>/dev/null)" = "install ok installed" ]; }
if dpkg_root -i "$deb" >"$TMP/install.log" 2>&1 && installed; then
    pass "dpkg --root installs it, Depends satisfied"
else
    # Everything below looks at the installed tree.
    fail "dpkg --root -i" "$(cat "$TMP/install.log")"
    finish
fi

token="$root/etc/kvmha/api-token"
if [ -f "$token" ] && [ "$(stat -c '%a %U %G' "$token")" = "600 root root" ] &&
    grep -Eqx '[0-9a-f]{64}' "$token"; then
    pass "postinst created the API token: 32 random bytes as hex, mode 0600 root"
else
    fail "API token" "$(ls -l "$token" 2>&1; cat "$token" 2>&1)"
fi
if ! find "$root/etc/systemd" -name 'kvmha-sidecar.service' 2>/dev/null | grep -q . &&
    grep -q 'installed but not enabled' "$TMP/install.log"; then
    pass "the service is not enabled on a fresh install, and a note says so"
else
    fail "not enabled on install" "$(find "$root/etc/systemd" 2>&1; cat "$TMP/install.log")"
fi

first_token="$(cat "$token" 2>/dev/null)"
if dpkg_root -i "$deb" >"$TMP/reinstall.log" 2>&1 && [ "$(cat "$token")" = "$first_token" ]; then
    pass "reinstalling (upgrade path) keeps the existing token"
else
    fail "reinstall keeps the token" "$(cat "$TMP/reinstall.log")"
fi

kvmha="$root/usr/bin/kvmha"
if [ "$("$kvmha" --version 2>&1)" = "$version" ]; then
    pass "installed kvmha --version prints $version"
else
    fail "kvmha --version" "$("$kvmha" --version 2>&1)"
fi
missing_libraries="$(ldd "$kvmha" 2>&1 | grep -E 'not found|libswift|libFoundation|libdispatch' || true)"
if [ -x "$kvmha" ] && [ -z "$missing_libraries" ]; then
    pass "kvmha needs no Swift runtime and finds every library"
else
    fail "ldd kvmha" "$missing_libraries"
fi

# The packaged default config, with this test's pool and host address added and the root's paths, is
# valid, and the daemon accepts the token postinst made (it refuses, and says so, a token it cannot use).
pool="$TMP/pool-5f0c"
mkdir -p "$pool"
config="$TMP/sidecar.yaml"
{
    cat "$root/etc/kvmha/sidecar.yaml"
    printf '\nhostIP: 127.0.0.1\npools:\n  - uuid: 5f0c\n    path: %s\n' "$pool"
    printf 'stateDir: %s\napiTokenFile: %s\n' "$TMP/state" "$token"
} >"$config"
if output="$("$kvmha" serve --check-config --config "$config" 2>&1)" &&
    [ "$(grep -c . <<<"$output")" -eq 1 ] && grep -q '^configuration OK' <<<"$output"; then
    pass "installed kvmha serve --check-config accepts the packaged config with a pool, and the token: $output"
else
    fail "kvmha serve --check-config" "$output"
fi
# ...and an invalid one is refused with the key named, so the check above means something.
printf 'interval: 5s\nioTimeout: 9s\n' >>"$config"
if ! output="$("$kvmha" serve --check-config --config "$config" 2>&1)" && grep -q 'ioTimeout' <<<"$output"; then
    pass "kvmha serve --check-config refuses an unsafe timing and names the key"
else
    fail "kvmha serve --check-config on a bad config" "$output"
fi

# Man page: renders without a groff warning and documents every subcommand.
man_errors="$(LC_ALL=C.UTF-8 MANWIDTH=100 man --warnings -l "$root/usr/share/man/man1/kvmha.1.gz" 2>&1 >"$TMP/man.txt")"
undocumented=""
for command in $("$kvmha" --help | awk '/^SUBCOMMANDS:$/ { on = 1; next } /^[A-Z]+:$/ { on = 0 } on && /^  [a-z]/ { print $1 }'); do
    grep -q "kvmha $command" "$TMP/man.txt" || undocumented+="$command "
done
if [ -z "$man_errors" ] && [ -z "$undocumented" ] && grep -q -- '--check-config' "$TMP/man.txt"; then
    pass "man page renders cleanly and covers every subcommand"
else
    fail "man page" "warnings: $man_errors; undocumented: $undocumented"
fi

completion="$root/usr/share/bash-completion/completions/kvmha"
if bash -n "$completion" 2>"$TMP/completion.log" && grep -q 'complete .*kvmha' "$completion"; then
    pass "bash completion parses and registers kvmha"
else
    fail "bash completion" "$(cat "$TMP/completion.log")"
fi

# --- The unit -------------------------------------------------------------------------------------------
unit="$root/lib/systemd/system/kvmha-sidecar.service"
if cmp -s "$unit" "$REPO/systemd/kvmha-sidecar.service"; then
    pass "the packaged unit is systemd/kvmha-sidecar.service"
else
    fail "packaged unit differs from systemd/kvmha-sidecar.service"
fi

# systemd-analyze needs the ExecStart binary to exist: verify a copy pointing at the installed one.
# It exits 0 on many problems, so any output on stderr fails the check.
mkdir -p "$TMP/unit"
sed "s|^ExecStart=/usr/bin/kvmha |ExecStart=$kvmha |" "$unit" >"$TMP/unit/kvmha-sidecar.service"
if grep -q "^ExecStart=$kvmha serve --config /etc/kvmha/sidecar.yaml\$" "$TMP/unit/kvmha-sidecar.service" &&
    systemd-analyze verify --man=no "$TMP/unit/kvmha-sidecar.service" >"$TMP/verify.out" 2>"$TMP/verify.err" &&
    [ ! -s "$TMP/verify.err" ]; then
    pass "systemd-analyze verify: no complaints"
else
    fail "systemd-analyze verify" "$(cat "$TMP/verify.out" "$TMP/verify.err")"
fi

# The directives the daemon and the fencing rely on.
directives=(
    "Type=notify" "WatchdogSec=30s" "Restart=on-failure" "NoNewPrivileges=yes" "PrivateTmp=yes"
    "ProtectSystem=strict" "ReadWritePaths=/mnt /var/lib/kvmha" "StateDirectory=kvmha"
    "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" "ExecStart=/usr/bin/kvmha serve --config /etc/kvmha/sidecar.yaml"
)
absent=""
for directive in "${directives[@]}"; do grep -qxF "$directive" "$unit" || absent+="$directive; "; done
# ProtectKernelTunables= would make /proc/sysrq-trigger read-only and so disable fencing.
grep -q '^ProtectKernelTunables=yes' "$unit" && absent+="ProtectKernelTunables=yes must not be set; "
if [ -z "$absent" ]; then pass "unit has the required directives"; else fail "unit directives" "$absent"; fi

exposure="$(systemd-analyze security --offline=true "$TMP/unit/kvmha-sidecar.service" 2>/dev/null | tail -n 1)"
echo "     systemd-analyze security: ${exposure:-not available}"

# --- Purge ----------------------------------------------------------------------------------------------
if dpkg_root --purge kvmha-sidecar >"$TMP/purge.log" 2>&1 && ! installed && [ ! -e "$root/etc/kvmha" ] &&
    [ ! -e "$root/usr/bin/kvmha" ]; then
    pass "purge removes the package, its config and the token"
else
    fail "purge" "$(cat "$TMP/purge.log"; find "$root/etc/kvmha" 2>&1)"
fi

finish
