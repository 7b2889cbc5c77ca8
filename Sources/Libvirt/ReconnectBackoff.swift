/// How long `LibvirtSession` waits between failed attempts to open its connection: `initial`, then
/// multiplied by `multiplier` after every failure, never more than `maximum`.
public struct ReconnectBackoff: Sendable, Equatable {
    public var initial: Duration
    public var multiplier: Double
    public var maximum: Duration

    /// 0.2 s doubling to 5 s: a restarting libvirtd is back within a few attempts, a dead one costs
    /// one cheap attempt every 5 s.
    public static let standard = ReconnectBackoff(initial: .milliseconds(200), multiplier: 2, maximum: .seconds(5))

    public init(initial: Duration, multiplier: Double, maximum: Duration) {
        precondition(initial > .zero && multiplier >= 1 && maximum >= initial, "invalid reconnect backoff")
        self.initial = initial
        self.multiplier = multiplier
        self.maximum = maximum
    }

    /// The wait after `failures` consecutive failed attempts (1 for the first failure).
    public func delay(afterFailures failures: Int) -> Duration {
        var delay = initial
        for _ in 1..<max(failures, 1) {
            delay = delay * multiplier
            if delay >= maximum {
                return maximum
            }
        }
        return min(delay, maximum)
    }
}
