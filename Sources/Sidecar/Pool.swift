public import HeartbeatCore
#if canImport(Glibc)
import Glibc
#endif
public import Logging
import Synchronization

/// One way of reaching a pool: the kernel mount CloudStack made (`path`), or libnfs straight to the NFS server
/// (`url`), which no hung kernel mount can block.
public struct PoolAccess: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case path
        case url
    }

    public var kind: Kind
    /// `/mnt/…` or `nfs://…`.
    public var location: String
    /// Opens the backend; called on the path's own I/O thread, again after it failed.
    public var makeFiles: @Sendable () throws -> any PoolFiles

    public init(kind: Kind, location: String, makeFiles: @escaping @Sendable () throws -> any PoolFiles) {
        self.kind = kind
        self.location = location
        self.makeFiles = makeFiles
    }
}

/// What the daemon knows about one way of reaching a pool.
public struct PoolPathHealth: Sendable {
    public var kind: PoolAccess.Kind
    public var location: String
    public var reachable: Bool
    /// When `reachable` last changed.
    public var since: ContinuousClock.Instant
    public var lastError: String?
    public var lastErrorWallMs: Int64?
    /// When a call through this path last succeeded: reads go to the reachable path that answered last.
    public var lastSuccessAt: ContinuousClock.Instant?
    /// When the call now blocked past its deadline on this path started, if one is.
    public var stuckSince: ContinuousClock.Instant?
}

/// What the daemon knows about its own access to one pool.
public struct PoolHealth: Sendable {
    /// Whether any path to the pool works.
    public var reachable: Bool
    /// When `reachable` last changed.
    public var since: ContinuousClock.Instant
    public var lastError: String?
    public var lastErrorWallMs: Int64?
    public var lastGoodBeatWallMs: Int64?
    public var lastGoodBeatAt: ContinuousClock.Instant?
    public var beatsOK: UInt64 = 0
    public var beatsFailed: UInt64 = 0
    /// Each way the pool is reached (`path` before `url`), with its own state.
    public var paths: [PoolPathHealth] = []

    /// In the form the liveness rules take.
    public var ownStorage: OwnStorageHealth<ContinuousClock.Instant> {
        reachable ? .healthy(since: since) : .failing(since: since, reason: lastError ?? "unreachable")
    }
}

/// One pool the daemon writes to and reads from: one I/O thread per way of reaching it, and its health.
///
/// A pool reached both through its mount (`path`) and through libnfs (`url`) writes each beat (every `.high`
/// priority call) through both at once, and the beat counts when either lands; every other call (scans, clean-up)
/// goes to the reachable path that answered last. The two writers of one beat use different temporary names, so
/// they never collide. Each path has its own I/O thread, deadline and health; the pool is reachable while any
/// path is.
public final class Pool: Sendable {
    public let id: String
    public let location: String
    public let ioTimeout: Duration
    private let routes: [Route]
    private let state: Mutex<PoolHealth>
    private let logger: Logger

    /// One path: its thread and its health.
    private final class Route: Sendable {
        let kind: PoolAccess.Kind
        let location: String
        let io: PoolIOThread
        let state: Mutex<PoolPathHealth>

        init(_ access: PoolAccess, poolID: String, qualified: Bool) {
            kind = access.kind
            location = access.location
            io = PoolIOThread(name: qualified ? "\(poolID)-\(access.kind.rawValue)" : poolID, makeFiles: access.makeFiles)
            state = Mutex(
                PoolPathHealth(
                    kind: access.kind, location: access.location, reachable: false, since: .now,
                    lastError: "not used yet"))
        }
    }

    /// A pool reached one way (`location` starting with `nfs://` counts as a `url`).
    public convenience init(
        id: String, location: String, ioTimeout: Duration, logger: Logger,
        makeFiles: @escaping @Sendable () throws -> any PoolFiles
    ) {
        let kind: PoolAccess.Kind = location.hasPrefix("nfs://") ? .url : .path
        self.init(
            id: id, accesses: [PoolAccess(kind: kind, location: location, makeFiles: makeFiles)], ioTimeout: ioTimeout,
            logger: logger)
    }

    /// A pool reached one or more ways (at most one of each kind).
    public init(id: String, accesses: [PoolAccess], ioTimeout: Duration, logger: Logger) {
        precondition(!accesses.isEmpty, "a pool needs a path or a url")
        self.id = id
        // The first way (the mount, when there is one) names the pool in logs; `health.paths` shows every way.
        self.location = accesses[0].location
        self.ioTimeout = ioTimeout
        self.routes = accesses.map { Route($0, poolID: id, qualified: accesses.count > 1) }
        // Unproven until the first call succeeds: never judge peers through a pool we have not used yet.
        self.state = Mutex(PoolHealth(reachable: false, since: .now, lastError: "not used yet"))
        var logger = logger
        logger[metadataKey: "pool"] = "\(id)"
        self.logger = logger
    }

    public var health: PoolHealth {
        var health = state.withLock { $0 }
        health.paths = routes.map { route in
            var path = route.state.withLock { $0 }
            path.stuckSince = route.io.stuckSince
            return path
        }
        return health
    }

    /// When the call now blocked past its deadline started — with two paths, only when both are blocked (then
    /// the later of the two): one stuck path does not stop the pool.
    public var stuckSince: ContinuousClock.Instant? {
        var latest: ContinuousClock.Instant?
        for route in routes {
            guard let since = route.io.stuckSince else { return nil }
            latest = max(latest ?? since, since)
        }
        return latest
    }

    public func stop() {
        for route in routes { route.io.stop() }
    }

    /// Runs `action` at `due` on the I/O thread of the pool's first path (see `PoolIOThread`, "Timers"): there
    /// when it is free, else on its watchdog, never later than a blocked call allows. `orphaned` runs instead
    /// when the pool is stopped first.
    @discardableResult
    public func scheduleTimer(
        at due: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void,
        orphaned: @escaping @Sendable () -> Void
    ) -> UInt64 {
        routes[0].io.scheduleTimer(at: due, action, orphaned: orphaned)
    }

    public func cancelTimer(_ id: UInt64) {
        routes[0].io.cancelTimer(id)
    }

    /// Runs a storage call on the pool's thread, bounded by `ioTimeout`.
    ///
    /// - Parameters:
    ///   - affectsHealth: whether a storage *error* says something about our access to the pool
    ///     (a failed beat write does; a peer's unreadable file does not). Timeouts always do.
    ///   - everyPath: run it through every path at once and succeed when one does; otherwise it runs once,
    ///     through the reachable path that answered last. Default: `priority == .high`, since high-priority calls
    ///     are beats, the writes that must land by whatever path works.
    public func call<T: Sendable>(
        _ operation: String,
        priority: PoolIOThread.Priority = .low,
        affectsHealth: Bool = true,
        everyPath: Bool? = nil,
        _ body: @escaping @Sendable (any PoolFiles) throws(PoolIOError) -> T
    ) async throws(PoolCallError) -> T {
        let result: Result<T, PoolCallError> = await withCheckedContinuation { continuation in
            submit(operation, priority: priority, affectsHealth: affectsHealth, everyPath: everyPath, body) {
                continuation.resume(returning: $0)
            }
        }
        return try result.get()
    }

    /// As `call`, without waiting: `completion` gets the outcome (on the pool's threads; keep it short). With
    /// `everyPath`, it comes once every path has answered (each within `ioTimeout`): a success when any path
    /// succeeded, else every path's reason. Waiting for all keeps one round one consistent look at every path.
    public func submit<T: Sendable>(
        _ operation: String,
        priority: PoolIOThread.Priority = .low,
        affectsHealth: Bool = true,
        everyPath: Bool? = nil,
        _ body: @escaping @Sendable (any PoolFiles) throws(PoolIOError) -> T,
        completion: @escaping @Sendable (Result<T, PoolCallError>) -> Void
    ) {
        guard routes.count > 1 else {
            run(on: routes[0], operation, priority, affectsHealth, body, completion)
            return
        }
        guard everyPath ?? (priority == .high) else {
            run(on: preferredRoute(), operation, priority, affectsHealth, body, completion)
            return
        }
        let outcomes = AnySuccess(expected: routes.count, completion: completion)
        for (index, route) in routes.enumerated() {
            // The paths may reach the same files: each writes its own temporary file before its rename.
            let routed = index == 0 ? body : Self.taggingTemporaries(body, "-\(route.kind.rawValue)")
            run(on: route, operation, priority, affectsHealth, routed) { outcomes.report(route.kind, $0) }
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

    private func run<T: Sendable>(
        on route: Route, _ operation: String, _ priority: PoolIOThread.Priority, _ affectsHealth: Bool,
        _ body: @escaping @Sendable (any PoolFiles) throws(PoolIOError) -> T,
        _ completion: @escaping @Sendable (Result<T, PoolCallError>) -> Void
    ) {
        route.io.submit(operation, priority: priority, timeout: ioTimeout, body) { result in
            switch result {
            case .success:
                self.markReachable(route)
            case .failure(.io) where !affectsHealth:
                self.markReachable(route)
            case .failure(.stopped):
                break  // shutting down says nothing about the storage
            case .failure(let error):
                self.markUnreachable(route, error)
            }
            completion(result)
        }
    }

    /// The reachable path that answered last; when none is reachable, the one that answered last at all, so the
    /// call still tries (and a recovered path is found).
    private func preferredRoute() -> Route {
        let states = routes.map { route in (route, route.state.withLock { ($0.reachable, $0.lastSuccessAt) }) }
        func later(_ a: ContinuousClock.Instant?, _ b: ContinuousClock.Instant?) -> Bool {
            switch (a, b) {
            case (.some(let a), .some(let b)): a > b
            case (.some, .none): true
            default: false
            }
        }
        let reachable = states.filter { $0.1.0 }
        let candidates = reachable.isEmpty ? states : reachable
        var best = candidates[0]
        for candidate in candidates.dropFirst() where later(candidate.1.1, best.1.1) { best = candidate }
        return best.0
    }

    private var isMultiPath: Bool { routes.count > 1 }

    private func markReachable(_ route: Route) {
        let changed = route.state.withLock { path -> Bool in
            path.lastSuccessAt = .now
            guard !path.reachable else { return false }
            path.reachable = true
            path.since = .now
            return true
        }
        guard changed else { return }
        if isMultiPath {
            logger.notice("pool path \(route.kind.rawValue) reachable", metadata: ["location": "\(route.location)"])
        }
        updateOverall(failure: nil)
    }

    private func markUnreachable(_ route: Route, _ error: PoolCallError) {
        let text = error.description
        let changed = route.state.withLock { path -> Bool in
            let firstVerdict = !path.reachable && path.lastErrorWallMs == nil
            path.lastError = text
            path.lastErrorWallMs = WallClock.nowMs()
            guard path.reachable || firstVerdict else { return false }
            path.reachable = false
            path.since = .now
            return true
        }
        if changed && isMultiPath {
            logger.warning(
                "pool path \(route.kind.rawValue) unreachable: \(text)", metadata: ["location": "\(route.location)"])
        }
        updateOverall(failure: isMultiPath ? "\(route.kind.rawValue): \(text)" : text)
    }

    /// The pool is reachable while any of its paths is; logs when that changes.
    private func updateOverall(failure: String?) {
        // The paths' states are read under the pool's lock, so the last of two concurrent updates sees both.
        let change = state.withLock { health -> (reachable: Bool, why: String?)? in
            let anyReachable = routes.contains { route in route.state.withLock { $0.reachable } }
            let firstVerdict = !health.reachable && health.lastErrorWallMs == nil
            if let failure {
                health.lastError = failure
                health.lastErrorWallMs = WallClock.nowMs()
            }
            guard health.reachable != anyReachable || (firstVerdict && failure != nil) else { return nil }
            health.reachable = anyReachable
            health.since = .now
            return (anyReachable, health.lastError)
        }
        guard let change else { return }
        if change.reachable {
            logger.notice("pool reachable", metadata: ["location": "\(location)"])
        } else {
            let why = change.why ?? "unreachable"
            logger.warning(
                "pool unreachable: \(isMultiPath ? "every path fails; last: " : "")\(why)",
                metadata: ["location": "\(location)"])
        }
    }

    private static func taggingTemporaries<T>(
        _ body: @escaping @Sendable (any PoolFiles) throws(PoolIOError) -> T, _ tag: String
    ) -> @Sendable (any PoolFiles) throws(PoolIOError) -> T {
        { files throws(PoolIOError) in try body(TaggedTemporaries(files, tag: tag)) }
    }
}

/// Collects the outcomes of one call made through every path: once all are in, the first success is the answer,
/// or, when every path failed, all their reasons are.
private final class AnySuccess<T: Sendable>: Sendable {
    private struct State {
        var pending: Int
        var success: T?
        var failures: [(PoolAccess.Kind, PoolCallError)] = []
    }

    private let state: Mutex<State>
    private let completion: @Sendable (Result<T, PoolCallError>) -> Void

    init(expected: Int, completion: @escaping @Sendable (Result<T, PoolCallError>) -> Void) {
        state = Mutex(State(pending: expected))
        self.completion = completion
    }

    func report(_ kind: PoolAccess.Kind, _ result: Result<T, PoolCallError>) {
        let answer = state.withLock { state -> Result<T, PoolCallError>? in
            switch result {
            case .success(let value): if state.success == nil { state.success = value }
            case .failure(let error): state.failures.append((kind, error))
            }
            state.pending -= 1
            guard state.pending == 0 else { return nil }
            if let success = state.success { return .success(success) }
            if state.failures.allSatisfy({ if case .stopped = $0.1 { true } else { false } }) {
                return .failure(.stopped)
            }
            return .failure(.unavailable(state.failures.map { "\($0.0.rawValue): \($0.1)" }.joined(separator: "; ")))
        }
        if let answer { completion(answer) }
    }
}

/// A path's files with its own temporary names: appends `tag` to every temporary file name, so two paths that
/// reach the same files never create the same temporary file. Our prefix (and so the clean-up of leftovers)
/// is unchanged.
private final class TaggedTemporaries: PoolFiles {
    private let files: any PoolFiles
    private let tag: String

    init(_ files: any PoolFiles, tag: String) {
        self.files = files
        self.tag = tag
    }

    var location: String { files.location }
    func makeFolder(_ path: String) throws(PoolIOError) { try files.makeFolder(path) }
    func replaceAtomically(_ path: String, with bytes: [UInt8], temporaryPath: String, durable: Bool) throws(PoolIOError) {
        try files.replaceAtomically(path, with: bytes, temporaryPath: temporaryPath + tag, durable: durable)
    }
    func overwrite(_ path: String, with bytes: [UInt8]) throws(PoolIOError) { try files.overwrite(path, with: bytes) }
    func read(_ path: String, maxBytes: Int) throws(PoolIOError) -> FileRead { try files.read(path, maxBytes: maxBytes) }
    // Forwarded, not left to the protocol's default: that would read file by file and lose the store's batch read.
    func readMany(folder: String, names: [String], maxBytes: Int) throws(PoolIOError) -> [Result<FileRead, PoolIOError>] {
        try files.readMany(folder: folder, names: names, maxBytes: maxBytes)
    }
    func list(_ path: String) throws(PoolIOError) -> [PoolDirectoryEntry] { try files.list(path) }
    func stat(_ path: String) throws(PoolIOError) -> PoolFileStat? { try files.stat(path) }
    func remove(_ path: String) throws(PoolIOError) { try files.remove(path) }
}

public enum WallClock {
    public static func nowMs() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}
