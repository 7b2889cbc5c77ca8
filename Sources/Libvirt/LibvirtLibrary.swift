internal import CLibvirt

#if canImport(Glibc)
import Glibc
#endif

/// One-time process set-up of libvirt itself.
enum LibvirtLibrary {
    /// Runs `virInitialize` (required before threads use libvirt) and installs an error handler that
    /// prints nothing: without one, libvirt writes every error to stderr; the wrapper reports them instead.
    ///
    /// Also ignores SIGPIPE for the whole process: libvirt's remote driver writes its calls to libvirtd's
    /// socket with plain `write()` (seen with strace on 9.0), so a call or keepalive racing a libvirtd restart
    /// would otherwise kill the process (it did, in the test suite). Such writes now fail with EPIPE, which
    /// libvirt reports as a lost connection. Children started later should reset the disposition.
    static func initialize() {
        _ = initialized
    }

    private static let initialized: Void = {
        signal(SIGPIPE, SIG_IGN)
        _ = virInitialize()
        virSetErrorFunc(nil, silenceErrors)
    }()
}

/// The error handler: errors are read back with `virGetLastError`, so there is nothing to do here.
private let silenceErrors: virErrorFunc = { _, _ in }
