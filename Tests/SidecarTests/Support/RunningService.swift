import Foundation
import HeartbeatCore
import Logging
import Sidecar

/// Runs a service's `run()` in a task for the duration of `body`, then cancels it and waits for it to end,
/// also when `body` throws.
func whileRunning<T: Sendable>(
    _ run: @escaping @Sendable () async throws -> Void,
    _ body: () async throws -> T
) async throws -> T {
    let task = Task { try await run() }
    do {
        let result = try await body()
        task.cancel()
        _ = await task.result
        return result
    } catch {
        task.cancel()
        _ = await task.result
        throw error
    }
}

/// A `DomainWatcher` whose updates a test can await.
struct WatchedLibvirt {
    let watcher: DomainWatcher
    let updates: EventLog<DomainWatcher.Update>

    /// - Parameter resyncInterval: long by default, so only events (and reconnects) can explain a change.
    static func make(
        uri: String,
        resyncInterval: Duration = .seconds(3600),
        logger: Logger = testLogger()
    ) async -> WatchedLibvirt {
        let (stream, sink) = AsyncStream.makeStream(of: DomainWatcher.Update.self)
        let watcher = DomainWatcher(
            uri: uri,
            resyncInterval: resyncInterval,
            reconnectBackoff: .milliseconds(50) ... .milliseconds(400),
            logger: logger,
            onUpdate: { sink.yield($0) }
        )
        return WatchedLibvirt(watcher: watcher, updates: await EventLog.collecting(stream))
    }

    /// Waits for the full read that follows a (re)connect.
    @discardableResult
    func connectResync(_ what: String) async throws -> DomainWatcher.Update {
        try await updates.next(what) {
            if case .resynced(.connected, _, _) = $0 { true } else { false }
        }
    }

    /// Waits for an event-driven update of the VM with this UUID into `state`.
    @discardableResult
    func vmUpdate(_ uuid: String, to state: VMPowerState, _ what: String) async throws -> LocalVM {
        let update = try await updates.next(what) {
            if case .domainUpdated(let vm, _) = $0 { vm.uuid == uuid && vm.state == state } else { false }
        }
        guard case .domainUpdated(let vm, _) = update else { preconditionFailure() }
        return vm
    }

    func vmRemoval(_ uuid: String, _ what: String) async throws {
        try await updates.next(what) {
            if case .domainRemoved(let removed, _, _) = $0 { removed == uuid } else { false }
        }
    }
}

func testLogger() -> Logger {
    var logger = Logger(label: "kvmha.test")
    logger.logLevel = .info
    return logger
}

/// Unix milliseconds now.
func nowMs() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
}
