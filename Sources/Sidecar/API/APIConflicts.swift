public import HeartbeatCore
import Hummingbird
import Logging

/// The conflicts one round of the peer monitor found, and when.
public struct ConflictSnapshot: Sendable, Equatable {
    public var conflicts: [ClusterConflict]
    /// Unix ms of the round.
    public var updatedMs: Int64

    public init(conflicts: [ClusterConflict], updatedMs: Int64) {
        self.conflicts = conflicts.sorted()
        self.updatedMs = updatedMs
    }

    /// The cluster view of one round: every peer's freshest record and overall verdict, this host's live VM
    /// list (this host is `alive` to itself), and which pools hold a record or CloudStack's `hb-` file of whom.
    public init(
        identity: HostIdentity,
        localVMs: [VMEntry],
        reports: [PeerReport],
        recordsByPool: [String: Set<HostAddress>],
        cloudStackByPool: [String: Set<HostAddress>],
        updatedMs: Int64
    ) {
        let own = identity.address
        func pools(_ byPool: [String: Set<HostAddress>], of host: HostAddress) -> [String] {
            byPool.keys.filter { byPool[$0]!.contains(host) }.sorted()
        }
        var hosts: [ClusterHostFacts] = [
            ClusterHostFacts(
                host: own,
                liveness: .alive,
                verdictReason: "this host",
                record: HeartbeatRecord(
                    host: own,
                    hostUUID: identity.hostUUID,
                    bootID: identity.bootID,
                    incarnation: identity.incarnation,
                    sequence: 0,
                    wallTimeMs: updatedMs,
                    intervalMs: 1,
                    vms: localVMs
                ),
                recordPools: [],
                isLocal: true
            )
        ]
        var known: Set<HostAddress> = [own]
        for report in reports where report.peer != own {
            known.insert(report.peer)
            let record = APIHandlers.freshestRecord(report)?.record
            var problem: RecordProblem?
            if record == nil {
                for pool in report.perPool.keys.sorted() {
                    if case .unusableRecord(let found) = report.perPool[pool]!.reason {
                        problem = found
                        break
                    }
                }
            }
            hosts.append(
                ClusterHostFacts(
                    host: report.peer,
                    liveness: report.overall.liveness,
                    verdictReason: report.overall.reason.description,
                    record: record,
                    recordProblem: problem,
                    recordPools: pools(recordsByPool, of: report.peer),
                    cloudStackPools: pools(cloudStackByPool, of: report.peer)
                )
            )
        }
        // Hosts seen only through CloudStack's files.
        for host in Set(cloudStackByPool.values.flatMap { $0 }).subtracting(known).sorted() {
            hosts.append(
                ClusterHostFacts(
                    host: host,
                    liveness: .unknown,
                    verdictReason: "no record of this host on any pool",
                    record: nil,
                    recordPools: [],
                    cloudStackPools: pools(cloudStackByPool, of: host)
                )
            )
        }
        self.init(conflicts: ClusterView.conflicts(hosts: hosts, nowMs: updatedMs), updatedMs: updatedMs)
    }

    /// What identifies a conflict from one round to the next (the detail may change in its wording).
    private struct Key: Hashable {
        var kind: ClusterConflict.Kind
        var uuid: String?
        var hosts: [HostAddress]
        var pools: [String]

        init(_ conflict: ClusterConflict) {
            kind = conflict.kind
            uuid = conflict.vm?.uuid.lowercased()
            hosts = conflict.hosts
            pools = conflict.pools
        }
    }

    /// Logs each conflict when it appears (a warning; a split brain is an error) and when it is gone.
    func logChanges(since previous: ConflictSnapshot?, logger: Logger) {
        let before = Set((previous?.conflicts ?? []).map(Key.init))
        let now = Set(conflicts.map(Key.init))
        for conflict in conflicts where !before.contains(Key(conflict)) {
            let metadata: Logger.Metadata = [
                "kind": "\(conflict.kind.rawValue)",
                "hosts": "\(conflict.hosts.map(\.description).joined(separator: ","))",
                "pools": "\(conflict.pools.joined(separator: ","))",
            ]
            let message: Logger.Message = "conflict \(conflict.kind.rawValue): \(conflict.detail)"
            if conflict.kind == .splitBrain {
                logger.error(message, metadata: metadata)
            } else {
                logger.warning(message, metadata: metadata)
            }
        }
        for conflict in previous?.conflicts ?? [] where !now.contains(Key(conflict)) {
            let vm = conflict.vm.map { " \($0.uuid)" } ?? ""
            let hosts = conflict.hosts.map(\.description).joined(separator: ", ")
            logger.notice("conflict \(conflict.kind.rawValue)\(vm) on \(hosts) is gone")
        }
    }
}

// MARK: - JSON (docs/API.md, `Conflicts`)

public struct APIConflictVM: Codable, Sendable, Equatable {
    public var name: String
    public var uuid: String

    public init(name: String, uuid: String) {
        self.name = name
        self.uuid = uuid
    }
}

public struct APIConflict: Codable, Sendable, Equatable {
    /// `split-brain`, `orphaned` or `no-record`.
    public var kind: String
    /// The VM; `null` for `no-record`.
    @JSONNullable public var vm: APIConflictVM?
    public var hosts: [String]
    public var pools: [String]
    public var detail: String

    public init(_ conflict: ClusterConflict) {
        kind = conflict.kind.rawValue
        vm = conflict.vm.map { APIConflictVM(name: $0.name, uuid: $0.uuid) }
        hosts = conflict.hosts.map(\.description)
        pools = conflict.pools
        detail = conflict.detail
    }
}

public struct APIConflicts: Codable, Sendable, Equatable {
    /// The answering host.
    public var checker: String
    /// By kind, then VM UUID, then hosts.
    public var conflicts: [APIConflict]
    /// Unix ms of the peer monitor round that found them.
    public var updatedMs: Int64

    public init(checker: String, _ snapshot: ConflictSnapshot) {
        self.checker = checker
        conflicts = snapshot.conflicts.map(APIConflict.init)
        updatedMs = snapshot.updatedMs
    }
}

extension APIHandlers {
    /// The conflicts of the peer monitor's last round, from memory.
    func conflicts() throws(APIError) -> Response {
        guard let snapshot = dependencies.conflicts() else {
            throw APIError(
                .serviceUnavailable,
                "not-ready",
                "the peer monitor has not finished its first round yet: ask again after one beat interval"
            )
        }
        return APIJSON.response(APIConflicts(checker: dependencies.identity.address.description, snapshot))
    }
}
