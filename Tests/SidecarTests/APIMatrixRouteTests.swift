import HeartbeatCore
import Hummingbird
import HummingbirdTesting
import Sidecar
import Testing

/// The heartbeat matrix in CheckOnHost: the other hosts' views of a peer (`views`), the peer's own (`sees`),
/// and the note when a peer's record calls dead a host that is alive to us.
@Suite("API heartbeat matrix")
struct APIMatrixRouteTests {
    static let third = HostAddress(10, 0, 0, 4)

    static func report(_ host: HostAddress, _ liveness: Liveness, views: [HostAddress: String]) -> PeerReport {
        var record = APIFixture.record(host, sequence: 9, vms: [])
        record.peerViews = views
        let verdict = PeerVerdict(
            liveness, liveness == .alive ? .changing : .noChange,
            evidence: VerdictEvidence(
                sequence: 9, incarnation: record.incarnation, secondsSinceChange: liveness == .alive ? 0.5 : 40,
                secondsObserved: 100, wallClockAgeSeconds: 0.5, lastRecord: record))
        return APIFixture.report(host, verdict)
    }

    @Test("views and sees come from the records; a peer that cannot see live hosts gets a note")
    func matrix() async throws {
        let b = APIFixture.alivePeer
        let reports = [
            // B is alive to us, but its record says it sees us (own) and the third host dead: it is cut off.
            b: Self.report(b, .alive, views: [APIFixture.own: "dead", Self.third: "dead"]),
            Self.third: Self.report(Self.third, .alive, views: [b: "alive", APIFixture.own: "alive"]),
        ]
        let fixture = try APIFixture(reports: reports)
        try await fixture.test { client in
            let answer = try await API.get(client, "/v1/peers/\(b)").decode(APIPeerReport.self)
            #expect(answer.views == [APIPeerView(host: Self.third.description, verdict: "alive")])
            #expect(
                answer.sees == [
                    APIPeerView(host: APIFixture.own.description, verdict: "dead"),
                    APIPeerView(host: Self.third.description, verdict: "dead"),
                ])
            #expect(answer.notes.contains { $0.contains("cannot see 10.0.0.1, 10.0.0.4") }, "\(answer.notes)")
            let third = try await API.get(client, "/v1/peers/\(Self.third)").decode(APIPeerReport.self)
            #expect(third.views == [APIPeerView(host: b.description, verdict: "dead")])
            #expect(third.notes.isEmpty)
        }
    }
}
