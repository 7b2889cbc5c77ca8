import Foundation
import Testing

@testable import NFS

/// NFSContext against a real nfs-ganesha, over NFSv3 and NFSv4.
@Suite struct NFSContextTests {
    static let timeout = Duration.seconds(5)

    @Test(arguments: NFSVersion.allCases)
    func filesRoundTripBetweenLibnfsAndTheExportedFolder(_ version: NFSVersion) async throws {
        try await GaneshaServer.with(v3: version == .v3) { server in
            let url = try server.url(version)
            let export = server.exportDirectory
            let record = Array("{\"seq\":1}\n".utf8) + (0...255).map { UInt8($0) }
            let big = (0..<(3 * 1024 * 1024 + 17)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let local = Array("written on the server's own disk\n".utf8)
            try Data(local).write(to: URL(fileURLWithPath: export + "/local.txt"))

            try await onDedicatedThread {
                let nfs = try NFSContext(url: url, timeout: Self.timeout)
                defer { nfs.close() }

                try nfs.mkdir("/KVMHA")
                try nfs.mkdir("/KVMHA")  // exists: fine
                #expect(try nfs.stat("/KVMHA").isDirectory)

                // libnfs -> local disk
                try nfs.writeFile("/KVMHA/a.json", record, mode: 0o640)
                #expect(try nfs.readFile("/KVMHA/a.json", maxBytes: 4096) == record)
                #expect(try Self.localBytes(export + "/KVMHA/a.json") == record)
                #expect(try Self.localStat(export + "/KVMHA/a.json").permissions == 0o640)

                // overwriting truncates (over NFSv4 libnfs refuses O_CREAT on an existing file; the wrapper copes)
                let shorter = Array("{\"seq\":2}".utf8)
                try nfs.writeFile("/KVMHA/a.json", shorter, mode: 0o640)
                #expect(try nfs.readFile("/KVMHA/a.json", maxBytes: 4096) == shorter)
                #expect(try Self.localBytes(export + "/KVMHA/a.json") == shorter)
                try nfs.writeFile("/KVMHA/a.json", record, mode: 0o640)

                // local disk -> libnfs, with the same mtime to the nanosecond
                #expect(try nfs.readFile("/local.txt", maxBytes: 4096) == local)
                let remote = try nfs.stat("/local.txt")
                let onDisk = try Self.localStat(export + "/local.txt")
                #expect(remote.isRegular && !remote.isDirectory && !remote.isSymlink)
                #expect(remote.size == UInt64(local.count))
                #expect(remote.mtimeSeconds == onDisk.mtimeSeconds)
                #expect(remote.mtimeNanoseconds == onDisk.mtimeNanoseconds)

                // a file changed on disk is served fresh (Attr_Expiration_Time = 0, no libnfs cache)
                let changed = Array("changed locally, longer than before\n".utf8)
                try Data(changed).write(to: URL(fileURLWithPath: export + "/local.txt"))
                #expect(try nfs.readFile("/local.txt", maxBytes: 4096) == changed)

                // several RPCs per direction
                try nfs.writeFile("/KVMHA/big.bin", big)
                #expect(try nfs.readFile("/KVMHA/big.bin", maxBytes: big.count) == big)
                #expect(try Self.localBytes(export + "/KVMHA/big.bin") == big)

                // rename over an existing file (the atomic replace of a record)
                try nfs.writeFile("/KVMHA/b.json", Array("old".utf8))
                try nfs.writeFile("/KVMHA/a.json.tmp", Array("new".utf8))
                try nfs.rename("/KVMHA/a.json.tmp", "/KVMHA/b.json")
                #expect(try nfs.readFile("/KVMHA/b.json", maxBytes: 16) == Array("new".utf8))
                #expect(try Self.localBytes(export + "/KVMHA/b.json") == Array("new".utf8))
                #expect(!FileManager.default.fileExists(atPath: export + "/KVMHA/a.json.tmp"))

                // listing, with attributes
                try nfs.mkdir("/KVMHA/kvmha")
                let entries = try nfs.listDirectory("/KVMHA")
                #expect(Set(entries.map(\.name)) == ["a.json", "b.json", "big.bin", "kvmha"])
                let a = try #require(entries.first { $0.name == "a.json" })
                let aOnDisk = try Self.localStat(export + "/KVMHA/a.json")
                #expect(a.isRegular && !a.isDirectory)
                #expect(a.size == UInt64(record.count))
                #expect(a.mtimeSeconds == aOnDisk.mtimeSeconds)
                let folder = try #require(entries.first { $0.name == "kvmha" })
                #expect(folder.isDirectory && !folder.isRegular)
                #expect(try nfs.listDirectory("/KVMHA/kvmha").isEmpty)

                // a file created on disk shows up in the next listing (no directory cache)
                try Data([1]).write(to: URL(fileURLWithPath: export + "/KVMHA/kvmha/peer.json"))
                #expect(try nfs.listDirectory("/KVMHA/kvmha").map(\.name) == ["peer.json"])

                // symbolic links: lstat sees the link, stat its target
                try FileManager.default.createSymbolicLink(
                    atPath: export + "/KVMHA/link",
                    withDestinationPath: "a.json"
                )
                #expect(try nfs.lstat("/KVMHA/link").isSymlink)
                let target = try nfs.stat("/KVMHA/link")
                #expect(target.isRegular && target.size == UInt64(record.count))
                #expect(try nfs.listDirectory("/KVMHA").first { $0.name == "link" }?.isSymlink == true)
                try nfs.unlink("/KVMHA/link")

                // unlink
                try nfs.unlink("/KVMHA/b.json")
                #expect(!FileManager.default.fileExists(atPath: export + "/KVMHA/b.json"))
                #expect { try nfs.stat("/KVMHA/b.json") } throws: { ($0 as? NFSError)?.isNotFound == true }
                #expect { try nfs.unlink("/KVMHA/b.json") } throws: { ($0 as? NFSError)?.isNotFound == true }

                // file-system answers leave the context usable
                #expect(nfs.isUsable)
                try nfs.writeFile("/KVMHA/after-errors", [])
                #expect(try nfs.readFile("/KVMHA/after-errors", maxBytes: 0) == [])
                let emptyOnDisk = try Self.localStat(export + "/KVMHA/after-errors")
                #expect(abs(Double(emptyOnDisk.mtimeSeconds) - Date().timeIntervalSince1970) < 120)
            }
        }
    }

    @Test(arguments: NFSVersion.allCases)
    func boundsAndExclusivity(_ version: NFSVersion) async throws {
        try await GaneshaServer.with(v3: version == .v3) { server in
            let url = try server.url(version)
            let export = server.exportDirectory
            try await onDedicatedThread {
                let nfs = try NFSContext(url: url, timeout: Self.timeout)
                defer { nfs.close() }

                try nfs.writeFile("/ten", Array(repeating: 7, count: 10))
                #expect(try nfs.readFile("/ten", maxBytes: 10).count == 10)
                #expect { try nfs.readFile("/ten", maxBytes: 9) } throws: { error in
                    guard let error = error as? NFSError else { return false }
                    return error.isFileTooLarge && !error.requiresNewContext
                }

                let before = Date().timeIntervalSince1970 - 60
                try nfs.writeFile("/once", Array("first".utf8), mode: 0o600, exclusiveCreate: true)
                #expect { try nfs.writeFile("/once", [], exclusiveCreate: true) } throws: { error in
                    (error as? NFSError)?.isAlreadyExisting == true
                }
                #expect(try nfs.readFile("/once", maxBytes: 64) == Array("first".utf8))
                #expect(try Self.localStat(export + "/once").permissions == 0o600)

                // NFSv4 exclusive create keeps its verifier in the times unless something resets them.
                try nfs.writeFile("/empty-once", [], exclusiveCreate: true)
                let empty = try nfs.stat("/empty-once")
                #expect(Double(empty.mtimeSeconds) > before)
                #expect(Double(empty.mtimeSeconds) < Date().timeIntervalSince1970 + 60)

                // mkdir over a file
                #expect { try nfs.mkdir("/ten") } throws: { (error) in (error as? NFSError)?.isAlreadyExisting == true }
                #expect { try nfs.readFile("/missing", maxBytes: 1) } throws: { (error) in
                    (error as? NFSError)?.isNotFound == true
                }
                #expect(nfs.isUsable)

                // closed: calls fail without touching the network, close is idempotent
                nfs.close()
                nfs.close()
                #expect { try nfs.stat("/ten") } throws: { (error) in (error as? NFSError)?.requiresNewContext == true }
            }
        }
    }

    @Test func mountFailureIsAnErrorThatAsksForANewContext() async throws {
        try await GaneshaServer.with(v3: false) { server in
            // v4-only server: the NFSv3 MOUNT port does not exist.
            let url = try NFSURL(
                server: "127.0.0.1",
                export: "/export",
                version: .v3,
                nfsPort: server.nfsPort,
                mountPort: 1
            )
            let missing = try NFSURL(
                server: "127.0.0.1",
                export: "/no-such-export",
                version: .v4,
                nfsPort: server.nfsPort
            )
            try await onDedicatedThread {
                #expect { _ = try NFSContext(url: url, timeout: Self.timeout) } throws: { error in
                    guard let error = error as? NFSError else { return false }
                    return error.operation == "mount" && error.requiresNewContext
                }
                #expect { _ = try NFSContext(url: missing, timeout: Self.timeout) } throws: { error in
                    (error as? NFSError)?.operation == "mount"
                }
            }
        }
    }

    @Test func timeoutIsGivenToLibnfsInWholeSecondsRoundedUp() {
        #expect(NFSContext.milliseconds(.milliseconds(1)) == 1000)
        #expect(NFSContext.milliseconds(.zero) == 1000)
        #expect(NFSContext.milliseconds(.seconds(4)) == 4000)
        #expect(NFSContext.milliseconds(.milliseconds(4001)) == 5000)
        #expect(NFSContext.milliseconds(.seconds(100_000_000)) == 2_147_483_000)
    }

    // MARK: - Local helpers

    static func localBytes(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func localStat(_ path: String) throws -> NFSFileStat {
        var st = Glibc.stat()
        guard lstat(path, &st) == 0 else { throw HarnessError(message: "lstat \(path): errno \(errno)") }
        return NFSFileStat(
            size: UInt64(st.st_size),
            mtimeSeconds: Int64(st.st_mtim.tv_sec),
            mtimeNanoseconds: Int32(st.st_mtim.tv_nsec),
            mode: st.st_mode
        )
    }
}
