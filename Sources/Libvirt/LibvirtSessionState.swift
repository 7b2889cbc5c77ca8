public import Foundation

/// Whether a `LibvirtSession` currently has a working connection.
public enum LibvirtSessionState: Sendable, Equatable {
    /// Connected since that time; lifecycle events are flowing.
    case connected(since: Date)
    /// Not connected since that time (the session's start, or the moment the connection was lost), with the
    /// last error from an attempt to reconnect, if any.
    case disconnected(since: Date, lastError: LibvirtError?)

    public var isConnected: Bool {
        if case .connected = self {
            return true
        }
        return false
    }
}
