import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Sleeps on CLOCK_MONOTONIC through one thread of its own.
///
/// The daemon's timers do not go through `Task.sleep`: its dispatch timers never fire in a process whose
/// wall clock is shifted by libfaketime (how the clock-skew tests run hosts), whereas a condition variable
/// on CLOCK_MONOTONIC keeps exact time whatever the wall clock says — which is the point of judging peers
/// by a monotonic clock. One thread serves every sleeper.
public final class MonotonicSleeper: @unchecked Sendable {
    // @unchecked: `sleepers` and `nextID` are guarded by `mutex`.
    public static let shared = MonotonicSleeper()

    private struct Sleeper {
        let id: UInt64
        let deadline: Int64
        /// Runs on the timer thread when the deadline comes.
        let fire: @Sendable () -> Void
        /// Runs when the sleeper is cancelled before its deadline.
        let cancel: @Sendable () -> Void
    }

    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var sleepers: [Sleeper] = []
    private var nextID: UInt64 = 0

    private init() {
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&wake, &attributes)
        pthread_condattr_destroy(&attributes)
        let thread = Thread { self.loop() }
        thread.name = "kvmha-timer"
        thread.start()
    }

    /// Nanoseconds on CLOCK_MONOTONIC.
    public static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// Sleeps for `duration`; throws `CancellationError` when the task is cancelled.
    public func sleep(for duration: Duration) async throws {
        let deadline = Self.now() + max(0, duration.nanoseconds)
        let id = allocateID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                pthread_mutex_lock(&mutex)
                if Task.isCancelled {
                    pthread_mutex_unlock(&mutex)
                    continuation.resume(throwing: CancellationError())
                    return
                }
                insertLocked(
                    Sleeper(
                        id: id, deadline: deadline, fire: { continuation.resume() },
                        cancel: { continuation.resume(throwing: CancellationError()) }))
                pthread_mutex_unlock(&mutex)
            }
        } onCancel: {
            self.cancel(id)
        }
    }

    /// Runs `action` on the timer thread after `delay`. The action must be quick and must not block: it
    /// delays every other timer of the process. Returns an id for `cancel`.
    @discardableResult
    public func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        let deadline = Self.now() + max(0, delay.nanoseconds)
        let id = allocateID()
        pthread_mutex_lock(&mutex)
        insertLocked(Sleeper(id: id, deadline: deadline, fire: action, cancel: {}))
        pthread_mutex_unlock(&mutex)
        return id
    }

    /// Cancels a pending sleep or scheduled action; does nothing if it already ran.
    public func cancel(_ id: UInt64) {
        pthread_mutex_lock(&mutex)
        let index = sleepers.firstIndex { $0.id == id }
        let sleeper = index.map { sleepers.remove(at: $0) }
        pthread_mutex_unlock(&mutex)
        sleeper?.cancel()
    }

    private func insertLocked(_ sleeper: Sleeper) {
        let index = sleepers.firstIndex { $0.deadline > sleeper.deadline } ?? sleepers.endIndex
        sleepers.insert(sleeper, at: index)
        if index == 0 { pthread_cond_signal(&wake) }
    }

    private func allocateID() -> UInt64 {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        nextID += 1
        return nextID
    }

    private func loop() {
        pthread_mutex_lock(&mutex)
        while true {
            let now = Self.now()
            var due: [Sleeper] = []
            while let first = sleepers.first, first.deadline <= now { due.append(sleepers.removeFirst()) }
            if !due.isEmpty {
                pthread_mutex_unlock(&mutex)
                for sleeper in due { sleeper.fire() }
                pthread_mutex_lock(&mutex)
                continue
            }
            if let first = sleepers.first {
                monotonicTimedWait(&wake, &mutex, until: first.deadline)
            } else {
                pthread_cond_wait(&wake, &mutex)
            }
        }
    }
}

/// `pthread_cond_timedwait` on a CLOCK_MONOTONIC condition until `deadline` (nanoseconds), called with
/// `mutex` held. Under libfaketime (clock-skew tests) such a wait can return at once, long before its
/// deadline; then this pauses briefly outside the lock instead of letting the caller spin.
func monotonicTimedWait(_ condition: inout pthread_cond_t, _ mutex: inout pthread_mutex_t, until deadline: Int64) {
    var until = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
    let result = pthread_cond_timedwait(&condition, &mutex, &until)
    let remaining = deadline - MonotonicSleeper.now()
    if result == ETIMEDOUT && remaining > 1_000_000 {
        pthread_mutex_unlock(&mutex)
        usleep(useconds_t(min(remaining, 50_000_000) / 1000))
        pthread_mutex_lock(&mutex)
    }
}
