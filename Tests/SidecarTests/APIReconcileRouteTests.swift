import Foundation
import HeartbeatCore
import Hummingbird
import HummingbirdTesting
import Sidecar
import Testing

/// `POST /v1/reconcile`: the manager's picture against this host's live list and the peers' published ones.
@Suite("API reconcile")
struct APIReconcileRouteTests {
    @Test func thisHost() async throws {
        let fixture = try APIFixture()
        let body = """
            {"vms": [
              {"uuid": "UUID-LOCAL-RUNNING", "state": "Running"},
              {"uuid": "uuid-local-off", "name": "i-2-11-VM", "state": "Running"},
              {"name": "i-3-20-VM", "state": "Running"},
              {"uuid": "uuid-nowhere", "state": "PowerOn"},
              {"uuid": "uuid-c-running", "state": "Stopped"}
            ]}
            """
        try await fixture.test { client in
            let response = try await API.post(client, "/v1/reconcile", body: body)
            #expect(response.status == .ok, "\(response.text)")
            let answer = try response.decode(APIReconciliation.self)
            #expect(answer.host == "10.0.0.1")
            #expect(answer.hostVerdict == "alive")
            #expect(answer.checked == 5)
            #expect(answer.matched == 2, "the running VM here; the VM believed stopped that runs only on a dead host")
            #expect(
                answer.mismatches.map(\.kind) == [
                    "believed-running-but-shut-off", "running-on-another-host", "believed-running-but-missing",
                ]
            )
            let elsewhere = try #require(answer.mismatches.dropFirst().first?.elsewhere.first)
            #expect(elsewhere.host == "10.0.0.2")
            #expect(elsewhere.hostVerdict == "alive")
            #expect(elsewhere.state == "running")
            #expect(elsewhere.confirmedAtMs == APIFixture.nowMs - 250)
        }
    }

    @Test func unknownToTheManager() async throws {
        let fixture = try APIFixture()
        try await fixture.test { client in
            let answer = try await API.post(client, "/v1/reconcile", body: #"{"vms": []}"#).decode(
                APIReconciliation.self
            )
            #expect(answer.mismatches.map(\.kind) == ["running-but-unknown-to-manager"])
            #expect(answer.mismatches.first?.uuid == "uuid-local-running")
            #expect(answer.mismatches.first?.believed == nil)
        }
    }

    @Test func aDeadPeerRunsNothing() async throws {
        let fixture = try APIFixture()
        let body = #"{"host": "10.0.0.3", "vms": [{"uuid": "uuid-c-running", "state": "Running"}]}"#
        try await fixture.test { client in
            let answer = try await API.post(client, "/v1/reconcile", body: body).decode(APIReconciliation.self)
            #expect(answer.host == "10.0.0.3")
            #expect(answer.hostVerdict == "dead")
            #expect(answer.confirmedAtMs == APIFixture.nowMs - 45_000)
            #expect(answer.mismatches.map(\.kind) == ["believed-running-on-dead-host"])
            #expect(answer.mismatches.first?.stateOnHost == "running")
        }
    }

    @Test func aLivePeerWhoseVMRunsHere() async throws {
        let fixture = try APIFixture()
        let body =
            #"{"host": "10.0.0.2", "vms": [{"uuid": "uuid-local-running", "state": "Running"}, {"uuid": "uuid-b-running", "state": "Running"}]}"#
        try await fixture.test { client in
            let answer = try await API.post(client, "/v1/reconcile", body: body).decode(APIReconciliation.self)
            #expect(answer.hostVerdict == "alive")
            #expect(answer.matched == 1)
            #expect(answer.mismatches.map(\.kind) == ["running-on-another-host"])
            #expect(answer.mismatches.first?.elsewhere.map(\.host) == ["10.0.0.1"])
        }
    }

    @Test(arguments: [
        (#"{"host": "10.0.0.99", "vms": []}"#, "unknown-peer"),
        (#"{"host": "10.0.0.4", "vms": []}"#, "no-vm-list"),
    ])
    func unknownPeersAre404(body: String, code: String) async throws {
        let fixture = try APIFixture()
        try await fixture.test { client in
            let response = try await API.post(client, "/v1/reconcile", body: body)
            #expect(response.status == .notFound)
            #expect(response.errorCode == code)
        }
    }

    static let badBodies: [(String, String, String)] = [
        ("not JSON", "vms=1", "malformed-json"),
        ("host traversal", #"{"host": "..%2F..%2Fetc", "vms": []}"#, "invalid-host"),
        ("host a number", #"{"host": 10, "vms": []}"#, "invalid-field"),
        ("vms an object", #"{"vms": {"uuid": "a"}}"#, "invalid-field"),
        ("vm a string", #"{"vms": ["a"]}"#, "invalid-field"),
        ("no vms", #"{"host": "10.0.0.2"}"#, "missing-field"),
        ("no uuid or name", #"{"vms": [{"state": "Running"}]}"#, "missing-field"),
        ("no state", #"{"vms": [{"uuid": "a"}]}"#, "missing-field"),
        ("unknown state", #"{"vms": [{"uuid": "a", "state": "Migrating"}]}"#, "invalid-field"),
        ("state a bool", #"{"vms": [{"uuid": "a", "state": true}]}"#, "invalid-field"),
        ("uuid a number", #"{"vms": [{"uuid": 5, "state": "Running"}]}"#, "invalid-field"),
        ("uuid empty", #"{"vms": [{"uuid": "", "state": "Running"}]}"#, "invalid-field"),
        (
            "name too long", #"{"vms": [{"name": "\#(String(repeating: "n", count: 257))", "state": "Running"}]}"#,
            "invalid-field"
        ),
        ("unknown vm field", #"{"vms": [{"uuid": "a", "state": "Running", "host": "x"}]}"#, "unknown-field"),
        ("unknown field", #"{"vms": [], "hosts": []}"#, "unknown-field"),
        (
            "duplicate uuid", #"{"vms": [{"uuid": "a", "state": "Running"}, {"uuid": "A", "state": "Stopped"}]}"#,
            "duplicate-vm"
        ),
        (
            "duplicate name", #"{"vms": [{"name": "n", "state": "Running"}, {"name": "n", "state": "Running"}]}"#,
            "duplicate-vm"
        ),
    ]

    @Test(arguments: badBodies)
    func badBodiesAre400AndTouchNothing(what: String, body: String, code: String) async throws {
        let fixture = try APIFixture()
        let before = fixture.poolSnapshot()
        try await fixture.test { client in
            let response = try await API.post(client, "/v1/reconcile", body: body)
            #expect(response.status == .badRequest, "\(what): \(response.text)")
            #expect(response.errorCode == code, "\(what): \(response.text)")
        }
        #expect(fixture.poolSnapshot() == before)
    }

    @Test func anOversizedBodyIs413() async throws {
        let fixture = try APIFixture()
        let entries = (0..<3000).map { #"{"uuid": "uuid-\#($0)-0123456789", "state": "Running"}"# }.joined(
            separator: ","
        )
        try await fixture.test { client in
            let response = try await API.post(client, "/v1/reconcile", body: #"{"vms": [\#(entries)]}"#)
            #expect(response.status == .contentTooLarge)
            #expect(response.errorCode == "body-too-large")
        }
    }
}
