import Foundation
import HeartbeatCore
import Logging
import NFS
import Sidecar
import Testing

/// A pool reached both through a mounted directory (`path`; here the exported folder itself) and through libnfs
/// (`url`): a beat counts when either path lands it, reads go to the path that works, the health shows each path.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct TwoPathPoolTests {
    static let ioTimeout: Duration = .seconds(2)

    @Test func aBeatCountsWhenEitherPathLandsItAndTheHealthShowsEachPath() async throws {
        try await GaneshaServer.with(v3: true, leaseSeconds: 2) { server in
            let url = try server.url(.v3)
            let export = server.exportDirectory
            let pool = Pool(
                id: "p1",
                accesses: [
                    PoolAccess(kind: .path, location: export) { DirectoryPoolFiles(root: export) },
                    PoolAccess(kind: .url, location: url.description) { NFSPoolFiles(url: url, ioTimeout: Self.ioTimeout) },
                ],
                ioTimeout: Self.ioTimeout, logger: Self.logger)
            defer { pool.stop() }
            let writer = BeatWriter(identity: Self.identity, pools: [pool], timing: Self.timing, logger: Self.logger)

            // Both paths write (each with its own temporary file) and both are reachable.
            #expect(await writer.beatOnce().failed.isEmpty)
            #expect(await writer.beatOnce().failed.isEmpty)
            var health = pool.health
            #expect(health.reachable)
            #expect(health.paths.map(\.kind) == [.path, .url])
            #expect(health.paths.allSatisfy { $0.reachable }, "\(health.paths)")
            #expect(pool.location == export)

            // The server frozen: the url path fails, the mount path carries the beat; the pool stays reachable.
            try await server.freeze()
            #expect(await writer.beatOnce().failed.isEmpty)
            health = pool.health
            #expect(health.reachable)
            #expect(health.paths[0].reachable)
            #expect(!health.paths[1].reachable)
            #expect(health.paths[1].lastError != nil)
            // Reads go to the path that works, so they answer although the server does not.
            let names = try await pool.call("list") { files throws(PoolIOError) in
                try files.list(PoolLayout.recordFolder).map(\.name)
            }
            #expect(names.contains(PoolLayout.recordFileName(Self.identity.address)))
            try await server.thaw()

            // Thawed: both paths again, and no temporary file of either path is left behind.
            #expect(await writer.beatOnce().failed.isEmpty)
            #expect(await writer.beatOnce().failed.isEmpty)
            #expect(pool.health.paths.allSatisfy { $0.reachable }, "\(pool.health.paths)")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: "\(export)/\(PoolLayout.recordFolder)")
                .filter { $0.hasPrefix(".") }
            #expect(leftovers.isEmpty, "\(leftovers)")
        }
    }

    @Test func whenTheMountFailsTheURLCarriesBeatsAndReads() async throws {
        try await GaneshaServer.with(v3: true) { server in
            let url = try server.url(.v3)
            let missing = "/nonexistent-kvmha-mount-\(getpid())"
            let pool = Pool(
                id: "p1",
                accesses: [
                    PoolAccess(kind: .path, location: missing) { DirectoryPoolFiles(root: missing) },
                    PoolAccess(kind: .url, location: url.description) { NFSPoolFiles(url: url, ioTimeout: Self.ioTimeout) },
                ],
                ioTimeout: Self.ioTimeout, logger: Self.logger)
            defer { pool.stop() }
            let writer = BeatWriter(identity: Self.identity, pools: [pool], timing: Self.timing, logger: Self.logger)

            #expect(await writer.beatOnce().failed.isEmpty)
            let health = pool.health
            #expect(health.reachable)
            #expect(!health.paths[0].reachable)
            #expect(health.paths[1].reachable)
            let read = try await pool.call("read") { files throws(PoolIOError) in
                try files.read(PoolLayout.record(Self.identity.address), maxBytes: RecordCodec.maxBytes)
            }
            guard case .bytes(let bytes) = read else {
                Issue.record("read \(read)")
                return
            }
            #expect(try RecordCodec.decode(bytes, expectedHost: Self.identity.address).get().sequence == 1)
        }
    }

    @Test func aPoolIsUnreachableOnlyWhenEveryPathFails() async throws {
        let pool = Pool(
            id: "p1",
            accesses: [
                PoolAccess(kind: .path, location: "/nonexistent-a") { DirectoryPoolFiles(root: "/nonexistent-a") },
                PoolAccess(kind: .url, location: "nfs://127.0.0.1/export") {
                    NFSPoolFiles(url: try NFSURL(parsing: "nfs://127.0.0.1/export?nfsport=1&mountport=1"), ioTimeout: Self.ioTimeout)
                },
            ],
            ioTimeout: Self.ioTimeout, logger: Self.logger)
        defer { pool.stop() }
        let writer = BeatWriter(identity: Self.identity, pools: [pool], timing: Self.timing, logger: Self.logger)
        let failure = try #require(await writer.beatOnce().failed["p1"])
        #expect(failure.contains("path: ") && failure.contains("url: "), "\(failure)")
        let health = pool.health
        #expect(!health.reachable)
        #expect(!health.paths[0].reachable && !health.paths[1].reachable)
    }

    static let identity = HostIdentity(
        address: HostAddress("10.0.0.1")!, hostUUID: "uuid-a", bootID: "boot-1", incarnation: "inc-a")

    static var timing: TimingSettings {
        var timing = TimingSettings()
        timing.ioTimeout = ioTimeout
        timing.interval = .seconds(3)
        return timing
    }

    static var logger: Logger {
        var logger = Logger(label: "two-path-pool-test")
        logger.logLevel = .critical
        return logger
    }
}
