import HeartbeatCore
import Testing

/// The verdict lines of the drop-in commands, case by case, with what CloudStack's script says.
@Suite("CloudStackDropIn verdicts")
struct CloudStackDropInVerdictTests {
    static let now: Int64 = 1_700_000_000
    static let host = HostAddress("10.0.0.5")!
    static let file = CloudStackDropInHeartbeatCheck.scriptPath(mountPoint: "/mnt/p1", host: host)

    static func dead(_ reason: String) -> CloudStackDropInVerdict {
        .dead("=====> Considering host as DEAD because the heartbeat file [\(file)] \(reason) <======")
    }

    static func deadByAge(_ age: Int64, _ max: Int64 = 60) -> CloudStackDropInVerdict {
        .dead(
            "=====> Considering host as DEAD because last write on [\(file)] was [\(age)] seconds ago, "
                + "but the max interval is [\(max)] <======"
        )
    }

    struct HeartbeatCase: Sendable, CustomTestStringConvertible {
        var name: String
        var reading: HeartbeatFileReading
        var verdict: CloudStackDropInVerdict
        /// What kvmheartbeat.sh prints for the same file.
        var cloudStack: String
        var testDescription: String { name }
    }

    static let heartbeatCases: [HeartbeatCase] = [
        .init(name: "fresh", reading: .written(unixSeconds: now - 5), verdict: .alive, cloudStack: "ALIVE"),
        .init(name: "exactly the max", reading: .written(unixSeconds: now - 60), verdict: .alive, cloudStack: "ALIVE"),
        .init(
            name: "one above the max",
            reading: .written(unixSeconds: now - 61),
            verdict: deadByAge(61),
            cloudStack: "DEAD [61]"
        ),
        .init(
            name: "256 s: not wrapped",
            reading: .written(unixSeconds: now - 256),
            verdict: deadByAge(256),
            cloudStack: "ALIVE (256 mod 256 = 0)"
        ),
        .init(
            name: "300 s: the real age",
            reading: .written(unixSeconds: now - 300),
            verdict: deadByAge(300),
            cloudStack: "DEAD [44]"
        ),
        .init(name: "in the future", reading: .written(unixSeconds: now + 3600), verdict: .alive, cloudStack: "ALIVE"),
        .init(name: "missing", reading: .missing, verdict: dead("does not exist"), cloudStack: "ALIVE"),
        .init(
            name: "empty",
            reading: .unusable("heartbeat file is empty"),
            verdict: dead("holds no heartbeat (heartbeat file is empty)"),
            cloudStack: "ALIVE"
        ),
        .init(
            name: "garbage",
            reading: .unusable("heartbeat file does not hold a Unix time: \"abc\""),
            verdict: dead("holds no heartbeat (heartbeat file does not hold a Unix time: \"abc\")"),
            cloudStack: "ALIVE"
        ),
        .init(
            name: "absurd time",
            reading: .written(unixSeconds: .min),
            verdict: dead("holds \(Int64.min), not a Unix time"),
            cloudStack: "ALIVE"
        ),
        .init(
            name: "storage error",
            reading: .unreadable("EIO"),
            verdict: .noVerdict("cannot read \(file): EIO"),
            cloudStack: "ALIVE (or a hang)"
        ),
    ]

    @Test(arguments: heartbeatCases)
    func heartbeatCheck(_ testCase: HeartbeatCase) {
        let verdict = CloudStackDropInHeartbeatCheck.decide(
            testCase.reading,
            now: Self.now,
            maxIntervalSeconds: 60,
            file: Self.file
        )
        #expect(verdict == testCase.verdict)
        if case .dead(let line) = verdict { #expect(line.contains("DEAD")) }
    }

    @Test func scriptPathsAreTheScriptsOwn() {
        #expect(Self.file == "/mnt/p1/KVMHA//hb-10.0.0.5")
        #expect(
            CloudStackDropInActivity.scriptPath(mountPoint: "/mnt/p1", host: Self.host) == "/mnt/p1/KVMHA/ac-10.0.0.5"
        )
        #expect(CloudStackDropInVerdict.aliveLine == "=====> ALIVE <=====")
        #expect(CloudStackDropInVerdict.alive.line == "=====> ALIVE <=====")
        #expect(CloudStackDropInVerdict.noVerdict("x").line == nil)
    }

    // MARK: vm-activity

    static let suspect: Int64 = now - 300
    static let checker: Int64 = now - 1
    static let memoFile = "/mnt/p1/KVMHA/ac-10.0.0.5"
    static let stale = HeartbeatFileReading.written(unixSeconds: now - 600)

    static let noMemoDead =
        "=====> Considering host as DEAD due to file [\(memoFile)] does not exists and condition "
        + "[latestUpdateTime -gt SuspectTime] has not been satisfied. <======"
    static let movedBackDead =
        "=====> Considering host as DEAD due to file [\(memoFile)] exist, condition [suspectTimeDiff -lt 0] was "
        + "satisfied and [latestUpdateTime -gt SuspectTime] has not been satisfied. <======"
    static let sincePreviousDead =
        "=====> Considering host as DEAD due to file [\(memoFile)] exist and conditions [suspectTimeDiff -lt 0] "
        + "and [latestUpdateTime -gt SuspectTime] have not been satisfied. <======"

    struct ActivityCase: Sendable, CustomTestStringConvertible {
        var name: String
        var listGiven = true
        var storage: ActivityStorage
        var verdict: CloudStackDropInVerdict
        /// The memo line written (nil: none).
        var memo: String?
        var testDescription: String { name }
    }

    static func memo(_ s: Int64, _ latest: Int64?, _ c: Int64 = now - 60) -> MemoReading {
        .present(ActivityMemo(suspectTime: s, latestMtime: latest, checkerTime: c))
    }

    static let s = suspect
    static let c = checker

    static let activityCases: [ActivityCase] = [
        .init(
            name: "fresh heartbeat: ALIVE, no memo",
            listGiven: false,
            storage: .read(heartbeat: .written(unixSeconds: now - 60), memo: .missing, volumes: []),
            verdict: .alive,
            memo: nil
        ),
        .init(
            name: "stale heartbeat, empty -u: DEAD",
            listGiven: false,
            storage: .read(heartbeat: stale, memo: .missing, volumes: []),
            verdict: .dead("=====> Considering host as DEAD due to empty UUIDList <======"),
            memo: nil
        ),
        .init(
            name: "-u without names (','): on to the memo with an empty mtime, as the script",
            storage: .read(heartbeat: stale, memo: .missing, volumes: []),
            verdict: .dead(noMemoDead),
            memo: "\(s)::\(c)"
        ),
        .init(
            name: "no memo, written after the suspect time: ALIVE",
            storage: .read(heartbeat: .missing, memo: .missing, volumes: [.modified(atSeconds: s + 1), .missing]),
            verdict: .alive,
            memo: "\(s):\(s + 1):\(c)"
        ),
        .init(
            name: "no memo, not written since: DEAD",
            storage: .read(heartbeat: stale, memo: .missing, volumes: [.modified(atSeconds: s)]),
            verdict: .dead(noMemoDead),
            memo: "\(s):\(s):\(c)"
        ),
        .init(
            name: "memo, written since the previous check: ALIVE",
            storage: .read(heartbeat: stale, memo: memo(s - 60, s - 10), volumes: [.modified(atSeconds: s - 9)]),
            verdict: .alive,
            memo: "\(s):\(s - 9):\(c)"
        ),
        .init(
            name: "memo, not written since the previous check: DEAD",
            storage: .read(heartbeat: stale, memo: memo(s - 60, s - 10), volumes: [.modified(atSeconds: s - 10)]),
            verdict: .dead(sincePreviousDead),
            memo: "\(s):\(s - 10):\(c)"
        ),
        .init(
            name: "memo with a later suspect time, not written since this one: DEAD",
            storage: .read(heartbeat: stale, memo: memo(s + 60, s - 100), volumes: [.modified(atSeconds: s - 50)]),
            verdict: .dead(movedBackDead),
            memo: "\(s):\(s - 50):\(c)"
        ),
        .init(
            name: "memo S::C: compared with C, as the script's word splitting does",
            storage: .read(heartbeat: stale, memo: memo(s - 60, nil, s + 20), volumes: [.modified(atSeconds: s + 10)]),
            verdict: .dead(sincePreviousDead),
            memo: "\(s):\(s + 10):\(c)"
        ),
        .init(
            name: "memo S::C, written after C: ALIVE",
            storage: .read(heartbeat: stale, memo: memo(s - 60, nil, s + 20), volumes: [.modified(atSeconds: s + 21)]),
            verdict: .alive,
            memo: "\(s):\(s + 21):\(c)"
        ),
        .init(
            name: "garbage memo: as absent, with its reason in the line",
            storage: .read(
                heartbeat: stale,
                memo: .unusable("activity memo is empty"),
                volumes: [.modified(atSeconds: s)]
            ),
            verdict: .dead(
                "=====> Considering host as DEAD due to file [\(memoFile)] holding no memo (activity memo is empty) "
                    + "and condition [latestUpdateTime -gt SuspectTime] has not been satisfied. <======"
            ),
            memo: "\(s):\(s):\(c)"
        ),
        .init(
            name: "pool unreadable: no verdict, no memo",
            storage: .unreadable("did not return within 3s"),
            verdict: .noVerdict("pool unreadable: did not return within 3s"),
            memo: nil
        ),
        .init(
            name: "a stat timed out, the rest old: no verdict",
            storage: .read(heartbeat: stale, memo: .missing, volumes: [.modified(atSeconds: s - 5), .timedOut]),
            verdict: .noVerdict("1 volume(s) could not be stat'ed and the others showed no activity"),
            memo: nil
        ),
        .init(
            name: "a stat failed but another was written: ALIVE",
            storage: .read(heartbeat: stale, memo: .missing, volumes: [.modified(atSeconds: s + 5), .failed("EIO")]),
            verdict: .alive,
            memo: "\(s):\(s + 5):\(c)"
        ),
    ]

    @Test(arguments: activityCases)
    func vmActivity(_ testCase: ActivityCase) {
        let outcome = CloudStackDropInActivity.decide(
            .init(
                suspectTime: Self.suspect,
                checkerTime: Self.checker,
                now: Self.now,
                volumeListGiven: testCase.listGiven,
                storage: testCase.storage
            ),
            memoFile: Self.memoFile
        )
        #expect(outcome.verdict == testCase.verdict)
        #expect(outcome.memoToWrite?.description == testCase.memo)
    }

    @Test func scriptViewOnlyFillsAnEmptyMtime() {
        let full = Self.memo(1, 2, 3)
        #expect(CloudStackDropInActivity.scriptView(full) == full)
        #expect(CloudStackDropInActivity.scriptView(Self.memo(1, nil, 3)) == Self.memo(1, 3, 3))
        #expect(CloudStackDropInActivity.scriptView(.missing) == .missing)
    }
}
