import Foundation
public import HeartbeatCore
public import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// This host's mode (`HostMode`), kept across restarts in the daemon's `stateDir`:
/// - `maintenance`: a JSON file `{"reason": …, "sinceMs": …}`, written when an operator turns maintenance
///   on and removed when it is turned off; while it exists self-fencing is disarmed.
/// - `running`: present while a daemon runs; left behind by a crash, a kill or a reboot, so the next start
///   knows the stop was unclean.
/// - `fenced`: the dry-run fence marker; renamed to `fenced.seen` once a start has acted on it.
/// After a fence or an unclean stop the daemon rejoins for one `deadAfter` (`StartupProtection`).
public final class HostModeStore: Sendable {
    public struct Maintenance: Codable, Sendable, Equatable {
        public var reason: String
        public var sinceMs: Int64
    }

    /// The mode and its details, for health and the API.
    public struct Snapshot: Sendable, Equatable {
        public var mode: HostMode
        public var maintenanceSinceMs: Int64?
        /// Until when, Unix ms, this host rejoins (set while `mode` is `rejoining`).
        public var rejoiningUntilMs: Int64?
        /// Why it rejoins: `fenced`, `unclean stop`.
        public var rejoiningBecause: String?
    }

    public static let maxReasonBytes = 256

    private let stateDir: String
    private let logger: Logger
    private let maintenance: Mutex<Maintenance?>
    private let rejoinFor: Duration
    private let rejoin = Mutex<(until: ContinuousClock.Instant, untilMs: Int64, because: String)?>(nil)
    private let onChange: Mutex<(@Sendable (Bool) -> Void)?> = Mutex(nil)

    var maintenancePath: String { stateDir + "/maintenance" }
    var runningPath: String { stateDir + "/running" }
    var fencedPath: String { Fencer.dryRunMarkerPath(stateDir: stateDir) }

    /// Reads the persisted maintenance state; `begin()` does the rest when the daemon starts running.
    /// - Parameter rejoinFor: how long to rejoin after a fence or an unclean stop (`deadAfter`).
    public init(stateDir: String, rejoinFor: Duration, logger: Logger) {
        self.stateDir = stateDir
        self.logger = logger
        let files = FileManager.default
        // Maintenance survives restarts. A file that cannot be read keeps maintenance on: it exists because an
        // operator turned maintenance on, and arming the fencer against that intent is the worse mistake.
        var loaded: Maintenance?
        if files.fileExists(atPath: stateDir + "/maintenance") {
            if let data = files.contents(atPath: stateDir + "/maintenance"),
                let value = try? JSONDecoder().decode(Maintenance.self, from: data)
            {
                loaded = value
            } else {
                logger.error(
                    "maintenance file \(stateDir)/maintenance is unreadable: staying in maintenance; `kvmha maintenance off` clears it"
                )
                loaded = Maintenance(reason: "maintenance file unreadable", sinceMs: WallClock.nowMs())
            }
        }
        maintenance = Mutex(loaded)
        self.rejoinFor = rejoinFor
    }

    /// At the start of a run (not at `--check-config`): looks at what the previous run left, decides whether
    /// to rejoin, and marks this run as running.
    public func begin() {
        let files = FileManager.default
        if !files.fileExists(atPath: stateDir) {
            do {
                try files.createDirectory(atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                logger.error("cannot create the state directory \(stateDir): \(error)")
            }
        }
        let fenced = files.fileExists(atPath: fencedPath)
        let unclean = files.fileExists(atPath: runningPath)
        if StartupProtection.mustRejoin(fenced: fenced, uncleanStop: unclean) {
            let because = fenced ? "fenced" : "unclean stop"
            rejoin.withLock {
                $0 = (ContinuousClock.now + rejoinFor, WallClock.nowMs() + rejoinFor.wholeMilliseconds, because)
            }
            logger.warning(
                "previous run ended by \(because): rejoining for \(DurationText.format(rejoinFor)) before saying normal"
            )
        }
        if fenced {
            // Acted on: kept for the operator under another name, so that the next start is not a rejoin again.
            _ = rename(fencedPath, fencedPath + ".seen")
        }
        if !files.createFile(atPath: runningPath, contents: Data("\(getpid())\n".utf8)) {
            logger.error("cannot write \(runningPath): the next start cannot tell a clean stop from a crash")
        }
    }

    /// Called with `true` when maintenance turns on (and at once with the current state when set).
    public func onMaintenanceChange(_ handler: @escaping @Sendable (Bool) -> Void) {
        onChange.withLock { $0 = handler }
        handler(maintenance.withLock { $0 != nil })
    }

    public func snapshot(now: ContinuousClock.Instant = .now) -> Snapshot {
        if let current = maintenance.withLock({ $0 }) {
            return Snapshot(
                mode: .maintenance(reason: current.reason), maintenanceSinceMs: current.sinceMs,
                rejoiningUntilMs: nil, rejoiningBecause: nil)
        }
        if let rejoin = rejoin.withLock({ $0 }), now < rejoin.until {
            return Snapshot(
                mode: .rejoining, maintenanceSinceMs: nil, rejoiningUntilMs: rejoin.untilMs,
                rejoiningBecause: rejoin.because)
        }
        return Snapshot(mode: .normal, maintenanceSinceMs: nil, rejoiningUntilMs: nil, rejoiningBecause: nil)
    }

    public var mode: HostMode { snapshot().mode }

    public enum ChangeError: Error, Sendable, CustomStringConvertible {
        case badReason(String)
        case io(String)

        public var description: String {
            switch self {
            case .badReason(let text), .io(let text): text
            }
        }
    }

    /// Turns maintenance on (or updates its reason), persisted before it takes effect.
    public func enterMaintenance(reason: String) throws(ChangeError) {
        guard reason.utf8.count <= Self.maxReasonBytes else {
            throw .badReason("reason: at most \(Self.maxReasonBytes) bytes")
        }
        guard !reason.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw .badReason("reason: no control characters")
        }
        let value = Maintenance(
            reason: reason, sinceMs: maintenance.withLock { $0?.sinceMs } ?? WallClock.nowMs())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value) else { throw .io("cannot encode the maintenance state") }
        try write(data + Data("\n".utf8), to: maintenancePath)
        let wasOn = maintenance.withLock { current -> Bool in
            defer { current = value }
            return current != nil
        }
        logger.notice("maintenance on: \(reason.isEmpty ? "no reason given" : reason); self-fencing disarmed")
        if !wasOn { onChange.withLock { $0 }?(true) }
    }

    /// Turns maintenance off: self-fencing armed again, the usual rules apply.
    public func leaveMaintenance() throws(ChangeError) {
        if unlink(maintenancePath) != 0 && errno != ENOENT {
            throw .io("cannot remove \(maintenancePath): \(String(cString: strerror(errno)))")
        }
        let wasOn = maintenance.withLock { current -> Bool in
            defer { current = nil }
            return current != nil
        }
        if wasOn {
            logger.notice("maintenance off: self-fencing armed again")
            onChange.withLock { $0 }?(false)
        }
    }

    /// A clean stop: the next start is not a rejoin.
    public func markCleanStop() {
        unlink(runningPath)
    }

    private func write(_ data: Data, to path: String) throws(ChangeError) {
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else {
            throw .io("cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, path) == 0 else {
            let error = String(cString: strerror(errno))
            unlink(temporary)
            throw .io("cannot rename \(temporary) to \(path): \(error)")
        }
    }
}
