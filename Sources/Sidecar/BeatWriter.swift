public import HeartbeatCore
public import Logging
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Writes a beat to every pool every `interval`: our record (atomically) and CloudStack's `hb-<ip>` file.
///
/// The beat path is kept cheap, since it runs on every host every few seconds for as long as the host
/// lives: the next beat is a timer on the first pool's I/O thread, which wakes once, encodes the record, hands it
/// to every pool's I/O thread (itself included, without a hand-off) and writes it; each pool reports back by
/// callback. No task is woken per beat and nothing waits on storage. When that thread is blocked in storage, its
/// watchdog starts the beat on time instead (`PoolIOThread`, "Timers"), so the other pools keep beating.
public final class BeatWriter: Service, Sendable {
    public struct Round: Sendable {
        public var sequence: UInt64
        public var succeeded: [String]
        public var failed: [String: String]
    }

    private struct Schedule {
        var sequence: UInt64 = 0
        var next: ContinuousClock.Instant?
        var timer: TimerHandle?
        var stopped = false
    }

    /// Where the next beat is scheduled.
    private enum TimerHandle {
        /// On a pool's I/O thread (the usual case: the beat then starts on the thread that writes it).
        case pool(Pool, UInt64)
        /// On the process's timer thread (no pool yet, or the pool holding the timer was stopped).
        case sleeper(UInt64)
    }

    private let identity: HostIdentity
    private let pools: PoolSet
    private let timing: TimingSettings
    private let inventory: @Sendable () -> [VMEntry]
    /// Maintenance or rejoining, written into every record.
    private let mode: @Sendable () -> HostMode
    /// This host's verdict on every peer, written into every record (the heartbeat matrix).
    private let peerViews: @Sendable () -> [HostAddress: String]
    private let logger: Logger
    private let onRound: @Sendable (Round) -> Void
    /// Each pool's part of a beat as it finishes: written or not, and how long it took (metrics).
    private let onPoolBeat: @Sendable (_ pool: String, _ ok: Bool, _ latency: Duration) -> Void
    private let schedule = Mutex(Schedule())
    /// Keeps the encoded VM list while it does not change (most beats).
    private let encoder = Mutex(RecordCodec.CachingEncoder())
    /// Signs every record (`RecordSignature`); nil: records are written unsigned.
    private let recordKey: RecordKey?

    public convenience init(
        identity: HostIdentity, pools: [Pool], timing: TimingSettings, logger: Logger,
        inventory: @escaping @Sendable () -> [VMEntry] = { [] },
        onRound: @escaping @Sendable (Round) -> Void = { _ in },
        onPoolBeat: @escaping @Sendable (_ pool: String, _ ok: Bool, _ latency: Duration) -> Void = { _, _, _ in },
        recordKey: RecordKey? = nil
    ) {
        self.init(
            identity: identity, pools: PoolSet(pools), timing: timing, logger: logger, inventory: inventory,
            onRound: onRound, onPoolBeat: onPoolBeat, recordKey: recordKey)
    }

    /// - Parameter pools: read at the start of every round, so pools can come and go at run time.
    public init(
        identity: HostIdentity, pools: PoolSet, timing: TimingSettings, logger: Logger,
        inventory: @escaping @Sendable () -> [VMEntry] = { [] },
        mode: @escaping @Sendable () -> HostMode = { .normal },
        peerViews: @escaping @Sendable () -> [HostAddress: String] = { [:] },
        onRound: @escaping @Sendable (Round) -> Void = { _ in },
        onPoolBeat: @escaping @Sendable (_ pool: String, _ ok: Bool, _ latency: Duration) -> Void = { _, _, _ in },
        recordKey: RecordKey? = nil
    ) {
        self.recordKey = recordKey
        self.identity = identity
        self.mode = mode
        self.peerViews = peerViews
        self.pools = pools
        self.timing = timing
        self.logger = logger
        self.inventory = inventory
        self.onRound = onRound
        self.onPoolBeat = onPoolBeat
    }

    /// The pools written this round.
    private var currentPools: [Pool] { pools.current }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            for pool in currentPools { group.addTask { await self.removeLeftoverTemporaries(pool) } }
        }
        schedule.withLock { $0.next = .now }
        tick()
        // The beats run on the timer thread; this task only waits for the end.
        try? await cancelWhenGracefulShutdown {
            while true { try await MonotonicSleeper.shared.sleep(for: .seconds(3600)) }
        }
        let timer = schedule.withLock { state -> TimerHandle? in
            state.stopped = true
            return state.timer
        }
        switch timer {
        case .pool(let pool, let id): pool.cancelTimer(id)
        case .sleeper(let id): MonotonicSleeper.shared.cancel(id)
        case nil: break
        }
    }

    /// One scheduled beat: start the round, arm the next one. Keeps a fixed rate; slots missed (a stalled
    /// process) are skipped, not caught up in a burst.
    private func tick() {
        let next = schedule.withLock { state -> ContinuousClock.Instant? in
            guard !state.stopped, var next = state.next else { return nil }
            next += timing.interval
            let now = ContinuousClock.now
            if next < now {
                let missed = (next.duration(to: now) / timing.interval).rounded(.down)
                next += timing.interval * (missed + 1)
            }
            state.next = next
            return next
        }
        guard let next else { return }
        startRound(completion: nil)
        if let host = currentPools.first {
            let id = host.scheduleTimer(at: next, { [self] in tick() }, orphaned: { [self] in tickOnTimerThread(at: next) })
            store(.pool(host, id))
        } else {
            tickOnTimerThread(at: next)
        }
    }

    /// The next beat on the process's timer thread: no pool to hold it, or its pool was stopped first.
    private func tickOnTimerThread(at next: ContinuousClock.Instant) {
        let id = MonotonicSleeper.shared.schedule(after: ContinuousClock.now.duration(to: next)) { [self] in tick() }
        store(.sleeper(id))
    }

    /// Remembers the pending timer, for `run`'s end to cancel. A timer that escapes (stored after the end, or
    /// replaced by an orphaned one) finds `stopped` set and does nothing.
    private func store(_ handle: TimerHandle) {
        schedule.withLock { $0.timer = handle }
    }

    /// One beat to every pool, concurrently, each bounded by `ioTimeout`; returns when every pool answered
    /// or timed out.
    @discardableResult
    public func beatOnce() async -> Round {
        await withCheckedContinuation { continuation in
            startRound { continuation.resume(returning: $0) }
        }
    }

    private func startRound(completion: (@Sendable (Round) -> Void)?) {
        let sequenceNumber = schedule.withLock { state -> UInt64 in
            state.sequence += 1
            return state.sequence
        }
        let wallMs = WallClock.nowMs()
        var record = HeartbeatRecord(
            host: identity.address, hostUUID: identity.hostUUID, bootID: identity.bootID,
            incarnation: identity.incarnation, sequence: sequenceNumber, wallTimeMs: wallMs,
            intervalMs: Int64(timing.interval.seconds * 1000), vms: inventory()
        )
        record.mode = mode()
        record.peerViews = peerViews()
        let encoded = encoder.withLock { $0.encode(record) }
        let recordBytes = recordKey.map { RecordSignature.seal(encoded, with: $0) } ?? encoded
        let cloudStackBytes = CloudStackHeartbeat.encode(unixSeconds: wallMs / 1000)
        let address = identity.address
        let token = "\(identity.incarnation.prefix(8))-\(sequenceNumber)"
        let temporary = "\(PoolLayout.recordFolder)/\(PoolLayout.temporaryRecordPrefix(address))\(token)"
        let cloudStackTemporary = "\(PoolLayout.haFolder)/.hb-\(address).tmp-\(token)"

        let pools = currentPools
        let tracker = RoundTracker(sequence: sequenceNumber, expected: pools.count) { [logger, onRound] round in
            if round.failed.isEmpty {
                logger.debug("beat \(round.sequence) written to \(round.succeeded.count) pool(s)")
            } else {
                for (id, failure) in round.failed.sorted(by: { $0.key < $1.key }) {
                    logger.warning("beat \(round.sequence) failed on pool \(id): \(failure)")
                }
            }
            onRound(round)
            completion?(round)
        }
        let submitted = ContinuousClock.now
        for pool in pools {
            pool.submit("beat", priority: .high, { files throws(PoolIOError) in
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
            }) { [onPoolBeat] result in
                switch result {
                case .success:
                    pool.recordBeat(ok: true, wallMs: wallMs)
                    onPoolBeat(pool.id, true, submitted.duration(to: .now))
                    tracker.report(pool.id, failure: nil)
                case .failure(let error):
                    pool.recordBeat(ok: false, wallMs: wallMs)
                    onPoolBeat(pool.id, false, submitted.duration(to: .now))
                    tracker.report(pool.id, failure: error.description)
                }
            }
        }
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

/// Collects the pools' answers for one beat and reports the round once all are in.
private final class RoundTracker: Sendable {
    private let state: Mutex<(round: BeatWriter.Round, pending: Int)>
    private let done: @Sendable (BeatWriter.Round) -> Void

    init(sequence: UInt64, expected: Int, done: @escaping @Sendable (BeatWriter.Round) -> Void) {
        self.state = Mutex((BeatWriter.Round(sequence: sequence, succeeded: [], failed: [:]), expected))
        self.done = done
        if expected == 0 { done(BeatWriter.Round(sequence: sequence, succeeded: [], failed: [:])) }
    }

    func report(_ pool: String, failure: String?) {
        let finished = state.withLock { state -> BeatWriter.Round? in
            if let failure { state.round.failed[pool] = failure } else { state.round.succeeded.append(pool) }
            state.pending -= 1
            guard state.pending == 0 else { return nil }
            state.round.succeeded.sort()
            return state.round
        }
        if let finished { done(finished) }
    }
}
