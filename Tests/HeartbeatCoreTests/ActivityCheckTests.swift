import HeartbeatCore
import Testing

/// The VM activity check: CloudStack's `kvmvmactivity.sh` rule and where we differ from it.
@Suite("ActivityCheck")
struct ActivityCheckTests {
    static let now: Int64 = 1_700_000_000
    static let suspect: Int64 = now - 300
    static let checker: Int64 = now - 1

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var liveness: Liveness? = nil
        var storage: ActivityStorage
        var suspectTime: Int64 = ActivityCheckTests.suspect
        var activity: Activity
        var reason: ActivityReason
        /// The memo line expected to be written (`nil`: none).
        var memo: String?
        var comparedWith: Int64? = nil
        var newest: Int64? = nil
        var testDescription: String { name }
    }

    /// A readable pool with a stale heartbeat (10 minutes old) unless given.
    static func read(
        heartbeat: HeartbeatFileReading = .written(unixSeconds: now - 600),
        memo: MemoReading = .missing,
        _ volumes: [VolumeStat]
    ) -> ActivityStorage {
        .read(heartbeat: heartbeat, memo: memo, volumes: volumes)
    }

    static func memo(_ suspect: Int64, _ latest: Int64?, _ checker: Int64 = now - 60) -> MemoReading {
        .present(ActivityMemo(suspectTime: suspect, latestMtime: latest, checkerTime: checker))
    }

    static let s = suspect
    static let c = checker

    static let cases: [Case] = [
        // Our own verdict.
        Case(
            name: "our verdict alive: active without looking at storage",
            liveness: .alive,
            storage: .unreadable("frozen"),
            activity: .active,
            reason: .hostAlive,
            memo: nil
        ),
        Case(
            name: "our verdict alive beats a stale heartbeat and old disks",
            liveness: .alive,
            storage: read([.modified(atSeconds: s - 100)]),
            activity: .active,
            reason: .hostAlive,
            memo: nil
        ),
        // The pool as a whole.
        Case(
            name: "pool unreadable, no verdict: unknown (CloudStack: a timeout counts as activity)",
            storage: .unreadable("did not return within 4s"),
            activity: .unknown,
            reason: .poolUnreadable("did not return within 4s"),
            memo: nil
        ),
        Case(
            name: "pool unreadable, verdict dead: still unknown",
            liveness: .dead,
            storage: .unreadable("EIO"),
            activity: .unknown,
            reason: .poolUnreadable("EIO"),
            memo: nil
        ),
        // Step 1: the heartbeat file.
        Case(
            name: "heartbeat 0 s old: active",
            storage: read(heartbeat: .written(unixSeconds: now), []),
            activity: .active,
            reason: .heartbeatFresh,
            memo: nil
        ),
        Case(
            name: "heartbeat 60 s old: active",
            storage: read(heartbeat: .written(unixSeconds: now - 60), []),
            activity: .active,
            reason: .heartbeatFresh,
            memo: nil
        ),
        Case(
            name: "heartbeat in the future: active (as CloudStack: a negative age is < 61)",
            storage: read(heartbeat: .written(unixSeconds: now + 3600), [.modified(atSeconds: s - 1)]),
            activity: .active,
            reason: .heartbeatFresh,
            memo: nil
        ),
        Case(
            name: "fresh heartbeat beats our dead verdict (CloudStack's agent still writes)",
            liveness: .dead,
            storage: read(heartbeat: .written(unixSeconds: now - 5), []),
            activity: .active,
            reason: .heartbeatFresh,
            memo: nil
        ),
        Case(
            name: "heartbeat 61 s old is stale: on to the disks",
            storage: read(heartbeat: .written(unixSeconds: now - 61), [.modified(atSeconds: s + 1)]),
            activity: .active,
            reason: .writtenSinceSuspectTime,
            memo: "\(s):\(s + 1):\(c)",
            comparedWith: s,
            newest: s + 1
        ),
        Case(
            name: "heartbeat time so far back that the age overflows: stale",
            storage: read(heartbeat: .written(unixSeconds: .min), [.modified(atSeconds: s - 1)]),
            activity: .inactive,
            reason: .notWrittenSinceSuspectTime,
            memo: "\(s):\(s - 1):\(c)",
            comparedWith: s,
            newest: s - 1
        ),
        Case(
            name: "heartbeat file missing: on to the disks",
            storage: read(heartbeat: .missing, [.modified(atSeconds: s + 5)]),
            activity: .active,
            reason: .writtenSinceSuspectTime,
            memo: "\(s):\(s + 5):\(c)",
            comparedWith: s,
            newest: s + 5
        ),
        Case(
            name: "heartbeat file garbage: on to the disks (as CloudStack)",
            storage: read(heartbeat: .unusable("not a number"), [.modified(atSeconds: s)]),
            activity: .inactive,
            reason: .notWrittenSinceSuspectTime,
            memo: "\(s):\(s):\(c)",
            comparedWith: s,
            newest: s
        ),
        Case(
            name: "heartbeat unreadable but a disk was written: active",
            storage: read(heartbeat: .unreadable("EIO"), [.modified(atSeconds: s + 1)]),
            activity: .active,
            reason: .writtenSinceSuspectTime,
            memo: "\(s):\(s + 1):\(c)",
            comparedWith: s,
            newest: s + 1
        ),
        Case(
            name: "heartbeat unreadable and no disk written: unknown, no memo",
            storage: read(heartbeat: .unreadable("EIO"), [.modified(atSeconds: s - 1)]),
            activity: .unknown,
            reason: .heartbeatUnreadable("EIO"),
            memo: nil,
            comparedWith: s,
            newest: s - 1
        ),
        // Step 2: the list.
        Case(
            name: "empty list, stale heartbeat: inactive, no memo (as CloudStack)",
            storage: read([]),
            activity: .inactive,
            reason: .emptyVolumeList,
            memo: nil
        ),
        Case(
            name: "empty list, heartbeat missing: inactive",
            storage: read(heartbeat: .missing, []),
            activity: .inactive,
            reason: .emptyVolumeList,
            memo: nil
        ),
        Case(
            name: "empty list, heartbeat unreadable: unknown",
            storage: read(heartbeat: .unreadable("ESTALE"), []),
            activity: .unknown,
            reason: .heartbeatUnreadable("ESTALE"),
            memo: nil
        ),
        // Steps 3-4: no memo, compare with the suspect time.
        Case(
            name: "no memo, newest mtime after the suspect time: active",
            storage: read([.modified(atSeconds: s - 50), .modified(atSeconds: s + 10), .missing]),
            activity: .active,
            reason: .writtenSinceSuspectTime,
            memo: "\(s):\(s + 10):\(c)",
            comparedWith: s,
            newest: s + 10
        ),
        Case(
            name: "no memo, newest mtime equal to the suspect time: inactive (strictly later needed)",
            storage: read([.modified(atSeconds: s)]),
            activity: .inactive,
            reason: .notWrittenSinceSuspectTime,
            memo: "\(s):\(s):\(c)",
            comparedWith: s,
            newest: s
        ),
        Case(
            name: "no memo, every volume file missing: inactive, memo with an empty mtime (as CloudStack)",
            storage: read([.missing, .missing]),
            activity: .inactive,
            reason: .notWrittenSinceSuspectTime,
            memo: "\(s)::\(c)",
            comparedWith: s,
            newest: nil
        ),
        Case(
            name: "memo not a memo: treated as absent and overwritten",
            storage: read(memo: .unusable("garbage"), [.modified(atSeconds: s + 1)]),
            activity: .active,
            reason: .writtenSinceSuspectTime,
            memo: "\(s):\(s + 1):\(c)",
            comparedWith: s,
            newest: s + 1
        ),
        // Step 5: memo present.
        Case(
            name: "same suspect time, written since the previous check: active",
            storage: read(memo: memo(s, s + 20), [.modified(atSeconds: s + 21)]),
            activity: .active,
            reason: .writtenSincePreviousCheck,
            memo: "\(s):\(s + 21):\(c)",
            comparedWith: s + 20,
            newest: s + 21
        ),
        Case(
            name: "same suspect time, nothing written since the previous check: inactive",
            storage: read(memo: memo(s, s + 20), [.modified(atSeconds: s + 20)]),
            activity: .inactive,
            reason: .notWrittenSincePreviousCheck,
            memo: "\(s):\(s + 20):\(c)",
            comparedWith: s + 20,
            newest: s + 20
        ),
        Case(
            name: "later suspect time than the memo's: still compared with the previous check",
            storage: read(memo: memo(s - 1000, s - 500), [.modified(atSeconds: s - 400)]),
            activity: .active,
            reason: .writtenSincePreviousCheck,
            memo: "\(s):\(s - 400):\(c)",
            comparedWith: s - 500,
            newest: s - 400
        ),
        Case(
            name: "suspect time moved back: compared with the suspect time (written after it)",
            storage: read(memo: memo(s + 1000, s + 2000), [.modified(atSeconds: s + 5)]),
            activity: .active,
            reason: .writtenSinceSuspectTime,
            memo: "\(s):\(s + 5):\(c)",
            comparedWith: s,
            newest: s + 5
        ),
        Case(
            name: "suspect time moved back: compared with the suspect time (not written after it)",
            storage: read(memo: memo(s + 1000, s - 5), [.modified(atSeconds: s - 1)]),
            activity: .inactive,
            reason: .notWrittenSinceSuspectTime,
            memo: "\(s):\(s - 1):\(c)",
            comparedWith: s,
            newest: s - 1
        ),
        Case(
            name:
                "memo with an empty mtime field: compared with the suspect time (CloudStack shifts the checker time in)",
            storage: read(memo: memo(s, nil), [.modified(atSeconds: s + 1)]),
            activity: .active,
            reason: .writtenSinceSuspectTime,
            memo: "\(s):\(s + 1):\(c)",
            comparedWith: s,
            newest: s + 1
        ),
        Case(
            name: "memo unreadable: unknown even though a disk was written after the suspect time",
            storage: read(memo: .unreadable("EIO"), [.modified(atSeconds: s + 100)]),
            activity: .unknown,
            reason: .memoUnreadable("EIO"),
            memo: nil,
            comparedWith: nil,
            newest: s + 100
        ),
        // Failed and timed-out stats.
        Case(
            name: "a stat failed but another volume was written: active, memo written",
            storage: read([.failed("EACCES"), .modified(atSeconds: s + 3)]),
            activity: .active,
            reason: .writtenSinceSuspectTime,
            memo: "\(s):\(s + 3):\(c)",
            comparedWith: s,
            newest: s + 3
        ),
        Case(
            name: "a stat failed and the others show nothing: unknown (CloudStack drops it and says dead)",
            storage: read([.failed("EIO"), .modified(atSeconds: s - 3)]),
            activity: .unknown,
            reason: .volumeUnreadable(count: 1),
            memo: nil,
            comparedWith: s,
            newest: s - 3
        ),
        Case(
            name: "stats timed out and nothing else: unknown",
            storage: read(memo: memo(s, s + 1), [.timedOut, .timedOut, .missing]),
            activity: .unknown,
            reason: .volumeUnreadable(count: 2),
            memo: nil,
            comparedWith: s + 1,
            newest: nil
        ),
        Case(
            name: "a stat timed out, another written since the previous check: active",
            storage: read(memo: memo(s, s + 1), [.timedOut, .modified(atSeconds: s + 2)]),
            activity: .active,
            reason: .writtenSincePreviousCheck,
            memo: "\(s):\(s + 2):\(c)",
            comparedWith: s + 1,
            newest: s + 2
        ),
        Case(
            name: "our verdict unknown changes nothing",
            liveness: .unknown,
            storage: read([.modified(atSeconds: s + 1)]),
            activity: .active,
            reason: .writtenSinceSuspectTime,
            memo: "\(s):\(s + 1):\(c)",
            comparedWith: s,
            newest: s + 1
        ),
    ]

    @Test(arguments: cases)
    func decides(_ row: Case) {
        let result = ActivityCheck.decide(
            ActivityInput(
                suspectTime: row.suspectTime,
                checkerTime: Self.checker,
                now: Self.now,
                liveness: row.liveness,
                storage: row.storage
            )
        )
        #expect(result.activity == row.activity)
        #expect(result.reason == row.reason)
        #expect(result.memoToWrite?.description == row.memo)
        #expect(result.comparedWith == row.comparedWith)
        #expect(result.newestMtime == row.newest)
    }

    @Test func reportsTheHeartbeatAgeAndThePreviousMemo() {
        let previous = ActivityMemo(suspectTime: Self.suspect, latestMtime: Self.suspect + 1, checkerTime: 5)
        let result = ActivityCheck.decide(
            ActivityInput(
                suspectTime: Self.suspect,
                checkerTime: Self.checker,
                now: Self.now,
                liveness: nil,
                storage: Self.read(
                    heartbeat: .written(unixSeconds: Self.now - 700),
                    memo: .present(previous),
                    [.missing]
                )
            )
        )
        #expect(result.heartbeatAgeSeconds == 700)
        #expect(result.previousMemo == previous)
    }

    /// Two checks in a row, the memo passing between them as bytes on the pool, as between CloudStack's
    /// script and us.
    @Test func aSecondCheckComparesWithTheFirst() throws {
        let suspect = Self.suspect
        let first = ActivityCheck.decide(
            ActivityInput(
                suspectTime: suspect,
                checkerTime: 1000,
                now: Self.now,
                liveness: .dead,
                storage: Self.read([.modified(atSeconds: suspect + 30)])
            )
        )
        #expect(first.activity == .active)
        let bytes = try #require(first.memoToWrite).encoded()
        #expect(bytes == Array("\(suspect):\(suspect + 30):1000\n".utf8))
        let memo = try ActivityMemo.decode(bytes).get()

        // Nothing written since: inactive.
        let second = ActivityCheck.decide(
            ActivityInput(
                suspectTime: suspect,
                checkerTime: 1060,
                now: Self.now + 60,
                liveness: .dead,
                storage: Self.read(memo: .present(memo), [.modified(atSeconds: suspect + 30)])
            )
        )
        #expect(second.activity == .inactive)
        #expect(second.reason == .notWrittenSincePreviousCheck)
        #expect(second.memoToWrite == ActivityMemo(suspectTime: suspect, latestMtime: suspect + 30, checkerTime: 1060))
    }

    // MARK: The memo's text

    @Test(arguments: [
        (
            ActivityMemo(suspectTime: 1_700_000_000, latestMtime: 1_700_000_100, checkerTime: 1_700_000_200),
            "1700000000:1700000100:1700000200\n"
        ),
        (ActivityMemo(suspectTime: 5, latestMtime: nil, checkerTime: 7), "5::7\n"),
        (ActivityMemo(suspectTime: 0, latestMtime: 0, checkerTime: 0), "0:0:0\n"),
    ])
    func encodesCloudStacksLine(memo: ActivityMemo, text: String) {
        #expect(memo.encoded() == Array(text.utf8))
        #expect(ActivityMemo.decode(Array(text.utf8)) == .success(memo))
    }

    @Test(arguments: [
        ("1:2:3", ActivityMemo(suspectTime: 1, latestMtime: 2, checkerTime: 3)),
        ("  1:2:3 \r\n", ActivityMemo(suspectTime: 1, latestMtime: 2, checkerTime: 3)),
        ("0001:02:3\n\n", ActivityMemo(suspectTime: 1, latestMtime: 2, checkerTime: 3)),
        ("1::3", ActivityMemo(suspectTime: 1, latestMtime: nil, checkerTime: 3)),
    ])
    func decodes(text: String, memo: ActivityMemo) {
        #expect(ActivityMemo.decode(Array(text.utf8)) == .success(memo))
    }

    @Test(arguments: [
        "1:2", "1:2:3:4", ":2:3", "1:2:", "a:b:c", "-1:2:3", "1:+2:3", "1 :2:3", "1:2.5:3", "1:2:0x3",
        "1234567890123456789:1:1", "１:2:3",
    ])
    func refusesWhatIsNotAMemo(text: String) {
        guard case .failure(.malformed) = ActivityMemo.decode(Array(text.utf8)) else {
            Issue.record("\(text.debugDescription) was accepted")
            return
        }
    }

    @Test func refusesEmptyAndOversizedMemos() {
        #expect(ActivityMemo.decode(Array(" \n".utf8)) == .failure(.empty))
        #expect(ActivityMemo.decode([UInt8](repeating: 0x31, count: 129)) == .failure(.tooLarge(129)))
    }

    @Test func memosRoundTrip() throws {
        var rng = SplitMix64(seed: 5)
        for _ in 0..<2000 {
            let memo = ActivityMemo(
                suspectTime: RecordGenerator.positiveInt64(&rng) % 100_000_000_000_000_000,
                latestMtime: rng.oneIn(5) ? nil : RecordGenerator.positiveInt64(&rng) % 100_000_000_000_000_000,
                checkerTime: RecordGenerator.positiveInt64(&rng) % 100_000_000_000_000_000
            )
            #expect(try ActivityMemo.decode(memo.encoded()).get() == memo)
        }
    }

    // MARK: Volume names

    @Test(arguments: [
        "c3b1a2d4-5e6f-4a8b-9c0d-1e2f3a4b5c6d", "vol.qcow2", "a", "with space", "ünïcode",
        String(repeating: "x", count: 255),
    ])
    func acceptsPlainFileNames(name: String) {
        #expect(ActivityCheck.isValidVolumeName(name))
    }

    @Test(arguments: [
        "", ".", "..", "a/b", "/etc/passwd", "../etc", "..%2F..%2Fetc", "a..b", "KVMHA/hb-1.2.3.4", "a\u{0}b",
        "a\nb", "tab\t", "del\u{7f}", String(repeating: "x", count: 256), String(repeating: "é", count: 128),
    ])
    func refusesAnythingElse(name: String) {
        #expect(!ActivityCheck.isValidVolumeName(name))
    }
}
