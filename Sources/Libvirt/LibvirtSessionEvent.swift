/// What a `LibvirtSession` reports to its subscribers.
public enum LibvirtSessionEvent: Sendable, Equatable {
    /// A connection is open and lifecycle events are registered on it: read the full inventory now, since
    /// events from before this point (or while disconnected) were not seen.
    case connected
    /// The connection was lost (or is not up yet); the reason says why. Data read earlier is now stale.
    case disconnected(reason: String)
    /// A lifecycle event on the current connection.
    case domainEvent(DomainLifecycleEvent)
}
