/// The answer to "is this host alive?". `unknown` is a first-class answer: a checker that cannot tell
/// (its own storage failing, no history yet, an unreadable record) never says `dead`.
public enum Liveness: String, Sendable, Codable, CaseIterable {
    case alive
    case dead
    case unknown
}

/// Why a verdict is what it is.
public enum VerdictReason: Hashable, Sendable, CustomStringConvertible {
    /// The peer's record changed recently on our clock.
    case changing
    /// No change for at least `deadAfter` while our own storage I/O was healthy.
    case noChange
    /// The peer's record disappeared and did not come back for `deadAfter`.
    case recordMissing
    /// Never decided by change, and the wall-clock age exceeds `deadAfter` plus the stated skew allowance.
    case wallClockAge
    /// We have not watched long enough to see change (or no change since our storage recovered).
    case watching
    /// No record of this peer on this pool has ever been seen.
    case neverSeen
    /// The peer's record cannot be used.
    case unusableRecord(RecordProblem)
    /// The peer's record is readable but its signature does not verify: not evidence of life.
    case untrustedRecord(SignatureProblem)
    /// The peer's record is an old one copied back (`RecordReplay`): not evidence of life.
    case replayedRecord(RecordReplay)
    /// Our own I/O to this pool is failing: we cannot judge anyone through it.
    case ownStorageFailing(String)
    /// Combination over pools.
    case aliveOnSomePool
    case deadOnEveryReadablePool
    case noReadablePool
    case poolsDisagree

    public var description: String {
        switch self {
        case .changing: "record changing"
        case .noChange: "record unchanged for deadAfter while our storage I/O was healthy"
        case .recordMissing: "record disappeared, and no change for deadAfter while our storage I/O was healthy"
        case .wallClockAge: "never seen changing, and its wall-clock age exceeds deadAfter + skew allowance"
        case .watching: "watching for change (not long enough to decide)"
        case .neverSeen: "no record of this host on this pool"
        case .unusableRecord(let problem): "record unusable: \(problem)"
        case .untrustedRecord(let problem): "record unusable: \(problem)"
        case .replayedRecord(.sequenceWentBackwards): "replayed record (sequence went backwards)"
        case .replayedRecord(.incarnationLeft): "replayed record (an incarnation the host had already left)"
        case .ownStorageFailing(let why): "our own storage I/O is failing (\(why)); cannot judge peers through it"
        case .aliveOnSomePool: "alive on at least one pool"
        case .deadOnEveryReadablePool: "dead on every pool we can read where it was ever seen"
        case .noReadablePool: "no pool readable by us"
        case .poolsDisagree: "pools disagree or lack evidence"
        }
    }

    /// Short stable token for JSON and metrics.
    public var code: String {
        switch self {
        case .changing: "changing"
        case .noChange: "no-change"
        case .recordMissing: "record-missing"
        case .wallClockAge: "wall-clock-age"
        case .watching: "watching"
        case .neverSeen: "never-seen"
        case .unusableRecord(let problem): "unusable-record:\(problem.code)"
        case .untrustedRecord(let problem): "unusable-record:\(problem.code)"
        case .replayedRecord: "replayed-record"
        case .ownStorageFailing: "own-storage-failing"
        case .aliveOnSomePool: "alive-on-some-pool"
        case .deadOnEveryReadablePool: "dead-on-every-readable-pool"
        case .noReadablePool: "no-readable-pool"
        case .poolsDisagree: "pools-disagree"
        }
    }
}

/// What a verdict rests on.
public struct VerdictEvidence: Hashable, Sendable {
    /// Last sequence number seen, and the incarnation it belongs to.
    public var sequence: UInt64?
    public var incarnation: String?
    /// Seconds since the record last changed, on the checker's monotonic clock.
    public var secondsSinceChange: Double?
    /// Seconds we have watched this peer on this pool.
    public var secondsObserved: Double?
    /// Checker's wall clock minus the record's wall time (skewed clocks show here).
    public var wallClockAgeSeconds: Double?
    /// The last record seen (carries the peer's VM list).
    public var lastRecord: HeartbeatRecord?

    public init(
        sequence: UInt64? = nil, incarnation: String? = nil, secondsSinceChange: Double? = nil,
        secondsObserved: Double? = nil, wallClockAgeSeconds: Double? = nil, lastRecord: HeartbeatRecord? = nil
    ) {
        self.sequence = sequence
        self.incarnation = incarnation
        self.secondsSinceChange = secondsSinceChange
        self.secondsObserved = secondsObserved
        self.wallClockAgeSeconds = wallClockAgeSeconds
        self.lastRecord = lastRecord
    }
}

public struct PeerVerdict: Hashable, Sendable, CustomStringConvertible {
    public var liveness: Liveness
    public var reason: VerdictReason
    public var evidence: VerdictEvidence

    public init(_ liveness: Liveness, _ reason: VerdictReason, evidence: VerdictEvidence = VerdictEvidence()) {
        self.liveness = liveness
        self.reason = reason
        self.evidence = evidence
    }

    public var description: String { "\(liveness.rawValue) (\(reason))" }
}

extension Duration {
    /// The duration in seconds, as a Double, for evidence and logs.
    public var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }

    /// The duration in whole milliseconds (rounded toward zero).
    public var wholeMilliseconds: Int64 {
        let parts = components
        return parts.seconds * 1000 + parts.attoseconds / 1_000_000_000_000_000
    }
}
