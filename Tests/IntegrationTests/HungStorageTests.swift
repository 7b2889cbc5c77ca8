import Foundation
import HeartbeatCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A pool whose storage hangs (a frozen FUSE mount standing in for a hard NFS mount whose server stopped
/// answering) while another pool stays healthy (issue 2, Show 5).
@Suite(.serialized)
struct HungStorageTests {
    @Test("frozen pool: unreachable within ioTimeout, checker says unknown, other pool keeps beating, threads bounded, recovery")
    func frozenPool() async throws {
        let shared = try TempDir(prefix: "kvmha-pool1")
        let mount = try FreezableMount(backing: shared.url)
        defer { mount.stop() }
        let second = try TempDir(prefix: "kvmha-pool2")

        // A reaches pool 1 through the freezable mount; B reaches the same files directly, so only A hangs.
        let a = try SidecarProcess.start(host: "127.0.0.1", pools: ["p1=\(mount.mountpoint.path)", "p2=\(second.path)"])
        let b = try SidecarProcess.start(host: "127.0.0.2", pools: ["p1=\(shared.path)", "p2=\(second.path)"])
        defer { [a, b].forEach { $0.stop() } }
        try await a.process.waitForLine(containing: "peer 127.0.0.2 is now alive")
        try await b.process.waitForLine(containing: "peer 127.0.0.1 is now alive")
        let threadsBefore = try #require(threadCount(of: a.process.pid))

        let mark = a.process.lineCount
        let bMark = b.process.lineCount
        try mount.freeze()
        let unreachable = try await a.process.waitForLine(matching: .regex("pool=p1 .*pool unreachable"), after: mark)
        // The call was abandoned at its deadline (ioTimeout), not left to hang.
        #expect(unreachable.contains("did not return within \(FastTiming.ioTimeout)") || unreachable.contains("blocked"), "\(unreachable)")

        // A checker whose own storage is frozen says unknown, never dead.
        let check = try await checkHost("127.0.0.2", pools: ["p1=\(mount.mountpoint.path)"], waitForExit: false)
        #expect(check.verdict == "unknown", "\(check.output)")
        #expect(check.reasonCode == "own-storage-failing", "\(check.output)")

        // The healthy pool keeps beating on time: round N reports p1's failure only after p2 took beat N, so
        // p2's record is at least that far along whenever the line is seen.
        func beatNumber(_ line: String) throws -> UInt64 {
            try #require(UInt64(line.split(separator: " ").drop { $0 != "beat" }.dropFirst().first ?? ""))
        }
        let firstFailed = try beatNumber(
            try await a.process.waitForLine(matching: .regex("beat [0-9]+ failed on pool p1"), after: mark))
        #expect(try #require(readRecord(pool: second.url, host: "127.0.0.1")).sequence >= firstFailed)
        let threadsEarly = try #require(threadCount(of: a.process.pid))
        let beatsToWait = UInt64(2 * FastTiming.deadAfterSeconds / FastTiming.intervalSeconds)
        try await a.process.waitForLine(containing: "beat \(firstFailed + beatsToWait) failed on pool p1", after: mark)
        #expect(try #require(readRecord(pool: second.url, host: "127.0.0.1")).sequence >= firstFailed + beatsToWait)

        // At most one thread per pool stuck: the thread count does not grow while the freeze lasts.
        let threadsLate = try #require(threadCount(of: a.process.pid))
        #expect(threadsLate <= threadsEarly + 1, "threads: before \(threadsBefore), early \(threadsEarly), late \(threadsLate)")
        #expect(threadsEarly <= threadsBefore + 3, "threads: before \(threadsBefore), early \(threadsEarly)")

        // Nobody was called dead: B still sees A through pool 2, A still sees B through pool 2.
        #expect(!b.process.lines(after: bMark).contains { $0.contains("peer 127.0.0.1 is now dead") })
        #expect(!a.process.lines(after: mark).contains { $0.contains("peer 127.0.0.2 is now dead") })

        // Thaw: the pool recovers by itself and beats land on both pools again.
        let thawMark = a.process.lineCount
        try mount.thaw()
        try await a.process.waitForLine(matching: .regex("pool=p1 .*pool reachable"), after: thawMark)
        try await a.process.waitForLine(matching: .regex("beat [0-9]+ written to 2 pool"), after: thawMark)
        #expect(a.process.isRunning)
    }
}
