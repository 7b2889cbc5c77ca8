import Foundation
import HeartbeatCore
import Hummingbird
import HummingbirdTesting
import Sidecar
import Testing

/// docs/API.md is the contract: real responses of every route, and every error body, have exactly the keys
/// it documents, with the documented types.
@Suite("API document")
struct APIDocumentTests {
    @Test func theDocumentDescribesEveryObjectItMentions() {
        let document = APIDocument.shared
        for name in [
            "Health", "PoolHealth", "Libvirt", "Verdict", "PoolVerdict", "PeerReport", "PeerList", "VM", "LocalVMs",
            "PeerVMs", "ActivityRequest", "VolumeStat", "Activity", "ReconcileRequest", "BelievedVM",
            "Reconciliation", "Mismatch", "Sighting", "Error",
        ] {
            #expect(!(document.objects[name] ?? []).isEmpty, "\(name) is not documented")
        }
        for (name, fields) in document.objects {
            for field in fields {
                var type = field.type
                while case .array(let element) = type { type = element }
                if case .object(let referenced) = type {
                    #expect(
                        document.objects[referenced] != nil,
                        "\(name).\(field.name) refers to undocumented \(referenced)"
                    )
                }
            }
        }
    }

    @Test func theCheckerCatchesDepartures() throws {
        let document = APIDocument.shared
        let good = try JSONValue.parse(Array(#"{"error":"x","message":"y"}"#.utf8)[...])
        #expect(document.problems(good, as: "Error").isEmpty)
        let extra = try JSONValue.parse(Array(#"{"error":"x","message":"y","detail":1}"#.utf8)[...])
        #expect(document.problems(extra, as: "Error") == ["$.detail: not documented in Error"])
        let missing = try JSONValue.parse(Array(#"{"error":"x"}"#.utf8)[...])
        #expect(document.problems(missing, as: "Error") == ["$.message: documented in Error but missing"])
        let wrongType = try JSONValue.parse(Array(#"{"error":1,"message":null}"#.utf8)[...])
        #expect(document.problems(wrongType, as: "Error").count == 2)
    }

    /// Every success shape, from the router.
    @Test func responsesConformToTheDocument() async throws {
        let fixture = try APIFixture()
        _ = try await fixture.pool.call("prove") { files throws(PoolIOError) in try files.list("") }
        try fixture.makeFile("KVMHA/hb-10.0.0.3", contents: "1600000000\n")
        try fixture.makeFile("vol-a", mtime: 1_700_000_100)
        try fixture.makeFile("KVMHA/ac-10.0.0.3", contents: "1700000000:1700000050:1700000400\n")
        let document = APIDocument.shared
        try await fixture.test { client in
            let checks: [(String, TestResponse)] = [
                ("Health", try await API.get(client, "/v1/health")),
                ("PeerList", try await API.get(client, "/v1/peers")),
                ("PeerReport", try await API.get(client, "/v1/peers/10.0.0.2")),
                ("PeerReport", try await API.get(client, "/v1/peers/10.0.0.4")),
                ("PeerVMs", try await API.get(client, "/v1/peers/10.0.0.3/vms")),
                ("LocalVMs", try await API.get(client, "/v1/vms")),
                (
                    "Activity",
                    try await API.post(
                        client,
                        "/v1/peers/10.0.0.3/activity",
                        body: #"{"pool":"p1","volumes":["vol-a","vol-b"],"suspectTime":1700000000}"#
                    )
                ),
                (
                    "Activity",
                    try await API.post(
                        client,
                        "/v1/peers/10.0.0.2/activity",
                        body: #"{"pool":"p1","volumes":["vol-a"],"suspectTime":1700000000,"checkerTime":null}"#
                    )
                ),
                (
                    "Reconciliation",
                    try await API.post(
                        client,
                        "/v1/reconcile",
                        body: #"{"vms":[{"uuid":"uuid-b-running","state":"Running"},{"name":"x","state":"Stopped"}]}"#
                    )
                ),
                ("Reconciliation", try await API.post(client, "/v1/reconcile", body: #"{"host":"10.0.0.3","vms":[]}"#)),
                ("Error", try await API.get(client, "/v1/peers/10.0.0.99")),
                ("Error", try await API.get(client, "/v1/peers/x")),
                ("Error", try await API.get(client, "/v1/nothing")),
                ("Error", try await API.post(client, "/v1/reconcile", body: "[")),
            ]
            for (object, response) in checks {
                let value = try response.jsonValue()
                document.expect(value, conformsTo: object)
            }
            // And the states the shapes take when a peer's list carries VMs, and a reconciliation has sightings.
            let reconciliation = try checks[8].1.decode(APIReconciliation.self)
            #expect(reconciliation.mismatches.contains { !$0.elsewhere.isEmpty })
        }
    }

    @Test func healthWithAnUnprovenPoolAndNoLibvirtConformsToo() async throws {
        let fixture = try APIFixture(libvirtConnected: false)
        let document = APIDocument.shared
        try await fixture.test { client in
            let health = try await API.get(client, "/v1/health").jsonValue()
            document.expect(health, conformsTo: "Health")
            let vms = try await API.get(client, "/v1/vms").jsonValue()
            document.expect(vms, conformsTo: "LocalVMs")
        }
    }
}

/// The hand-written JSON of the hot answers is byte for byte what `JSONEncoder` writes.
@Suite("API JSON writer")
struct APIJSONWriterTests {
    static func verdict(_ liveness: Liveness, _ reason: VerdictReason, _ rng: inout SplitMix) -> PeerVerdict {
        let pick = rng.next() % 4
        let evidence = VerdictEvidence(
            sequence: pick == 0 ? nil : rng.next(),
            incarnation: pick == 1 ? nil : "inc-\"quoted\"/\\slash\u{1}\n\t\u{7f}é-\(rng.next())",
            secondsSinceChange: pick == 2 ? nil : Double(rng.next() % 10_000_000) / 1000,
            secondsObserved: pick == 3 ? nil : [0, 45, 1e-3, 123456.789, 1e16, 0.30000000000000004][Int(rng.next() % 6)],
            wallClockAgeSeconds: [nil, -3600.25, 0.1, 7][Int(rng.next() % 4)])
        return PeerVerdict(liveness, reason, evidence: evidence)
    }

    struct SplitMix {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test func probesAndNotesMatchJSONEncoder() async throws {
        let reachabilities: [PeerReachability] = [
            .reachable, .refused("Connection \"refused\""), .unreachable("no answer within 800ms\n"),
        ]
        for reachability in reachabilities {
            let probe = PeerProber.Result(reachability: reachability, checkedAt: .now, checkedMs: 1_700_000_000_123)
            let fixture = try APIFixture(
                probes: [APIFixture.alivePeer: probe, APIFixture.deadPeer: probe, APIFixture.garbledPeer: probe])
            try await fixture.test { client in
                for peer in [APIFixture.alivePeer, APIFixture.deadPeer] {
                    let response = try await API.get(client, "/v1/peers/\(peer)")
                    let decoded = try response.decode(APIPeerReport.self)
                    #expect(Array(response.body.readableBytesView) == APIJSON.encode(decoded), "\(response.text)")
                    #expect(decoded.api?.state == reachability.state)
                    #expect(decoded.api?.error == reachability.error)
                    #expect(decoded.notes.count <= 1)
                }
                let list = try await API.get(client, "/v1/peers")
                #expect(Array(list.body.readableBytesView) == APIJSON.encode(try list.decode(APIPeerList.self)))
            }
        }
    }

    @Test func peerReportsAndListsMatchJSONEncoder() async throws {
        var rng = SplitMix(state: 7)
        let reasons: [(Liveness, VerdictReason)] = [
            (.alive, .changing), (.dead, .noChange), (.unknown, .ownStorageFailing("EIO \"x\"")),
            (.unknown, .unusableRecord(.malformed("bad\nline"))), (.unknown, .neverSeen),
        ]
        var reports: [HostAddress: PeerReport] = [:]
        for index in 0..<40 {
            let host = HostAddress(10, 1, UInt8(index / 200), UInt8(index % 200 + 1))
            var perPool: [String: PeerVerdict] = [:]
            for pool in 0...Int(rng.next() % 3) {
                let (liveness, reason) = reasons[Int(rng.next() % UInt64(reasons.count))]
                var verdict = Self.verdict(liveness, reason, &rng)
                // Seen, so the router answers (a peer never seen is 404).
                verdict.evidence.secondsObserved = verdict.evidence.secondsObserved ?? 12.5
                perPool["pool-\(pool)"] = verdict
            }
            let (liveness, reason) = reasons[Int(rng.next() % UInt64(reasons.count))]
            reports[host] = PeerReport(peer: host, overall: Self.verdict(liveness, reason, &rng), perPool: perPool)
        }
        let fixture = try APIFixture(reports: reports)
        let expected = reports
        try await fixture.test { client in
            for host in expected.keys.sorted() {
                let response = try await API.get(client, "/v1/peers/\(host)")
                let decoded = try response.decode(APIPeerReport.self)
                #expect(Array(response.body.readableBytesView) == APIJSON.encode(decoded), "\(response.text)")
                #expect(decoded == APIPeerReport(expected[host]!))
            }
            let list = try await API.get(client, "/v1/peers")
            let decoded = try list.decode(APIPeerList.self)
            #expect(Array(list.body.readableBytesView) == APIJSON.encode(decoded))
            #expect(decoded.peers.count == expected.count)
        }
    }
}
