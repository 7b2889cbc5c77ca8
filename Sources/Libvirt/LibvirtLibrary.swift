internal import CLibvirt

/// One-time process set-up of libvirt itself.
enum LibvirtLibrary {
    /// Runs `virInitialize` (required before threads use libvirt) and installs an error handler that
    /// prints nothing: without one, libvirt writes every error to stderr; the wrapper reports them instead.
    static func initialize() {
        _ = initialized
    }

    private static let initialized: Void = {
        _ = virInitialize()
        virSetErrorFunc(nil, silenceErrors)
    }()
}

/// The error handler: errors are read back with `virGetLastError`, so there is nothing to do here.
private let silenceErrors: virErrorFunc = { _, _ in }
