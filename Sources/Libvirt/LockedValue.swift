import Foundation

/// A value behind a lock. (`Synchronization.Mutex` would do, but needs macOS 15 and the package says 14.)
///
/// `@unchecked Sendable`: the value is only reached through `withLock`, which holds `lock`.
final class LockedValue<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
