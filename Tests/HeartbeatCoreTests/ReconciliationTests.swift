import HeartbeatCore
import Testing

/// The manager's picture of a host's VMs against the real one.
@Suite("Reconciliation")
struct ReconciliationTests {
    static let here = HostAddress(10, 0, 0, 1)
    static let peerB = HostAddress(10, 0, 0, 2)
    static let peerC = HostAddress(10, 0, 0, 3)

    static func vm(_ name: String, _ state: VMPowerState, uuid: String? = nil) -> VMEntry {
        VMEntry(uuid: uuid ?? "uuid-\(name)", name: name, state: state, reason: "test", sinceMs: 1)
    }

    static func host(_ address: HostAddress, _ liveness: Liveness, _ vms: [VMEntry]) -> HostVMs {
        HostVMs(host: address, liveness: liveness, vms: vms, confirmedAtMs: 42)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var belief: BelievedState?
        /// The VM `v` on the reconciled host (nil: not there).
        var onHost: VMPowerState?
        var hostLiveness: Liveness = .alive
        /// `v` on other hosts.
        var elsewhere: [(HostAddress, Liveness, VMPowerState)] = []
        /// nil: it matches.
        var kind: MismatchKind?
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        // Believed running.
        Case(name: "running, running here: match", belief: .running, onHost: .running, kind: nil),
        Case(name: "running, paused here (still holds its disks): match", belief: .running, onHost: .paused, kind: nil),
        Case(
            name: "running, running here and on a live host: several",
            belief: .running,
            onHost: .running,
            elsewhere: [(peerB, .alive, .running)],
            kind: .runningOnSeveralHosts
        ),
        Case(
            name: "running, running here and on a host whose verdict is unknown: several",
            belief: .running,
            onHost: .running,
            elsewhere: [(peerB, .unknown, .running)],
            kind: .runningOnSeveralHosts
        ),
        Case(
            name: "running, running here and in a dead host's last list: match",
            belief: .running,
            onHost: .running,
            elsewhere: [(peerB, .dead, .running)],
            kind: nil
        ),
        Case(
            name: "running, shut off here, running on another host",
            belief: .running,
            onHost: .shutoff,
            elsewhere: [(peerB, .alive, .running)],
            kind: .runningOnAnotherHost
        ),
        Case(
            name: "running, not here, running on another host",
            belief: .running,
            onHost: nil,
            elsewhere: [(peerC, .unknown, .running)],
            kind: .runningOnAnotherHost
        ),
        Case(name: "running, shut off here", belief: .running, onHost: .shutoff, kind: .shutOff),
        Case(name: "running, crashed here", belief: .running, onHost: .crashed, kind: .shutOff),
        Case(
            name: "running, shut off here and elsewhere",
            belief: .running,
            onHost: .shutoff,
            elsewhere: [(peerB, .alive, .shutoff)],
            kind: .shutOff
        ),
        Case(name: "running, missing everywhere", belief: .running, onHost: nil, kind: .missing),
        Case(
            name: "running, not here, shut off elsewhere: missing (runs nowhere)",
            belief: .running,
            onHost: nil,
            elsewhere: [(peerB, .alive, .shutoff)],
            kind: .missing
        ),
        Case(
            name: "running, not here, only in a dead host's list: missing",
            belief: .running,
            onHost: nil,
            elsewhere: [(peerB, .dead, .running)],
            kind: .missing
        ),
        Case(
            name: "running on a dead host (its last list says running)",
            belief: .running,
            onHost: .running,
            hostLiveness: .dead,
            kind: .hostDead
        ),
        Case(
            name: "running on a dead host that did not even list it",
            belief: .running,
            onHost: nil,
            hostLiveness: .dead,
            kind: .hostDead
        ),
        Case(
            name: "running on a dead host, now running on a live one",
            belief: .running,
            onHost: .running,
            hostLiveness: .dead,
            elsewhere: [(peerB, .alive, .running)],
            kind: .runningOnAnotherHost
        ),
        Case(
            name: "running on a host whose verdict is unknown: its last list counts",
            belief: .running,
            onHost: .running,
            hostLiveness: .unknown,
            kind: nil
        ),
        // Believed stopped.
        Case(name: "stopped, shut off here: match", belief: .stopped, onHost: .shutoff, kind: nil),
        Case(name: "stopped, not here: match", belief: .stopped, onHost: nil, kind: nil),
        Case(name: "stopped, running here", belief: .stopped, onHost: .running, kind: .believedStoppedButRunning),
        Case(
            name: "stopped, running here and on another host",
            belief: .stopped,
            onHost: .running,
            elsewhere: [(peerB, .alive, .running)],
            kind: .runningOnSeveralHosts
        ),
        Case(
            name: "stopped, running on another host",
            belief: .stopped,
            onHost: .shutoff,
            elsewhere: [(peerB, .alive, .running)],
            kind: .runningOnAnotherHost
        ),
        Case(
            name: "stopped, only in a dead host's list elsewhere: match",
            belief: .stopped,
            onHost: nil,
            elsewhere: [(peerB, .dead, .running)],
            kind: nil
        ),
        Case(
            name: "stopped on a dead host that listed it running: match (a dead host runs nothing)",
            belief: .stopped,
            onHost: .running,
            hostLiveness: .dead,
            kind: nil
        ),
        // Not mentioned by the manager.
        Case(name: "not believed, running here", belief: nil, onHost: .running, kind: .unknownToManager),
        Case(
            name: "not believed, running here and elsewhere",
            belief: nil,
            onHost: .running,
            elsewhere: [(peerB, .alive, .running)],
            kind: .unknownToManager
        ),
        Case(name: "not believed, shut off here: nothing to say", belief: nil, onHost: .shutoff, kind: nil),
        Case(
            name: "not believed, running in a dead host's last list: nothing to say",
            belief: nil,
            onHost: .running,
            hostLiveness: .dead,
            kind: nil
        ),
    ]

    @Test(arguments: cases)
    func classifies(_ row: Case) throws {
        let target = Self.host(Self.here, row.hostLiveness, row.onHost.map { [Self.vm("v", $0)] } ?? [])
        let others = row.elsewhere.map { Self.host($0.0, $0.1, [Self.vm("v", $0.2)]) }
        let believed = row.belief.map { [BelievedVM(uuid: "uuid-v", state: $0)] } ?? []
        let result = Reconciliation.reconcile(target: target, others: others, believed: believed)
        #expect(result.mismatches.map(\.kind) == (row.kind.map { [$0] } ?? []))
        #expect(result.matched == (row.belief != nil && row.kind == nil ? 1 : 0))
        guard let mismatch = result.mismatches.first else { return }
        #expect(mismatch.uuid == "uuid-v")
        #expect(mismatch.name == (row.belief == nil || row.onHost != nil || !row.elsewhere.isEmpty ? "v" : nil))
        #expect(mismatch.believed == row.belief)
        #expect(mismatch.stateOnHost == row.onHost)
        // Every other host that has it, whatever its state and verdict, with our verdict on that host.
        #expect(mismatch.elsewhere.map(\.host) == row.elsewhere.map(\.0))
        #expect(mismatch.elsewhere.map(\.hostLiveness) == row.elsewhere.map(\.1))
        #expect(mismatch.elsewhere.map(\.state) == row.elsewhere.map(\.2))
        #expect(mismatch.elsewhere.allSatisfy { $0.confirmedAtMs == 42 })
    }

    @Test(arguments: [
        ("Running", BelievedState.running), ("running", .running), ("RUNNING", .running), ("PowerOn", .running),
        ("poweron", .running), ("Stopped", .stopped), ("stopped", .stopped), ("PowerOff", .stopped),
    ])
    func readsCloudStacksStateWords(text: String, state: BelievedState) {
        #expect(BelievedState(text: text) == state)
    }

    @Test(arguments: ["", "Starting", "Stopping", "Migrating", "PowerUnknown", "Destroyed", "run"])
    func refusesOtherStateWords(text: String) {
        #expect(BelievedState(text: text) == nil)
    }

    @Test func matchesByNameWhenNoUUIDIsGiven() {
        let target = Self.host(Self.here, .alive, [Self.vm("i-2-10-VM", .running, uuid: "AAAA")])
        let result = Reconciliation.reconcile(
            target: target,
            others: [],
            believed: [BelievedVM(name: "i-2-10-VM", state: .stopped)]
        )
        #expect(result.mismatches.map(\.kind) == [.believedStoppedButRunning])
        // The UUID comes from the host's entry.
        #expect(result.mismatches.first?.uuid == "AAAA")
    }

    @Test func matchesUUIDsInAnyLetterCase() {
        let target = Self.host(Self.here, .alive, [Self.vm("v", .running, uuid: "5F0C-AB")])
        let result = Reconciliation.reconcile(
            target: target,
            others: [],
            believed: [BelievedVM(uuid: "5f0c-ab", state: .running)]
        )
        #expect(result.mismatches.isEmpty)
        #expect(result.matched == 1)
    }

    @Test func theUUIDDecidesWhenBothAreGiven() {
        // Same name, other UUID: not the same VM.
        let target = Self.host(Self.here, .alive, [Self.vm("v", .running, uuid: "other")])
        let result = Reconciliation.reconcile(
            target: target,
            others: [],
            believed: [BelievedVM(uuid: "mine", name: "v", state: .running)]
        )
        #expect(result.mismatches.map(\.kind) == [.missing, .unknownToManager])
        #expect(result.mismatches.map(\.uuid) == ["mine", "other"])
    }

    @Test func anEntryWithNeitherUUIDNorNameMatchesNothing() {
        let target = Self.host(Self.here, .alive, [Self.vm("v", .shutoff)])
        let result = Reconciliation.reconcile(target: target, others: [], believed: [BelievedVM(state: .running)])
        #expect(result.mismatches.map(\.kind) == [.missing])
    }

    @Test func theTargetAmongTheOthersIsIgnored() {
        let target = Self.host(Self.here, .alive, [Self.vm("v", .running)])
        let result = Reconciliation.reconcile(
            target: target,
            others: [target, Self.host(Self.peerB, .alive, [])],
            believed: [BelievedVM(uuid: "uuid-v", state: .running)]
        )
        #expect(result.mismatches.isEmpty)
    }

    @Test func ordersManagerEntriesAsGivenThenUnknownVMsByName() {
        let target = Self.host(
            Self.here,
            .alive,
            [Self.vm("zeta", .running), Self.vm("alpha", .running), Self.vm("b", .shutoff), Self.vm("a", .running)]
        )
        let others = [
            Self.host(Self.peerC, .alive, [Self.vm("c", .running)]),
            Self.host(Self.peerB, .alive, [Self.vm("c", .running)]),
        ]
        let result = Reconciliation.reconcile(
            target: target,
            others: others,
            believed: [
                BelievedVM(uuid: "uuid-b", state: .running), BelievedVM(uuid: "uuid-a", state: .running),
                BelievedVM(uuid: "uuid-c", state: .running), BelievedVM(uuid: "uuid-gone", state: .running),
            ]
        )
        #expect(
            result.mismatches.map(\.kind) == [
                .shutOff, .runningOnAnotherHost, .missing, .unknownToManager, .unknownToManager,
            ]
        )
        #expect(result.mismatches.map(\.name) == ["b", "c", nil, "alpha", "zeta"])
        // Sightings by host address.
        #expect(result.mismatches[1].elsewhere.map(\.host) == [Self.peerB, Self.peerC])
        #expect(result.matched == 1)
    }
}
