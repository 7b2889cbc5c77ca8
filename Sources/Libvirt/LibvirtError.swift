internal import CLibvirt

/// A failed libvirt call, with libvirt's own message.
///
/// libvirt keeps its last error per thread, so the wrapper reads it on the thread that made the failing
/// call, immediately after it.
public struct LibvirtError: Error, CustomStringConvertible, Sendable, Equatable {
    /// libvirt's `virErrorNumber` (for example 38, `VIR_ERR_SYSTEM_ERROR`).
    public let code: Int32
    /// libvirt's `virErrorDomain`: the part of libvirt that raised the error.
    public let domain: Int32
    /// libvirt's message, for example "Failed to connect socket to '/run/libvirt/libvirt-sock': No such file".
    public let message: String
    /// What the wrapper was doing, for example "open qemu:///system" or "list domains".
    public let operation: String

    public init(code: Int32, domain: Int32, message: String, operation: String) {
        self.code = code
        self.domain = domain
        self.message = message
        self.operation = operation
    }

    public var description: String {
        "libvirt: \(operation): \(message) (error \(code), domain \(domain))"
    }

    /// True when the error means the connection itself is gone (libvirtd stopped or restarted, socket closed),
    /// rather than a problem with one object: the caller should reconnect.
    public var isConnectionLost: Bool {
        switch code {
        case Int32(VIR_ERR_SYSTEM_ERROR.rawValue), Int32(VIR_ERR_NO_CONNECT.rawValue),
            Int32(VIR_ERR_INVALID_CONN.rawValue), Int32(VIR_ERR_RPC.rawValue):
            return true
        default:
            return false
        }
    }

    /// True when the named domain does not exist (any more).
    public var isNoSuchDomain: Bool { code == Int32(VIR_ERR_NO_DOMAIN.rawValue) }

    /// Reads and clears this thread's last libvirt error. Call right after the failing call.
    static func last(_ operation: String) -> LibvirtError {
        defer { virResetLastError() }
        guard let error = virGetLastError() else {
            return LibvirtError(
                code: Int32(VIR_ERR_INTERNAL_ERROR.rawValue),
                domain: 0,
                message: "the call failed without a libvirt error",
                operation: operation
            )
        }
        let message = error.pointee.message.map { String(cString: $0) } ?? "no message"
        return LibvirtError(
            code: error.pointee.code,
            domain: error.pointee.domain,
            message: message,
            operation: operation
        )
    }

    /// An error the wrapper raises itself (closed connection, unparsable XML).
    static func wrapper(_ code: virErrorNumber, _ message: String, operation: String) -> LibvirtError {
        LibvirtError(code: Int32(code.rawValue), domain: 0, message: message, operation: operation)
    }
}
