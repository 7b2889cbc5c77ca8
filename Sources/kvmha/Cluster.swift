import ArgumentParser
import Foundation
import HeartbeatCore
import Logging
import Sidecar

#if canImport(Glibc)
    import Glibc
#endif

struct Cluster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Show every host of a pool and the problems: split brains, orphaned VMs, hosts without a record.",
        discussion: """
            Reads the pool directly (no daemon needed): every kvmha record (KVMHA/kvmha/<ip>.record) and every \
            CloudStack heartbeat file (KVMHA/hb-<ip>), through the mount (a directory) or straight from the NFS \
            server (nfs://server/export, NFSv3 through libnfs). Every storage call has a deadline (--io-timeout): \
            a hung pool gives an error, never a hang. Prints one line per host (verdict, last beat, sequence, VMs \
            running/total), then the problems: a VM running on two or more hosts (split-brain), a VM a dead host \
            last ran that runs nowhere now (orphaned: HA must restart it), a host with CloudStack's file but no \
            record of ours (no-record). The rules are those of the daemon's GET /v1/conflicts (docs/API.md).

            How hosts are judged: a single read cannot watch a sequence change, so it judges by the wall-clock age \
            of each record (the writer's clock against ours): alive while younger than --dead-after, dead once \
            older than --dead-after plus --skew-allowance, unknown between (and for a record from further in the \
            future than the skew allowance). A host without a record is judged the same way by its CloudStack \
            file. With --watch, once a record has been seen to change (alive) or not to change for --dead-after \
            while the pool was readable (dead), that judgement by change wins, as in the daemon.

            --watch refreshes every --interval (in place on a terminal; otherwise blocks separated by a blank \
            line, or with --json one JSON document per line) until interrupted or --count refreshes.

            Exit status: 0 no problems, 1 problems found, 69 a pool could not be read (in time), 64 usage; with \
            --watch, that of the last refresh.
            """
    )

    @Option(
        name: .customLong("pool"),
        help: "The pool: [UUID=]DIR (its mount) or [UUID=]nfs://SERVER/EXPORT. Repeatable: hosts are merged."
    )
    var pools: [String] = []
    @Option(name: .customLong("dead-after"), help: "Silence after which a host is dead.") var deadAfter = "30s"
    @Option(
        name: .customLong("skew-allowance"),
        help: "How far the writers' clocks may be off ours before a wall-clock age decides."
    )
    var skewAllowance = "10s"
    @Option(name: .customLong("io-timeout"), help: "Deadline of every storage call.") var ioTimeout = "4s"
    @Flag(name: .long, help: "Print JSON.") var json = false
    @Flag(name: .long, help: "Refresh every --interval.") var watch = false
    @Option(name: .long, help: "Time between refreshes with --watch.") var interval = "2s"
    @Option(name: .long, help: "With --watch: stop after this many refreshes.") var count: Int?

    func validate() throws {
        guard !pools.isEmpty else { throw ValidationError("--pool is required (a directory or an nfs:// URL)") }
        for (name, value) in [
            ("--dead-after", deadAfter), ("--io-timeout", ioTimeout), ("--interval", interval),
        ] {
            guard let duration = DurationText.parse(value), duration > .zero else {
                throw ValidationError("\(name): '\(value)' is not a positive duration (examples: 5s, 500ms)")
            }
        }
        guard let skew = DurationText.parse(skewAllowance), skew >= .zero else {
            throw ValidationError("--skew-allowance: '\(skewAllowance)' is not a duration (examples: 10s, 0s)")
        }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if count != nil && !watch { throw ValidationError("--count goes with --watch") }
        var seen: Set<String> = []
        for text in pools {
            let setting = SettingsResolver.pool(fromText: text)
            guard SettingsResolver.isValidPoolID(setting.uuid) else {
                throw ValidationError("--pool \(text): '\(setting.uuid)' is not a pool id; write UUID=\(text)")
            }
            guard seen.insert(setting.uuid).inserted else {
                throw ValidationError("--pool: pool \(setting.uuid) is given twice")
            }
            if let path = setting.path, !path.hasPrefix("/") {
                throw ValidationError("--pool \(text): the directory must be an absolute path")
            }
        }
    }

    func run() async throws {
        let options = ClusterReader.Options(
            deadAfter: DurationText.parse(deadAfter)!,
            skewAllowance: DurationText.parse(skewAllowance)!,
            ioTimeout: DurationText.parse(ioTimeout)!
        )
        var logger = Logger(label: "kvmha.cluster")
        logger.logLevel = .critical
        let pools = pools.map { text in
            SidecarApp.makePool(SettingsResolver.pool(fromText: text), ioTimeout: options.ioTimeout, logger: logger)
        }
        defer { for pool in pools { pool.stop() } }
        var reader = ClusterReader(pools: pools, options: options)

        guard watch else {
            let code = await refresh(&reader, output: { print($0) })
            throw ExitCode(code)
        }
        let terminal = isatty(STDOUT_FILENO) != 0
        let every = DurationText.parse(interval)!
        var code: Int32 = 0
        var done = 0
        while count.map({ done < $0 }) ?? true {
            if done > 0 && !terminal && !json { Self.write("\n") }
            code = await refresh(&reader) { text in
                // Home and clear, then the new block: refreshed in place.
                Self.write((terminal ? "\u{1B}[H\u{1B}[2J" : "") + text + "\n")
            }
            done += 1
            if count.map({ done >= $0 }) ?? false { break }
            try await MonotonicSleeper.shared.sleep(for: every)
        }
        throw ExitCode(code)
    }

    /// One look at the pools, printed; returns the exit status it gives.
    private func refresh(_ reader: inout ClusterReader, output: (String) -> Void) async -> Int32 {
        let look: ClusterLook
        do {
            look = try await reader.look()
        } catch {
            printError(error.description)
            return ExitStatus.unavailable
        }
        if json {
            output(watch ? ClusterOutput.compactJSON(look) : JSONOutput.encode(ClusterLookJSON(look)))
        } else {
            output(ClusterOutput.text(look))
        }
        return look.view.conflicts.isEmpty ? 0 : 1
    }

    /// Unbuffered, so a watcher behind a pipe sees each refresh when it is made.
    private static func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}

/// A pool that could not be read, in words.
struct ClusterReadError: Error, CustomStringConvertible {
    var description: String
}

/// What one look at the pools gave.
struct ClusterLook {
    var pools: [(id: String, location: String)]
    var checkedAtMs: Int64
    var options: ClusterReader.Options
    var view: ClusterView
    /// Whether any verdict came from watching change (only with --watch).
    var judgedByChange: Bool
}

/// Reads the pools and keeps, across looks, what watching change needs.
struct ClusterReader {
    struct Options {
        var deadAfter: Duration
        var skewAllowance: Duration
        var ioTimeout: Duration
    }

    /// One pool's files of one host.
    private struct Found {
        var record: Result<HeartbeatRecord, RecordProblem>?
        var hasCloudStackFile = false
        var cloudStackBeatSeconds: Int64?
    }

    let pools: [Pool]
    let options: Options
    private var liveness: [String: [HostAddress: PeerLiveness<ContinuousClock>]] = [:]
    /// Records read per storage call, as the daemon does: each call stays well within the deadline.
    private static let readsPerCall = 64

    init(pools: [Pool], options: Options) {
        self.pools = pools
        self.options = options
    }

    mutating func look() async throws(ClusterReadError) -> ClusterLook {
        var perPool: [String: [HostAddress: Found]] = [:]
        for pool in pools {
            perPool[pool.id] = try await read(pool)
        }
        let now = ContinuousClock.now
        let nowMs = WallClock.nowMs()
        // Change on our clock, per pool, for --watch.
        var changeVerdicts: [HostAddress: [PeerVerdict]] = [:]
        for pool in pools {
            var peers = liveness[pool.id] ?? [:]
            let found = perPool[pool.id]!
            for host in Set(found.keys).union(peers.keys) {
                let observation: PeerObservation
                switch found[host]?.record {
                case .success(let record)?: observation = .record(record)
                case .failure(let problem)?: observation = .unusable(problem)
                case nil: observation = .missing
                }
                peers[host, default: PeerLiveness(deadAfter: options.deadAfter)].observe(observation, at: now)
                changeVerdicts[host, default: []].append(
                    peers[host]!.verdict(at: now, ownStorage: pool.health.ownStorage, wallNowMs: nowMs)
                )
            }
            liveness[pool.id] = peers
        }

        var hosts: [ClusterHostFacts] = []
        var judgedByChange = false
        let everyHost = Set(perPool.values.flatMap(\.keys))
        for host in everyHost.sorted() {
            var facts = ClusterHostFacts(
                host: host,
                liveness: .unknown,
                verdictReason: "",
                record: nil,
                recordPools: []
            )
            var sawUnusable = false
            for pool in pools {
                guard let found = perPool[pool.id]![host] else { continue }
                if found.hasCloudStackFile {
                    facts.cloudStackPools.append(pool.id)
                    if let seconds = found.cloudStackBeatSeconds {
                        facts.cloudStackBeatSeconds = max(facts.cloudStackBeatSeconds ?? seconds, seconds)
                    }
                }
                switch found.record {
                case .success(let record)?:
                    facts.recordPools.append(pool.id)
                    if facts.record.map({ record.wallTimeMs > $0.wallTimeMs }) ?? true { facts.record = record }
                case .failure(let problem)?:
                    facts.recordPools.append(pool.id)
                    sawUnusable = true
                    if facts.recordProblem == nil { facts.recordProblem = problem }
                case nil:
                    break
                }
            }
            if facts.record != nil { facts.recordProblem = nil }
            let byChange = OverallVerdict.combine(changeVerdicts[host] ?? [])
            if byChange.liveness != .unknown && !(changeVerdicts[host] ?? []).isEmpty {
                facts.liveness = byChange.liveness
                facts.verdictReason = "by change: \(byChange.reason)"
                judgedByChange = true
            } else if let record = facts.record {
                let verdict = ClusterView.wallClockVerdict(
                    recordWallTimeMs: record.wallTimeMs,
                    nowMs: nowMs,
                    deadAfter: options.deadAfter,
                    skewAllowance: options.skewAllowance
                )
                facts.liveness = verdict.liveness
                facts.verdictReason = verdict.reason
                if verdict.liveness == .dead && sawUnusable {
                    facts.liveness = .unknown
                    facts.verdictReason += "; but another pool holds an unusable record of it"
                }
            } else if let problem = facts.recordProblem {
                facts.verdictReason = "\(problem)"
            } else {
                let verdict = ClusterView.wallClockVerdict(
                    recordWallTimeMs: facts.cloudStackBeatSeconds.flatMap(Self.milliseconds),
                    nowMs: nowMs,
                    deadAfter: options.deadAfter,
                    skewAllowance: options.skewAllowance,
                    subject: "CloudStack's heartbeat"
                )
                facts.liveness = verdict.liveness
                facts.verdictReason = verdict.reason + " (no kvmha record)"
            }
            hosts.append(facts)
        }
        return ClusterLook(
            pools: pools.map { ($0.id, $0.location) },
            checkedAtMs: nowMs,
            options: options,
            view: ClusterView(hosts: hosts, nowMs: nowMs),
            judgedByChange: judgedByChange
        )
    }

    /// Every record and CloudStack file of one pool, in a few calls, each within the deadline.
    private func read(_ pool: Pool) async throws(ClusterReadError) -> [HostAddress: Found] {
        let checksRoot = !pool.location.hasPrefix("nfs://")
        let listing: (records: [HostAddress], cloudStack: [HostAddress])
        listing = try await call(pool, "list the KVMHA folder") { files throws(PoolIOError) in
            if checksRoot, try files.stat("") == nil {
                throw PoolIOError(operation: "stat", path: files.location, message: "no such directory")
            }
            // CloudStack's folder first, as the daemon does: a sidecar writes its record before its `hb-` file.
            // Not filtered by file type: not every file system reports it in a listing, and a `hb-` entry of any
            // kind is worth showing.
            let cloudStack = try files.list(PoolLayout.haFolder).compactMap {
                PoolLayout.host(ofCloudStackFileName: $0.name)
            }
            let records = try files.list(PoolLayout.recordFolder).compactMap {
                PoolLayout.host(ofRecordFileName: $0.name)
            }
            return (records, cloudStack)
        }
        var found: [HostAddress: Found] = [:]
        for host in listing.cloudStack { found[host, default: Found()].hasCloudStackFile = true }

        for chunk in Self.chunks(listing.records) {
            let reads = try await call(pool, "read records") { files throws(PoolIOError) in
                chunk.map { host in
                    do throws(PoolIOError) {
                        return (
                            host,
                            Result<FileRead, PoolIOError>.success(
                                try files.read(PoolLayout.record(host), maxBytes: RecordCodec.maxBytes)
                            )
                        )
                    } catch {
                        return (host, .failure(error))
                    }
                }
            }
            for (host, read) in reads {
                switch read {
                case .success(.missing): continue  // replaced or removed since the listing
                case .success(.bytes(let bytes)):
                    // A signature line is stripped, not checked: the daemons, which hold the key, verify.
                    let opened = RecordSignature.open(bytes, keyring: nil, wallNowMs: 0)
                    let recordBytes = (try? opened.get())?.recordBytes ?? bytes
                    found[host, default: Found()].record = RecordCodec.decode(recordBytes, expectedHost: host)
                case .success(.tooLarge(let size)): found[host, default: Found()].record = .failure(.oversized(size))
                case .success(.notRegularFile): found[host, default: Found()].record = .failure(.notRegularFile)
                case .failure(let error): found[host, default: Found()].record = .failure(.unreadable(error.message))
                }
            }
        }

        // CloudStack's time, for the hosts without a usable record (the others' last beat is their record's).
        let needBeat = found.filter { $0.value.hasCloudStackFile && (try? $0.value.record?.get()) == nil }.keys.sorted()
        for chunk in Self.chunks(needBeat) {
            let beats = try await call(pool, "read CloudStack heartbeats") { files throws(PoolIOError) in
                chunk.map { host -> (HostAddress, Int64?) in
                    guard
                        case .bytes(let bytes)? = try? files.read(
                            PoolLayout.cloudStackHeartbeat(host),
                            maxBytes: CloudStackHeartbeat.maxBytes
                        )
                    else { return (host, nil) }
                    return (host, try? CloudStackHeartbeat.decode(bytes).get())
                }
            }
            for (host, seconds) in beats { found[host]?.cloudStackBeatSeconds = seconds }
        }
        return found
    }

    /// Unix seconds as ms; nil for a time no clock reaches (another host's word).
    private static func milliseconds(_ seconds: Int64) -> Int64? {
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        return overflow ? nil : ms
    }

    private static func chunks(_ hosts: [HostAddress]) -> [[HostAddress]] {
        stride(from: 0, to: hosts.count, by: readsPerCall).map {
            Array(hosts[$0..<min($0 + readsPerCall, hosts.count)])
        }
    }

    private func call<T: Sendable>(
        _ pool: Pool,
        _ operation: String,
        _ body: @escaping @Sendable (any PoolFiles) throws(PoolIOError) -> T
    ) async throws(ClusterReadError) -> T {
        do {
            return try await pool.call(operation, body)
        } catch {
            throw ClusterReadError(description: "pool \(pool.id) (\(pool.location)) cannot be read: \(error)")
        }
    }
}

// MARK: - Output

enum ClusterOutput {
    static func text(_ look: ClusterLook) -> String {
        let view = look.view
        let pools = look.pools.map { "\($0.id) (\($0.location))" }.joined(separator: ", ")
        let judged =
            look.judgedByChange
            ? "by change where seen, else by wall-clock age" : "by wall-clock age"
        let hosts = "\(view.rows.count) host\(view.rows.count == 1 ? "" : "s")"
        let timing =
            "deadAfter \(DurationText.format(look.options.deadAfter)), "
            + "skew allowance \(DurationText.format(look.options.skewAllowance))"
        var lines = [
            "\(look.pools.count == 1 ? "pool" : "pools") \(pools): \(hosts), judged \(judged) (\(timing)) "
                + "at \(DaemonOutput.time(look.checkedAtMs))"
        ]
        let rows = view.rows.map { row -> [String] in
            let beat = row.lastBeatMs.map { ms -> String in
                let age = (Double(look.checkedAtMs) - Double(ms)) / 1000
                let source = row.lastBeatSource == "cloudstack" ? ", hb file" : ""
                return "\(DaemonOutput.time(ms)) (\(String(format: "%.1fs", age))\(source))"
            }
            return [
                row.host.description, row.liveness.rawValue, beat ?? "-", row.sequence.map(String.init) ?? "-",
                row.vmsRunning.map { "\($0)/\(row.vmsTotal ?? $0)" } ?? "-",
                ClusterViewText.printable(row.verdictReason),
            ]
        }
        if rows.isEmpty {
            lines.append("no host has written to this pool")
        } else {
            lines += TextTable.render(
                header: ["HOST", "VERDICT", "LAST BEAT (AGE)", "SEQUENCE", "VMS", "REASON"],
                rows: rows
            )
        }
        lines.append("")
        if view.conflicts.isEmpty {
            lines.append("No problems.")
        } else {
            lines.append("\(view.conflicts.count) problem\(view.conflicts.count == 1 ? "" : "s"):")
            lines += view.conflicts.map { "  \($0.kind.rawValue): \($0.detail)" }
        }
        return lines.joined(separator: "\n")
    }

    /// One line of JSON (for --watch --json).
    static func compactJSON(_ look: ClusterLook) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(ClusterLookJSON(look)), as: UTF8.self)) ?? "{}"
    }
}

enum ClusterViewText {
    /// Another host's words on a terminal: control characters become `?`.
    static func printable(_ text: String) -> String {
        String(
            String.UnicodeScalarView(
                text.unicodeScalars.map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? "?" : $0 }
            )
        )
    }
}

/// `kvmha cluster --json`: every key always present.
struct ClusterLookJSON: Encodable {
    struct Pool: Encodable {
        var pool: String
        var location: String
    }

    struct Host: Encodable {
        var host: String
        var verdict: String
        var reason: String
        @JSONNullable var lastBeatMs: Int64?
        /// `record`, `cloudstack`, or null.
        @JSONNullable var lastBeatSource: String?
        @JSONNullable var sequence: UInt64?
        @JSONNullable var vmsRunning: Int?
        @JSONNullable var vmsTotal: Int?
        @JSONNullable var recordProblem: String?
    }

    var pools: [Pool]
    var checkedAtMs: Int64
    /// `wall-clock`, or `change` when some verdict came from watching change.
    var judgedBy: String
    var deadAfterSeconds: Double
    var skewAllowanceSeconds: Double
    var hosts: [Host]
    /// The same objects as the daemon's GET /v1/conflicts.
    var conflicts: [APIConflict]

    init(_ look: ClusterLook) {
        pools = look.pools.map { Pool(pool: $0.id, location: $0.location) }
        checkedAtMs = look.checkedAtMs
        judgedBy = look.judgedByChange ? "change" : "wall-clock"
        deadAfterSeconds = look.options.deadAfter.seconds
        skewAllowanceSeconds = look.options.skewAllowance.seconds
        hosts = look.view.rows.map { row in
            Host(
                host: row.host.description,
                verdict: row.liveness.rawValue,
                reason: row.verdictReason,
                lastBeatMs: row.lastBeatMs,
                lastBeatSource: row.lastBeatSource,
                sequence: row.sequence,
                vmsRunning: row.vmsRunning,
                vmsTotal: row.vmsTotal,
                recordProblem: row.recordProblem?.code
            )
        }
        conflicts = look.view.conflicts.map(APIConflict.init)
    }
}
