import Foundation

/// Runs a blocking call (a `stat` or `write` on a possibly frozen mount) on a thread of its own, so
/// the test can watch it from async code without blocking the cooperative pool.
///
///     let size = BlockingCall { try fileSize(mount.url("f")) }
///     try await mount.waitForBlockedOperation("getattr", path: "f")
///     #expect(!size.isFinished)
///     try mount.thaw()
///     #expect(try await size.value() == 3)
final class BlockingCall<Value: Sendable>: Sendable {
    private struct State {
        var result: Result<Value, any Error>?
        var waiters: [Int: CheckedContinuation<Value, any Error>] = [:]
        var nextWaiterID = 0
    }

    private let state = Locked(State())
    let label: String

    init(_ label: String = "blocking call", _ body: @escaping @Sendable () throws -> Value) {
        self.label = label
        let state = self.state
        let thread = Thread {
            let result = Result { try body() }
            state.withLock { state in
                state.result = result
                for waiter in state.waiters.values { waiter.resume(with: result) }
                state.waiters = [:]
            }
        }
        thread.name = label
        thread.start()
    }

    var isFinished: Bool {
        state.withLock { $0.result != nil }
    }

    /// The call's result once it returns; throws what it threw, or a `HarnessError` after `timeout`.
    func value(timeout: Duration = .seconds(30)) async throws -> Value {
        let state = self.state
        let label = self.label
        let id = state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        return try await withHangGuard(timeout, timeoutError: HarnessError("\(label) still blocked after \(timeout)")) {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    state.withLock { state in
                        if let result = state.result {
                            continuation.resume(with: result)
                        } else if Task.isCancelled {
                            continuation.resume(throwing: CancellationError())
                        } else {
                            state.waiters[id] = continuation
                        }
                    }
                }
            } onCancel: {
                state.withLock { state in
                    state.waiters.removeValue(forKey: id)?.resume(throwing: CancellationError())
                }
            }
        }
    }
}
