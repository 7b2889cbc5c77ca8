import HeartbeatCore
import Testing

/// One thing that happens in a timeline: time passes, the peer writes, the pool shows something, our own
/// storage fails or recovers, or we look at the verdict.
enum Step: Sendable, CustomStringConvertible {
    /// Time passes on the checker's monotonic clock (and on both wall clocks).
    case wait(Duration)
    /// The peer beats: same incarnation and boot, sequence + 1; we read the new record.
    case beat
    /// The sidecar on the peer restarts: new incarnation, sequence back to 1.
    case restart
    /// The peer reboots: new boot id, same incarnation text, sequence back to 1.
    case reboot
    /// We read the peer's last record again, unchanged.
    case reread
    /// We read a record of the same incarnation whose sequence is `n` lower (a restored old file).
    case replay(UInt64)
    case missing
    case unusable(RecordProblem)
    /// The peer's wall clock runs this many milliseconds ahead of ours (negative: behind).
    case peerClock(Int64)
    case storageFails
    case storageRecovers
    /// The verdict now must have this liveness and reason code.
    case expect(Liveness, String)

    var description: String {
        switch self {
        case .wait(let duration): "wait \(duration)"
        case .beat: "beat"
        case .restart: "restart"
        case .reboot: "reboot"
        case .reread: "reread"
        case .replay(let n): "replay -\(n)"
        case .missing: "missing"
        case .unusable(let problem): "unusable(\(problem.code))"
        case .peerClock(let ms): "peer clock \(ms) ms"
        case .storageFails: "storage fails"
        case .storageRecovers: "storage recovers"
        case .expect(let liveness, let code): "expect \(liveness.rawValue) \(code)"
        }
    }
}

/// A checker watching one peer on one pool, on a manual clock.
struct Timeline {
    static let wallStartMs: Int64 = 1_700_000_000_000

    let clock = ManualClock()
    var liveness: PeerLiveness<ManualClock>
    var storage: OwnStorageHealth<ManualClock.Instant>
    var wallNowMs = wallStartMs
    var peerClockOffsetMs: Int64 = 0
    var sequence: UInt64 = 0
    var incarnation = 1
    var boot = 1
    var lastWritten: HeartbeatRecord?

    init(deadAfter: Duration = .seconds(30), skewAllowance: Duration? = nil) {
        liveness = PeerLiveness(deadAfter: deadAfter, skewAllowance: skewAllowance)
        storage = .healthy(since: clock.now)
    }

    var verdict: PeerVerdict { liveness.verdict(at: clock.now, ownStorage: storage, wallNowMs: wallNowMs) }

    mutating func write() {
        let record = Fixture.record(
            sequence: sequence,
            incarnation: "inc-\(incarnation)",
            bootID: "boot-\(boot)",
            wallTimeMs: wallNowMs + peerClockOffsetMs,
            vms: [Fixture.vm]
        )
        lastWritten = record
        liveness.observe(.record(record), at: clock.now)
    }

    mutating func apply(_ step: Step) {
        switch step {
        case .wait(let duration):
            clock.advance(by: duration)
            let (seconds, attoseconds) = duration.components
            wallNowMs += seconds * 1000 + attoseconds / 1_000_000_000_000_000
        case .beat:
            sequence += 1
            write()
        case .restart:
            incarnation += 1
            sequence = 1
            write()
        case .reboot:
            boot += 1
            sequence = 1
            write()
        case .reread:
            liveness.observe(.record(lastWritten!), at: clock.now)
        case .replay(let n):
            var old = lastWritten!
            old.sequence -= n
            liveness.observe(.record(old), at: clock.now)
        case .missing:
            liveness.observe(.missing, at: clock.now)
        case .unusable(let problem):
            liveness.observe(.unusable(problem), at: clock.now)
        case .peerClock(let offset):
            peerClockOffsetMs = offset
        case .storageFails:
            storage = .failing(since: clock.now, reason: "read KVMHA/kvmha: timed out after 4s")
        case .storageRecovers:
            storage = .healthy(since: clock.now)
        case .expect:
            break
        }
    }
}

struct VerdictScenario: Sendable, CustomTestStringConvertible {
    var name: String
    var skewAllowance: Duration? = nil
    var steps: [Step]
    var testDescription: String { name }
}

extension Duration {
    /// The smallest step a `Duration` can take.
    static let attosecond = Duration(secondsComponent: 0, attosecondsComponent: 1)
}

private let tick = Duration.attosecond

/// Every branch of `PeerLiveness.verdict`, as timelines; deadAfter is 30 s, the peer beats every 5 s.
let verdictScenarios: [VerdictScenario] = [
    VerdictScenario(
        name: "never seen: unknown, also after an hour",
        steps: [.expect(.unknown, "never-seen"), .wait(.seconds(3600)), .expect(.unknown, "never-seen")]
    ),
    VerdictScenario(
        name: "a record that was never there is never seen, not dead",
        steps: [.missing, .wait(.seconds(31)), .missing, .expect(.unknown, "never-seen")]
    ),
    VerdictScenario(
        name: "first sight is watching until a change, then alive",
        steps: [
            .beat, .expect(.unknown, "watching"), .wait(.seconds(5)), .expect(.unknown, "watching"), .beat,
            .expect(.alive, "changing"),
        ]
    ),
    VerdictScenario(
        name: "first sight and no change for deadAfter of watching: dead, not before",
        steps: [
            .beat, .wait(.seconds(30) - tick), .reread, .expect(.unknown, "watching"), .wait(tick),
            .expect(.dead, "no-change"),
        ]
    ),
    VerdictScenario(
        name: "change, then silence: alive until deadAfter, dead at deadAfter",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .wait(.seconds(30) - tick), .expect(.alive, "changing"), .wait(tick),
            .expect(.dead, "no-change"), .wait(.seconds(3600)), .expect(.dead, "no-change"),
        ]
    ),
    VerdictScenario(
        name: "steady beats keep it alive for an hour",
        steps: [.beat] + Array(repeating: [Step.wait(.seconds(5)), .beat], count: 720).flatMap { $0 } + [
            .expect(.alive, "changing")
        ]
    ),
    VerdictScenario(
        name: "a beat just before deadAfter restarts the count",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .wait(.seconds(30) - tick), .beat, .wait(.seconds(30) - tick),
            .expect(.alive, "changing"), .wait(tick), .expect(.dead, "no-change"),
        ]
    ),
    VerdictScenario(
        name: "a dead peer that comes back is alive again",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .wait(.seconds(40)), .expect(.dead, "no-change"), .restart,
            .expect(.alive, "changing"),
        ]
    ),
    VerdictScenario(
        name: "new incarnation (lower sequence) counts as change",
        steps: [
            .beat, .beat, .beat, .wait(.seconds(29)), .restart, .wait(.seconds(29)), .expect(.alive, "changing"),
            .wait(.seconds(1)), .expect(.dead, "no-change"),
        ]
    ),
    VerdictScenario(
        name: "new boot id (same incarnation text, lower sequence) counts as change",
        steps: [
            .beat, .beat, .wait(.seconds(29)), .reboot, .wait(.seconds(29)), .expect(.alive, "changing"),
            .wait(.seconds(1)), .expect(.dead, "no-change"),
        ]
    ),
    VerdictScenario(
        name: "first change seen is a restart: alive",
        steps: [.beat, .wait(.seconds(20)), .restart, .expect(.alive, "changing")]
    ),
    VerdictScenario(
        name: "first change seen is a reboot: alive",
        steps: [.beat, .wait(.seconds(20)), .reboot, .expect(.alive, "changing")]
    ),
    VerdictScenario(
        name: "sequence going backwards in the same incarnation is a replay: unknown, never alive",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .wait(.seconds(5)), .replay(1), .wait(.seconds(25) - tick),
            .replay(1), .expect(.unknown, "replayed-record"), .wait(tick), .expect(.unknown, "replayed-record"),
            .reread, .expect(.dead, "no-change"),
        ]
    ),
    VerdictScenario(
        name: "only a replayed record after first sight is a replay, however long it stays",
        steps: [
            .beat, .wait(.seconds(10)), .replay(1), .expect(.unknown, "replayed-record"), .wait(.seconds(20)),
            .expect(.unknown, "replayed-record"),
        ]
    ),
    VerdictScenario(
        name: "the same record read again and again is not a change",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .wait(.seconds(10)), .reread, .wait(.seconds(10)), .reread,
            .wait(.seconds(10)), .reread, .expect(.dead, "no-change"),
        ]
    ),
    VerdictScenario(
        name: "own storage failing: unknown although the peer was just seen changing",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .storageFails, .expect(.unknown, "own-storage-failing"),
        ]
    ),
    VerdictScenario(
        name: "own storage failing: unknown although the peer would be dead",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .wait(.seconds(60)), .expect(.dead, "no-change"), .storageFails,
            .expect(.unknown, "own-storage-failing"), .wait(.seconds(600)), .expect(.unknown, "own-storage-failing"),
        ]
    ),
    VerdictScenario(
        name: "own storage failing: unknown for a peer never seen and for an unusable record",
        steps: [
            .storageFails, .expect(.unknown, "own-storage-failing"), .unusable(.truncated),
            .expect(.unknown, "own-storage-failing"),
        ]
    ),
    VerdictScenario(
        name: "whole-storage stall condemns nobody: silence counts from our recovery",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .storageFails, .wait(.seconds(120)),
            .expect(.unknown, "own-storage-failing"), .storageRecovers, .expect(.unknown, "watching"),
            .wait(.seconds(30) - tick), .expect(.unknown, "watching"), .wait(tick), .expect(.dead, "no-change"),
        ]
    ),
    VerdictScenario(
        name: "a short stall: alive until last change + deadAfter, watching until recovery + deadAfter, then dead",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .wait(.seconds(10)), .storageFails, .wait(.seconds(2)),
            .storageRecovers, .wait(.seconds(18) - tick), .expect(.alive, "changing"), .wait(tick),
            .expect(.unknown, "watching"), .wait(.seconds(12) - tick), .expect(.unknown, "watching"), .wait(tick),
            .expect(.dead, "no-change"),
        ]
    ),
    VerdictScenario(
        name: "peer kept beating through our outage: alive as soon as we read it again",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .storageFails, .wait(.seconds(90)), .storageRecovers, .beat,
            .expect(.alive, "changing"),
        ]
    ),
    VerdictScenario(
        name: "record missing after seen: alive within deadAfter of the last change, then dead (record-missing)",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .wait(.seconds(5)), .missing, .expect(.alive, "changing"),
            .wait(.seconds(25) - tick), .missing, .expect(.alive, "changing"), .wait(tick),
            .expect(.dead, "record-missing"),
        ]
    ),
    VerdictScenario(
        name: "record missing after first sight only: watching, then dead (record-missing)",
        steps: [
            .beat, .missing, .expect(.unknown, "watching"), .wait(.seconds(30)), .expect(.dead, "record-missing"),
        ]
    ),
    VerdictScenario(
        name: "record missing, then back and changing: alive",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .missing, .wait(.seconds(40)), .expect(.dead, "record-missing"), .beat,
            .expect(.alive, "changing"),
        ]
    ),
    VerdictScenario(
        name: "record missing, then the same old record back: dead for no change, not missing",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .missing, .wait(.seconds(40)), .reread, .expect(.dead, "no-change"),
        ]
    ),
    VerdictScenario(
        name: "unusable record: unknown with the problem, however long",
        steps: [
            .unusable(.badChecksum(expected: "00000000", actual: "1a2b3c4d")),
            .expect(.unknown, "unusable-record:bad-checksum"), .wait(.seconds(3600)),
            .expect(.unknown, "unusable-record:bad-checksum"),
        ]
    ),
    VerdictScenario(
        name: "unusable after alive: unknown (never dead on unreadable content); good record again: alive",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .unusable(.truncated), .expect(.unknown, "unusable-record:truncated"),
            .wait(.seconds(60)), .unusable(.notUTF8), .expect(.unknown, "unusable-record:not-utf8"), .beat,
            .expect(.alive, "changing"),
        ]
    ),
    VerdictScenario(
        name: "unusable, then a usable but unchanged record: the problem clears, silence judged as usual",
        steps: [
            .beat, .wait(.seconds(5)), .beat, .unusable(.empty), .wait(.seconds(40)), .reread,
            .expect(.dead, "no-change"),
        ]
    ),
    VerdictScenario(
        name: "unusable, then missing, never a record: never seen",
        steps: [.unusable(.empty), .missing, .wait(.seconds(60)), .expect(.unknown, "never-seen")]
    ),
    VerdictScenario(
        name: "skew fallback off by default: an hour-old record is watched, not called dead",
        steps: [
            .peerClock(-3_600_000), .beat, .expect(.unknown, "watching"), .wait(.seconds(30) - tick),
            .expect(.unknown, "watching"),
        ]
    ),
    VerdictScenario(
        name: "skew fallback on: never seen changing and older than deadAfter + allowance: dead by wall clock",
        skewAllowance: .seconds(60),
        steps: [.peerClock(-3_600_000), .beat, .expect(.dead, "wall-clock-age")]
    ),
    VerdictScenario(
        name: "skew fallback on: age exactly deadAfter + allowance is not enough, one millisecond more is",
        skewAllowance: .seconds(60),
        steps: [
            .peerClock(-90_000), .beat, .expect(.unknown, "watching"), .wait(.milliseconds(1)),
            .expect(.dead, "wall-clock-age"),
        ]
    ),
    VerdictScenario(
        name: "skew fallback on: a fresh record is watched",
        skewAllowance: .seconds(60),
        steps: [.beat, .expect(.unknown, "watching")]
    ),
    VerdictScenario(
        name: "skew fallback on: never used once the peer was seen changing",
        skewAllowance: .seconds(60),
        steps: [
            .peerClock(-3_600_000), .beat, .wait(.seconds(5)), .beat, .expect(.alive, "changing"),
            .wait(.seconds(10)), .storageFails, .storageRecovers, .wait(.seconds(25)),
            .expect(.unknown, "watching"),
        ]
    ),
    VerdictScenario(
        name: "skew fallback on: own storage failing still wins",
        skewAllowance: .seconds(60),
        steps: [.peerClock(-3_600_000), .beat, .storageFails, .expect(.unknown, "own-storage-failing")]
    ),
    VerdictScenario(
        name: "peer clock one hour ahead: alive while beating, dead only by change",
        steps: [.peerClock(3_600_000), .beat]
            + Array(repeating: [Step.wait(.seconds(5)), .beat], count: 24)
            .flatMap { $0 } + [.expect(.alive, "changing"), .wait(.seconds(30)), .expect(.dead, "no-change")]
    ),
    VerdictScenario(
        name: "peer clock one hour behind: alive while beating, no false dead",
        steps: [.peerClock(-3_600_000), .beat]
            + Array(repeating: [Step.wait(.seconds(5)), .beat], count: 24)
            .flatMap { $0 } + [.expect(.alive, "changing")]
    ),
]

@Suite("PeerLiveness verdicts")
struct PeerLivenessTests {
    @Test(arguments: verdictScenarios)
    func timeline(_ scenario: VerdictScenario) {
        var timeline = Timeline(skewAllowance: scenario.skewAllowance)
        var checks = 0
        for (index, step) in scenario.steps.enumerated() {
            timeline.apply(step)
            guard case .expect(let liveness, let code) = step else { continue }
            checks += 1
            let verdict = timeline.verdict
            let got = "\(verdict.liveness.rawValue) \(verdict.reason.code)"
            #expect(
                verdict.liveness == liveness && verdict.reason.code == code,
                "step \(index) (\(step)) at t=\(timeline.clock.now.offset): got \(got)"
            )
        }
        #expect(checks > 0, "a scenario must check something")
    }

    static let ticks: [Duration] = [.attosecond, .nanoseconds(1), .milliseconds(1), .seconds(1)]
    static let deadAfters: [Duration] = [.seconds(30), .seconds(3), .seconds(140), .milliseconds(1500)]

    /// Dead after `deadAfter` without change, and not one tick before, at several scales.
    @Test(arguments: ticks, deadAfters)
    func deadExactlyAtDeadAfter(tick: Duration, deadAfter: Duration) {
        var timeline = Timeline(deadAfter: deadAfter)
        timeline.apply(.beat)
        timeline.apply(.wait(deadAfter / 10))
        timeline.apply(.beat)
        timeline.apply(.wait(deadAfter - tick))
        #expect(timeline.verdict.liveness == .alive)
        timeline.apply(.wait(tick))
        #expect(timeline.verdict.liveness == .dead)
        #expect(timeline.verdict.reason == .noChange)
    }

    @Test(arguments: ticks)
    func recoveryRestartsTheCountExactly(tick: Duration) {
        var timeline = Timeline()
        timeline.apply(.beat)
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.beat)
        timeline.apply(.storageFails)
        timeline.apply(.wait(.seconds(45)))
        timeline.apply(.storageRecovers)
        timeline.apply(.wait(.seconds(30) - tick))
        #expect(timeline.verdict.liveness == .unknown)
        #expect(timeline.verdict.reason == .watching)
        timeline.apply(.wait(tick))
        #expect(timeline.verdict.liveness == .dead)
    }

    @Test func evidenceDescribesWhatWasSeen() {
        var timeline = Timeline()
        timeline.apply(.beat)
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.beat)
        timeline.apply(.wait(.milliseconds(2500)))
        let verdict = timeline.verdict
        #expect(verdict.liveness == .alive)
        #expect(verdict.evidence.sequence == 2)
        #expect(verdict.evidence.incarnation == "inc-1")
        #expect(verdict.evidence.secondsSinceChange == 2.5)
        #expect(verdict.evidence.secondsObserved == 7.5)
        #expect(verdict.evidence.wallClockAgeSeconds == 2.5)
        #expect(verdict.evidence.lastRecord == timeline.lastWritten)
        #expect(verdict.evidence.lastRecord?.vms == [Fixture.vm], "the VM list survives for recovery")
        #expect(verdict.description == "alive (record changing)")
    }

    @Test func evidenceIsKeptWhenTheVerdictIsDeadOrUnknown() {
        var timeline = Timeline()
        timeline.apply(.beat)
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.beat)
        timeline.apply(.wait(.seconds(40)))
        let dead = timeline.verdict
        #expect(dead.liveness == .dead)
        #expect(dead.evidence.secondsSinceChange == 40)
        #expect(dead.evidence.lastRecord?.vms == [Fixture.vm], "a dead peer's last VM list stays readable")
        timeline.apply(.storageFails)
        #expect(timeline.verdict.evidence == dead.evidence)
        timeline.apply(.storageRecovers)
        timeline.apply(.unusable(.empty))
        #expect(timeline.verdict.evidence.sequence == 2)
    }

    @Test func neverSeenHasNoEvidence() {
        let timeline = Timeline()
        #expect(timeline.verdict.evidence == VerdictEvidence())
    }

    @Test func sequenceRegressionIsFlaggedAndIgnored() {
        var timeline = Timeline()
        timeline.apply(.beat)
        timeline.apply(.beat)
        timeline.apply(.beat)
        timeline.apply(.reread)
        #expect(!timeline.liveness.sawSequenceRegression, "the same record again is no regression")
        #expect(timeline.liveness.changesSeen == 2)
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.replay(2))
        #expect(timeline.liveness.sawSequenceRegression)
        #expect(timeline.liveness.changesSeen == 2)
        #expect(timeline.liveness.lastRecord?.sequence == 3, "the replayed record does not replace the newer one")
        #expect(timeline.verdict.evidence.secondsSinceChange == 5)
    }

    @Test func aNewIncarnationWithALowerSequenceIsNotARegression() {
        var timeline = Timeline()
        timeline.apply(.beat)
        timeline.apply(.beat)
        timeline.apply(.restart)
        #expect(!timeline.liveness.sawSequenceRegression)
        #expect(timeline.liveness.lastRecord?.incarnation == "inc-2")
        #expect(timeline.liveness.lastRecord?.sequence == 1)
    }

    @Test func observationStateIsTracked() {
        var timeline = Timeline()
        timeline.apply(.missing)
        #expect(timeline.liveness.firstObserved == nil)
        #expect(!timeline.liveness.currentlyMissing, "missing before ever seen is not 'missing'")
        timeline.apply(.wait(.seconds(1)))
        timeline.apply(.beat)
        #expect(timeline.liveness.firstObserved == timeline.clock.now)
        timeline.apply(.missing)
        #expect(timeline.liveness.currentlyMissing)
        timeline.apply(.unusable(.notARecord))
        #expect(!timeline.liveness.currentlyMissing)
        #expect(timeline.liveness.currentProblem == .notARecord)
        timeline.apply(.beat)
        #expect(timeline.liveness.currentProblem == nil)
    }

    /// Wall-clock age is evidence: a peer an hour ahead or behind shows it, and the verdict does not move.
    @Test(arguments: [Int64(3_600_000), -3_600_000])
    func skewShowsInEvidenceOnly(peerOffsetMs: Int64) {
        var timeline = Timeline()
        timeline.apply(.peerClock(peerOffsetMs))
        timeline.apply(.beat)
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.beat)
        timeline.apply(.wait(.seconds(2)))
        let verdict = timeline.verdict
        #expect(verdict.liveness == .alive)
        #expect(verdict.evidence.wallClockAgeSeconds == Double(-peerOffsetMs) / 1000 + 2)
        #expect(verdict.evidence.secondsSinceChange == 2, "the monotonic evidence is unaffected")
    }

    /// `wallTimeMs` comes from another host: any Int64 must give evidence, not a trap.
    @Test(arguments: [Int64.min, Int64.max, 0, -1])
    func extremeWallTimesDoNotTrap(wallTimeMs: Int64) {
        let clock = ManualClock()
        var liveness = PeerLiveness<ManualClock>(deadAfter: .seconds(30), skewAllowance: .seconds(60))
        liveness.observe(.record(Fixture.record(wallTimeMs: wallTimeMs)), at: clock.now)
        for wallNowMs in [Int64.min, Int64.max, 1_700_000_000_000] {
            let verdict = liveness.verdict(at: clock.now, ownStorage: .healthy(since: clock.now), wallNowMs: wallNowMs)
            let age = verdict.evidence.wallClockAgeSeconds
            #expect(age != nil && age!.isFinite)
            #expect(verdict.liveness != .alive)
        }
    }

    /// The state machine is generic over `Clock`: it works the same on the real monotonic clock's instants.
    @Test func worksWithTheContinuousClock() {
        let start = ContinuousClock().now
        var liveness = PeerLiveness<ContinuousClock>(deadAfter: .seconds(30))
        liveness.observe(.record(Fixture.record(sequence: 1)), at: start)
        liveness.observe(.record(Fixture.record(sequence: 2)), at: start.advanced(by: .seconds(5)))
        let healthy = OwnStorageHealth<ContinuousClock.Instant>.healthy(since: start)
        let wall = Fixture.record().wallTimeMs
        #expect(
            liveness.verdict(at: start.advanced(by: .seconds(34)), ownStorage: healthy, wallNowMs: wall).liveness
                == .alive
        )
        #expect(
            liveness.verdict(at: start.advanced(by: .seconds(35)), ownStorage: healthy, wallNowMs: wall).liveness
                == .dead
        )
    }

    @Test func reasonCodesAndDescriptionsAreDistinct() {
        let reasons: [VerdictReason] = [
            .changing, .noChange, .recordMissing, .wallClockAge, .watching, .neverSeen, .unusableRecord(.empty),
            .ownStorageFailing("x"), .aliveOnSomePool, .deadOnEveryReadablePool, .noReadablePool, .poolsDisagree,
        ]
        #expect(Set(reasons.map(\.code)).count == reasons.count)
        #expect(Set(reasons.map(\.description)).count == reasons.count)
        #expect(VerdictReason.unusableRecord(.oversized(9)).code == "unusable-record:oversized")
        #expect(VerdictReason.ownStorageFailing("EIO").description.contains("EIO"))
    }
}
