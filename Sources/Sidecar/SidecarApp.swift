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
    /// Out-of-band power evidence from the BMCs of the peers that have one in the config; nil when none has.
    public let bmcProbe: BMCProbe?
    /// TCP probes of the peers' API ports (`peerProbe`); nil when off.
    public let peerProber: PeerProber?
    /// The cluster keys that sign our records and verify the peers' (`recordKeyFile`); nil: unsigned mode.
    public let keyring: RecordKeyring?
    /// Maintenance (kept across restarts) and rejoining after a fence or an unclean stop.
    public let hostMode: HostModeStore
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
        var keyring: RecordKeyring?
        if let keyFile = settings.recordKeyFile {
            do {
                keyring = try RecordKeyringFile.load(path: keyFile, gracePeriod: settings.keyGracePeriod)
            } catch {
                throw StartError(description: error.description)
            }
        }
        self.keyring = keyring
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
            markerPath: Fencer.dryRunMarkerPath(stateDir: settings.stateDir), logger: logger)
        self.fencer = fencer
        let hostMode = HostModeStore(stateDir: settings.stateDir, rejoinFor: settings.timing.deadAfter, logger: logger)
        self.hostMode = hostMode
        let metrics = APIMetrics()
        self.metrics = metrics
        let monitor = PeerMonitor(
            identity: identity,
            pools: poolSet,
            timing: settings.timing,
            skewAllowance: settings.skewAllowance,
            logger: logger,
            localVMs: { watcher.inventory() },
            onConflicts: { metrics.recordConflicts($0) },
            keyring: keyring
        )
        self.monitor = monitor
        // A connect that takes longer than the I/O deadline is as good as no answer.
        let peerProber =
            settings.peerProbe
            ? PeerProber(
                port: settings.api.port, interval: settings.timing.interval, timeout: settings.timing.ioTimeout,
                peers: { monitor.reports().map(\.peer) }, logger: logger)
            : nil
        self.peerProber = peerProber
        self.writer = BeatWriter(
            identity: identity,
            pools: poolSet,
            timing: settings.timing,
            logger: logger,
            inventory: { watcher.inventory() },
            mode: { hostMode.mode },
            // The matrix row: this host's answer on every peer, as CheckOnHost gives it.
            peerViews: { Self.peerViews(monitor.reports(), prober: peerProber) },
            onRound: { fencer.roundCompleted($0) },
            onPoolBeat: { metrics.recordBeat(pool: $0, ok: $1, latency: $2) },
            recordKey: keyring?.signingKey
        )
        let bmcTargets: [BMCProbe.Target]
        do {
            bmcTargets = try BMCProbe.targets(from: settings.peers)
        } catch {
            throw StartError(description: error.description)
        }
        let bmcProbe =
            bmcTargets.isEmpty
            ? nil : BMCProbe(targets: bmcTargets, interval: settings.timing.interval, tool: .locate(), logger: logger)
        self.bmcProbe = bmcProbe
        do {
            self.api = try Self.makeAPIService(
                settings: settings, identity: identity, pools: poolSet, monitor: monitor, watcher: watcher,
                fencer: fencer, bmcProbe: bmcProbe, peerProber: peerProber, hostMode: hostMode, metrics: metrics, logger: logger,
                recordKeyID: keyring?.signingKey.id
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

    /// This host's answer on every peer, as CheckOnHost gives it: the row of the heartbeat matrix that goes
    /// into its record.
    static func peerViews(_ reports: [PeerReport], prober: PeerProber?) -> [HostAddress: String] {
        var views: [HostAddress: String] = [:]
        for report in reports {
            var answer = APIPeerReport(report)
            answer.add(probe: prober?.result(for: report.peer), liveness: report.overall.liveness)
            views[report.peer] = answer.overall.verdict
        }
        return views
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
        if let keyring {
            logger.notice(
                "records are signed with key \(keyring.signingKey.id); peers' records must carry a valid signature",
                metadata: ["acceptedKeys": "\(keyring.keys.map(\.description).joined(separator: ", "))"])
        } else {
            logger.warning(
                "records are unsigned (no recordKeyFile): anyone who can write to the pools can fake a peer's record; peers' signatures are not checked"
            )
        }
        var services: [any Service] = [watcher]
        if let discovery { services.append(discovery) }
        services += [writer, monitor, fencer]
        if let bmcProbe { services.append(bmcProbe) }
        if let peerProber { services.append(peerProber) }
        if let api { services.append(api) }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        hostMode.begin()
        // Maintenance disarms self-fencing; leaving it arms it again.
        hostMode.onMaintenanceChange { [fencer] on in fencer.setArmed(!on) }
        try await group.run()
        hostMode.markCleanStop()
        poolSet.stopAll()
        logger.notice("kvmha sidecar stopped")
    }
}
