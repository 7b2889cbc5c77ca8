import Foundation
import HeartbeatCore
import Logging
import Sidecar

#if canImport(Glibc)
import Glibc
#endif

/// Why a drop-in command could not use the pool.
struct CloudStackPoolError: Error, CustomStringConvertible {
    var description: String
}

/// The pool `-m` of one drop-in run: every storage call runs on the pool's own I/O thread with a deadline
/// (`Pool`), so a hung mount gives an error after `ioTimeout`, never a hang; and nothing is read or written
/// unless `-m` is a mount point (see `CloudStackDropInMountTable`).
final class CloudStackPool: Sendable {
    let mountPoint: String
    let ioTimeout: Duration
    private let pool: Pool
    private let allowUnmounted: Bool

    init(mountPoint: String, ioTimeout: Duration, allowUnmounted: Bool) {
        self.mountPoint = mountPoint
        self.ioTimeout = ioTimeout
        self.allowUnmounted = allowUnmounted
        var logger = Logger(label: "kvmha.cloudstack")
        // The command reports its own errors; the pool's reachability log lines would only repeat them.
        logger.logLevel = .critical
        let root = mountPoint
        pool = Pool(id: "cloudstack", location: root, ioTimeout: ioTimeout, logger: logger) {
            DirectoryPoolFiles(root: root)
        }
    }

    func stop() { pool.stop() }

    /// Runs `body` on the pool's thread within `ioTimeout`, once `-m` is known to be a mount point.
    func call<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (any PoolFiles) throws(PoolIOError) -> T
    ) async throws(CloudStackPoolError) -> T {
        try await checkMounted()
        do {
            return try await pool.call(operation, affectsHealth: false, body)
        } catch {
            throw CloudStackPoolError(description: Self.describe(error, ioTimeout: ioTimeout))
        }
    }

    private func checkMounted() async throws(CloudStackPoolError) {
        if allowUnmounted { return }
        let table = CloudStackDropInMountTable(mountInfo: Self.mountInfo())
        // The mount table never touches the mounted file systems: a hung pool passes this test at once.
        if table.isMountPoint(mountPoint) { return }
        // A relative path, `..` or a symlink needs resolving, which touches the file system: on the pool's thread.
        let path = mountPoint
        let resolved: String?
        do {
            resolved = try await pool.call("resolve the mount point", affectsHealth: false) {
                _ throws(PoolIOError) -> String? in
                guard let pointer = realpath(path, nil) else { return nil }
                defer { free(pointer) }
                return String(cString: pointer)
            }
        } catch {
            throw CloudStackPoolError(description: Self.describe(error, ioTimeout: ioTimeout))
        }
        guard let resolved else {
            throw CloudStackPoolError(description: "\(mountPoint) does not exist: the pool is not mounted")
        }
        guard table.isMountPoint(resolved) else {
            throw CloudStackPoolError(
                description: "\(mountPoint) is not a mount point: the pool is not mounted (kvmha never mounts it, "
                    + "and never writes a heartbeat to the local disk under it)"
            )
        }
    }

    private static func mountInfo() -> String {
        (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
    }

    static func describe(_ error: PoolCallError, ioTimeout: Duration) -> String {
        switch error {
        case .timedOut, .stuck:
            "storage did not answer: \(error) (--io-timeout \(DurationText.format(ioTimeout))); the pool may be hung"
        default:
            error.description
        }
    }
}
