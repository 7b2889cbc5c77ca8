import Foundation
#if canImport(Glibc)
import Glibc
#endif
public import HeartbeatCore
import Synchronization

/// Why a pool call did not give an answer.
public enum PoolCallError: Error, Sendable, CustomStringConvertible {
    /// The call did not return within its deadline; it was abandoned (it may still be blocked).
    case timedOut(operation: String, after: Duration)
    /// An earlier call is still blocked past its deadline, so this one was refused at once.
    case stuck(operation: String, since: ContinuousClock.Instant)
    /// Storage answered with an error.
    case io(PoolIOError)
    /// The pool's backend could not be opened (mount, connect).
    case unavailable(String)
    /// The pool is being shut down.
    case stopped

    public var description: String {
        switch self {
        case .timedOut(let operation, let after): "\(operation) did not return within \(DurationText.format(after))"
        case .stuck(let operation, let since):
            "a previous call (\(operation)) has been blocked for \(DurationText.format(since.duration(to: .now)))"
        case .io(let error): error.description
        case .unavailable(let why): why
        case .stopped: "pool is shutting down"
        }
    }
}

/// Runs one pool's blocking storage calls on a thread of its own, each with a deadline.
///
/// Plain file I/O on a hung NFS mount blocks in the kernel, uninterruptibly. A call past its deadline is
/// abandoned: its caller gets `.timedOut` and the daemon keeps going. While that call stays blocked, new
/// calls are refused at once with `.stuck` instead of queueing behind it, so at most one thread per pool is
/// ever stuck, and the pool recovers by itself when the call returns. Beats (`.high`) go before scans.
///
/// Deadlines are enforced by a second thread, the watchdog, blocked on a timer file descriptor (`timerfd`)
/// that is armed for the earliest deadline of the running and queued calls and disarmed when none is left.
/// Re-arming is one system call and wakes nobody, so a call that returns in time costs the watchdog nothing:
/// it runs only when a deadline really passes.
///
/// **Timers.** `scheduleTimer(at:)` runs a short, non-blocking action at an instant — on this pool thread when it
/// is free (it waits for the earliest timer instead of idling, so the action costs no hand-off from another
/// thread), or on the watchdog when a call is still running at that instant (so a slow or stuck storage call
/// never delays a timer). The writer schedules its beats this way: one wake-up per beat, on the thread that
/// then writes it.
public final class PoolIOThread: @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `mutex`; `files` is touched only on the pool thread.
    public enum Priority: Sendable { case high, low }

    fileprivate struct Job {
        let name: String
        let deadline: ContinuousClock.Instant
        let timeout: Duration
        let work: (any PoolFiles) -> Void
        let finish: (PoolCallError) -> Void
        let isFinished: () -> Bool
    }

    fileprivate struct Timer {
        let id: UInt64
        let due: ContinuousClock.Instant
        let action: @Sendable () -> Void
        let orphaned: @Sendable () -> Void
    }

    private var high: [Job] = []
    private var low: [Job] = []
    private var running: (job: Job, started: ContinuousClock.Instant)?
    private var stopped = false
    /// Sorted by `due`.
    private var timers: [Timer] = []
    private var nextTimerID: UInt64 = 0

    private var mutex = pthread_mutex_t()
    private var workAvailable = pthread_cond_t()
    /// The watchdog's alarm (CLOCK_MONOTONIC, armed with relative times) and what it is armed for.
    private let alarm: Int32
    private var armedFor: ContinuousClock.Instant?

    public let name: String
    private let makeFiles: () throws -> any PoolFiles
    private var files: (any PoolFiles)?
    private static let maxQueued = 4096

    /// - Parameter makeFiles: opens the pool's backend; called on the pool thread, again after it failed.
    public init(name: String, makeFiles: @escaping @Sendable () throws -> any PoolFiles) {
        self.name = name
        self.makeFiles = makeFiles
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&workAvailable, &attributes)
        pthread_condattr_destroy(&attributes)
        alarm = TimerFD.create(CLOCK_MONOTONIC, TimerFD.closeOnExec)
        precondition(alarm >= 0, "timerfd_create failed: \(String(cString: strerror(errno)))")
        // The threads hold the object for as long as they run; `stop()` ends them.
        let worker = Thread { self.workLoop() }
        worker.name = "kvmha-pool-\(name)"
        worker.start()
        let watchdog = Thread { self.watchdogLoop() }
        watchdog.name = "kvmha-watch-\(name)"
        watchdog.start()
    }

    /// Stops both threads; queued calls fail with `.stopped`, pending timers get their `orphaned` call (so their
    /// owner can move them elsewhere). A call blocked in storage keeps its thread until it returns.
    public func stop() {
        lock()
        guard !stopped else {
            unlock()
            return
        }
        stopped = true
        let queued = high + low
        high.removeAll()
        low.removeAll()
        let pending = timers
        timers.removeAll()
        pthread_cond_broadcast(&workAvailable)
        setAlarm(nanoseconds: 1)  // the watchdog sees `stopped` and ends
        unlock()
        for job in queued { job.finish(.stopped) }
        for timer in pending { timer.orphaned() }
    }

    /// Runs `action` at `due` (see "Timers" above): quick and non-blocking, like a completion. Returns an id for
    /// `cancelTimer`. On a stopped thread nothing is scheduled and `orphaned` runs at once.
    @discardableResult
    public func scheduleTimer(
        at due: ContinuousClock.Instant,
        _ action: @escaping @Sendable () -> Void,
        orphaned: @escaping @Sendable () -> Void
    ) -> UInt64 {
        lock()
        nextTimerID += 1
        let id = nextTimerID
        guard !stopped else {
            unlock()
            orphaned()
            return id
        }
        let index = timers.firstIndex { $0.due > due } ?? timers.endIndex
        timers.insert(Timer(id: id, due: due, action: action, orphaned: orphaned), at: index)
        // An earlier wake-up for the worker; no signal when it is busy (the watchdog covers that) or when this timer
        // is not the first.
        if index == 0 && running == nil { pthread_cond_signal(&workAvailable) }
        rearmLocked()
        unlock()
        return id
    }

    /// Cancels a timer that has not run; does nothing if it ran, was cancelled or orphaned.
    public func cancelTimer(_ id: UInt64) {
        lock()
        timers.removeAll { $0.id == id }
        rearmLocked()
        unlock()
    }

    /// When the call now blocked past its deadline started, if there is one.
    public var stuckSince: ContinuousClock.Instant? {
        lock()
        defer { unlock() }
        guard let running, running.job.deadline < .now else { return nil }
        return running.started
    }

    /// Runs `body` on the pool thread and returns its result, or throws when it fails, times out, or the
    /// thread is stuck in an earlier call.
    public func run<T: Sendable>(
        _ operation: String,
        priority: Priority = .low,
        timeout: Duration,
        _ body: @escaping @Sendable (any PoolFiles) throws(PoolIOError) -> T
    ) async throws(PoolCallError) -> T {
        let result: Result<T, PoolCallError> = await withCheckedContinuation { continuation in
            submit(operation, priority: priority, timeout: timeout, body) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Queues `body` and returns at once; `completion` runs exactly once: on the pool thread with the result,
    /// on the watchdog thread when the deadline passes first, or right here when the call is refused.
    /// It must be quick and must not block.
    public func submit<T: Sendable>(
        _ operation: String,
        priority: Priority = .low,
        timeout: Duration,
        _ body: @escaping @Sendable (any PoolFiles) throws(PoolIOError) -> T,
        completion: @escaping @Sendable (Result<T, PoolCallError>) -> Void
    ) {
        let once = CompleteOnce(completion)
        let job = Job(
            name: operation,
            // The deadline counts from submission: time queued behind a slow call counts too.
            deadline: .now + timeout,
            timeout: timeout,
            work: { files in
                do throws(PoolIOError) {
                    once.complete(.success(try body(files)))
                } catch {
                    once.complete(.failure(.io(error)))
                }
            },
            finish: { once.complete(.failure($0)) },
            isFinished: { once.isDone }
        )
        if let refusal = enqueue(job, priority: priority) { once.complete(.failure(refusal)) }
    }

    private func enqueue(_ job: Job, priority: Priority) -> PoolCallError? {
        lock()
        defer { unlock() }
        if stopped { return .stopped }
        if let running, running.job.deadline < .now {
            return .stuck(operation: running.job.name, since: running.started)
        }
        guard high.count + low.count < Self.maxQueued else { return .unavailable("too many queued calls") }
        switch priority {
        case .high: high.append(job)
        case .low: low.append(job)
        }
        pthread_cond_signal(&workAvailable)
        rearmLocked()
        return nil
    }

    private func workLoop() {
        lock()
        while true {
            if stopped {
                unlock()
                return
            }
            if let first = timers.first, first.due <= .now {
                timers.removeFirst()
                rearmLocked()
                unlock()
                first.action()
                lock()
                continue
            }
            guard !high.isEmpty || !low.isEmpty else {
                if let first = timers.first {
                    let wait = ContinuousClock.now.duration(to: first.due).nanoseconds
                    monotonicTimedWait(&workAvailable, &mutex, until: MonotonicSleeper.now() + max(0, wait))
                } else {
                    pthread_cond_wait(&workAvailable, &mutex)
                }
                continue
            }
            let job = high.isEmpty ? low.removeFirst() : high.removeFirst()
            if job.isFinished() {
                // Its caller already gave up (timed out while queued): do not touch storage for it.
                continue
            }
            running = (job, .now)
            rearmLocked()
            unlock()

            execute(job)

            lock()
            running = nil
            rearmLocked()
        }
    }

    private func execute(_ job: Job) {
        if files == nil {
            do {
                files = try makeFiles()
            } catch {
                // The backend could not be opened: the waiting caller gets the reason; the next call retries.
                job.work(FailingPoolFiles(message: "cannot open pool: \(error)"))
                return
            }
        }
        job.work(files!)
    }

    /// Waits for the alarm; then fails every call whose deadline has passed and, while a call is running, runs the
    /// timers that are due (the worker cannot).
    private func watchdogLoop() {
        var expirations: UInt64 = 0
        while true {
            let count = Glibc.read(alarm, &expirations, MemoryLayout<UInt64>.size)
            if count < 0 && errno != EINTR && errno != EAGAIN {
                // Cannot happen with a valid timerfd; never spin on it.
                usleep(100_000)
            }
            lock()
            if stopped {
                unlock()
                close(alarm)
                return
            }
            armedFor = nil  // it fired (or was interrupted): re-armed below for what is left
            let now = ContinuousClock.now
            var expired: [Job] = []
            for job in [running?.job].compactMap({ $0 }) + high + low where !job.isFinished() && job.deadline <= now {
                expired.append(job)
            }
            var due: [Timer] = []
            if running != nil {
                while let first = timers.first, first.due <= now { due.append(timers.removeFirst()) }
            }
            if expired.isEmpty && due.isEmpty {
                rearmLocked()
                unlock()
                continue
            }
            unlock()
            // Finished first, then re-armed: an expired call must not arm the alarm for its own past deadline.
            for job in expired { job.finish(.timedOut(operation: job.name, after: job.timeout)) }
            for timer in due { timer.action() }
            lock()
            rearmLocked()
            unlock()
        }
    }

    /// While a call runs: arms the alarm for the earliest deadline of the running and queued calls and for the
    /// first timer. Otherwise disarms it. A system call only when that instant changes.
    private func rearmLocked() {
        guard !stopped else { return }
        var earliest: ContinuousClock.Instant?
        func consider(_ instant: ContinuousClock.Instant) {
            if earliest == nil || instant < earliest! { earliest = instant }
        }
        // An idle worker takes a queued call at once and arms the alarm when it starts it; queued calls need
        // watching only behind a running one.
        if let running {
            if !running.job.isFinished() { consider(running.job.deadline) }
            for job in high where !job.isFinished() { consider(job.deadline) }
            for job in low where !job.isFinished() { consider(job.deadline) }
            if let first = timers.first { consider(first.due) }
        }
        guard earliest != armedFor else { return }
        armedFor = earliest
        guard let earliest else {
            setAlarm(nanoseconds: 0)
            return
        }
        // Relative: the alarm's clock and ContinuousClock need not share an epoch. A little late rather than early.
        setAlarm(nanoseconds: max(1, ContinuousClock.now.duration(to: earliest).nanoseconds + 100_000))
    }

    /// `timerfd_settime` relative to now; 0 disarms.
    private func setAlarm(nanoseconds: Int64) {
        var value = itimerspec()
        value.it_value = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        _ = TimerFD.setTime(alarm, 0, &value, nil)
    }

    private func lock() { pthread_mutex_lock(&mutex) }
    private func unlock() { pthread_mutex_unlock(&mutex) }
}

/// `timerfd_create` and `timerfd_settime`, which Swift's Glibc module does not export: looked up once, as the
/// dynamic linker would (so a preloaded library, such as the clock-skew tests' libfaketime shim, still comes first).
private enum TimerFD {
    typealias Create = @convention(c) (Int32, Int32) -> Int32
    typealias SetTime = @convention(c) (Int32, Int32, UnsafePointer<itimerspec>?, UnsafeMutablePointer<itimerspec>?) -> Int32
    /// `TFD_CLOEXEC`, which is `O_CLOEXEC`.
    static let closeOnExec = Int32(O_CLOEXEC)
    static let create: Create = symbol("timerfd_create")
    static let setTime: SetTime = symbol("timerfd_settime")

    private static func symbol<F>(_ name: String) -> F {
        guard let address = dlsym(nil, name) else { fatalError("\(name) not found in the C library") }
        return unsafeBitCast(address, to: F.self)
    }
}

/// Stands in for a backend that could not be opened, so the waiting caller gets the reason.
private final class FailingPoolFiles: PoolFiles {
    let message: String
    init(message: String) { self.message = message }
    var location: String { "unavailable" }
    private func fail(_ op: String, _ path: String) -> PoolIOError { PoolIOError(operation: op, path: path, message: message) }
    func makeFolder(_ path: String) throws(PoolIOError) { throw fail("open pool", path) }
    func replaceAtomically(_ path: String, with bytes: [UInt8], temporaryPath: String, durable: Bool) throws(PoolIOError) {
        throw fail("open pool", path)
    }
    func overwrite(_ path: String, with bytes: [UInt8]) throws(PoolIOError) { throw fail("open pool", path) }
    func read(_ path: String, maxBytes: Int) throws(PoolIOError) -> FileRead { throw fail("open pool", path) }
    func list(_ path: String) throws(PoolIOError) -> [PoolDirectoryEntry] { throw fail("open pool", path) }
    func stat(_ path: String) throws(PoolIOError) -> PoolFileStat? { throw fail("open pool", path) }
    func remove(_ path: String) throws(PoolIOError) { throw fail("open pool", path) }
}

/// Delivers a call's outcome exactly once, whoever comes first (the call, its deadline, or shutdown).
private final class CompleteOnce<T: Sendable>: Sendable {
    private let completion: Mutex<(@Sendable (Result<T, PoolCallError>) -> Void)?>

    init(_ completion: @escaping @Sendable (Result<T, PoolCallError>) -> Void) {
        self.completion = Mutex(completion)
    }

    var isDone: Bool { completion.withLock { $0 == nil } }

    func complete(_ result: Result<T, PoolCallError>) {
        let taken = completion.withLock { value -> (@Sendable (Result<T, PoolCallError>) -> Void)? in
            defer { value = nil }
            return value
        }
        taken?(result)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let parts = components
        return parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000
    }
}
