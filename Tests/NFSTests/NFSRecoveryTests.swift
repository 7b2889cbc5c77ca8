import Foundation
import NFS
import Testing

/// Hung, restarted and lease-expired servers: calls end within the timeout with an error that asks for a
/// new context, and a new context works once the server answers again.
@Suite struct NFSRecoveryTests {
    static let timeout = Duration.seconds(1)
    /// Catches hangs only; not a timing assertion (libnfs rounds the 1 s timeout to whole seconds).
    static let hangDeadline = Duration.seconds(30)

    @Test(arguments: NFSVersion.allCases)
    func frozenServerFailsWithinTheTimeoutAndANewContextWorksAfterThaw(_ version: NFSVersion) async throws {
        try await GaneshaServer.with(v3: version == .v3) { server in
            let url = try server.url(version)
            let box = ContextBox(try await onDedicatedThread { try ContextBox.Holder(url: url) })
            try await box.call { nfs in try nfs.writeFile("/before", Array("x".utf8)) }

            try await server.freeze()
            let clock = ContinuousClock()
            let started = clock.now
            let failure = await box.callExpectingError { nfs in _ = try nfs.stat("/before") }
            #expect(clock.now - started < Self.hangDeadline)
            #expect(failure?.requiresNewContext == true)
            #expect(failure?.isTimeout == true)
            // The spent context refuses further work at once instead of waiting on the server again.
            let again = await box.callExpectingError { nfs in _ = try nfs.readFile("/before", maxBytes: 8) }
            #expect(again == failure)
            try await server.thaw()

            try await onDedicatedThread {
                let fresh = try NFSContext(url: url, timeout: Self.timeout)
                defer { fresh.close() }
                #expect(try fresh.readFile("/before", maxBytes: 8) == Array("x".utf8))
                try fresh.writeFile("/after", Array("y".utf8))
            }
            try await box.close()
        }
    }

    @Test(arguments: NFSVersion.allCases)
    func aNewContextWorksAfterAServerRestart(_ version: NFSVersion) async throws {
        try await GaneshaServer.with(v3: version == .v3) { server in
            let url = try server.url(version)
            let box = ContextBox(try await onDedicatedThread { try ContextBox.Holder(url: url) })
            try await box.call { nfs in try nfs.writeFile("/before", Array("x".utf8)) }

            try await server.restart()

            // The old context: NFSv3 reconnects by itself; NFSv4 fails ("nfs_service failed") and is spent.
            let oldResult = await box.callExpectingError { nfs in _ = try nfs.stat("/before") }
            if let oldResult {
                #expect(oldResult.requiresNewContext, "\(oldResult)")
            } else {
                #expect(version == .v3, "libnfs 4.0.0 NFSv4 is not expected to survive a server restart")
            }
            try await box.close()

            try await onDedicatedThread {
                let fresh = try NFSContext(url: url, timeout: Self.timeout)
                defer { fresh.close() }
                #expect(try fresh.readFile("/before", maxBytes: 8) == Array("x".utf8))
                try fresh.writeFile("/after", Array("y".utf8))
                #expect(try fresh.readFile("/after", maxBytes: 8) == Array("y".utf8))
            }
        }
    }

    /// libnfs 4.0.0 never renews an NFSv4 lease: a context idle for longer than the lease gets
    /// NFS4ERR_EXPIRED on every OPEN, for ever. Stateless calls (stat, mkdir) still succeed.
    @Test func nfs4LeaseExpiryNeedsANewContext() async throws {
        let lease = 3
        try await GaneshaServer.with(v3: false, leaseSeconds: lease) { server in
            let url = server.urlV4
            // Mount and first OPEN in one go: a busy machine must not let the lease lapse in between.
            let box = ContextBox(
                try await onDedicatedThread {
                    let holder = try ContextBox.Holder(url: url)
                    try holder.context.writeFile("/record", Array("1".utf8))
                    return holder
                }
            )

            // Idle on purpose: any call would renew the lease implicitly. Waiting out the lease is the
            // condition under test, not synchronisation.
            try await Task.sleep(for: .seconds(lease * 2 + 1))

            let failure = await box.callExpectingError { nfs in _ = try nfs.readFile("/record", maxBytes: 8) }
            #expect(failure?.message.contains("NFS4ERR_EXPIRED") == true, "\(String(describing: failure))")
            #expect(failure?.requiresNewContext == true)
            try await box.close()

            try await onDedicatedThread {
                let fresh = try NFSContext(url: url, timeout: Self.timeout)
                defer { fresh.close() }
                #expect(try fresh.readFile("/record", maxBytes: 8) == Array("1".utf8))
                try fresh.writeFile("/record", Array("2".utf8))
            }
        }
    }
}

/// One NFSContext kept across awaits; every use runs on a fresh dedicated thread, one at a time
/// (libnfs needs exclusive use, not a fixed thread), and the test awaits each use before the next.
final class ContextBox: @unchecked Sendable {
    struct Holder: @unchecked Sendable {
        let context: NFSContext
        init(url: NFSURL) throws { context = try NFSContext(url: url, timeout: NFSRecoveryTests.timeout) }
    }

    private let holder: Holder

    init(_ holder: Holder) { self.holder = holder }

    func call(_ body: @escaping @Sendable (NFSContext) throws -> Void) async throws {
        let holder = self.holder
        try await onDedicatedThread { try body(holder.context) }
    }

    /// The NFSError `body` threw, nil if it succeeded.
    func callExpectingError(_ body: @escaping @Sendable (NFSContext) throws -> Void) async -> NFSError? {
        do {
            try await call(body)
            return nil
        } catch let error as NFSError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    func close() async throws {
        try await call { $0.close() }
    }
}
