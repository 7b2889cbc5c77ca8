internal import Glibc

/// A failed libnfs call, with libnfs's own message read right after the call on the context's thread.
public struct NFSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The call that failed, e.g. `"mount"`, `"open"`, `"write"`.
    public let operation: String
    /// The path it was about (relative to the export), if any.
    public let path: String?
    /// Negative errno, as libnfs returns it (`-EINTR` for a timeout, `-EFBIG` for a file over `maxBytes`).
    public let code: Int32
    /// libnfs's `nfs_get_error` text, or the wrapper's own explanation.
    public let message: String

    public init(operation: String, path: String?, code: Int32, message: String) {
        self.operation = operation
        self.path = path
        self.code = code
        self.message = message
    }

    /// The context that produced this error must be destroyed and a new one mounted; never reuse it.
    ///
    /// True for a timeout (the server may still answer the abandoned call), a lost or refused connection
    /// (`nfs_service failed`, `Socket failed`), a stale handle of the export, NFSv4 client state the server
    /// has dropped (`NFS4ERR_EXPIRED`, `NFS4ERR_STALE_CLIENTID`, …; libnfs 4.0.0 never renews the lease),
    /// a failed mount, and calls on a closed or already failed context.
    /// False for answers about the file system itself (`ENOENT`, `EEXIST`, `EACCES`, `ENOSPC`, …).
    public var requiresNewContext: Bool {
        if Self.stateLossMarkers.contains(where: { message.contains($0) }) { return true }
        if Self.transportFailureMarkers.contains(where: { message.contains($0) }) { return true }
        if operation == "mount" || operation == "context" { return true }
        switch -code {
        case EINTR, ETIMEDOUT, EPIPE, ECONNRESET, ECONNREFUSED, ECONNABORTED, ENOTCONN, ESHUTDOWN,
            EHOSTUNREACH, ENETUNREACH, ENETDOWN, EHOSTDOWN, ESTALE, EBADF:
            return true
        case EIO:
            // A server-side I/O error names its status (NFS3ERR_IO); a bare EIO is libnfs's transport failure.
            return !message.contains("NFS3ERR_") && !message.contains("NFS4ERR_")
        default:
            return false
        }
    }

    /// The call did not finish within the context's timeout.
    public var isTimeout: Bool { -code == EINTR || -code == ETIMEDOUT || message.contains("timed out") }

    /// The path (or a parent of it) does not exist.
    public var isNotFound: Bool { -code == ENOENT }

    /// The path exists already (exclusive create, `mkdir` over a file).
    public var isAlreadyExisting: Bool { -code == EEXIST }

    /// `readFile` refused a file longer than its `maxBytes`.
    public var isFileTooLarge: Bool { -code == EFBIG }

    public var description: String {
        var text = "NFS \(operation)"
        if let path { text += " \(path)" }
        text += " failed: \(Self.errnoName(-code)): \(message)"
        if isTimeout {
            text += " — the server did not answer in time; mount a new context"
        } else if requiresNewContext {
            text += " — this NFS context is unusable; mount a new one"
        }
        return text
    }

    private static let stateLossMarkers = [
        "NFS4ERR_EXPIRED", "NFS4ERR_STALE_CLIENTID", "NFS4ERR_STALE_STATEID", "NFS4ERR_BADSESSION",
        "NFS4ERR_DEADSESSION", "NFS4ERR_LEASE_MOVED", "NFS4ERR_ADMIN_REVOKED", "NFS4ERR_BAD_STATEID",
        "NFS4ERR_OLD_STATEID", "NFS4ERR_STALE", "NFS4ERR_FHEXPIRED", "NFS4ERR_MOVED", "NFS3ERR_STALE",
        "NFS3ERR_BADHANDLE",
    ]

    private static let transportFailureMarkers = [
        "nfs_service failed", "Socket failed", "timed out", "Failed to connect", "Failed to start connection",
        "reconnect", "RPC: ", "rpc_connect",
    ]

    private static func errnoName(_ number: Int32) -> String {
        switch number {
        case EPERM: "EPERM"
        case ENOENT: "ENOENT"
        case EINTR: "EINTR (timeout)"
        case EIO: "EIO"
        case EBADF: "EBADF"
        case EACCES: "EACCES"
        case EEXIST: "EEXIST"
        case ENOTDIR: "ENOTDIR"
        case EISDIR: "EISDIR"
        case EINVAL: "EINVAL"
        case EFBIG: "EFBIG"
        case ENOSPC: "ENOSPC"
        case EROFS: "EROFS"
        case ERANGE: "ERANGE"
        case ENAMETOOLONG: "ENAMETOOLONG"
        case ENOTEMPTY: "ENOTEMPTY"
        case EDQUOT: "EDQUOT"
        case ESTALE: "ESTALE"
        case ETIMEDOUT: "ETIMEDOUT"
        case ECONNREFUSED: "ECONNREFUSED"
        case ECONNRESET: "ECONNRESET"
        case ENOMEM: "ENOMEM"
        default: "errno \(number)"
        }
    }
}
