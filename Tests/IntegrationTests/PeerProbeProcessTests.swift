import Foundation
import HeartbeatCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Two network namespaces of the test's own, joined by a veth pair: the only way to cut the network between
/// two sidecars for real while both keep their storage (the pool is a directory, which namespaces share).
/// Every address exists only inside them, and every client the test runs is started inside one.
struct NamespacePair {
    let a: String
    let b: String
    let addressA = "10.251.7.1"
    let addressB = "10.251.7.2"
    private let ip: URL

    static func make() throws -> NamespacePair {
        guard let ip = ChildProcess.findExecutable("ip") else { throw HarnessError("needs ip (iproute2)") }
        let suffix = "\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        let pair = NamespacePair(a: "kvmha-pa-\(suffix)", b: "kvmha-pb-\(suffix)", ip: ip)
        do {
            try pair.ip(["netns", "add", pair.a])
            try pair.ip(["netns", "add", pair.b])
            try pair.ip(["-n", pair.a, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", pair.b])
            try pair.ip(["-n", pair.a, "addr", "add", "\(pair.addressA)/24", "dev", "veth-a"])
            try pair.ip(["-n", pair.b, "addr", "add", "\(pair.addressB)/24", "dev", "veth-b"])
            for (namespace, link) in [(pair.a, "veth-a"), (pair.b, "veth-b")] {
                try pair.ip(["-n", namespace, "link", "set", "lo", "up"])
                try pair.ip(["-n", namespace, "link", "set", link, "up"])
            }
        } catch {
            pair.remove()
            throw error
        }
        return pair
    }

    private init(a: String, b: String, ip: URL) {
        self.a = a
        self.b = b
        self.ip = ip
    }

    /// B's end of the link down: nothing passes between the namespaces any more.
    func cut() throws { try ip(["-n", b, "link", "set", "veth-b", "down"]) }
    func heal() throws { try ip(["-n", b, "link", "set", "veth-b", "up"]) }

    func remove() {
        _ = try? ChildProcess.run(ip, ["netns", "del", a])
        _ = try? ChildProcess.run(ip, ["netns", "del", b])
    }

    /// `ip netns exec NAMESPACE executable arguments…` (ip execs the program: the pid is the program's).
    func spawn(in namespace: String, _ executable: URL, _ arguments: [String], environment: [String: String] = [:], label: String)
        throws -> ChildProcess
    {
        try ChildProcess(
            executable: ip, arguments: ["netns", "exec", namespace, executable.path] + arguments, environment: environment,
            label: label)
    }

    private func ip(_ arguments: [String]) throws {
        let (status, lines) = try ChildProcess.run(ip, arguments)
        guard status == .exited(0) else {
            throw HarnessError("ip \(arguments.joined(separator: " ")): \(String(describing: status)) \(lines.joined(separator: "\n"))")
        }
    }
}

/// `peerProbe`: CheckOnHost tells a cut network from a dead host, and a host cut from storage from one that
/// is off (issue 8 step 5, issue 9 Show 2), with two sidecars in namespaces sharing one pool.
@Suite(.serialized)
struct PeerProbeProcessTests {
    static let port = "7733"

    struct Host {
        let address: String
        let namespace: String
        let process: ChildProcess
        let state: TempDir

        func stop() {
            process.kill(signal: SIGKILL)
            _ = process.waitForExitBlocking(timeout: .seconds(10))
        }
    }

    static func start(_ address: String, in namespace: String, pool: String, token: TokenFile, pair: NamespacePair) throws
        -> Host
    {
        let state = try TempDir(prefix: "kvmha-probe-state")
        let arguments =
            ["serve", "--host-ip", address] + APIDaemon.moderateTiming + [
                "--fence-action", "none", "--log-level", "debug", "--state-dir", state.path, "--libvirt-uri",
                "test:///default", "--pool", "p1=\(pool)", "--peer-probe",
            ]
        let process = try pair.spawn(
            in: namespace, try kvmhaBinary(), arguments,
            environment: ["KVMHA_API_ADDRESS": address, "KVMHA_API_PORT": port, "KVMHA_API_TOKEN_FILE": token.path],
            label: "kvmha \(address)")
        return Host(address: address, namespace: namespace, process: process, state: state)
    }

    /// `kvmha check-host PEER --json` asked of `host`'s daemon, from inside `host`'s namespace.
    static func checkHost(_ peer: String, askedOf host: Host, token: TokenFile, pair: NamespacePair) async throws
        -> [String: Any]
    {
        let process = try pair.spawn(
            in: host.namespace, try kvmhaBinary(),
            ["check-host", peer, "--json", "--server", "http://\(host.address):\(port)", "--token-file", token.path],
            label: "check-host \(peer)")
        let code = try await process.waitForExit(timeout: .seconds(30))
        let text = process.outputLines().filter { $0.source == .stdout }.map(\.text).joined(separator: "\n")
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            return ["exitCode": code, "stdout": text]
        }
        return object
    }

    /// Asks until `condition` holds or `timeout` passes; returns the last answer.
    static func waitFor(
        _ what: String, timeout: Duration = .seconds(40), _ ask: () async throws -> [String: Any],
        until condition: ([String: Any]) -> Bool
    ) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        var last: [String: Any] = [:]
        while ContinuousClock.now < deadline {
            last = try await ask()
            if condition(last) { return last }
            try await Task.sleep(for: .milliseconds(250))  // polling period of a bounded poll, not a synchronisation
        }
        throw HarnessError("timed out waiting for \(what); last answer: \(last)")
    }

    @Test("cut network: alive with a network note; frozen storage with the API up: isolated; sidecar killed: refused")
    func networkAndStorageAreToldApart() async throws {
        let pair = try NamespacePair.make()
        defer { pair.remove() }
        let backing = try TempDir(prefix: "kvmha-probe-pool")
        let mount = try FreezableMount(backing: backing.url)
        defer { mount.stop() }
        let tokens = try TempDir(prefix: "kvmha-probe-token")
        let token = try TokenFile.make(in: tokens, name: "token")
        // A reaches the pool directly; B through the FUSE mount that the test can freeze for B alone.
        let a = try Self.start(pair.addressA, in: pair.a, pool: backing.path, token: token, pair: pair)
        defer { a.stop() }
        let b = try Self.start(pair.addressB, in: pair.b, pool: mount.mountpoint.path, token: token, pair: pair)
        defer { b.stop() }
        let askA = { try await Self.checkHost(pair.addressB, askedOf: a, token: token, pair: pair) }

        let steady = try await Self.waitFor("B alive and reachable", askA) {
            $0[path: "overall", "verdict"] as? String == "alive" && $0[path: "api", "state"] as? String == "reachable"
        }
        #expect((steady["notes"] as? [String]) == [], "\(steady)")

        // The link between the namespaces goes down; B keeps writing to the pool.
        try pair.cut()
        let cut = try await Self.waitFor("B unreachable, still alive", askA) {
            $0[path: "api", "state"] as? String == "unreachable"
        }
        #expect(cut[path: "overall", "verdict"] as? String == "alive", "no false dead: \(cut)")
        #expect((cut["notes"] as? [String])?.first?.hasPrefix("network cut") == true, "\(cut)")
        #expect(cut[path: "api", "checkedMs"] is Int)
        // Well past deadAfter (3s), B is still alive by storage.
        try await b.process.waitForLine(containing: "peer \(pair.addressA) API port \(Self.port) is now unreachable")
        let later = try await Self.waitFor("a few more beats of B", askA) {
            (($0[path: "overall", "secondsObserved"] as? Double) ?? 0) > 4
        }
        #expect(later[path: "overall", "verdict"] as? String == "alive", "\(later)")
        try pair.heal()
        _ = try await Self.waitFor("B reachable again", askA) { $0[path: "api", "state"] as? String == "reachable" }

        // B's storage freezes, its API keeps answering: dead by storage, answered `isolated`, and the note says so.
        try mount.freeze()
        let isolated = try await Self.waitFor("B isolated: dead by storage, API reachable", askA) {
            $0[path: "overall", "verdict"] as? String == "isolated"
        }
        #expect(isolated[path: "overall", "reasonCode"] as? String == "isolated", "\(isolated)")
        #expect(isolated[path: "api", "state"] as? String == "reachable", "\(isolated)")
        #expect((isolated["notes"] as? [String])?.first?.hasPrefix("isolated from storage") == true, "\(isolated)")
        try mount.thaw()
        _ = try await Self.waitFor("B alive again", askA) { $0[path: "overall", "verdict"] as? String == "alive" }

        // B's sidecar dies, its namespace (the "host") stays up: refused, and the note says so.
        b.stop()
        let refused = try await Self.waitFor("B dead, refused", askA) {
            $0[path: "overall", "verdict"] as? String == "dead" && $0[path: "api", "state"] as? String == "refused"
        }
        #expect((refused["notes"] as? [String])?.first?.contains("host is up with its sidecar down") == true, "\(refused)")
    }
}
