internal import CLibvirt
import Foundation

/// Keeps one libvirt connection open for as long as it runs, and reopens it with backoff when it is lost
/// (libvirtd stopped or restarted, keepalive timeout, a call failing with a connection error).
///
/// Subscribers (`events()`) hear `.connected` on every (re)connect — their cue to read the full inventory,
/// since events are not delivered while disconnected — then the lifecycle events, and `.disconnected` when
/// the connection is lost. Opening runs on a thread of the session's own and calls run on a serial dispatch
/// queue, so nothing here blocks Swift's cooperative pool.
///
/// `@unchecked Sendable`: all mutable state is guarded by `condition`; the connection it hands out is
/// itself thread-safe.
public final class LibvirtSession: @unchecked Sendable {
    public let uri: String
    public let backoff: ReconnectBackoff

    /// Monotonic, so that the reconnect backoff is immune to wall-clock steps (see `MonotonicCondition`).
    private let condition = MonotonicCondition()
    // Guarded by `condition`:
    private var currentState: LibvirtSessionState
    private var disconnectReason = "not connected yet"
    private var connection: LibvirtConnection?
    private var generation = 0
    private var lostGeneration = 0
    private var lostReason = ""
    private var lostError: LibvirtError?
    private var started = false
    private var stopRequested = false
    private var finished = false
    private var subscribers: [Int: AsyncStream<LibvirtSessionEvent>.Continuation] = [:]
    private var nextSubscriberID = 0

    /// Serial, so that a libvirtd that stops answering ties up one thread, not one per caller.
    private let callQueue = DispatchQueue(label: "kvmha.libvirt.session.calls")

    public init(uri: String, backoff: ReconnectBackoff = .standard) {
        self.uri = uri
        self.backoff = backoff
        self.currentState = .disconnected(since: Date(), lastError: nil)
    }

    /// Starts connecting on the session's thread. Idempotent. Call `stop()` when done: the thread keeps
    /// the session alive until then.
    public func start() {
        condition.lock()
        defer { condition.unlock() }
        guard !started, !stopRequested else {
            return
        }
        started = true
        let thread = Thread { [self] in
            run()
        }
        thread.name = "libvirt-session"
        thread.start()
    }

    /// Stops the session without waiting: the session's thread closes the connection, then every event
    /// stream finishes. Idempotent; a stopped session does not start again.
    public func stop() {
        condition.lock()
        stopRequested = true
        condition.broadcast()
        let neverStarted = !started
        condition.unlock()
        if neverStarted {
            finishSubscribers()
        }
    }

    /// The connection state now.
    public var state: LibvirtSessionState {
        condition.lock()
        defer { condition.unlock() }
        return currentState
    }

    /// Session events from now on, starting with the current state (`.connected`, or `.disconnected` with
    /// the reason). Each call returns a stream of its own; it finishes when the session stops.
    public func events() -> AsyncStream<LibvirtSessionEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: LibvirtSessionEvent.self)
        condition.lock()
        guard !finished else {
            condition.unlock()
            continuation.finish()
            return stream
        }
        let id = nextSubscriberID
        nextSubscriberID += 1
        subscribers[id] = continuation
        if currentState.isConnected {
            continuation.yield(.connected)
        } else {
            continuation.yield(.disconnected(reason: disconnectReason))
        }
        condition.unlock()
        continuation.onTermination = { [weak self] _ in
            self?.removeSubscriber(id)
        }
        return stream
    }

    /// Runs `body` with the current connection on the session's call queue. Fails with `VIR_ERR_NO_CONNECT`
    /// while disconnected; a failure that means the connection is gone also starts a reconnect.
    public func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (LibvirtConnection) throws(LibvirtError) -> T
    ) async throws(LibvirtError) -> T {
        let result: Result<T, LibvirtError> = await withCheckedContinuation { continuation in
            callQueue.async {
                continuation.resume(returning: self.callNow(body))
            }
        }
        return try result.get()
    }

    /// Every domain on the current connection (see `LibvirtConnection.domains()`).
    public func domains() async throws(LibvirtError) -> [DomainInfo] {
        try await withConnection { connection throws(LibvirtError) in try connection.domains() }
    }

    /// Every storage pool on the current connection (see `LibvirtConnection.storagePools()`).
    public func storagePools() async throws(LibvirtError) -> [StoragePoolInfo] {
        try await withConnection { connection throws(LibvirtError) in try connection.storagePools() }
    }

    // MARK: The session's thread

    private func run() {
        var failures = 0
        while true {
            condition.lock()
            let stopping = stopRequested
            generation += 1
            let attempt = generation
            condition.unlock()
            if stopping {
                break
            }
            switch open(generation: attempt) {
            case .success(let opened):
                failures = 0
                holdUntilLostOrStopped(opened, generation: attempt)
                opened.close()
            case .failure(let error):
                failures += 1
                waitBeforeRetry(after: error, failures: failures)
            }
        }
        condition.lock()
        connection = nil
        disconnectReason = "the session was stopped"
        currentState = .disconnected(since: Date(), lastError: nil)
        condition.unlock()
        finishSubscribers()
    }

    /// Opens a connection and registers for lifecycle events and close notification.
    private func open(generation: Int) -> Result<LibvirtConnection, LibvirtError> {
        let opened: LibvirtConnection
        do {
            opened = try LibvirtConnection(uri: uri)
        } catch {
            return .failure(error)
        }
        do {
            _ = try opened.addLifecycleHandler(
                deliver: { [weak self] event in self?.publish(.domainEvent(event)) },
                finish: {}
            )
        } catch {
            opened.close()
            return .failure(error)
        }
        opened.onClose { [weak self] reason in
            self?.connectionLost(generation: generation, reason: reason, error: nil)
        }
        return .success(opened)
    }

    private func holdUntilLostOrStopped(_ opened: LibvirtConnection, generation: Int) {
        condition.lock()
        guard !stopRequested else {
            condition.unlock()
            return
        }
        connection = opened
        currentState = .connected(since: Date())
        publishLocked(.connected)
        while !stopRequested && lostGeneration != generation {
            condition.wait()
        }
        connection = nil
        if !stopRequested {
            disconnectReason = lostReason
            currentState = .disconnected(since: Date(), lastError: lostError)
            publishLocked(.disconnected(reason: lostReason))
        }
        condition.unlock()
    }

    private func waitBeforeRetry(after error: LibvirtError, failures: Int) {
        let delay = backoff.delay(afterFailures: failures)
        let nanoseconds = delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
        let deadline = MonotonicCondition.now() + nanoseconds
        condition.lock()
        if case .disconnected(let since, _) = currentState {
            currentState = .disconnected(since: since, lastError: error)
        }
        disconnectReason = error.description
        while !stopRequested && condition.wait(untilMonotonic: deadline) {}
        condition.unlock()
    }

    // MARK: Shared

    private func connectionLost(generation: Int, reason: String, error: LibvirtError?) {
        condition.lock()
        if generation == self.generation && lostGeneration != generation {
            lostGeneration = generation
            lostReason = reason
            lostError = error
            condition.broadcast()
        }
        condition.unlock()
    }

    private func callNow<T>(_ body: (LibvirtConnection) throws(LibvirtError) -> T) -> Result<T, LibvirtError> {
        condition.lock()
        let current = connection
        let currentGeneration = generation
        let reason = disconnectReason
        condition.unlock()
        guard let current else {
            return .failure(
                .wrapper(VIR_ERR_NO_CONNECT, "not connected to \(uri) (\(reason))", operation: "use the connection")
            )
        }
        do throws(LibvirtError) {
            return .success(try body(current))
        } catch {
            if error.isConnectionLost || !current.isAlive {
                connectionLost(generation: currentGeneration, reason: error.description, error: error)
            }
            return .failure(error)
        }
    }

    private func publish(_ event: LibvirtSessionEvent) {
        condition.lock()
        publishLocked(event)
        condition.unlock()
    }

    /// Yielding never blocks (the streams buffer), so it is done under the lock to keep events in order.
    private func publishLocked(_ event: LibvirtSessionEvent) {
        for subscriber in subscribers.values {
            subscriber.yield(event)
        }
    }

    private func removeSubscriber(_ id: Int) {
        condition.lock()
        subscribers[id] = nil
        condition.unlock()
    }

    /// Outside the lock: finishing runs each stream's termination handler, which takes the lock.
    private func finishSubscribers() {
        condition.lock()
        finished = true
        let all = subscribers
        subscribers = [:]
        condition.unlock()
        for subscriber in all.values {
            subscriber.finish()
        }
    }
}
