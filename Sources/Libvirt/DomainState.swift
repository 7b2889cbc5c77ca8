/// A domain's power state, as `virDomainGetState` reports it.
///
/// Raw values are the names the rest of the system prints and stores.
public enum DomainState: String, Sendable, CaseIterable {
    case noState = "nostate"
    case running
    case blocked
    case paused
    case shuttingDown = "shutdown-in-progress"
    case shutoff
    case crashed
    case pmsuspended

    /// Maps libvirt's `virDomainState`; a value newer than this code knows becomes `.noState`.
    init(libvirtState state: Int32) {
        switch state {
        case 1: self = .running
        case 2: self = .blocked
        case 3: self = .paused
        case 4: self = .shuttingDown
        case 5: self = .shutoff
        case 6: self = .crashed
        case 7: self = .pmsuspended
        default: self = .noState
        }
    }

    /// The name of a `virDomainGetState` reason for this state, as libvirt's reason enums name it
    /// (`VIR_DOMAIN_SHUTOFF_DESTROYED` → "destroyed"); an unknown number gives "reason N".
    public func reasonName(_ reason: Int32) -> String {
        let names: [String]
        switch self {
        case .noState, .blocked, .pmsuspended:
            names = ["unknown"]
        case .running:
            names = [
                "unknown", "booted", "migrated", "restored", "from snapshot", "unpaused", "migration canceled",
                "save canceled", "wakeup", "crashed", "postcopy", "postcopy failed",
            ]
        case .paused:
            names = [
                "unknown", "user", "migration", "save", "dump", "ioerror", "watchdog", "from snapshot",
                "shutting down", "snapshot", "crashed", "starting up", "postcopy", "postcopy failed",
            ]
        case .shuttingDown:
            names = ["unknown", "user"]
        case .shutoff:
            names = [
                "unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot",
                "daemon",
            ]
        case .crashed:
            names = ["unknown", "panicked"]
        }
        return names.indices.contains(Int(reason)) ? names[Int(reason)] : "reason \(reason)"
    }
}
