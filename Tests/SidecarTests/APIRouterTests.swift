import Foundation
import HeartbeatCore
import Hummingbird
import HummingbirdTesting
import Sidecar
import Testing

/// Every read-only route through the router, without a socket: success, 401, 404, 400.
@Suite("API routes")
struct APIRouterTests {
    static let routes: [(HTTPRequest.Method, String)] = [
        (.get, "/v1/health"), (.get, "/v1/peers"), (.get, "/v1/peers/10.0.0.2"), (.get, "/v1/peers/10.0.0.2/vms"),
        (.post, "/v1/peers/10.0.0.3/activity"), (.get, "/v1/vms"), (.post, "/v1/reconcile"), (.get, "/metrics"),
        (.get, "/v1/no-such-route"), (.get, "/"),
    ]

    static let badCredentials: [(String, HTTPFields)] = [
        ("no header", [:]),
        ("wrong token", [.authorization: "Bearer kvmha-test-token-0123456780"]),
        ("token prefix", [.authorization: "Bearer kvmha-test-token-012345678"]),
        ("token and more", [.authorization: "Bearer kvmha-test-token-0123456789x"]),
        ("empty bearer", [.authorization: "Bearer "]),
        ("basic scheme", [.authorization: "Basic a3ZtaGEtdGVzdC10b2tlbi0wMTIzNDU2Nzg5"]),
        ("token without scheme", [.authorization: APIFixture.token]),
    ]

    @Test func everyRouteNeedsTheTokenAndA401SaysNothing() async throws {
        let fixture = try APIFixture()
        let before = fixture.poolSnapshot()
        try await fixture.test { client in
            for (method, uri) in Self.routes {
                for (what, headers) in Self.badCredentials {
                    var headers = headers
                    headers[.contentType] = "application/json"
                    let response = try await client.execute(
                        uri: uri,
                        method: method,
                        headers: headers,
                        body: method == .post
                            ? ByteBuffer(string: #"{"pool":"p1","volumes":["v"],"suspectTime":1}"#) : nil
                    )
                    #expect(response.status == .unauthorized, "\(method) \(uri), \(what)")
                    #expect(response.body.readableBytes == 0, "\(method) \(uri), \(what): \(response.text)")
                    #expect(response.headers[.wwwAuthenticate] == "Bearer")
                }
            }
        }
        #expect(fixture.poolSnapshot() == before)
    }

    @Test func theSchemeIsCaseInsensitive() async throws {
        let fixture = try APIFixture()
        try await fixture.test { client in
            let response = try await API.get(
                client,
                "/v1/health",
                headers: [.authorization: "bearer \(APIFixture.token)"]
            )
            #expect(response.status == .ok)
        }
    }

    @Test func health() async throws {
        let fixture = try APIFixture()
        // A pool is unproven until its first call.
        _ = try await fixture.pool.call("prove") { files throws(PoolIOError) in try files.list("") }
        try await fixture.test { client in
            let response = try await API.get(client, "/v1/health")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            let health = try response.decode(APIHealth.self)
            #expect(health.status == "ok")
            #expect(health.version == "9.9.9-test")
            #expect(health.apiVersion == 1)
            #expect(health.host == "10.0.0.1")
            #expect(health.hostUUID == "host-uuid-1")
            #expect(health.incarnation == "inc-1")
            #expect(health.pools.map(\.pool) == ["p1"])
            #expect(health.pools.first?.reachable == true)
            #expect(health.pools.first?.ioStuckSeconds == nil)
            #expect(
                health.libvirt == APILibvirtStatus(connected: true, sinceMs: APIFixture.nowMs - 60_000, lastError: nil)
            )
        }
    }

    @Test func healthIsFailingWhenNoPoolWasReachedAndDegradedWithoutLibvirt() async throws {
        let unproven = try APIFixture()
        try await unproven.test { client in
            let health = try await API.get(client, "/v1/health").decode(APIHealth.self)
            #expect(health.status == "failing")
        }
        let noLibvirt = try APIFixture(libvirtConnected: false)
        _ = try await noLibvirt.pool.call("prove") { files throws(PoolIOError) in try files.list("") }
        try await noLibvirt.test { client in
            let health = try await API.get(client, "/v1/health").decode(APIHealth.self)
            #expect(health.status == "degraded")
            #expect(health.libvirt.lastError == "connection refused")
        }
    }

    @Test func checkOnHostAnswersFromMemory() async throws {
        let fixture = try APIFixture()
        try await fixture.test { client in
            let alive = try await API.get(client, "/v1/peers/10.0.0.2").decode(APIPeerReport.self)
            #expect(alive.host == "10.0.0.2")
            #expect(alive.overall.verdict == "alive")
            #expect(alive.overall.reasonCode == "changing")
            #expect(alive.overall.sequence == 42)
            #expect(alive.overall.secondsSinceChange == 0.25)
            #expect(alive.pools.map(\.pool) == ["p1"])
            let dead = try await API.get(client, "/v1/peers/10.0.0.3").decode(APIPeerReport.self)
            #expect(dead.overall.verdict == "dead")
            #expect(dead.overall.wallClockAgeSeconds == 45.2)
            let garbled = try await API.get(client, "/v1/peers/10.0.0.4").decode(APIPeerReport.self)
            #expect(garbled.overall.verdict == "unknown")
            #expect(garbled.overall.reasonCode == "unusable-record:bad-checksum")
            #expect(garbled.overall.sequence == nil)
        }
    }

    @Test func peersListsEveryPeer() async throws {
        let fixture = try APIFixture()
        try await fixture.test { client in
            let list = try await API.get(client, "/v1/peers").decode(APIPeerList.self)
            #expect(list.checker == "10.0.0.1")
            #expect(list.peers.map(\.host) == ["10.0.0.2", "10.0.0.3", "10.0.0.4"])
            #expect(list.peers.map(\.overall.verdict) == ["alive", "dead", "unknown"])
        }
    }

    @Test func aPeersLastPublishedVMsAlsoAfterItDied() async throws {
        let fixture = try APIFixture()
        try await fixture.test { client in
            let alive = try await API.get(client, "/v1/peers/10.0.0.2/vms").decode(APIPeerVMs.self)
            #expect(alive.vms.map(\.name) == ["i-3-20-VM", "i-3-21-VM"])
            #expect(alive.vms.map(\.state) == ["running", "shutoff"])
            #expect(alive.sequence == 42)
            #expect(alive.confirmedAtMs == APIFixture.nowMs - 250)
            #expect(alive.recordWallTimeMs == APIFixture.nowMs - 300)
            let dead = try await API.get(client, "/v1/peers/10.0.0.3/vms").decode(APIPeerVMs.self)
            #expect(dead.verdict.verdict == "dead")
            #expect(dead.vms.map(\.uuid) == ["uuid-c-running"])
            #expect(dead.confirmedAtMs == APIFixture.nowMs - 45_000)
            // Known, but no readable record: no list.
            let garbled = try await API.get(client, "/v1/peers/10.0.0.4/vms")
            #expect(garbled.status == .notFound)
            #expect(garbled.errorCode == "no-vm-list")
        }
    }

    @Test func localVMs() async throws {
        let fixture = try APIFixture()
        try await fixture.test { client in
            let vms = try await API.get(client, "/v1/vms").decode(APILocalVMs.self)
            #expect(vms.host == "10.0.0.1")
            #expect(vms.libvirt.connected)
            #expect(vms.confirmedAtMs == APIFixture.nowMs)
            #expect(vms.vms.map(\.uuid) == ["uuid-local-running", "uuid-local-off"])
        }
        let stale = try APIFixture(libvirtConnected: false)
        try await stale.test { client in
            let vms = try await API.get(client, "/v1/vms").decode(APILocalVMs.self)
            #expect(!vms.libvirt.connected)
            #expect(vms.vms.count == 2, "the last known list is kept while libvirt is away")
        }
    }

    @Test(arguments: ["/v1/peers/10.0.0.99", "/v1/peers/10.0.0.99/vms"])
    func unknownPeersAre404(uri: String) async throws {
        let fixture = try APIFixture()
        try await fixture.test { client in
            let response = try await API.get(client, uri)
            #expect(response.status == .notFound)
            #expect(response.errorCode == "unknown-peer")
        }
    }

    @Test(arguments: ["/v1/peers/10.0.0.1", "/v1/peers/10.0.0.1/vms"])
    func thisHostIsNotAPeer(uri: String) async throws {
        let fixture = try APIFixture()
        try await fixture.test { client in
            let response = try await API.get(client, uri)
            #expect(response.status == .notFound)
            #expect(response.errorCode == "this-host")
        }
    }

    static let badAddresses = [
        "..%2F..%2Fetc", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "..", "10.0.0", "10.0.0.2.5", "010.0.0.2", "10.0.0.256",
        "10.0.0.2%00", "10.0.0.2%2F..", "host-b", "%20", "10.0.0.-1", "::1", "0x0a.0.0.2",
    ]

    @Test(arguments: badAddresses)
    func addressesThatAreNotIPv4Are400(text: String) async throws {
        let fixture = try APIFixture()
        let before = fixture.poolSnapshot()
        try await fixture.test { client in
            for uri in ["/v1/peers/\(text)", "/v1/peers/\(text)/vms"] {
                let response = try await API.get(client, uri)
                #expect(response.status == .badRequest, "\(uri): \(response.status)")
                #expect(response.errorCode == "invalid-host", "\(uri): \(response.text)")
            }
            let activity = try await API.post(
                client,
                "/v1/peers/\(text)/activity",
                body: #"{"pool":"p1","volumes":["v"],"suspectTime":1}"#
            )
            #expect(activity.status == .badRequest)
            #expect(activity.errorCode == "invalid-host")
        }
        #expect(fixture.poolSnapshot() == before)
    }

    @Test(arguments: [
        "/v1/peers/../../etc/passwd", "/v1/peers/10.0.0.2/../../../etc", "/v1/nothing", "/v2/health",
        "/v1/health/extra",
        "/v1/peers/10.0.0.2/vms/x",
    ])
    func unknownPathsAre404WithAToken(uri: String) async throws {
        let fixture = try APIFixture()
        try await fixture.test { client in
            let response = try await API.get(client, uri)
            #expect(response.status == .notFound, "\(uri)")
            #expect(response.errorCode == "not-found", "\(uri): \(response.text)")
        }
    }

    @Test func aWrongMethodIs404() async throws {
        let fixture = try APIFixture()
        try await fixture.test { client in
            let responses = [
                try await API.post(client, "/v1/health", body: "{}"),
                try await API.get(client, "/v1/peers/10.0.0.3/activity"),
                try await API.get(client, "/v1/reconcile"),
            ]
            #expect(responses.map(\.status) == [.notFound, .notFound, .notFound])
        }
    }

    @Test func metricsInPrometheusFormat() async throws {
        let fixture = try APIFixture()
        fixture.metrics.recordBeat(pool: "p1", ok: true, latency: .milliseconds(3))
        fixture.metrics.recordBeat(pool: "p1", ok: false, latency: .seconds(4))
        try await fixture.test { client in
            try await API.get(client, "/v1/peers/10.0.0.2")
            try await API.get(client, "/v1/peers/10.0.0.99")
            try await API.get(client, "/v1/health", headers: [:])
            let response = try await API.get(client, "/metrics")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = response.text
            for line in [
                #"kvmha_beats_total{pool="p1",result="ok"} 1"#, #"kvmha_beats_total{pool="p1",result="failed"} 1"#,
                #"kvmha_beat_duration_seconds_count{pool="p1"} 2"#, #"kvmha_peers{verdict="alive"} 1"#,
                #"kvmha_peers{verdict="dead"} 1"#, #"kvmha_peers{verdict="unknown"} 1"#,
                #"kvmha_api_requests_total{route="/v1/peers/{ip}",status="200"} 1"#,
                #"kvmha_api_requests_total{route="/v1/peers/{ip}",status="404"} 1"#,
                #"kvmha_api_requests_total{route="unauthenticated",status="401"} 1"#,
                #"kvmha_pool_io_stuck{pool="p1"} 0"#, #"kvmha_pool_reachable{pool="p1"} 0"#,
            ] {
                #expect(text.contains(line), "missing \(line) in\n\(text)")
            }
        }
    }

    @Test func theDaemonWiringAnswersFromAPeerMonitor() async throws {
        // The same routes over a real PeerMonitor that reads records from the pool folder.
        let folder = try TemporaryFolder(prefix: "kvmha-api-monitor")
        let root = folder.path
        let pool = Pool(id: "p1", location: root, ioTimeout: .seconds(5), logger: testLogger()) {
            DirectoryPoolFiles(root: root)
        }
        defer { pool.stop() }
        let pools = PoolSet([pool])
        let identity = HostIdentity(address: APIFixture.own, hostUUID: nil, bootID: "b", incarnation: "i")
        let monitor = PeerMonitor(
            identity: identity,
            pools: pools,
            timing: TimingSettings(),
            skewAllowance: nil,
            logger: testLogger()
        )
        let peer = APIFixture.alivePeer
        func publish(_ sequence: UInt64) throws {
            let record = APIFixture.record(
                peer,
                sequence: sequence,
                vms: [APIFixture.vm("i-9-VM", .running, uuid: "u9")]
            )
            try FileManager.default.createDirectory(
                atPath: root + "/" + PoolLayout.recordFolder,
                withIntermediateDirectories: true
            )
            try Data(RecordCodec.encode(record)).write(to: URL(fileURLWithPath: root + "/" + PoolLayout.record(peer)))
        }
        try publish(1)
        await monitor.scanOnce()
        try publish(2)
        await monitor.scanOnce()
        let dependencies = APIDependencies(
            identity: identity,
            pools: pools,
            monitor: monitor,
            token: try APIToken(APIFixture.token),
            metrics: APIMetrics(),
            localVMs: { [] },
            libvirt: { LibvirtStatus(connected: true, sinceMs: 0, lastError: nil, confirmedAtMs: 0) }
        )
        try await Application(responder: buildAPIResponder(dependencies), logger: testLogger()).test(.router) {
            client in
            let report = try await API.get(client, "/v1/peers/10.0.0.2").decode(APIPeerReport.self)
            #expect(report.overall.verdict == "alive")
            #expect(report.overall.sequence == 2)
            let vms = try await API.get(client, "/v1/peers/10.0.0.2/vms").decode(APIPeerVMs.self)
            #expect(vms.vms.map(\.uuid) == ["u9"])
            let unknown = try await API.get(client, "/v1/peers/10.0.0.3")
            #expect(unknown.status == .notFound)
        }
    }
}
