import Foundation
import HeartbeatCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Whatever another host (or anyone) left in the pool: a clear reason, `unknown`, no crash, nothing touched
/// (issue 2, Show 6).
@Suite(.serialized)
struct GarbagePeerFileTests {
    static func validRecord(_ host: String, sequence: UInt64 = 7) -> [UInt8] {
        RecordCodec.encode(
            HeartbeatRecord(
                host: HostAddress(host)!, hostUUID: nil, bootID: "boot", incarnation: "inc", sequence: sequence,
                wallTimeMs: 1_700_000_000_000, intervalMs: 300, vms: []))
    }

    @Test("garbage records give unknown with the reason; the daemon keeps running; files untouched")
    func garbageRecords() async throws {
        let pool = try TempDir(prefix: "kvmha-pool")
        let folder = pool.appending(PoolLayout.recordFolder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        func path(_ host: String) -> String { folder.appendingPathComponent("\(host)\(PoolLayout.recordSuffix)").path }

        var wrongChecksum = Self.validRecord("127.0.0.9")
        let digit = wrongChecksum.count - 2
        wrongChecksum[digit] = wrongChecksum[digit] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        var random = SystemRandomNumberGenerator()
        let files: [(host: String, bytes: [UInt8]?, reason: String)] = [
            ("127.0.0.5", [], "unusable-record:empty"),
            ("127.0.0.6", Array(Self.validRecord("127.0.0.6").prefix(40)), "unusable-record:truncated"),
            ("127.0.0.7", [0xff, 0xfe] + (0..<200).map { _ in UInt8.random(in: 0...255, using: &random) }, "unusable-record:not-utf8"),
            ("127.0.0.8", [UInt8](repeating: UInt8(ascii: "x"), count: 100 * 1024), "unusable-record:oversized"),
            ("127.0.0.9", wrongChecksum, "unusable-record:bad-checksum"),
            ("127.0.0.11", Self.validRecord("127.0.0.12"), "unusable-record:wrong-host"),
            ("127.0.0.10", nil, "unusable-record:not-regular-file"),  // symlink to /etc/shadow
        ]
        for file in files {
            if let bytes = file.bytes {
                #expect(FileManager.default.createFile(atPath: path(file.host), contents: Data(bytes)))
            } else {
                #expect(symlink("/etc/shadow", path(file.host)) == 0)
            }
        }

        let daemon = try SidecarProcess.start(host: "127.0.0.1", pools: ["p1=\(pool.path)"])
        defer { daemon.stop() }
        for file in files {
            let line = try await daemon.process.waitForLine(containing: "peer \(file.host) is now unknown")
            #expect(line.contains("record unusable"), "\(line)")
        }

        for file in files {
            let result = try await checkHost(file.host, pools: ["p1=\(pool.path)"])
            #expect(result.exitCode == 2, "\(file.host): \(result.output)")
            #expect(result.verdict == "unknown")
            #expect(result.reasonCode == file.reason, "\(file.host): \(result.output)")
        }

        // Several more scans later the daemon is still up and has changed nothing.
        try await daemon.waitForBeat(10)
        #expect(daemon.process.isRunning)
        for file in files {
            if let bytes = file.bytes {
                #expect(FileManager.default.contents(atPath: path(file.host)) == Data(bytes), "\(file.host) was modified")
            } else {
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: path(file.host))
                #expect(target == "/etc/shadow")
            }
        }
        #expect(!daemon.process.lines().contains { $0.contains("is now dead") })
    }
}
