/// The kind of a domain lifecycle event (libvirt's `virDomainEventType`).
public enum DomainEventKind: String, Sendable, CaseIterable {
    case defined
    case undefined
    case started
    case suspended
    case resumed
    case stopped
    case shutdown
    case pmsuspended
    case crashed

    /// Maps libvirt's event number; nil for a kind newer than this code knows.
    init?(libvirtEvent event: Int32) {
        switch event {
        case 0: self = .defined
        case 1: self = .undefined
        case 2: self = .started
        case 3: self = .suspended
        case 4: self = .resumed
        case 5: self = .stopped
        case 6: self = .shutdown
        case 7: self = .pmsuspended
        case 8: self = .crashed
        default: return nil
        }
    }

    /// The name of an event detail for this kind, as libvirt's detail enums name it
    /// (`VIR_DOMAIN_EVENT_STOPPED_DESTROYED` → "destroyed"); an unknown number gives "detail N".
    public func detailName(_ detail: Int32) -> String {
        let names: [String]
        switch self {
        case .defined: names = ["added", "updated", "renamed", "from snapshot"]
        case .undefined: names = ["removed", "renamed"]
        case .started: names = ["booted", "migrated", "restored", "from snapshot", "wakeup"]
        case .suspended:
            names = [
                "paused", "migrated", "ioerror", "watchdog", "restored", "from snapshot", "api error", "postcopy",
                "postcopy failed",
            ]
        case .resumed: names = ["unpaused", "migrated", "from snapshot", "postcopy", "postcopy failed"]
        case .stopped: names = ["shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot"]
        case .shutdown: names = ["finished", "guest", "host"]
        case .pmsuspended: names = ["memory", "disk"]
        case .crashed: names = ["panicked", "crashloaded"]
        }
        return names.indices.contains(Int(detail)) ? names[Int(detail)] : "detail \(detail)"
    }
}
