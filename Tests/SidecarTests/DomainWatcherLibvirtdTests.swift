import Foundation
import HeartbeatCore
import Sidecar
import Testing

/// The domain watcher and pool discovery against a real libvirtd of the suite's own
/// (Tests/Harness/libvirt/run-libvirtd.sh), with `virsh` as a second client that changes state. The periodic
/// resync is set to an hour, so only lifecycle events (and reconnects) can explain a change.
@Suite("libvirtd: inventory from events, reconnect, pools at run time", .timeLimit(.minutes(1)))
struct DomainWatcherLibvirtdTests {
    static let uuid = "0b7d9a51-2c3e-4f60-8a1b-9c2d3e4f5a6b"
    static let name = "i-7-42-VM"
    /// The test driver's own domain in `/default`.
    static let defaultDomain = "test"

    @Test("define, start, suspend, resume, destroy, undefine by virsh show in the inventory at once")
    func eventsKeepTheInventoryCurrent() async throws {
        try await withLibvirtd { daemon in
            let libvirt = await WatchedLibvirt.make(uri: daemon.uri)
            let watcher = libvirt.watcher
            try await whileRunning(watcher.run) {
                try await libvirt.connectResync("first read")
                #expect(Self.rows(watcher) == ["test running unknown"])

                let steps: [(command: [String], state: VMPowerState?, reason: String)] = [
                    (["define", HarnessFiles.path("event-domain.xml")], .shutoff, "unknown"),
                    (["start", Self.name], .running, "booted"),
                    (["suspend", Self.name], .paused, "user"),
                    (["resume", Self.name], .running, "unpaused"),
                    (["destroy", Self.name], .shutoff, "destroyed"),
                    (["undefine", Self.name], nil, ""),
                ]
                for step in steps {
                    let what = "virsh \(step.command[0])"
                    let before = nowMs()
                    _ = try await virsh(daemon.uri, step.command)
                    guard let state = step.state else {
                        try await libvirt.vmRemoval(Self.uuid, "removal after \(what)")
                        #expect(Self.rows(watcher) == ["test running unknown"], "after \(what)")
                        continue
                    }
                    let vm = try await libvirt.vmUpdate(Self.uuid, to: state, "update after \(what)")
                    #expect(vm.name == Self.name)
                    #expect(vm.reason == step.reason, "after \(what)")
                    #expect(vm.id == nil || state != .shutoff)
                    // A new state: "since" is when the event arrived.
                    #expect(vm.sinceMs.map { $0 >= before } == true, "after \(what)")
                    #expect(
                        Self.rows(watcher) == ["\(Self.name) \(state) \(step.reason)", "test running unknown"],
                        "after \(what)"
                    )
                    let entry = try #require(watcher.inventory().first { $0.uuid == Self.uuid })
                    #expect(entry.sinceMs == vm.sinceMs)
                }
                // Nothing but the connect read the whole list: events alone did all of the above.
                let resyncs = await libvirt.updates.all.filter {
                    if case .resynced = $0 { true } else { false }
                }
                #expect(resyncs == [.resynced(trigger: .connected, count: 1, changed: 1)])
            }
        }
    }

    @Test("undefining a running VM keeps it listed (transient, still running) until it stops")
    func undefinedWhileRunningStaysListed() async throws {
        try await withLibvirtd { daemon in
            let libvirt = await WatchedLibvirt.make(uri: daemon.uri)
            let watcher = libvirt.watcher
            try await whileRunning(watcher.run) {
                try await libvirt.connectResync("first read")
                _ = try await virsh(daemon.uri, ["define", HarnessFiles.path("event-domain.xml")])
                _ = try await virsh(daemon.uri, ["start", Self.name])
                let started = try await libvirt.vmUpdate(Self.uuid, to: .running, "start")

                _ = try await virsh(daemon.uri, ["undefine", Self.name])
                let update = try await libvirt.updates.next("update after undefine") {
                    if case .domainUpdated(let vm, let event) = $0 {
                        vm.uuid == Self.uuid && event.hasPrefix("undefined")
                    } else {
                        false
                    }
                }
                guard case .domainUpdated(let vm, _) = update else { return }
                #expect(vm.state == .running)
                #expect(vm.sinceMs == started.sinceMs, "still running since it started")
                #expect(watcher.inventory().contains { $0.uuid == Self.uuid && $0.state == .running })

                // A transient domain that stops is gone.
                _ = try await virsh(daemon.uri, ["destroy", Self.name])
                try await libvirt.vmRemoval(Self.uuid, "removal after destroying the transient domain")
                #expect(!watcher.inventory().contains { $0.uuid == Self.uuid })
            }
        }
    }

    @Test("libvirtd stopped: disconnected, last list kept as stale; restarted: reconnect and resync")
    func reconnectsAndResyncs() async throws {
        try await withLibvirtd { daemon in
            let libvirt = await WatchedLibvirt.make(uri: daemon.uri)
            let watcher = libvirt.watcher
            try await whileRunning(watcher.run) {
                try await libvirt.connectResync("first read")
                _ = try await virsh(daemon.uri, ["define", HarnessFiles.path("event-domain.xml")])
                try await libvirt.vmUpdate(Self.uuid, to: .shutoff, "define")
                _ = try await virsh(daemon.uri, ["suspend", Self.defaultDomain])
                try await libvirt.updates.next("test paused") {
                    if case .domainUpdated(let vm, _) = $0 {
                        vm.name == Self.defaultDomain && vm.state == .paused
                    } else {
                        false
                    }
                }
                let known = watcher.inventory()
                #expect(known.count == 2)
                #expect(watcher.libvirtState.isConnected)

                let beforeStop = nowMs()
                await daemon.stop()
                let lost = try await libvirt.updates.next("disconnected after SIGTERM to libvirtd") {
                    if case .disconnected = $0 { true } else { false }
                }
                guard case .disconnected(let reason) = lost else { return }
                #expect(!reason.isEmpty)
                guard case .disconnected(let since, let lastError) = watcher.libvirtState else {
                    Issue.record("libvirt state \(watcher.libvirtState) with libvirtd stopped")
                    return
                }
                #expect(since >= beforeStop)
                #expect(!lastError.isEmpty)
                #expect(watcher.libvirtState.description.hasPrefix("disconnected since "))
                // The VMs did not stop because libvirtd did: the last list is kept, confirmed until the loss.
                #expect(watcher.inventory() == known)
                #expect(watcher.lastConfirmedMs() == since)

                try await daemon.start()
                try await libvirt.updates.next("connected again") { $0 == .connected }
                // A fresh libvirtd starts the test driver over: `test` running, the defined domain gone.
                let resync = try await libvirt.connectResync("read after reconnect")
                #expect(resync == .resynced(trigger: .connected, count: 1, changed: 2))
                #expect(Self.rows(watcher) == ["test running unknown"])
                #expect(watcher.libvirtState.isConnected)

                // Events flow on the new connection.
                _ = try await virsh(daemon.uri, ["suspend", Self.defaultDomain])
                try await libvirt.updates.next("event after reconnect") {
                    if case .domainUpdated(let vm, _) = $0 {
                        vm.name == Self.defaultDomain && vm.state == .paused
                    } else {
                        false
                    }
                }
            }
        }
    }

    @Test("pools: only active netfs ones; started ones are added, stopped ones removed after two looks")
    func discoveryFollowsPoolsAtRunTime() async throws {
        try await withLibvirtd { daemon in
            let mount = try TemporaryFolder(prefix: "kvmha-netfs")
            let poolID = "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
            let xml = mount.path + "/pool.xml"
            try Self.netfsPoolXML(name: poolID, target: mount.path).write(
                toFile: xml,
                atomically: true,
                encoding: .utf8
            )

            let libvirt = await WatchedLibvirt.make(uri: daemon.uri)
            let watcher = libvirt.watcher
            let pools = PoolSet()
            defer { pools.stopAll() }
            let (rounds, roundSink) = AsyncStream.makeStream(of: PoolDiscovery.Round.self)
            let discovery = PoolDiscovery(
                libvirt: watcher,
                pools: pools,
                interval: .seconds(3600),
                makePool: { SidecarApp.makePool($0, ioTimeout: .seconds(1), logger: testLogger()) },
                logger: testLogger(),
                onRound: { roundSink.yield($0) }
            )
            let roundLog = await EventLog.collecting(rounds)

            try await whileRunning(watcher.run) {
                try await whileRunning(discovery.run) {
                    // The service looks as soon as libvirt is connected: only a dir pool there.
                    let first = try await roundLog.next("look on connect") { _ in true }
                    #expect(first == PoolDiscovery.Round(added: [], removed: [], current: []))

                    _ = try await virsh(daemon.uri, ["pool-define", xml])
                    #expect(await discovery.discoverOnce() == PoolDiscovery.Round(added: [], removed: [], current: []))

                    _ = try await virsh(daemon.uri, ["pool-start", poolID])
                    let added = await discovery.discoverOnce()
                    #expect(added == PoolDiscovery.Round(added: [poolID], removed: [], current: [poolID]))
                    #expect(pools.current.map(\.location) == [mount.path])

                    _ = try await virsh(daemon.uri, ["pool-destroy", poolID])
                    let firstMiss = await discovery.discoverOnce()
                    #expect(firstMiss == PoolDiscovery.Round(added: [], removed: [], current: [poolID]))
                    let removed = pools.pool(id: poolID)
                    let secondMiss = await discovery.discoverOnce()
                    #expect(secondMiss == PoolDiscovery.Round(added: [], removed: [poolID], current: []))
                    #expect(pools.isEmpty)
                    // The removed pool's thread is stopped.
                    let call = await #expect(throws: PoolCallError.self) {
                        try await removed?.call("probe") { _ throws(PoolIOError) in () }
                    }
                    if case .stopped? = call {
                    } else {
                        Issue.record("call on a removed pool: \(String(describing: call))")
                    }

                    // libvirt unreachable: nothing is removed for that.
                    _ = try await virsh(daemon.uri, ["pool-start", poolID])
                    #expect(await discovery.discoverOnce()?.current == [poolID])
                    await daemon.stop()
                    try await libvirt.updates.next("disconnected") {
                        if case .disconnected = $0 { true } else { false }
                    }
                    #expect(await discovery.discoverOnce() == nil)
                    #expect(await discovery.discoverOnce() == nil)
                    #expect(pools.ids == [poolID])
                }
            }
        }
    }

    static func rows(_ watcher: DomainWatcher) -> [String] {
        watcher.inventory().map { "\($0.name) \($0.state) \($0.reason)" }
    }

    static func netfsPoolXML(name: String, target: String) -> String {
        """
        <pool type='netfs'>
          <name>\(name)</name>
          <uuid>\(name)</uuid>
          <source>
            <host name='127.0.0.1'/>
            <dir path='/export/primary'/>
            <format type='auto'/>
          </source>
          <target><path>\(target)</path></target>
        </pool>
        """
    }
}
