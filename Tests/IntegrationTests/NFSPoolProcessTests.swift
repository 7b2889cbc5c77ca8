import Foundation
import HeartbeatCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Two `kvmha serve` processes on one pool served by nfs-ganesha (issue 4, Show 2 and 3): one reaches it only
/// through libnfs (`url`), the other through the exported folder (`path`, standing in for the kernel mount, which
/// these machines cannot make).
@Suite(.serialized)
struct NFSPoolProcessTests {
    @Test("url-only and path-only daemons judge each other alive; a frozen server: unreachable, still serving, SIGTERM prompt; thaw: beats resume")
    func libnfsDaemonSurvivesAFrozenServer() async throws {
        try await GaneshaHarness.with(v3: true, leaseSeconds: 2) { server in
            let url = try #require(server.urlV3)
            let a = try SidecarProcess.start(host: "127.0.0.1", pools: ["p1=\(url)"])
            let b = try SidecarProcess.start(host: "127.0.0.2", pools: ["p1=\(server.exportDirectory)"])
            defer { [a, b].forEach { $0.stop() } }

            try await a.process.waitForLine(containing: "peer 127.0.0.2 is now alive")
            try await b.process.waitForLine(containing: "peer 127.0.0.1 is now alive")
            // A's beats are on the server's disk, where B read them.
            #expect(readRecord(pool: URL(fileURLWithPath: server.exportDirectory), host: "127.0.0.1") != nil)

            // Frozen for longer than the lease: A's pool is unreachable; A keeps running and beating (and failing).
            let mark = a.process.lineCount
            try await server.freeze()
            try await a.process.waitForLine(matching: .regex("pool=p1 .*pool unreachable"), after: mark)
            let failed = try await a.process.waitForLine(matching: .regex("beat [0-9]+ failed on pool p1"), after: mark)
            let firstFailed = try #require(Self.beatNumber(in: failed))
            // Beats keep being attempted on time while the server stays frozen past its 2 s lease.
            try await a.process.waitForLine(containing: "beat \(firstFailed + 10) failed on pool p1", after: mark)
            #expect(a.process.isRunning)

            // Thawed: beats land again within two intervals (the beat in flight at the thaw may still fail).
            let thawMark = a.process.lineCount
            let lastFailedBeforeThaw = a.process.lines(after: mark).compactMap { line in
                line.contains("failed on pool p1") ? Self.beatNumber(in: line) : nil
            }.max() ?? firstFailed
            try await server.thaw()
            let written = try await a.process.waitForLine(matching: .regex("beat [0-9]+ written to 1 pool"), after: thawMark)
            let firstWritten = try #require(Self.beatNumber(in: written))
            #expect(firstWritten <= lastFailedBeforeThaw + 3, "failed up to beat \(lastFailedBeforeThaw), written again at \(firstWritten)")
            try await a.process.waitForLine(matching: .regex("pool=p1 .*pool reachable"), after: thawMark)
            try await b.process.waitForLine(containing: "peer 127.0.0.1 is now alive", after: 0)

            // Frozen again: SIGTERM ends A promptly, although its pool's server does not answer.
            let secondMark = a.process.lineCount
            try await server.freeze()
            try await a.process.waitForLine(matching: .regex("beat [0-9]+ failed on pool p1"), after: secondMark)
            a.process.kill(signal: SIGTERM)
            let status = try await a.process.waitForExitStatus(timeout: .seconds(10))
            #expect(status == .exited(0), "\(status)")
            try await server.thaw()
        }
    }

    static func beatNumber(in line: String) -> Int? {
        guard let range = line.range(of: #"beat [0-9]+ "#, options: .regularExpression) else { return nil }
        return Int(line[range].dropFirst("beat ".count).dropLast())
    }
}
