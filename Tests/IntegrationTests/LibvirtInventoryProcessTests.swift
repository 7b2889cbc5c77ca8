import Foundation
import HeartbeatCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `kvmha vms` and `kvmha serve` against libvirt's test driver (issue 3, Show 1 and 4, and pool discovery).
@Suite(.serialized)
struct LibvirtInventoryProcessTests {
    static let nodeXML = RepositoryPaths.root.appendingPathComponent("Tests/Harness/libvirt/node.xml").path
    static var nodeURI: String { "test://" + nodeXML }

    /// node.xml by name: state as our records name it, and as `virsh list` prints it.
    static let expected: [String: (state: String, virsh: String)] = [
        "i-2-10-VM": ("running", "running"),
        "i-2-11-VM": ("blocked", "idle"),
        "i-3-12-VM": ("paused", "paused"),
        "i-3-13-VM": ("shutoff", "shut off"),
        "r-4-VM": ("shutdown-in-progress", "in shutdown"),
        "s-1-VM": ("crashed", "crashed"),
        "v-2-VM": ("pmsuspended", "pmsuspended"),
    ]

    @Test("`kvmha vms --json` agrees with `virsh list --all` on the same URI, domain by domain")
    func vmsAgreesWithVirsh() async throws {
        let output = try await Self.run(try kvmhaBinary(), ["vms", "--json", "--libvirt-uri", Self.nodeURI])
        let array = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]])

        // ` 1    i-2-10-VM   running` / ` -    i-3-13-VM   shut off`
        var virshRows: [String: (id: String, state: String)] = [:]
        for line in try await Self.virsh(["list", "--all"]).split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard fields.count >= 3 else { continue }
            virshRows[fields[1]] = (fields[0], fields[2...].joined(separator: " "))
        }
        // `6f0c2a7e-… 1 i-2-10-VM` (the id column is empty for an inactive domain)
        var virshUUIDs: [String: String] = [:]
        for line in try await Self.virsh(["list", "--all", "--uuid", "--name"]).split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard fields.count == 2 else { continue }
            virshUUIDs[fields[1]] = fields[0]
        }
        #expect(virshRows.count == 7)

        let names = array.compactMap { $0["name"] as? String }
        #expect(Set(names) == Set(virshRows.keys))
        #expect(Set(names) == Set(Self.expected.keys))
        for vm in array {
            let name = try #require(vm["name"] as? String)
            let row = try #require(virshRows[name], "\(name) missing from virsh")
            let id = vm["id"] is NSNull ? "-" : (vm["id"] as? Int).map(String.init) ?? "?"
            #expect(id == row.id, "id of \(name)")
            #expect(Self.expected[name]?.virsh == row.state, "virsh state of \(name)")
            #expect(vm["state"] as? String == Self.expected[name]?.state, "state of \(name)")
            #expect(vm["uuid"] as? String == virshUUIDs[name], "uuid of \(name)")
            #expect(vm["reason"] as? String == "unknown", "reason of \(name)")
            #expect(vm.keys.contains("id"), "id is always present (null when not running)")
        }
        // In virsh's order: running ones by id, then the others by name.
        #expect(names == virshRows.sorted { Self.virshOrder($0, $1) }.map(\.key))

        // The human table: one row per domain, virsh's columns first.
        let table = try await Self.run(try kvmhaBinary(), ["vms", "--libvirt-uri", Self.nodeURI]).split(separator: "\n")
        #expect(table.first?.hasPrefix("ID  NAME") == true, "\(table)")
        #expect(table.count == 8)
        #expect(table.contains { $0.hasPrefix("-   i-3-13-VM  shutoff") }, "\(table)")
    }

    @Test("`kvmha vms` on an unreachable libvirt says so and exits 69")
    func vmsWithoutLibvirt() async throws {
        let process = try ChildProcess(
            executable: try kvmhaBinary(),
            arguments: ["vms", "--libvirt-uri", "test:///nonexistent/node.xml"]
        )
        #expect(try await process.waitForExit() == 69)
        #expect(process.lines().contains { $0.contains("cannot list VMs") && $0.contains("/nonexistent/node.xml") })
    }

    @Test("records carry the VM list; after kill -9 the pool still has it, as the surviving peer sees")
    func recordKeepsTheListAfterKill() async throws {
        let pool = try TempDir(prefix: "kvmha-pool")
        let spec = "p1=\(pool.path)"
        let writer = try SidecarProcess.start(
            host: "127.0.0.1",
            pools: [spec],
            extraArguments: ["--libvirt-uri", Self.nodeURI]
        )
        let peer = try SidecarProcess.start(
            host: "127.0.0.2",
            pools: [spec],
            extraArguments: ["--libvirt-uri", "test:///default"]
        )
        defer {
            for daemon in [writer, peer] { daemon.stop() }
        }

        try await writer.process.waitForLine(containing: "VM list read from libvirt (connected): 7 VM(s)")
        let mark = writer.process.lineCount
        try await writer.process.waitForLine(matching: try .regex("beat [0-9]+ written to 1 pool"), after: mark)
        try await peer.process.waitForLine(containing: "peer 127.0.0.1 is now alive")

        // libvirt writes to libvirtd's socket with plain write(): a daemon that did not ignore SIGPIPE would die
        // when libvirtd restarts at the wrong moment.
        #expect(Self.ignoresSIGPIPE(writer.process.pid))

        let live = try #require(readRecord(pool: pool.url, host: "127.0.0.1"))
        Self.expectNodeList(live.vms, "while the writer runs")

        let peerMark = peer.process.lineCount
        writer.process.kill(signal: SIGKILL)
        _ = try await writer.process.waitForExit()
        let killedAtMs = Int64(Date().timeIntervalSince1970 * 1000)
        try await peer.process.waitForLine(containing: "peer 127.0.0.1 is now dead", after: peerMark)

        // The dead host's last record: its VM list, and when it was last confirmed (the record's time).
        let last = try #require(readRecord(pool: pool.url, host: "127.0.0.1"))
        Self.expectNodeList(last.vms, "after kill -9")
        #expect(last.sequence >= live.sequence)
        #expect(last.wallTimeMs <= killedAtMs)
        #expect(last.vms.allSatisfy { $0.sinceMs <= last.wallTimeMs })
    }

    @Test("no pools configured: the netfs pools of libvirt are used, not the others")
    func poolsDiscoveredFromLibvirt() async throws {
        let folder = try TempDir(prefix: "kvmha-node")
        let netfs = [folder.appending("mnt-a").path, folder.appending("mnt-b").path]
        let local = folder.appending("images").path
        for path in netfs + [local] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        let ids = ["1a2b3c4d-0000-4000-8000-00000000000a", "1a2b3c4d-0000-4000-8000-00000000000b"]
        let node = folder.appending("node.xml").path
        try Self.node(netfs: Array(zip(ids, netfs)), dir: local).write(toFile: node, atomically: true, encoding: .utf8)

        let daemon = try SidecarProcess.start(
            host: "127.0.0.1",
            pools: [],
            extraArguments: ["--libvirt-uri", "test://" + node]
        )
        defer { daemon.stop() }
        try await daemon.process.waitForLine(
            containing: "pools from libvirt's netfs pools: \(ids[0])=\(netfs[0]), \(ids[1])=\(netfs[1])"
        )
        let mark = daemon.process.lineCount
        try await daemon.process.waitForLine(matching: try .regex("beat [0-9]+ written to 2 pool"), after: mark)

        for path in netfs {
            let record = try #require(
                readRecord(pool: URL(fileURLWithPath: path), host: "127.0.0.1"),
                "record in \(path)"
            )
            #expect(record.vms.map(\.name) == ["i-9-99-VM"])
        }
        #expect(!FileManager.default.fileExists(atPath: local + "/KVMHA"))
    }

    @Test("no pools configured and none in libvirt: the daemon runs, warns, and keeps looking")
    func startsWithoutPools() async throws {
        let folder = try TempDir(prefix: "kvmha-node")
        let node = folder.appending("node.xml").path
        try Self.node(netfs: [], dir: folder.appending("images").path).write(
            toFile: node,
            atomically: true,
            encoding: .utf8
        )

        let daemon = try SidecarProcess.start(
            host: "127.0.0.1",
            pools: [],
            extraArguments: ["--libvirt-uri", "test://" + node]
        )
        defer { daemon.stop() }
        try await daemon.process.waitForLine(containing: "no pools: none configured and libvirt")
        let mark = daemon.process.lineCount
        // Still running some beats later (they go nowhere until a pool appears).
        try await daemon.process.waitForLine(matching: try .regex("beat [0-9]+ written"), after: mark)
        try await daemon.process.waitForLine(
            matching: try .regex("beat [0-9]+ written"),
            after: daemon.process.lineCount
        )
        #expect(daemon.process.isRunning)
    }

    // MARK: Helpers

    /// Whether SIGPIPE is in the process's ignored set (`SigIgn` in /proc/PID/status, a hex mask).
    static func ignoresSIGPIPE(_ pid: pid_t) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigIgn:") }),
            let mask = UInt64(line.dropFirst("SigIgn:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        return mask & (1 << (UInt64(SIGPIPE) - 1)) != 0
    }

    static func expectNodeList(_ vms: [VMEntry], _ when: String) {
        #expect(Set(vms.map(\.name)) == Set(expected.keys), "\(when)")
        for vm in vms {
            #expect(vm.state.rawValue == expected[vm.name]?.state, "\(vm.name) \(when)")
            #expect(vm.reason == "unknown", "\(vm.name) \(when)")
            #expect(vm.sinceMs > 0, "\(vm.name) \(when)")
        }
    }

    static func virshOrder(
        _ lhs: (key: String, value: (id: String, state: String)),
        _ rhs: (key: String, value: (id: String, state: String))
    ) -> Bool {
        switch (Int(lhs.value.id), Int(rhs.value.id)) {
        case (let left?, let right?): left < right
        case (.some, nil): true
        case (nil, .some): false
        case (nil, nil): lhs.key < rhs.key
        }
    }

    /// Runs a command to its end and returns its stdout; fails on a non-zero exit.
    static func run(_ executable: URL, _ arguments: [String]) async throws -> String {
        let process = try ChildProcess(executable: executable, arguments: arguments)
        let code = try await process.waitForExit()
        guard code == 0 else {
            throw HarnessError("\(executable.lastPathComponent) \(arguments) exited \(code):\n\(process.transcript)")
        }
        return process.lines(after: 0, source: .stdout).joined(separator: "\n")
    }

    static func virsh(_ arguments: [String]) async throws -> String {
        guard let virsh = ChildProcess.findExecutable("virsh") else {
            throw HarnessError("virsh is not installed — apt-get install libvirt-clients")
        }
        return try await run(virsh, ["--quiet", "-c", nodeURI] + arguments)
    }

    /// A test-driver node: one running domain, CloudStack-style netfs pools mounted at `netfs` paths, and a
    /// dir pool that discovery must leave alone.
    static func node(netfs: [(id: String, path: String)], dir: String) -> String {
        let pools = netfs.map { pool in
            """
              <pool type='netfs'>
                <name>\(pool.id)</name>
                <uuid>\(pool.id)</uuid>
                <source><host name='10.0.32.4'/><dir path='/export/\(pool.id)'/><format type='auto'/></source>
                <target><path>\(pool.path)</path></target>
              </pool>
            """
        }.joined(separator: "\n")
        return """
            <?xml version='1.0'?>
            <node>
              <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
                <name>i-9-99-VM</name>
                <uuid>0d0e0f10-1112-4314-9516-171819202122</uuid>
                <memory unit='MiB'>256</memory>
                <os><type arch='x86_64'>hvm</type></os>
                <test:runstate>1</test:runstate>
              </domain>
            \(pools)
              <pool type='dir'>
                <name>local-images</name>
                <uuid>3d1f6b2e-9c4a-4e7d-8b5f-2a6c9e0d1f73</uuid>
                <target><path>\(dir)</path></target>
              </pool>
            </node>
            """
    }
}
