/// Runs `operation` (which must end when cancelled) and fails with `timeoutError` (evaluated then)
/// if it has not finished after `timeout`. The timeout only catches hangs; it is never a timing
/// assertion.
func withHangGuard<Value: Sendable>(
    _ timeout: Duration,
    timeoutError: @autoclosure @escaping @Sendable () -> any Error,
    operation: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    try await withThrowingTaskGroup(of: Value?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw timeoutError()
        }
        return value
    }
}
