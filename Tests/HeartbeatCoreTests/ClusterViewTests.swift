import HeartbeatCore
import Testing

@Suite("Cluster view")
struct ClusterViewTests {
    static let a = HostAddress(10, 0, 0, 1)
    static let b = HostAddress(10, 0, 0, 2)
    static let c = HostAddress(10, 0, 0, 3)
    static let d = HostAddress(10, 0, 0, 4)
    static let nowMs: Int64 = 1_700_000_000_000

    static func vm(_ uuid: String, _ state: VMPowerState, name: String? = nil, reason: String = "booted") -> VMEntry {
        VMEntry(uuid: uuid, name: name ?? "vm-\(uuid)", state: state, reason: reason, sinceMs: nowMs - 60_000)
    }

    static func host(
        _ address: HostAddress,
        _ liveness: Liveness,
        _ vms: [VMEntry]?,
        omitted: Int = 0,
        pools: [String] = ["p1"],
        cloudStack: [String] = [],
        local: Bool = false
    ) -> ClusterHostFacts {
        let record = vms.map {
            HeartbeatRecord(
                host: address,
                hostUUID: nil,
                bootID: "boot",
                incarnation: "inc",
                sequence: 7,
                wallTimeMs: nowMs - 1000,
                intervalMs: 5000,
                vms: $0,
                vmsOmitted: omitted
            )
        }
        return ClusterHostFacts(
            host: address,
            liveness: liveness,
            verdictReason: "test",
            record: record,
            recordPools: vms == nil ? [] : pools,
            cloudStackPools: cloudStack,
            isLocal: local
        )
    }

    static func kinds(_ view: ClusterView) -> [String] {
        view.conflicts.map {
            "\($0.kind.rawValue) \($0.vm?.uuid ?? "-") \($0.hosts.map(\.description).joined(separator: ","))"
        }
    }

    // MARK: Split brain: the verdict table

    /// One VM, running on two hosts with these verdicts: split brain or not.
    @Test(
        "split brain needs two running copies on hosts not dead, one of them alive",
        arguments: [
            (Liveness.alive, Liveness.alive, true),
            (.alive, .unknown, true),
            (.unknown, .alive, true),
            (.unknown, .unknown, false),
            (.alive, .dead, false),
            (.dead, .alive, false),
            (.dead, .dead, false),
            (.unknown, .dead, false),
        ]
    )
    func splitBrainByVerdict(first: Liveness, second: Liveness, expected: Bool) {
        let view = ClusterView(
            hosts: [
                Self.host(Self.a, first, [Self.vm("u1", .running)]),
                Self.host(Self.b, second, [Self.vm("u1", .running)]),
            ],
            nowMs: Self.nowMs
        )
        let split = view.conflicts.filter { $0.kind == .splitBrain }
        #expect(split.count == (expected ? 1 : 0), "\(first) + \(second): \(Self.kinds(view))")
        if expected {
            #expect(split[0].hosts == [Self.a, Self.b])
            #expect(split[0].vm == ClusterConflict.VM(name: "vm-u1", uuid: "u1"))
            #expect(split[0].pools == ["p1"])
            #expect(split[0].detail.contains("running on 2 hosts at once"))
        }
    }

    /// The states of the second copy (the first runs on an alive host).
    @Test(
        "which states count as a running copy",
        arguments: [
            (VMPowerState.running, "booted", true),
            (.blocked, "unknown", true),
            (.paused, "user", true),
            (.paused, "ioerror", true),
            (.shuttingDown, "user", true),
            (.pmsuspended, "unknown", true),
            (.paused, "migration", false),
            (.paused, "postcopy", false),
            (.paused, "postcopy failed", false),
            (.shutoff, "migrated", false),
            (.crashed, "panicked", false),
            (.noState, "unknown", false),
            (VMPowerState(rawValue: "from-the-future"), "x", true),
        ]
    )
    func runningCopies(state: VMPowerState, reason: String, counts: Bool) {
        let view = ClusterView(
            hosts: [
                Self.host(Self.a, .alive, [Self.vm("u1", .running)]),
                Self.host(Self.b, .alive, [Self.vm("u1", state, reason: reason)]),
            ],
            nowMs: Self.nowMs
        )
        #expect(view.conflicts.contains { $0.kind == .splitBrain } == counts, "\(state) \(reason)")
        // Whatever the state, nothing is orphaned: no host is dead.
        #expect(!view.conflicts.contains { $0.kind == .orphaned })
    }

    @Test func threeCopiesNameEveryHostNotDeadAndMatchUUIDsInAnyCase() {
        let view = ClusterView(
            hosts: [
                Self.host(Self.c, .unknown, [Self.vm("ABC-1", .running, name: "i-2-10-VM")]),
                Self.host(Self.a, .alive, [Self.vm("abc-1", .running, name: "i-2-10-VM")]),
                Self.host(
                    Self.b,
                    .alive,
                    [Self.vm("Abc-1", .paused, name: "i-2-10-VM", reason: "user")],
                    pools: ["p2"]
                ),
                Self.host(Self.d, .dead, [Self.vm("abc-1", .running, name: "i-2-10-VM")]),
            ],
            nowMs: Self.nowMs
        )
        #expect(view.conflicts.count == 1, "\(Self.kinds(view))")
        let conflict = view.conflicts[0]
        #expect(conflict.kind == .splitBrain)
        #expect(conflict.hosts == [Self.a, Self.b, Self.c])
        #expect(conflict.pools == ["p1", "p2"])
        // As the lowest address writes it.
        #expect(conflict.vm == ClusterConflict.VM(name: "i-2-10-VM", uuid: "abc-1"))
        #expect(
            conflict.detail
                == "VM i-2-10-VM (abc-1) is running on 3 hosts at once: 10.0.0.1 (alive, running), 10.0.0.2 (alive, paused) and 10.0.0.3 (unknown, running); stop all copies but one before their disks are corrupted."
        )
    }

    @Test func aHostListingAUUIDTwiceIsOneCopyAndEmptyUUIDsAreIgnored() {
        let view = ClusterView(
            hosts: [
                Self.host(Self.a, .alive, [Self.vm("u1", .running), Self.vm("U1", .running), Self.vm("", .running)]),
                // Listed twice, shut off first: its most active entry counts (so u2 is not orphaned).
                Self.host(Self.b, .alive, [Self.vm("", .running), Self.vm("u2", .shutoff), Self.vm("U2", .running)]),
                Self.host(Self.c, .dead, [Self.vm("u2", .running)]),
            ],
            nowMs: Self.nowMs
        )
        #expect(view.conflicts.isEmpty, "\(Self.kinds(view))")
    }

    @Test func theLocalHostCountsLikeAnAliveHost() {
        let view = ClusterView(
            hosts: [
                Self.host(Self.a, .alive, [Self.vm("u1", .running)], pools: [], local: true),
                Self.host(Self.b, .unknown, [Self.vm("u1", .running)]),
            ],
            nowMs: Self.nowMs
        )
        #expect(Self.kinds(view) == ["split-brain u1 10.0.0.1,10.0.0.2"])
        #expect(view.conflicts[0].pools == ["p1"])
    }

    // MARK: Orphaned

    @Test func aDeadHostsRunningVMThatRunsNowhereIsOrphaned() {
        let view = ClusterView(
            hosts: [
                Self.host(Self.a, .alive, [Self.vm("u-off", .shutoff)]),
                Self.host(
                    Self.c,
                    .dead,
                    [
                        Self.vm("u-orphan", .running, name: "i-4-30-VM"), Self.vm("u-off", .shutoff),
                        Self.vm("u-restarted", .running), Self.vm("u-crashed", .crashed),
                    ]
                ),
                Self.host(Self.b, .alive, [Self.vm("u-restarted", .running)]),
            ],
            nowMs: Self.nowMs
        )
        #expect(Self.kinds(view) == ["orphaned u-orphan 10.0.0.3"])
        #expect(
            view.conflicts[0].detail
                == "VM i-4-30-VM (u-orphan) was running on dead host 10.0.0.3 and runs on no other host: HA must restart it."
        )
    }

    /// Where else the orphan candidate is, and whether it is orphaned.
    @Test(
        "a VM of a dead host is orphaned only if no host that is not dead has it active",
        arguments: [
            (Liveness.alive, VMPowerState.running, "booted", false),
            (.unknown, .running, "booted", false),
            (.alive, .paused, "migration", false),
            (.alive, .shutoff, "destroyed", true),
            (.unknown, .crashed, "panicked", true),
            (.dead, .running, "booted", true),
        ]
    )
    func orphanTable(otherLiveness: Liveness, state: VMPowerState, reason: String, orphaned: Bool) {
        let view = ClusterView(
            hosts: [
                Self.host(Self.a, .dead, [Self.vm("u1", .running)]),
                Self.host(Self.b, otherLiveness, [Self.vm("u1", state, reason: reason)]),
            ],
            nowMs: Self.nowMs
        )
        let found = view.conflicts.filter { $0.kind == .orphaned }
        #expect(found.count == (orphaned ? 1 : 0), "\(otherLiveness) \(state) \(reason): \(Self.kinds(view))")
        if orphaned && otherLiveness == .dead {
            // Both dead hosts last ran it: one conflict naming both.
            #expect(found[0].hosts == [Self.a, Self.b])
            #expect(found[0].detail.contains("dead hosts 10.0.0.1 and 10.0.0.2"))
        }
    }

    @Test func aDeadHostsPausedForMigrationVMIsStillItsToRestartWhenItRunsNowhere() {
        let view = ClusterView(
            hosts: [Self.host(Self.a, .dead, [Self.vm("u1", .paused, reason: "migration")])],
            nowMs: Self.nowMs
        )
        #expect(Self.kinds(view) == ["orphaned u1 10.0.0.1"])
    }

    @Test func anOrphanClaimSaysWhichListsItCannotCheck() {
        var garbled = Self.host(Self.d, .unknown, nil)
        garbled.recordProblem = .badChecksum(expected: "1", actual: "2")
        garbled.recordPools = ["p1"]
        let view = ClusterView(
            hosts: [
                Self.host(Self.a, .dead, [Self.vm("u1", .running)]),
                Self.host(Self.b, .alive, [], omitted: 3),
                Self.host(Self.c, .dead, nil),
                garbled,
            ],
            nowMs: Self.nowMs
        )
        #expect(Self.kinds(view) == ["orphaned u1 10.0.0.1"])
        #expect(
            view.conflicts[0].detail.hasSuffix(
                "HA must restart it (not certain: the VM list of 10.0.0.2 (3 VMs left out of its record) and 10.0.0.4 (record checksum mismatch (file says 1, content gives 2)) cannot be checked)."
            ),
            "\(view.conflicts[0].detail)"
        )
    }

    // MARK: No record

    @Test func aHostWithACloudStackFileButNoRecordThereHasNoRecord() {
        var onlyCloudStack = Self.host(Self.d, .unknown, nil, cloudStack: ["p1"])
        onlyCloudStack.cloudStackBeatSeconds = Self.nowMs / 1000 - 42
        let view = ClusterView(
            hosts: [
                Self.host(Self.a, .alive, [], cloudStack: ["p1"]),
                // A record on p1 only, CloudStack's file on both.
                Self.host(Self.b, .alive, [], pools: ["p1"], cloudStack: ["p1", "p2"]),
                // The checker itself never.
                Self.host(Self.c, .alive, [], pools: [], cloudStack: ["p1"], local: true),
                onlyCloudStack,
            ],
            nowMs: Self.nowMs
        )
        #expect(Self.kinds(view) == ["no-record - 10.0.0.2", "no-record - 10.0.0.4"])
        #expect(view.conflicts[0].pools == ["p2"])
        #expect(
            view.conflicts[1].detail
                == "Host 10.0.0.4 has CloudStack's heartbeat file hb-10.0.0.4 on pool p1 (last beat 42.0s ago) but no kvmha record there, so its VMs cannot be checked for conflicts."
        )
    }

    @Test func anUnusableRecordIsARecordNotNoRecord() {
        var garbled = Self.host(Self.d, .unknown, nil, cloudStack: ["p1"])
        garbled.recordPools = ["p1"]
        garbled.recordProblem = .empty
        let view = ClusterView(hosts: [garbled], nowMs: Self.nowMs)
        #expect(view.conflicts.isEmpty)
        #expect(view.rows[0].recordProblem == .empty)
    }

    // MARK: Order, rows, verdicts

    @Test func conflictsAreSortedByKindThenUUIDThenHosts() {
        let view = ClusterView(
            hosts: [
                Self.host(Self.a, .alive, [Self.vm("u2", .running), Self.vm("u1", .running)]),
                Self.host(Self.b, .alive, [Self.vm("u2", .running), Self.vm("u1", .running)]),
                Self.host(Self.c, .dead, [Self.vm("u4", .running), Self.vm("u3", .running)]),
                Self.host(HostAddress(10, 0, 0, 9), .unknown, nil, cloudStack: ["p1"]),
                Self.host(HostAddress(10, 0, 0, 8), .unknown, nil, cloudStack: ["p1"]),
            ],
            nowMs: Self.nowMs
        )
        #expect(
            Self.kinds(view) == [
                "no-record - 10.0.0.8", "no-record - 10.0.0.9", "orphaned u3 10.0.0.3", "orphaned u4 10.0.0.3",
                "split-brain u1 10.0.0.1,10.0.0.2", "split-brain u2 10.0.0.1,10.0.0.2",
            ]
        )
        #expect(view.conflicts == view.conflicts.sorted())
        #expect(ClusterConflict.Kind.allCases.sorted().map(\.rawValue) == ["no-record", "orphaned", "split-brain"])
    }

    @Test func rowsCountRunningAndTotalVMsAndFallBackToCloudStacksBeat() {
        var cloudStackOnly = Self.host(Self.c, .unknown, nil, cloudStack: ["p1"])
        cloudStackOnly.cloudStackBeatSeconds = 1_699_999_990
        let view = ClusterView(
            hosts: [
                cloudStackOnly,
                Self.host(
                    Self.a,
                    .alive,
                    [Self.vm("u1", .running), Self.vm("u2", .shutoff), Self.vm("u3", .paused)],
                    omitted: 2
                ),
            ],
            nowMs: Self.nowMs
        )
        #expect(view.rows.map(\.host) == [Self.a, Self.c])
        let first = view.rows[0]
        #expect(first.vmsRunning == 2 && first.vmsTotal == 5 && first.sequence == 7)
        #expect(first.lastBeatMs == Self.nowMs - 1000 && first.lastBeatSource == "record")
        let second = view.rows[1]
        #expect(second.vmsRunning == nil && second.vmsTotal == nil && second.sequence == nil)
        #expect(second.lastBeatMs == 1_699_999_990_000 && second.lastBeatSource == "cloudstack")
    }

    @Test(
        "the one-shot verdict by wall-clock age",
        arguments: [
            (Optional<Int64>.none, Liveness.unknown),
            (0, .alive),
            (29_999, .alive),
            (30_000, .unknown),
            (39_999, .unknown),
            (40_000, .dead),
            (86_400_000, .dead),
            (-10_000, .alive),
            (-10_001, .unknown),
            (Int64.min, .dead),
            (Int64.max, .unknown),
        ]
    )
    func wallClockVerdict(ageMs: Int64?, expected: Liveness) {
        let written = ageMs.map { Self.nowMs &- $0 }
        let verdict = ClusterView.wallClockVerdict(
            recordWallTimeMs: ageMs == Int64.min ? Int64.min : ageMs == Int64.max ? Int64.max : written,
            nowMs: Self.nowMs,
            deadAfter: .seconds(30),
            skewAllowance: .seconds(10)
        )
        #expect(verdict.liveness == expected, "\(String(describing: ageMs)): \(verdict.reason)")
    }

    @Test func controlCharactersInAnotherHostsVMNameNeverReachTheDetail() {
        let view = ClusterView(
            hosts: [
                Self.host(Self.a, .alive, [Self.vm("u1", .running, name: "evil\u{1B}[2J\u{9B}name")]),
                Self.host(Self.b, .alive, [Self.vm("u1", .running)]),
            ],
            nowMs: Self.nowMs
        )
        #expect(view.conflicts[0].detail.hasPrefix("VM evil?[2J?name (u1)"))
        // The raw name stays in the structured field (JSON escapes it).
        #expect(view.conflicts[0].vm?.name == "evil\u{1B}[2J\u{9B}name")
    }

    /// Random clusters: the rules hold as invariants, and building never traps.
    @Test func randomClustersKeepTheInvariants() {
        var rng = SplitMix64(seed: 7)
        let states: [VMPowerState] = [.running, .paused, .shutoff, .crashed, .blocked]
        for _ in 0..<300 {
            var hosts: [ClusterHostFacts] = []
            for index in 0..<rng.within(1...6) {
                let liveness = rng.pick(Liveness.allCases)
                let vms =
                    rng.oneIn(5)
                    ? nil
                    : (0..<rng.within(0...4)).map { _ in
                        Self.vm("u\(rng.below(5))", rng.pick(states), reason: rng.oneIn(4) ? "migration" : "booted")
                    }
                hosts.append(
                    Self.host(
                        HostAddress(10, 0, 1, UInt8(index + 1)),
                        liveness,
                        vms,
                        cloudStack: rng.oneIn(3) ? ["p1"] : []
                    )
                )
            }
            let view = ClusterView(hosts: hosts, nowMs: Self.nowMs)
            #expect(view.conflicts == view.conflicts.sorted())
            #expect(view.rows.count == hosts.count)
            let byHost = Dictionary(uniqueKeysWithValues: hosts.map { ($0.host, $0) })
            for conflict in view.conflicts {
                let involved = conflict.hosts.map { byHost[$0]! }
                switch conflict.kind {
                case .splitBrain:
                    #expect(involved.count >= 2)
                    #expect(involved.allSatisfy { $0.liveness != .dead })
                    #expect(involved.contains { $0.liveness == .alive })
                case .orphaned:
                    #expect(involved.allSatisfy { $0.liveness == .dead })
                    let uuid = conflict.vm!.uuid.lowercased()
                    #expect(
                        !hosts.contains { facts in
                            facts.liveness != .dead
                                && (facts.record?.vms ?? []).contains {
                                    $0.uuid.lowercased() == uuid && $0.state.isActive
                                }
                        }
                    )
                case .noRecord:
                    #expect(involved.count == 1 && involved[0].record == nil)
                }
            }
        }
    }
}
