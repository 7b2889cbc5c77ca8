public import HeartbeatCore
public import Logging
public import ServiceLifecycle
import Synchronization

/// What the BMC probe knows about one peer's BMC now: its last reading and how old a reading may be. The
/// API combines it with the storage verdict (`BMCEvidence.combine`) when it answers.
public struct BMCSnapshot: Sendable {
    public var observation: BMCObservation<ContinuousClock.Instant>?
    public var now: ContinuousClock.Instant
    public var staleAfter: Duration

    public init(
        observation: BMCObservation<ContinuousClock.Instant>?, now: ContinuousClock.Instant, staleAfter: Duration
    ) {
        self.observation = observation
        self.now = now
        self.staleAfter = staleAfter
    }

    public var status: BMCStatus { BMCEvidence.status(observation, now: now, staleAfter: staleAfter) }

    public func combine(_ storage: PeerVerdict) -> BMCVerdict {
        BMCEvidence.combine(storage: storage, observation: observation, now: now, staleAfter: staleAfter)
    }
}

/// Asks every configured peer's BMC for its chassis power state, each peer on a task of its own, once per
/// `interval` plus the probe's own time, and keeps the last reading in memory. CheckOnHost answers from that
/// memory and never waits for ipmitool.
public final class BMCProbe: Service, Sendable {
    public struct Target: Sendable {
        public var peer: HostAddress
        public var bmc: BMCSetting
        public var credentials: BMCCredentials

        public init(peer: HostAddress, bmc: BMCSetting, credentials: BMCCredentials) {
            self.peer = peer
            self.bmc = bmc
            self.credentials = credentials
        }
    }

    public let targets: [Target]
    public let interval: Duration
    /// A reading older than this counts as unknown.
    public let staleAfter: Duration
    private let tool: IPMITool
    private let logger: Logger
    private let readings = Mutex<[HostAddress: BMCObservation<ContinuousClock.Instant>]>([:])

    public init(targets: [Target], interval: Duration, tool: IPMITool, logger: Logger) {
        self.targets = targets
        self.interval = interval
        self.tool = tool
        self.logger = logger
        let longest = targets.map(\.bmc.timeout).max() ?? BMCSetting.defaultTimeout
        self.staleAfter = BMCEvidence.staleAfter(probeInterval: interval, probeTimeout: longest)
    }

    /// The peers with a BMC in the config, each with its credentials file read (and its permissions checked).
    /// Throws, naming the file, when one cannot be used.
    public static func targets(from peers: [PeerSetting]) throws(APIStartError) -> [Target] {
        var targets: [Target] = []
        for peer in peers {
            guard let bmc = peer.bmc else { continue }
            do {
                targets.append(
                    Target(peer: peer.ip, bmc: bmc, credentials: try BMCCredentials.load(path: bmc.credentialsFile)))
            } catch {
                throw APIStartError("peer \(peer.ip): \(error.description)")
            }
        }
        return targets
    }

    public func run() async throws {
        if tool.executable == nil {
            logger.error("BMC evidence off: \(IPMITool.installHint)")
        }
        await cancelWhenGracefulShutdown { [self] in
            await withTaskGroup(of: Void.self) { group in
                for target in targets {
                    group.addTask { await self.probeForever(target) }
                }
            }
        }
    }

    private func probeForever(_ target: Target) async {
        while !Task.isCancelled {
            await probeOnce(target)
            do {
                try await MonotonicSleeper.shared.sleep(for: interval)
            } catch {
                return
            }
        }
    }

    /// Probes one peer's BMC and keeps the reading; logs when the reading's kind changes.
    public func probeOnce(_ target: Target) async {
        let reading = await tool.probe(target.bmc, credentials: target.credentials)
        if Task.isCancelled { return }
        let observation = BMCObservation(reading: reading, at: ContinuousClock.now, wallMs: WallClock.nowMs())
        let previous = readings.withLock { readings in
            defer { readings[target.peer] = observation }
            return readings[target.peer]?.reading
        }
        let where_ = "\(target.bmc.address):\(target.bmc.port)"
        switch reading {
        case .on, .off:
            let state = reading == .on ? "on" : "off"
            if previous != reading {
                logger.notice("BMC of peer \(target.peer) (\(where_)): chassis power \(state)")
            } else {
                logger.trace("BMC of peer \(target.peer) (\(where_)): chassis power \(state)")
            }
        case .unreachable(let why), .error(let why):
            if Self.kind(previous) != Self.kind(reading) {
                logger.warning("BMC of peer \(target.peer) (\(where_)): \(Self.kind(reading)): \(why)")
            } else {
                logger.debug("BMC of peer \(target.peer) (\(where_)): \(Self.kind(reading)): \(why)")
            }
        }
    }

    private static func kind(_ reading: BMCPowerReading?) -> String {
        switch reading {
        case nil: "none"
        case .on: "on"
        case .off: "off"
        case .unreachable: "unreachable"
        case .error: "error"
        }
    }

    /// The BMC evidence of every configured peer, from memory.
    public func snapshots() -> [HostAddress: BMCSnapshot] {
        let now = ContinuousClock.now
        let readings = readings.withLock { $0 }
        var snapshots: [HostAddress: BMCSnapshot] = [:]
        for target in targets {
            snapshots[target.peer] = BMCSnapshot(observation: readings[target.peer], now: now, staleAfter: staleAfter)
        }
        return snapshots
    }
}
