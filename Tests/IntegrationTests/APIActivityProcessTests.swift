import Foundation
import HeartbeatCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `kvmha activity` through a running daemon, against volume files whose mtimes the test sets, with the
/// memo `KVMHA/ac-<ip>` passing between our checks and CloudStack's script in CloudStack's exact format
/// (issue 5, Show 2).
@Suite(.serialized)
struct APIActivityProcessTests {
    static let suspect = "127.0.0.9"

    /// Sets a file's mtime (and atime) to `seconds` with utimes(2), creating it if needed.
    static func touch(_ pool: TempDir, _ name: String, mtime seconds: Int64) throws {
        let path = pool.appending(name).path
        if access(path, F_OK) != 0 { try Data("disk".utf8).write(to: URL(fileURLWithPath: path)) }
        var times = [timeval(tv_sec: Int(seconds), tv_usec: 0), timeval(tv_sec: Int(seconds), tv_usec: 0)]
        guard utimes(path, &times) == 0 else {
            throw HarnessError("utimes \(path): \(String(cString: strerror(errno)))")
        }
    }

    static func write(_ pool: TempDir, _ name: String, _ text: String) throws {
        let url = pool.appending(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    static func memo(_ pool: TempDir) -> String? {
        FileManager.default.contents(atPath: pool.appending("KVMHA/ac-\(suspect)").path).map {
            String(decoding: $0, as: UTF8.self)
        }
    }

    @Test(
        "activity: mtimes against the suspect time and the previous check; the ac- file round trip with CloudStack's format"
    )
    func activityCheck() async throws {
        let pool = try TempDir(prefix: "kvmha-api-pool")
        let tokens = try TempDir(prefix: "kvmha-api-tokens")
        // Default timings: every storage call of the check must succeed, also on a loaded machine.
        let daemon = try await APIDaemon.start(
            host: "127.0.0.1",
            pools: ["p1=\(pool.path)"],
            token: try TokenFile.make(in: tokens, name: "token"),
            timing: APIDaemon.defaultTiming
        )
        defer { daemon.stop() }

        let now = Int64(Date().timeIntervalSince1970)
        let s = now - 600  // the suspect time
        // The suspect's CloudStack heartbeat stopped 20 minutes ago.
        try Self.write(pool, "KVMHA/hb-\(Self.suspect)", "\(now - 1200)\n")
        try Self.touch(pool, "vol-1", mtime: s - 100)
        try Self.touch(pool, "vol-2", mtime: s + 30)

        func check(
            checker: Int64,
            suspectTime: Int64 = s,
            volumes: String = "vol-1,vol-2",
            json: Bool = true
        ) async throws -> CLIResult {
            try await daemon.cli(
                [
                    "activity", Self.suspect, "--pool", "p1", "--volumes", volumes, "--suspect-time", "\(suspectTime)",
                    "--checker-time", "\(checker)",
                ] + (json ? ["--json"] : [])
            )
        }

        // 1. No memo: a disk written after the suspect time → active; the memo records what was seen.
        let first = try await check(checker: 1001)
        #expect(first.exitCode == 0, "\(first)")
        #expect(try first.json()["activity"] as? String == "active")
        #expect(try first.json()["reasonCode"] as? String == "written-since-suspect-time")
        #expect(try first.json()["hostVerdict"] is NSNull, "never seen by the daemon")
        #expect(Self.memo(pool) == "\(s):\(s + 30):1001\n")

        // 2. Nothing written since: inactive, compared with the previous check.
        let second = try await check(checker: 1002)
        #expect(second.exitCode == 1, "\(second)")
        #expect(try second.json()["reasonCode"] as? String == "not-written-since-previous-check")
        #expect(try second.json()["comparedWith"] as? Int64 == s + 30)
        #expect(Self.memo(pool) == "\(s):\(s + 30):1002\n")

        // 3. A VM writes again: active.
        try Self.touch(pool, "vol-1", mtime: s + 60)
        let third = try await check(checker: 1003, json: false)
        #expect(third.exitCode == 0, "\(third)")
        #expect(third.stdout.hasPrefix("host \(Self.suspect) on pool p1: ACTIVE"), "\(third)")
        #expect(Self.memo(pool) == "\(s):\(s + 60):1003\n")

        // 4. CloudStack's script ran meanwhile and saw a newer mtime (its `echo "$S:$L:$C" > $acFile`):
        // that is the baseline now.
        try Self.write(pool, "KVMHA/ac-\(Self.suspect)", "\(s):\(s + 500):2000\n")
        let fourth = try await check(checker: 1004)
        #expect(fourth.exitCode == 1, "\(fourth)")
        #expect(try fourth.json()["previousMemo"] as? String == "\(s):\(s + 500):2000")
        #expect(Self.memo(pool) == "\(s):\(s + 60):1004\n")

        // 5. A suspect time earlier than the memo's: compared with the suspect time again.
        try Self.write(pool, "KVMHA/ac-\(Self.suspect)", "\(s + 100):\(s + 500):2001\n")
        let fifth = try await check(checker: 1005)
        #expect(fifth.exitCode == 0, "\(fifth)")
        #expect(try fifth.json()["reasonCode"] as? String == "written-since-suspect-time")

        // 6. CloudStack's memo with an empty mtime (it found no volume file): compared with the suspect time.
        try Self.write(pool, "KVMHA/ac-\(Self.suspect)", "\(s)::2002\n")
        let sixth = try await check(checker: 1006)
        #expect(sixth.exitCode == 0, "\(sixth)")
        #expect(try sixth.json()["comparedWith"] as? Int64 == s)

        // 7. No volume file exists: inactive, and the memo gets the empty field exactly as CloudStack writes it.
        try FileManager.default.removeItem(atPath: pool.appending("KVMHA/ac-\(Self.suspect)").path)
        let seventh = try await check(checker: 1007, volumes: "gone-1,gone-2")
        #expect(seventh.exitCode == 1, "\(seventh)")
        #expect(Self.memo(pool) == "\(s)::1007\n")

        // 8. A fresh CloudStack heartbeat: active at once; the memo is left alone (as CloudStack does).
        try Self.write(pool, "KVMHA/hb-\(Self.suspect)", "\(Int64(Date().timeIntervalSince1970))\n")
        let eighth = try await check(checker: 1008, volumes: "")
        #expect(eighth.exitCode == 0, "\(eighth)")
        #expect(try eighth.json()["reasonCode"] as? String == "heartbeat-fresh")
        #expect(Self.memo(pool) == "\(s)::1007\n")

        // Nothing but the memo was ever written by the checks: no temporary files left in KVMHA/.
        let names = try FileManager.default.contentsOfDirectory(atPath: pool.appending("KVMHA").path).filter {
            $0.hasPrefix(".ac-")
        }
        #expect(names.isEmpty, "\(names)")
    }
}
