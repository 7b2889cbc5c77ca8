/// The power state the manager believes a VM is in on a host.
public enum BelievedState: String, Sendable, Codable, CaseIterable {
    case running
    case stopped

    /// CloudStack's words for it: VM states `Running`/`Stopped` and power states `PowerOn`/`PowerOff`, in any
    /// letter case.
    public init?(text: String) {
        switch text.lowercased() {
        case "running", "poweron": self = .running
        case "stopped", "poweroff": self = .stopped
        default: return nil
        }
    }
}

/// One VM as the manager believes it: by UUID (CloudStack gives libvirt domains the VM's UUID), or by name
/// (the instance name, `i-2-10-VM`) when the UUID is not given.
public struct BelievedVM: Hashable, Sendable {
    public var uuid: String?
    public var name: String?
    public var state: BelievedState

    public init(uuid: String? = nil, name: String? = nil, state: BelievedState) {
        self.uuid = uuid
        self.name = name
        self.state = state
    }

    /// The UUID decides when given; the name only when it is not.
    public func matches(_ entry: VMEntry) -> Bool {
        if let uuid { return uuid.lowercased() == entry.uuid.lowercased() }
        if let name { return name == entry.name }
        return false
    }
}

/// One host's VMs as we know them, and how much to trust that list.
public struct HostVMs: Hashable, Sendable {
    public var host: HostAddress
    /// Our verdict on the host (`alive` for this host itself).
    public var liveness: Liveness
    public var vms: [VMEntry]
    /// Our wall clock, Unix ms, until when the list was confirmed; nil when not known.
    public var confirmedAtMs: Int64?

    public init(host: HostAddress, liveness: Liveness, vms: [VMEntry], confirmedAtMs: Int64?) {
        self.host = host
        self.liveness = liveness
        self.vms = vms
        self.confirmedAtMs = confirmedAtMs
    }
}

/// A VM seen on a host other than the one being reconciled.
public struct VMSighting: Hashable, Sendable {
    public var host: HostAddress
    public var hostLiveness: Liveness
    public var state: VMPowerState
    public var confirmedAtMs: Int64?

    public init(host: HostAddress, hostLiveness: Liveness, state: VMPowerState, confirmedAtMs: Int64?) {
        self.host = host
        self.hostLiveness = hostLiveness
        self.state = state
        self.confirmedAtMs = confirmedAtMs
    }

    /// Running there, on a host not known to be dead (a dead host's last list says what *was* running).
    public var isRunning: Bool { state.isActive && hostLiveness != .dead }
}

public enum MismatchKind: String, Sendable, Codable, CaseIterable {
    /// Believed running; the host has it in a state that is not running; it runs nowhere else.
    case shutOff = "believed-running-but-shut-off"
    /// Believed running; the host does not have it at all, and it runs nowhere else.
    case missing = "believed-running-but-missing"
    /// Believed running; the host is dead, and the VM runs nowhere else.
    case hostDead = "believed-running-on-dead-host"
    /// Believed running or stopped on the host; not running there, but running on another host.
    case runningOnAnotherHost = "running-on-another-host"
    /// Running on the host *and* on another host.
    case runningOnSeveralHosts = "running-on-several-hosts"
    /// Believed stopped; running on the host.
    case believedStoppedButRunning = "believed-stopped-but-running"
    /// Running on the host; the manager did not mention it.
    case unknownToManager = "running-but-unknown-to-manager"
}

public struct Mismatch: Hashable, Sendable {
    public var kind: MismatchKind
    /// From the manager's entry, else from the host's.
    public var uuid: String?
    public var name: String?
    /// nil for `unknownToManager`.
    public var believed: BelievedState?
    /// The VM's state on the reconciled host (its last published list for a peer); nil when not there.
    public var stateOnHost: VMPowerState?
    /// Every other host that has the VM, in any state, by address.
    public var elsewhere: [VMSighting]

    public init(
        kind: MismatchKind,
        uuid: String?,
        name: String?,
        believed: BelievedState?,
        stateOnHost: VMPowerState?,
        elsewhere: [VMSighting]
    ) {
        self.kind = kind
        self.uuid = uuid
        self.name = name
        self.believed = believed
        self.stateOnHost = stateOnHost
        self.elsewhere = elsewhere
    }
}

public struct ReconciliationResult: Hashable, Sendable {
    /// Manager entries first, in the order given; then the host's VMs unknown to the manager, by name.
    public var mismatches: [Mismatch]
    /// Manager entries that match reality.
    public var matched: Int

    public init(mismatches: [Mismatch], matched: Int) {
        self.mismatches = mismatches
        self.matched = matched
    }
}

/// Compares the manager's picture of one host's VMs with the real one: the host's own list (live for this
/// host, the last published for a peer) and every other host's last published list.
///
/// A host's list is trusted as far as our verdict on it: a dead host runs nothing (its list says what ran
/// there, which is what the manager needs to recover), a host whose verdict is `unknown` is taken at its
/// last published word.
public enum Reconciliation {
    /// - Parameters:
    ///   - target: the host the manager's entries are about.
    ///   - others: every other host we know (for a peer target, this host is one of them).
    ///   - believed: the manager's entries, assumed distinct (the API refuses duplicates).
    public static func reconcile(target: HostVMs, others: [HostVMs], believed: [BelievedVM]) -> ReconciliationResult {
        let targetTrusted = target.liveness != .dead
        let sortedOthers = others.filter { $0.host != target.host }.sorted { $0.host < $1.host }
        var mismatches: [Mismatch] = []
        var matched = 0

        for belief in believed {
            let onHost = target.vms.first(where: belief.matches)
            let runningHere = targetTrusted && onHost?.state.isActive == true
            let found = sortedOthers.flatMap { other in other.vms.filter(belief.matches).map { (other, $0) } }
            let elsewhere = found.map { other, vm in
                VMSighting(
                    host: other.host,
                    hostLiveness: other.liveness,
                    state: vm.state,
                    confirmedAtMs: other.confirmedAtMs
                )
            }
            let runningElsewhere = elsewhere.contains(where: \.isRunning)

            let kind: MismatchKind?
            switch (belief.state, runningHere, runningElsewhere) {
            case (_, true, true): kind = .runningOnSeveralHosts
            case (.running, true, false): kind = nil
            case (.stopped, true, false): kind = .believedStoppedButRunning
            case (_, false, true): kind = .runningOnAnotherHost
            case (.stopped, false, false): kind = nil
            case (.running, false, false):
                if !targetTrusted {
                    kind = .hostDead
                } else {
                    kind = onHost == nil ? .missing : .shutOff
                }
            }
            guard let kind else {
                matched += 1
                continue
            }
            mismatches.append(
                Mismatch(
                    kind: kind,
                    uuid: belief.uuid ?? onHost?.uuid ?? found.first?.1.uuid,
                    name: belief.name ?? onHost?.name ?? found.first?.1.name,
                    believed: belief.state,
                    stateOnHost: onHost?.state,
                    elsewhere: elsewhere
                )
            )
        }

        if targetTrusted {
            let unknown = target.vms
                .filter { vm in vm.state.isActive && !believed.contains { $0.matches(vm) } }
                .sorted { ($0.name, $0.uuid) < ($1.name, $1.uuid) }
            for vm in unknown {
                let elsewhere = sortedOthers.flatMap { other in
                    other.vms.filter { $0.uuid.lowercased() == vm.uuid.lowercased() }.map {
                        VMSighting(
                            host: other.host,
                            hostLiveness: other.liveness,
                            state: $0.state,
                            confirmedAtMs: other.confirmedAtMs
                        )
                    }
                }
                mismatches.append(
                    Mismatch(
                        kind: .unknownToManager,
                        uuid: vm.uuid,
                        name: vm.name,
                        believed: nil,
                        stateOnHost: vm.state,
                        elsewhere: elsewhere
                    )
                )
            }
        }
        return ReconciliationResult(mismatches: mismatches, matched: matched)
    }
}
