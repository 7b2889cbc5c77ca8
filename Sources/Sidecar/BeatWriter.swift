public import HeartbeatCore
#if canImport(Glibc)
import Glibc
#endif
public import Logging
public import ServiceLifecycle
import Synchronization

/// Writes a beat to every pool every `interval`: our record (atomically) and CloudStack's `hb-<ip>` file.
public final class BeatWriter: Service, Sendable {
    public struct Round: Sendable {
        public var sequence: UInt64
        public var succeeded: [String]
        public var failed: [String: String]
    }

    private let identity: HostIdentity
    private let pools: [Pool]
    private let timing: TimingSettings
    private let inventory: @Sendable () -> [VMEntry]
    private let logger: Logger
    private let onRound: @Sendable (Round) -> Void
    private let sequence = Mutex<UInt64>(0)

    public init(
        identity: HostIdentity, pools: [Pool], timing: TimingSettings, logger: Logger,
        inventory: @escaping @Sendable () -> [VMEntry] = { [] },
        onRound: @escaping @Sendable (Round) -> Void = { _ in }
    ) {
        self.identity = identity
        self.pools = pools
        self.timing = timing
        self.logger = logger
        self.inventory = inventory
        self.onRound = onRound
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            for pool in pools { group.addTask { await self.removeLeftoverTemporaries(pool) } }
        }
        try? await cancelWhenGracefulShutdown { [self] in
            var next = ContinuousClock.now
            while !Task.isCancelled {
                await beatOnce()
                next += timing.interval
                let now = ContinuousClock.now
                if next < now {
                    // A round overran (storage slow): keep the schedule, skip the missed slots.
                    let missed = (next.duration(to: now) / timing.interval).rounded(.down)
                    next += timing.interval * (missed + 1)
                }
                try await MonotonicSleeper.shared.sleep(for: ContinuousClock.now.duration(to: next))
            }
        }
    }

    /// One beat to every pool, concurrently, each bounded by `ioTimeout`.
    @discardableResult
    public func beatOnce() async -> Round {
        let sequenceNumber = sequence.withLock { value -> UInt64 in
            value += 1
            return value
        }
        let wallMs = WallClock.nowMs()
        let record = HeartbeatRecord(
            host: identity.address, hostUUID: identity.hostUUID, bootID: identity.bootID,
            incarnation: identity.incarnation, sequence: sequenceNumber, wallTimeMs: wallMs,
            intervalMs: Int64(timing.interval.seconds * 1000), vms: inventory()
        )
        let recordBytes = RecordCodec.encode(record)
        let cloudStackBytes = CloudStackHeartbeat.encode(unixSeconds: wallMs / 1000)
        let address = identity.address
        let temporary = "\(PoolLayout.recordFolder)/\(PoolLayout.temporaryRecordPrefix(address))\(identity.incarnation.prefix(8))-\(sequenceNumber)"
        let cloudStackTemporary = "\(PoolLayout.haFolder)/.hb-\(address).tmp-\(identity.incarnation.prefix(8))-\(sequenceNumber)"

        var round = Round(sequence: sequenceNumber, succeeded: [], failed: [:])
        await withTaskGroup(of: (String, String?).self) { group in
            for pool in pools {
                group.addTask {
                    do {
                        try await pool.call("beat", priority: .high) { files throws(PoolIOError) in
                            do throws(PoolIOError) {
                                try files.replaceAtomically(
                                    PoolLayout.record(address), with: recordBytes, temporaryPath: temporary, durable: true)
                            } catch where error.errno == ENOENT {
                                // First beat on a fresh pool (or someone removed the folder): create it.
                                try files.makeFolder(PoolLayout.recordFolder)
                                try files.replaceAtomically(
                                    PoolLayout.record(address), with: recordBytes, temporaryPath: temporary, durable: true)
                            }
                            try files.replaceAtomically(
                                PoolLayout.cloudStackHeartbeat(address), with: cloudStackBytes,
                                temporaryPath: cloudStackTemporary, durable: false)
                        }
                        pool.recordBeat(ok: true, wallMs: wallMs)
                        return (pool.id, nil)
                    } catch {
                        pool.recordBeat(ok: false, wallMs: wallMs)
                        return (pool.id, "\(error)")
                    }
                }
            }
            for await (id, failure) in group {
                if let failure { round.failed[id] = failure } else { round.succeeded.append(id) }
            }
        }
        round.succeeded.sort()
        if round.failed.isEmpty {
            logger.debug("beat \(sequenceNumber) written to \(round.succeeded.count) pool(s)")
        } else {
            for (id, failure) in round.failed.sorted(by: { $0.key < $1.key }) {
                logger.warning("beat \(sequenceNumber) failed on pool \(id): \(failure)")
            }
        }
        onRound(round)
        return round
    }

    /// Temporary files of ours left by a crash between create and rename. Only our own prefix is touched:
    /// a host never removes another host's files.
    private func removeLeftoverTemporaries(_ pool: Pool) async {
        let prefix = PoolLayout.temporaryRecordPrefix(identity.address)
        let cloudStackPrefix = ".hb-\(identity.address).tmp-"
        do {
            let removed = try await pool.call("clean temporaries") { files throws(PoolIOError) -> Int in
                var count = 0
                for entry in try files.list(PoolLayout.recordFolder) where entry.name.hasPrefix(prefix) {
                    try files.remove("\(PoolLayout.recordFolder)/\(entry.name)")
                    count += 1
                }
                for entry in try files.list(PoolLayout.haFolder) where entry.name.hasPrefix(cloudStackPrefix) {
                    try files.remove("\(PoolLayout.haFolder)/\(entry.name)")
                    count += 1
                }
                return count
            }
            if removed > 0 { logger.info("removed \(removed) leftover temporary file(s) of ours", metadata: ["pool": "\(pool.id)"]) }
        } catch {
            logger.warning("could not clean temporary files: \(error)", metadata: ["pool": "\(pool.id)"])
        }
    }
}
