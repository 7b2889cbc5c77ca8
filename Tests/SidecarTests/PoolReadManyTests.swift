import Foundation
import HeartbeatCore
import Logging
import NFS
import Sidecar
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `PoolFiles.readMany`: the libnfs store's pipelined batch gives what `read` gives per file, through either NFS
/// version and the mounted-directory store (the protocol's default); a frozen server fails it within the timeout
/// and the next call mounts afresh; a pool with two paths hands it on to each store.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct PoolReadManyTests {
    typealias Store = NFSPoolFilesTests.PoolStore

    /// What a read found, comparable across stores (errors by errno alone: messages name the store).
    enum Seen: Equatable {
        case read(FileRead)
        case error(Int32?)

        init(_ result: Result<FileRead, PoolIOError>) {
            switch result {
            case .success(let read): self = .read(read)
            case .failure(let error): self = .error(error.errno)
            }
        }
    }

    @Test(arguments: NFSVersion.allCases)
    func readManyGivesWhatReadGivesPerFile(_ version: NFSVersion) async throws {
        try await GaneshaServer.with(v3: version == .v3) { server in
            let disk = NFSPoolFilesTests.LocalExport(root: server.exportDirectory)
            let folder = PoolLayout.recordFolder
            try FileManager.default.createDirectory(
                atPath: "\(server.exportDirectory)/\(folder)", withIntermediateDirectories: true)
            var names: [String] = []
            for index in 0..<100 {
                let host = "10.1.0.\(index)"
                let record = NFSPoolFilesTests.record(host: host, sequence: UInt64(index))
                try disk.write("\(folder)/\(host).record", RecordCodec.encode(record))
                names.append("\(host).record")
            }
            try disk.write("\(folder)/empty.record", [])
            try disk.write("\(folder)/huge.record", Array(repeating: 0x20, count: RecordCodec.maxBytes + 1))
            try disk.symlink("\(folder)/link.record", to: names[0])
            try FileManager.default.createDirectory(
                atPath: "\(server.exportDirectory)/\(folder)/dir.record", withIntermediateDirectories: false)
            names += ["empty.record", "huge.record", "link.record", "dir.record", "gone.record"]
            let asked = names

            let nfs = Store.nfs(try server.url(version))
            defer { nfs.stop() }
            let directory = Store.directory(server.exportDirectory)
            defer { directory.stop() }
            let max = RecordCodec.maxBytes
            for store in [nfs, directory] {
                let batch = try await store.run { try $0.readMany(folder: folder, names: asked, maxBytes: max) }
                let single = try await store.run { files in
                    asked.map { name in Result { () throws(PoolIOError) in try files.read("\(folder)/\(name)", maxBytes: max) } }
                }
                #expect(batch.map(Seen.init) == single.map(Seen.init))
                let seen = batch.map(Seen.init)
                #expect(seen[0] == .read(.bytes(disk.read("\(folder)/\(asked[0])")!)))
                #expect(Array(seen.suffix(5)) == [
                    .read(.bytes([])), .read(.tooLarge(max + 1)), .read(.notRegularFile), .read(.notRegularFile),
                    .read(.missing),
                ])
            }
            // A missing folder: every file is missing.
            let nowhere = try await nfs.run { try $0.readMany(folder: "KVMHA/none", names: ["a", "b"], maxBytes: 8) }
            #expect(nowhere == [.success(.missing), .success(.missing)])
            // None of it spent the context.
            #expect(try await nfs.run { ($0 as! NFSPoolFiles).mountCount } == 1)
        }
    }

    @Test func aFrozenServerFailsReadManyWithinTheTimeoutAndTheNextCallRecovers() async throws {
        try await GaneshaServer.with(v3: true) { server in
            let names = (0..<64).map { "r\($0)" }
            for name in names {
                try Data(name.utf8).write(to: URL(fileURLWithPath: "\(server.exportDirectory)/\(name)"))
            }
            let url = try server.url(.v3)
            let thread = PoolIOThread(name: "read-many-frozen") { NFSPoolFiles(url: url, callTimeout: .seconds(1)) }
            defer { thread.stop() }
            let expected: [Result<FileRead, PoolIOError>] = names.map { .success(.bytes(Array($0.utf8))) }
            let readAll: @Sendable (any PoolFiles) throws(PoolIOError) -> [Result<FileRead, PoolIOError>] = {
                files throws(PoolIOError) in try files.readMany(folder: "", names: names, maxBytes: 64)
            }
            // Only catches hangs; libnfs's 1 s timeout ends the call long before.
            let generous = Duration.seconds(30)
            #expect(try await thread.run("read", timeout: generous, readAll) == expected)

            try await server.freeze()
            let started = ContinuousClock.now
            let frozen: Result<[Result<FileRead, PoolIOError>], PoolCallError>
            do throws(PoolCallError) {
                frozen = .success(try await thread.run("read", timeout: generous, readAll))
            } catch {
                frozen = .failure(error)
            }
            #expect(started.duration(to: .now) < generous)
            if case .failure(.io(let error)) = frozen {
                #expect(error.errno == ETIMEDOUT, "\(error)")
            } else {
                Issue.record("expected a timeout, got \(frozen)")
            }
            try await server.thaw()

            #expect(try await thread.run("read", timeout: generous, readAll) == expected)
            let mounts = try await thread.run("mounts", timeout: generous) { files throws(PoolIOError) in
                (files as! NFSPoolFiles).mountCount
            }
            #expect(mounts == 2)
        }
    }

    @Test func aPoolWithTwoPathsHandsReadManyOnToEachStore() async throws {
        let first = CountingFiles()
        let second = CountingFiles()
        let pool = Pool(
            id: "p1",
            accesses: [
                PoolAccess(kind: .path, location: "/first") { first },
                PoolAccess(kind: .url, location: "nfs://second/export") { second },
            ],
            ioTimeout: .seconds(5), logger: Logger(label: "read-many-test"))
        defer { pool.stop() }
        let reads = try await pool.call("read", everyPath: true) { files throws(PoolIOError) in
            try files.readMany(folder: "KVMHA/kvmha", names: ["a", "b"], maxBytes: 8)
        }
        #expect(reads == [.success(.bytes([1])), .success(.bytes([1]))])
        #expect(first.counts == (batches: 1, reads: 0))
        // The second path's store is wrapped (its own temporary names): the wrapper must pass the batch on.
        #expect(second.counts == (batches: 1, reads: 0))
    }

    /// Answers every read with one byte and counts batches and single reads.
    final class CountingFiles: PoolFiles, Sendable {
        private let state = Mutex((batches: 0, reads: 0))
        var counts: (batches: Int, reads: Int) { state.withLock { $0 } }

        var location: String { "counting" }
        func makeFolder(_ path: String) throws(PoolIOError) {}
        func replaceAtomically(_ path: String, with bytes: [UInt8], temporaryPath: String, durable: Bool) throws(PoolIOError) {}
        func overwrite(_ path: String, with bytes: [UInt8]) throws(PoolIOError) {}
        func read(_ path: String, maxBytes: Int) throws(PoolIOError) -> FileRead {
            state.withLock { $0.reads += 1 }
            return .bytes([1])
        }
        func readMany(folder: String, names: [String], maxBytes: Int) throws(PoolIOError) -> [Result<FileRead, PoolIOError>] {
            state.withLock { $0.batches += 1 }
            return names.map { _ in .success(.bytes([1])) }
        }
        func list(_ path: String) throws(PoolIOError) -> [PoolDirectoryEntry] { [] }
        func stat(_ path: String) throws(PoolIOError) -> PoolFileStat? { nil }
        func remove(_ path: String) throws(PoolIOError) {}
    }
}
