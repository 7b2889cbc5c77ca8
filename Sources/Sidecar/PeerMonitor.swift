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
        /// Per pool, the hosts with CloudStack's `hb-<ip>` there, from the last listing that worked.
        var cloudStackHosts: [String: Set<HostAddress>] = [:]
        /// The conflicts of the last round; nil before the first.
        var conflicts: ConflictSnapshot?
    }

    private let identity: HostIdentity
    private let pools: PoolSet
    private let timing: TimingSettings
    private let skewAllowance: Duration?
    private let logger: Logger
    private let localVMs: @Sendable () -> [VMEntry]
    private let onConflicts: @Sendable ([ClusterConflict]) -> Void
    private let state = Mutex(State())
    /// Verifies the peers' record signatures; nil: unsigned mode (signatures are taken off unchecked).
    private let keyring: RecordKeyring?
    /// Records read per storage call: large enough to keep a 1,000-host scan cheap, small enough that one
    /// call stays well within `ioTimeout`.
    private static let readsPerCall = 64

    public convenience init(
        identity: HostIdentity, pools: [Pool], timing: TimingSettings, skewAllowance: Duration?, logger: Logger,
        keyring: RecordKeyring? = nil
    ) {
        self.init(
            identity: identity, pools: PoolSet(pools), timing: timing, skewAllowance: skewAllowance, logger: logger,
            keyring: keyring)
    }

    /// - Parameters:
    ///   - pools: read at the start of every scan and report, so pools can come and go at run time.
    ///   - localVMs: this host's VMs, checked with the peers' lists for conflicts after every scan.
    ///   - onConflicts: told the conflicts of every scan (metrics).
    public init(
        identity: HostIdentity, pools: PoolSet, timing: TimingSettings, skewAllowance: Duration?, logger: Logger,
        localVMs: @escaping @Sendable () -> [VMEntry] = { [] },
        onConflicts: @escaping @Sendable ([ClusterConflict]) -> Void = { _ in },
        keyring: RecordKeyring? = nil
    ) {
        self.keyring = keyring
        self.identity = identity
        self.pools = pools
        self.timing = timing
        self.skewAllowance = skewAllowance
        self.logger = logger
        self.localVMs = localVMs
        self.onConflicts = onConflicts
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
        let results = await withTaskGroup(of: (String, PoolScan?).self) { group in
            for pool in pools {
                group.addTask { (pool.id, await self.scan(pool)) }
            }
            var results: [String: PoolScan?] = [:]
            for await (id, observations) in group { results[id] = observations }
            return results
        }
        let now = ContinuousClock.now
        state.withLock { state in
            // A pool that was removed starts from scratch if it comes back: old history would make a peer
            // that changed meanwhile look alive.
            state.perPool = state.perPool.filter { id, _ in pools.contains { $0.id == id } }
            state.cloudStackHosts = state.cloudStackHosts.filter { id, _ in pools.contains { $0.id == id } }
            for pool in pools {
                guard let scan = results[pool.id] ?? nil else { continue }
                let observations = scan.observations
                state.cloudStackHosts[pool.id] = scan.cloudStackHosts
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
        updateConflicts()
    }

    /// The conflicts found by the last scan (split brains, orphaned VMs, hosts without a record); nil before
    /// the first scan has finished.
    public func conflicts() -> ConflictSnapshot? {
        state.withLock { $0.conflicts }
    }

    private func updateConflicts() {
        let reports = reports()
        let (records, cloudStack) = state.withLock { state in
            (
                // A record file is there now, usable or not.
                state.perPool.mapValues { peers in
                    Set(
                        peers.filter { _, peer in
                            !peer.currentlyMissing && (peer.lastRecord != nil || peer.currentProblem != nil)
                        }.keys)
                },
                state.cloudStackHosts
            )
        }
        let snapshot = ConflictSnapshot(
            identity: identity, localVMs: localVMs(), reports: reports, recordsByPool: records,
            cloudStackByPool: cloudStack, updatedMs: WallClock.nowMs())
        let previous = state.withLock { state in
            defer { state.conflicts = snapshot }
            return state.conflicts
        }
        snapshot.logChanges(since: previous, logger: logger)
        onConflicts(snapshot.conflicts)
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

    /// What one scan of a pool found.
    private struct PoolScan: Sendable {
        var observations: [HostAddress: PeerObservation]
        /// Peers with CloudStack's `hb-<ip>` on the pool.
        var cloudStackHosts: Set<HostAddress>
    }

    /// Lists the pool's CloudStack and record folders and reads every peer record. nil when our own I/O failed.
    private func scan(_ pool: Pool) async -> PoolScan? {
        let own = identity.address
        let names: [(HostAddress, String)]
        let cloudStackHosts: Set<HostAddress>
        do {
            (names, cloudStackHosts) = try await pool.call("list records") { files throws(PoolIOError) in
                // CloudStack's folder first: a sidecar writes its record before its `hb-` file, so a host whose
                // `hb-` file is listed here and that runs a sidecar has its record in the listing that follows.
                let cloudStack = try files.list(PoolLayout.haFolder).compactMap { entry in
                    PoolLayout.host(ofCloudStackFileName: entry.name).flatMap { $0 == own ? nil : $0 }
                }
                let names = try files.list(PoolLayout.recordFolder).compactMap { entry -> (HostAddress, String)? in
                    guard let host = PoolLayout.host(ofRecordFileName: entry.name), host != own else { return nil }
                    return (host, entry.name)
                }
                return (names, Set(cloudStack))
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
                    let results: [Result<FileRead, PoolIOError>]
                    do throws(PoolIOError) {
                        results = try files.readMany(
                            folder: PoolLayout.recordFolder, names: chunk.map(\.1), maxBytes: RecordCodec.maxBytes)
                    } catch {
                        // The store failed as a whole (a lost connection): every record of the chunk is unreadable,
                        // as when each read failed on its own.
                        results = Array(repeating: .failure(error), count: chunk.count)
                    }
                    return zip(chunk, results).map { ($0.0.0, $0.1) }
                }
            } catch {
                return nil
            }
            let wallNow = WallClock.nowMs()
            for (host, read) in reads {
                observations[host] = Self.observation(host: host, read: read, keyring: keyring, wallNowMs: wallNow)
            }
        }
        return PoolScan(observations: observations, cloudStackHosts: cloudStackHosts)
    }

    static func observation(
        host: HostAddress, read: Result<FileRead, PoolIOError>, keyring: RecordKeyring?, wallNowMs: Int64
    ) -> PeerObservation {
        switch read {
        case .failure(let error): return .unusable(.unreadable(error.message))
        case .success(.missing): return .missing
        case .success(.notRegularFile): return .unusable(.notRegularFile)
        case .success(.tooLarge(let size)): return .unusable(.oversized(size))
        case .success(.bytes(let bytes)):
            return RecordSignature.observation(of: bytes, expectedHost: host, keyring: keyring, wallNowMs: wallNowMs)
        }
    }
}
