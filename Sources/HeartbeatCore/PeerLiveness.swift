/// What a scan of one pool found for one peer.
public enum PeerObservation: Hashable, Sendable {
    case record(HeartbeatRecord)
    case unusable(RecordProblem)
    /// A record whose signature does not make it evidence of life (`RecordSignature.open`).
    case untrusted(SignatureProblem)
    case missing
}

/// How a record was found to be an old one copied back (a replay): never evidence of life.
public enum RecordReplay: Hashable, Sendable {
    /// Its sequence is lower than one already seen in the same incarnation.
    case sequenceWentBackwards
    /// It belongs to an incarnation the peer had already left.
    case incarnationLeft
}

/// Health of the checker's own I/O on one pool. Judging peers needs it: a checker that cannot read
/// storage sees every record "unchanged" and must not call that death.
public enum OwnStorageHealth<Instant: InstantProtocol>: Sendable where Instant: Sendable {
    case healthy(since: Instant)
    case failing(since: Instant, reason: String)
}

/// The liveness of one peer as seen on one pool: a state machine fed observations and time.
///
/// Rules (DESIGN.md "Liveness"): a peer is judged by whether its record *changes* (a higher sequence, or a
/// new incarnation/boot), measured on the checker's own monotonic clock. `alive` while it changed within
/// `deadAfter`; `dead` after `deadAfter` without change, counted only over time during which the checker's
/// own I/O on the pool was healthy; `unknown` otherwise.
public struct PeerLiveness<C: Clock>: Sendable where C.Duration == Duration, C.Instant: Sendable {
    public let deadAfter: Duration
    /// When set, a peer never seen changing whose wall-clock age exceeds `deadAfter + skewAllowance` is
    /// `dead` (for a checker that has not watched long enough). Off by default: clocks drift.
    public let skewAllowance: Duration?

    public private(set) var firstObserved: C.Instant?
    public private(set) var lastChange: C.Instant?
    public private(set) var changesSeen = 0
    public private(set) var lastRecord: HeartbeatRecord?
    /// The latest observation's problem, if the latest observation was not a usable record.
    public private(set) var currentProblem: RecordProblem?
    public private(set) var currentlyMissing = false
    /// Set when a record arrived whose sequence went backwards within the same incarnation.
    public private(set) var sawSequenceRegression = false
    /// The latest observation's signature problem, if its signature did not verify.
    public private(set) var currentSignatureProblem: SignatureProblem?
    /// Set while the latest record is a replay: an older sequence of the incarnation last seen, or a record of
    /// an incarnation the peer has already left. Cleared by the next real change.
    public private(set) var currentReplay: RecordReplay?
    /// The incarnations (boot id and incarnation) this peer has left, newest last, a few of them: a record of
    /// one of them again is an old file copied back, not a restart.
    private var leftIncarnations: [IncarnationKey] = []
    private static var leftIncarnationsKept: Int { 8 }

    private struct IncarnationKey: Hashable, Sendable {
        var bootID: String
        var incarnation: String
        init(_ record: HeartbeatRecord) {
            bootID = record.bootID
            incarnation = record.incarnation
        }
    }

    public init(deadAfter: Duration, skewAllowance: Duration? = nil) {
        self.deadAfter = deadAfter
        self.skewAllowance = skewAllowance
    }

    public mutating func observe(_ observation: PeerObservation, at now: C.Instant) {
        switch observation {
        case .missing:
            currentlyMissing = lastRecord != nil
            currentProblem = nil
            currentSignatureProblem = nil
            currentReplay = nil
            if firstObserved == nil && lastRecord == nil { return }
        case .unusable(let problem):
            currentProblem = problem
            currentSignatureProblem = nil
            currentReplay = nil
            currentlyMissing = false
            if firstObserved == nil { firstObserved = now }
        case .untrusted(let problem):
            currentSignatureProblem = problem
            currentProblem = nil
            currentReplay = nil
            currentlyMissing = false
            if firstObserved == nil { firstObserved = now }
        case .record(let record):
            currentProblem = nil
            currentSignatureProblem = nil
            currentlyMissing = false
            if let previous = lastRecord {
                if leftIncarnations.contains(IncarnationKey(record)) {
                    // An incarnation the peer already left: an old file copied back. Not a sign of life.
                    currentReplay = .incarnationLeft
                } else if Self.isChange(from: previous, to: record) {
                    if IncarnationKey(previous) != IncarnationKey(record) {
                        leftIncarnations.append(IncarnationKey(previous))
                        if leftIncarnations.count > Self.leftIncarnationsKept { leftIncarnations.removeFirst() }
                    }
                    changesSeen += 1
                    lastChange = now
                    lastRecord = record
                    currentReplay = nil
                } else if record.sequence < previous.sequence {
                    // Same incarnation going backwards: a replayed or restored old file. Not a sign of life.
                    sawSequenceRegression = true
                    currentReplay = .sequenceWentBackwards
                } else if currentReplay != nil {
                    // The newest record seen again after a replay: no change, but no replay any more either.
                    currentReplay = nil
                }
            } else {
                lastRecord = record
                if firstObserved == nil { firstObserved = now }
                // The first sight proves nothing about *when* it was written: the clock starts here.
                lastChange = now
            }
        }
    }

    /// A change is a new boot or incarnation, or a higher sequence.
    static func isChange(from old: HeartbeatRecord, to new: HeartbeatRecord) -> Bool {
        if old.bootID != new.bootID || old.incarnation != new.incarnation { return true }
        return new.sequence > old.sequence
    }

    public func verdict(at now: C.Instant, ownStorage: OwnStorageHealth<C.Instant>, wallNowMs: Int64) -> PeerVerdict {
        var evidence = VerdictEvidence()
        if let record = lastRecord {
            evidence.sequence = record.sequence
            evidence.incarnation = record.incarnation
            // In Double: `wallTimeMs` is another host's word, and Int64 subtraction of extremes would trap.
            evidence.wallClockAgeSeconds = (Double(wallNowMs) - Double(record.wallTimeMs)) / 1000
            evidence.lastRecord = record
        }
        if let lastChange { evidence.secondsSinceChange = lastChange.duration(to: now).seconds }
        if let firstObserved { evidence.secondsObserved = firstObserved.duration(to: now).seconds }

        let healthySince: C.Instant
        switch ownStorage {
        case .failing(_, let reason):
            return PeerVerdict(.unknown, .ownStorageFailing(reason), evidence: evidence)
        case .healthy(let since):
            healthySince = since
        }
        if let problem = currentProblem {
            return PeerVerdict(.unknown, .unusableRecord(problem), evidence: evidence)
        }
        if let problem = currentSignatureProblem {
            return PeerVerdict(.unknown, .untrustedRecord(problem), evidence: evidence)
        }
        if let replay = currentReplay {
            return PeerVerdict(.unknown, .replayedRecord(replay), evidence: evidence)
        }
        guard lastRecord != nil, let lastChange else {
            return PeerVerdict(.unknown, .neverSeen, evidence: evidence)
        }
        let sinceChange = lastChange.duration(to: now)
        if changesSeen > 0 && sinceChange < deadAfter {
            return PeerVerdict(.alive, .changing, evidence: evidence)
        }
        // Silence counts only while our own I/O was healthy: after our storage recovers, the peer gets a
        // whole `deadAfter` to show change again (a stall of the whole storage condemns nobody).
        let windowStart = max(lastChange, healthySince)
        if windowStart.duration(to: now) >= deadAfter {
            return PeerVerdict(.dead, currentlyMissing ? .recordMissing : .noChange, evidence: evidence)
        }
        if changesSeen == 0, let skewAllowance, let age = evidence.wallClockAgeSeconds,
            age > (deadAfter + skewAllowance).seconds
        {
            return PeerVerdict(.dead, .wallClockAge, evidence: evidence)
        }
        return PeerVerdict(.unknown, .watching, evidence: evidence)
    }
}

/// Verdicts across pools. CloudStack's checker keeps the verdict of the *last pool checked*; this does not.
public enum OverallVerdict {
    /// `alive` if alive on any pool; `dead` only if dead on every pool we can read and where the peer was
    /// ever seen (and there is one);
    /// `unknown` otherwise. The evidence of the deciding pool is kept.
    public static func combine(_ perPool: [PeerVerdict]) -> PeerVerdict {
        if perPool.count == 1 { return perPool[0] }
        if let alive = perPool.first(where: { $0.liveness == .alive }) {
            return PeerVerdict(.alive, .aliveOnSomePool, evidence: alive.evidence)
        }
        // A pool where our own I/O fails tells nothing; nor does one the peer never wrote to (a pool added
        // after it died, or one only some hosts mount): neither may block a verdict the others agree on.
        let readable = perPool.filter {
            switch $0.reason {
            case .ownStorageFailing, .neverSeen: return false
            default: return true
            }
        }
        guard let first = readable.first else {
            return PeerVerdict(.unknown, .noReadablePool, evidence: perPool.first?.evidence ?? VerdictEvidence())
        }
        if readable.allSatisfy({ $0.liveness == .dead }) {
            let freshest = readable.min { ($0.evidence.secondsSinceChange ?? .infinity) < ($1.evidence.secondsSinceChange ?? .infinity) }
            return PeerVerdict(.dead, .deadOnEveryReadablePool, evidence: (freshest ?? first).evidence)
        }
        return PeerVerdict(.unknown, .poolsDisagree, evidence: first.evidence)
    }
}
