import Foundation
public import HeartbeatCore
public import Logging
import ServiceLifecycle

/// Builds the daemon from settings. `main` only composes: tests build the same thing.
public struct SidecarApp: Sendable {
    public let settings: SidecarSettings
    public let identity: HostIdentity
    public let pools: [Pool]
    public let writer: BeatWriter
    public let monitor: PeerMonitor
    public let logger: Logger

    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

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
        guard !settings.pools.isEmpty else {
            throw StartError(description: "no pools to watch: list them under 'pools' in the config file, KVMHA_POOLS or --pool")
        }
        self.settings = settings
        self.logger = logger
        self.identity = HostIdentity.current(address: address, hostUUID: hostUUID)
        self.pools = settings.pools.map { setting in
            let root = setting.path ?? ""
            return Pool(id: setting.uuid, location: root, ioTimeout: settings.timing.ioTimeout, logger: logger) {
                DirectoryPoolFiles(root: root)
            }
        }
        self.writer = BeatWriter(identity: identity, pools: pools, timing: settings.timing, logger: logger)
        self.monitor = PeerMonitor(
            identity: identity, pools: pools, timing: settings.timing, skewAllowance: settings.skewAllowance, logger: logger)
    }

    /// Runs until SIGTERM or SIGINT.
    public func run() async throws {
        logger.notice(
            "kvmha sidecar starting",
            metadata: [
                "host": "\(identity.address)", "incarnation": "\(identity.incarnation)",
                "pools": "\(pools.map { "\($0.id)=\($0.location)" }.joined(separator: ","))",
                "interval": "\(DurationText.format(settings.timing.interval))",
                "deadAfter": "\(DurationText.format(settings.timing.deadAfter))",
            ])
        let group = ServiceGroup(
            configuration: .init(
                services: [writer, monitor],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
        try await group.run()
        for pool in pools { pool.stop() }
        logger.notice("kvmha sidecar stopped")
    }
}
