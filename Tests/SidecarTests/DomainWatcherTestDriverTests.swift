import Foundation
import HeartbeatCore
import Sidecar
import Testing

/// The domain watcher, pool discovery and the beat record against libvirt's in-process test driver with the
/// suite's own node (Tests/Harness/libvirt/node.xml).
@Suite("Test driver: VM inventory, pool discovery, records", .timeLimit(.minutes(1)))
struct DomainWatcherTestDriverTests {
    static let uri = HarnessFiles.nodeURI

    /// What node.xml describes, by name: every power state, reason "unknown" (the test driver's), ids in file
    /// order for the active ones.
    static let expected: [(uuid: String, name: String, id: Int32?, state: VMPowerState)] = [
        ("6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a01", "i-2-10-VM", 1, .running),
        ("6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a02", "i-2-11-VM", 2, .blocked),
        ("6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a03", "i-3-12-VM", 3, .paused),
        ("6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a05", "i-3-13-VM", nil, .shutoff),
        ("6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a04", "r-4-VM", 4, .shuttingDown),
        ("6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a06", "s-1-VM", 5, .crashed),
        ("6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a07", "v-2-VM", 6, .pmsuspended),
    ]

    @Test("the inventory after connecting is exactly the node's domains, states and reasons")
    func inventoryIsExact() async throws {
        let libvirt = await WatchedLibvirt.make(uri: Self.uri)
        let watcher = libvirt.watcher
        #expect(watcher.inventory().isEmpty)
        #expect(!watcher.libvirtState.isConnected)
        #expect(watcher.lastConfirmedMs() == nil)

        let before = nowMs()
        try await whileRunning(watcher.run) {
            let resync = try await libvirt.connectResync("first read of the VM list")
            let after = nowMs()
            #expect(resync == .resynced(trigger: .connected, count: 7, changed: 7))

            let inventory = watcher.inventory()
            #expect(inventory.map(\.uuid) == Self.expected.map(\.uuid))
            #expect(inventory.map(\.name) == Self.expected.map(\.name))
            #expect(inventory.map(\.state) == Self.expected.map(\.state))
            #expect(inventory.allSatisfy { $0.reason == "unknown" })
            // First seen now: "since" is when the watcher learnt it, as far as it knows.
            #expect(inventory.allSatisfy { (before...after).contains($0.sinceMs) }, "\(inventory)")
            #expect(Set(inventory.map(\.state)) == Set(VMPowerState.allKnown).subtracting([.noState]))

            let local = watcher.localVMs()
            #expect(local.map(\.id) == Self.expected.map(\.id))
            #expect(local.map { $0.entry(fallbackSinceMs: 0) } == inventory)

            guard case .connected(let since) = watcher.libvirtState else {
                Issue.record("libvirt state \(watcher.libvirtState) after the first read")
                return
            }
            #expect((before...after).contains(since))
            let confirmed = try #require(watcher.lastConfirmedMs())
            #expect(confirmed >= after)
        }
    }

    @Test("a periodic resync that finds nothing new keeps every VM's since")
    func periodicResyncKeepsSince() async throws {
        let libvirt = await WatchedLibvirt.make(uri: Self.uri, resyncInterval: .milliseconds(100))
        let watcher = libvirt.watcher
        try await whileRunning(watcher.run) {
            try await libvirt.connectResync("first read")
            let first = watcher.inventory()
            let periodic = try await libvirt.updates.next("periodic resync") {
                if case .resynced(.periodic, _, _) = $0 { true } else { false }
            }
            #expect(periodic == .resynced(trigger: .periodic, count: 7, changed: 0))
            #expect(watcher.inventory() == first)
        }
    }

    @Test("pool discovery takes exactly the active netfs pools, named by pool UUID, at their mount points")
    func discoveryFindsTheNetfsPools() async throws {
        let libvirt = await WatchedLibvirt.make(uri: Self.uri)
        let watcher = libvirt.watcher
        let pools = PoolSet()
        defer { pools.stopAll() }
        let discovery = PoolDiscovery(
            libvirt: watcher,
            pools: pools,
            makePool: { SidecarApp.makePool($0, ioTimeout: .seconds(1), logger: testLogger()) },
            logger: testLogger()
        )
        // Not connected yet: nothing is read, nothing changes.
        #expect(await discovery.discoverOnce() == nil)
        #expect(pools.isEmpty)

        try await whileRunning(watcher.run) {
            try await libvirt.connectResync("connect")
            let round = await discovery.discoverOnce()
            let ids = ["8e9d1b3a-4c2f-3a6e-8d7c-1f2e3a4b5c62", "c2a5e0f4-7d6b-3e48-9b1f-5a0d2c3e4f51"]
            #expect(round == PoolDiscovery.Round(added: ids, removed: [], current: ids))
            #expect(pools.current.map(\.id) == ids)
            #expect(pools.current.map(\.location) == ids.map { "/mnt/\($0)" })
            // Looking again changes nothing.
            #expect(await discovery.discoverOnce() == PoolDiscovery.Round(added: [], removed: [], current: ids))
        }
    }

    @Test("every beat's record carries the watcher's VM list")
    func recordCarriesTheInventory() async throws {
        let folder = try TemporaryFolder()
        let libvirt = await WatchedLibvirt.make(uri: Self.uri)
        let watcher = libvirt.watcher
        let identity = HostIdentity(
            address: HostAddress(10, 0, 0, 9),
            hostUUID: nil,
            bootID: "boot",
            incarnation: "inc"
        )
        let pools = PoolSet()
        defer { pools.stopAll() }
        let writer = BeatWriter(
            identity: identity,
            pools: pools,
            timing: TimingSettings(),
            logger: testLogger(),
            inventory: { watcher.inventory() }
        )

        try await whileRunning(watcher.run) {
            try await libvirt.connectResync("connect")
            // No pool yet (discovery has not found any): a beat goes nowhere.
            #expect(await writer.beatOnce().succeeded.isEmpty)

            pools.add(
                SidecarApp.makePool(
                    PoolSetting(uuid: "p1", path: folder.path),
                    ioTimeout: .seconds(2),
                    logger: testLogger()
                )
            )
            let round = await writer.beatOnce()
            #expect(round.succeeded == ["p1"], "\(round.failed)")
            let record = try folder.record(of: identity.address)
            #expect(record.vms == watcher.inventory())
            #expect(record.vms.map(\.name) == Self.expected.map(\.name))

            // A removed pool is not written any more.
            pools.remove(id: "p1")
            #expect(await writer.beatOnce().succeeded.isEmpty)
            #expect(try folder.record(of: identity.address).sequence == record.sequence)
        }
    }
}

extension VMPowerState {
    static let allKnown: [VMPowerState] = [
        .noState, .running, .blocked, .paused, .shuttingDown, .shutoff, .crashed, .pmsuspended,
    ]
}
