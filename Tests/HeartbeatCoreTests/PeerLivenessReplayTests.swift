import HeartbeatCore
import Testing

/// An old record copied back over a peer's file (issue 9, Show 1): `unknown (replayed record)`, never `alive`,
/// and never a reason to forget the newer record; on the manual clock.
@Suite("PeerLiveness replays")
struct PeerLivenessReplayTests {
    @Test func aSequenceGoingBackwardsIsUnknownWithTheReasonNotAlive() {
        var timeline = Timeline()
        timeline.apply(.beat)
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.beat)
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.beat)
        #expect(timeline.verdict.liveness == .alive)
        timeline.apply(.wait(.seconds(1)))
        timeline.apply(.replay(2))
        let verdict = timeline.verdict
        #expect(verdict.liveness == .unknown, "a replay must never read as alive: \(verdict)")
        #expect(verdict.reason == .replayedRecord(.sequenceWentBackwards))
        #expect(verdict.reason.code == "replayed-record")
        #expect(verdict.reason.description == "replayed record (sequence went backwards)")
        #expect(verdict.evidence.sequence == 3, "the evidence is the newest genuine record")
        #expect(timeline.liveness.lastRecord?.sequence == 3)
        #expect(timeline.liveness.currentReplay == .sequenceWentBackwards)
    }

    @Test func theReplayStaysUnknownWhileTheOldFileStays() {
        var timeline = Timeline()
        timeline.apply(.beat)
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.beat)
        for _ in 0..<10 {
            timeline.apply(.wait(.seconds(5)))
            timeline.apply(.replay(1))
            #expect(timeline.verdict.liveness == .unknown)
            #expect(timeline.verdict.reason.code == "replayed-record")
        }
    }

    @Test func thePeerWritingAgainEndsTheReplay() {
        var timeline = Timeline()
        timeline.apply(.beat)
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.beat)
        timeline.apply(.replay(1))
        #expect(timeline.verdict.reason.code == "replayed-record")
        timeline.apply(.wait(.seconds(1)))
        timeline.apply(.beat)
        #expect(timeline.verdict.liveness == .alive)
        #expect(timeline.verdict.reason == .changing)
        #expect(timeline.liveness.currentReplay == nil)
    }

    @Test func theNewestRecordReadAgainEndsTheReplayButIsNoChange() {
        var timeline = Timeline()
        timeline.apply(.beat)
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.beat)
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.replay(1))
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.reread)
        #expect(timeline.liveness.currentReplay == nil)
        #expect(timeline.verdict.liveness == .alive, "the last genuine change was 10 s ago")
        #expect(timeline.verdict.evidence.secondsSinceChange == 10, "the replay and the re-read changed nothing")
        timeline.apply(.wait(.seconds(20)))
        #expect(timeline.verdict.liveness == .dead, "silence is counted from the last genuine change")
    }

    @Test func aRecordOfAnIncarnationAlreadyLeftIsAReplay() {
        var timeline = Timeline()
        timeline.apply(.beat)
        timeline.apply(.beat)
        let old = timeline.lastWritten!
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.restart)
        timeline.apply(.wait(.seconds(5)))
        timeline.apply(.beat)
        #expect(timeline.verdict.liveness == .alive)
        // The old incarnation's file copied back: its sequence is higher, its incarnation differs, and yet
        // it is no restart.
        var copied = old
        copied.sequence += 100
        timeline.liveness.observe(.record(copied), at: timeline.clock.now)
        #expect(timeline.verdict.liveness == .unknown)
        #expect(timeline.verdict.reason == .replayedRecord(.incarnationLeft))
        #expect(timeline.verdict.reason.code == "replayed-record")
        #expect(timeline.liveness.lastRecord?.incarnation == "inc-2")
        timeline.apply(.wait(.seconds(1)))
        timeline.apply(.beat)
        #expect(timeline.verdict.liveness == .alive)
    }

    @Test func restartsAndRebootsAreNoReplays() {
        var timeline = Timeline()
        timeline.apply(.beat)
        timeline.apply(.beat)
        timeline.apply(.restart)
        #expect(timeline.verdict.reason == .changing)
        timeline.apply(.reboot)
        #expect(timeline.verdict.reason == .changing)
        timeline.apply(.beat)
        #expect(timeline.liveness.currentReplay == nil)
        #expect(!timeline.liveness.sawSequenceRegression)
    }

    @Test func anUntrustedRecordIsUnknownWithTheSignatureReason() {
        var timeline = Timeline()
        timeline.apply(.beat)
        timeline.apply(.wait(.seconds(1)))
        timeline.apply(.beat)
        let cases: [(SignatureProblem, String)] = [
            (.badSignature(keyID: "k1"), "unusable-record:bad-signature"),
            (.unsigned, "unusable-record:unsigned"),
            (.unknownKey("other"), "unusable-record:unknown-key"),
            (.retiredKey("k0"), "unusable-record:retired-key"),
            (.malformedSignature, "unusable-record:malformed-signature"),
        ]
        for (problem, code) in cases {
            timeline.liveness.observe(.untrusted(problem), at: timeline.clock.now)
            #expect(timeline.verdict.liveness == .unknown)
            #expect(timeline.verdict.reason == .untrustedRecord(problem))
            #expect(timeline.verdict.reason.code == code)
            #expect(timeline.verdict.evidence.sequence == 2, "the evidence is the last trusted record")
        }
        // Forged records for a long time: never alive, never dead.
        for _ in 0..<20 {
            timeline.apply(.wait(.seconds(5)))
            timeline.liveness.observe(.untrusted(.badSignature(keyID: "k1")), at: timeline.clock.now)
            #expect(timeline.verdict.liveness == .unknown)
        }
        timeline.apply(.beat)
        #expect(timeline.verdict.liveness == .alive, "a genuine record again is a change")
    }

    @Test func aForgedRecordOfANeverSeenHostIsUnknownNotNeverSeen() {
        var timeline = Timeline()
        timeline.liveness.observe(.untrusted(.badSignature(keyID: "k1")), at: timeline.clock.now)
        #expect(timeline.verdict.reason.code == "unusable-record:bad-signature")
        #expect(timeline.verdict.evidence.lastRecord == nil, "a forged record's VM list is never evidence")
        timeline.apply(.wait(.seconds(60)))
        #expect(timeline.verdict.liveness == .unknown)
    }

    @Test func theNewReasonsHaveDistinctCodes() {
        let reasons: [VerdictReason] = [
            .changing, .noChange, .recordMissing, .wallClockAge, .watching, .neverSeen, .unusableRecord(.empty),
            .unusableRecord(.truncated), .ownStorageFailing("x"), .aliveOnSomePool, .deadOnEveryReadablePool,
            .noReadablePool, .poolsDisagree, .replayedRecord(.sequenceWentBackwards),
            .untrustedRecord(.unsigned), .untrustedRecord(.unknownKey("a")),
            .untrustedRecord(.badSignature(keyID: "a")),
            .untrustedRecord(.retiredKey("a")), .untrustedRecord(.malformedSignature),
        ]
        #expect(Set(reasons.map(\.code)).count == reasons.count)
        #expect(
            VerdictReason.untrustedRecord(.badSignature(keyID: "k1")).description.contains("bad signature (key k1)")
        )
        #expect(VerdictReason.untrustedRecord(.unsigned).description.contains("unsigned record"))
        #expect(VerdictReason.untrustedRecord(.unknownKey("other")).description.contains("unknown key other"))
    }
}
