import ArgumentParser
import Foundation
import HeartbeatCore
import Logging
import Sidecar

struct CheckHost: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-host",
        abstract: "Judge a host: ask the local daemon, or read the pools directly with --pool.",
        discussion: """
            Without --pool: asks the local daemon (GET /v1/peers/IP, CheckOnHost), which answers at once from \
            what it has watched; a host the daemon has never seen is unknown. \
            With --pool (no daemon needed): samples the host's record on every given pool until it has seen it \
            change (alive), has seen no change for deadAfter while its own storage I/O worked (dead), or gives up \
            (unknown). A checker whose own storage is failing answers unknown, never dead. \
            Exit status: 0 alive, 1 dead, 2 unknown; otherwise as below. \(DaemonOptions.exitCodes)
            """
    )

    @Argument(help: "The host's private IP.") var host: String
    @Option(name: .customLong("pool"), help: "Read this pool directory ([UUID=]PATH) directly instead of asking the daemon. Repeatable.")
    var pools: [String] = []
    @Option(name: .customLong("dead-after"), help: "Silence after which the host is dead.") var deadAfter = "30s"
    @Option(name: .customLong("io-timeout"), help: "Deadline of every storage call.") var ioTimeout = "4s"
    @Option(name: .customLong("sample-every"), help: "Time between samples.") var sampleEvery = "500ms"
    @Flag(name: .long, help: "Print JSON.") var json = false
    @OptionGroup(title: "Daemon mode (without --pool)") var daemon: DaemonOptions

    func validate() throws {
        guard HostAddress(host) != nil else { throw ValidationError("'\(host)' is not an IPv4 address") }
        for (name, value) in [("--dead-after", deadAfter), ("--io-timeout", ioTimeout), ("--sample-every", sampleEvery)] {
            guard let duration = DurationText.parse(value), duration > .zero else {
                throw ValidationError("\(name): '\(value)' is not a positive duration (examples: 5s, 500ms)")
            }
        }
    }

    func run() async throws {
        if pools.isEmpty { return try await askDaemon() }
        let peer = HostAddress(host)!
        let deadAfter = DurationText.parse(deadAfter)!
        let ioTimeout = DurationText.parse(ioTimeout)!
        let sampleEvery = DurationText.parse(sampleEvery)!
        var logger = Logger(label: "kvmha.check-host")
        logger.logLevel = .critical
        let pools = pools.map { SettingsResolver.pool(fromText: $0) }.map { setting in
            let root = setting.path ?? ""
            return Pool(id: setting.uuid, location: root, ioTimeout: ioTimeout, logger: logger) { DirectoryPoolFiles(root: root) }
        }
        defer { for pool in pools { pool.stop() } }

        var liveness = Dictionary(uniqueKeysWithValues: pools.map { ($0.id, PeerLiveness<ContinuousClock>(deadAfter: deadAfter)) })
        let started = ContinuousClock.now
        // Long enough to see change, or its absence for deadAfter, plus a margin for the last sample.
        let giveUp = started + deadAfter + sampleEvery * 2
        var report: PeerReport
        while true {
            for pool in pools {
                let path = PoolLayout.record(peer)
                do {
                    let read = try await pool.call("read record", affectsHealth: false) { files throws(PoolIOError) in
                        try files.read(path, maxBytes: RecordCodec.maxBytes)
                    }
                    liveness[pool.id]!.observe(observation(read), at: .now)
                } catch {
                    if case .io(let ioError) = error {
                        liveness[pool.id]!.observe(.unusable(.unreadable(ioError.message)), at: .now)
                    }
                }
            }
            let now = ContinuousClock.now
            let wallNow = WallClock.nowMs()
            var perPool: [String: PeerVerdict] = [:]
            for pool in pools {
                perPool[pool.id] = liveness[pool.id]!.verdict(at: now, ownStorage: pool.health.ownStorage, wallNowMs: wallNow)
            }
            report = PeerReport(peer: peer, overall: OverallVerdict.combine(pools.map { perPool[$0.id]! }), perPool: perPool)
            if isFinal(report) || now >= giveUp { break }
            try await MonotonicSleeper.shared.sleep(for: sampleEvery)
        }
        print(json ? JSONOutput.encode(PeerReportJSON(report)) : Self.table(report))
        switch report.overall.liveness {
        case .alive: throw ExitCode(ExitStatus.alive)
        case .dead: throw ExitCode(ExitStatus.dead)
        case .unknown: throw ExitCode(ExitStatus.unknown)
        }
    }

    private func isFinal(_ report: PeerReport) -> Bool {
        if report.overall.liveness != .unknown { return true }
        // Nothing more to learn by waiting: no record anywhere, or no pool we can read.
        return report.perPool.values.allSatisfy {
            switch $0.reason {
            case .neverSeen, .ownStorageFailing: true
            default: false
            }
        }
    }

    private func observation(_ read: FileRead) -> PeerObservation {
        switch read {
        case .missing: return .missing
        case .notRegularFile: return .unusable(.notRegularFile)
        case .tooLarge(let size): return .unusable(.oversized(size))
        case .bytes(let bytes):
            // A direct read strips a record's signature line without checking it (no key here): the daemon,
            // which holds the cluster key, is the one that verifies.
            return RecordSignature.observation(
                of: bytes, expectedHost: HostAddress(host)!, keyring: nil, wallNowMs: WallClock.nowMs())
        }
    }

    static func table(_ report: PeerReport) -> String {
        var lines = ["host \(report.peer): \(report.overall.liveness.rawValue.uppercased()) — \(report.overall.reason)"]
        let rows = report.perPool.keys.sorted().map { id -> [String] in
            let verdict = report.perPool[id]!
            let evidence = verdict.evidence
            return [
                id, verdict.liveness.rawValue,
                evidence.sequence.map(String.init) ?? "-",
                evidence.secondsSinceChange.map { String(format: "%.1fs", $0) } ?? "-",
                evidence.wallClockAgeSeconds.map { String(format: "%.1fs", $0) } ?? "-",
                verdict.reason.description,
            ]
        }
        lines.append(contentsOf: TextTable.render(header: ["POOL", "VERDICT", "SEQUENCE", "SINCE-CHANGE", "WALL-AGE", "REASON"], rows: rows))
        return lines.joined(separator: "\n")
    }
}

enum TextTable {
    static func render(header: [String], rows: [[String]]) -> [String] {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
    }
}
