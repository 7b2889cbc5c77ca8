public import HeartbeatCore
internal import Libvirt
public import Logging
public import ServiceLifecycle
import Synchronization

/// Finds the pools to use in libvirt when the config lists none: CloudStack defines each shared primary
/// storage on a host as a `netfs` pool named by the pool's UUID and mounted at `/mnt/<uuid>`.
///
/// Looks on every libvirt (re)connect and every `interval`, and adds and removes pools in the `PoolSet`
/// the writer and the monitor read. A pool is removed only after it was missing from `removeAfterMisses`
/// successful looks in a row — a pool that blinks (libvirtd or CloudStack's agent restarting it) should
/// not cost its beats — and never because libvirt cannot be reached.
public final class PoolDiscovery: Service, Sendable {
    /// The outcome of one look.
    public struct Round: Sendable, Equatable {
        /// Ids of pools added and removed by this look.
        public var added: [String]
        public var removed: [String]
        /// Ids of the pools in use after it.
        public var current: [String]

        public init(added: [String], removed: [String], current: [String]) {
            self.added = added
            self.removed = removed
            self.current = current
        }
    }

    private struct State {
        /// What each pool we added was made from, by id.
        var discovered: [String: PoolSetting] = [:]
        /// Consecutive looks each pool of ours was missing from.
        var misses: [String: Int] = [:]
        var rounds = 0
        /// The last warning about having no pool, so it is not repeated every look.
        var warnedEmpty = false
    }

    private let libvirt: DomainWatcher
    private let pools: PoolSet
    private let interval: Duration
    private let removeAfterMisses: Int
    private let makePool: @Sendable (PoolSetting) -> Pool
    private let logger: Logger
    private let onRound: @Sendable (Round) -> Void
    private let state = Mutex(State())

    /// - Parameters:
    ///   - libvirt: whose connection to read the pools through.
    ///   - pools: the set to keep in step with libvirt.
    ///   - interval: how often to look again (besides on every reconnect).
    ///   - removeAfterMisses: looks in a row a pool must be missing from before it is removed (at least 1).
    ///   - makePool: builds a pool from what was found (`SidecarApp.makePool`).
    ///   - onRound: called after every successful look.
    public init(
        libvirt: DomainWatcher,
        pools: PoolSet,
        interval: Duration = .seconds(60),
        removeAfterMisses: Int = 2,
        makePool: @escaping @Sendable (PoolSetting) -> Pool,
        logger: Logger,
        onRound: @escaping @Sendable (Round) -> Void = { _ in }
    ) {
        self.libvirt = libvirt
        self.pools = pools
        self.interval = interval
        self.removeAfterMisses = max(1, removeAfterMisses)
        self.makePool = makePool
        self.logger = logger
        self.onRound = onRound
    }

    public func run() async throws {
        let events = libvirt.connectionEvents()
        // Looks requested while one runs collapse into one.
        let (looks, request) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await cancelWhenGracefulShutdown { [self] in
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await event in events where event == .connected {
                        request.yield()
                    }
                }
                group.addTask { [interval] in
                    while (try? await MonotonicSleeper.shared.sleep(for: interval)) != nil {
                        request.yield()
                    }
                }
                for await _ in looks {
                    await discoverOnce()
                }
                group.cancelAll()
            }
        }
    }

    /// Reads libvirt's pools once and brings the pool set in line. nil when libvirt could not be read
    /// (nothing changes then).
    @discardableResult
    public func discoverOnce() async -> Round? {
        let found: [StoragePoolInfo]
        do {
            found = try await libvirt.storagePools()
        } catch {
            logger.debug("pool discovery: cannot read libvirt's storage pools: \(error)")
            return nil
        }
        let (wanted, skipped) = Self.candidates(from: found)
        let (removedIDs, newSettings, first) = state.withLock { state -> ([String], [PoolSetting], Bool) in
            state.rounds += 1
            var removed: [String] = []
            for (id, setting) in state.discovered.sorted(by: { $0.key < $1.key }) {
                let now = wanted.first { $0.uuid == id }
                if now == setting {
                    state.misses[id] = nil
                    continue
                }
                state.misses[id, default: 0] += 1
                // Same id in a new place: replace it at once.
                if now != nil || state.misses[id]! >= removeAfterMisses {
                    state.discovered[id] = nil
                    state.misses[id] = nil
                    removed.append(id)
                }
            }
            let new = wanted.filter { state.discovered[$0.uuid] == nil }
            for setting in new { state.discovered[setting.uuid] = setting }
            return (removed, new, state.rounds == 1)
        }
        for id in removedIDs {
            pools.remove(id: id)
            logger.notice("pool removed: no longer an active netfs pool in libvirt", metadata: ["pool": "\(id)"])
        }
        var added: [Pool] = []
        for setting in newSettings {
            let pool = makePool(setting)
            if pools.add(pool) {
                added.append(pool)
                logger.notice(
                    "pool added from libvirt",
                    metadata: ["pool": "\(pool.id)", "location": "\(pool.location)"]
                )
            }
        }
        let round = Round(added: added.map(\.id), removed: removedIDs, current: pools.ids)
        if first || !round.added.isEmpty || !round.removed.isEmpty {
            let list = pools.current.map { "\($0.id)=\($0.location)" }.joined(separator: ", ")
            let ignored = skipped.isEmpty ? "" : "; ignored: \(skipped.joined(separator: "; "))"
            if !round.current.isEmpty {
                logger.notice("pools from libvirt's netfs pools: \(list)\(ignored)")
            }
        }
        warnIfEmpty(round, skipped: skipped)
        onRound(round)
        return round
    }

    private func warnIfEmpty(_ round: Round, skipped: [String]) {
        let warn = state.withLock { state -> Bool in
            defer { state.warnedEmpty = round.current.isEmpty }
            return round.current.isEmpty && !state.warnedEmpty
        }
        guard warn else { return }
        let ignored = skipped.isEmpty ? "" : " (ignored: \(skipped.joined(separator: "; ")))"
        let next =
            "no heartbeats are written until one appears — checking again every "
            + "\(DurationText.format(interval)) and on every libvirt reconnect"
        logger.warning(
            "no pools: none configured and libvirt (\(libvirt.uri)) has no active netfs pool\(ignored); \(next)"
        )
    }

    /// The pools to use among libvirt's: active `netfs` pools with a target path, named by their pool id
    /// (the libvirt name when it is a valid id, as CloudStack's pool UUIDs are, else libvirt's UUID).
    /// Also says why other netfs pools were left out.
    /// `nfs://host/export?version=3` from a netfs pool's source, or nil when it lacks one.
    static func nfsURL(host: String?, export: String?) -> String? {
        guard let host, !host.isEmpty, let export, export.hasPrefix("/") else { return nil }
        let authority = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return "nfs://\(authority)\(export)?version=3"
    }

    static func candidates(from found: [StoragePoolInfo]) -> (pools: [PoolSetting], skipped: [String]) {
        var pools: [PoolSetting] = []
        var skipped: [String] = []
        for pool in found where pool.type == "netfs" {
            guard pool.active else {
                skipped.append("\(pool.name) is not active")
                continue
            }
            guard let path = pool.targetPath, path.hasPrefix("/") else {
                skipped.append("\(pool.name) has no absolute target path")
                continue
            }
            let id = SettingsResolver.isValidPoolID(pool.name) ? pool.name : pool.uuid
            guard !pools.contains(where: { $0.uuid == id }) else {
                skipped.append("\(pool.name): pool id \(id) is taken by another pool")
                continue
            }
            // Besides the mount, the same export straight through libnfs (NFSv3, the version libnfs 4.0.0 does
            // fully), which no hung kernel mount can block.
            pools.append(PoolSetting(uuid: id, path: path, url: nfsURL(host: pool.sourceHost, export: pool.sourceDir)))
        }
        return (pools.sorted { $0.uuid < $1.uuid }, skipped)
    }
}
