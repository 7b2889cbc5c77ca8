import Foundation
public import HeartbeatCore

/// The JSON form of verdicts, shared by the CLI and the API.
public struct VerdictJSON: Codable, Sendable, Equatable {
    public var verdict: String
    public var reason: String
    public var reasonCode: String
    public var sequence: UInt64?
    public var incarnation: String?
    public var secondsSinceChange: Double?
    public var secondsObserved: Double?
    public var wallClockAgeSeconds: Double?

    public init(_ verdict: PeerVerdict) {
        self.verdict = verdict.liveness.rawValue
        self.reason = verdict.reason.description
        self.reasonCode = verdict.reason.code
        self.sequence = verdict.evidence.sequence
        self.incarnation = verdict.evidence.incarnation
        self.secondsSinceChange = verdict.evidence.secondsSinceChange.map(Self.round)
        self.secondsObserved = verdict.evidence.secondsObserved.map(Self.round)
        self.wallClockAgeSeconds = verdict.evidence.wallClockAgeSeconds.map(Self.round)
    }

    static func round(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
}

public struct PeerReportJSON: Codable, Sendable, Equatable {
    public struct PoolVerdict: Codable, Sendable, Equatable {
        public var pool: String
        public var verdict: VerdictJSON
    }
    public var host: String
    public var overall: VerdictJSON
    public var pools: [PoolVerdict]

    public init(_ report: PeerReport) {
        host = report.peer.description
        overall = VerdictJSON(report.overall)
        pools = report.perPool.keys.sorted().map { PoolVerdict(pool: $0, verdict: VerdictJSON(report.perPool[$0]!)) }
    }
}

public enum JSONOutput {
    public static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
