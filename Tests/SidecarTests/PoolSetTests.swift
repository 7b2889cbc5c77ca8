import Foundation
import HeartbeatCore
import Sidecar
import Testing

/// Pools that come and go at run time: the set itself, and the writer and monitor reading it each round.
@Suite("Pool set", .timeLimit(.minutes(1)))
struct PoolSetTests {
    static func pool(_ id: String, _ path: String) -> Pool {
        SidecarApp.makePool(PoolSetting(uuid: id, path: path), ioTimeout: .seconds(2), logger: testLogger())
    }

    @Test("add keeps ids unique and sorted; remove stops the pool's thread")
    func addAndRemove() async throws {
        let set = PoolSet()
        defer { set.stopAll() }
        #expect(set.add(Self.pool("b", "/tmp")))
        #expect(set.add(Self.pool("a", "/tmp")))
        let duplicate = Self.pool("a", "/var/tmp")
        #expect(!set.add(duplicate))
        #expect(set.ids == ["a", "b"])
        #expect(set.pool(id: "a")?.location == "/tmp")

        let removed = try #require(set.remove(id: "a"))
        #expect(set.ids == ["b"])
        #expect(set.remove(id: "a") == nil)
        for stopped in [removed, duplicate] {
            let error = await #expect(throws: PoolCallError.self) {
                try await stopped.call("probe") { _ throws(PoolIOError) in () }
            }
            if case .stopped? = error {} else { Issue.record("call on a stopped pool: \(String(describing: error))") }
        }
    }

    @Test("the monitor forgets a removed pool's history: a pool that comes back starts from scratch")
    func monitorFollowsTheSet() async throws {
        let folder = try TemporaryFolder()
        let peer = HostIdentity(address: HostAddress(10, 0, 0, 2), hostUUID: nil, bootID: "b", incarnation: "i")
        let me = HostIdentity(address: HostAddress(10, 0, 0, 1), hostUUID: nil, bootID: "b", incarnation: "j")
        let peerPools = PoolSet([Self.pool("p1", folder.path)])
        let myPools = PoolSet([Self.pool("p1", folder.path)])
        defer {
            peerPools.stopAll()
            myPools.stopAll()
        }
        let writer = BeatWriter(identity: peer, pools: peerPools, timing: TimingSettings(), logger: testLogger())
        let monitor = PeerMonitor(
            identity: me,
            pools: myPools,
            timing: TimingSettings(),
            skewAllowance: nil,
            logger: testLogger()
        )

        #expect(await writer.beatOnce().succeeded == ["p1"])
        await monitor.scanOnce()
        #expect(await writer.beatOnce().succeeded == ["p1"])
        await monitor.scanOnce()
        #expect(monitor.report(for: peer.address).perPool["p1"]?.liveness == .alive)

        myPools.remove(id: "p1")
        await monitor.scanOnce()
        #expect(monitor.reports().isEmpty)
        #expect(monitor.report(for: peer.address).perPool.isEmpty)

        myPools.add(Self.pool("p1", folder.path))
        #expect(await writer.beatOnce().succeeded == ["p1"])
        await monitor.scanOnce()
        let fresh = try #require(monitor.report(for: peer.address).perPool["p1"])
        #expect(fresh.liveness == .unknown, "one look after coming back is no evidence of change: \(fresh)")
    }
}
