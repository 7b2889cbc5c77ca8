import Foundation
import HeartbeatCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Three `kvmha serve` processes sharing one pool directory (issue 2, Show 3 and 4).
@Suite(.serialized)
struct PeerLivenessProcessTests {
    @Test("kill -9 of one host: the others call it dead after deadAfter, not before; restart: alive again")
    func killedHostIsDeadAfterDeadAfter() async throws {
        let pool = try TempDir(prefix: "kvmha-pool")
        let spec = "p1=\(pool.path)"
        let a = try SidecarProcess.start(host: "127.0.0.1", pools: [spec])
        let b = try SidecarProcess.start(host: "127.0.0.2", pools: [spec])
        let c = try SidecarProcess.start(host: "127.0.0.3", pools: [spec])
        defer { [a, b, c].forEach { $0.stop() } }

        for checker in [a, c] {
            try await checker.process.waitForLine(containing: "peer 127.0.0.2 is now alive")
        }
        let markA = a.process.lineCount
        let markC = c.process.lineCount
        b.process.kill(signal: SIGKILL)
        let killedAt = ContinuousClock.now
        _ = try await b.process.waitForExit()

        for (checker, mark) in [(a, markA), (c, markC)] {
            let line = try await checker.process.waitForLine(containing: "peer 127.0.0.2 is now dead", after: mark)
            let declaredAfter = killedAt.duration(to: .now).seconds
            // The evidence carried by the verdict: silence on the checker's own clock, at least deadAfter.
            let silence = try #require(Self.metadata("secondsSinceChange", in: line))
            #expect(silence >= FastTiming.deadAfterSeconds, "\(line)")
            // Not before: the last change the checker saw was at most one write + one scan interval before the kill.
            #expect(declaredAfter >= FastTiming.deadAfterSeconds - 2 * FastTiming.intervalSeconds, "\(line)")
            // Nothing in between said dead, and the verdict did not flap.
            #expect(checker.process.lines(after: mark).filter { $0.contains("peer 127.0.0.2 is now") }.count == 1)
        }

        // The one-shot checker reading the pool directly agrees.
        let check = try await checkHost("127.0.0.2", pools: [spec])
        #expect(check.exitCode == 1, "\(check.output)")
        #expect(check.verdict == "dead")

        // Back again: alive, by change (a new incarnation).
        let b2 = try SidecarProcess.start(host: "127.0.0.2", pools: [spec])
        defer { b2.stop() }
        for (checker, mark) in [(a, markA), (c, markC)] {
            try await checker.process.waitForLine(containing: "peer 127.0.0.2 is now alive", after: mark)
        }
        let again = try await checkHost("127.0.0.2", pools: [spec])
        #expect(again.exitCode == 0, "\(again.output)")
        #expect(again.verdict == "alive")
    }

    @Test("clock skew of ±1 h: no false dead; the wall-clock age shows the skew")
    func clockSkewCausesNoFalseDead() async throws {
        let pool = try TempDir(prefix: "kvmha-pool")
        let spec = "p1=\(pool.path)"
        let a = try SidecarProcess.start(host: "127.0.0.1", pools: [spec])
        let ahead = try SidecarProcess.start(host: "127.0.0.2", pools: [spec], fakeTime: "+1h")
        let behind = try SidecarProcess.start(host: "127.0.0.3", pools: [spec], fakeTime: "-1h")
        defer { [a, ahead, behind].forEach { $0.stop() } }

        try await a.process.waitForLine(containing: "peer 127.0.0.2 is now alive")
        try await a.process.waitForLine(containing: "peer 127.0.0.3 is now alive")
        try await ahead.process.waitForLine(containing: "peer 127.0.0.3 is now alive")
        try await behind.process.waitForLine(containing: "peer 127.0.0.2 is now alive")
        // Run for well over deadAfter (beats are counted, not slept for).
        let beatsPastDeadAfter = Int((FastTiming.deadAfterSeconds * 3) / FastTiming.intervalSeconds) + 1
        try await a.waitForBeat(beatsPastDeadAfter)

        // Each daemon's verdict on each peer went unknown (watching) → alive, and nothing else.
        for daemon in [a, ahead, behind] {
            for peer in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] where peer != daemon.host {
                let changes = daemon.process.lines().filter { $0.contains("peer \(peer) is now") }
                let verdicts = changes.compactMap { line in
                    line.range(of: "is now ").map { String(line[$0.upperBound...].prefix { $0 != ":" }) }
                }
                #expect(verdicts == ["unknown", "alive"], "\(daemon.host) on \(peer): \(changes)")
            }
        }
        // Seen from an unskewed checker: the +1 h host's record looks 1 h in the future, the −1 h one 1 h old.
        let aheadCheck = try await checkHost("127.0.0.2", pools: [spec])
        let behindCheck = try await checkHost("127.0.0.3", pools: [spec])
        #expect(aheadCheck.verdict == "alive", "\(aheadCheck.output)")
        #expect(behindCheck.verdict == "alive", "\(behindCheck.output)")
        let aheadAge = try #require((aheadCheck.json["overall"] as? [String: Any])?["wallClockAgeSeconds"] as? Double)
        let behindAge = try #require((behindCheck.json["overall"] as? [String: Any])?["wallClockAgeSeconds"] as? Double)
        #expect(abs(aheadAge + 3600) < 60, "wall-clock age \(aheadAge)")
        #expect(abs(behindAge - 3600) < 60, "wall-clock age \(behindAge)")
    }

    static func metadata(_ key: String, in line: String) -> Double? {
        guard let range = line.range(of: "\(key)=") else { return nil }
        let value = line[range.upperBound...].prefix { $0.isNumber || $0 == "." || $0 == "-" }
        return Double(value)
    }
}
