public import HeartbeatCore
#if canImport(Glibc)
import Glibc
#endif
public import Logging
import Synchronization

/// What the daemon knows about its own access to one pool.
public struct PoolHealth: Sendable {
    public var reachable: Bool
    /// When `reachable` last changed.
    public var since: ContinuousClock.Instant
    public var lastError: String?
    public var lastErrorWallMs: Int64?
    public var lastGoodBeatWallMs: Int64?
    public var lastGoodBeatAt: ContinuousClock.Instant?
    public var beatsOK: UInt64 = 0
    public var beatsFailed: UInt64 = 0

    /// In the form the liveness rules take.
    public var ownStorage: OwnStorageHealth<ContinuousClock.Instant> {
        reachable ? .healthy(since: since) : .failing(since: since, reason: lastError ?? "unreachable")
    }
}

/// One pool the daemon writes to and reads from: its I/O thread and its health.
public final class Pool: Sendable {
    public let id: String
    public let location: String
    public let ioTimeout: Duration
    private let io: PoolIOThread
    private let state: Mutex<PoolHealth>
    private let logger: Logger

    public init(id: String, location: String, ioTimeout: Duration, logger: Logger, makeFiles: @escaping @Sendable () throws -> any PoolFiles) {
        self.id = id
        self.location = location
        self.ioTimeout = ioTimeout
        self.io = PoolIOThread(name: id, makeFiles: makeFiles)
        // Unproven until the first call succeeds: never judge peers through a pool we have not used yet.
        self.state = Mutex(PoolHealth(reachable: false, since: .now, lastError: "not used yet"))
        var logger = logger
        logger[metadataKey: "pool"] = "\(id)"
        self.logger = logger
    }

    public var health: PoolHealth { state.withLock { $0 } }

    public var stuckSince: ContinuousClock.Instant? { io.stuckSince }

    public func stop() { io.stop() }

    /// Runs a storage call on the pool's thread, bounded by `ioTimeout`.
    ///
    /// - Parameter affectsHealth: whether a storage *error* says something about our access to the pool
    ///   (a failed beat write does; a peer's unreadable file does not). Timeouts always do.
    public func call<T: Sendable>(
        _ operation: String,
        priority: PoolIOThread.Priority = .low,
        affectsHealth: Bool = true,
        _ body: @escaping @Sendable (any PoolFiles) throws(PoolIOError) -> T
    ) async throws(PoolCallError) -> T {
        let result: Result<T, PoolCallError> = await withCheckedContinuation { continuation in
            submit(operation, priority: priority, affectsHealth: affectsHealth, body) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// As `call`, without waiting: `completion` gets the outcome (on the pool's threads; keep it short).
    public func submit<T: Sendable>(
        _ operation: String,
        priority: PoolIOThread.Priority = .low,
        affectsHealth: Bool = true,
        _ body: @escaping @Sendable (any PoolFiles) throws(PoolIOError) -> T,
        completion: @escaping @Sendable (Result<T, PoolCallError>) -> Void
    ) {
        io.submit(operation, priority: priority, timeout: ioTimeout, body) { result in
            switch result {
            case .success:
                self.markReachable()
            case .failure(.io) where !affectsHealth:
                self.markReachable()
            case .failure(.stopped):
                break  // shutting down says nothing about the storage
            case .failure(let error):
                self.markUnreachable(error)
            }
            completion(result)
        }
    }

    func recordBeat(ok: Bool, wallMs: Int64) {
        state.withLock {
            if ok {
                $0.beatsOK += 1
                $0.lastGoodBeatWallMs = wallMs
                $0.lastGoodBeatAt = .now
            } else {
                $0.beatsFailed += 1
            }
        }
    }

    private func markReachable() {
        let changed = state.withLock { health -> Bool in
            guard !health.reachable else { return false }
            health.reachable = true
            health.since = .now
            return true
        }
        if changed { logger.notice("pool reachable", metadata: ["location": "\(location)"]) }
    }

    private func markUnreachable(_ error: PoolCallError) {
        let text = error.description
        let changed = state.withLock { health -> Bool in
            let firstVerdict = !health.reachable && health.lastErrorWallMs == nil
            health.lastError = text
            health.lastErrorWallMs = WallClock.nowMs()
            guard health.reachable || firstVerdict else { return false }
            health.reachable = false
            health.since = .now
            return true
        }
        if changed { logger.warning("pool unreachable: \(text)", metadata: ["location": "\(location)"]) }
    }
}

public enum WallClock {
    public static func nowMs() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}
