import Foundation
public import HeartbeatCore
internal import Libvirt
public import Logging
public import ServiceLifecycle
import Synchronization

/// Keeps the list of this host's VMs and their power states, from libvirt.
///
/// Owns the daemon's one libvirt connection (a `LibvirtSession`, which reconnects by itself). The list is
/// read in full on every (re)connect and every `resyncInterval` (events are lost while disconnected, and
/// can be lost otherwise), and kept current in between from lifecycle events: after each event the
/// domain's state is looked up, since an event says what happened, not what is true now.
///
/// While libvirt is unreachable the last known list is kept — the VMs keep running when libvirtd
/// restarts, and an empty list would claim they stopped — but `libvirtState` says `disconnected`, so
/// nobody mistakes it for fresh.
public final class DomainWatcher: Service, Sendable {
    /// Whether the watcher's list is backed by a live libvirt connection.
    public enum LibvirtState: Sendable, Equatable, CustomStringConvertible {
        /// Connected and the list was read in full after connecting; events keep it current.
        case connected(sinceMs: Int64)
        /// Not connected (or connected but not yet read) since then; the list, if any, is what was known
        /// at that time. `lastError` is why: the loss of the connection or the latest failed attempt.
        case disconnected(sinceMs: Int64, lastError: String)

        public var isConnected: Bool {
            if case .connected = self { return true }
            return false
        }

        public var description: String {
            switch self {
            case .connected(let since): "connected since \(Self.format(since))"
            case .disconnected(let since, let error): "disconnected since \(Self.format(since)): \(error)"
            }
        }

        static func format(_ ms: Int64) -> String {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
        }
    }

    /// What the watcher did, for tests and anyone who wants to follow changes as they happen.
    public enum Update: Sendable, Equatable {
        case connected
        case disconnected(reason: String)
        /// The whole list was read: `changed` entries were added, removed or changed state by it.
        case resynced(trigger: ResyncTrigger, count: Int, changed: Int)
        /// A lifecycle event changed (or confirmed) one VM.
        case domainUpdated(LocalVM, event: String)
        /// A lifecycle event removed one VM (undefined, or a transient domain stopped).
        case domainRemoved(uuid: String, name: String, event: String)
    }

    public enum ResyncTrigger: String, Sendable {
        /// After a (re)connect.
        case connected
        /// The periodic check.
        case periodic
        /// An event whose domain could not be looked up.
        case retry
    }

    private struct State {
        var vms: [String: LocalVM] = [:] {
            didSet {
                sorted = vms.values.sorted { ($0.name, $0.uuid) < ($1.name, $1.uuid) }
                entries = sorted.map { $0.entry(fallbackSinceMs: 0) }  // the watcher always knows `sinceMs`
            }
        }
        /// `vms` sorted by name, and as record entries: built on change, so that reading them (every beat)
        /// costs a copy-on-write reference, not a sort.
        private(set) var sorted: [LocalVM] = []
        private(set) var entries: [VMEntry] = []
        var link: LibvirtState
        /// Whether `vms` has ever been read in full.
        var everSynced = false
        var lastResync: ContinuousClock.Instant?
        var resyncPending = false
        /// The last connect error that was logged, so a libvirtd that stays away is logged once.
        var loggedConnectError: String?
    }

    private enum Work: Sendable {
        case session(LibvirtSessionEvent, receivedMs: Int64)
        case tick
    }

    public let uri: String
    private let resyncInterval: Duration
    private let tickInterval: Duration
    private let session: LibvirtSession
    private let logger: Logger
    private let onUpdate: @Sendable (Update) -> Void
    private let state: Mutex<State>

    /// - Parameters:
    ///   - uri: libvirt's connection URI (`qemu:///system` on a CloudStack host).
    ///   - resyncInterval: how often the whole list is read again while connected.
    ///   - reconnectBackoff: the wait between attempts to reach libvirt: the lower bound at first, doubling
    ///     after every failure up to the upper bound.
    ///   - onUpdate: called after every change of the list or of the connection, on the watcher's task.
    public init(
        uri: String,
        resyncInterval: Duration = .seconds(60),
        reconnectBackoff: ClosedRange<Duration> = .milliseconds(200) ... .seconds(5),
        logger: Logger,
        onUpdate: @escaping @Sendable (Update) -> Void = { _ in }
    ) {
        self.uri = uri
        self.resyncInterval = resyncInterval
        // Ticks also notice connect errors to log; keep them frequent even when resyncs are rare.
        self.tickInterval = min(resyncInterval, .seconds(5))
        self.session = LibvirtSession(
            uri: uri,
            backoff: ReconnectBackoff(
                initial: reconnectBackoff.lowerBound,
                multiplier: 2,
                maximum: reconnectBackoff.upperBound
            )
        )
        var logger = logger
        logger[metadataKey: "libvirt"] = "\(uri)"
        self.logger = logger
        self.onUpdate = onUpdate
        self.state = Mutex(State(link: .disconnected(sinceMs: WallClock.nowMs(), lastError: "not connected yet")))
    }

    // MARK: Reading

    /// The VMs as our heartbeat record publishes them, sorted by name. Thread-safe; never waits on libvirt.
    public func inventory() -> [VMEntry] {
        state.withLock { $0.entries }
    }

    /// The VMs with their libvirt ids, sorted by name. Thread-safe; never waits on libvirt.
    public func localVMs() -> [LocalVM] {
        state.withLock { $0.sorted }
    }

    /// Whether the list is live. While disconnected, the error is the latest one from trying to reconnect.
    public var libvirtState: LibvirtState {
        let link = state.withLock { $0.link }
        guard case .disconnected(let since, let reason) = link else { return link }
        if case .disconnected(_, let lastError?) = session.state {
            return .disconnected(sinceMs: since, lastError: lastError.description)
        }
        return .disconnected(sinceMs: since, lastError: reason)
    }

    /// Until when the list was confirmed against libvirt: now while connected, the moment the connection
    /// was lost while disconnected, nil if it was never read.
    public func lastConfirmedMs() -> Int64? {
        state.withLock { state in
            guard state.everSynced else { return nil }
            switch state.link {
            case .connected: return WallClock.nowMs()
            case .disconnected(let since, _): return since
            }
        }
    }

    /// Every storage pool libvirt knows, through the watcher's connection (for `PoolDiscovery`).
    func storagePools() async throws(LibvirtError) -> [StoragePoolInfo] {
        try await session.storagePools()
    }

    /// The connection's events (for `PoolDiscovery`, which looks again on every reconnect).
    func connectionEvents() -> AsyncStream<LibvirtSessionEvent> {
        session.events()
    }

    // MARK: Running

    public func run() async throws {
        let events = session.events()
        session.start()
        defer { session.stop() }
        let (work, workInput) = AsyncStream.makeStream(of: Work.self)
        await cancelWhenGracefulShutdown { [self] in
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await event in events {
                        workInput.yield(.session(event, receivedMs: WallClock.nowMs()))
                    }
                    workInput.finish()
                }
                group.addTask { [tickInterval] in
                    while (try? await MonotonicSleeper.shared.sleep(for: tickInterval)) != nil {
                        workInput.yield(.tick)
                    }
                }
                // One consumer: every read of libvirt and every change of the list happens in order, so an
                // older answer never overwrites a newer one.
                for await item in work {
                    await handle(item)
                }
                group.cancelAll()
            }
        }
        logger.info("domain watcher stopped")
    }

    private func handle(_ work: Work) async {
        switch work {
        case .session(.connected, _):
            state.withLock { $0.loggedConnectError = nil }
            logger.notice("libvirt connected")
            onUpdate(.connected)
            await resync(.connected)
        case .session(.disconnected(let reason), let receivedMs):
            let (wasConnected, count) = state.withLock { state -> (Bool, Int) in
                let wasConnected = state.link.isConnected
                if wasConnected {
                    state.link = .disconnected(sinceMs: receivedMs, lastError: reason)
                }
                return (wasConnected, state.vms.count)
            }
            guard wasConnected else { return }  // the initial "not connected yet"
            let kept = "keeping the last known list of \(count) VM(s), marked stale until reconnected"
            logger.warning("libvirt disconnected: \(reason); \(kept)")
            onUpdate(.disconnected(reason: reason))
        case .session(.domainEvent(let event), let receivedMs):
            await apply(event, receivedMs: receivedMs)
        case .tick:
            await tick()
        }
    }

    private func tick() async {
        if case .disconnected(_, let lastError) = session.state {
            // Nothing to read; say once per distinct error why libvirt cannot be reached.
            if let text = lastError?.description {
                let first = state.withLock { state -> Bool in
                    defer { state.loggedConnectError = text }
                    return state.loggedConnectError != text
                }
                if first { logger.warning("cannot reach libvirt (retrying): \(text)") }
            }
            return
        }
        let due = state.withLock { state -> ResyncTrigger? in
            guard state.link.isConnected || state.resyncPending else { return nil }
            if state.resyncPending { return .retry }
            guard let last = state.lastResync else { return .periodic }
            return last.duration(to: .now) >= resyncInterval ? .periodic : nil
        }
        if let due {
            await resync(due)
        }
    }

    /// Reads every domain and replaces the list; keeps `sinceMs` of VMs whose state did not change.
    private func resync(_ trigger: ResyncTrigger) async {
        let domains: [DomainInfo]
        do {
            domains = try await session.domains()
        } catch {
            // A lost connection reconnects and resyncs by itself; anything else is retried on the next tick.
            state.withLock { $0.resyncPending = !error.isConnectionLost }
            logger.warning("reading the VM list from libvirt failed: \(error)")
            return
        }
        let now = WallClock.nowMs()
        let (changed, count, becameConnected) = state.withLock { state -> (Int, Int, Bool) in
            var fresh: [String: LocalVM] = [:]
            var changed = 0
            for domain in domains {
                let known = state.vms[domain.uuid]
                var vm = Self.localVM(domain, sinceMs: now)
                if let known, known.state == vm.state {
                    vm.sinceMs = known.sinceMs
                }
                if known != vm { changed += 1 }
                fresh[domain.uuid] = vm
            }
            changed += state.vms.keys.filter { fresh[$0] == nil }.count
            state.vms = fresh
            state.everSynced = true
            state.lastResync = .now
            state.resyncPending = false
            let becameConnected = !state.link.isConnected
            if becameConnected {
                state.link = .connected(sinceMs: now)
            }
            return (changed, fresh.count, becameConnected)
        }
        let summary = Self.summary(domains)
        if becameConnected || changed > 0 {
            // After a periodic or retried read, a change means events were missed.
            logger.info(
                "VM list read from libvirt (\(trigger.rawValue)): \(count) VM(s)\(summary), \(changed) changed"
            )
        } else {
            logger.debug("VM list read from libvirt (\(trigger.rawValue)): \(count) VM(s)\(summary), none changed")
        }
        onUpdate(.resynced(trigger: trigger, count: count, changed: changed))
    }

    /// Looks the event's domain up and updates or removes it.
    private func apply(_ event: DomainLifecycleEvent, receivedMs: Int64) async {
        let uuid = event.uuid
        let found: DomainInfo?
        do {
            found = try await session.withConnection { connection throws(LibvirtError) in
                try connection.domain(uuid: uuid)
            }
        } catch {
            if !error.isConnectionLost {
                state.withLock { $0.resyncPending = true }
                logger.warning("looking up \(event.name) (\(uuid)) after \(event.kind.rawValue) failed: \(error)")
            }
            return
        }
        let what = "\(event.kind.rawValue)/\(event.detailName)"
        // No `undefined` shortcut: undefining a running domain leaves it running as a transient one, and
        // dropping it from the list would hide a running VM.
        guard let found else {
            let removed = state.withLock { $0.vms.removeValue(forKey: uuid) }
            if removed != nil {
                logger.info("VM \(event.name) (\(uuid)) is gone (\(what))")
                onUpdate(.domainRemoved(uuid: uuid, name: event.name, event: what))
            }
            return
        }
        let vm = state.withLock { state -> LocalVM in
            var vm = Self.localVM(found, sinceMs: receivedMs)
            if let known = state.vms[uuid], known.state == vm.state {
                vm.sinceMs = known.sinceMs
            }
            state.vms[uuid] = vm
            return vm
        }
        logger.info("VM \(vm.name) (\(uuid)) is \(vm.state) (\(vm.reason)) after \(what)")
        onUpdate(.domainUpdated(vm, event: what))
    }

    static func localVM(_ domain: DomainInfo, sinceMs: Int64?) -> LocalVM {
        LocalVM(
            uuid: domain.uuid,
            name: domain.name,
            id: domain.id,
            state: powerState(domain.state),
            reason: domain.reason,
            sinceMs: sinceMs
        )
    }

    /// libvirt's state, as our records name it: one to one.
    static func powerState(_ state: DomainState) -> VMPowerState {
        switch state {
        case .noState: .noState
        case .running: .running
        case .blocked: .blocked
        case .paused: .paused
        case .shuttingDown: .shuttingDown
        case .shutoff: .shutoff
        case .crashed: .crashed
        case .pmsuspended: .pmsuspended
        }
    }

    /// " (3 running, 1 paused, 2 shutoff)", or "" for no domains.
    private static func summary(_ domains: [DomainInfo]) -> String {
        guard !domains.isEmpty else { return "" }
        var counts: [String: Int] = [:]
        for domain in domains { counts[powerState(domain.state).rawValue, default: 0] += 1 }
        return " (" + counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + ")"
    }
}
