import Foundation
import HeartbeatCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Maintenance mode and rejoining (issue 9, Show 3 and 4): two daemons on loopback sharing a pool, A's
/// through a FUSE mount the test can freeze, both with their APIs; A's state directory kept across restarts.
@Suite(.serialized)
struct HostModeProcessTests {
    static let fenceArguments = ["--fence-after", "900ms", "--fence-delay", "300ms"]
    /// Long enough for B to see A rejoining before it turns normal, on a loaded machine.
    static let rejoinDeadAfter = "5s"

    struct Daemon {
        let host: String
        let process: ChildProcess
        let url: String

        func stop(signal: Int32 = SIGKILL) {
            process.kill(signal: signal)
            _ = process.waitForExitBlocking(timeout: .seconds(20))
        }
    }

    static func start(
        _ host: String, pool: String, state: TempDir, token: TokenFile, fence: Bool,
        deadAfter: String = FastTiming.deadAfter
    ) async throws -> Daemon {
        var arguments = [
            "serve", "--host-ip", host, "--interval", FastTiming.interval, "--io-timeout", FastTiming.ioTimeout,
            "--dead-after", deadAfter, "--fence-action", fence ? "dry-run" : "none", "--log-level", "debug",
            "--state-dir", state.path, "--pool", "p1=\(pool)", "--libvirt-uri", "test:///default",
        ]
        if fence { arguments += fenceArguments }
        let process = try ChildProcess(
            executable: try kvmhaBinary(), arguments: arguments,
            environment: ["KVMHA_API_ADDRESS": host, "KVMHA_API_PORT": "0", "KVMHA_API_TOKEN_FILE": token.path],
            label: "kvmha \(host)")
        let line = try await process.waitForLine(matching: try .regex("API listening on http://"))
        let range = try #require(line.range(of: #"http://[0-9.]+:[0-9]+"#, options: .regularExpression))
        return Daemon(host: host, process: process, url: String(line[range]))
    }

    static func cli(_ arguments: [String], of daemon: Daemon, token: TokenFile) async throws -> CLIResult {
        try await runCLI(arguments + ["--server", daemon.url, "--token-file", token.path])
    }

    /// B's overall verdict on A, asked until `accept` holds (bounded).
    static func verdict(
        of peer: String, askedOf checker: Daemon, token: TokenFile, until accept: (String) -> Bool
    ) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + .seconds(40)
        var last: [String: Any] = [:]
        while ContinuousClock.now < deadline {
            let result = try await cli(["check-host", peer, "--json"], of: checker, token: token)
            last = (try? result.json()) ?? ["stdout": result.stdout]
            if let verdict = last[path: "overall", "verdict"] as? String, accept(verdict) { return last }
            try await Task.sleep(for: .milliseconds(200))  // the period of a bounded poll
        }
        throw HarnessError("timed out; last answer: \(last)")
    }

    @Test("maintenance: no fence with every pool frozen, peers answer maintenance (dead once it stops), kept across a restart; off: the usual rules")
    func maintenance() async throws {
        let backing = try TempDir(prefix: "kvmha-mode-pool")
        let mount = try FreezableMount(backing: backing.url)
        defer { mount.stop() }
        let tokens = try TempDir(prefix: "kvmha-mode-token")
        let token = try TokenFile.make(in: tokens, name: "token")
        let stateA = try TempDir(prefix: "kvmha-mode-state-a")
        let stateB = try TempDir(prefix: "kvmha-mode-state-b")
        var a = try await Self.start("127.0.0.1", pool: mount.mountpoint.path, state: stateA, token: token, fence: true)
        defer { a.stop() }
        let b = try await Self.start("127.0.0.2", pool: backing.path, state: stateB, token: token, fence: false)
        defer { b.stop() }
        _ = try await Self.verdict(of: "127.0.0.1", askedOf: b, token: token) { $0 == "alive" }

        let on = try await Self.cli(["maintenance", "on", "--reason", "kernel upgrade", "--json"], of: a, token: token)
        #expect(on.exitCode == 0, "\(on)")
        #expect(try on.json()["mode"] as? String == "maintenance")
        let seen = try await Self.verdict(of: "127.0.0.1", askedOf: b, token: token) { $0 == "maintenance" }
        #expect((seen[path: "overall", "reason"] as? String)?.contains("kernel upgrade") == true, "\(seen)")
        let health = try await Self.cli(["status", "--json"], of: a, token: token)
        #expect(try health.json()[path: "fencing", "state"] as? String == "disarmed", "\(health)")

        // Every pool frozen: well past fenceAfter + fenceDelay, and until B calls A dead, no fence.
        let mark = a.process.lineCount
        try mount.freeze()
        _ = try await Self.verdict(of: "127.0.0.1", askedOf: b, token: token) { $0 == "dead" }
        #expect(!FileManager.default.fileExists(atPath: stateA.path + "/fenced"))
        #expect(!a.process.lines(after: mark).contains { $0.contains("marker written") })
        try mount.thaw()
        _ = try await Self.verdict(of: "127.0.0.1", askedOf: b, token: token) { $0 == "maintenance" }

        // A clean restart keeps maintenance (and is no rejoin).
        a.stop(signal: SIGTERM)
        a = try await Self.start("127.0.0.1", pool: mount.mountpoint.path, state: stateA, token: token, fence: true)
        let after = try await Self.cli(["maintenance", "--json"], of: a, token: token)
        #expect(try after.json()["mode"] as? String == "maintenance", "\(after)")
        #expect(try after.json()["reason"] as? String == "kernel upgrade")
        _ = try await Self.verdict(of: "127.0.0.1", askedOf: b, token: token) { $0 == "maintenance" }

        // Off: alive again, armed again: every pool frozen → the dry-run fence fires.
        let off = try await Self.cli(["maintenance", "off"], of: a, token: token)
        #expect(off.exitCode == 0 && off.stdout.contains("normal"), "\(off)")
        _ = try await Self.verdict(of: "127.0.0.1", askedOf: b, token: token) { $0 == "alive" }
        try mount.freeze()
        try await a.process.waitForLine(containing: "dry run: marker written")
        try mount.thaw()
    }

    @Test("rejoin after a dry-run fence (rejoining for one deadAfter, then alive) and after an unclean stop")
    func rejoin() async throws {
        let backing = try TempDir(prefix: "kvmha-rejoin-pool")
        let mount = try FreezableMount(backing: backing.url)
        defer { mount.stop() }
        let tokens = try TempDir(prefix: "kvmha-rejoin-token")
        let token = try TokenFile.make(in: tokens, name: "token")
        let stateA = try TempDir(prefix: "kvmha-rejoin-state-a")
        let stateB = try TempDir(prefix: "kvmha-rejoin-state-b")
        var a = try await Self.start("127.0.0.1", pool: mount.mountpoint.path, state: stateA, token: token, fence: true, deadAfter: Self.rejoinDeadAfter)
        defer { a.stop() }
        let b = try await Self.start("127.0.0.2", pool: backing.path, state: stateB, token: token, fence: false, deadAfter: Self.rejoinDeadAfter)
        defer { b.stop() }
        _ = try await Self.verdict(of: "127.0.0.1", askedOf: b, token: token) { $0 == "alive" }

        try mount.freeze()
        try await a.process.waitForLine(containing: "dry run: marker written")
        try mount.thaw()
        a.stop(signal: SIGTERM)
        // B forgets A's last incarnation first, so that what it says next is about the new one.
        _ = try await Self.verdict(of: "127.0.0.1", askedOf: b, token: token) { $0 == "dead" }

        // Fenced: the next start rejoins, for one deadAfter, then says normal.
        a = try await Self.start("127.0.0.1", pool: mount.mountpoint.path, state: stateA, token: token, fence: true, deadAfter: Self.rejoinDeadAfter)
        let mode = try await Self.cli(["maintenance", "--json"], of: a, token: token)
        #expect(try mode.json()["mode"] as? String == "rejoining", "\(mode)")
        #expect(try mode.json()["rejoiningBecause"] as? String == "fenced")
        let rejoining = try await Self.verdict(of: "127.0.0.1", askedOf: b, token: token) { $0 != "dead" && $0 != "unknown" }
        #expect(rejoining[path: "overall", "verdict"] as? String == "rejoining", "\(rejoining)")
        let check = try await Self.cli(["check-host", "127.0.0.1"], of: b, token: token)
        #expect(check.exitCode == 2, "rejoining is not alive yet: \(check)")
        _ = try await Self.verdict(of: "127.0.0.1", askedOf: b, token: token) { $0 == "alive" }
        #expect(FileManager.default.fileExists(atPath: stateA.path + "/fenced.seen"))

        // Killed (an unclean stop): rejoining again, because of that.
        a.stop(signal: SIGKILL)
        a = try await Self.start("127.0.0.1", pool: mount.mountpoint.path, state: stateA, token: token, fence: true, deadAfter: Self.rejoinDeadAfter)
        let unclean = try await Self.cli(["maintenance", "--json"], of: a, token: token)
        #expect(try unclean.json()["mode"] as? String == "rejoining", "\(unclean)")
        #expect(try unclean.json()["rejoiningBecause"] as? String == "unclean stop")
        // A clean stop and start: normal at once.
        a.stop(signal: SIGTERM)
        a = try await Self.start("127.0.0.1", pool: mount.mountpoint.path, state: stateA, token: token, fence: true, deadAfter: Self.rejoinDeadAfter)
        let clean = try await Self.cli(["maintenance", "--json"], of: a, token: token)
        #expect(try clean.json()["mode"] as? String == "normal", "\(clean)")
    }
}
