/// What is known about one host of a pool (or of several pools) when the cluster view is built: the verdict
/// the caller reached, its freshest usable record, and which files of it were found where.
///
/// The caller decides the verdict — the daemon from `PeerLiveness` (change on its own clock), the one-shot
/// `kvmha cluster` from the record's wall-clock age (`ClusterView.wallClockVerdict`) — so the rules below
/// never look at clocks themselves.
public struct ClusterHostFacts: Hashable, Sendable {
    public var host: HostAddress
    public var liveness: Liveness
    /// Why, for people.
    public var verdictReason: String
    /// The freshest usable record of ours (carries the VM list); nil when none could be used.
    public var record: HeartbeatRecord?
    /// Why no record could be used, when a record file was found but was not usable.
    public var recordProblem: RecordProblem?
    /// Pools where a record file of ours (usable or not) was found for this host.
    public var recordPools: [String]
    /// Pools where CloudStack's `KVMHA/hb-<ip>` was found for this host.
    public var cloudStackPools: [String]
    /// The newest Unix time read from those `hb-<ip>` files, when one was read and made sense.
    public var cloudStackBeatSeconds: Int64?
    /// The checking host itself (the daemon's own live VM list): never `no-record`, and its list is
    /// checked against libvirt rather than a record.
    public var isLocal: Bool

    public init(
        host: HostAddress,
        liveness: Liveness,
        verdictReason: String,
        record: HeartbeatRecord?,
        recordProblem: RecordProblem? = nil,
        recordPools: [String],
        cloudStackPools: [String] = [],
        cloudStackBeatSeconds: Int64? = nil,
        isLocal: Bool = false
    ) {
        self.host = host
        self.liveness = liveness
        self.verdictReason = verdictReason
        self.record = record
        self.recordProblem = recordProblem
        self.recordPools = recordPools
        self.cloudStackPools = cloudStackPools
        self.cloudStackBeatSeconds = cloudStackBeatSeconds
        self.isLocal = isLocal
    }
}

/// One line of the cluster view.
public struct ClusterRow: Hashable, Sendable {
    public var host: HostAddress
    public var liveness: Liveness
    public var verdictReason: String
    /// The last beat, Unix ms: the record's wall time, else CloudStack's `hb-<ip>` time; nil when neither.
    public var lastBeatMs: Int64?
    /// Where `lastBeatMs` comes from: `record`, `cloudstack`, or nil.
    public var lastBeatSource: String?
    public var sequence: UInt64?
    /// VMs holding their disks (`VMPowerState.isActive`) in the record; nil without a record.
    public var vmsRunning: Int?
    /// Every VM of the record, including those the writer left out to stay within the size cap.
    public var vmsTotal: Int?
    public var recordProblem: RecordProblem?
    public var isLocal: Bool
}

/// One problem the cluster view found.
public struct ClusterConflict: Hashable, Sendable, Comparable {
    public enum Kind: String, Hashable, Sendable, CaseIterable, Comparable {
        /// A VM (same UUID) running on two or more hosts at once.
        case splitBrain = "split-brain"
        /// A VM that a dead host last ran and that runs nowhere now: the ones HA must restart.
        case orphaned
        /// A host with CloudStack's heartbeat file but no record of ours (so no VM list to check).
        case noRecord = "no-record"

        /// By name, so the order is the one a reader of the JSON sees.
        public static func < (lhs: Kind, rhs: Kind) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    public struct VM: Hashable, Sendable {
        public var name: String
        public var uuid: String
        public init(name: String, uuid: String) {
            self.name = name
            self.uuid = uuid
        }
    }

    public var kind: Kind
    public var vm: VM?
    /// Sorted by address.
    public var hosts: [HostAddress]
    /// Sorted; the pools the evidence was read from (empty when it came from the local libvirt alone).
    public var pools: [String]
    /// One sentence for people.
    public var detail: String

    public init(kind: Kind, vm: VM?, hosts: [HostAddress], pools: [String], detail: String) {
        self.kind = kind
        self.vm = vm
        self.hosts = hosts.sorted()
        self.pools = pools.sorted()
        self.detail = detail
    }

    /// By kind (name), then VM UUID (none first), then hosts, then pools.
    public static func < (lhs: ClusterConflict, rhs: ClusterConflict) -> Bool {
        if lhs.kind != rhs.kind { return lhs.kind < rhs.kind }
        switch (lhs.vm, rhs.vm) {
        case (nil, .some): return true
        case (.some, nil): return false
        case (.some(let left), .some(let right)) where left.uuid != right.uuid: return left.uuid < right.uuid
        default: break
        }
        if lhs.hosts != rhs.hosts { return lhs.hosts.lexicographicallyPrecedes(rhs.hosts) }
        if lhs.pools != rhs.pools { return lhs.pools.lexicographicallyPrecedes(rhs.pools) }
        return lhs.detail < rhs.detail
    }
}

/// The cluster as a pool's records describe it: one row per host, and the problems.
///
/// Rules (a VM is identified by its UUID, in any letter case):
/// - **split-brain**: a VM has a *running copy* on two or more hosts that are not `dead`, and at least one of
///   them is `alive`. A running copy is any state that holds the disks (`VMPowerState.isActive`) except
///   `paused` for a migration (reasons `migration`, `postcopy`, `postcopy failed`): that is the other end of
///   a live migration, not a second copy. Two `unknown` hosts alone are not enough — a checker that cannot
///   judge either of them (its own storage failing, say) must not raise an alarm it cannot back. A `dead`
///   host's list is history, never a running copy: its neighbours call it dead only after it has been silent
///   for `deadAfter`, by which time self-fencing (`fenceAfter + fenceDelay < deadAfter`) has stopped it, so a
///   VM it last listed and that now runs on an alive host was restarted or migrated, not duplicated.
///   Known limit: at a live migration's switch-over, the source's record may still say `running` for up to
///   one beat interval after the destination resumed; alert on it lasting two intervals.
/// - **orphaned**: a VM is active in the last record of one or more `dead` hosts and is active on no host
///   that is not `dead` (an `unknown` host that has it might be running it: not orphaned). When a host that
///   is not `dead` has no usable VM list (no record, an unusable one, or VMs left out of it), the detail says
///   the claim cannot be checked against it.
/// - **no-record**: a host (not the checker itself) has CloudStack's `hb-<ip>` on a pool where it has no
///   record of ours: it does not run the sidecar there (or cannot write its record), so its VMs escape the
///   two checks above.
public struct ClusterView: Hashable, Sendable {
    public var rows: [ClusterRow]
    /// Sorted (`ClusterConflict.<`).
    public var conflicts: [ClusterConflict]

    /// Paused-state reasons of a VM that is one end of a live migration.
    static let migrationPauseReasons: Set<String> = ["migration", "postcopy", "postcopy failed"]

    /// - Parameter nowMs: the checker's wall clock, for the age of CloudStack beats in details.
    public init(hosts: [ClusterHostFacts], nowMs: Int64) {
        let hosts = Self.unique(hosts)
        rows = hosts.map(Self.row)
        conflicts = Self.conflicts(ofUnique: hosts, nowMs: nowMs)
    }

    /// The conflicts alone (`ClusterView(hosts:nowMs:).conflicts`, without building the rows): what the peer
    /// monitor computes after every scan.
    public static func conflicts(hosts: [ClusterHostFacts], nowMs: Int64) -> [ClusterConflict] {
        conflicts(ofUnique: unique(hosts), nowMs: nowMs)
    }

    private static func conflicts(ofUnique hosts: [ClusterHostFacts], nowMs: Int64) -> [ClusterConflict] {
        (vmConflicts(hosts) + noRecordConflicts(hosts, nowMs: nowMs)).sorted()
    }

    /// Sorted by address, one entry per address: the first one given wins (callers give one each).
    private static func unique(_ hosts: [ClusterHostFacts]) -> [ClusterHostFacts] {
        var seen: Set<HostAddress> = []
        return hosts.sorted { $0.host < $1.host }.filter { seen.insert($0.host).inserted }
    }

    /// A VM entry that is a running copy for the split-brain rule.
    public static func isRunningCopy(_ vm: VMEntry) -> Bool {
        guard vm.state.isActive else { return false }
        return !(vm.state == .paused && migrationPauseReasons.contains(vm.reason))
    }

    /// The one-shot judgement of a record by its wall-clock age, for a reader that cannot watch its sequence
    /// change: `alive` while `age < deadAfter`, `dead` once `age >= deadAfter + skewAllowance`, `unknown`
    /// between the two, when the record is from further in the future than `skewAllowance`, or when there is
    /// no record. Ages are computed in Double: `wallTimeMs` is another host's word.
    ///
    /// - Parameter subject: what was written, for the reason (`record`, or CloudStack's `hb-` file).
    public static func wallClockVerdict(
        recordWallTimeMs: Int64?,
        nowMs: Int64,
        deadAfter: Duration,
        skewAllowance: Duration,
        subject: String = "record"
    ) -> (liveness: Liveness, reason: String) {
        guard let written = recordWallTimeMs else { return (.unknown, "no usable \(subject)") }
        let age = (Double(nowMs) - Double(written)) / 1000
        let deadAfterSeconds = deadAfter.seconds
        let skew = skewAllowance.seconds
        let ageText = Self.secondsText(age)
        if age < -skew {
            return (
                .unknown,
                "\(subject) written \(Self.secondsText(-age)) in the future: clocks disagree beyond the skew allowance"
            )
        }
        if age < deadAfterSeconds { return (.alive, "\(subject) \(ageText) old by the wall clock") }
        if age >= deadAfterSeconds + skew {
            return (.dead, "\(subject) \(ageText) old by the wall clock (past deadAfter + skew allowance)")
        }
        return (.unknown, "\(subject) \(ageText) old: past deadAfter, within the skew allowance")
    }

    static func secondsText(_ seconds: Double) -> String {
        guard seconds.isFinite, abs(seconds) < 1e12 else { return "a very long time" }
        let tenths = Int64((seconds * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))s"
    }

    // MARK: Rows

    static func row(_ facts: ClusterHostFacts) -> ClusterRow {
        let record = facts.record
        var lastBeatMs = record?.wallTimeMs
        var source: String? = record == nil ? nil : "record"
        if lastBeatMs == nil, let seconds = facts.cloudStackBeatSeconds {
            let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
            if !overflow {
                lastBeatMs = ms
                source = "cloudstack"
            }
        }
        return ClusterRow(
            host: facts.host,
            liveness: facts.liveness,
            verdictReason: facts.verdictReason,
            lastBeatMs: lastBeatMs,
            lastBeatSource: source,
            sequence: record?.sequence,
            vmsRunning: record.map { $0.vms.filter(\.state.isActive).count },
            vmsTotal: record.map { $0.vms.count + max(0, $0.vmsOmitted) },
            recordProblem: record == nil ? facts.recordProblem : nil,
            isLocal: facts.isLocal
        )
    }

    // MARK: VM conflicts

    /// One host's copy of one VM: the host by its index in the host list (no copy of its facts per VM).
    private struct Copy {
        var host: Int
        var entry: VMEntry
    }

    static func vmConflicts(_ hosts: [ClusterHostFacts]) -> [ClusterConflict] {
        // Every copy of every VM, by lower-cased UUID. A host listing one UUID twice (no libvirt does; a
        // damaged or hand-made record might) counts once, by its most active entry.
        func rank(_ entry: VMEntry) -> Int { isRunningCopy(entry) ? 2 : entry.state.isActive ? 1 : 0 }
        var copies: [String: [Copy]] = [:]
        for (index, facts) in hosts.enumerated() {
            guard let record = facts.record else { continue }
            // A host's own list is short: its duplicates are found by looking along it, without a dictionary.
            var listed: [(key: String, entry: VMEntry)] = []
            listed.reserveCapacity(record.vms.count)
            for entry in record.vms where !entry.uuid.isEmpty {
                let key = Self.caseFolded(entry.uuid)
                if let earlier = listed.firstIndex(where: { $0.key == key }) {
                    if rank(listed[earlier].entry) < rank(entry) { listed[earlier].entry = entry }
                    continue
                }
                listed.append((key, entry))
            }
            for (key, entry) in listed { copies[key, default: []].append(Copy(host: index, entry: entry)) }
        }
        // Hosts not known dead whose VM lists we cannot see in full.
        let unchecked = hosts.filter { facts in
            guard facts.liveness != .dead, !facts.isLocal else { return false }
            guard let record = facts.record else { return true }
            return record.vmsOmitted > 0
        }

        var conflicts: [ClusterConflict] = []
        // In any order: the caller sorts the conflicts.
        for all in copies.values {
            // One copy on a host that is not dead, the usual case: nothing to say.
            if all.count == 1 && hosts[all[0].host].liveness != .dead { continue }
            // The name and UUID as the lowest address writes them.
            let vm = ClusterConflict.VM(name: all[0].entry.name, uuid: all[0].entry.uuid)
            let running = all.filter { hosts[$0.host].liveness != .dead && isRunningCopy($0.entry) }
            if running.count >= 2 && running.contains(where: { hosts[$0.host].liveness == .alive }) {
                let places = running.map {
                    "\(hosts[$0.host].host) (\(hosts[$0.host].liveness.rawValue), \($0.entry.state))"
                }
                conflicts.append(
                    ClusterConflict(
                        kind: .splitBrain,
                        vm: vm,
                        hosts: running.map { hosts[$0.host].host },
                        pools: Set(running.flatMap { hosts[$0.host].recordPools }).sorted(),
                        detail: "VM \(describe(vm)) is running on \(running.count) hosts at once: "
                            + "\(list(places)); stop all copies but one before their disks are corrupted."
                    )
                )
            }
            let lastOnDead = all.filter { hosts[$0.host].liveness == .dead && $0.entry.state.isActive }
            let elsewhere = all.contains { hosts[$0.host].liveness != .dead && $0.entry.state.isActive }
            if !lastOnDead.isEmpty && !elsewhere {
                let deadHosts = lastOnDead.map { hosts[$0.host].host }
                var detail =
                    "VM \(describe(vm)) was running on dead host\(deadHosts.count > 1 ? "s" : "") "
                    + "\(list(deadHosts.map(\.description))) and runs on no other host: HA must restart it"
                let blind = unchecked.filter { !deadHosts.contains($0.host) }
                if !blind.isEmpty {
                    detail += " (not certain: the VM list of \(list(blind.map(Self.blindness))) cannot be checked)"
                }
                conflicts.append(
                    ClusterConflict(
                        kind: .orphaned,
                        vm: vm,
                        hosts: deadHosts,
                        pools: Set(lastOnDead.flatMap { hosts[$0.host].recordPools }).sorted(),
                        detail: detail + "."
                    )
                )
            }
        }
        return conflicts
    }

    /// `uuid.lowercased()`, without a new string for one that has no capital letter (libvirt writes them in
    /// lower case).
    static func caseFolded(_ uuid: String) -> String {
        uuid.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) || !uuid.utf8.allSatisfy({ $0 < 0x80 })
            ? uuid.lowercased() : uuid
    }

    private static func blindness(_ facts: ClusterHostFacts) -> String {
        if let record = facts.record { return "\(facts.host) (\(record.vmsOmitted) VMs left out of its record)" }
        if let problem = facts.recordProblem { return "\(facts.host) (\(problem))" }
        return "\(facts.host) (no record)"
    }

    // MARK: Hosts without a record

    static func noRecordConflicts(_ hosts: [ClusterHostFacts], nowMs: Int64) -> [ClusterConflict] {
        hosts.compactMap { facts in
            guard !facts.isLocal else { return nil }
            let recordPools = Set(facts.recordPools)
            let pools = Set(facts.cloudStackPools).subtracting(recordPools).sorted()
            guard !pools.isEmpty else { return nil }
            var beat = ""
            if let seconds = facts.cloudStackBeatSeconds {
                let age = Double(nowMs) / 1000 - Double(seconds)
                if age >= 0 && age < 1e12 { beat = " (last beat \(secondsText(age)) ago)" }
            }
            let where_ = pools.count == 1 ? "pool \(pools[0])" : "pools \(list(pools))"
            return ClusterConflict(
                kind: .noRecord,
                vm: nil,
                hosts: [facts.host],
                pools: pools,
                detail: "Host \(facts.host) has CloudStack's heartbeat file hb-\(facts.host) on \(where_)\(beat) "
                    + "but no kvmha record there, so its VMs cannot be checked for conflicts."
            )
        }
    }

    // MARK: Text

    /// The VM for a sentence. Names and UUIDs are other hosts' words: control characters become `?`, so a
    /// detail printed on a terminal can carry no escape sequence.
    static func describe(_ vm: ClusterConflict.VM) -> String {
        let name = printable(vm.name)
        let uuid = printable(vm.uuid)
        return name.isEmpty || name == uuid ? uuid : "\(name) (\(uuid))"
    }

    static func printable(_ text: String) -> String {
        String(
            String.UnicodeScalarView(
                text.unicodeScalars.map { scalar in
                    scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) ? "?" : scalar
                }
            )
        )
    }

    static func list(_ items: [String]) -> String {
        switch items.count {
        case 0: ""
        case 1: items[0]
        default: items.dropLast().joined(separator: ", ") + " and " + items.last!
        }
    }
}
