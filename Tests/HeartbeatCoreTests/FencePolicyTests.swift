import HeartbeatCore
import Testing

/// The self-fencing rule on a manual clock: fence only when no pool took a beat for fenceAfter.
struct FencePolicyTests {
    typealias Policy = FencePolicy<ManualClock>
    let clock = ManualClock()

    func policy(pools: [String] = ["p1", "p2"], after: Duration = .seconds(20), delay: Duration = .seconds(5)) -> Policy {
        Policy(fenceAfter: after, fenceDelay: delay, pools: pools, start: clock.now)
    }

    /// Beats every 5 s on `good` pools only, for `duration`; returns every action in order.
    func run(_ policy: inout Policy, good: [String], bad: [String] = [], for duration: Duration, step: Duration = .seconds(5)) -> [Policy.Action] {
        var actions: [Policy.Action] = []
        var elapsed = Duration.zero
        while elapsed < duration {
            clock.advance(by: step)
            elapsed += step
            for pool in good { actions += policy.beat(pool: pool, succeeded: true, at: clock.now) }
            for pool in bad { actions += policy.beat(pool: pool, succeeded: false, at: clock.now) }
            actions += policy.tick(at: clock.now)
        }
        return actions
    }

    @Test func healthyPoolsNeverFence() {
        var policy = policy()
        #expect(run(&policy, good: ["p1", "p2"], for: .seconds(300)).isEmpty)
        #expect(policy.state == .healthy)
    }

    @Test func oneBadPoolAmongGoodOnesIsAnAlertNotAFence() {
        var policy = policy()
        let actions = run(&policy, good: ["p2"], bad: ["p1"], for: .seconds(300))
        #expect(actions == [.alert(failingPools: ["p1"])])
        #expect(policy.state == .degraded(failingPools: ["p1"]))
        // The pool comes back: the alert clears.
        #expect(run(&policy, good: ["p1", "p2"], for: .seconds(5)) == [.alertCleared])
    }

    @Test func noBeatAnywhereFencesAfterFenceAfterPlusDelayAndNotBefore() {
        var policy = policy()
        _ = run(&policy, good: ["p1", "p2"], for: .seconds(10))
        // Every pool goes silent (beats stuck in storage report nothing: only ticks).
        var actions: [Policy.Action] = []
        for _ in 0..<19 {
            clock.advance(by: .seconds(1))
            actions += policy.tick(at: clock.now)
        }
        #expect(actions.isEmpty, "19 s of silence: nothing yet")
        clock.advance(by: .seconds(1))
        #expect(policy.tick(at: clock.now) == [.fenceScheduled(silentFor: .seconds(20))])
        clock.advance(by: .seconds(4))
        #expect(policy.tick(at: clock.now).isEmpty, "still within fenceDelay")
        clock.advance(by: .seconds(1))
        #expect(policy.tick(at: clock.now) == [.fence])
        #expect(policy.state == .fenced)
        clock.advance(by: .seconds(60))
        #expect(policy.tick(at: clock.now).isEmpty, "fences once")
    }

    @Test func failedBeatsCountAsSilenceToo() {
        var policy = policy(delay: .zero)
        let actions = run(&policy, good: [], bad: ["p1", "p2"], for: .seconds(20))
        #expect(actions == [.fenceScheduled(silentFor: .seconds(20)), .fence])
    }

    @Test func aBeatDuringTheDelayCallsItOff() {
        var policy = policy()
        clock.advance(by: .seconds(20))
        #expect(policy.tick(at: clock.now) == [.fenceScheduled(silentFor: .seconds(20))])
        clock.advance(by: .seconds(2))
        #expect(policy.beat(pool: "p2", succeeded: true, at: clock.now) == [.fenceAborted, .alert(failingPools: ["p1"])])
        clock.advance(by: .seconds(60))
        _ = policy.beat(pool: "p2", succeeded: true, at: clock.now)
        #expect(policy.tick(at: clock.now).isEmpty)
    }

    @Test func lateNoticeDoesNotStretchTheDelay() {
        // A tick that comes 3 s after the silence reached fenceAfter leaves only 2 s of delay.
        var policy = policy()
        clock.advance(by: .seconds(23))
        #expect(policy.tick(at: clock.now) == [.fenceScheduled(silentFor: .seconds(23))])
        clock.advance(by: .seconds(2))
        #expect(policy.tick(at: clock.now) == [.fence])
    }

    @Test func maintenanceDisarms() {
        var policy = policy()
        #expect(policy.setArmed(false, at: clock.now).isEmpty)
        #expect(run(&policy, good: [], bad: ["p1", "p2"], for: .seconds(300)).isEmpty)
        #expect(policy.state == .disarmed)
        // Re-armed: a full fenceAfter from now, not from the old silence.
        _ = policy.setArmed(true, at: clock.now)
        clock.advance(by: .seconds(19))
        #expect(policy.tick(at: clock.now).isEmpty)
        clock.advance(by: .seconds(1))
        #expect(policy.tick(at: clock.now) == [.fenceScheduled(silentFor: .seconds(20))])
    }

    @Test func disarmingDuringTheDelayAborts() {
        var policy = policy()
        clock.advance(by: .seconds(21))
        _ = policy.tick(at: clock.now)
        #expect(policy.setArmed(false, at: clock.now) == [.fenceAborted])
    }

    @Test func aPoolAddedLaterStartsItsClockWhenAdded() {
        var policy = policy(pools: ["p1"])
        _ = run(&policy, good: ["p1"], for: .seconds(100))
        policy.setPools(["p1", "p2"], at: clock.now)
        #expect(run(&policy, good: ["p1"], for: .seconds(15)).isEmpty)
        #expect(run(&policy, good: ["p1"], for: .seconds(5)) == [.alert(failingPools: ["p2"])])
    }

    @Test func noPoolsNoFence() {
        var policy = policy(pools: [])
        clock.advance(by: .seconds(600))
        #expect(policy.tick(at: clock.now).isEmpty)
    }
}
