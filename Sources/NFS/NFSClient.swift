internal import Foundation
internal import Glibc

/// Async access to one NFS export through one ``NFSContext`` that lives on one dedicated thread.
///
/// Jobs given to ``run(_:)`` execute one at a time, in the order they were submitted (FIFO), on the
/// client's own thread; the awaiting task is suspended, never blocking Swift's cooperative pool. The
/// context is mounted lazily by the first job, and again by the first job after a failure that requires
/// a new context (see ``NFSError/requiresNewContext``): that is the whole recovery story, the caller only
/// retries on its next beat. Every libnfs RPC is bounded by `timeout`, so a job that makes *n* calls takes
/// at most about *n* × `timeout`, and a hung server delays this client's queue, never other clients.
///
/// `@unchecked Sendable` is safe because the only mutable state shared between threads (the job queue,
/// the shut-down flag and the mount counter) is guarded by `Worker.condition`, and the non-thread-safe
/// libnfs context is created, used and destroyed on the worker thread alone and never handed out except
/// to a job running on that thread.
public final class NFSClient: @unchecked Sendable {
    public let url: NFSURL
    public let timeout: Duration
    private let worker: Worker

    /// Starts the client's thread; nothing is mounted until the first job.
    public init(url: NFSURL, timeout: Duration, threadName: String? = nil) {
        self.url = url
        self.timeout = timeout
        self.worker = Worker(url: url, timeout: timeout)
        let worker = self.worker
        let thread = Thread { worker.loop() }
        thread.name = threadName ?? "nfs \(url.server):\(url.export)"
        thread.start()
    }

    deinit {
        worker.shutdown()
    }

    /// Runs `body` with the mounted context on the client's thread and returns its result.
    ///
    /// Throws what `body` throws, an ``NFSError`` when mounting fails or the client is shut down, or
    /// `CancellationError` when the task is cancelled before the job started (a started job runs to its end).
    /// Do not keep the context beyond `body`.
    public func run<T: Sendable>(_ body: @escaping @Sendable (NFSContext) throws -> T) async throws -> T {
        try Task.checkCancellation()
        let job = Worker.Job()
        // The cancellation handler may run before, during or after `enqueue`; the job's state, under the
        // worker's lock, decides who resumes the continuation, exactly once.
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                worker.enqueue(
                    job,
                    execute: { context in continuation.resume(with: Result { try body(context) }) },
                    reject: { error in continuation.resume(throwing: error) }
                )
            }
        } onCancel: {
            worker.cancel(job)
        }
    }

    /// How many times a context has been mounted successfully (1 after the first job, +1 per recovery).
    public var mountCount: Int { worker.mountCount }

    /// Rejects new jobs, lets queued ones finish, then destroys the context and ends the thread.
    /// Returns at once; idempotent. Also done when the client is deinitialised.
    public func shutdown() {
        worker.shutdown()
    }
}

extension NFSClient {
    /// The queue and the thread's state. Queue, flag and counter under `condition`; `context` only on the thread.
    fileprivate final class Worker: @unchecked Sendable {
        /// One call of `run`; all its fields are guarded by the worker's `condition`.
        final class Job: @unchecked Sendable {
            enum State {
                case created, queued, started, cancelled
            }

            var state = State.created
            /// Runs on the worker thread with the mounted context; resumes the caller.
            var execute: ((NFSContext) -> Void)?
            /// Resumes the caller with an error instead (mount failed, cancelled, shut down).
            var reject: ((any Error) -> Void)?
        }

        private let url: NFSURL
        private let timeout: Duration
        private let condition = NSCondition()
        private var queue: [Job] = []
        private var isShutDown = false
        private var mounts = 0
        /// Touched only by `loop()`'s thread.
        private var context: NFSContext?

        init(url: NFSURL, timeout: Duration) {
            self.url = url
            self.timeout = timeout
        }

        var mountCount: Int {
            condition.lock()
            defer { condition.unlock() }
            return mounts
        }

        func enqueue(
            _ job: Job,
            execute: @escaping (NFSContext) -> Void,
            reject: @escaping (any Error) -> Void
        ) {
            condition.lock()
            if job.state == .cancelled {
                condition.unlock()
                reject(CancellationError())
                return
            }
            if isShutDown {
                condition.unlock()
                reject(Self.shutDownError)
                return
            }
            job.execute = execute
            job.reject = reject
            job.state = .queued
            queue.append(job)
            condition.signal()
            condition.unlock()
        }

        /// Resumes a job that has not started with `CancellationError`; a started job runs to its end.
        func cancel(_ job: Job) {
            condition.lock()
            let previous = job.state
            guard previous == .created || previous == .queued else {
                condition.unlock()
                return
            }
            job.state = .cancelled
            queue.removeAll { $0 === job }
            let reject = job.reject
            condition.unlock()
            // Not yet queued: `enqueue` sees `.cancelled` and resumes the caller itself.
            if previous == .queued { reject?(CancellationError()) }
        }

        func shutdown() {
            condition.lock()
            isShutDown = true
            condition.signal()
            condition.unlock()
        }

        func loop() {
            while let (execute, reject) = next() {
                let context: NFSContext
                do {
                    context = try mountedContext()
                } catch {
                    reject(error)
                    continue
                }
                execute(context)
                if !context.isUsable {
                    // Spent (timeout, lost connection, expired NFSv4 state): the next job mounts afresh.
                    context.close()
                    self.context = nil
                }
            }
            context?.close()
            context = nil
        }

        /// The next job, now started; nil once shut down and drained.
        private func next() -> (execute: (NFSContext) -> Void, reject: (any Error) -> Void)? {
            condition.lock()
            defer { condition.unlock() }
            while queue.isEmpty && !isShutDown {
                condition.wait()
            }
            guard !queue.isEmpty else { return nil }
            let job = queue.removeFirst()
            job.state = .started
            guard let execute = job.execute, let reject = job.reject else {
                preconditionFailure("a queued job has its closures")
            }
            return (execute, reject)
        }

        private func mountedContext() throws(NFSError) -> NFSContext {
            if let context { return context }
            let mounted = try NFSContext(url: url, timeout: timeout)
            context = mounted
            condition.lock()
            mounts += 1
            condition.unlock()
            return mounted
        }

        private static let shutDownError = NFSError(
            operation: "client",
            path: nil,
            code: -ESHUTDOWN,
            message: "the NFS client is shut down"
        )
    }
}
