#!/usr/bin/env python3
"""freezefs: a pass-through FUSE file system that can be frozen, imitating a hung hard NFS mount.

    freezefs.py BACKING MOUNTPOINT --control CONTROL [--verbose]

Every operation on MOUNTPOINT is forwarded to the same path under BACKING. While the file
CONTROL exists, every new operation blocks inside this process (as a request to an unresponsive
NFS server would); `touch CONTROL` freezes, `rm CONTROL` thaws and all blocked operations
resume. CONTROL must live outside the mount, or checking it would wait on ourselves.

Removing (or renaming over) a file that is still open renames it to .fuse_hiddenNNNN until its last
close, like the .nfsNNNN files of NFS; anything listing a folder on the mount must skip dot files.

The mount uses direct_io and zero attr/entry/negative timeouts, so every read, write, stat and
lookup really reaches this process and none is answered from the kernel's caches. It runs in the
foreground and multithreaded (libfuse 2 starts a thread per concurrent request, so a thaw
releases all of them at once).

Lines on stdout, for the harness:
    READY <mountpoint>           once the kernel has sent FUSE_INIT, i.e. the mount is live
    BLOCKED <op> <path>          an operation started waiting because the file system is frozen
    RESUMED <op> <path>          that operation continues after a thaw

Needs fusepy (pinned by scripts/install-test-deps.sh) and libfuse2; run it with the venv's python.
"""

import argparse
import ctypes
import errno
import os
import sys
import threading
import time

try:
    from fuse import FUSE, FuseOSError, Operations
except (ImportError, OSError, EnvironmentError) as error:  # OSError: fusepy found no libfuse.so.2
    sys.stderr.write(
        f"freezefs: cannot load fusepy/libfuse2 ({error}); run scripts/install-test-deps.sh\n"
    )
    sys.exit(3)

# How often a blocked operation looks at the control file again; only bounds thaw latency.
POLL_SECONDS = 0.005

_libc = ctypes.CDLL(None, use_errno=True)
_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
_libc.utimensat.restype = ctypes.c_int
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100


class _Announcer:
    """Writes whole lines to stdout from many FUSE threads at once."""

    def __init__(self):
        self._lock = threading.Lock()

    def say(self, *words):
        line = " ".join(str(word) for word in words)
        with self._lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


class FreezeFS(Operations):
    # Not frozen: the mount must come up and go away whatever the control file says.
    UNFROZEN = frozenset(("init", "destroy"))

    def __init__(self, backing, mountpoint, control, verbose):
        self.backing = os.path.realpath(backing)
        self.mountpoint = mountpoint
        self.control = control
        self.verbose = verbose
        self.announcer = _Announcer()

    # -- freezing -------------------------------------------------------------------------

    def __call__(self, op, *args):
        if op not in self.UNFROZEN and os.path.lexists(self.control):
            where = " ".join(str(arg) for arg in args[:2] if isinstance(arg, str)) or "-"
            self.announcer.say("BLOCKED", op, where)
            while os.path.lexists(self.control):
                time.sleep(POLL_SECONDS)
            self.announcer.say("RESUMED", op, where)
        if self.verbose:
            sys.stderr.write(f"freezefs: {op} {args[:2]!r}\n")
        return super().__call__(op, *args)

    def _full(self, path):
        return os.path.join(self.backing, path.lstrip("/"))

    # -- lifecycle ------------------------------------------------------------------------

    def init(self, path):
        self.announcer.say("READY", self.mountpoint)

    def destroy(self, path):
        pass

    # -- metadata -------------------------------------------------------------------------

    def getattr(self, path, fi=None):
        st = os.lstat(self._full(path))
        return {
            "st_mode": st.st_mode,
            "st_ino": st.st_ino,
            "st_nlink": st.st_nlink,
            "st_uid": st.st_uid,
            "st_gid": st.st_gid,
            "st_size": st.st_size,
            "st_blocks": st.st_blocks,
            "st_rdev": st.st_rdev,
            "st_atime": st.st_atime_ns,
            "st_mtime": st.st_mtime_ns,
            "st_ctime": st.st_ctime_ns,
        }

    def access(self, path, amode):
        if not os.access(self._full(path), amode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        os.chmod(self._full(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._full(path), uid, gid, follow_symlinks=False)

    def utimens(self, path, times):
        # `times` is the raw `struct timespec[2]` (or NULL) libfuse gave us, passed through
        # unchanged so UTIME_NOW and UTIME_OMIT keep their meaning.
        if _libc.utimensat(AT_FDCWD, self._full(path).encode(), times, AT_SYMLINK_NOFOLLOW) != 0:
            raise FuseOSError(ctypes.get_errno())

    def truncate(self, path, length, fi=None):
        if fi is not None:
            os.ftruncate(fi.fh, length)
        else:
            os.truncate(self._full(path), length)

    def statfs(self, path):
        sv = os.statvfs(self._full(path))
        return {key: getattr(sv, key) for key in (
            "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
            "f_files", "f_ffree", "f_favail", "f_flag", "f_namemax")}

    # -- names ----------------------------------------------------------------------------

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._full(path))

    def mkdir(self, path, mode):
        os.mkdir(self._full(path), mode)

    def rmdir(self, path):
        os.rmdir(self._full(path))

    def mknod(self, path, mode, dev):
        os.mknod(self._full(path), mode, dev)

    def unlink(self, path):
        os.unlink(self._full(path))

    def rename(self, old, new):
        os.rename(self._full(old), self._full(new))

    def link(self, target, source):
        # fusepy's order: `target` is the new name, `source` the existing file.
        os.link(self._full(source), self._full(target))

    def symlink(self, target, source):
        # `target` is the new link inside the mount, `source` its content (stored verbatim).
        os.symlink(source, self._full(target))

    def readlink(self, path):
        return os.readlink(self._full(path))

    # -- file contents (raw_fi: `fi` is libfuse's fuse_file_info) --------------------------

    def create(self, path, mode, fi):
        # The caller's flags (O_EXCL, O_APPEND, access mode, O_SYNC) reach the backing file.
        fi.fh = os.open(self._full(path), _backing_flags(fi.flags) | os.O_CREAT, mode)
        return 0

    def open(self, path, fi):
        fi.fh = os.open(self._full(path), _backing_flags(fi.flags))
        return 0

    def read(self, path, size, offset, fi):
        return os.pread(fi.fh, size, offset)

    def write(self, path, data, offset, fi):
        return os.pwrite(fi.fh, data, offset)

    def flush(self, path, fi):
        # Called on every close() of a descriptor; like libfuse's passthrough example, surface
        # errors of the backing file without forcing it to disk.
        os.close(os.dup(fi.fh))

    def fsync(self, path, datasync, fi):
        if datasync:
            os.fdatasync(fi.fh)
        else:
            os.fsync(fi.fh)

    def release(self, path, fi):
        os.close(fi.fh)


def _backing_flags(flags):
    # The mount is uncached already (direct_io); O_DIRECT on the backing file would only demand
    # aligned buffers, or fail where the backing file system (tmpfs) does not support it.
    return flags & ~os.O_DIRECT


class _FreezeFUSE(FUSE):
    def utimens(self, path, buf):
        # fusepy would turn the timespecs into numbers and lose UTIME_NOW/UTIME_OMIT.
        return self.operations("utimens", path.decode(self.encoding),
                               ctypes.cast(buf, ctypes.c_void_p) if buf else None)


def main():
    parser = argparse.ArgumentParser(description="Freezable pass-through FUSE file system.")
    parser.add_argument("backing", help="directory whose contents the mount shows")
    parser.add_argument("mountpoint", help="empty directory to mount on")
    parser.add_argument("--control", required=True,
                        help="file outside the mount: while it exists, every operation blocks")
    parser.add_argument("--verbose", action="store_true", help="log every operation to stderr")
    args = parser.parse_args()

    backing = os.path.realpath(args.backing)
    mountpoint = os.path.realpath(args.mountpoint)
    control = os.path.realpath(args.control)
    if not os.path.isdir(backing):
        parser.error(f"backing directory {backing} does not exist")
    if not os.path.isdir(mountpoint):
        parser.error(f"mountpoint {mountpoint} does not exist")
    if control == mountpoint or control.startswith(mountpoint + os.sep):
        parser.error("the control file must live outside the mount")
    if not os.path.exists("/dev/fuse"):
        sys.stderr.write("freezefs: /dev/fuse is missing (no FUSE support in this kernel/container)\n")
        sys.exit(3)

    operations = FreezeFS(backing, mountpoint, control, args.verbose)
    operations.use_ns = True  # nanosecond timestamps in getattr
    _FreezeFUSE(
        operations,
        mountpoint,
        raw_fi=True,
        foreground=True,
        nothreads=False,
        fsname="freezefs",
        subtype="freezefs",
        direct_io=True,
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        # No hard_remove: removing or renaming over an open file leaves a .fuse_hiddenNNNN until
        # it is closed, as NFS leaves its .nfsNNNN "silly rename" files; readers must skip both.
        use_ino=True,
    )


if __name__ == "__main__":
    main()
