import AsyncHTTPClient
import Foundation
import HeartbeatCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Three `kvmha serve` processes on loopback sharing one pool, each with its own API port and token; the
/// `kvmha` client commands against each (issue 5, Show 2).
@Suite(.serialized)
struct APIProcessTests {
    static let hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]

    @Test(
        "three daemons: status, peers, check-host and the VM lists through the API; a killed host is dead, its list stays"
    )
    func threeDaemons() async throws {
        let pool = try TempDir(prefix: "kvmha-api-pool")
        let tokens = try TempDir(prefix: "kvmha-api-tokens")
        var daemons: [APIDaemon] = []
        defer { for daemon in daemons { daemon.stop() } }
        for host in Self.hosts {
            let token = try TokenFile.make(in: tokens, name: "token-\(host)")
            daemons.append(try await APIDaemon.start(host: host, pools: ["p1=\(pool.path)"], token: token))
        }
        #expect(Set(daemons.map(\.url)).count == 3, "each on its own address and port: \(daemons.map(\.url))")
        for daemon in daemons {
            for peer in Self.hosts where peer != daemon.host {
                try await daemon.process.waitForLine(containing: "peer \(peer) is now alive")
            }
        }

        for daemon in daemons {
            let status = try await daemon.cli(["status", "--json"])
            #expect(status.exitCode == 0, "\(status)")
            let health = try status.json()
            #expect(health["host"] as? String == daemon.host)
            #expect(health["status"] as? String == "ok")
            #expect(health[path: "libvirt", "connected"] as? Bool == true)

            let human = try await daemon.cli(["status"])
            #expect(human.exitCode == 0)
            #expect(human.stdout.contains("on \(daemon.host): OK"), "\(human)")

            let peers = try await daemon.cli(["peers", "--json"])
            #expect(peers.exitCode == 0, "\(peers)")
            let list = try peers.json()["peers"] as? [[String: Any]] ?? []
            #expect(list.compactMap { $0["host"] as? String } == Self.hosts.filter { $0 != daemon.host })
            #expect(list.allSatisfy { ($0["overall"] as? [String: Any])?["verdict"] as? String == "alive" })

            for peer in Self.hosts where peer != daemon.host {
                let check = try await daemon.cli(["check-host", peer, "--json"])
                #expect(check.exitCode == 0, "\(check)")
                #expect(try check.json()[path: "overall", "verdict"] as? String == "alive")
                let human = try await daemon.cli(["check-host", peer])
                #expect(human.exitCode == 0)
                #expect(human.stdout.hasPrefix("host \(peer): ALIVE"), "\(human)")
            }
            // A host nobody has seen: unknown, exit 2.
            let stranger = try await daemon.cli(["check-host", "127.0.0.99"])
            #expect(stranger.exitCode == 2, "\(stranger)")
        }

        // `kvmha vms` through the daemon: the watcher's list of libvirt's test driver (one running VM, "test").
        let vms = try await daemons[0].cli(["vms", "--json"])
        #expect(vms.exitCode == 0, "\(vms)")
        #expect(try vms.jsonArray().compactMap { $0["name"] as? String } == ["test"], "\(vms)")
        #expect(try vms.jsonArray().first?["state"] as? String == "running")
        let vmsTable = try await daemons[0].cli(["vms"])
        #expect(vmsTable.stdout.contains("test") && vmsTable.stdout.contains("running"), "\(vmsTable)")

        // The local VM list and a peer's published one, over HTTP.
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        do {
            let local = try await Self.get(client, daemons[0], "/v1/vms")
            #expect((local["vms"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["test"], "\(local)")
            let published = try await Self.get(client, daemons[0], "/v1/peers/127.0.0.2/vms")
            #expect(
                (published["vms"] as? [[String: Any]])?.compactMap { $0["state"] as? String } == ["running"],
                "\(published)"
            )
            try await client.shutdown()
        } catch {
            try await client.shutdown()
            throw error
        }

        // kill -9 of 127.0.0.2: the others call it dead; its last list is still served.
        let mark = daemons[0].process.lineCount
        daemons[1].process.kill(signal: SIGKILL)
        _ = try await daemons[1].process.waitForExit()
        try await daemons[0].process.waitForLine(containing: "peer 127.0.0.2 is now dead", after: mark)
        let dead = try await daemons[0].cli(["check-host", "127.0.0.2", "--json"])
        #expect(dead.exitCode == 1, "\(dead)")
        #expect(try dead.json()[path: "overall", "verdict"] as? String == "dead")
        let afterDeath = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        do {
            let published = try await Self.get(afterDeath, daemons[0], "/v1/peers/127.0.0.2/vms")
            #expect(published[path: "verdict", "verdict"] as? String == "dead")
            #expect((published["vms"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["test"])
            // Reconcile the dead host: its running VM is believed running on a dead host.
            let reconciliation = try await Self.post(
                afterDeath,
                daemons[0],
                "/v1/reconcile",
                body: #"{"host":"127.0.0.2","vms":[{"name":"test","state":"Running"}]}"#
            )
            let kinds = (reconciliation["mismatches"] as? [[String: Any]])?.compactMap { $0["kind"] as? String }
            // The VM of the same name runs on the live hosts (they all use the same test driver).
            #expect(kinds == ["running-on-another-host"], "\(reconciliation)")
            try await afterDeath.shutdown()
        } catch {
            try await afterDeath.shutdown()
            throw error
        }
    }

    @Test(
        "the client's exit codes: refused token 77, no daemon 69, usage 64; the daemon refuses a token file others can read"
    )
    func errors() async throws {
        let pool = try TempDir(prefix: "kvmha-api-pool")
        let tokens = try TempDir(prefix: "kvmha-api-tokens")
        let token = try TokenFile.make(in: tokens, name: "token")
        let daemon = try await APIDaemon.start(
            host: "127.0.0.1",
            pools: ["p1=\(pool.path)"],
            token: token,
            timing: APIDaemon.defaultTiming
        )
        defer { daemon.stop() }

        let other = try TokenFile.make(in: tokens, name: "other")
        let refused = try await runCLI(["status", "--server", daemon.url, "--token-file", other.path])
        #expect(refused.exitCode == 77, "\(refused)")
        #expect(refused.stderr.contains("refused the API token"), "\(refused)")

        // A port nobody listens on: bind one, close it, use it.
        let closed = try await runCLI([
            "status", "--server", "http://127.0.0.1:\(Self.freePort())", "--token-file", token.path, "--timeout", "2s",
        ])
        #expect(closed.exitCode == 69, "\(closed)")

        let badAddress = try await daemon.cli(["check-host", "..%2F..%2Fetc"])
        #expect(badAddress.exitCode == 64, "\(badAddress)")
        let badVolume = try await daemon.cli([
            "activity", "127.0.0.5", "--pool", "p1", "--volumes", "../etc/passwd", "--suspect-time", "1",
        ])
        #expect(badVolume.exitCode == 64, "\(badVolume)")
        let unknownPool = try await daemon.cli([
            "activity", "127.0.0.5", "--pool", "p9", "--volumes", "a", "--suspect-time", "1",
        ])
        #expect(unknownPool.exitCode == 64, "\(unknownPool)")
        #expect(unknownPool.stderr.contains("does not use a pool p9"), "\(unknownPool)")

        // The daemon itself: a token file readable by others stops it, naming the file.
        let readable = try TokenFile.make(in: tokens, name: "readable", mode: 0o644)
        let state = try TempDir(prefix: "kvmha-api-state")
        let refusedDaemon = try ChildProcess(
            executable: try kvmhaBinary(),
            arguments: [
                "serve", "--host-ip", "127.0.0.2", "--pool", "p1=\(pool.path)", "--state-dir", state.path,
                "--fence-action", "none",
            ],
            environment: ["KVMHA_API_TOKEN_FILE": readable.path, "KVMHA_API_PORT": "0"],
            label: "kvmha refused"
        )
        defer { refusedDaemon.kill(signal: SIGKILL) }
        let code = try await refusedDaemon.waitForExit()
        #expect(code == 78, "\(refusedDaemon.transcript)")
        #expect(
            refusedDaemon.lines().contains { $0.contains(readable.path) && $0.contains("chmod 600") },
            "\(refusedDaemon.transcript)"
        )
    }

    static func get(_ client: HTTPClient, _ daemon: APIDaemon, _ path: String) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: daemon.url + path)
        request.headers.add(name: "Authorization", value: "Bearer \(daemon.token.token)")
        return try await send(client, request)
    }

    static func post(
        _ client: HTTPClient,
        _ daemon: APIDaemon,
        _ path: String,
        body: String
    ) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: daemon.url + path)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(daemon.token.token)")
        request.body = .bytes(Array(body.utf8))
        return try await send(client, request)
    }

    private static func send(_ client: HTTPClient, _ request: HTTPClientRequest) async throws -> [String: Any] {
        let response = try await client.execute(request, timeout: .seconds(10))
        var body = try await response.body.collect(upTo: 1 << 20)
        let bytes = body.readBytes(length: body.readableBytes) ?? []
        guard response.status.code == 200 else {
            throw HarnessError("\(request.url): \(response.status.code) \(String(decoding: bytes, as: UTF8.self))")
        }
        return try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] ?? [:]
    }

    /// A loopback TCP port that was free a moment ago.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw HarnessError("bind: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
