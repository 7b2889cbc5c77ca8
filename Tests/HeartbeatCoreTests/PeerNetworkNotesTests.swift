import HeartbeatCore
import Testing

@Suite("Peer network notes")
struct PeerNetworkNotesTests {
    @Test("no probe, or a probe that agrees with the verdict: nothing to say")
    func quietCases() {
        for liveness in Liveness.allCases {
            #expect(PeerNetworkNotes.notes(overall: liveness, reachability: nil).isEmpty)
        }
        #expect(PeerNetworkNotes.notes(overall: .alive, reachability: .reachable).isEmpty)
        #expect(PeerNetworkNotes.notes(overall: .unknown, reachability: .reachable).isEmpty)
    }

    @Test("alive by storage, API unreachable: the network is cut, the host is not dead")
    func networkCut() throws {
        let notes = PeerNetworkNotes.notes(overall: .alive, reachability: .unreachable("no answer within 2s"))
        let note = try #require(notes.first)
        #expect(note.hasPrefix("network cut"))
        #expect(note.contains("no answer within 2s"))
    }

    @Test("dead by storage, API answering: isolated from storage")
    func isolated() throws {
        let note = try #require(PeerNetworkNotes.notes(overall: .dead, reachability: .reachable).first)
        #expect(note.hasPrefix("isolated from storage"))
    }

    @Test("dead by storage, connection refused: the host is up, its sidecar is not")
    func sidecarDownHostUp() throws {
        let note = try #require(
            PeerNetworkNotes.notes(overall: .dead, reachability: .refused("Connection refused")).first)
        #expect(note.contains("host is up with its sidecar down"))
        #expect(note.contains("Connection refused"))
    }

    @Test("every combination of verdict and probe gives at most one sentence, and the states are named")
    func everyCombination() {
        let probes: [PeerReachability] = [.reachable, .refused("r"), .unreachable("u")]
        for liveness in Liveness.allCases {
            for probe in probes {
                #expect(PeerNetworkNotes.notes(overall: liveness, reachability: probe).count <= 1)
            }
        }
        #expect(probes.map(\.state) == ["reachable", "refused", "unreachable"])
        #expect(probes.map(\.error) == [nil, "r", "u"])
    }
}
