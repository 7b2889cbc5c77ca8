import Foundation
import HeartbeatCore
import Hummingbird
import HummingbirdTesting
import Logging
import Sidecar
import Testing

/// A daemon's worth of API dependencies with stand-ins for the peer monitor and libvirt, and a real pool
/// (a temporary folder through `DirectoryPoolFiles` on its own I/O thread).
final class APIFixture: Sendable {
    static let token = "kvmha-test-token-0123456789"
    static let own = HostAddress(10, 0, 0, 1)
    static let alivePeer = HostAddress(10, 0, 0, 2)
    static let deadPeer = HostAddress(10, 0, 0, 3)
    static let garbledPeer = HostAddress(10, 0, 0, 4)
    static let strangerPeer = HostAddress(10, 0, 0, 99)

    let folder: TemporaryFolder
    let pool: Pool
    let metrics = APIMetrics()
    let identity = HostIdentity(
        address: APIFixture.own,
        hostUUID: "host-uuid-1",
        bootID: "boot-1",
        incarnation: "inc-1"
    )
    let reports: [HostAddress: PeerReport]
    let localVMs: [VMEntry]
    let libvirt: LibvirtStatus
    /// The peer-port probes the API reports (none by default, as with `peerProbe` off).
    let probes: [HostAddress: PeerProber.Result]
    static let nowMs: Int64 = 1_700_000_000_000

    init(
        reports: [HostAddress: PeerReport]? = nil, localVMs: [VMEntry]? = nil, libvirtConnected: Bool = true,
        probes: [HostAddress: PeerProber.Result] = [:]
    ) throws {
        self.probes = probes
        folder = try TemporaryFolder(prefix: "kvmha-api-pool")
        let root = folder.path
        pool = Pool(id: "p1", location: root, ioTimeout: .seconds(5), logger: testLogger()) {
            DirectoryPoolFiles(root: root)
        }
        self.reports = reports ?? Self.standardReports()
        self.localVMs =
            localVMs ?? [
                Self.vm("i-2-10-VM", .running, uuid: "uuid-local-running"),
                Self.vm("i-2-11-VM", .shutoff, uuid: "uuid-local-off"),
            ]
        libvirt =
            libvirtConnected
            ? LibvirtStatus(connected: true, sinceMs: Self.nowMs - 60_000, lastError: nil, confirmedAtMs: Self.nowMs)
            : LibvirtStatus(
                connected: false,
                sinceMs: Self.nowMs - 5_000,
                lastError: "connection refused",
                confirmedAtMs: Self.nowMs - 5_000
            )
    }

    deinit {
        pool.stop()
    }

    static func vm(_ name: String, _ state: VMPowerState, uuid: String) -> VMEntry {
        VMEntry(uuid: uuid, name: name, state: state, reason: "test", sinceMs: 1_699_999_000_000)
    }

    static func record(_ host: HostAddress, sequence: UInt64, vms: [VMEntry]) -> HeartbeatRecord {
        HeartbeatRecord(
            host: host,
            hostUUID: nil,
            bootID: "boot-\(host)",
            incarnation: "inc-\(host)",
            sequence: sequence,
            wallTimeMs: nowMs - 300,
            intervalMs: 5000,
            vms: vms
        )
    }

    static func report(_ host: HostAddress, _ verdict: PeerVerdict) -> PeerReport {
        PeerReport(peer: host, overall: OverallVerdict.combine([verdict]), perPool: ["p1": verdict])
    }

    static func standardReports() -> [HostAddress: PeerReport] {
        let aliveRecord = record(
            alivePeer,
            sequence: 42,
            vms: [vm("i-3-20-VM", .running, uuid: "uuid-b-running"), vm("i-3-21-VM", .shutoff, uuid: "uuid-b-off")]
        )
        let deadRecord = record(deadPeer, sequence: 7, vms: [vm("i-4-30-VM", .running, uuid: "uuid-c-running")])
        return [
            alivePeer: report(
                alivePeer,
                PeerVerdict(
                    .alive,
                    .changing,
                    evidence: VerdictEvidence(
                        sequence: 42,
                        incarnation: aliveRecord.incarnation,
                        secondsSinceChange: 0.25,
                        secondsObserved: 30,
                        wallClockAgeSeconds: 0.3,
                        lastRecord: aliveRecord
                    )
                )
            ),
            deadPeer: report(
                deadPeer,
                PeerVerdict(
                    .dead,
                    .noChange,
                    evidence: VerdictEvidence(
                        sequence: 7,
                        incarnation: deadRecord.incarnation,
                        secondsSinceChange: 45,
                        secondsObserved: 600,
                        wallClockAgeSeconds: 45.2,
                        lastRecord: deadRecord
                    )
                )
            ),
            garbledPeer: report(
                garbledPeer,
                PeerVerdict(
                    .unknown,
                    .unusableRecord(.badChecksum(expected: "1", actual: "2")),
                    evidence: VerdictEvidence(secondsObserved: 12)
                )
            ),
        ]
    }

    func dependencies() -> APIDependencies {
        let pool = pool
        let reports = reports
        let localVMs = localVMs
        let libvirt = libvirt
        let probes = probes
        var dependencies = APIDependencies(
            identity: identity,
            version: "9.9.9-test",
            token: try! APIToken(Self.token),
            metrics: metrics,
            pools: { [pool] },
            peerReport: { host in
                reports[host]
                    ?? PeerReport(
                        peer: host,
                        overall: PeerVerdict(.unknown, .neverSeen),
                        perPool: ["p1": PeerVerdict(.unknown, .neverSeen)]
                    )
            },
            peerReports: { reports.keys.sorted().map { reports[$0]! } },
            localVMs: { localVMs },
            libvirt: { libvirt },
            wallClockMs: { APIFixture.nowMs }
        )
        dependencies.peerProbe = { probes[$0] }
        return dependencies
    }

    func application() -> Application<APIResponder> {
        Application(responder: buildAPIResponder(dependencies()), logger: testLogger())
    }

    /// Runs `body` against the router (no socket).
    func test(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        try await application().test(.router, body)
    }

    /// Every file under the pool folder with its bytes and mtime: a request that is refused must leave
    /// this unchanged.
    func poolSnapshot() -> [String: String] {
        var snapshot: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: folder.path)
        while let relative = enumerator?.nextObject() as? String {
            let full = folder.path + "/" + relative
            let attributes = (try? FileManager.default.attributesOfItem(atPath: full)) ?? [:]
            let mtime = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1
            let bytes = FileManager.default.contents(atPath: full).map { Array($0) } ?? []
            snapshot[relative] = "\(mtime) \(bytes)"
        }
        return snapshot
    }

    /// Creates a file in the pool with the given mtime (Unix seconds).
    func makeFile(_ relative: String, contents: String = "", mtime: Int64? = nil) throws {
        let url = URL(fileURLWithPath: folder.path + "/" + relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(contents.utf8).write(to: url)
        if let mtime {
            try FileManager.default.setAttributes(
                [.modificationDate: Date(timeIntervalSince1970: Double(mtime))],
                ofItemAtPath: url.path
            )
        }
    }

    func readFile(_ relative: String) -> String? {
        FileManager.default.contents(atPath: folder.path + "/" + relative).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Request helpers.
enum API {
    static var auth: HTTPFields { [.authorization: "Bearer \(APIFixture.token)"] }

    static func json(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @discardableResult
    static func get(
        _ client: any TestClientProtocol,
        _ uri: String,
        headers: HTTPFields = auth
    ) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .get, headers: headers)
    }

    @discardableResult
    static func post(
        _ client: any TestClientProtocol,
        _ uri: String,
        body: String,
        headers: HTTPFields = auth
    ) async throws
        -> TestResponse
    {
        var headers = headers
        headers[.contentType] = "application/json"
        return try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body))
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The body through HeartbeatCore's strict reader (it tells `true` from `1`).
    func jsonValue() throws -> JSONValue {
        try JSONValue.parse(Array(body.readableBytesView)[...])
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
    }

    /// The `error` code of an error body.
    var errorCode: String? {
        guard case .string(let code)? = (try? jsonValue())?["error"] else { return nil }
        return code
    }
}
