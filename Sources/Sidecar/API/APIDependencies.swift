public import HeartbeatCore

/// Whether the local VM list is backed by a live libvirt connection. Given to the API as a plain value so
/// it does not depend on the watcher's type.
public struct LibvirtStatus: Sendable, Equatable {
    public var connected: Bool
    /// Since when `connected` has held, Unix ms.
    public var sinceMs: Int64?
    public var lastError: String?
    /// Until when the VM list was confirmed against libvirt (now while connected); nil if never read.
    public var confirmedAtMs: Int64?

    public init(connected: Bool, sinceMs: Int64?, lastError: String?, confirmedAtMs: Int64?) {
        self.connected = connected
        self.sinceMs = sinceMs
        self.lastError = lastError
        self.confirmedAtMs = confirmedAtMs
    }
}

/// Everything the API answers from, as plain values and closures: the daemon passes its services' methods,
/// router tests pass stand-ins. Every closure answers from memory and returns at once; only the activity
/// check touches storage, and only through a `Pool` (bounded by its `ioTimeout`).
public struct APIDependencies: Sendable {
    public var identity: HostIdentity
    public var version: String
    public var startedAt: ContinuousClock.Instant
    public var token: APIToken
    public var metrics: APIMetrics
    /// The pools in use now.
    public var pools: @Sendable () -> [Pool]
    /// One peer's verdicts (a peer never seen is `unknown` everywhere, with no evidence).
    public var peerReport: @Sendable (HostAddress) -> PeerReport
    /// Every peer seen on any pool.
    public var peerReports: @Sendable () -> [PeerReport]
    /// This host's VMs.
    public var localVMs: @Sendable () -> [VMEntry]
    public var libvirt: @Sendable () -> LibvirtStatus
    /// The self-fencing policy's state; nil where no fencer runs.
    public var fencing: @Sendable () -> Fencer.Status? = { nil }
    /// Unix ms.
    public var wallClockMs: @Sendable () -> Int64
    /// The conflicts of the peer monitor's last round; nil before its first.
    public var conflicts: @Sendable () -> ConflictSnapshot? = { nil }
    /// The BMC evidence of every peer with a BMC in the config, from the BMC probe's memory.
    public var bmc: @Sendable () -> [HostAddress: BMCSnapshot] = { [:] }
    /// Maintenance and rejoining; nil where no store is kept (router tests that do not need one).
    public var hostMode: HostModeStore? = nil
    /// The last recent probe of a peer's API port; nil when none (probing off, or no recent probe).
    public var peerProbe: @Sendable (HostAddress) -> PeerProber.Result? = { _ in nil }
    /// The key that signs this host's records; nil when records are unsigned (no `recordKeyFile`).
    public var recordKeyID: String?

    public init(
        identity: HostIdentity,
        version: String = SidecarVersion.current,
        startedAt: ContinuousClock.Instant = .now,
        token: APIToken,
        metrics: APIMetrics,
        pools: @escaping @Sendable () -> [Pool],
        peerReport: @escaping @Sendable (HostAddress) -> PeerReport,
        peerReports: @escaping @Sendable () -> [PeerReport],
        localVMs: @escaping @Sendable () -> [VMEntry],
        libvirt: @escaping @Sendable () -> LibvirtStatus,
        wallClockMs: @escaping @Sendable () -> Int64 = WallClock.nowMs
    ) {
        self.identity = identity
        self.version = version
        self.startedAt = startedAt
        self.token = token
        self.metrics = metrics
        self.pools = pools
        self.peerReport = peerReport
        self.peerReports = peerReports
        self.localVMs = localVMs
        self.libvirt = libvirt
        self.wallClockMs = wallClockMs
    }

    /// The daemon's wiring: pools from the pool set, verdicts from the peer monitor.
    public init(
        identity: HostIdentity,
        pools: PoolSet,
        monitor: PeerMonitor,
        token: APIToken,
        metrics: APIMetrics,
        localVMs: @escaping @Sendable () -> [VMEntry],
        libvirt: @escaping @Sendable () -> LibvirtStatus,
        fencing: @escaping @Sendable () -> Fencer.Status? = { nil }
    ) {
        self.init(
            identity: identity,
            token: token,
            metrics: metrics,
            pools: { pools.current },
            peerReport: { monitor.report(for: $0) },
            peerReports: { monitor.reports() },
            localVMs: localVMs,
            libvirt: libvirt
        )
        self.fencing = fencing
        self.conflicts = { monitor.conflicts() }
    }
}

/// The version the API and `kvmha --version` report.
public enum SidecarVersion {
    public static let current = "0.1.0"
    /// The API's major version: the path prefix `/v1`.
    public static let api = 1
}
