import Foundation
import NFS
import Testing

@Suite struct NFSClientTests {
    @Test(arguments: NFSVersion.allCases)
    func jobsRunOneAtATimeOnOneThreadAndMountOnce(_ version: NFSVersion) async throws {
        try await GaneshaServer.with(v3: version == .v3) { server in
            let client = NFSClient(url: try server.url(version), timeout: .seconds(2))
            defer { client.shutdown() }
            #expect(client.mountCount == 0)  // lazy

            let running = Locked(0)
            let threads = Locked(Set<String>())
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<16 {
                    group.addTask {
                        try await client.run { nfs in
                            let overlapping = running.withLock { count in
                                count += 1
                                return count
                            }
                            defer { running.withLock { $0 -= 1 } }
                            #expect(overlapping == 1)
                            threads.withLock { _ = $0.insert(Thread.current.name ?? "?") }
                            try nfs.writeFile("/job-\(index)", Array("\(index)".utf8))
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(threads.withLock { $0.count } == 1)
            #expect(client.mountCount == 1)
            let names = try await client.run { nfs in try nfs.listDirectory("/").map(\.name) }
            #expect(Set(names) == Set((0..<16).map { "job-\($0)" }))
            // Errors about files pass through and keep the context.
            await #expect(throws: NFSError.self) {
                try await client.run { nfs in try nfs.readFile("/missing", maxBytes: 1) }
            }
            _ = try await client.run { nfs in try nfs.stat("/job-0") }
            #expect(client.mountCount == 1)
        }
    }

    @Test(arguments: NFSVersion.allCases)
    func recoversByMountingAgainAfterAFrozenServerAndAfterARestart(_ version: NFSVersion) async throws {
        try await GaneshaServer.with(v3: version == .v3) { server in
            let client = NFSClient(url: try server.url(version), timeout: .seconds(1))
            defer { client.shutdown() }
            try await client.run { nfs in try nfs.writeFile("/hb", Array("1".utf8)) }
            #expect(client.mountCount == 1)

            try await server.freeze()
            do {
                try await client.run { nfs in try nfs.writeFile("/hb", Array("2".utf8)) }
                Issue.record("a write to a frozen server succeeded")
            } catch let error as NFSError {
                #expect(error.requiresNewContext && error.isTimeout, "\(error)")
            }
            try await server.thaw()
            // The spent context is gone: this job mounts afresh and succeeds.
            try await client.run { nfs in try nfs.writeFile("/hb", Array("3".utf8)) }
            #expect(client.mountCount == 2)

            try await server.restart()
            // NFSv3 reconnects inside libnfs; NFSv4 fails once ("nfs_service failed") and the next job remounts.
            var attempts = 0
            var written = false
            while !written && attempts < 3 {
                attempts += 1
                do {
                    try await client.run { nfs in try nfs.writeFile("/hb", Array("4".utf8)) }
                    written = true
                } catch let error as NFSError {
                    #expect(error.requiresNewContext, "\(error)")
                }
            }
            #expect(written)
            #expect(attempts <= 2)
            #expect(try await client.run { nfs in try nfs.readFile("/hb", maxBytes: 8) } == Array("4".utf8))
        }
    }

    /// An NFSv4 context left idle past the lease fails one job with NFS4ERR_EXPIRED; the next job remounts.
    @Test func nfs4ExpiredLeaseCostsOneJob() async throws {
        let lease = 3
        try await GaneshaServer.with(v3: false, leaseSeconds: lease) { server in
            let client = NFSClient(url: server.urlV4, timeout: .seconds(2))
            defer { client.shutdown() }
            try await client.run { nfs in try nfs.writeFile("/hb", Array("1".utf8)) }
            // Idle on purpose (any call renews the lease); waiting out the lease is the condition under test.
            try await Task.sleep(for: .seconds(lease * 2 + 1))
            do {
                _ = try await client.run { nfs in try nfs.readFile("/hb", maxBytes: 8) }
                Issue.record("an OPEN on an expired NFSv4 lease succeeded")
            } catch let error as NFSError {
                #expect(error.requiresNewContext && error.message.contains("NFS4ERR_EXPIRED"), "\(error)")
            }
            #expect(try await client.run { nfs in try nfs.readFile("/hb", maxBytes: 8) } == Array("1".utf8))
            #expect(client.mountCount == 2)
        }
    }

    @Test func aQueuedJobIsCancelledWithoutRunning() async throws {
        try await GaneshaServer.with(v3: false) { server in
            let client = NFSClient(url: server.urlV4, timeout: .seconds(2))
            defer { client.shutdown() }
            _ = try await client.run { nfs in try nfs.stat("/") }
            try await server.freeze()
            // The first job blocks the client's thread until the timeout; the second waits behind it.
            let (started, signalStarted) = AsyncStream.makeStream(of: Void.self)
            let blocking = Task {
                try await client.run { nfs in
                    signalStarted.yield()
                    _ = try nfs.stat("/")
                }
            }
            var startedIterator = started.makeAsyncIterator()
            await startedIterator.next()
            let ran = Locked(false)
            let queued = Task {
                try await client.run { _ in ran.withLock { $0 = true } }
            }
            queued.cancel()
            await #expect(throws: CancellationError.self) { try await queued.value }
            await #expect(throws: NFSError.self) { try await blocking.value }
            try await server.thaw()
            _ = try await client.run { nfs in try nfs.stat("/") }
            #expect(ran.withLock { $0 } == false)
        }
    }

    @Test func aShutDownClientRejectsJobs() async throws {
        let client = NFSClient(
            url: try NFSURL(parsing: "nfs://127.0.0.1/export?nfsport=1&mountport=1"),
            timeout: .seconds(1)
        )
        // Mounting fails (nothing listens on port 1): the error comes back, the client stays usable.
        await #expect {
            try await client.run { _ in 1 }
        } throws: { error in
            (error as? NFSError)?.operation == "mount"
        }
        client.shutdown()
        client.shutdown()
        await #expect {
            try await client.run { _ in 1 }
        } throws: { error in
            (error as? NFSError)?.operation == "client"
        }
    }
}
