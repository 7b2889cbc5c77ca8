import Foundation
import Testing

@testable import NFS

/// `NFSContext.readRegularFiles` (the pipelined NFSv3 batch read; file by file over NFSv4) against a real
/// nfs-ganesha: every file's answer is the per-file `readRegularFile`'s, and a frozen server fails the batch
/// within the timeout without hanging.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct NFSBatchReadTests {
    static let timeout = Duration.seconds(1)
    /// Catches hangs only; not a timing assertion (libnfs rounds the 1 s timeout to whole seconds).
    static let hangDeadline = Duration.seconds(30)
    static let maxBytes = 2048

    /// What a read found, comparable across both paths (errors by their errno alone: messages differ).
    enum Seen: Equatable, CustomStringConvertible {
        case bytes([UInt8])
        case notRegularFile
        case tooLarge(UInt64)
        case error(Int32)

        init(_ result: Result<NFSRegularFileRead, NFSError>) {
            switch result {
            case .success(.bytes(let bytes)): self = .bytes(bytes)
            case .success(.notRegularFile): self = .notRegularFile
            case .success(.tooLarge(let size)): self = .tooLarge(size)
            case .failure(let error): self = .error(error.code)
            }
        }

        var description: String {
            switch self {
            case .bytes(let bytes): "\(bytes.count) bytes"
            case .notRegularFile: "not a regular file"
            case .tooLarge(let size): "too large (\(size))"
            case .error(let code): "error \(code)"
            }
        }
    }

    @Test(arguments: NFSVersion.allCases)
    func everyFileReadsAsThePerFileReadReadsIt(_ version: NFSVersion) async throws {
        try await GaneshaServer.with(v3: version == .v3) { server in
            let url = try server.url(version)
            let folder = server.exportDirectory + "/KVMHA/kvmha"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            var names: [String] = []
            // More files than the pipeline's window, of every size up to the limit and a few past it.
            for index in 0..<150 {
                let size = index == 0 ? 0 : (index * 37) % (Self.maxBytes + 1)
                let name = "10.1.\(index / 256).\(index % 256).record"
                let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ index) }
                try Data(bytes).write(to: URL(fileURLWithPath: "\(folder)/\(name)"))
                names.append(name)
            }
            let special: [(String, (String) throws -> Void)] = [
                ("exactly-max", { try Data(repeating: 1, count: Self.maxBytes).write(to: URL(fileURLWithPath: $0)) }),
                ("one-past-max", { try Data(repeating: 2, count: Self.maxBytes + 1).write(to: URL(fileURLWithPath: $0)) }),
                ("large", { try Data(repeating: 3, count: 100_000).write(to: URL(fileURLWithPath: $0)) }),
                ("empty", { try Data().write(to: URL(fileURLWithPath: $0)) }),
                ("a-directory", { try FileManager.default.createDirectory(atPath: $0, withIntermediateDirectories: false) }),
                ("link-to-file", { try FileManager.default.createSymbolicLink(atPath: $0, withDestinationPath: names[1]) }),
                ("link-to-folder", { try FileManager.default.createSymbolicLink(atPath: $0, withDestinationPath: "a-directory") }),
                ("dangling-link", { try FileManager.default.createSymbolicLink(atPath: $0, withDestinationPath: "nothing") }),
                ("a-fifo", { path in #expect(mkfifo(path, 0o644) == 0) }),
            ]
            for (name, make) in special {
                try make("\(folder)/\(name)")
                names.append(name)
            }
            try Data("inside".utf8).write(to: URL(fileURLWithPath: "\(folder)/a-directory/inner"))
            // Missing ones, a repeated one, and names that are not a single component (read the per-file way).
            names += ["missing-1", names[3], "missing-2", "a-directory/inner", ".", "..", ""]
            let asked = names

            try await onDedicatedThread {
                let nfs = try NFSContext(url: url, timeout: Self.timeout)
                defer { nfs.close() }
                let batch = try nfs.readRegularFiles(inFolder: "/KVMHA/kvmha", names: asked, maxBytes: Self.maxBytes)
                #expect(batch.count == asked.count)
                for (name, result) in zip(asked, batch) {
                    let single = Seen(Result { () throws(NFSError) in
                        try nfs.readRegularFile("/KVMHA/kvmha/\(name)", maxBytes: Self.maxBytes)
                    })
                    #expect(Seen(result) == single, "\(name)")
                }
                // Spot checks of what both agree on.
                let seen = Dictionary(zip(asked, batch.map(Seen.init)), uniquingKeysWith: { first, _ in first })
                #expect(seen["empty"] == .bytes([]))
                #expect(seen["exactly-max"] == .bytes(Array(repeating: 1, count: Self.maxBytes)))
                #expect(seen["one-past-max"] == .tooLarge(UInt64(Self.maxBytes) + 1))
                #expect(seen["large"] == .tooLarge(100_000))
                #expect(seen["a-directory"] == .notRegularFile)
                #expect(seen["link-to-file"] == .notRegularFile)
                #expect(seen["link-to-folder"] == .notRegularFile)
                #expect(seen["dangling-link"] == .notRegularFile)
                #expect(seen["a-fifo"] == .notRegularFile)
                #expect(seen["missing-1"] == .error(-ENOENT))
                #expect(seen["a-directory/inner"] == .bytes(Array("inside".utf8)))
                #expect(nfs.isUsable)

                // A folder that is a symbolic link: its files read as the per-file read reads them through it (libnfs's
                // O_NOFOLLOW refuses only a link in the last component).
                try FileManager.default.createSymbolicLink(
                    atPath: server.exportDirectory + "/KVMHA/linked", withDestinationPath: "kvmha")
                let throughLink = try nfs.readRegularFiles(
                    inFolder: "/KVMHA/linked", names: Array(asked.prefix(3)), maxBytes: Self.maxBytes)
                let perFile = asked.prefix(3).map { name in
                    Seen(Result { () throws(NFSError) in
                        try nfs.readRegularFile("/KVMHA/linked/\(name)", maxBytes: Self.maxBytes)
                    })
                }
                #expect(throughLink.map(Seen.init) == perFile)
                // A missing folder: every file is missing.
                let nowhere = try nfs.readRegularFiles(inFolder: "/KVMHA/none", names: ["a", "b"], maxBytes: 8)
                #expect(nowhere.map(Seen.init) == [.error(-ENOENT), .error(-ENOENT)])
                #expect(try nfs.readRegularFiles(inFolder: "/KVMHA/kvmha", names: [], maxBytes: 8).isEmpty)
                #expect(nfs.isUsable)
            }
        }
    }

    /// A file larger than one READ of the server is finished by the per-file read.
    @Test func aFileLargerThanOneReadIsReadWhole() async throws {
        try await GaneshaServer.with(v3: true) { server in
            let url = try server.url(.v3)
            let big = (0..<(3 * 1024 * 1024 + 5)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
            try Data(big).write(to: URL(fileURLWithPath: server.exportDirectory + "/big"))
            try Data("small".utf8).write(to: URL(fileURLWithPath: server.exportDirectory + "/small"))
            try await onDedicatedThread {
                let nfs = try NFSContext(url: url, timeout: Self.timeout)
                defer { nfs.close() }
                let reads = try nfs.readRegularFiles(inFolder: "/", names: ["big", "small"], maxBytes: big.count)
                #expect(reads.map(Seen.init) == [.bytes(big), .bytes(Array("small".utf8))])
            }
        }
    }

    @Test(arguments: NFSVersion.allCases)
    func aFrozenServerFailsTheBatchWithinTheTimeoutAndANewContextWorksAfterThaw(_ version: NFSVersion) async throws {
        try await GaneshaServer.with(v3: version == .v3) { server in
            let url = try server.url(version)
            let names = (0..<64).map { "r\($0)" }
            for name in names {
                try Data(name.utf8).write(to: URL(fileURLWithPath: "\(server.exportDirectory)/\(name)"))
            }
            let box = ContextBox(try await onDedicatedThread { try ContextBox.Holder(url: url) })
            try await box.call { nfs in
                let reads = try nfs.readRegularFiles(inFolder: "/", names: names, maxBytes: 64)
                #expect(reads.map(Seen.init) == names.map { .bytes(Array($0.utf8)) })
            }

            try await server.freeze()
            let clock = ContinuousClock()
            let started = clock.now
            let failure = await box.callExpectingError { nfs in
                _ = try nfs.readRegularFiles(inFolder: "/", names: names, maxBytes: 64)
            }
            #expect(clock.now - started < Self.hangDeadline)
            #expect(failure?.requiresNewContext == true, "\(String(describing: failure))")
            #expect(failure?.isTimeout == true, "\(String(describing: failure))")
            let again = await box.callExpectingError { nfs in
                _ = try nfs.readRegularFiles(inFolder: "/", names: names, maxBytes: 64)
            }
            #expect(again == failure)
            try await server.thaw()
            try await box.close()

            try await onDedicatedThread {
                let fresh = try NFSContext(url: url, timeout: Self.timeout)
                defer { fresh.close() }
                let reads = try fresh.readRegularFiles(inFolder: "/", names: names, maxBytes: 64)
                #expect(reads.map(Seen.init) == names.map { .bytes(Array($0.utf8)) })
            }
        }
    }

    /// The pipeline's own deadline: the folder's handle is known before the server freezes, so every LOOKUP goes
    /// out and none is answered. The calls left in flight are cancelled when the context is closed, after which
    /// libnfs must not call back into freed memory (this test would crash).
    @Test func aServerThatFreezesMidBatchFailsItWithinTheTimeout() async throws {
        try await GaneshaServer.with(v3: true) { server in
            let url = try server.url(.v3)
            let names = (0..<200).map { "r\($0)" }
            for name in names {
                try Data(name.utf8).write(to: URL(fileURLWithPath: "\(server.exportDirectory)/\(name)"))
            }
            let box = ContextBox(try await onDedicatedThread { try ContextBox.Holder(url: url) })
            let handle = Locked<[UInt8]?>(nil)
            try await box.call { nfs in
                let known = try nfs.directoryHandleForBatch("/")
                handle.withLock { $0 = known }
            }
            #expect(handle.withLock { $0 } != nil)

            try await server.freeze()
            let clock = ContinuousClock()
            let started = clock.now
            let failure = await box.callExpectingError { nfs in
                _ = try nfs.readRegularFiles(
                    inFolder: "/", handle: handle.withLock { $0 }, names: names, maxBytes: 64)
            }
            #expect(clock.now - started < Self.hangDeadline)
            #expect(failure?.isTimeout == true, "\(String(describing: failure))")
            // The pipeline's own deadline, not a per-file read's libnfs timeout.
            #expect(failure?.message.contains("pipelined") == true, "\(String(describing: failure))")
            #expect(failure?.requiresNewContext == true)
            try await box.call { nfs in #expect(!nfs.isUsable) }
            try await box.close()
            try await server.thaw()

            try await onDedicatedThread {
                let fresh = try NFSContext(url: url, timeout: Self.timeout)
                defer { fresh.close() }
                let reads = try fresh.readRegularFiles(inFolder: "/", names: names, maxBytes: 64)
                #expect(reads.map(Seen.init) == names.map { .bytes(Array($0.utf8)) })
            }
        }
    }
}
