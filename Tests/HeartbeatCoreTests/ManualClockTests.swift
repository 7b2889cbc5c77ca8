import HeartbeatCore
import Testing

@Suite("ManualClock")
struct ManualClockTests {
    @Test func movesOnlyWhenAdvanced() {
        let clock = ManualClock()
        let start = clock.now
        #expect(clock.now == start)
        clock.advance(by: .seconds(5))
        clock.advance(by: .milliseconds(250))
        #expect(start.duration(to: clock.now) == .milliseconds(5250))
        #expect(start < clock.now)
        #expect(start.advanced(by: .milliseconds(5250)) == clock.now)
        #expect(clock.minimumResolution == .zero)
    }

    @Test func aSleeperWakesWhenTimeIsAdvancedPastItsDeadline() async throws {
        let clock = ManualClock()
        let deadline = clock.now.advanced(by: .seconds(30))
        let sleeper = Task { try await clock.sleep(until: deadline, tolerance: nil) }
        clock.advance(by: .seconds(29))
        clock.advance(by: .seconds(1))
        try await sleeper.value
        #expect(clock.now == deadline)
    }

    @Test func aSleeperCanBeCancelled() async {
        let clock = ManualClock()
        let sleeper = Task { try await clock.sleep(until: clock.now.advanced(by: .seconds(30)), tolerance: nil) }
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
    }
}
