/// Whether a peer's API port answered our last probe (a TCP connect): evidence about the network between
/// the two hosts, kept apart from the storage verdict, which it never overrides.
public enum PeerReachability: Sendable, Equatable {
    /// The connection was accepted: the network path works and the peer's sidecar listens.
    case reachable
    /// The peer's host answered with a refusal: its network stack is up, but nothing listens on the port
    /// (the sidecar is down or restarting, the host is not).
    case refused(String)
    /// No answer within the probe's timeout, or no route: the host is off, or the network to it is cut.
    case unreachable(String)

    public var state: String {
        switch self {
        case .reachable: "reachable"
        case .refused: "refused"
        case .unreachable: "unreachable"
        }
    }

    public var error: String? {
        switch self {
        case .reachable: nil
        case .refused(let error), .unreachable(let error): error
        }
    }
}

/// The last probe of one peer, with the wall-clock time it finished (Unix ms) and when, on our monotonic
/// clock, so that an old reading is not taken for a current one.
public struct PeerProbeResult<Instant: InstantProtocol & Sendable>: Sendable, Equatable
where Instant.Duration == Duration {
    public var reachability: PeerReachability
    public var checkedAt: Instant
    public var checkedMs: Int64

    public init(reachability: PeerReachability, checkedAt: Instant, checkedMs: Int64) {
        self.reachability = reachability
        self.checkedAt = checkedAt
        self.checkedMs = checkedMs
    }
}

/// What the storage verdict and the network probe say together, in sentences for people. Neither changes
/// the verdict: a storage heartbeat that keeps changing is life whatever the network says, and a host that
/// answers on the network but has stopped writing to storage is still not writing to storage.
public enum PeerNetworkNotes {
    /// Readings older than this many probe periods count as no reading.
    public static let freshPeriods = 3

    public static func notes(overall: Liveness, reachability: PeerReachability?) -> [String] {
        guard let reachability else { return [] }
        switch (overall, reachability) {
        case (.alive, .reachable), (.unknown, .reachable):
            return []
        case (.alive, .unreachable(let error)):
            return [
                "network cut: the storage heartbeat is alive but the sidecar's API is unreachable (\(error)); the host is up and writing, only the network between us fails"
            ]
        case (.alive, .refused(let error)):
            return [
                "the storage heartbeat is alive but the sidecar's API refuses connections (\(error)): its API is down or restarting, the host is up"
            ]
        case (.dead, .reachable):
            return [
                "isolated from storage: the heartbeat stopped but the sidecar's API still answers — the host is up and cannot write to storage (it should fence itself)"
            ]
        case (.dead, .refused(let error)):
            return [
                "the heartbeat stopped and the sidecar's API refuses connections (\(error)), yet the host answers on the network: the host is up with its sidecar down, so its VMs may still run"
            ]
        case (.dead, .unreachable):
            return ["the sidecar's API is unreachable too: consistent with a host that is off or cut from everything"]
        case (.unknown, .unreachable(let error)):
            return ["the sidecar's API is unreachable (\(error))"]
        case (.unknown, .refused(let error)):
            return ["the sidecar's API refuses connections (\(error)) while its host answers on the network"]
        }
    }
}
