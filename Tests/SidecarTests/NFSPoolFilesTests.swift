import Foundation
import HeartbeatCore
import Logging
import NFS
import Sidecar
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `NFSPoolFiles` against a real nfs-ganesha on loopback (Tests/Harness/ganesha), over NFSv3 and NFSv4.
///
/// Each test compares what libnfs does with what is on local disk in the exported folder, which is also what
/// the mounted-directory store (`DirectoryPoolFiles`) sees. Serialized: freezing a server is timing-sensitive
/// and each test starts its own server. The time limit only catches hangs.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct NFSPoolFilesTests {
    /// The deadline of plain operations: it only turns a hang into a failure.
    static let generous: Duration = .seconds(20)

    // MARK: - Every operation

    @Test(arguments: NFSVersion.allCases)
    func everyOperationAgreesWithTheExportedFolder(_ version: NFSVersion) async throws {
        try await GaneshaServer.with(v3: version == .v3) { server in
            let nfs = PoolStore.nfs(try server.url(version))
            defer { nfs.stop() }
            let disk = LocalExport(root: server.exportDirectory)

            // makeFolder: creates parents, and succeeds when the folder exists.
            try await nfs.run { try $0.makeFolder("KVMHA/kvmha") }
            #expect(disk.isDirectory("KVMHA/kvmha"))
            try await nfs.run { try $0.makeFolder("KVMHA/kvmha") }

            // replaceAtomically: the temporary file is gone, the target holds the bytes, durable or not.
            let record = "KVMHA/kvmha/10.0.0.1.record"
            let first = Array("first".utf8)
            try await nfs.run {
                try $0.replaceAtomically(record, with: first, temporaryPath: "KVMHA/kvmha/.t-1", durable: true)
            }
            #expect(disk.read(record) == first)
            #expect(!disk.exists("KVMHA/kvmha/.t-1"))
            // Larger than NFSv4's 2 KiB write pieces and than one NFSv3 WRITE of some servers.
            let second = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try await nfs.run {
                try $0.replaceAtomically(record, with: second, temporaryPath: "KVMHA/kvmha/.t-2", durable: false)
            }
            #expect(disk.read(record) == second)
            #expect(!disk.exists("KVMHA/kvmha/.t-2"))

            // The temporary file is created exclusively: a file of that name is left alone, the target too.
            try disk.write("KVMHA/kvmha/.t-3", Array("not ours".utf8))
            let taken = await nfs.outcome {
                try $0.replaceAtomically(record, with: first, temporaryPath: "KVMHA/kvmha/.t-3", durable: true)
            }
            #expect(taken.poolIOError?.errno == EEXIST, "\(taken)")
            #expect(disk.read("KVMHA/kvmha/.t-3") == Array("not ours".utf8))
            #expect(disk.read(record) == second)

            // A missing folder is ENOENT, which is what makes the writer create it.
            let noFolder = await nfs.outcome {
                try $0.replaceAtomically("NOPE/x", with: first, temporaryPath: "NOPE/.x.t", durable: true)
            }
            #expect(noFolder.poolIOError?.errno == ENOENT, "\(noFolder)")

            // overwrite: create, then truncate and rewrite in place.
            let heartbeat = "KVMHA/hb-10.0.0.1"
            try await nfs.run { try $0.overwrite(heartbeat, with: Array("1700000000\n".utf8)) }
            #expect(disk.read(heartbeat) == Array("1700000000\n".utf8))
            try await nfs.run { try $0.overwrite(heartbeat, with: Array("17\n".utf8)) }
            #expect(disk.read(heartbeat) == Array("17\n".utf8))
            // … but never through a symbolic link.
            try disk.write("KVMHA/target", Array("keep".utf8))
            try disk.symlink("KVMHA/link", to: "target")
            let throughLink = await nfs.outcome { try $0.overwrite("KVMHA/link", with: [1, 2, 3]) }
            #expect(throughLink.poolIOError?.errno == ELOOP, "\(throughLink)")
            #expect(disk.read("KVMHA/target") == Array("keep".utf8))

            // read: bytes, missing, never a symlink or a folder, never past maxBytes.
            let max = RecordCodec.maxBytes
            #expect(try await nfs.run { try $0.read(record, maxBytes: 100_000) } == .bytes(second))
            #expect(try await nfs.run { try $0.read(record, maxBytes: second.count) } == .bytes(second))
            #expect(try await nfs.run { try $0.read(record, maxBytes: second.count - 1) } == .tooLarge(second.count))
            #expect(try await nfs.run { try $0.read("KVMHA/kvmha/none.record", maxBytes: max) } == .missing)
            #expect(try await nfs.run { try $0.read("NOPE/none.record", maxBytes: max) } == .missing)
            #expect(try await nfs.run { try $0.read("KVMHA/link", maxBytes: max) } == .notRegularFile)
            #expect(try await nfs.run { try $0.read("KVMHA/kvmha", maxBytes: max) } == .notRegularFile)
            try disk.write("KVMHA/empty", [])
            #expect(try await nfs.run { try $0.read("KVMHA/empty", maxBytes: max) } == .bytes([]))

            // list: what is on disk, with the same idea of "regular file"; no . or ..; a missing folder is empty.
            let listed = try await nfs.run { try $0.list("KVMHA") }
            #expect(Set(listed) == disk.list("KVMHA"))
            #expect(Set(listed.map(\.name)) == ["kvmha", "hb-10.0.0.1", "target", "link", "empty"])
            #expect(!listed.contains { $0.name == "." || $0.name == ".." })
            #expect(listed.first { $0.name == "link" }?.isRegularFile == false)
            #expect(try await nfs.run { try $0.list("KVMHA/none") } == [])

            // stat: the file's own attributes (a symlink's, not its target's); nil when missing.
            let attributes = try await nfs.run { try $0.stat(record) }
            #expect(attributes == disk.stat(record))
            #expect(attributes?.size == UInt64(second.count))
            let link = try await nfs.run { try $0.stat("KVMHA/link") }
            #expect(link?.isRegularFile == false)
            #expect(link == disk.stat("KVMHA/link"))
            #expect(try await nfs.run { try $0.stat("KVMHA/none") } == nil)

            // remove: gone; removing what is missing succeeds.
            try await nfs.run { try $0.remove("KVMHA/target") }
            #expect(!disk.exists("KVMHA/target"))
            try await nfs.run { try $0.remove("KVMHA/target") }
            // The link was never followed by any of the above.
            #expect(disk.isSymlink("KVMHA/link"))
            // One mount did all of it: no error above spent the context.
            #expect(try await nfs.run { ($0 as! NFSPoolFiles).mountCount } == 1)
        }
    }

    // MARK: - Same bytes, same verdicts, whichever path

    @Test(arguments: NFSVersion.allCases)
    func recordsAreByteEqualWhicheverPathWroteThem(_ version: NFSVersion) async throws {
        try await GaneshaServer.with(v3: version == .v3) { server in
            let nfs = PoolStore.nfs(try server.url(version))
            let directory = PoolStore.directory(server.exportDirectory)
            defer {
                nfs.stop()
                directory.stop()
            }
            let disk = LocalExport(root: server.exportDirectory)
            try await directory.run { try $0.makeFolder(PoolLayout.recordFolder) }

            let viaNFS = Self.record(host: "10.0.0.1", sequence: 7)
            let nfsBytes = RecordCodec.encode(viaNFS)
            try await nfs.run {
                try $0.replaceAtomically(
                    PoolLayout.record(viaNFS.host), with: nfsBytes, temporaryPath: "KVMHA/kvmha/.a", durable: true)
            }
            let onDisk = try #require(disk.read(PoolLayout.record(viaNFS.host)))
            #expect(onDisk == nfsBytes)
            #expect(try RecordCodec.decode(onDisk, expectedHost: viaNFS.host).get() == viaNFS)

            let viaDirectory = Self.record(host: "10.0.0.2", sequence: 9)
            let directoryBytes = RecordCodec.encode(viaDirectory)
            try await directory.run {
                try $0.replaceAtomically(
                    PoolLayout.record(viaDirectory.host), with: directoryBytes, temporaryPath: "KVMHA/kvmha/.b",
                    durable: true)
            }
            let read = try await nfs.run { try $0.read(PoolLayout.record(viaDirectory.host), maxBytes: RecordCodec.maxBytes) }
            #expect(read == .bytes(directoryBytes))
            guard case .bytes(let bytes) = read else { return }
            #expect(try RecordCodec.decode(bytes, expectedHost: viaDirectory.host).get() == viaDirectory)
        }
    }

    @Test(arguments: NFSVersion.allCases)
    func aPeerIsJudgedTheSameThroughEitherPath(_ version: NFSVersion) async throws {
        try await GaneshaServer.with(v3: version == .v3) { server in
            let url = try server.url(version)
            let logger = Self.logger
            let timing = TimingSettings()
            let poolID = "5f0c0000-0000-4000-8000-000000000001"
            let directoryPool = Pool(id: poolID, location: server.exportDirectory, ioTimeout: Self.generous, logger: logger) {
                [export = server.exportDirectory] in DirectoryPoolFiles(root: export)
            }
            let nfsPool = Pool(id: poolID, location: url.description, ioTimeout: Self.generous, logger: logger) {
                NFSPoolFiles(url: url, ioTimeout: Self.generous)
            }
            defer {
                directoryPool.stop()
                nfsPool.stop()
            }
            // Host A writes through the directory, host B through libnfs; C checks through the directory, D
            // through libnfs.
            let writers = [
                BeatWriter(identity: Self.identity("10.0.0.1"), pools: [directoryPool], timing: timing, logger: logger),
                BeatWriter(identity: Self.identity("10.0.0.2"), pools: [nfsPool], timing: timing, logger: logger),
            ]
            let checkers = [
                PeerMonitor(identity: Self.identity("10.0.0.3"), pools: [directoryPool], timing: timing, skewAllowance: nil, logger: logger),
                PeerMonitor(identity: Self.identity("10.0.0.4"), pools: [nfsPool], timing: timing, skewAllowance: nil, logger: logger),
            ]
            // A record nobody can use, planted on the export.
            let disk = LocalExport(root: server.exportDirectory)

            for beat in 1...3 {
                for writer in writers {
                    let round = await writer.beatOnce()
                    #expect(round.failed.isEmpty, "beat \(beat): \(round.failed)")
                }
                if beat == 1 { try disk.write(PoolLayout.record(HostAddress("10.0.0.5")!), Array("garbage".utf8)) }
                for checker in checkers { await checker.scanOnce() }
            }

            for peer in ["10.0.0.1", "10.0.0.2", "10.0.0.5", "10.0.0.6"].map({ HostAddress($0)! }) {
                let viaDirectory = checkers[0].report(for: peer)
                let viaNFS = checkers[1].report(for: peer)
                #expect(viaDirectory.overall.liveness == viaNFS.overall.liveness, "\(peer)")
                #expect(viaDirectory.overall.reason == viaNFS.overall.reason, "\(peer)")
                #expect(viaDirectory.overall.evidence.sequence == viaNFS.overall.evidence.sequence, "\(peer)")
                #expect(viaDirectory.overall.evidence.lastRecord == viaNFS.overall.evidence.lastRecord, "\(peer)")
                #expect(viaDirectory.perPool[poolID]?.liveness == viaNFS.perPool[poolID]?.liveness, "\(peer)")
            }
            // And what they agree on is right.
            for writer in ["10.0.0.1", "10.0.0.2"].map({ HostAddress($0)! }) {
                let report = checkers[1].report(for: writer)
                #expect(report.overall.liveness == .alive, "\(writer): \(report.overall)")
                #expect(report.overall.evidence.sequence == 3)
            }
            #expect(checkers[1].report(for: HostAddress("10.0.0.5")!).overall.liveness == .unknown)
            #expect(checkers[1].report(for: HostAddress("10.0.0.6")!).overall.liveness == .unknown)
        }
    }

    // MARK: - Hung and restarted servers

    /// The server frozen (SIGSTOP) for longer than its NFSv4 lease while the writer beats on its own timer:
    /// beats fail, the pool shows unreachable, no call holds its caller past `ioTimeout`; after SIGCONT and after a
    /// restart, beats resume. With `ioTimeout` 2 s libnfs (1 s) answers before the deadline; with 0.5 s the
    /// deadline of `PoolIOThread` answers first (libnfs cannot wait less than 1 s).
    @Test(arguments: NFSVersion.allCases, [Duration.seconds(2), .milliseconds(500)])
    func aFrozenServerMakesThePoolUnreachableAndBeatsResume(_ version: NFSVersion, ioTimeout: Duration) async throws {
        let lease = 2
        try await GaneshaServer.with(v3: version == .v3, leaseSeconds: lease) { server in
            let url = try server.url(version)
            let logger = Self.logger
            var timing = TimingSettings()
            timing.ioTimeout = ioTimeout
            timing.interval = ioTimeout + .milliseconds(250)
            let pool = Pool(id: "frozen", location: url.description, ioTimeout: ioTimeout, logger: logger) {
                NFSPoolFiles(url: url, ioTimeout: ioTimeout)
            }
            let (stream, sink) = AsyncStream.makeStream(of: BeatWriter.Round.self)
            let writer = BeatWriter(
                identity: Self.identity("10.0.0.1"), pools: [pool], timing: timing, logger: logger,
                onRound: { sink.yield($0) })
            let running = Task { try await writer.run() }
            defer {
                running.cancel()
                pool.stop()
            }
            var rounds = stream.makeAsyncIterator()
            func nextRound() async throws -> BeatWriter.Round {
                guard let round = await rounds.next() else { throw Stop("the writer stopped") }
                return round
            }
            /// Rounds until one succeeds; returns how many completed before it.
            func roundsUntilSuccess() async throws -> Int {
                var failed = 0
                while try await !nextRound().failed.isEmpty { failed += 1 }
                return failed
            }

            // The first beat mounts and creates the folders.
            #expect(try await roundsUntilSuccess() == 0)
            #expect(pool.health.reachable)

            try await server.freeze()
            let frozenAt = ContinuousClock.now
            // A round already in flight may still succeed; then every round fails.
            var failures = 0
            while failures == 0 || frozenAt.duration(to: .now) < .seconds(lease * 2 + 1) {
                let round = try await nextRound()
                if round.failed.isEmpty {
                    #expect(failures == 0, "a beat succeeded on a frozen server")
                    continue
                }
                failures += 1
                #expect(!pool.health.reachable)
                // Any other caller gets its answer within ioTimeout too (generous margin: hangs only).
                let asked = ContinuousClock.now
                _ = try? await pool.call("probe") { files throws(PoolIOError) in try files.stat("KVMHA") }
                #expect(asked.duration(to: .now) < ioTimeout + .seconds(1), "a call held its caller past ioTimeout")
            }
            let health = pool.health
            #expect(!health.reachable)
            #expect(health.lastError != nil)
            #expect(health.beatsFailed >= UInt64(failures))

            try await server.thaw()
            // The round in flight at the thaw may fail; the next two intervals must bring a good beat.
            #expect(try await roundsUntilSuccess() <= 2)
            #expect(pool.health.reachable)
            // The timed-out context was closed, never reused: the recovery came from a new mount.
            let mounts = try await pool.call("mounts") { files throws(PoolIOError) in (files as! NFSPoolFiles).mountCount }
            #expect(mounts >= 2)

            try await server.restart()
            // NFSv3 reconnects by itself; NFSv4's context fails ("nfs_service failed") and is replaced at once.
            #expect(try await roundsUntilSuccess() <= 2)
            #expect(pool.health.reachable)
            #expect(try await roundsUntilSuccess() == 0)
        }
    }

    /// libnfs 4.0.0 never renews an NFSv4 lease: a context idle for longer than the lease gets NFS4ERR_EXPIRED
    /// on its next OPEN. The store replaces the context and retries at once, so the call still succeeds.
    @Test func anExpiredNFSv4LeaseCostsNoCall() async throws {
        let lease = 2
        try await GaneshaServer.with(v3: false, leaseSeconds: lease) { server in
            let nfs = PoolStore.nfs(server.urlV4)
            defer { nfs.stop() }
            let disk = LocalExport(root: server.exportDirectory)
            try await nfs.run { try $0.makeFolder("KVMHA") }
            try await nfs.run { try $0.overwrite("KVMHA/hb-10.0.0.1", with: Array("1\n".utf8)) }

            // Idle on purpose: waiting out the lease is the condition under test, not synchronisation.
            try await Task.sleep(for: .seconds(lease * 2 + 1))

            // The first OPEN after the lapse is the create of the temporary file: it fails with NFS4ERR_EXPIRED and
            // is retried on a new context.
            try await nfs.run {
                try $0.replaceAtomically("KVMHA/hb-10.0.0.1", with: Array("2\n".utf8), temporaryPath: "KVMHA/.t", durable: true)
            }
            #expect(try await nfs.run { ($0 as! NFSPoolFiles).mountCount } == 2)
            #expect(disk.read("KVMHA/hb-10.0.0.1") == Array("2\n".utf8))
            #expect(!disk.exists("KVMHA/.t"))
            #expect(try await nfs.run { try $0.read("KVMHA/hb-10.0.0.1", maxBytes: 64) } == .bytes(Array("2\n".utf8)))
        }
    }

    @Test func theLibnfsTimeoutIsWholeSecondsBelowIOTimeout() {
        #expect(NFSPoolFiles.callTimeout(below: .seconds(4)) == .seconds(3))
        #expect(NFSPoolFiles.callTimeout(below: .milliseconds(4500)) == .seconds(4))
        #expect(NFSPoolFiles.callTimeout(below: .seconds(2)) == .seconds(1))
        #expect(NFSPoolFiles.callTimeout(below: .milliseconds(1500)) == .seconds(1))
        // libnfs cannot wait less than a second: the PoolIOThread deadline answers first.
        #expect(NFSPoolFiles.callTimeout(below: .seconds(1)) == .seconds(1))
        #expect(NFSPoolFiles.callTimeout(below: .milliseconds(300)) == .seconds(1))
    }

    @Test func aServerThatIsNotThereIsAnErrorNotAHang() async throws {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let url = try NFSURL(parsing: "nfs://127.0.0.1/export?version=3&nfsport=1&mountport=1")
        let nfs = PoolStore.nfs(url)
        defer { nfs.stop() }
        let outcome = await nfs.outcome { try $0.list("KVMHA") }
        let error = try #require(outcome.poolIOError, "\(outcome)")
        #expect(error.operation == "mount")
        #expect(error.errno != ENOENT)
        #expect(error.message.contains("libnfs"))
    }

    // MARK: - Helpers

    static var logger: Logger {
        var logger = Logger(label: "nfs-pool-files-test")
        logger.logLevel = .critical
        return logger
    }

    static func identity(_ address: String) -> HostIdentity {
        HostIdentity(address: HostAddress(address)!, hostUUID: "uuid-\(address)", bootID: "boot-1", incarnation: "inc-\(address)")
    }

    static func record(host: String, sequence: UInt64) -> HeartbeatRecord {
        HeartbeatRecord(
            host: HostAddress(host)!, hostUUID: "uuid-\(host)", bootID: "boot-1", incarnation: "inc-1",
            sequence: sequence, wallTimeMs: 1_700_000_000_000, intervalMs: 5000,
            vms: [VMEntry(uuid: "vm-1", name: "i-2-10-VM", state: .running, reason: "booted", sinceMs: 1_699_999_000_000)]
        )
    }
}

extension NFSPoolFilesTests {
    struct Stop: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// One `PoolFiles` on a `PoolIOThread` of its own, as the daemon uses it, with a deadline that only catches hangs.
    final class PoolStore: Sendable {
        private let thread: PoolIOThread

        private init(name: String, makeFiles: @escaping @Sendable () throws -> any PoolFiles) {
            thread = PoolIOThread(name: name, makeFiles: makeFiles)
        }

        static func nfs(_ url: NFSURL) -> PoolStore {
            PoolStore(name: "nfs-test") { NFSPoolFiles(url: url, callTimeout: .seconds(5)) }
        }

        static func directory(_ root: String) -> PoolStore {
            PoolStore(name: "dir-test") { DirectoryPoolFiles(root: root) }
        }

        func run<T: Sendable>(_ body: @escaping @Sendable (any PoolFiles) throws -> T) async throws -> T {
            try await thread.run("test", timeout: NFSPoolFilesTests.generous, Self.typed(body))
        }

        func outcome<T: Sendable>(_ body: @escaping @Sendable (any PoolFiles) throws -> T) async -> Result<T, PoolCallError> {
            do throws(PoolCallError) {
                return .success(try await thread.run("test", timeout: NFSPoolFilesTests.generous, Self.typed(body)))
            } catch {
                return .failure(error)
            }
        }

        /// Test closures throw untyped; every error they throw comes from a `PoolFiles` call.
        private static func typed<T>(
            _ body: @escaping @Sendable (any PoolFiles) throws -> T
        ) -> @Sendable (any PoolFiles) throws(PoolIOError) -> T {
            { files throws(PoolIOError) in
                do {
                    return try body(files)
                } catch let error as PoolIOError {
                    throw error
                } catch {
                    throw PoolIOError(operation: "test", path: "", message: "\(error)")
                }
            }
        }

        func stop() { thread.stop() }
    }

    /// The exported folder on local disk: what the server serves, and what a kernel mount would show.
    struct LocalExport {
        let root: String

        private func full(_ path: String) -> String { "\(root)/\(path)" }

        func read(_ path: String) -> [UInt8]? {
            FileManager.default.contents(atPath: full(path)).map { Array($0) }
        }

        func write(_ path: String, _ bytes: [UInt8]) throws {
            try Data(bytes).write(to: URL(fileURLWithPath: full(path)))
        }

        func symlink(_ path: String, to target: String) throws {
            try FileManager.default.createSymbolicLink(atPath: full(path), withDestinationPath: target)
        }

        func exists(_ path: String) -> Bool {
            var info = Glibc.stat()
            return lstat(full(path), &info) == 0
        }

        func isDirectory(_ path: String) -> Bool {
            var info = Glibc.stat()
            return lstat(full(path), &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
        }

        func isSymlink(_ path: String) -> Bool {
            var info = Glibc.stat()
            return lstat(full(path), &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
        }

        func stat(_ path: String) -> PoolFileStat? {
            var info = Glibc.stat()
            guard lstat(full(path), &info) == 0 else { return nil }
            return PoolFileStat(
                size: UInt64(info.st_size), mtimeSeconds: Int64(info.st_mtim.tv_sec),
                mtimeNanoseconds: Int32(info.st_mtim.tv_nsec), isRegularFile: (info.st_mode & S_IFMT) == S_IFREG)
        }

        func list(_ path: String) -> Set<PoolDirectoryEntry> {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: full(path))) ?? []
            return Set(names.map { name in
                PoolDirectoryEntry(name: name, isRegularFile: stat("\(path)/\(name)")?.isRegularFile ?? false)
            })
        }
    }
}

extension Result where Failure == PoolCallError {
    /// The storage error, if the call failed with one.
    fileprivate var poolIOError: PoolIOError? {
        if case .failure(.io(let error)) = self { return error }
        return nil
    }
}
