#!/usr/bin/env bash
# Builds the Debian package kvmha-sidecar_<version>_<arch>.deb from a clean export of the repository.
#
#   packaging/build-deb.sh [--source head|worktree] [--output DIR] [--work-dir DIR] [--no-lintian]
#
#   --source head      (default) `git archive HEAD`: only committed files go into the package.
#   --source worktree  the working tree as it is, uncommitted and untracked (not ignored) files included;
#                      for trying packaging changes before committing them.
#   --output DIR       where the .deb is copied (default: packaging/out).
#   --work-dir DIR     export, SwiftPM scratch directory and dpkg-buildpackage's output (default: .build-deb
#                      in the repository, ignored by git). The scratch directory is kept between runs, so a
#                      rebuild recompiles only what changed; it is separate from .build so it never fights
#                      with other builds of the repository.
#   --no-lintian       skip lintian (the package test runs it itself).
#
# On a fresh Debian 12 machine with a Swift toolchain (on PATH or in /opt/swift) this installs what the
# build needs with apt-get and needs no other network access: SwiftPM resolves the Swift packages as the
# machine's git configuration says. The package version is KVMHAVersion.current in Sources/kvmha/KVMHA.swift,
# which `kvmha --version` prints; debian/rules checks that they agree.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOURCE="head"
OUTPUT="$REPO/packaging/out"
WORK="$REPO/.build-deb"
LINTIAN=1

while [ $# -gt 0 ]; do
    case "$1" in
        --source) SOURCE="${2:?--source needs head or worktree}"; shift 2 ;;
        --output) OUTPUT="${2:?--output needs a directory}"; shift 2 ;;
        --work-dir) WORK="${2:?--work-dir needs a directory}"; shift 2 ;;
        --no-lintian) LINTIAN=0; shift ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "build-deb: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done
case "$SOURCE" in head | worktree) ;; *) echo "build-deb: --source must be head or worktree" >&2; exit 64 ;; esac

log() { echo "build-deb: $*" >&2; }

# --- What the build needs from Debian -------------------------------------------------------------------
if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
# debian/control's Build-Depends (debhelper-compat comes with debhelper), and git for --source head.
packages=(git debhelper dpkg-dev help2man pkg-config libvirt-dev libnfs-dev)
[ "$LINTIAN" -eq 1 ] && packages+=(lintian)
missing=()
for package in "${packages[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
        # A fresh machine may have no package lists yet.
        "${SUDO[@]}" apt-get update -qq >&2
        "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
fi

if ! command -v swift >/dev/null 2>&1; then
    if [ -x /opt/swift/usr/bin/swift ]; then
        PATH="/opt/swift/usr/bin:$PATH"
    else
        log "no Swift toolchain: put swift on PATH (Swift 6, swift.org's build for Debian 12)"
        exit 69
    fi
fi

# --- A clean export -------------------------------------------------------------------------------------
cd "$REPO"
commit="$(git rev-parse HEAD)"
version="$(sed -n 's/^ *static let current = "\([^"]*\)".*/\1/p' Sources/kvmha/KVMHA.swift | head -n 1)"
if [ -z "$version" ]; then
    log "no version: expected 'static let current = \"X.Y.Z\"' (KVMHAVersion) in Sources/kvmha/KVMHA.swift"
    exit 65
fi
package="kvmha-sidecar"
src="$WORK/$package-$version"

mkdir -p "$WORK"
# SwiftPM's scratch directory must be reached by the same path every time (module caches record it).
WORK="$(cd "$WORK" && pwd -P)"
rm -rf "$src" "$WORK"/"$package"_*.deb "$WORK"/"$package"_*.buildinfo "$WORK"/"$package"_*.changes
mkdir -p "$src"
if [ "$SOURCE" = head ]; then
    [ -z "$(git status --porcelain)" ] || log "note: the working tree has changes that --source head leaves out"
    git archive --format=tar HEAD | tar -x -C "$src"
    origin="git commit ${commit:0:12}"
else
    # Tracked files (as they are now) and untracked ones that are not ignored; deleted files drop out.
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done |
        tar --null -T - -c | tar -x -C "$src"
    origin="the working tree on git commit ${commit:0:12}"
fi
log "building $package $version from $origin"

# debian/ lives in packaging/ so that the repository's top level stays the Swift package's.
if [ ! -d "$src/packaging/debian" ]; then
    log "packaging/debian is not in the $SOURCE export: commit it, or use --source worktree"
    exit 65
fi
cp -a "$src/packaging/debian" "$src/debian"
# Dated by the commit, so the same commit gives the same package (dpkg derives SOURCE_DATE_EPOCH from it).
cat >"$src/debian/changelog" <<EOF
$package ($version) unstable; urgency=medium

  * Built by packaging/build-deb.sh
    from $origin.

 -- kvmha developers <dev@kvmha.invalid>  $(git log -1 --format=%aD HEAD)
EOF

# --- Build ---------------------------------------------------------------------------------------------
(
    cd "$src"
    # stdout carries only the path of the .deb, for callers: the build's output goes to stderr.
    KVMHA_SWIFT_SCRATCH="$WORK/swift" dpkg-buildpackage -us -uc -b >&2
)
deb="$(ls "$WORK"/"$package"_"$version"_*.deb)"

mkdir -p "$OUTPUT"
cp "$deb" "$OUTPUT/"
deb="$OUTPUT/$(basename "$deb")"

if [ "$LINTIAN" -eq 1 ]; then
    log "lintian:"
    lintian --fail-on error,warning "$deb" >&2
fi
log "built $deb"
echo "$deb"
