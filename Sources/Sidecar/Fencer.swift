import Foundation
public import HeartbeatCore
public import Logging
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Carries out the self-fencing policy: fed every beat round, ticking on its own so that beats stuck in
/// storage (which report nothing) still count as silence. Also drives systemd's readiness and watchdog.
public final class Fencer: Service, Sendable {
    /// What the fencer last decided, for health and metrics.
    public struct Status: Sendable {
        public var state: String
        public var failingPools: [String]
        public var action: FenceAction
    }

    private let timing: TimingSettings
    private let markerPath: String
    private let logger: Logger
    private let notifier: SystemdNotifier
    private let policy: Mutex<FencePolicy<ContinuousClock>>
    private let flags = Mutex((ready: false, unused: false))

    /// - Parameter markerPath: where the dry-run action writes its marker.
    public init(timing: TimingSettings, pools: [String], markerPath: String, logger: Logger, notifier: SystemdNotifier = SystemdNotifier()) {
        self.timing = timing
        self.markerPath = markerPath
        self.logger = logger
        self.notifier = notifier
        self.policy = Mutex(FencePolicy(fenceAfter: timing.fenceAfter, fenceDelay: timing.fenceDelay, pools: pools, start: .now))
    }

    public var status: Status {
        let state = policy.withLock { $0.state }
        switch state {
        case .healthy: return Status(state: "healthy", failingPools: [], action: timing.fenceAction)
        case .degraded(let pools): return Status(state: "alert", failingPools: pools, action: timing.fenceAction)
        case .fencing: return Status(state: "fencing", failingPools: [], action: timing.fenceAction)
        case .fenced: return Status(state: "fenced", failingPools: [], action: timing.fenceAction)
        case .disarmed: return Status(state: "disarmed", failingPools: [], action: timing.fenceAction)
        }
    }

    /// Called with every completed beat round (on a pool thread: quick, no blocking).
    public func roundCompleted(_ round: BeatWriter.Round) {
        let now = ContinuousClock.now
        let poolCount = round.succeeded.count + round.failed.count
        let actions = policy.withLock { policy -> [FencePolicy<ContinuousClock>.Action] in
            var actions: [FencePolicy<ContinuousClock>.Action] = []
            // The pools come and go with discovery; a round names the ones in use.
            policy.setPools(round.succeeded + round.failed.keys, at: now)
            for pool in round.succeeded { actions += policy.beat(pool: pool, succeeded: true, at: now) }
            for pool in round.failed.keys.sorted() { actions += policy.beat(pool: pool, succeeded: false, at: now) }
            return actions
        }
        perform(actions)
        // With no pools yet (discovery at boot, before CloudStack mounts them) there is nothing to beat: not
        // ready, but healthy.
        guard poolCount > 0 else {
            notifier.notify("WATCHDOG=1\nSTATUS=no pools yet")
            return
        }
        let firstRound = flags.withLock { flags -> Bool in
            defer { flags.ready = true }
            return !flags.ready
        }
        if firstRound {
            notifier.notify("READY=1\nSTATUS=first beat round done: \(round.succeeded.count) pool(s) ok, \(round.failed.count) failed")
        }
        // The watchdog is petted only while beats land somewhere: a daemon that cannot write any beat is
        // not healthy by its own rule, whatever else it still does.
        if !round.succeeded.isEmpty {
            notifier.notify("WATCHDOG=1")
        } else {
            logger.warning("no beat landed on any pool this round: not petting the systemd watchdog")
        }
    }

    public func setPools(_ ids: [String]) {
        policy.withLock { $0.setPools(ids, at: .now) }
    }

    public func setArmed(_ armed: Bool) {
        let actions = policy.withLock { $0.setArmed(armed, at: .now) }
        perform(actions)
    }

    public func run() async throws {
        // Tick twice per interval so that silence is noticed without waiting for a beat to report.
        try? await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                try await MonotonicSleeper.shared.sleep(for: timing.interval / 2)
                perform(policy.withLock { $0.tick(at: .now) })
            }
        }
    }

    private func perform(_ actions: [FencePolicy<ContinuousClock>.Action]) {
        for action in actions {
            switch action {
            case .alert(let pools):
                logger.error(
                    "alert: no beat on pool(s) \(pools.joined(separator: ", ")) for \(DurationText.format(timing.fenceAfter)); other pools are fine, so no fencing"
                )
            case .alertCleared:
                logger.notice("alert cleared: every pool takes beats again")
            case .fenceScheduled(let silentFor):
                logger.critical(
                    "no beat on any pool for \(DurationText.format(silentFor)) (fenceAfter \(DurationText.format(timing.fenceAfter))): fencing (\(timing.fenceAction.rawValue)) in \(DurationText.format(timing.fenceDelay))"
                )
                if timing.fenceAction == .reboot { Self.startSync() }
            case .fenceAborted:
                logger.notice("fencing called off: a beat landed again")
            case .fence:
                fence()
            }
        }
    }

    private func fence() {
        Self.carryOut(
            timing.fenceAction, markerPath: markerPath,
            reason: "no beat on any pool for \(DurationText.format(timing.fenceAfter))", logger: logger)
    }

    /// The dry-run marker's path under the daemon's `stateDir`.
    public static func dryRunMarkerPath(stateDir: String) -> String { stateDir + "/fenced" }

    /// Carries out `action` now: the daemon's fence, and `kvmha cloudstack heartbeat -c`'s.
    ///
    /// - Parameter reason: why, for the dry-run marker.
    /// - Returns: false when the dry-run marker could not be written.
    @discardableResult
    public static func carryOut(_ action: FenceAction, markerPath: String, reason: String, logger: Logger) -> Bool {
        switch action {
        case .none:
            logger.critical("fence condition met; fenceAction is none: nothing done")
        case .log:
            logger.critical("fence condition met; fenceAction is log: this host would now reboot")
        case .dryRun:
            let text = "fenced (dry run) at \(WallClock.nowMs()) ms: \(reason)\n"
            if FileManager.default.createFile(atPath: markerPath, contents: Data(text.utf8)) {
                logger.critical("fence condition met; dry run: marker written to \(markerPath)")
            } else {
                logger.critical("fence condition met; dry run: could not write marker \(markerPath)")
                return false
            }
        case .reboot:
            logger.critical("fence condition met: rebooting this host now (sysrq b)")
            rebootNow()
        }
        return true
    }

    /// `sync` can block forever on a dead NFS mount, so it runs on a thread of its own and nobody waits.
    public static func startSync() {
        Thread.detachNewThread { Glibc.sync() }
    }

    /// The real reboot: an immediate reset through magic sysrq, as CloudStack's heartbeat script does.
    private static func rebootNow() {
        let fd = open("/proc/sysrq-trigger", O_WRONLY)
        if fd >= 0 {
            _ = write(fd, "b", 1)
            close(fd)
        }
    }
}
