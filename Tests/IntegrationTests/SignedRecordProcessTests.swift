import Foundation
import HeartbeatCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Signed records between real daemons (issue 9, Show 1): peers sharing the cluster key are alive; a forged
/// record, a record of another cluster, an unsigned record and a replayed one are `unknown` with the reason,
/// through `kvmha check-host --json` asked of a daemon; a key rotation holds for the grace period and no longer.
@Suite(.serialized)
struct SignedRecordProcessTests {
    static let secret1 = String(repeating: "5a", count: 32)
    static let secret2 = String(repeating: "c3", count: 32)
    static let secretWrong = String(repeating: "0f", count: 32)

    /// A key file, private (0600) as the daemon insists.
    static func keyFile(in folder: TempDir, name: String, _ text: String) throws -> String {
        let path = folder.appending(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        guard chmod(path, 0o600) == 0 else { throw HarnessError("chmod \(path): \(String(cString: strerror(errno)))") }
        return path
    }

    static func start(
        _ host: String,
        pool: TempDir,
        keyFile: String?,
        grace: String? = nil,
        tokens: TempDir
    )
        async throws -> APIDaemon
    {
        var environment: [String: String] = [:]
        if let keyFile { environment["KVMHA_RECORD_KEY_FILE"] = keyFile }
        if let grace { environment["KVMHA_KEY_GRACE_PERIOD"] = grace }
        let token = try TokenFile.make(in: tokens, name: "token-\(host)")
        return try await APIDaemon.start(host: host, pools: ["p1=\(pool.path)"], token: token, environment: environment)
    }

    /// Asks `daemon` about `peer` until the overall verdict has `reasonCode` (or `verdict`), or the deadline
    /// passes (generous: it only catches a hang); returns the last answer.
    @discardableResult
    static func waitForVerdict(
        _ daemon: APIDaemon,
        about peer: String,
        verdict: String,
        reasonCode: String? = nil,
        timeout: Duration = .seconds(60)
    ) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        var last: [String: Any] = [:]
        while ContinuousClock.now < deadline {
            let check = try await daemon.cli(["check-host", peer, "--json"])
            last = (try? check.json()) ?? [:]
            if last[path: "overall", "verdict"] as? String == verdict
                && (reasonCode == nil || last[path: "overall", "reasonCode"] as? String == reasonCode)
            {
                return last
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        Issue.record("\(daemon.host) about \(peer): expected \(verdict) \(reasonCode ?? ""), last answer: \(last)")
        return last
    }

    /// Writes a record for `host` into the pool as a peer would (atomically), sealed with `key` when given.
    static func writeRecord(
        pool: TempDir,
        host: String,
        sequence: UInt64,
        incarnation: String = "inc-x",
        key: RecordKey?
    )
        throws
    {
        let record = HeartbeatRecord(
            host: HostAddress(host)!,
            hostUUID: nil,
            bootID: "boot-x",
            incarnation: incarnation,
            sequence: sequence,
            wallTimeMs: Int64(Date().timeIntervalSince1970 * 1000),
            intervalMs: 1000,
            vms: []
        )
        let encoded = RecordCodec.encode(record)
        let bytes = key.map { RecordSignature.seal(encoded, with: $0) } ?? encoded
        let folder = pool.appending(PoolLayout.recordFolder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = pool.appending(PoolLayout.record(HostAddress(host)!)).path
        try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Fake peers that keep "beating" (a higher sequence every 300 ms) until cancelled: without the signature
    /// check they would read as alive.
    static func keepWriting(pool: TempDir, _ writers: [(host: String, key: RecordKey?)]) -> Task<Void, any Error> {
        Task {
            var sequence: UInt64 = 1
            while !Task.isCancelled {
                for writer in writers {
                    try writeRecord(pool: pool, host: writer.host, sequence: sequence, key: writer.key)
                }
                sequence += 1
                try await Task.sleep(for: .milliseconds(300))
            }
        }
    }

    @Test("same key: alive; forged, other cluster, unsigned and replayed records: unknown with the reason")
    func forgedForeignUnsignedAndReplayedRecords() async throws {
        let pool = try TempDir(prefix: "kvmha-signed-pool")
        let secrets = try TempDir(prefix: "kvmha-signed-keys")
        let keys = try Self.keyFile(in: secrets, name: "record-keys", "# the cluster's key\nk1 \(Self.secret1)\n")
        var daemons: [APIDaemon] = []
        defer { for daemon in daemons { daemon.stop() } }
        daemons.append(try await Self.start("127.0.0.1", pool: pool, keyFile: keys, tokens: secrets))
        daemons.append(try await Self.start("127.0.0.2", pool: pool, keyFile: keys, tokens: secrets))
        let (a, b) = (daemons[0], daemons[1])

        let k1 = try RecordKey(id: "k1", secret: Array(repeating: 0x5A, count: 32))
        let forged = try RecordKey(id: "k1", secret: Array(repeating: 0x0F, count: 32))
        let otherCluster = try RecordKey(id: "other-cluster", secret: Array(repeating: 0xC3, count: 32))
        let fakes = Self.keepWriting(
            pool: pool,
            [("127.0.0.5", forged), ("127.0.0.6", otherCluster), ("127.0.0.7", nil), ("127.0.0.8", k1)]
        )
        defer { fakes.cancel() }

        try await Self.waitForVerdict(a, about: "127.0.0.2", verdict: "alive")
        try await Self.waitForVerdict(b, about: "127.0.0.1", verdict: "alive")
        // The test's own writer with the right key is a peer like any other.
        try await Self.waitForVerdict(a, about: "127.0.0.8", verdict: "alive")

        let expected: [(host: String, code: String, reason: String)] = [
            ("127.0.0.5", "unusable-record:bad-signature", "bad signature (key k1)"),
            ("127.0.0.6", "unusable-record:unknown-key", "unknown key other-cluster"),
            ("127.0.0.7", "unusable-record:unsigned", "unsigned record"),
        ]
        for fake in expected {
            let answer = try await Self.waitForVerdict(a, about: fake.host, verdict: "unknown", reasonCode: fake.code)
            let reason = answer[path: "overall", "reason"] as? String ?? ""
            #expect(reason.contains(fake.reason), "\(fake.host): \(reason)")
        }
        // Still unknown, never alive, however long they keep "beating" (a few more scans).
        try await Task.sleep(for: .seconds(3))
        for fake in expected {
            let check = try await a.cli(["check-host", fake.host, "--json"])
            #expect(check.exitCode == 2, "\(check)")
            #expect(try check.json()[path: "overall", "reasonCode"] as? String == fake.code)
        }
        #expect(!a.process.lines().contains { $0.contains("peer 127.0.0.5 is now alive") })

        // A replay: 127.0.0.8's writer stops and an old record of it, validly signed, is copied back.
        fakes.cancel()
        _ = try? await fakes.value
        try Self.writeRecord(pool: pool, host: "127.0.0.8", sequence: 1, key: k1)
        let replay = try await Self.waitForVerdict(
            a,
            about: "127.0.0.8",
            verdict: "unknown",
            reasonCode: "replayed-record"
        )
        #expect(
            (replay[path: "overall", "reason"] as? String)?.contains("sequence went backwards") == true,
            "\(replay)"
        )

        // The real peers stay alive throughout, and health says records are signed.
        try await Self.waitForVerdict(a, about: "127.0.0.2", verdict: "alive")
        for daemon in daemons {
            let status = try await daemon.cli(["status", "--json"])
            let health = try status.json()
            #expect(health[path: "records", "signed"] as? Bool == true, "\(status)")
            #expect(health[path: "records", "keyID"] as? String == "k1", "\(status)")
        }
        #expect(a.process.lines().contains { $0.contains("records are signed with key k1") })
    }

    @Test("key rotation: the old key is accepted for the grace period, then the peer is unknown (retired key)")
    func rotationWithAGracePeriod() async throws {
        let pool = try TempDir(prefix: "kvmha-rotation-pool")
        let secrets = try TempDir(prefix: "kvmha-rotation-keys")
        // A has learnt the new key (step 1 of a rotation) but still signs with the old one; B has finished the
        // rotation: it signs with the new key and lists the old one as retired now.
        let keysA = try Self.keyFile(in: secrets, name: "keys-a", "old \(Self.secret1)\nnew \(Self.secret2)\n")
        let retiredAt = Int64(Date().timeIntervalSince1970)
        let keysB = try Self.keyFile(
            in: secrets,
            name: "keys-b",
            "new \(Self.secret2)\nold \(Self.secret1) retired-at=\(retiredAt)\n"
        )
        let grace = 20.0
        var daemons: [APIDaemon] = []
        defer { for daemon in daemons { daemon.stop() } }
        daemons.append(try await Self.start("127.0.0.1", pool: pool, keyFile: keysA, grace: "20s", tokens: secrets))
        daemons.append(try await Self.start("127.0.0.2", pool: pool, keyFile: keysB, grace: "20s", tokens: secrets))
        let (a, b) = (daemons[0], daemons[1])

        // Within the grace period B accepts A's records signed with the retired key.
        try await Self.waitForVerdict(b, about: "127.0.0.1", verdict: "alive", timeout: .seconds(grace - 2))
        #expect(
            Date().timeIntervalSince1970 < Double(retiredAt) + grace,
            "alive was seen within the grace period (the machine was too slow otherwise)"
        )
        try await Self.waitForVerdict(a, about: "127.0.0.2", verdict: "alive")

        // After it, A's records are no evidence of life for B; B's, signed with the new key, still are for A.
        let after = try await Self.waitForVerdict(
            b,
            about: "127.0.0.1",
            verdict: "unknown",
            reasonCode: "unusable-record:retired-key"
        )
        #expect((after[path: "overall", "reason"] as? String)?.contains("retired key old") == true, "\(after)")
        #expect(Date().timeIntervalSince1970 >= Double(retiredAt) + grace)
        try await Self.waitForVerdict(a, about: "127.0.0.2", verdict: "alive")
        let status = try await b.cli(["status", "--json"])
        #expect(try status.json()[path: "records", "keyID"] as? String == "new")
    }

    @Test("no key file: the daemon runs, reads signed peers without checking, and says records are unsigned")
    func unsignedMode() async throws {
        let pool = try TempDir(prefix: "kvmha-unsigned-pool")
        let secrets = try TempDir(prefix: "kvmha-unsigned-keys")
        let keys = try Self.keyFile(in: secrets, name: "record-keys", "k1 \(Self.secret1)\n")
        var daemons: [APIDaemon] = []
        defer { for daemon in daemons { daemon.stop() } }
        daemons.append(try await Self.start("127.0.0.1", pool: pool, keyFile: nil, tokens: secrets))
        daemons.append(try await Self.start("127.0.0.2", pool: pool, keyFile: keys, tokens: secrets))
        let (unsigned, signed) = (daemons[0], daemons[1])

        try await Self.waitForVerdict(unsigned, about: "127.0.0.2", verdict: "alive")
        // The signed host refuses the unsigned one's records.
        try await Self.waitForVerdict(
            signed,
            about: "127.0.0.1",
            verdict: "unknown",
            reasonCode: "unusable-record:unsigned"
        )

        let status = try await unsigned.cli(["status", "--json"])
        let health = try status.json()
        #expect(health[path: "records", "signed"] as? Bool == false, "\(status)")
        #expect(health[path: "records", "keyID"] is NSNull, "\(status)")
        #expect(unsigned.process.lines().contains { $0.contains("records are unsigned") })

        // A key file others can read is refused, naming it.
        let loose = try Self.keyFile(in: secrets, name: "loose-keys", "k1 \(Self.secret1)\n")
        #expect(chmod(loose, 0o644) == 0)
        let refused = try await runCLI(
            [
                "serve", "--check-config", "--host-ip", "127.0.0.3", "--pool", "p1=\(pool.path)", "--record-key-file",
                loose,
            ])
        #expect(refused.exitCode != 0, "\(refused)")
        #expect(refused.stderr.contains("record key file \(loose) is accessible by group or others"), "\(refused)")
    }
}
