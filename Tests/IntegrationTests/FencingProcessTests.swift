import AsyncHTTPClient
import Foundation
import HeartbeatCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A datagram socket standing in for systemd's notify socket.
final class FakeNotifySocket: @unchecked Sendable {
    // @unchecked: `fd` is fixed after init; reads happen from one test at a time.
    let path: String
    private let fd: Int32
    private let directory: TempDir

    init() throws {
        directory = try TempDir(prefix: "kvmha-notify")
        path = directory.path + "/notify"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw HarnessError("bind \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// Every datagram waiting now, without blocking.
    func drain() -> [String] {
        var messages: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count <= 0 { return messages }
            messages.append(String(decoding: buffer[0..<count], as: UTF8.self))
        }
    }

    /// Waits (polling the socket, bounded) for a datagram containing `text`; returns every datagram read.
    func waitFor(_ text: String, timeout: Duration = .seconds(30)) async throws -> [String] {
        let deadline = ContinuousClock.now + timeout
        var seen: [String] = []
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = await Task.detached { poll(&poller, 1, 200) }.value
            seen += drain()
            if seen.contains(where: { $0.contains(text) }) { return seen }
        }
        throw HarnessError("no notify datagram containing \(text) within \(timeout); got \(seen)")
    }
}

/// Self-fencing and systemd notification with real daemons (issue 6, Show 3 and 4).
@Suite(.serialized)
struct FencingProcessTests {
    /// fenceAfter + fenceDelay (1.2 s) < deadAfter (1.5 s), as the rule demands.
    static let fenceArguments = ["--fence-after", "900ms", "--fence-delay", "300ms"]

    @Test("READY=1 after the first beat, WATCHDOG=1 while beats land, none while every pool is frozen")
    func notifySocket() async throws {
        let notify = try FakeNotifySocket()
        let backing = try TempDir(prefix: "kvmha-pool")
        let mount = try FreezableMount(backing: backing.url)
        defer { mount.stop() }
        let daemon = try SidecarProcess.start(
            host: "127.0.0.1", pools: ["p1=\(mount.mountpoint.path)"], environment: ["NOTIFY_SOCKET": notify.path])
        defer { daemon.stop() }

        let first = try await notify.waitFor("READY=1")
        #expect(first.first?.contains("READY=1") == true, "READY comes first: \(first)")
        _ = try await notify.waitFor("WATCHDOG=1")

        let mark = daemon.process.lineCount
        try mount.freeze()
        try await daemon.process.waitForLine(containing: "not petting the systemd watchdog", after: mark)
        _ = notify.drain()  // sent before the daemon said it stopped petting
        let later = daemon.process.lineCount
        for _ in 0..<3 {
            try await daemon.process.waitForLine(containing: "not petting the systemd watchdog", after: daemon.process.lineCount)
        }
        #expect(!notify.drain().contains { $0.contains("WATCHDOG=1") }, "no pings while every pool is frozen")
        #expect(daemon.process.lines(after: later).filter { $0.contains("not petting") }.count >= 3)

        try mount.thaw()
        _ = try await notify.waitFor("WATCHDOG=1")
    }

    @Test("every pool frozen: the dry-run fence fires after fenceAfter, before a neighbour calls the host dead")
    func fenceBeforeNeighbourSaysDead() async throws {
        let backing = try TempDir(prefix: "kvmha-pool")
        let mount = try FreezableMount(backing: backing.url)
        defer { mount.stop() }
        let a = try SidecarProcess.start(
            host: "127.0.0.1", pools: ["p1=\(mount.mountpoint.path)"], fenceAction: "dry-run",
            extraArguments: Self.fenceArguments)
        let b = try SidecarProcess.start(host: "127.0.0.2", pools: ["p1=\(backing.path)"])
        defer { [a, b].forEach { $0.stop() } }
        try await b.process.waitForLine(containing: "peer 127.0.0.1 is now alive")
        let marker = a.stateDir.path + "/fenced"
        #expect(!FileManager.default.fileExists(atPath: marker))

        let bMark = b.process.lineCount
        try mount.freeze()
        try await a.process.waitForLine(containing: "dry run: marker written")
        // At that moment the neighbour has not called A dead yet…
        #expect(!b.process.lines(after: bMark).contains { $0.contains("peer 127.0.0.1 is now dead") })
        #expect(FileManager.default.fileExists(atPath: marker))
        // …and it does so afterwards, by the usual rule.
        try await b.process.waitForLine(containing: "peer 127.0.0.1 is now dead", after: bMark)
        #expect(a.process.lines().filter { $0.contains("dry run: marker written") }.count == 1, "fences once")
    }

    @Test("one pool frozen of two: an alert in the log, in health and in metrics; no fence")
    func onePoolOfTwoIsAnAlert() async throws {
        let backing = try TempDir(prefix: "kvmha-pool1")
        let mount = try FreezableMount(backing: backing.url)
        defer { mount.stop() }
        let second = try TempDir(prefix: "kvmha-pool2")
        let tokens = try TempDir(prefix: "kvmha-token")
        let token = try TokenFile.make(in: tokens, name: "token")
        let a = try SidecarProcess.start(
            host: "127.0.0.1", pools: ["p1=\(mount.mountpoint.path)", "p2=\(second.path)"], fenceAction: "dry-run",
            environment: [
                "KVMHA_API_ADDRESS": "127.0.0.1", "KVMHA_API_PORT": "0", "KVMHA_API_TOKEN_FILE": token.path,
            ],
            extraArguments: Self.fenceArguments)
        defer { a.stop() }
        let listening = try await a.process.waitForLine(matching: try .regex("API listening on http://"))
        let range = try #require(listening.range(of: #"http://[0-9.]+:[0-9]+"#, options: .regularExpression))
        let url = String(listening[range])
        try await a.waitForBeat(2)
        let healthy = try await runCLI(["status", "--json", "--server", url, "--token-file", token.path])
        #expect(try healthy.json()[path: "fencing", "state"] as? String == "healthy", "\(healthy)")
        let mark = a.process.lineCount
        try mount.freeze()
        let alert = try await a.process.waitForLine(containing: "alert: no beat on pool(s) p1", after: mark)
        #expect(alert.contains("no fencing"))
        // The alert is in health (and `kvmha status`) and in the metrics, not only in the log.
        let status = try await runCLI(["status", "--json", "--server", url, "--token-file", token.path])
        let fencing = try status.json()["fencing"] as? [String: Any]
        #expect(fencing?["state"] as? String == "alert", "\(status)")
        #expect(fencing?["alert"] as? Bool == true)
        #expect(fencing?["failingPools"] as? [String] == ["p1"])
        #expect(fencing?["action"] as? String == "dry-run")
        let text = try await runCLI(["status", "--server", url, "--token-file", token.path])
        #expect(text.stdout.contains("fencing: ALERT"), "\(text)")
        let metrics = try await Self.fetch(url + "/metrics", token: token.token)
        #expect(metrics.contains("kvmha_fence_alert 1"), "\(metrics)")
        #expect(metrics.contains(#"kvmha_fence_state{state="alert"} 1"#))
        #expect(metrics.contains("kvmha_fence_failing_pools 1"))
        // Well past fenceAfter + fenceDelay: still no fence.
        let failed = try await a.process.waitForLine(matching: .regex("beat [0-9]+ failed on pool p1"), after: mark)
        let number = Int(failed.split(separator: " ").drop { $0 != "beat" }.dropFirst().first ?? "") ?? 0
        try await a.process.waitForLine(containing: "beat \(number + 8) failed on pool p1", after: mark)
        #expect(!a.process.lines().contains { $0.contains("fence condition met") || $0.contains("fencing (") })
        #expect(!FileManager.default.fileExists(atPath: a.stateDir.path + "/fenced"))
        try mount.thaw()
        try await a.process.waitForLine(containing: "alert cleared", after: mark)
    }

    /// GET with the bearer token; the body as text.
    static func fetch(_ url: String, token: String) async throws -> String {
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        do {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            let response = try await client.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            try await client.shutdown()
            return String(decoding: body.readableBytesView, as: UTF8.self)
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    @Test("unsafe timing: start-up refused with an error naming the keys")
    func unsafeTimingIsRefused() async throws {
        let pool = try TempDir(prefix: "kvmha-pool")
        let process = try ChildProcess(
            executable: try kvmhaBinary(),
            arguments: [
                "serve", "--check-config", "--host-ip", "127.0.0.1", "--pool", "p1=\(pool.path)",
                "--fence-action", "reboot", "--fence-after", "25s", "--fence-delay", "5s", "--dead-after", "30s",
            ])
        let code = try await process.waitForExit()
        #expect(code == 78)
        let output = process.lines().joined(separator: "\n")
        #expect(output.contains("fenceAfter + fenceDelay") && output.contains("deadAfter"), "\(output)")
    }
}
