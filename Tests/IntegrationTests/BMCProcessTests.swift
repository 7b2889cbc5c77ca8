import AsyncHTTPClient
import Foundation
import HeartbeatCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Out-of-band evidence (issue 7, Show 3): `kvmha serve` daemons on one pool, the checker configured with a
/// BMC for its peers, served by OpenIPMI's `ipmi_sim` on loopback.
@Suite(.serialized)
struct BMCProcessTests {
    static let checker = "127.0.0.1"
    static let peer = "127.0.0.2"
    static let otherPeer = "127.0.0.3"
    static let bmcCodes: Set<String> = ["bmc-power-off", "host-powered-sidecar-silent", "bmc-power-off-conflict"]

    /// A config file with a `peers:` list: (peer ip, BMC port, timeout).
    static func config(in folder: TempDir, credentials: String, bmcs: [(peer: String, port: Int, timeout: String)])
        throws -> String
    {
        var yaml = "peers:\n"
        for bmc in bmcs {
            yaml += """
                  - ip: \(bmc.peer)
                    bmc:
                      address: 127.0.0.1
                      port: \(bmc.port)
                      credentialsFile: \(credentials)
                      timeout: \(bmc.timeout)

                """
        }
        let path = folder.appending("sidecar.yaml").path
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("power on and off reported right in CheckOnHost, with the verdict's certainty, in the CLI and metrics")
    func powerOnAndOff() async throws {
        let simulator = try IPMISimulator(poweredOn: true)
        defer { simulator.stop() }
        let pool = try TempDir(prefix: "kvmha-bmc-pool")
        let files = try TempDir(prefix: "kvmha-bmc-files")
        let credentials = try IPMISimulator.credentialsFile(in: files)
        let config = try Self.config(
            in: files, credentials: credentials, bmcs: [(Self.peer, simulator.port, "5s")])
        let checker = try await APIDaemon.start(
            host: Self.checker, pools: ["p1=\(pool.path)"], token: try TokenFile.make(in: files, name: "token-a"),
            environment: ["KVMHA_CONFIG": config])
        defer { checker.stop() }
        let peer = try await APIDaemon.start(
            host: Self.peer, pools: ["p1=\(pool.path)"], token: try TokenFile.make(in: files, name: "token-b"))
        defer { peer.stop() }
        try await Self.withClient { client in

        // Alive on storage, powered on: storage's own verdict, the BMC's reading beside it.
        var report = try await Self.poll(client, checker, Self.peer, "alive and powered on") {
            $0[path: "overall", "verdict"] as? String == "alive" && $0[path: "bmc", "state"] as? String == "on"
        }
        #expect(Self.storageCode(report) == "changing", "storage's own reason: \(report)")
        #expect(report["certainty"] as? String == "storage")
        #expect(report[path: "bmc", "error"] is NSNull)
        #expect(((report[path: "bmc", "checkedMs"] as? NSNumber)?.int64Value ?? 0) > 1_600_000_000_000, "\(report)")

        // Powered off while its record still changes: conflicting evidence, never dead.
        try simulator.setPower(on: false)
        report = try await Self.poll(client, checker, Self.peer, "conflicting") {
            $0[path: "bmc", "state"] as? String == "off"
        }
        #expect(report[path: "overall", "verdict"] as? String == "alive", "\(report)")
        #expect(report[path: "overall", "reasonCode"] as? String == "bmc-power-off-conflict")
        #expect(report["certainty"] as? String == "conflicting")

        // Its sidecar killed: dead on storage, and the BMC confirms it.
        peer.stop()
        report = try await Self.poll(client, checker, Self.peer, "dead, confirmed") {
            $0[path: "overall", "verdict"] as? String == "dead"
        }
        #expect(report[path: "overall", "reasonCode"] as? String == "bmc-power-off", "\(report)")
        #expect(report["certainty"] as? String == "confirmed")
        let confirmed = try await checker.cli(["check-host", Self.peer])
        #expect(confirmed.exitCode == 1, "\(confirmed)")
        #expect(confirmed.stdout.contains("DEAD — confirmed: the BMC reports chassis power off"), "\(confirmed)")
        #expect(confirmed.stdout.contains("bmc: power off (checked "), "\(confirmed)")
        #expect(confirmed.stdout.contains("certainty: confirmed"), "\(confirmed)")

        // Powered on again, sidecar still silent.
        try simulator.setPower(on: true)
        report = try await Self.poll(client, checker, Self.peer, "powered, silent") {
            $0[path: "bmc", "state"] as? String == "on"
        }
        #expect(report[path: "overall", "verdict"] as? String == "dead", "\(report)")
        #expect(report[path: "overall", "reasonCode"] as? String == "host-powered-sidecar-silent")
        #expect((report[path: "overall", "reason"] as? String)?.hasPrefix("host powered, sidecar silent") == true)
        #expect(report["certainty"] as? String == "storage")
        let json = try await checker.cli(["check-host", Self.peer, "--json"])
        #expect(try json.json()[path: "bmc", "state"] as? String == "on", "\(json)")

        // The peer list carries the same evidence, and so do the metrics.
        let list = try await Self.get(client, checker, "/v1/peers")
        let listed = (list["peers"] as? [[String: Any]])?.first { $0["host"] as? String == Self.peer }
        #expect(listed?[path: "overall", "reasonCode"] as? String == "host-powered-sidecar-silent", "\(list)")
        let metrics = try await Self.text(client, checker, "/metrics")
        #expect(metrics.contains(#"kvmha_bmc_power{peer="127.0.0.2"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"kvmha_bmc_state{peer="127.0.0.2",state="on"} 1"#), "\(metrics)")
        }
    }

    @Test("a BMC that does not answer (nothing on its port, or frozen): unreachable, and storage alone decides")
    func unreachableBMC() async throws {
        let simulator = try IPMISimulator(poweredOn: true)
        defer { simulator.stop() }
        let silentPort = try IPMISimulator.freeUDPPort()
        let pool = try TempDir(prefix: "kvmha-bmc-pool")
        let files = try TempDir(prefix: "kvmha-bmc-files")
        let credentials = try IPMISimulator.credentialsFile(in: files)
        // 127.0.0.2: nothing listens (ipmitool gives up by itself, -N 1 -R 1: about 2 s, within its 5 s);
        // 127.0.0.3: the simulator, frozen later, with a timeout shorter than ipmitool's own retries, so the
        // daemon has to kill ipmitool.
        let config = try Self.config(
            in: files, credentials: credentials,
            bmcs: [(Self.peer, silentPort, "5s"), (Self.otherPeer, simulator.port, "1s")])
        let checker = try await APIDaemon.start(
            host: Self.checker, pools: ["p1=\(pool.path)"], token: try TokenFile.make(in: files, name: "token-a"),
            environment: ["KVMHA_CONFIG": config])
        defer { checker.stop() }
        let peers = [
            try await APIDaemon.start(
                host: Self.peer, pools: ["p1=\(pool.path)"], token: try TokenFile.make(in: files, name: "token-b")),
            try await APIDaemon.start(
                host: Self.otherPeer, pools: ["p1=\(pool.path)"], token: try TokenFile.make(in: files, name: "token-c")),
        ]
        defer { for peer in peers { peer.stop() } }
        try await Self.withClient { client in

        var silent = try await Self.poll(client, checker, Self.peer, "unreachable BMC") {
            $0[path: "overall", "verdict"] as? String == "alive" && $0[path: "bmc", "state"] as? String == "unreachable"
        }
        #expect((silent[path: "bmc", "error"] as? String)?.contains("no answer from 127.0.0.1:\(silentPort)") == true)
        #expect(silent["certainty"] as? String == "storage", "\(silent)")
        _ = try await Self.poll(client, checker, Self.otherPeer, "powered on") {
            $0[path: "bmc", "state"] as? String == "on"
        }

        // Frozen: no answer within the 1 s timeout; ipmitool is killed and the BMC is unreachable.
        simulator.freeze()
        defer { simulator.thaw() }
        let frozen = try await Self.poll(client, checker, Self.otherPeer, "frozen BMC unreachable") {
            $0[path: "bmc", "state"] as? String == "unreachable"
        }
        #expect(
            frozen[path: "bmc", "error"] as? String == "no answer from 127.0.0.1:\(simulator.port) within 1s", "\(frozen)")
        #expect(Self.storageCode(frozen) == "changing", "\(frozen)")

        // Both sidecars killed: dead on storage alone, in storage's own words.
        for peer in peers { peer.stop() }
        for host in [Self.peer, Self.otherPeer] {
            let report = try await Self.poll(client, checker, host, "dead on storage") {
                $0[path: "overall", "verdict"] as? String == "dead"
            }
            #expect(report[path: "bmc", "state"] as? String == "unreachable", "\(report)")
            #expect(report["certainty"] as? String == "storage")
            #expect(Self.storageCode(report) == "no-change", "\(report)")
        }
        silent = try await Self.get(client, checker, "/v1/peers/\(Self.peer)")
        let human = try await checker.cli(["check-host", Self.peer])
        #expect(human.exitCode == 1, "\(human)")
        #expect(human.stdout.contains("bmc: UNREACHABLE — no answer from 127.0.0.1:\(silentPort)"), "\(human)")
        let metrics = try await Self.text(client, checker, "/metrics")
        #expect(metrics.contains(#"kvmha_bmc_power{peer="127.0.0.2"} -1"#), "\(metrics)")
        #expect(metrics.contains(#"kvmha_bmc_state{peer="127.0.0.3",state="unreachable"} 1"#), "\(metrics)")
        }
    }

    @Test("a credentials file others can read stops the daemon at start-up, naming the file")
    func credentialsMustBePrivate() async throws {
        let pool = try TempDir(prefix: "kvmha-bmc-pool")
        let files = try TempDir(prefix: "kvmha-bmc-files")
        let credentials = try IPMISimulator.credentialsFile(in: files)
        guard chmod(credentials, 0o644) == 0 else { throw HarnessError("chmod: \(String(cString: strerror(errno)))") }
        let config = try Self.config(in: files, credentials: credentials, bmcs: [(Self.peer, 623, "5s")])
        let result = try await runCLI([
            "serve", "--check-config", "--config", config, "--host-ip", Self.checker, "--pool", "p1=\(pool.path)",
            "--state-dir", files.path, "--libvirt-uri", "test:///default",
        ])
        #expect(result.exitCode == 78, "\(result)")
        #expect(result.stderr.contains("BMC credentials file \(credentials) is accessible by group or others"), "\(result)")
        #expect(result.stderr.contains("peer \(Self.peer)"), "\(result)")
    }

    // MARK: Helpers

    /// The overall reason code when it is storage's own (the one pool's), else nil.
    static func storageCode(_ report: [String: Any]) -> String? {
        let code = report[path: "overall", "reasonCode"] as? String
        let pool = (report["pools"] as? [[String: Any]])?.first?[path: "verdict", "reasonCode"] as? String
        guard let code, code == pool, !bmcCodes.contains(code) else { return nil }
        return code
    }

    /// An HTTP client, shut down afterwards whatever happens.
    static func withClient(_ body: (HTTPClient) async throws -> Void) async throws {
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        do {
            try await body(client)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    /// GETs CheckOnHost until `done` holds; a hang guard of 30 s, not a timing assertion.
    static func poll(
        _ client: HTTPClient, _ daemon: APIDaemon, _ host: String, _ what: String,
        timeout: Duration = .seconds(30), until done: ([String: Any]) -> Bool
    ) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        var last: [String: Any] = [:]
        while ContinuousClock.now < deadline {
            last = try await get(client, daemon, "/v1/peers/\(host)")
            if done(last) { return last }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessError(
            "\(what): CheckOnHost \(host) did not get there within \(timeout); last answer: \(last)\n"
                + daemon.process.lastLines(40).joined(separator: "\n"))
    }

    static func get(_ client: HTTPClient, _ daemon: APIDaemon, _ path: String) async throws -> [String: Any] {
        let body = try await text(client, daemon, path)
        guard let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
            throw HarnessError("not a JSON object: \(body)")
        }
        return object
    }

    static func text(_ client: HTTPClient, _ daemon: APIDaemon, _ path: String) async throws -> String {
        var request = HTTPClientRequest(url: daemon.url + path)
        request.headers.add(name: "Authorization", value: "Bearer \(daemon.token.token)")
        let response = try await client.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        return String(decoding: body.readableBytesView, as: UTF8.self)
    }
}
