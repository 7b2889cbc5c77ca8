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
/// Deadlines are enforced by a second thread, the watchdog, which sleeps until the earliest deadline of the
/// running and queued calls (and not at all while the pool is idle): no timer per call, so a beat costs
/// two thread hand-offs and nothing else.
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

    private var high: [Job] = []
    private var low: [Job] = []
    private var running: (job: Job, started: ContinuousClock.Instant)?
    private var stopped = false
    private var watchdogIdle = false

    private var mutex = pthread_mutex_t()
    private var workAvailable = pthread_cond_t()
    private var watchdogWake = pthread_cond_t()

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
        pthread_cond_init(&watchdogWake, &attributes)
        pthread_condattr_destroy(&attributes)
        // The threads hold the object for as long as they run; `stop()` ends them.
        let worker = Thread { self.workLoop() }
        worker.name = "kvmha-pool-\(name)"
        worker.start()
        let watchdog = Thread { self.watchdogLoop() }
        watchdog.name = "kvmha-watch-\(name)"
        watchdog.start()
    }

    /// Stops both threads; queued calls fail with `.stopped`. A call blocked in storage keeps its thread until
    /// it returns.
    public func stop() {
        lock()
        stopped = true
        let queued = high + low
        high.removeAll()
        low.removeAll()
        pthread_cond_broadcast(&workAvailable)
        pthread_cond_broadcast(&watchdogWake)
        unlock()
        for job in queued { job.finish(.stopped) }
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
        if watchdogIdle {
            watchdogIdle = false
            pthread_cond_signal(&watchdogWake)
        }
        return nil
    }

    private func workLoop() {
        while true {
            lock()
            while !stopped && high.isEmpty && low.isEmpty { pthread_cond_wait(&workAvailable, &mutex) }
            if stopped {
                unlock()
                return
            }
            let job = high.isEmpty ? low.removeFirst() : high.removeFirst()
            if job.isFinished() {
                // Its caller already gave up (timed out while queued): do not touch storage for it.
                unlock()
                continue
            }
            running = (job, .now)
            unlock()

            execute(job)

            lock()
            running = nil
            unlock()
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

    /// Fails every call whose deadline has passed, then sleeps until the next deadline.
    private func watchdogLoop() {
        lock()
        defer { unlock() }
        while !stopped {
            let now = ContinuousClock.now
            var expired: [Job] = []
            var earliest: ContinuousClock.Instant?
            for job in [running?.job].compactMap({ $0 }) + high + low where !job.isFinished() {
                if job.deadline <= now {
                    expired.append(job)
                } else if earliest == nil || job.deadline < earliest! {
                    earliest = job.deadline
                }
            }
            if !expired.isEmpty {
                unlock()
                for job in expired { job.finish(.timedOut(operation: job.name, after: job.timeout)) }
                lock()
                continue
            }
            if let earliest {
                let delay = now.duration(to: earliest).nanoseconds + 1_000_000
                monotonicTimedWait(&watchdogWake, &mutex, until: MonotonicSleeper.now() + delay)
            } else {
                watchdogIdle = true
                pthread_cond_wait(&watchdogWake, &mutex)
            }
        }
    }

    private func lock() { pthread_mutex_lock(&mutex) }
    private func unlock() { pthread_mutex_unlock(&mutex) }
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
