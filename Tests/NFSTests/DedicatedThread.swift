import Foundation

/// Runs `body` on a new thread of its own: blocking libnfs calls stay off Swift's cooperative pool in
/// tests too, and each test's contexts live on one thread, as libnfs 4.0.0 requires.
func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
