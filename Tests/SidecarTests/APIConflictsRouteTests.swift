import Foundation
import HeartbeatCore
import Hummingbird
import HummingbirdTesting
import Sidecar
import Synchronization
import Testing

/// GET /v1/conflicts through the router (no socket), and the peer monitor's round that feeds it.
@Suite("API conflicts route")
struct APIConflictsRouteTests {
    static let noRecordHost = HostAddress(10, 0, 0, 9)

    /// The fixture's cluster: the alive peer 10.0.0.2 runs uuid-b-running, which this host runs too (split
    /// brain); the dead peer 10.0.0.3 last ran uuid-c-running, which runs nowhere now (orphaned); 10.0.0.9 has
    /// only CloudStack's file (no record); the garbled 10.0.0.4 has no usable list.
    static func snapshot(_ fixture: APIFixture) -> ConflictSnapshot {
        ConflictSnapshot(
            identity: fixture.identity,
            localVMs: fixture.localVMs,
            reports: fixture.reports.keys.sorted().map { fixture.reports[$0]! },
            recordsByPool: ["p1": [APIFixture.alivePeer, APIFixture.deadPeer, APIFixture.garbledPeer]],
            cloudStackByPool: ["p1": [APIFixture.alivePeer, APIFixture.deadPeer, noRecordHost]],
            updatedMs: APIFixture.nowMs - 200
        )
    }

    static func fixture() throws -> APIFixture {
        try APIFixture(localVMs: [
            APIFixture.vm("i-3-20-VM", .running, uuid: "UUID-B-RUNNING"),
            APIFixture.vm("i-2-11-VM", .shutoff, uuid: "uuid-local-off"),
        ])
    }

    static func application(_ fixture: APIFixture, _ snapshot: ConflictSnapshot?) -> Application<APIResponder> {
        var dependencies = fixture.dependencies()
        dependencies.conflicts = { snapshot }
        return Application(responder: buildAPIResponder(dependencies), logger: testLogger())
    }

    @Test func theConflictsOfTheLastRoundInTheDocumentedShape() async throws {
        let fixture = try Self.fixture()
        let snapshot = Self.snapshot(fixture)
        try await Self.application(fixture, snapshot).test(.router) { client in
            let response = try await API.get(client, "/v1/conflicts")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            APIDocument.shared.expect(try response.jsonValue(), conformsTo: "Conflicts")
            let answer = try response.decode(APIConflicts.self)
            #expect(answer.checker == "10.0.0.1")
            #expect(answer.updatedMs == APIFixture.nowMs - 200)
            #expect(answer.conflicts.map(\.kind) == ["no-record", "orphaned", "split-brain"])
            let noRecord = answer.conflicts[0]
            #expect(noRecord.vm == nil && noRecord.hosts == ["10.0.0.9"] && noRecord.pools == ["p1"])
            #expect(noRecord.detail.contains("no kvmha record"))
            let orphaned = answer.conflicts[1]
            #expect(orphaned.vm == APIConflictVM(name: "i-4-30-VM", uuid: "uuid-c-running"))
            #expect(orphaned.hosts == ["10.0.0.3"] && orphaned.pools == ["p1"])
            // The garbled peer's list cannot be checked: the claim says so.
            #expect(
                orphaned.detail.contains("HA must restart it (not certain: the VM list of 10.0.0.4"),
                "\(orphaned.detail)"
            )
            let split = answer.conflicts[2]
            // As the lowest address (this host) writes it.
            #expect(split.vm == APIConflictVM(name: "i-3-20-VM", uuid: "UUID-B-RUNNING"))
            #expect(split.hosts == ["10.0.0.1", "10.0.0.2"] && split.pools == ["p1"])
            // `vm` is present as null, never left out.
            #expect(response.text.contains(#""vm":null"#))
        }
    }

    @Test func beforeTheFirstRoundTheAnswerIsNotReady() async throws {
        let fixture = try Self.fixture()
        try await Self.application(fixture, nil).test(.router) { client in
            let response = try await API.get(client, "/v1/conflicts")
            #expect(response.status == .serviceUnavailable)
            #expect(response.errorCode == "not-ready")
            APIDocument.shared.expect(try response.jsonValue(), conformsTo: "Error")
        }
        // The default of APIDependencies (callers that do not wire a monitor) is the same.
        try await fixture.test { client in
            let response = try await API.get(client, "/v1/conflicts")
            #expect(response.errorCode == "not-ready")
        }
    }

    @Test func noConflictsIsAnEmptyList() async throws {
        let fixture = try APIFixture(reports: [:])
        let empty = ConflictSnapshot(conflicts: [], updatedMs: 5)
        try await Self.application(fixture, empty).test(.router) { client in
            let response = try await API.get(client, "/v1/conflicts")
            #expect(response.text == #"{"checker":"10.0.0.1","conflicts":[],"updatedMs":5}"#)
        }
    }

    @Test func theRouteNeedsTheTokenAndA401SaysNothing() async throws {
        let fixture = try Self.fixture()
        try await Self.application(fixture, Self.snapshot(fixture)).test(.router) { client in
            for (what, headers) in APIRouterTests.badCredentials {
                let response = try await API.get(client, "/v1/conflicts", headers: headers)
                #expect(response.status == .unauthorized, "\(what)")
                #expect(response.body.readableBytes == 0, "\(what): \(response.text)")
                #expect(response.headers[.wwwAuthenticate] == "Bearer")
            }
        }
    }

    @Test func metricsCountTheConflictsOfTheRoundByKind() async throws {
        let fixture = try Self.fixture()
        fixture.metrics.recordConflicts(Self.snapshot(fixture).conflicts)
        try await Self.application(fixture, Self.snapshot(fixture)).test(.router) { client in
            let text = try await API.get(client, "/metrics").text
            for line in [
                #"kvmha_conflicts{kind="split-brain"} 1"#, #"kvmha_conflicts{kind="orphaned"} 1"#,
                #"kvmha_conflicts{kind="no-record"} 1"#,
            ] {
                #expect(text.contains(line), "missing \(line) in\n\(text)")
            }
        }
        // A later round with none sets every kind back to 0.
        fixture.metrics.recordConflicts([])
        let text = String(decoding: fixture.metrics.render(peers: [], pools: []), as: UTF8.self)
        #expect(text.contains(#"kvmha_conflicts{kind="split-brain"} 0"#), "\(text)")
    }

    /// A real PeerMonitor over a pool folder: one round finds what the records and CloudStack's files say,
    /// and tells the metrics.
    @Test func aPeerMonitorRoundComputesTheConflicts() async throws {
        let folder = try TemporaryFolder(prefix: "kvmha-conflicts-monitor")
        let root = folder.path
        let pool = Pool(id: "p1", location: root, ioTimeout: .seconds(5), logger: testLogger()) {
            DirectoryPoolFiles(root: root)
        }
        defer { pool.stop() }
        let identity = HostIdentity(address: APIFixture.own, hostUUID: nil, bootID: "b", incarnation: "i")
        let told = LockedConflicts()
        let monitor = PeerMonitor(
            identity: identity,
            pools: PoolSet([pool]),
            timing: TimingSettings(),
            skewAllowance: nil,
            logger: testLogger(),
            localVMs: { [APIFixture.vm("i-1-VM", .running, uuid: "u-shared")] },
            onConflicts: { told.set($0) }
        )
        #expect(monitor.conflicts() == nil)
        func write(_ relative: String, _ bytes: [UInt8]) throws {
            let url = URL(fileURLWithPath: root + "/" + relative)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(),
                withIntermediateDirectories: true
            )
            try Data(bytes).write(to: url)
        }
        let peer = APIFixture.alivePeer
        try write(
            PoolLayout.record(peer),
            RecordCodec.encode(
                APIFixture.record(peer, sequence: 1, vms: [APIFixture.vm("i-1-VM", .running, uuid: "u-shared")])
            )
        )
        try write(PoolLayout.cloudStackHeartbeat(peer), CloudStackHeartbeat.encode(unixSeconds: 1_700_000_000))
        try write(
            PoolLayout.cloudStackHeartbeat(Self.noRecordHost),
            CloudStackHeartbeat.encode(unixSeconds: 1_700_000_000)
        )
        // Our own hb- file is never a host without a record.
        try write(
            PoolLayout.cloudStackHeartbeat(APIFixture.own),
            CloudStackHeartbeat.encode(unixSeconds: 1_700_000_000)
        )

        await monitor.scanOnce()
        let snapshot = try #require(monitor.conflicts())
        // The peer is unknown (first sight: not watched long enough), this host alive: a split brain already.
        #expect(
            snapshot.conflicts.map { "\($0.kind.rawValue) \($0.hosts.map(\.description))" } == [
                "no-record [\"10.0.0.9\"]", "split-brain [\"10.0.0.1\", \"10.0.0.2\"]",
            ]
        )
        #expect(snapshot.conflicts.last?.pools == ["p1"])
        #expect(told.value == snapshot.conflicts)

        // The peer shuts the VM down and beats: the split brain is gone in the next round.
        try write(
            PoolLayout.record(peer),
            RecordCodec.encode(
                APIFixture.record(peer, sequence: 2, vms: [APIFixture.vm("i-1-VM", .shutoff, uuid: "u-shared")])
            )
        )
        await monitor.scanOnce()
        #expect(monitor.conflicts()?.conflicts.map(\.kind) == [.noRecord])
        #expect(try #require(monitor.conflicts()).updatedMs >= snapshot.updatedMs)
    }
}

/// What `onConflicts` was told last.
final class LockedConflicts: Sendable {
    private let storage = Mutex<[ClusterConflict]?>(nil)
    func set(_ conflicts: [ClusterConflict]) { storage.withLock { $0 = conflicts } }
    var value: [ClusterConflict]? { storage.withLock { $0 } }
}
