/// What a host says about itself in its record, besides that it is writing: normal, under maintenance (its
/// self-fencing disarmed by an operator), or rejoining (started after a fence or an unclean stop, and not to
/// be taken for alive until one `deadAfter` has passed). Peers answer `maintenance` or `rejoining` instead of
/// `alive` while such a record keeps changing, and `dead` as usual when it stops.
public enum HostMode: Hashable, Sendable {
    case normal
    case maintenance(reason: String)
    case rejoining

    /// As written in records and API answers.
    public var name: String {
        switch self {
        case .normal: "normal"
        case .maintenance: "maintenance"
        case .rejoining: "rejoining"
        }
    }

    public var reason: String? {
        if case .maintenance(let reason) = self { return reason }
        return nil
    }

    /// From a record's `mode` and `modeReason`; nil for a name this version does not know.
    public init?(name: String, reason: String?) {
        switch name {
        case "normal": self = .normal
        case "maintenance": self = .maintenance(reason: reason ?? "")
        case "rejoining": self = .rejoining
        default: return nil
        }
    }

    /// The verdict a peer gives: a changing record of a host in maintenance or rejoining is not plain life.
    /// Any other verdict (dead, unknown) stands: a host that stops writing is dead, maintenance or not.
    public func refine(_ liveness: Liveness) -> String {
        liveness == .alive && self != .normal ? name : liveness.rawValue
    }
}

/// sbd's delay-start: after a fence or an unclean stop the sidecar rejoins for one `deadAfter` before it
/// says `normal` again, so a host its neighbours declared dead (and whose VMs they are restarting) does not
/// reappear as plain `alive` in the middle of that.
public enum StartupProtection {
    /// - Parameters:
    ///   - fenced: the previous run fenced this host (its dry-run marker is there).
    ///   - uncleanStop: the previous run did not stop cleanly (its running flag is still there): a crash, a
    ///     kill, a power loss or a reboot by the fencer.
    public static func mustRejoin(fenced: Bool, uncleanStop: Bool) -> Bool { fenced || uncleanStop }
}
