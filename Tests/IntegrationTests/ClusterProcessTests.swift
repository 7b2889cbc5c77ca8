import AsyncHTTPClient
import Foundation
import HeartbeatCore
import Testing

/// `kvmha cluster` over records this suite writes, and daemons that report the same conflicts in
/// GET /v1/conflicts and /metrics (issue 7, Show 2).
@Suite(.serialized)
struct ClusterProcessTests {
    /// A pool folder with the files hosts would have written.
    struct PoolFolder {
        let root: URL
        /// Keeps the temporary folder alive while the pool is used (nil for a folder the test does not own).
        private let folder: TempDir?
        var path: String { root.path }

        init() throws {
            let folder = try TempDir(prefix: "kvmha-cluster-pool")
            self.folder = folder
            root = folder.url
        }

        init(existing: URL) {
            folder = nil
            root = existing
        }

        func writeRecord(
            _ host: String,
            sequence: UInt64 = 1,
            ageSeconds: Double,
            vms: [(name: String, uuid: String, state: VMPowerState)]
        ) throws {
            let address = HostAddress(host)!
            let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
            let record = HeartbeatRecord(
                host: address,
                hostUUID: nil,
                bootID: "boot-\(host)",
                incarnation: "inc-\(host)",
                sequence: sequence,
                wallTimeMs: nowMs - Int64(ageSeconds * 1000),
                intervalMs: 1000,
                vms: vms.map {
                    VMEntry(uuid: $0.uuid, name: $0.name, state: $0.state, reason: "booted", sinceMs: nowMs - 60_000)
                }
            )
            try write(PoolLayout.record(address), RecordCodec.encode(record))
        }

        func writeCloudStackBeat(_ host: String, ageSeconds: Int64) throws {
            let now = Int64(Date().timeIntervalSince1970)
            try write(
                PoolLayout.cloudStackHeartbeat(HostAddress(host)!),
                CloudStackHeartbeat.encode(unixSeconds: now - ageSeconds)
            )
        }

        func write(_ relative: String, _ bytes: [UInt8]) throws {
            let url = root.appendingPathComponent(relative)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(),
                withIntermediateDirectories: true
            )
            try Data(bytes).write(to: url)
        }
    }

    /// Three hosts with records and one with CloudStack's file only:
    /// - 10.1.0.1 and 10.1.0.2 alive, both running web-1 (split brain), each something else besides;
    /// - 10.1.0.3 dead (its record 10 minutes old): it last ran lost-3, which runs nowhere now (orphaned), and
    ///   app-2, which 10.1.0.2 runs now (restarted: no problem);
    /// - 10.1.0.9 only CloudStack's heartbeat (no record), fresh: alive by that file, with a VM list nobody can
    ///   see, so the orphan claim says it cannot be checked against it.
    static func troubledPool() throws -> PoolFolder {
        let pool = try PoolFolder()
        try pool.writeRecord(
            "10.1.0.1",
            sequence: 40,
            ageSeconds: 0.5,
            vms: [("web-1", "u-split", .running), ("db-1", "u-db", .running), ("off-1", "u-off", .shutoff)]
        )
        try pool.writeRecord(
            "10.1.0.2",
            sequence: 41,
            ageSeconds: 1,
            vms: [("web-1", "u-split", .running), ("app-2", "u-app", .running)]
        )
        try pool.writeRecord(
            "10.1.0.3",
            sequence: 7,
            ageSeconds: 600,
            vms: [("lost-3", "u-orphan", .running), ("app-2", "u-app", .running), ("off-1", "u-off", .shutoff)]
        )
        for host in ["10.1.0.1", "10.1.0.2"] { try pool.writeCloudStackBeat(host, ageSeconds: 1) }
        try pool.writeCloudStackBeat("10.1.0.3", ageSeconds: 600)
        try pool.writeCloudStackBeat("10.1.0.9", ageSeconds: 3)
        return pool
    }

    @Test("kvmha cluster: one line per host, then split brain, orphaned VM and a host without a record; exit 1")
    func humanOutput() async throws {
        let pool = try Self.troubledPool()
        let result = try await runCLI(["cluster", "--pool", "p1=\(pool.path)"])
        #expect(result.exitCode == 1, "\(result)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(
            lines.first?.hasPrefix("pool p1 (\(pool.path)): 4 hosts, judged by wall-clock age (deadAfter 30s") == true,
            "\(result)"
        )
        let table = lines.dropFirst().prefix { !$0.isEmpty }
        #expect(table.first?.hasPrefix("HOST") == true, "\(result)")
        let rows = table.dropFirst().map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(rows.map { $0[0] } == ["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.9"], "\(result)")
        #expect(rows.map { $0[1] } == ["alive", "alive", "dead", "alive"], "\(result)")
        // Columns line up: every row's verdict starts where the header's does.
        let verdictColumn = table.first!.range(of: "VERDICT")!.lowerBound.utf16Offset(in: table.first!)
        for row in table.dropFirst() {
            let index = row.index(row.startIndex, offsetBy: verdictColumn)
            #expect(row[index...].hasPrefix("alive") || row[index...].hasPrefix("dead"), "\(row)")
        }
        #expect(table.contains { $0.hasPrefix("10.1.0.1") && $0.contains(" 40 ") && $0.contains(" 2/3 ") }, "\(result)")
        #expect(table.contains { $0.hasPrefix("10.1.0.3") && $0.contains(" 7 ") && $0.contains(" 2/3 ") }, "\(result)")
        #expect(
            table.contains { $0.hasPrefix("10.1.0.9") && $0.contains("hb file") && $0.contains("no kvmha record") },
            "\(result)"
        )
        let problems = lines.drop { !$0.hasSuffix("problems:") }.dropFirst().map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        #expect(lines.contains("3 problems:"), "\(result)")
        #expect(problems.count == 3, "\(result)")
        // The age of CloudStack's beat depends on when the command ran: only its shape is fixed.
        #expect(
            problems.first.map {
                $0.hasPrefix(
                    "no-record: Host 10.1.0.9 has CloudStack's heartbeat file hb-10.1.0.9 on pool p1 (last beat "
                )
                    && $0.hasSuffix("s ago) but no kvmha record there, so its VMs cannot be checked for conflicts.")
            } == true,
            "\(result)"
        )
        #expect(
            problems.dropFirst().first
                == "orphaned: VM lost-3 (u-orphan) was running on dead host 10.1.0.3 and runs on no other host: HA must restart it (not certain: the VM list of 10.1.0.9 (no record) cannot be checked).",
            "\(result)"
        )
        #expect(
            problems.last
                == "split-brain: VM web-1 (u-split) is running on 2 hosts at once: 10.1.0.1 (alive, running) and 10.1.0.2 (alive, running); stop all copies but one before their disks are corrupted.",
            "\(result)"
        )
    }

    @Test("kvmha cluster --json: a stable document with hosts and the API's conflict objects")
    func jsonOutput() async throws {
        let pool = try Self.troubledPool()
        let result = try await runCLI(["cluster", "--pool", "p1=\(pool.path)", "--json"])
        #expect(result.exitCode == 1, "\(result)")
        let document = try result.json()
        #expect(
            Set(document.keys) == [
                "pools", "checkedAtMs", "judgedBy", "deadAfterSeconds", "skewAllowanceSeconds", "hosts", "conflicts",
            ]
        )
        #expect(document["judgedBy"] as? String == "wall-clock")
        #expect((document["pools"] as? [[String: Any]])?.first?["pool"] as? String == "p1")
        let hosts = document["hosts"] as? [[String: Any]] ?? []
        #expect(hosts.compactMap { $0["host"] as? String } == ["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.9"])
        #expect(hosts.compactMap { $0["verdict"] as? String } == ["alive", "alive", "dead", "alive"])
        #expect(hosts.map { $0["sequence"] as? Int } == [40, 41, 7, nil])
        #expect(hosts.map { $0["vmsRunning"] as? Int } == [2, 2, 2, nil])
        #expect(hosts.map { $0["vmsTotal"] as? Int } == [3, 2, 3, nil])
        #expect(hosts.map { $0["lastBeatSource"] as? String } == ["record", "record", "record", "cloudstack"])
        // Every key always present, null when empty.
        for host in hosts {
            #expect(
                Set(host.keys) == [
                    "host", "verdict", "reason", "lastBeatMs", "lastBeatSource", "sequence", "vmsRunning", "vmsTotal",
                    "recordProblem",
                ]
            )
        }
        let conflicts = document["conflicts"] as? [[String: Any]] ?? []
        #expect(conflicts.compactMap { $0["kind"] as? String } == ["no-record", "orphaned", "split-brain"])
        #expect(conflicts.map { ($0["vm"] as? [String: Any])?["uuid"] as? String } == [nil, "u-orphan", "u-split"])
        #expect(conflicts[0]["vm"] is NSNull)
        #expect(
            conflicts.map { $0["hosts"] as? [String] ?? [] } == [["10.1.0.9"], ["10.1.0.3"], ["10.1.0.1", "10.1.0.2"]]
        )
        #expect(conflicts.allSatisfy { $0["pools"] as? [String] == ["p1"] })
        #expect(conflicts.allSatisfy { Set($0.keys) == ["kind", "vm", "hosts", "pools", "detail"] })
    }

    @Test(
        "kvmha cluster --watch --count: blocks separated by a blank line when not on a terminal; a clean pool exits 0"
    )
    func watchAndCleanPool() async throws {
        let pool = try PoolFolder()
        try pool.writeRecord("10.1.0.1", ageSeconds: 0, vms: [("web-1", "u1", .running)])
        try pool.writeRecord("10.1.0.2", ageSeconds: 0, vms: [("web-1", "u1", .shutoff)])
        let result = try await runCLI([
            "cluster", "--pool", pool.path, "--watch", "--count", "2", "--interval", "100ms",
        ])
        #expect(result.exitCode == 0, "\(result)")
        #expect(!result.stdout.contains("\u{1B}"), "no terminal control on a pipe: \(result)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let headers = lines.indices.filter { lines[$0].hasPrefix("pool ") }
        #expect(headers.count == 2 && lines.filter { $0 == "No problems." }.count == 2, "\(result)")
        // The second block follows the first after a blank line.
        #expect(
            headers.count == 2 && lines[headers[1] - 1].isEmpty && lines[headers[1] - 2] == "No problems.",
            "\(result)"
        )
        #expect(lines.allSatisfy { !$0.hasPrefix("pool ") || $0.contains(": 2 hosts, judged") }, "\(result)")
        // The pool id defaults to the folder's name.
        #expect(result.stdout.hasPrefix("pool \(URL(fileURLWithPath: pool.path).lastPathComponent) ("), "\(result)")

        let json = try await runCLI([
            "cluster", "--pool", pool.path, "--watch", "--count", "2", "--interval", "100ms", "--json",
        ])
        #expect(json.exitCode == 0, "\(json)")
        let documents = json.stdout.split(separator: "\n")
        #expect(documents.count == 2, "one JSON document per line: \(json)")
        for document in documents {
            let object = try JSONSerialization.jsonObject(with: Data(document.utf8)) as? [String: Any]
            #expect((object?["conflicts"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("kvmha cluster --pool nfs://…: the same view straight from the NFS server (libnfs, NFSv3)")
    func throughNFS() async throws {
        try await GaneshaHarness.with(v3: true) { server in
            let pool = PoolFolder(existing: URL(fileURLWithPath: server.exportDirectory))
            try pool.writeRecord("10.1.0.1", ageSeconds: 0, vms: [("web-1", "u-split", .running)])
            try pool.writeRecord("10.1.0.2", ageSeconds: 0, vms: [("web-1", "u-split", .running)])
            let url = try #require(server.urlV3)
            let result = try await runCLI(["cluster", "--pool", "p1=\(url)", "--json"])
            #expect(result.exitCode == 1, "\(result)")
            let document = try result.json()
            #expect((document["pools"] as? [[String: Any]])?.first?["location"] as? String == url, "\(result)")
            let conflicts = document["conflicts"] as? [[String: Any]] ?? []
            #expect(conflicts.compactMap { $0["kind"] as? String } == ["split-brain"], "\(result)")
        }
    }

    @Test("kvmha cluster: a folder that does not exist is 69 with the reason; usage errors are 64")
    func errors() async throws {
        let missing = try await runCLI(["cluster", "--pool", "p1=/nonexistent/kvmha-pool"])
        #expect(missing.exitCode == 69, "\(missing)")
        #expect(missing.stderr.contains("pool p1 (/nonexistent/kvmha-pool) cannot be read"), "\(missing)")
        let noPool = try await runCLI(["cluster"])
        #expect(noPool.exitCode == 64, "\(noPool)")
        let countAlone = try await runCLI(["cluster", "--pool", "/tmp", "--count", "2"])
        #expect(countAlone.exitCode == 64, "\(countAlone)")
        let relative = try await runCLI(["cluster", "--pool", "p1=relative/path"])
        #expect(relative.exitCode == 64, "\(relative)")
    }

    /// On a frozen FUSE mount the thread blocked in the kernel keeps the process from being reaped until the
    /// mount answers (on NFS the wait is killable), so the test waits for the error line, thaws, then reads the
    /// exit status.
    @Test("a hung pool is an error within the I/O timeout, never a hang")
    func hungPool() async throws {
        let mount = try FreezableMount()
        defer { mount.stop() }
        let pool = PoolFolder(existing: mount.backing)
        try pool.writeRecord("10.1.0.1", ageSeconds: 0, vms: [])
        try mount.freeze()
        let process = try ChildProcess(
            executable: try kvmhaBinary(),
            arguments: ["cluster", "--pool", "p1=\(mount.mountpoint.path)", "--io-timeout", "500ms"],
            label: "kvmha cluster (frozen)"
        )
        // A hang guard, not a timing assertion: the error comes after --io-timeout.
        let line = try await process.waitForLine(containing: "cannot be read", timeout: .seconds(20))
        #expect(
            line.contains("pool p1 (\(mount.mountpoint.path))") && line.contains("did not return within 500ms"),
            "\(line)"
        )
        try mount.thaw()
        let status = try await process.waitForExit(timeout: .seconds(30))
        #expect(status == 69, "\(process.transcript)")
    }

    // MARK: The daemon

    @Test(
        "daemons report the same conflicts in GET /v1/conflicts and /metrics: two hosts running one VM, a dead host's VM, a host without a record"
    )
    func daemonsSeeTheSameConflicts() async throws {
        let pool = try PoolFolder()
        let tokens = try TempDir(prefix: "kvmha-cluster-tokens")
        // Dead from the start for the CLI (10 minutes old); dead after deadAfter without change for the daemons.
        try pool.writeRecord("127.0.0.3", ageSeconds: 600, vms: [("lost-3", "u-orphan", .running)])
        try pool.writeCloudStackBeat("127.0.0.9", ageSeconds: 2)
        var daemons: [APIDaemon] = []
        defer { for daemon in daemons { daemon.stop() } }
        // Both use libvirt's test driver: its VM "test" (one UUID) runs on both — a split brain.
        for host in ["127.0.0.1", "127.0.0.2"] {
            let token = try TokenFile.make(in: tokens, name: "token-\(host)")
            daemons.append(try await APIDaemon.start(host: host, pools: ["p1=\(pool.path)"], token: token))
        }
        for daemon in daemons {
            try await daemon.process.waitForLine(containing: "conflict split-brain: VM test (")
            try await daemon.process.waitForLine(
                containing: "conflict orphaned: VM lost-3 (u-orphan) was running on dead host 127.0.0.3"
            )
            try await daemon.process.waitForLine(containing: "conflict no-record: Host 127.0.0.9")
        }

        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        do {
            for daemon in daemons {
                let (status, body) = try await Self.get(client, daemon, "/v1/conflicts")
                #expect(status == 200, "\(body)")
                let answer = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
                #expect(Set(answer.keys) == ["checker", "conflicts", "updatedMs"], "\(body)")
                #expect(answer["checker"] as? String == daemon.host)
                #expect((answer["updatedMs"] as? Int).map { $0 > 1_600_000_000_000 } == true, "\(body)")
                let conflicts = answer["conflicts"] as? [[String: Any]] ?? []
                #expect(
                    conflicts.compactMap { $0["kind"] as? String } == ["no-record", "orphaned", "split-brain"],
                    "\(body)"
                )
                #expect(
                    conflicts.map { $0["hosts"] as? [String] ?? [] } == [
                        ["127.0.0.9"], ["127.0.0.3"], ["127.0.0.1", "127.0.0.2"],
                    ],
                    "\(body)"
                )
                #expect(
                    conflicts.map { ($0["vm"] as? [String: Any])?["name"] as? String } == [nil, "lost-3", "test"],
                    "\(body)"
                )
                // Our own list comes from libvirt; the peer's record from the pool.
                #expect(conflicts.last?["pools"] as? [String] == ["p1"], "\(body)")

                let (metricsStatus, metrics) = try await Self.get(client, daemon, "/metrics")
                #expect(metricsStatus == 200)
                for line in [
                    #"kvmha_conflicts{kind="split-brain"} 1"#, #"kvmha_conflicts{kind="orphaned"} 1"#,
                    #"kvmha_conflicts{kind="no-record"} 1"#,
                ] {
                    #expect(metrics.contains(line), "missing \(line) in\n\(metrics)")
                }

                let (refused, refusedBody) = try await Self.get(
                    client,
                    daemon,
                    "/v1/conflicts",
                    token: "not-the-token-at-all"
                )
                #expect(refused == 401 && refusedBody.isEmpty)
            }
            try await client.shutdown()
        } catch {
            try await client.shutdown()
            throw error
        }

        // The one-shot CLI over the same pool finds the same three.
        let cli = try await runCLI(["cluster", "--pool", "p1=\(pool.path)", "--json"])
        #expect(cli.exitCode == 1, "\(cli)")
        let conflicts = try cli.json()["conflicts"] as? [[String: Any]] ?? []
        #expect(
            conflicts.map { $0["hosts"] as? [String] ?? [] } == [
                ["127.0.0.9"], ["127.0.0.3"], ["127.0.0.1", "127.0.0.2"],
            ],
            "\(cli)"
        )
    }

    static func get(
        _ client: HTTPClient,
        _ daemon: APIDaemon,
        _ path: String,
        token: String? = nil
    ) async throws -> (UInt, String) {
        var request = HTTPClientRequest(url: daemon.url + path)
        request.headers.add(name: "Authorization", value: "Bearer \(token ?? daemon.token.token)")
        let response = try await client.execute(request, timeout: .seconds(10))
        var body = try await response.body.collect(upTo: 1 << 20)
        return (response.status.code, body.readString(length: body.readableBytes) ?? "")
    }
}
