/// What one probe of a peer's BMC (out-of-band management controller) found: the chassis power state, or
/// why there is none.
public enum BMCPowerReading: Hashable, Sendable {
    case on
    case off
    /// No answer: nothing listens, the network drops it, or the probe ran past its timeout.
    case unreachable(String)
    /// An answer that is not a power state: refused credentials, a failed command, ipmitool missing.
    case error(String)
}

/// A reading and when it was taken, on the checker's monotonic clock (for staleness) and its wall clock
/// (for people).
public struct BMCObservation<Instant: InstantProtocol & Sendable>: Sendable {
    public var reading: BMCPowerReading
    public var at: Instant
    /// Unix ms.
    public var wallMs: Int64

    public init(reading: BMCPowerReading, at: Instant, wallMs: Int64) {
        self.reading = reading
        self.at = at
        self.wallMs = wallMs
    }
}

/// The BMC's part of the evidence, as reported: the reading while it is fresh, `unknown` when there is none
/// yet or the last one is stale.
public struct BMCStatus: Hashable, Sendable {
    public enum State: String, Hashable, Sendable, CaseIterable {
        case on, off, unreachable, error, unknown
    }

    public var state: State
    /// When the reading was taken (Unix ms); nil before the first one.
    public var checkedMs: Int64?
    /// Why there is no power state (`unreachable`, `error`, `unknown`); nil for `on` and `off`.
    public var error: String?

    public init(state: State, checkedMs: Int64?, error: String?) {
        self.state = state
        self.checkedMs = checkedMs
        self.error = error
    }
}

/// How much a verdict rests on.
public enum VerdictCertainty: String, Hashable, Sendable, CaseIterable {
    /// Storage heartbeats alone decide (no BMC, or nothing it says adds to or contradicts them).
    case storage
    /// Storage says dead and the BMC reports the chassis powered off since the last beat.
    case confirmed
    /// Storage says alive but the BMC reports power off: the two contradict each other.
    case conflicting
}

/// Why a verdict is what it is once the BMC is heard: the storage reason, or the storage reason qualified
/// by what the BMC says.
public enum BMCVerdictReason: Hashable, Sendable, CustomStringConvertible {
    /// The BMC adds nothing: not configured, no fresh reading, no answer, or a reading that only agrees.
    case storage(VerdictReason)
    /// Dead on storage, and the chassis is off.
    case poweredOff(VerdictReason)
    /// Dead on storage, but the chassis is on: the host may still run its VMs (hung kernel, dead sidecar).
    case poweredButSilent(VerdictReason)
    /// Alive on storage, but the chassis is off.
    case poweredOffButAlive(VerdictReason)

    public var storageReason: VerdictReason {
        switch self {
        case .storage(let reason), .poweredOff(let reason), .poweredButSilent(let reason),
            .poweredOffButAlive(let reason):
            reason
        }
    }

    public var description: String {
        switch self {
        case .storage(let reason): reason.description
        case .poweredOff(let reason):
            "confirmed: the BMC reports chassis power off, and storage says: \(reason.description)"
        case .poweredButSilent(let reason):
            "host powered, sidecar silent: the BMC reports chassis power on, but storage says: \(reason.description)"
        case .poweredOffButAlive(let reason):
            "conflicting evidence: the BMC reports chassis power off, but storage says: \(reason.description) "
                + "(a wrong BMC for this host, or powered off since its last beat)"
        }
    }

    /// Short stable token for JSON and metrics.
    public var code: String {
        switch self {
        case .storage(let reason): reason.code
        case .poweredOff: "bmc-power-off"
        case .poweredButSilent: "host-powered-sidecar-silent"
        case .poweredOffButAlive: "bmc-power-off-conflict"
        }
    }
}

/// A storage verdict with the BMC's evidence heard.
public struct BMCVerdict: Hashable, Sendable, CustomStringConvertible {
    /// Always the storage verdict's: the BMC qualifies a verdict, it never changes one.
    public var liveness: Liveness
    public var reason: BMCVerdictReason
    public var certainty: VerdictCertainty
    public var bmc: BMCStatus

    public var description: String {
        switch reason {
        case .poweredButSilent: "\(liveness.rawValue) (host powered, sidecar silent)"
        default: "\(liveness.rawValue) (\(reason)) [\(certainty.rawValue)]"
        }
    }
}

/// The rule that combines a storage verdict with a BMC power reading. Pure: the caller passes the reading
/// it has cached and the time now.
///
/// - Storage `dead` + power `off` (read after the peer's last beat) → `dead`, certainty `confirmed`.
/// - Storage `dead` + power `on` → `dead`, reason "host powered, sidecar silent": the host's VMs may still
///   run, so recovery must fence it first.
/// - Storage `alive` + power `off` → still `alive`, certainty `conflicting`: a record that changed within
///   `deadAfter` proves a writer with this host's identity. Either the BMC configured for the peer is the
///   wrong machine, or the host was switched off since its last beat (then storage calls it dead after
///   `deadAfter`, confirmed). Calling it dead or unknown could let its VMs start a second time elsewhere.
/// - Storage `unknown` stays `unknown` whatever the power state: a checker that cannot judge through storage
///   does not let the BMC alone decide (the BMC's state is still reported).
/// - A BMC that does not answer, answers with an error, has no reading yet, or whose last reading is older
///   than `staleAfter` adds nothing: the verdict is storage's alone.
public enum BMCEvidence {
    /// A reading older than this many probe periods is stale.
    public static let stalePeriods = 3

    /// How old a reading may be before it counts as unknown: a few probe periods, a period being the pause
    /// between probes plus the longest a probe may take.
    public static func staleAfter(probeInterval: Duration, probeTimeout: Duration) -> Duration {
        (probeInterval + probeTimeout) * stalePeriods
    }

    /// What the BMC's reading says now.
    public static func status<Instant: InstantProtocol & Sendable>(
        _ observation: BMCObservation<Instant>?,
        now: Instant,
        staleAfter: Duration
    ) -> BMCStatus where Instant.Duration == Duration {
        guard let observation else {
            return BMCStatus(state: .unknown, checkedMs: nil, error: "no reading yet")
        }
        let age = observation.at.duration(to: now)
        if age > staleAfter {
            return BMCStatus(
                state: .unknown,
                checkedMs: observation.wallMs,
                error: "stale: the last reading (\(Self.text(observation.reading))) is \(Self.seconds(age)) old"
            )
        }
        switch observation.reading {
        case .on: return BMCStatus(state: .on, checkedMs: observation.wallMs, error: nil)
        case .off: return BMCStatus(state: .off, checkedMs: observation.wallMs, error: nil)
        case .unreachable(let why): return BMCStatus(state: .unreachable, checkedMs: observation.wallMs, error: why)
        case .error(let why): return BMCStatus(state: .error, checkedMs: observation.wallMs, error: why)
        }
    }

    /// Combines `storage` (the overall verdict from the pools) with the BMC's last reading.
    public static func combine<Instant: InstantProtocol & Sendable>(
        storage: PeerVerdict,
        observation: BMCObservation<Instant>?,
        now: Instant,
        staleAfter: Duration
    ) -> BMCVerdict where Instant.Duration == Duration {
        let bmc = status(observation, now: now, staleAfter: staleAfter)
        func verdict(_ reason: BMCVerdictReason, _ certainty: VerdictCertainty) -> BMCVerdict {
            BMCVerdict(liveness: storage.liveness, reason: reason, certainty: certainty, bmc: bmc)
        }
        switch (storage.liveness, bmc.state) {
        case (.dead, .off):
            // Off before the last beat proves nothing about now (the host was switched on and beat since).
            if let observation, let sinceChange = storage.evidence.secondsSinceChange,
                observation.at.duration(to: now).seconds > sinceChange
            {
                return verdict(.storage(storage.reason), .storage)
            }
            return verdict(.poweredOff(storage.reason), .confirmed)
        case (.dead, .on):
            return verdict(.poweredButSilent(storage.reason), .storage)
        case (.alive, .off):
            return verdict(.poweredOffButAlive(storage.reason), .conflicting)
        default:
            return verdict(.storage(storage.reason), .storage)
        }
    }

    /// `47.2s`: tenths are enough for an age in a message.
    static func seconds(_ duration: Duration) -> String {
        let tenths = Int64((duration.seconds * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)s"
    }

    static func text(_ reading: BMCPowerReading) -> String {
        switch reading {
        case .on: "on"
        case .off: "off"
        case .unreachable: "unreachable"
        case .error: "error"
        }
    }
}
