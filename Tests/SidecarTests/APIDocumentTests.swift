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
