import HeartbeatCore
import Logging

extension SidecarApp {
    /// The daemon's HTTP API over its pool set, peer monitor and libvirt watcher, or nil (logged) when the
    /// token file does not exist. Throws, naming the file, when the token or TLS files are unusable.
    static func makeAPIService(
        settings: SidecarSettings,
        identity: HostIdentity,
        pools: PoolSet,
        monitor: PeerMonitor,
        watcher: DomainWatcher,
        fencer: Fencer,
        bmcProbe: BMCProbe? = nil,
        peerProber: PeerProber? = nil,
        hostMode: HostModeStore? = nil,
        metrics: APIMetrics,
        logger: Logger,
        recordKeyID: String? = nil
    ) throws(APIStartError) -> APIService? {
        guard let token = try APIToken.loadIfPresent(path: settings.api.tokenFile) else {
            logger.error(
                "HTTP API off: its token file \(settings.api.tokenFile) does not exist — create it (e.g. `openssl rand -hex 32 > \(settings.api.tokenFile); chmod 600 \(settings.api.tokenFile)`) and restart"
            )
            return nil
        }
        var dependencies = APIDependencies(
            identity: identity,
            pools: pools,
            monitor: monitor,
            token: token,
            metrics: metrics,
            localVMs: { watcher.inventory() },
            libvirt: { LibvirtStatus(watcher) },
            fencing: { fencer.status }
        )
        dependencies.recordKeyID = recordKeyID
        if let bmcProbe { dependencies.bmc = { bmcProbe.snapshots() } }
        if let peerProber { dependencies.peerProbe = { peerProber.result(for: $0) } }
        dependencies.hostMode = hostMode
        return try buildAPIService(settings: settings.api, dependencies: dependencies, logger: logger)
    }
}

extension LibvirtStatus {
    /// What the API says about libvirt, from the watcher.
    init(_ watcher: DomainWatcher) {
        let confirmed = watcher.lastConfirmedMs()
        switch watcher.libvirtState {
        case .connected(let since):
            self.init(connected: true, sinceMs: since, lastError: nil, confirmedAtMs: confirmed)
        case .disconnected(let since, let error):
            self.init(connected: false, sinceMs: since, lastError: error, confirmedAtMs: confirmed)
        }
    }
}
