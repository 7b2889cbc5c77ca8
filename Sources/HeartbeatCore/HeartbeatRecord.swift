/// A VM's power state as libvirt reports it. Kept open (a string) so that a record written by a newer
/// sidecar with a state we do not know is still readable.
public struct VMPowerState: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let running = VMPowerState(rawValue: "running")
    public static let blocked = VMPowerState(rawValue: "blocked")
    public static let paused = VMPowerState(rawValue: "paused")
    public static let shuttingDown = VMPowerState(rawValue: "shutdown-in-progress")
    public static let shutoff = VMPowerState(rawValue: "shutoff")
    public static let crashed = VMPowerState(rawValue: "crashed")
    public static let pmsuspended = VMPowerState(rawValue: "pmsuspended")
    public static let noState = VMPowerState(rawValue: "nostate")

    /// Whether the VM holds its disks open and may be writing to them (CloudStack's `PowerOn`).
    public var isActive: Bool { self != .shutoff && self != .crashed && self != .noState }

    public var description: String { rawValue }
}

/// One local VM as published in a record.
public struct VMEntry: Hashable, Sendable, Codable {
    public var uuid: String
    public var name: String
    public var state: VMPowerState
    public var reason: String
    /// Unix milliseconds since the VM has been in this state, as far as this host knows.
    public var sinceMs: Int64

    public init(uuid: String, name: String, state: VMPowerState, reason: String, sinceMs: Int64) {
        self.uuid = uuid
        self.name = name
        self.state = state
        self.reason = reason
        self.sinceMs = sinceMs
    }
}

/// What a host writes to each pool on every beat (besides CloudStack's own `hb-<ip>` file).
public struct HeartbeatRecord: Hashable, Sendable {
    /// The writer's private IP; must match the file name it is found under.
    public var host: HostAddress
    /// CloudStack's host UUID, when known.
    public var hostUUID: String?
    /// `/proc/sys/kernel/random/boot_id` of the writer: changes with every boot.
    public var bootID: String
    /// Changes every time the sidecar starts.
    public var incarnation: String
    /// Grows by one with every beat of an incarnation.
    public var sequence: UInt64
    /// The writer's wall clock, Unix milliseconds. Evidence only: clocks drift.
    public var wallTimeMs: Int64
    /// The writer's beat interval, in milliseconds.
    public var intervalMs: Int64
    /// The writer's local VMs.
    public var vms: [VMEntry]
    /// VMs left out of `vms` to keep the record within the readers' size cap (active VMs are kept first).
    public var vmsOmitted: Int
    /// Maintenance or rejoining (`HostMode`); written only when not normal (fields `mode`, `modeReason`).
    public var mode: HostMode = .normal
    /// The writer's verdict on each peer it watches (`alive`, `dead`, `unknown`, `maintenance`, `rejoining`,
    /// `isolated`): xha's heartbeat matrix, one row per record. Written only when not empty (field `peers`),
    /// at most `RecordCodec.maxPeerViews` entries.
    public var peerViews: [HostAddress: String] = [:]

    public init(
        host: HostAddress, hostUUID: String?, bootID: String, incarnation: String, sequence: UInt64,
        wallTimeMs: Int64, intervalMs: Int64, vms: [VMEntry], vmsOmitted: Int = 0
    ) {
        self.host = host
        self.hostUUID = hostUUID
        self.bootID = bootID
        self.incarnation = incarnation
        self.sequence = sequence
        self.wallTimeMs = wallTimeMs
        self.intervalMs = intervalMs
        self.vms = vms
        self.vmsOmitted = vmsOmitted
    }
}
