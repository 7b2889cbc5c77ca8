import Foundation

/// A value shared between test code, reader threads and waiters, guarded by one `NSCondition`.
///
/// Every `withLock` wakes the threads blocked in `wait(until:_:)`, so blocking waits resume on
/// events rather than polling. (`Synchronization.Mutex` would need macOS 15; the package allows 14.)
final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only read or written while `condition` is locked.
    private let condition = NSCondition()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return try body(&value)
    }

    /// Blocks the calling thread until `isDone` holds or `deadline` passes; returns whether it holds.
    func wait(until deadline: ContinuousClock.Instant, _ isDone: (Value) -> Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !isDone(value) {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { return false }
            let (seconds, attoseconds) = remaining.components
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(seconds) + Double(attoseconds) / 1e18))
        }
        return true
    }
}
