import Foundation
import HeartbeatCore
import Hummingbird
import HummingbirdTesting
import Logging
import Sidecar
import Testing

/// A pool whose storage hangs (every call blocks until the test opens the gate), as a hard NFS mount
/// whose server stopped answering.
final class StorageGate: @unchecked Sendable {
    // @unchecked: `closed` is guarded by `condition`.
    private let condition = NSCondition()
    private var closed = false

    func close() {
        condition.lock()
        closed = true
        condition.unlock()
    }

    func open() {
        condition.lock()
        closed = false
        condition.broadcast()
        condition.unlock()
    }

    func pass() {
        condition.lock()
        while closed { condition.wait() }
        condition.unlock()
    }
}

final class GatedPoolFiles: PoolFiles {
    let inner: DirectoryPoolFiles
    let gate: StorageGate

    init(root: String, gate: StorageGate) {
        inner = DirectoryPoolFiles(root: root)
        self.gate = gate
    }

    var location: String { inner.location }
    func makeFolder(_ path: String) throws(PoolIOError) {
        gate.pass()
        try inner.makeFolder(path)
    }
    func replaceAtomically(
        _ path: String,
        with bytes: [UInt8],
        temporaryPath: String,
        durable: Bool
    ) throws(PoolIOError) {
        gate.pass()
        try inner.replaceAtomically(path, with: bytes, temporaryPath: temporaryPath, durable: durable)
    }
    func overwrite(_ path: String, with bytes: [UInt8]) throws(PoolIOError) {
        gate.pass()
        try inner.overwrite(path, with: bytes)
    }
    func read(_ path: String, maxBytes: Int) throws(PoolIOError) -> FileRead {
        gate.pass()
        return try inner.read(path, maxBytes: maxBytes)
    }
    func list(_ path: String) throws(PoolIOError) -> [PoolDirectoryEntry] {
        gate.pass()
        return try inner.list(path)
    }
    func stat(_ path: String) throws(PoolIOError) -> PoolFileStat? {
        gate.pass()
        return try inner.stat(path)
    }
    func remove(_ path: String) throws(PoolIOError) {
        gate.pass()
        try inner.remove(path)
    }
}

@Suite("API with a hung pool")
struct APIHungPoolTests {
    @Test func checkOnHostAnswersActivityIsUnknownHealthAndMetricsShowTheStuckThread() async throws {
        let folder = try TemporaryFolder(prefix: "kvmha-api-hung")
        let root = folder.path
        let gate = StorageGate()
        let pool = Pool(id: "p1", location: root, ioTimeout: .milliseconds(200), logger: testLogger()) {
            GatedPoolFiles(root: root, gate: gate)
        }
        defer {
            gate.open()
            pool.stop()
        }
        try Data("1600000000\n".utf8).write(to: URL(fileURLWithPath: root + "/hb"))
        _ = try await pool.call("prove") { files throws(PoolIOError) in try files.list("") }
        let fixture = try APIFixture()
        var dependencies = fixture.dependencies()
        dependencies.pools = { [pool] }
        let application = Application(responder: buildAPIResponder(dependencies), logger: testLogger())
        gate.close()
        try await application.test(.router) { client in
            let answer = try await API.post(
                client,
                "/v1/peers/10.0.0.3/activity",
                body: #"{"pool":"p1","volumes":["a","b"],"suspectTime":1700000000}"#
            ).decode(APIActivity.self)
            #expect(answer.activity == "unknown")
            #expect(answer.reasonCode == "pool-unreadable")
            #expect(answer.reason.contains("did not return within 200ms"), "\(answer.reason)")
            #expect(answer.volumes.map(\.status) == ["timed-out", "timed-out"])
            #expect(!answer.memoWritten)

            // The thread stays blocked: the next check is refused at once (no second stuck thread).
            let again = try await API.post(
                client,
                "/v1/peers/10.0.0.3/activity",
                body: #"{"pool":"p1","volumes":["a"],"suspectTime":1700000000}"#
            ).decode(APIActivity.self)
            #expect(again.activity == "unknown")
            #expect(again.reason.contains("blocked"), "\(again.reason)")

            // CheckOnHost answers from memory while the pool hangs.
            let report = try await API.get(client, "/v1/peers/10.0.0.2")
            #expect(report.status == .ok)

            let health = try await API.get(client, "/v1/health")
            APIDocument.shared.expect(try health.jsonValue(), conformsTo: "Health")
            let pools = try health.decode(APIHealth.self).pools
            #expect(pools.first?.reachable == false)
            #expect((pools.first?.ioStuckSeconds ?? 0) > 0)
            #expect(try health.decode(APIHealth.self).status == "failing")

            let metrics = try await API.get(client, "/metrics").text
            #expect(metrics.contains(#"kvmha_pool_io_stuck{pool="p1"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"kvmha_pool_reachable{pool="p1"} 0"#))
            #expect(metrics.contains(#"kvmha_activity_checks_total{activity="unknown"} 2"#))
        }
    }
}
