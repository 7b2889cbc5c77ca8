import Dispatch
import Foundation
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
public final class PoolIOThread: @unchecked Sendable {
    // @unchecked: all mutable state lives in `state`, guarded by `condition`; `files` is touched only on
    // the pool thread.
    public enum Priority: Sendable { case high, low }

    private struct Job {
        let name: String
        let timeout: Duration
        let work: (any PoolFiles) -> Void
        let abandon: () -> Void
        let isAbandoned: () -> Bool
    }

    private struct State {
        var high: [Job] = []
        var low: [Job] = []
        var running: (name: String, started: ContinuousClock.Instant, deadline: ContinuousClock.Instant)?
        var stopped = false
    }

    public let name: String
    private let condition = NSCondition()
    private var state = State()
    private let makeFiles: () throws -> any PoolFiles
    private var files: (any PoolFiles)?
    private var thread: Thread?
    private static let maxQueued = 4096

    /// - Parameter makeFiles: opens the pool's backend; called on the pool thread, again after it failed.
    public init(name: String, makeFiles: @escaping @Sendable () throws -> any PoolFiles) {
        self.name = name
        self.makeFiles = makeFiles
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "kvmha-pool-\(name)"
        self.thread = thread
        thread.start()
    }

    /// Stops the thread after the jobs it is running; queued jobs are abandoned.
    public func stop() {
        condition.lock()
        state.stopped = true
        let queued = state.high + state.low
        state.high.removeAll()
        state.low.removeAll()
        condition.broadcast()
        condition.unlock()
        for job in queued { job.abandon() }
    }

    /// The call currently blocked past its deadline, if any.
    public var stuckSince: ContinuousClock.Instant? {
        condition.lock()
        defer { condition.unlock() }
        guard let running = state.running, running.deadline < .now else { return nil }
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
            let once = ResumeOnce(continuation)
            let job = Job(
                name: operation,
                timeout: timeout,
                work: { files in
                    do throws(PoolIOError) {
                        once.resume(.success(try body(files)))
                    } catch {
                        once.resume(.failure(.io(error)))
                    }
                },
                abandon: { once.resume(.failure(.stopped)) },
                isAbandoned: { once.isDone }
            )
            condition.lock()
            if state.stopped {
                condition.unlock()
                once.resume(.failure(.stopped))
                return
            }
            if let running = state.running, running.deadline < .now {
                condition.unlock()
                once.resume(.failure(.stuck(operation: running.name, since: running.started)))
                return
            }
            guard state.high.count + state.low.count < Self.maxQueued else {
                condition.unlock()
                once.resume(.failure(.unavailable("too many queued calls")))
                return
            }
            switch priority {
            case .high: state.high.append(job)
            case .low: state.low.append(job)
            }
            condition.signal()
            condition.unlock()
            // The deadline counts from submission: time spent queued behind a slow call counts too.
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(timeout.nanoseconds))) {
                once.resume(.failure(.timedOut(operation: operation, after: timeout)))
            }
        }
        return try result.get()
    }

    private func loop() {
        while true {
            condition.lock()
            while !state.stopped && state.high.isEmpty && state.low.isEmpty { condition.wait() }
            if state.stopped {
                condition.unlock()
                return
            }
            let job = state.high.isEmpty ? state.low.removeFirst() : state.high.removeFirst()
            if job.isAbandoned() {
                // Its caller already gave up (timed out while queued): do not touch storage for it.
                condition.unlock()
                continue
            }
            let now = ContinuousClock.now
            state.running = (job.name, now, now + job.timeout)
            condition.unlock()

            execute(job)

            condition.lock()
            state.running = nil
            condition.unlock()
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

/// Resumes a continuation exactly once, whoever comes first (the job, its deadline, or shutdown).
private final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<Result<T, PoolCallError>, Never>?>

    init(_ continuation: CheckedContinuation<Result<T, PoolCallError>, Never>) {
        self.continuation = Mutex(continuation)
    }

    var isDone: Bool { continuation.withLock { $0 == nil } }

    func resume(_ result: Result<T, PoolCallError>) {
        let taken = continuation.withLock { value -> CheckedContinuation<Result<T, PoolCallError>, Never>? in
            defer { value = nil }
            return value
        }
        taken?.resume(returning: result)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let parts = components
        return parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000
    }
}
