import HeartbeatCore
import Testing

/// Per-pool verdicts as the peer monitor would produce them, each with evidence that says which it is.
private enum Pool {
    static func alive(_ since: Double = 2) -> PeerVerdict {
        PeerVerdict(.alive, .changing, evidence: VerdictEvidence(sequence: 7, secondsSinceChange: since))
    }
    static func dead(_ since: Double = 40) -> PeerVerdict {
        PeerVerdict(.dead, .noChange, evidence: VerdictEvidence(sequence: 5, secondsSinceChange: since))
    }
    static let missing = PeerVerdict(.dead, .recordMissing, evidence: VerdictEvidence(secondsSinceChange: 50))
    static let failing = PeerVerdict(.unknown, .ownStorageFailing("read timed out"))
    static let watching = PeerVerdict(.unknown, .watching, evidence: VerdictEvidence(secondsSinceChange: 3))
    static let neverSeen = PeerVerdict(.unknown, .neverSeen)
    static let unusable = PeerVerdict(.unknown, .unusableRecord(.badChecksum(expected: "0", actual: "1")))
    static let wallClock = PeerVerdict(.dead, .wallClockAge)
}

struct CombineCase: Sendable, CustomTestStringConvertible {
    var name: String
    var pools: [PeerVerdict]
    var liveness: Liveness
    var reason: VerdictReason
    var testDescription: String { name }
}

private let combineCases: [CombineCase] = [
    CombineCase(name: "no pools: unknown", pools: [], liveness: .unknown, reason: .noReadablePool),
    CombineCase(name: "alive, dead", pools: [Pool.alive(), Pool.dead()], liveness: .alive, reason: .aliveOnSomePool),
    CombineCase(
        name: "dead, alive (CloudStack keeps the last pool; we do not)",
        pools: [Pool.dead(), Pool.alive()],
        liveness: .alive,
        reason: .aliveOnSomePool
    ),
    CombineCase(
        name: "alive on one pool, failing and unusable elsewhere",
        pools: [Pool.failing, Pool.unusable, Pool.alive()],
        liveness: .alive,
        reason: .aliveOnSomePool
    ),
    CombineCase(
        name: "dead, dead",
        pools: [Pool.dead(), Pool.dead(90)],
        liveness: .dead,
        reason: .deadOnEveryReadablePool
    ),
    CombineCase(
        name: "dead by any rule on every pool",
        pools: [Pool.dead(), Pool.missing, Pool.wallClock],
        liveness: .dead,
        reason: .deadOnEveryReadablePool
    ),
    CombineCase(
        name: "a pool where our own storage fails is ignored",
        pools: [Pool.dead(), Pool.failing],
        liveness: .dead,
        reason: .deadOnEveryReadablePool
    ),
    CombineCase(
        name: "failing, dead, failing",
        pools: [Pool.failing, Pool.dead(), Pool.failing],
        liveness: .dead,
        reason: .deadOnEveryReadablePool
    ),
    CombineCase(
        name: "no readable pool",
        pools: [Pool.failing, Pool.failing],
        liveness: .unknown,
        reason: .noReadablePool
    ),
    CombineCase(
        name: "dead on one, watching on another",
        pools: [Pool.dead(), Pool.watching],
        liveness: .unknown,
        reason: .poolsDisagree
    ),
    CombineCase(
        name: "dead on one, never seen on another (a pool it never wrote to tells nothing)",
        pools: [Pool.dead(), Pool.neverSeen],
        liveness: .dead,
        reason: .deadOnEveryReadablePool
    ),
    CombineCase(
        name: "never seen anywhere",
        pools: [Pool.neverSeen, Pool.neverSeen],
        liveness: .unknown,
        reason: .noReadablePool
    ),
    CombineCase(
        name: "dead on one, unusable on another",
        pools: [Pool.dead(), Pool.unusable],
        liveness: .unknown,
        reason: .poolsDisagree
    ),
    CombineCase(
        name: "watching everywhere",
        pools: [Pool.watching, Pool.watching],
        liveness: .unknown,
        reason: .poolsDisagree
    ),
    CombineCase(
        name: "failing and watching",
        pools: [Pool.failing, Pool.watching],
        liveness: .unknown,
        reason: .poolsDisagree
    ),
]

@Suite("OverallVerdict.combine")
struct OverallVerdictTests {
    @Test(arguments: combineCases)
    func table(_ row: CombineCase) {
        let verdict = OverallVerdict.combine(row.pools)
        #expect(verdict.liveness == row.liveness)
        #expect(verdict.reason == row.reason)
    }

    /// The answer does not depend on the order pools were checked in.
    @Test(arguments: combineCases)
    func orderDoesNotMatter(_ row: CombineCase) {
        for order in permutations(row.pools) {
            let verdict = OverallVerdict.combine(order)
            #expect(verdict.liveness == row.liveness && verdict.reason == row.reason, "order \(order)")
        }
    }

    @Test(arguments: [
        Pool.alive(), Pool.dead(), Pool.missing, Pool.failing, Pool.watching, Pool.neverSeen, Pool.unusable,
    ])
    func aSinglePoolPassesThrough(_ verdict: PeerVerdict) {
        #expect(OverallVerdict.combine([verdict]) == verdict)
    }

    @Test func aliveKeepsTheEvidenceOfTheAlivePool() {
        let alive = Pool.alive(1.5)
        #expect(OverallVerdict.combine([Pool.dead(), alive, Pool.failing]).evidence == alive.evidence)
    }

    @Test func deadKeepsTheFreshestEvidence() {
        let freshest = Pool.dead(31)
        let verdict = OverallVerdict.combine([Pool.dead(90), Pool.wallClock, freshest, Pool.failing])
        #expect(verdict.evidence == freshest.evidence, "the pool where it was seen changing most recently")
    }

    private func permutations(_ items: [PeerVerdict]) -> [[PeerVerdict]] {
        guard items.count > 1 else { return [items] }
        return items.indices.flatMap { index in
            var rest = items
            let head = rest.remove(at: index)
            return permutations(rest).map { [head] + $0 }
        }
    }
}
