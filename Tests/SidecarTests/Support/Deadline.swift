import Foundation

/// A wait that took far longer than it ever should: something hangs.
struct DeadlineExceeded: Error, CustomStringConvertible {
    let what: String
    let after: Duration
    var description: String { "\(what): nothing after \(after) (hang?)" }
}

/// Generous deadline for anything a test waits for; it only exists to turn a hang into a failure.
let hangDeadline: Duration = .seconds(20)

/// Runs a blocking `body` on a thread of its own (never on Swift's cooperative pool) and returns its result,
/// or throws `DeadlineExceeded` if it has not finished by the deadline (the thread is then abandoned).
func runOnThread<T: Sendable>(
    _ what: String,
    deadline: Duration = hangDeadline,
    _ body: @escaping @Sendable () throws -> T
) async throws -> T {
    let once = ResumeOnce<T>()
    return try await withCheckedThrowingContinuation { continuation in
        once.set(continuation)
        let thread = Thread {
            once.resume(with: Result { try body() })
        }
        thread.start()
        let seconds = Double(deadline.components.seconds)
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) {
            once.resume(with: .failure(DeadlineExceeded(what: what, after: deadline)))
        }
    }
}

/// A continuation resumed by whichever comes first, the work or its deadline; the later one is ignored.
private final class ResumeOnce<T: Sendable>: @unchecked Sendable {  // `continuation` is guarded by `lock`
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, any Error>?

    /// Called before the work and the deadline are started.
    func set(_ continuation: CheckedContinuation<T, any Error>) {
        lock.lock()
        self.continuation = continuation
        lock.unlock()
    }

    func resume(with result: Result<T, any Error>) {
        lock.lock()
        let continuation = self.continuation
        self.continuation = nil
        lock.unlock()
        continuation?.resume(with: result)
    }
}
