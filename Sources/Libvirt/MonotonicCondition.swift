#if canImport(Glibc)
import Glibc
#endif

/// A mutex and condition variable whose timed waits run on CLOCK_MONOTONIC.
///
/// `NSCondition.wait(until:)` takes a wall-clock `Date`: a clock step (NTP, an operator) would stretch or
/// cut a reconnect backoff by the size of the step. A deadline on the monotonic clock keeps the backoff what
/// it says whatever the wall clock does.
///
/// `@unchecked Sendable`: the pthread objects are made for use from many threads; they live in heap
/// allocations of their own so their addresses never change.
final class MonotonicCondition: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() {
        pthread_mutex_lock(mutex)
    }

    func unlock() {
        pthread_mutex_unlock(mutex)
    }

    func broadcast() {
        pthread_cond_broadcast(condition)
    }

    /// Waits for a broadcast (or a spurious wake-up). Call with the lock held.
    func wait() {
        pthread_cond_wait(condition, mutex)
    }

    /// Waits for a broadcast until `deadline` (from `Self.now()`); false once the deadline has passed, true
    /// on a wake-up (which may be spurious: re-check and call again). Call with the lock held.
    func wait(untilMonotonic deadline: Int64) -> Bool {
        guard Self.now() < deadline else {
            return false
        }
        var until = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        guard pthread_cond_timedwait(condition, mutex, &until) == ETIMEDOUT else {
            return true
        }
        let now = Self.now()
        guard now < deadline else {
            return false
        }
        // Timed out before the deadline: libfaketime (0.9.10, with FAKETIME_DONT_FAKE_MONOTONIC=1, as the
        // clock-skew tests run) rewrites the deadline of a monotonic condition variable as if it were wall
        // time, and the wait returns at once. Pause briefly outside the lock and report a wake-up, so the
        // caller re-checks and waits again: a short poll there instead of a busy loop, exact time elsewhere.
        pthread_mutex_unlock(mutex)
        var pause = timespec(tv_sec: 0, tv_nsec: Int(min(deadline - now, Self.fallbackPause)))
        nanosleep(&pause, nil)
        pthread_mutex_lock(mutex)
        return true
    }

    /// The longest pause when a timed wait ends early (see `wait(untilMonotonic:)`): 50 ms.
    private static let fallbackPause: Int64 = 50_000_000

    /// Nanoseconds on CLOCK_MONOTONIC.
    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}
