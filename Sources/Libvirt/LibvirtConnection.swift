internal import CLibvirt
import Foundation

/// An open connection to libvirt (`qemu:///system` on a CloudStack host, `test:///…` in tests).
///
/// Every call blocks until libvirt answers (a round trip to libvirtd for remote URIs): call it from a
/// thread of your own or a dispatch queue, never from Swift's cooperative pool (`LibvirtSession` does this).
///
/// `@unchecked Sendable` because it is safe to share: libvirt connections are thread-safe (libvirt locks
/// internally), every call takes its own libvirt reference on the connection for its duration so `close()`
/// on another thread cannot free it mid-call, and this class's own mutable state (the handle, close
/// handlers, event registrations) is guarded by `lock`.
public final class LibvirtConnection: @unchecked Sendable {
    /// The URI the connection was opened with.
    public let uri: String

    /// Guards the state below. Held only briefly, never across a libvirt call.
    private let lock = NSLock()
    /// nil once `close()` ran.
    private var handle: virConnectPtr?
    private var closeCallbackRegistered = false
    private var closeHandlers: [@Sendable (String) -> Void] = []
    /// Set when libvirt reported the connection closed (libvirtd stopped, keepalive timeout).
    private var lostReason: String?
    /// Subscribers to lifecycle events, by a number of our own.
    private var lifecycleSinks: [Int: LifecycleSink] = [:]
    private var nextSinkID = 0
    /// libvirt's id for our one lifecycle callback, registered while there are subscribers. (libvirt
    /// refuses a second registration of the same callback on a connection, so events fan out here.)
    private var lifecycleCallbackID: Int32?

    /// Serialises registering and deregistering the lifecycle callback (libvirt calls, so not under `lock`).
    private let registrationLock = NSLock()

    private static let keepAliveInterval: Int32 = 5
    private static let keepAliveCount: UInt32 = 3

    /// Opens a connection. Starts libvirt's event loop first if nothing has yet.
    public init(uri: String) throws(LibvirtError) {
        try LibvirtEventLoop.start()
        self.uri = uri
        guard let handle = virConnectOpen(uri) else {
            throw LibvirtError.last("open \(uri)")
        }
        self.handle = handle

        // Remote URIs: after 5 s of silence send keepalives; 3 unanswered (about 20 s) close the connection,
        // so a libvirtd that hangs is noticed like one that stopped. Local drivers refuse: nothing to watch.
        if virConnectSetKeepAlive(handle, Self.keepAliveInterval, Self.keepAliveCount) != 0 {
            virResetLastError()
        }

        let relay = Unmanaged.passRetained(EventRelay(owner: self))
        if virConnectRegisterCloseCallback(handle, connectionClosedCallback, relay.toOpaque(), releaseEventRelay) == 0 {
            closeCallbackRegistered = true
        } else {
            // A driver without close notification refuses; failed calls still reveal a lost connection.
            virResetLastError()
            relay.release()
        }
    }

    deinit {
        close()
    }

    /// Closes the connection: deregisters the event callbacks (lifecycle streams finish) and releases
    /// libvirt's connection. Idempotent; calls in flight on other threads finish first, then libvirt frees it.
    public func close() {
        registrationLock.lock()
        lock.lock()
        guard let handle else {
            lock.unlock()
            registrationLock.unlock()
            return
        }
        self.handle = nil
        let sinks = Array(lifecycleSinks.values)
        lifecycleSinks = [:]
        let callbackID = lifecycleCallbackID
        lifecycleCallbackID = nil
        let closeCallbackRegistered = self.closeCallbackRegistered
        self.closeCallbackRegistered = false
        lock.unlock()

        // A dead connection may refuse these; virConnectClose then frees the callbacks anyway.
        if let callbackID, virConnectDomainEventDeregisterAny(handle, callbackID) != 0 {
            virResetLastError()
        }
        registrationLock.unlock()
        if closeCallbackRegistered, virConnectUnregisterCloseCallback(handle, connectionClosedCallback) != 0 {
            virResetLastError()
        }
        virConnectClose(handle)
        for sink in sinks {
            sink.finish()
        }
    }

    /// Whether the connection is open and libvirt still considers it alive (for remote URIs: the socket is
    /// up and keepalives are answered).
    public var isAlive: Bool {
        (try? withHandle("check the connection") { handle in virConnectIsAlive(handle) == 1 }) ?? false
    }

    /// Calls `handler` once with a reason when libvirt reports the connection closed (libvirtd stopped or
    /// restarted, keepalive timeout, I/O error); not when `close()` is called. Called at once if that already
    /// happened. Runs on libvirt's event thread: keep it short and do not call libvirt from it.
    public func onClose(_ handler: @escaping @Sendable (String) -> Void) {
        lock.lock()
        if let lostReason {
            lock.unlock()
            handler(lostReason)
            return
        }
        closeHandlers.append(handler)
        lock.unlock()
    }

    // MARK: Domains

    /// Every domain libvirt knows, running or not, sorted by name. Every `virDomainPtr` is freed.
    public func domains() throws(LibvirtError) -> [DomainInfo] {
        try withHandle("list domains") { handle throws(LibvirtError) in
            var list: UnsafeMutablePointer<virDomainPtr?>?
            let count = virConnectListAllDomains(handle, &list, 0)
            guard count >= 0 else {
                throw LibvirtError.last("list domains")
            }
            guard let list else {
                return []
            }
            let domains = UnsafeMutableBufferPointer(start: list, count: Int(count))
            defer {
                for case let domain? in domains {
                    virDomainFree(domain)
                }
                free(list)
            }
            var result: [DomainInfo] = []
            result.reserveCapacity(domains.count)
            for case let domain? in domains {
                do throws(LibvirtError) {
                    result.append(try DomainInfo(reading: domain))
                } catch  where error.isNoSuchDomain {
                    continue  // undefined between listing and reading: it is gone, leave it out
                }
            }
            return result.sorted { $0.name < $1.name }
        }
    }

    /// The domain with this UUID, or nil if libvirt has none.
    public func domain(uuid: String) throws(LibvirtError) -> DomainInfo? {
        try withHandle("look up domain \(uuid)") { handle throws(LibvirtError) -> DomainInfo? in
            guard let domain = virDomainLookupByUUIDString(handle, uuid) else {
                let error = LibvirtError.last("look up domain \(uuid)")
                if error.isNoSuchDomain {
                    return nil
                }
                throw error
            }
            defer { virDomainFree(domain) }
            do throws(LibvirtError) {
                return try DomainInfo(reading: domain)
            } catch  where error.isNoSuchDomain {
                return nil
            }
        }
    }

    // MARK: Storage pools

    /// Every storage pool, active or not, sorted by name. Every `virStoragePoolPtr` is freed.
    public func storagePools() throws(LibvirtError) -> [StoragePoolInfo] {
        try withHandle("list storage pools") { handle throws(LibvirtError) in
            var list: UnsafeMutablePointer<virStoragePoolPtr?>?
            let count = virConnectListAllStoragePools(handle, &list, 0)
            guard count >= 0 else {
                throw LibvirtError.last("list storage pools")
            }
            guard let list else {
                return []
            }
            let pools = UnsafeMutableBufferPointer(start: list, count: Int(count))
            defer {
                for case let pool? in pools {
                    virStoragePoolFree(pool)
                }
                free(list)
            }
            var result: [StoragePoolInfo] = []
            result.reserveCapacity(pools.count)
            for case let pool? in pools {
                do throws(LibvirtError) {
                    result.append(try Self.readPool(pool))
                } catch  where error.code == Int32(VIR_ERR_NO_STORAGE_POOL.rawValue) {
                    continue  // removed between listing and reading
                }
            }
            return result.sorted { $0.name < $1.name }
        }
    }

    private static func readPool(_ pool: virStoragePoolPtr) throws(LibvirtError) -> StoragePoolInfo {
        guard let namePointer = virStoragePoolGetName(pool) else {
            throw LibvirtError.last("read a storage pool's name")
        }
        let name = String(cString: namePointer)  // owned by the pool object
        var uuidBuffer = [CChar](repeating: 0, count: Int(VIR_UUID_STRING_BUFLEN))
        guard virStoragePoolGetUUIDString(pool, &uuidBuffer) == 0 else {
            throw LibvirtError.last("read the UUID of storage pool \(name)")
        }
        let uuid = String(decoding: uuidBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let active = virStoragePoolIsActive(pool)
        guard active >= 0 else {
            throw LibvirtError.last("read whether storage pool \(name) is active")
        }
        guard let xmlPointer = virStoragePoolGetXMLDesc(pool, 0) else {
            throw LibvirtError.last("read the XML of storage pool \(name)")
        }
        defer { free(xmlPointer) }
        let description = try StoragePoolXML(parsing: String(cString: xmlPointer))
        return StoragePoolInfo(
            name: name,
            uuid: uuid.lowercased(),
            type: description.type,
            sourceHost: description.sourceHost,
            sourceDir: description.sourceDir,
            targetPath: description.targetPath,
            active: active == 1
        )
    }

    // MARK: Lifecycle events

    /// Domain lifecycle events from now on. The stream finishes when the connection is closed (by `close()`
    /// or by libvirt); when the last stream is terminated or dropped, the libvirt callback is deregistered.
    /// Events arrive only while the connection is open: after a reconnect, resync (see `LibvirtSession`).
    public func lifecycleEvents() throws(LibvirtError) -> AsyncStream<DomainLifecycleEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: DomainLifecycleEvent.self)
        let sinkID = try addLifecycleHandler(
            deliver: { continuation.yield($0) },
            finish: { continuation.finish() }
        )
        continuation.onTermination = { [weak self] _ in
            self?.removeLifecycleHandler(sinkID)
        }
        return stream
    }

    /// Calls `deliver` for every lifecycle event; `finish` runs once when the subscription ends (close, or
    /// `removeLifecycleHandler`). Registers libvirt's callback for the first subscriber.
    func addLifecycleHandler(
        deliver: @escaping @Sendable (DomainLifecycleEvent) -> Void,
        finish: @escaping @Sendable () -> Void
    ) throws(LibvirtError) -> Int {
        let operation = "register for domain lifecycle events on \(uri)"
        return try withHandle(operation) { handle throws(LibvirtError) in
            registrationLock.lock()
            defer { registrationLock.unlock() }
            lock.lock()
            let closed = self.handle == nil
            let registered = lifecycleCallbackID != nil
            lock.unlock()
            guard !closed else {
                throw .wrapper(VIR_ERR_INVALID_CONN, "the connection to \(uri) is closed", operation: operation)
            }
            if !registered {
                let relay = Unmanaged.passRetained(EventRelay(owner: self))
                let callbackID = kvmha_virConnectDomainEventRegisterLifecycle(
                    handle,
                    lifecycleEventCallback,
                    relay.toOpaque(),
                    releaseEventRelay
                )
                guard callbackID >= 0 else {
                    relay.release()  // libvirt did not take it
                    throw LibvirtError.last(operation)
                }
                lock.withLock { lifecycleCallbackID = callbackID }
            }
            let sink = LifecycleSink(deliver: deliver, finish: finish)
            let (sinkID, lost) = lock.withLock {
                nextSinkID += 1
                lifecycleSinks[nextSinkID] = sink
                return (nextSinkID, lostReason != nil)
            }
            if lost {
                sink.finish()  // no event will ever come
            }
            return sinkID
        }
    }

    /// Ends one subscription; deregisters libvirt's callback after the last. Runs on a dispatch queue:
    /// stream termination may happen on Swift's cooperative pool, and deregistering is a libvirt call.
    func removeLifecycleHandler(_ sinkID: Int) {
        DispatchQueue.global().async { [self] in
            registrationLock.lock()
            defer { registrationLock.unlock() }
            lock.lock()
            guard let sink = lifecycleSinks.removeValue(forKey: sinkID) else {
                lock.unlock()
                return  // already ended by close()
            }
            var deregister: (virConnectPtr, Int32)?
            if lifecycleSinks.isEmpty, let handle, let callbackID = lifecycleCallbackID {
                lifecycleCallbackID = nil
                virConnectRef(handle)
                deregister = (handle, callbackID)
            }
            lock.unlock()
            if let (handle, callbackID) = deregister {
                if virConnectDomainEventDeregisterAny(handle, callbackID) != 0 {
                    virResetLastError()
                }
                virConnectClose(handle)  // drops the reference taken above
            }
            sink.finish()
        }
    }

    // MARK: Internals

    /// From libvirt's lifecycle callback, on the event thread.
    fileprivate func deliver(_ event: DomainLifecycleEvent) {
        let sinks = lock.withLock { Array(lifecycleSinks.values) }
        for sink in sinks {
            sink.deliver(event)
        }
    }

    /// From libvirt's close callback, on the event thread.
    fileprivate func connectionLost(reason: String) {
        lock.lock()
        guard handle != nil, lostReason == nil else {
            lock.unlock()
            return
        }
        lostReason = reason
        let handlers = closeHandlers
        closeHandlers = []
        let sinks = Array(lifecycleSinks.values)
        lock.unlock()
        for handler in handlers {
            handler(reason)
        }
        for sink in sinks {
            sink.finish()
        }
    }

    /// Runs `body` with the connection pointer, holding a libvirt reference on it so that a concurrent
    /// `close()` cannot free it mid-call.
    private func withHandle<T>(
        _ operation: @autoclosure () -> String,
        _ body: (virConnectPtr) throws(LibvirtError) -> T
    ) throws(LibvirtError) -> T {
        lock.lock()
        guard let handle else {
            lock.unlock()
            throw .wrapper(VIR_ERR_INVALID_CONN, "the connection to \(uri) is closed", operation: operation())
        }
        virConnectRef(handle)
        lock.unlock()
        defer { virConnectClose(handle) }  // drops the reference taken above
        return try body(handle)
    }
}

/// What libvirt holds for our callbacks (until it calls the free callback). It must not keep the
/// connection alive, hence the weak owner.
private final class EventRelay: Sendable {
    weak let owner: LibvirtConnection?

    init(owner: LibvirtConnection) {
        self.owner = owner
    }
}

/// One subscriber to lifecycle events.
final class LifecycleSink: Sendable {
    let deliver: @Sendable (DomainLifecycleEvent) -> Void
    private let finishOnce: @Sendable () -> Void
    private let finished = LockedValue(false)

    init(deliver: @escaping @Sendable (DomainLifecycleEvent) -> Void, finish: @escaping @Sendable () -> Void) {
        self.deliver = deliver
        self.finishOnce = finish
    }

    func finish() {
        let first = finished.withLock { done in
            defer { done = true }
            return !done
        }
        if first {
            finishOnce()
        }
    }
}

private func describeCloseReason(_ reason: Int32) -> String {
    switch reason {
    case Int32(VIR_CONNECT_CLOSE_REASON_ERROR.rawValue): return "I/O error on the connection to libvirtd"
    case Int32(VIR_CONNECT_CLOSE_REASON_EOF.rawValue): return "libvirtd closed the connection"
    case Int32(VIR_CONNECT_CLOSE_REASON_KEEPALIVE.rawValue): return "libvirtd stopped answering keepalives"
    case Int32(VIR_CONNECT_CLOSE_REASON_CLIENT.rawValue): return "closed by the client"
    default: return "closed (reason \(reason))"
    }
}

private let connectionClosedCallback: virConnectCloseFunc = { _, reason, opaque in
    guard let opaque else { return }
    let relay = Unmanaged<EventRelay>.fromOpaque(opaque).takeUnretainedValue()
    relay.owner?.connectionLost(reason: describeCloseReason(reason))
}

private let lifecycleEventCallback: virConnectDomainEventCallback = { _, domain, event, detail, opaque in
    guard let domain, let opaque else { return 0 }
    let relay = Unmanaged<EventRelay>.fromOpaque(opaque).takeUnretainedValue()
    if let owner = relay.owner, let lifecycleEvent = DomainLifecycleEvent(domain: domain, event: event, detail: detail)
    {
        owner.deliver(lifecycleEvent)
    }
    return 0
}

private let releaseEventRelay: virFreeCallback = { opaque in
    guard let opaque else { return }
    Unmanaged<EventRelay>.fromOpaque(opaque).release()
}
