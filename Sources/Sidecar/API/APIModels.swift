public import HeartbeatCore

// The JSON shapes of the API, version 1 (docs/API.md). Shared by the server and the `kvmha` client
// commands. Every key is always present; absent values are `null`.

/// A verdict with its evidence.
public struct APIVerdict: Codable, Sendable, Equatable {
    /// `alive`, `dead` or `unknown`; `maintenance` or `rejoining` for an alive peer whose record says so.
    public var verdict: String
    public var reason: String
    public var reasonCode: String
    @JSONNullable public var sequence: UInt64?
    @JSONNullable public var incarnation: String?
    /// Seconds since the record last changed, on the checker's monotonic clock.
    @JSONNullable public var secondsSinceChange: Double?
    @JSONNullable public var secondsObserved: Double?
    /// Checker's wall clock minus the record's wall time.
    @JSONNullable public var wallClockAgeSeconds: Double?

    public init(_ verdict: PeerVerdict) {
        self.verdict = verdict.liveness.rawValue
        self.reason = verdict.reason.description
        self.reasonCode = verdict.reason.code
        self.sequence = verdict.evidence.sequence
        self.incarnation = verdict.evidence.incarnation
        self.secondsSinceChange = verdict.evidence.secondsSinceChange.map(APIRounding.milliseconds)
        self.secondsObserved = verdict.evidence.secondsObserved.map(APIRounding.milliseconds)
        self.wallClockAgeSeconds = verdict.evidence.wallClockAgeSeconds.map(APIRounding.milliseconds)
    }

    public var liveness: Liveness? { Liveness(rawValue: verdict) }

    /// An alive peer whose record says `maintenance` or `rejoining` is answered as such (`HostMode.refine`).
    public mutating func refine(by mode: HostMode) {
        guard verdict == Liveness.alive.rawValue, mode != .normal else { return }
        verdict = mode.refine(.alive)
        reasonCode = mode.name
        switch mode {
        case .maintenance(let why):
            reason = "record changing; in maintenance (self-fencing disarmed): \(why.isEmpty ? "no reason given" : why)"
        case .rejoining:
            reason = "record changing; rejoining after a fence or an unclean stop: not to be taken for alive yet"
        case .normal:
            break
        }
    }
}

public struct APIPoolVerdict: Codable, Sendable, Equatable {
    public var pool: String
    public var verdict: APIVerdict

    public init(pool: String, verdict: APIVerdict) {
        self.pool = pool
        self.verdict = verdict
    }
}

/// CheckOnHost: one peer's verdict overall and per pool.
public struct APIPeerReport: Codable, Sendable, Equatable {
    public var host: String
    /// The storage verdict, its reason qualified by the BMC's evidence when one is configured.
    public var overall: APIVerdict
    public var pools: [APIPoolVerdict]
    /// `storage`, `confirmed` (dead, and the BMC reports power off) or `conflicting`.
    public var certainty: String
    /// The BMC's power state; null when no BMC is configured for this peer.
    @JSONNullable public var bmc: APIBMCStatus?
    /// The last probe of the peer's API port (`peerProbe`); null when probing is off or no probe is recent.
    @JSONNullable public var api: APIPeerProbe?
    /// What the evidence says together, in sentences for people (`PeerNetworkNotes`); empty when nothing to add.
    public var notes: [String]
    /// The heartbeat matrix, column: what the other hosts' records say about this peer.
    public var views: [APIPeerView]
    /// The heartbeat matrix, row: what this peer's own record says about the others.
    public var sees: [APIPeerView]

    public init(_ report: PeerReport) {
        host = report.peer.description
        overall = APIVerdict(report.overall)
        pools = report.perPool.keys.sorted().map { pool in
            var verdict = APIVerdict(report.perPool[pool]!)
            if let record = report.perPool[pool]!.evidence.lastRecord { verdict.refine(by: record.mode) }
            return APIPoolVerdict(pool: pool, verdict: verdict)
        }
        // The mode of the freshest record (the one that changed last).
        if let mode = APIHandlers.freshestRecord(report)?.record.mode { overall.refine(by: mode) }
        certainty = VerdictCertainty.storage.rawValue
        bmc = nil
        api = nil
        notes = []
        views = []
        sees = []
    }

    /// Adds the last probe of the peer's API port and what it means next to the storage verdict.
    public mutating func add(probe: PeerProber.Result?, liveness: Liveness) {
        guard let probe else { return }
        api = APIPeerProbe(
            state: probe.reachability.state, checkedMs: probe.checkedMs, error: probe.reachability.error)
        notes += PeerNetworkNotes.notes(overall: liveness, reachability: probe.reachability)
        // Dead by storage while its API answers: not simply dead, isolated from storage (and, if its fencing
        // did not fire, possibly still running its VMs).
        if overall.verdict == Liveness.dead.rawValue, probe.reachability == .reachable {
            overall.verdict = "isolated"
            overall.reasonCode = "isolated"
            overall.reason =
                "record not changing for deadAfter while the sidecar's API answers: the host is up and cut from storage"
        }
    }

    /// Adds the heartbeat matrix: every other host's view of this peer (from their freshest records), and
    /// this peer's own view of the others; a note when its own record says it cannot see hosts we see alive.
    public mutating func add(matrixFrom reports: [PeerReport], checker: HostAddress) {
        guard let peer = HostAddress(host) else { return }
        for report in reports where report.peer != peer {
            if let verdict = APIHandlers.freshestRecord(report)?.record.peerViews[peer] {
                views.append(APIPeerView(host: report.peer.description, verdict: verdict))
            }
        }
        guard let own = reports.first(where: { $0.peer == peer }).flatMap({ APIHandlers.freshestRecord($0)?.record })
        else { return }
        sees = own.peerViews.keys.sorted().map { APIPeerView(host: $0.description, verdict: own.peerViews[$0]!) }
        // Hosts alive to us (or us) that this peer's record calls dead: it cannot see them. (Not `unknown`: a
        // host that has just started says that of everyone until it has watched them for a while.)
        let aliveToUs = Set(reports.filter { $0.overall.liveness == .alive }.map(\.peer)).union([checker])
        let unseen = own.peerViews.filter { aliveToUs.contains($0.key) && ["dead", "isolated"].contains($0.value) }
        if !unseen.isEmpty && overall.verdict == Liveness.alive.rawValue {
            notes.append(
                "this host's record says it cannot see \(unseen.keys.sorted().map(\.description).joined(separator: ", ")) (\(unseen.count == 1 ? "that host is" : "those hosts are") alive to us): it is cut off from them, not they from storage"
            )
        }
    }

    /// With the BMC's evidence heard (`BMCEvidence.combine` over `report.overall`).
    public init(_ report: PeerReport, bmc evidence: BMCVerdict?) {
        self.init(report)
        guard let evidence else { return }
        overall.reason = evidence.reason.description
        overall.reasonCode = evidence.reason.code
        certainty = evidence.certainty.rawValue
        bmc = APIBMCStatus(evidence.bmc)
    }
}

/// One cell of the heartbeat matrix: `host`'s verdict, as its own record states it.
public struct APIPeerView: Codable, Sendable, Equatable {
    public var host: String
    public var verdict: String

    public init(host: String, verdict: String) {
        self.host = host
        self.verdict = verdict
    }
}

/// The last TCP probe of a peer's API port.
public struct APIPeerProbe: Codable, Sendable, Equatable {
    /// `reachable`, `refused` (the host answered, nothing listens) or `unreachable` (no answer in time).
    public var state: String
    /// When the probe finished, Unix ms.
    @JSONNullable public var checkedMs: Int64?
    @JSONNullable public var error: String?

    public init(state: String, checkedMs: Int64?, error: String?) {
        self.state = state
        self.checkedMs = checkedMs
        self.error = error
    }
}

/// A peer's BMC, as last read.
public struct APIBMCStatus: Codable, Sendable, Equatable {
    /// `on`, `off`, `unreachable`, `error`, or `unknown` (no reading yet, or the last one is stale).
    public var state: String
    /// When the reading was taken, Unix ms.
    @JSONNullable public var checkedMs: Int64?
    @JSONNullable public var error: String?

    public init(state: String, checkedMs: Int64?, error: String?) {
        self.state = state
        self.checkedMs = checkedMs
        self.error = error
    }

    public init(_ status: BMCStatus) {
        self.init(state: status.state.rawValue, checkedMs: status.checkedMs, error: status.error)
    }
}

public struct APIPeerList: Codable, Sendable, Equatable {
    /// The host that answers.
    public var checker: String
    public var peers: [APIPeerReport]

    public init(checker: String, peers: [APIPeerReport]) {
        self.checker = checker
        self.peers = peers
    }
}

public struct APIPoolHealth: Codable, Sendable, Equatable {
    public var pool: String
    public var location: String
    public var reachable: Bool
    /// Seconds since `reachable` last changed.
    public var reachableForSeconds: Double
    @JSONNullable public var lastGoodBeatMs: Int64?
    @JSONNullable public var lastError: String?
    @JSONNullable public var lastErrorMs: Int64?
    public var beatsOK: UInt64
    public var beatsFailed: UInt64
    /// Seconds the pool's I/O thread has been blocked past its deadline; null when it is not.
    @JSONNullable public var ioStuckSeconds: Double?

    public init(
        pool: String,
        location: String,
        reachable: Bool,
        reachableForSeconds: Double,
        lastGoodBeatMs: Int64?,
        lastError: String?,
        lastErrorMs: Int64?,
        beatsOK: UInt64,
        beatsFailed: UInt64,
        ioStuckSeconds: Double?
    ) {
        self.pool = pool
        self.location = location
        self.reachable = reachable
        self.reachableForSeconds = reachableForSeconds
        self.lastGoodBeatMs = lastGoodBeatMs
        self.lastError = lastError
        self.lastErrorMs = lastErrorMs
        self.beatsOK = beatsOK
        self.beatsFailed = beatsFailed
        self.ioStuckSeconds = ioStuckSeconds
    }
}

/// Whether the VM list is backed by a live libvirt connection.
public struct APILibvirtStatus: Codable, Sendable, Equatable {
    public var connected: Bool
    /// Since when `connected` has held, Unix ms.
    @JSONNullable public var sinceMs: Int64?
    @JSONNullable public var lastError: String?

    public init(connected: Bool, sinceMs: Int64?, lastError: String?) {
        self.connected = connected
        self.sinceMs = sinceMs
        self.lastError = lastError
    }
}

/// `Health.records`: signed mode (a key file is configured) or unsigned.
public struct APIRecordSigning: Codable, Sendable, Equatable {
    /// Records are signed, and peers' records are only evidence of life with a valid signature.
    public var signed: Bool
    /// The key that signs this host's records.
    @JSONNullable public var keyID: String?

    public init(keyID: String?) {
        self.signed = keyID != nil
        self.keyID = keyID
    }
}

public struct APIHealth: Codable, Sendable, Equatable {
    /// `ok` (every pool reachable, libvirt connected), `degraded`, or `failing` (no pool reachable).
    public var status: String
    public var version: String
    public var apiVersion: Int
    public var host: String
    @JSONNullable public var hostUUID: String?
    public var incarnation: String
    public var bootID: String
    public var uptimeSeconds: Double
    public var pools: [APIPoolHealth]
    public var libvirt: APILibvirtStatus
    /// The self-fencing policy's state; null where no fencer runs (router tests).
    @JSONNullable public var fencing: APIFencingStatus?
    /// Whether this host signs its records and checks the peers' signatures.
    public var records: APIRecordSigning
    /// Maintenance or rejoining; null where no host mode is kept (router tests).
    @JSONNullable public var mode: APIHostMode?

    public init(
        status: String,
        version: String,
        apiVersion: Int,
        host: String,
        hostUUID: String?,
        incarnation: String,
        bootID: String,
        uptimeSeconds: Double,
        pools: [APIPoolHealth],
        libvirt: APILibvirtStatus,
        fencing: APIFencingStatus? = nil,
        mode: APIHostMode? = nil,
        records: APIRecordSigning = APIRecordSigning(keyID: nil)
    ) {
        self.records = records
        self.status = status
        self.version = version
        self.apiVersion = apiVersion
        self.host = host
        self.hostUUID = hostUUID
        self.incarnation = incarnation
        self.bootID = bootID
        self.uptimeSeconds = uptimeSeconds
        self.pools = pools
        self.libvirt = libvirt
        self.fencing = fencing
        self.mode = mode
    }
}

/// What the fencer last decided: `healthy`; `alert` (some pools fail while others take beats: an alert, not
/// a reason to fence); `fencing` (no beat landed anywhere for `fenceAfter`, action pending `fenceDelay`);
/// `fenced` (the action ran); `disarmed`.
public struct APIFencingStatus: Codable, Sendable, Equatable {
    public var state: String
    /// True in `alert`, `fencing` and `fenced`: someone should look at this host's storage.
    public var alert: Bool
    /// The configured `fenceAction`.
    public var action: String
    /// The pools whose beats fail, in `alert`.
    public var failingPools: [String]

    public init(state: String, alert: Bool, action: String, failingPools: [String]) {
        self.state = state
        self.alert = alert
        self.action = action
        self.failingPools = failingPools
    }

    public init(_ status: Fencer.Status) {
        self.init(
            state: status.state, alert: ["alert", "fencing", "fenced"].contains(status.state),
            action: status.action.rawValue, failingPools: status.failingPools.sorted())
    }
}

public struct APIVM: Codable, Sendable, Equatable {
    public var uuid: String
    public var name: String
    public var state: String
    public var reason: String
    /// Since when the VM has been in this state, Unix ms, as far as its host knows.
    public var sinceMs: Int64

    public init(_ entry: VMEntry) {
        uuid = entry.uuid
        name = entry.name
        state = entry.state.rawValue
        reason = entry.reason
        sinceMs = entry.sinceMs
    }
}

/// This host's VMs.
public struct APILocalVMs: Codable, Sendable, Equatable {
    public var host: String
    public var libvirt: APILibvirtStatus
    /// Until when the list was confirmed against libvirt, Unix ms (now while connected).
    @JSONNullable public var confirmedAtMs: Int64?
    public var vms: [APIVM]

    public init(host: String, libvirt: APILibvirtStatus, confirmedAtMs: Int64?, vms: [APIVM]) {
        self.host = host
        self.libvirt = libvirt
        self.confirmedAtMs = confirmedAtMs
        self.vms = vms
    }
}

/// A peer's last published VM list.
public struct APIPeerVMs: Codable, Sendable, Equatable {
    public var host: String
    public var verdict: APIVerdict
    /// The pool whose record is the freshest.
    public var pool: String
    public var sequence: UInt64
    public var incarnation: String
    /// The peer's own clock when it wrote the record, Unix ms.
    public var recordWallTimeMs: Int64
    /// Our clock when we last saw the record change, Unix ms: the list was true at least until then.
    public var confirmedAtMs: Int64
    public var vms: [APIVM]
    /// VMs the peer left out of its record to keep it within the size cap.
    public var vmsOmitted: Int

    public init(
        host: String,
        verdict: APIVerdict,
        pool: String,
        sequence: UInt64,
        incarnation: String,
        recordWallTimeMs: Int64,
        confirmedAtMs: Int64,
        vms: [APIVM],
        vmsOmitted: Int
    ) {
        self.host = host
        self.verdict = verdict
        self.pool = pool
        self.sequence = sequence
        self.incarnation = incarnation
        self.recordWallTimeMs = recordWallTimeMs
        self.confirmedAtMs = confirmedAtMs
        self.vms = vms
        self.vmsOmitted = vmsOmitted
    }
}

public struct APIVolumeStat: Codable, Sendable, Equatable {
    public var name: String
    /// `modified`, `missing`, `failed` or `timed-out`.
    public var status: String
    @JSONNullable public var mtime: Int64?
    @JSONNullable public var error: String?

    public init(name: String, stat: VolumeStat?) {
        self.name = name
        switch stat {
        case .modified(let seconds): (status, mtime, error) = ("modified", seconds, nil)
        case .missing: (status, mtime, error) = ("missing", nil, nil)
        case .failed(let why): (status, mtime, error) = ("failed", nil, why)
        case .timedOut: (status, mtime, error) = ("timed-out", nil, nil)
        case nil: (status, mtime, error) = ("not-read", nil, nil)
        }
    }
}

/// The activity check's answer.
public struct APIActivity: Codable, Sendable, Equatable {
    public var host: String
    public var pool: String
    /// `active`, `inactive` or `unknown`.
    public var activity: String
    public var reason: String
    public var reasonCode: String
    public var suspectTime: Int64
    public var checkerTime: Int64
    /// Our own verdict on the host when asked; null when we have none.
    @JSONNullable public var hostVerdict: String?
    @JSONNullable public var heartbeatAgeSeconds: Int64?
    @JSONNullable public var newestVolumeMtime: Int64?
    @JSONNullable public var comparedWith: Int64?
    public var volumes: [APIVolumeStat]
    /// The memo found (`suspect:mtime:checker`), and the one written.
    @JSONNullable public var previousMemo: String?
    @JSONNullable public var memo: String?
    public var memoWritten: Bool
    @JSONNullable public var memoError: String?

    public init(
        host: String,
        pool: String,
        activity: String,
        reason: String,
        reasonCode: String,
        suspectTime: Int64,
        checkerTime: Int64,
        hostVerdict: String?,
        heartbeatAgeSeconds: Int64?,
        newestVolumeMtime: Int64?,
        comparedWith: Int64?,
        volumes: [APIVolumeStat],
        previousMemo: String?,
        memo: String?,
        memoWritten: Bool,
        memoError: String?
    ) {
        self.host = host
        self.pool = pool
        self.activity = activity
        self.reason = reason
        self.reasonCode = reasonCode
        self.suspectTime = suspectTime
        self.checkerTime = checkerTime
        self.hostVerdict = hostVerdict
        self.heartbeatAgeSeconds = heartbeatAgeSeconds
        self.newestVolumeMtime = newestVolumeMtime
        self.comparedWith = comparedWith
        self.volumes = volumes
        self.previousMemo = previousMemo
        self.memo = memo
        self.memoWritten = memoWritten
        self.memoError = memoError
    }
}

public struct APISighting: Codable, Sendable, Equatable {
    public var host: String
    public var hostVerdict: String
    public var state: String
    @JSONNullable public var confirmedAtMs: Int64?

    public init(_ sighting: VMSighting) {
        host = sighting.host.description
        hostVerdict = sighting.hostLiveness.rawValue
        state = sighting.state.rawValue
        confirmedAtMs = sighting.confirmedAtMs
    }
}

public struct APIMismatch: Codable, Sendable, Equatable {
    public var kind: String
    @JSONNullable public var uuid: String?
    @JSONNullable public var name: String?
    @JSONNullable public var believed: String?
    @JSONNullable public var stateOnHost: String?
    public var elsewhere: [APISighting]

    public init(_ mismatch: Mismatch) {
        kind = mismatch.kind.rawValue
        uuid = mismatch.uuid
        name = mismatch.name
        believed = mismatch.believed?.rawValue
        stateOnHost = mismatch.stateOnHost?.rawValue
        elsewhere = mismatch.elsewhere.map(APISighting.init)
    }
}

public struct APIReconciliation: Codable, Sendable, Equatable {
    public var host: String
    public var hostVerdict: String
    /// Until when the host's list was confirmed, Unix ms.
    @JSONNullable public var confirmedAtMs: Int64?
    public var checked: Int
    public var matched: Int
    public var mismatches: [APIMismatch]

    public init(
        host: String,
        hostVerdict: String,
        confirmedAtMs: Int64?,
        checked: Int,
        matched: Int,
        mismatches: [APIMismatch]
    ) {
        self.host = host
        self.hostVerdict = hostVerdict
        self.confirmedAtMs = confirmedAtMs
        self.checked = checked
        self.matched = matched
        self.mismatches = mismatches
    }
}

/// Every error but 401 (which has no body).
public struct APIErrorBody: Codable, Sendable, Equatable {
    public var error: String
    public var message: String

    public init(error: String, message: String) {
        self.error = error
        self.message = message
    }
}

enum APIRounding {
    static func milliseconds(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
}
