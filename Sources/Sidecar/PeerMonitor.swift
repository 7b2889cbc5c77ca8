public import HeartbeatCore
public import Logging
public import ServiceLifecycle
import Synchronization

/// A peer's verdict overall and on each pool.
public struct PeerReport: Sendable {
    public var peer: HostAddress
    public var overall: PeerVerdict
    public var perPool: [String: PeerVerdict]

    public init(peer: HostAddress, overall: PeerVerdict, perPool: [String: PeerVerdict]) {
        self.peer = peer
        self.overall = overall
        self.perPool = perPool
    }
}

/// Scans every pool's records each `interval` and keeps each peer's liveness in memory. Questions about
/// peers are answered from that memory, never by waiting on storage.
public final class PeerMonitor: Service, Sendable {
    private struct State {
        var perPool: [String: [HostAddress: PeerLiveness<ContinuousClock>]] = [:]
        var lastOverall: [HostAddress: Liveness] = [:]
    }

    private let identity: HostIdentity
    private let pools: PoolSet
    private let timing: TimingSettings
    private let skewAllowance: Duration?
    private let logger: Logger
    private let state = Mutex(State())
    /// Records read per storage call: large enough to keep a 1,000-host scan cheap, small enough that one
    /// call stays well within `ioTimeout`.
    private static let readsPerCall = 64

    public convenience init(
        identity: HostIdentity, pools: [Pool], timing: TimingSettings, skewAllowance: Duration?, logger: Logger
    ) {
        self.init(identity: identity, pools: PoolSet(pools), timing: timing, skewAllowance: skewAllowance, logger: logger)
    }

    /// - Parameter pools: read at the start of every scan and report, so pools can come and go at run time.
    public init(identity: HostIdentity, pools: PoolSet, timing: TimingSettings, skewAllowance: Duration?, logger: Logger) {
        self.identity = identity
        self.pools = pools
        self.timing = timing
        self.skewAllowance = skewAllowance
        self.logger = logger
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown { [self] in
            var next = ContinuousClock.now
            while !Task.isCancelled {
                await scanOnce()
                next += timing.interval
                let now = ContinuousClock.now
                if next < now { next = now + timing.interval }
                try await MonotonicSleeper.shared.sleep(for: ContinuousClock.now.duration(to: next))
            }
        }
    }

    /// Reads every pool once and updates each peer's state; logs verdict changes.
    public func scanOnce() async {
        let pools = self.pools.current
        let results = await withTaskGroup(of: (String, [HostAddress: PeerObservation]?).self) { group in
            for pool in pools {
                group.addTask { (pool.id, await self.scan(pool)) }
            }
            var results: [String: [HostAddress: PeerObservation]?] = [:]
            for await (id, observations) in group { results[id] = observations }
            return results
        }
        let now = ContinuousClock.now
        state.withLock { state in
            // A pool that was removed starts from scratch if it comes back: old history would make a peer
            // that changed meanwhile look alive.
            state.perPool = state.perPool.filter { id, _ in pools.contains { $0.id == id } }
            for pool in pools {
                guard let observations = results[pool.id] ?? nil else { continue }
                var peers = state.perPool[pool.id] ?? [:]
                for (peer, observation) in observations {
                    peers[peer, default: PeerLiveness(deadAfter: timing.deadAfter, skewAllowance: skewAllowance)]
                        .observe(observation, at: now)
                }
                for peer in peers.keys where observations[peer] == nil {
                    peers[peer]!.observe(.missing, at: now)
                }
                state.perPool[pool.id] = peers
            }
        }
        logChanges()
    }

    /// Every peer seen on any pool, with its verdicts now.
    public func reports() -> [PeerReport] {
        let pools = self.pools.current
        let now = ContinuousClock.now
        let wallNow = WallClock.nowMs()
        let health = Dictionary(uniqueKeysWithValues: pools.map { ($0.id, $0.health.ownStorage) })
        return state.withLock { state in
            let peers = Set(state.perPool.values.flatMap(\.keys))
            return peers.sorted().map {
                report(for: $0, pools: pools, state: state, now: now, wallNow: wallNow, health: health)
            }
        }
    }

    /// One peer's verdicts now; a peer never seen anywhere is `unknown` on every pool.
    public func report(for peer: HostAddress) -> PeerReport {
        let pools = self.pools.current
        let now = ContinuousClock.now
        let wallNow = WallClock.nowMs()
        let health = Dictionary(uniqueKeysWithValues: pools.map { ($0.id, $0.health.ownStorage) })
        return state.withLock {
            report(for: peer, pools: pools, state: $0, now: now, wallNow: wallNow, health: health)
        }
    }

    private func report(
        for peer: HostAddress, pools: [Pool], state: State, now: ContinuousClock.Instant, wallNow: Int64,
        health: [String: OwnStorageHealth<ContinuousClock.Instant>]
    ) -> PeerReport {
        var perPool: [String: PeerVerdict] = [:]
        for pool in pools {
            let liveness = state.perPool[pool.id]?[peer] ?? PeerLiveness(deadAfter: timing.deadAfter, skewAllowance: skewAllowance)
            perPool[pool.id] = liveness.verdict(at: now, ownStorage: health[pool.id]!, wallNowMs: wallNow)
        }
        let overall = OverallVerdict.combine(pools.map { perPool[$0.id]! })
        return PeerReport(peer: peer, overall: overall, perPool: perPool)
    }

    private func logChanges() {
        let reports = reports()
        let changed = state.withLock { state -> [PeerReport] in
            var changed: [PeerReport] = []
            for report in reports where state.lastOverall[report.peer] != report.overall.liveness {
                state.lastOverall[report.peer] = report.overall.liveness
                changed.append(report)
            }
            return changed
        }
        for report in changed {
            let evidence = report.overall.evidence
            var metadata: Logger.Metadata = ["peer": "\(report.peer)"]
            if let sequence = evidence.sequence { metadata["sequence"] = "\(sequence)" }
            if let since = evidence.secondsSinceChange { metadata["secondsSinceChange"] = "\(rounded(since))" }
            if let age = evidence.wallClockAgeSeconds { metadata["wallClockAge"] = "\(rounded(age))" }
            logger.notice(
                "peer \(report.peer) is now \(report.overall.liveness.rawValue): \(report.overall.reason)", metadata: metadata)
        }
    }

    private func rounded(_ value: Double) -> Double { (value * 10).rounded() / 10 }

    /// Lists the pool's record folder and reads every peer record. nil when our own I/O failed.
    private func scan(_ pool: Pool) async -> [HostAddress: PeerObservation]? {
        let own = identity.address
        let names: [(HostAddress, String)]
        do {
            names = try await pool.call("list records") { files throws(PoolIOError) in
                try files.list(PoolLayout.recordFolder).compactMap { entry in
                    guard let host = PoolLayout.host(ofRecordFileName: entry.name), host != own else { return nil }
                    return (host, entry.name)
                }
            }
        } catch {
            return nil
        }
        var observations: [HostAddress: PeerObservation] = [:]
        var start = 0
        while start < names.count {
            let chunk = Array(names[start..<min(start + Self.readsPerCall, names.count)])
            start += chunk.count
            let reads: [(HostAddress, Result<FileRead, PoolIOError>)]
            do {
                reads = try await pool.call("read records", affectsHealth: false) { files throws(PoolIOError) in
                    chunk.map { host, name in
                        do throws(PoolIOError) {
                            return (host, .success(try files.read("\(PoolLayout.recordFolder)/\(name)", maxBytes: RecordCodec.maxBytes)))
                        } catch {
                            return (host, .failure(error))
                        }
                    }
                }
            } catch {
                return nil
            }
            for (host, read) in reads {
                observations[host] = Self.observation(host: host, read: read)
            }
        }
        return observations
    }

    static func observation(host: HostAddress, read: Result<FileRead, PoolIOError>) -> PeerObservation {
        switch read {
        case .failure(let error): return .unusable(.unreadable(error.message))
        case .success(.missing): return .missing
        case .success(.notRegularFile): return .unusable(.notRegularFile)
        case .success(.tooLarge(let size)): return .unusable(.oversized(size))
        case .success(.bytes(let bytes)):
            switch RecordCodec.decode(bytes, expectedHost: host) {
            case .success(let record): return .record(record)
            case .failure(let problem): return .unusable(problem)
            }
        }
    }
}
