import Foundation
public import HeartbeatCore
public import Logging
import NFS
import ServiceLifecycle

/// Builds the daemon from settings. `main` only composes: tests build the same thing.
public struct SidecarApp: Sendable {
    public let settings: SidecarSettings
    public let identity: HostIdentity
    /// The pools in use; changes at run time when they are discovered from libvirt.
    public let poolSet: PoolSet
    /// This host's VMs, from libvirt; the record of every beat carries them.
    public let watcher: DomainWatcher
    /// Keeps `poolSet` in step with libvirt's netfs pools; nil when the config lists the pools.
    public let discovery: PoolDiscovery?
    public let writer: BeatWriter
    public let monitor: PeerMonitor
    /// The HTTP API; nil when its token file does not exist (logged).
    public let api: APIService?
    public let metrics: APIMetrics
    /// Self-fencing and systemd readiness/watchdog, fed by every beat round.
    public let fencer: Fencer
    public let logger: Logger

    /// How often the VM list is read in full, and libvirt's pools looked at again, besides on every reconnect.
    public static let libvirtRecheckInterval: Duration = .seconds(60)

    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The pools in use now.
    public var pools: [Pool] { poolSet.current }

    public init(settings: SidecarSettings, logger: Logger) throws(StartError) {
        let address: HostAddress
        var hostUUID = settings.hostUUID
        let properties = AgentProperties.load(path: settings.agentProperties)
        if let configured = settings.hostIP {
            address = configured
        } else {
            let device = properties?.privateNetworkDevice ?? "cloudbr1"
            guard let found = NetworkInterfaces.firstIPv4(of: device) else {
                throw StartError(
                    description:
                        "hostIP is not set and \(device) (private.network.device in \(settings.agentProperties)) has no IPv4 address: set hostIP in the config file, KVMHA_HOST_IP or --host-ip"
                )
            }
            address = found
        }
        if hostUUID == nil { hostUUID = properties?.guid }
        for pool in settings.pools {
            guard let text = pool.url else { continue }
            do throws(NFSURLError) {
                _ = try NFSURL(parsing: text)
            } catch {
                throw StartError(description: "pool \(pool.uuid): \(error)")
            }
        }
        // No pools listed is not an error: they come from libvirt, possibly later (see PoolDiscovery).
        self.settings = settings
        self.logger = logger
        self.identity = HostIdentity.current(address: address, hostUUID: hostUUID)
        let ioTimeout = settings.timing.ioTimeout
        self.poolSet = PoolSet(settings.pools.map { Self.makePool($0, ioTimeout: ioTimeout, logger: logger) })
        let watcher = DomainWatcher(
            uri: settings.libvirtURI,
            resyncInterval: Self.libvirtRecheckInterval,
            logger: logger
        )
        self.watcher = watcher
        self.discovery =
            settings.pools.isEmpty
            ? PoolDiscovery(
                libvirt: watcher,
                pools: poolSet,
                interval: Self.libvirtRecheckInterval,
                makePool: { Self.makePool($0, ioTimeout: ioTimeout, logger: logger) },
                logger: logger
            )
            : nil
        let fencer = Fencer(
            timing: settings.timing, pools: settings.pools.map(\.uuid),
            markerPath: settings.stateDir + "/fenced", logger: logger)
        self.fencer = fencer
        let metrics = APIMetrics()
        self.metrics = metrics
        self.writer = BeatWriter(
            identity: identity,
            pools: poolSet,
            timing: settings.timing,
            logger: logger,
            inventory: { watcher.inventory() },
            onRound: { fencer.roundCompleted($0) },
            onPoolBeat: { metrics.recordBeat(pool: $0, ok: $1, latency: $2) }
        )
        let monitor = PeerMonitor(
            identity: identity,
            pools: poolSet,
            timing: settings.timing,
            skewAllowance: settings.skewAllowance,
            logger: logger
        )
        self.monitor = monitor
        do {
            self.api = try Self.makeAPIService(
                settings: settings, identity: identity, pools: poolSet, monitor: monitor, watcher: watcher,
                metrics: metrics, logger: logger
            )
        } catch {
            throw StartError(description: error.description)
        }
    }

    /// The pool for one configured or discovered pool: through its mount (`path`), through libnfs (`url`), or
    /// both (then each beat goes both ways and counts when either lands; see `Pool`).
    public static func makePool(_ setting: PoolSetting, ioTimeout: Duration, logger: Logger) -> Pool {
        var accesses: [PoolAccess] = []
        if let root = setting.path {
            accesses.append(PoolAccess(kind: .path, location: root) { DirectoryPoolFiles(root: root) })
        }
        if let text = setting.url {
            do throws(NFSURLError) {
                let url = try NFSURL(parsing: text)
                accesses.append(
                    PoolAccess(kind: .url, location: url.description) { NFSPoolFiles(url: url, ioTimeout: ioTimeout) })
            } catch {
                // Configured URLs are checked at start-up; this one came from libvirt: every call tells why.
                accesses.append(PoolAccess(kind: .url, location: text) { throw error })
            }
        }
        if accesses.isEmpty {
            accesses.append(PoolAccess(kind: .path, location: "") { DirectoryPoolFiles(root: "") })
        }
        return Pool(id: setting.uuid, accesses: accesses, ioTimeout: ioTimeout, logger: logger)
    }

    /// Runs until SIGTERM or SIGINT.
    public func run() async throws {
        let poolText =
            discovery == nil
            ? pools.map { "\($0.id)=\($0.location)" }.joined(separator: ",") : "from libvirt's netfs pools"
        logger.notice(
            "kvmha sidecar starting",
            metadata: [
                "host": "\(identity.address)", "incarnation": "\(identity.incarnation)",
                "pools": "\(poolText)", "libvirt": "\(settings.libvirtURI)",
                "interval": "\(DurationText.format(settings.timing.interval))",
                "deadAfter": "\(DurationText.format(settings.timing.deadAfter))",
            ]
        )
        var services: [any Service] = [watcher]
        if let discovery { services.append(discovery) }
        services += [writer, monitor, fencer]
        if let api { services.append(api) }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        poolSet.stopAll()
        logger.notice("kvmha sidecar stopped")
    }
}
