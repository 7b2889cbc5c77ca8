/// The answer to "are the suspect host's VMs still writing to their disks on this pool?".
public enum Activity: String, Sendable, Codable, CaseIterable {
    /// The host or its VMs showed life: do not start its VMs elsewhere.
    case active
    /// No sign of life by CloudStack's rule.
    case inactive
    /// We could not look (or could not look at everything that might have shown life).
    case unknown
}

/// CloudStack's activity memo `KVMHA/ac-<suspect ip>`: one line `<suspectTime>:<latestMtime>:<checkerTime>`
/// and a newline, Unix seconds, written by whichever neighbour ran the check last (CloudStack's script or
/// us), so both read and write exactly this text.
public struct ActivityMemo: Hashable, Sendable, CustomStringConvertible {
    public var suspectTime: Int64
    /// The newest volume mtime seen by that check; nil when none of the volume files existed (CloudStack
    /// then writes an empty field: `S::C`).
    public var latestMtime: Int64?
    /// The checker's time as the manager passed it (`-t`).
    public var checkerTime: Int64

    public init(suspectTime: Int64, latestMtime: Int64?, checkerTime: Int64) {
        self.suspectTime = suspectTime
        self.latestMtime = latestMtime
        self.checkerTime = checkerTime
    }

    /// Far more than three Unix times: anything longer is not a memo.
    public static let maxBytes = 128

    /// The line without its newline.
    public var description: String { "\(suspectTime):\(latestMtime.map(String.init) ?? ""):\(checkerTime)" }

    /// The bytes CloudStack's `echo "$S:$L:$C" > $acFile` writes.
    public func encoded() -> [UInt8] { Array("\(description)\n".utf8) }

    public enum Problem: Error, Hashable, Sendable, CustomStringConvertible {
        case empty
        case malformed(String)
        case tooLarge(Int)

        public var description: String {
            switch self {
            case .empty: "activity memo is empty"
            case .malformed(let text): "activity memo is not <suspect>:<mtime>:<checker>: \(text)"
            case .tooLarge(let size): "activity memo is \(size) bytes, far more than three Unix times"
            }
        }
    }

    /// Reads the memo: three colon-separated decimal fields (the middle one may be empty), surrounding
    /// whitespace and one trailing newline allowed.
    public static func decode(_ bytes: some Collection<UInt8>) -> Result<ActivityMemo, Problem> {
        if bytes.count > maxBytes { return .failure(.tooLarge(bytes.count)) }
        let text = String(decoding: bytes, as: UTF8.self).trimmingSpaces
        if text.isEmpty { return .failure(.empty) }
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 3, let suspect = decimal(fields[0]), let checker = decimal(fields[2]) else {
            return .failure(.malformed(CloudStackHeartbeat.printable(bytes)))
        }
        var latest: Int64?
        if !fields[1].isEmpty {
            guard let value = decimal(fields[1]) else {
                return .failure(.malformed(CloudStackHeartbeat.printable(bytes)))
            }
            latest = value
        }
        return .success(ActivityMemo(suspectTime: suspect, latestMtime: latest, checkerTime: checker))
    }

    /// Digits only (at most 18, so no overflow); what `date +%s` and `stat -c %Y` print.
    static func decimal(_ text: Substring) -> Int64? {
        guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return nil
        }
        return Int64(text)
    }
}

/// What reading the suspect's CloudStack heartbeat file `KVMHA/hb-<ip>` gave.
public enum HeartbeatFileReading: Hashable, Sendable {
    /// The Unix time the file holds.
    case written(unixSeconds: Int64)
    case missing
    /// Present but not a Unix time (empty, garbage, a directory): CloudStack's arithmetic fails and it goes
    /// on to the disk check, and so do we.
    case unusable(String)
    /// Storage answered with an error or not at all.
    case unreadable(String)
}

/// What reading the activity memo `KVMHA/ac-<ip>` gave.
public enum MemoReading: Hashable, Sendable {
    case present(ActivityMemo)
    case missing
    /// Present but not a memo: treated as missing (and overwritten).
    case unusable(String)
    case unreadable(String)
}

/// The outcome of `stat` on one volume file.
public enum VolumeStat: Hashable, Sendable {
    /// The file's modification time, Unix seconds (the storage server's clock).
    case modified(atSeconds: Int64)
    /// No such file: it contributes nothing, as in CloudStack (`stat … 2>/dev/null`).
    case missing
    /// Storage answered with an error, or the name is not a regular file.
    case failed(String)
    /// The stat did not return within the deadline.
    case timedOut

    /// Whether this stat left us not knowing the file's mtime.
    public var isUnknown: Bool {
        switch self {
        case .failed, .timedOut: true
        case .modified, .missing: false
        }
    }
}

/// What the pool showed: either it could be read (each part with its own outcome) or not at all.
public enum ActivityStorage: Hashable, Sendable {
    case read(heartbeat: HeartbeatFileReading, memo: MemoReading, volumes: [VolumeStat])
    /// The reads as a whole failed or timed out: we saw nothing.
    case unreadable(String)
}

/// Everything the decision needs, gathered by the caller (the sidecar reads the pool; this decides).
public struct ActivityInput: Hashable, Sendable {
    /// When the manager started suspecting the host (`-d`), Unix seconds.
    public var suspectTime: Int64
    /// The checker's time as the manager passes it (`-t`); only written into the memo.
    public var checkerTime: Int64
    /// Our own wall clock, Unix seconds: the heartbeat file's age is measured against it, as CloudStack's
    /// script measures it against `date +%s` on the checking host.
    public var now: Int64
    /// Our own verdict on the suspect (from its records, by change); nil when we have none.
    public var liveness: Liveness?
    /// One stat per volume asked about, when the pool could be read.
    public var storage: ActivityStorage

    public init(
        suspectTime: Int64,
        checkerTime: Int64,
        now: Int64,
        liveness: Liveness?,
        storage: ActivityStorage
    ) {
        self.suspectTime = suspectTime
        self.checkerTime = checkerTime
        self.now = now
        self.liveness = liveness
        self.storage = storage
    }
}

/// Why the answer is what it is.
public enum ActivityReason: Hashable, Sendable, CustomStringConvertible {
    /// Our own verdict says the host is alive (its records keep changing).
    case hostAlive
    /// CloudStack's heartbeat file is younger than 61 s.
    case heartbeatFresh
    /// Stale heartbeat and no volumes to look at.
    case emptyVolumeList
    /// No memo, or the suspect time moved back: compared with the suspect time.
    case writtenSinceSuspectTime
    case notWrittenSinceSuspectTime
    /// Memo present: compared with the newest mtime the previous check saw.
    case writtenSincePreviousCheck
    case notWrittenSincePreviousCheck
    /// The pool could not be read at all.
    case poolUnreadable(String)
    /// The heartbeat file could not be read, and nothing else showed life.
    case heartbeatUnreadable(String)
    /// The memo could not be read, so the previous check is not known.
    case memoUnreadable(String)
    /// Some volume could not be stat'ed (error or timeout), and the others showed no life.
    case volumeUnreadable(count: Int)

    public var description: String {
        switch self {
        case .hostAlive: "our own verdict: the host is alive (its records keep changing)"
        case .heartbeatFresh: "CloudStack heartbeat younger than \(ActivityCheck.freshHeartbeatSeconds)s"
        case .emptyVolumeList: "stale heartbeat and an empty volume list"
        case .writtenSinceSuspectTime: "a volume was written after the suspect time"
        case .notWrittenSinceSuspectTime: "no volume written after the suspect time"
        case .writtenSincePreviousCheck: "a volume was written since the previous check"
        case .notWrittenSincePreviousCheck: "no volume written since the previous check"
        case .poolUnreadable(let why): "pool unreadable: \(why)"
        case .heartbeatUnreadable(let why): "heartbeat file unreadable (\(why)) and no volume showed activity"
        case .memoUnreadable(let why): "activity memo unreadable (\(why)): the previous check is not known"
        case .volumeUnreadable(let count): "\(count) volume(s) could not be stat'ed and the others showed no activity"
        }
    }

    /// Short stable token for JSON and metrics.
    public var code: String {
        switch self {
        case .hostAlive: "host-alive"
        case .heartbeatFresh: "heartbeat-fresh"
        case .emptyVolumeList: "empty-volume-list"
        case .writtenSinceSuspectTime: "written-since-suspect-time"
        case .notWrittenSinceSuspectTime: "not-written-since-suspect-time"
        case .writtenSincePreviousCheck: "written-since-previous-check"
        case .notWrittenSincePreviousCheck: "not-written-since-previous-check"
        case .poolUnreadable: "pool-unreadable"
        case .heartbeatUnreadable: "heartbeat-unreadable"
        case .memoUnreadable: "memo-unreadable"
        case .volumeUnreadable: "volume-unreadable"
        }
    }
}

public struct ActivityResult: Hashable, Sendable {
    public var activity: Activity
    public var reason: ActivityReason
    /// `now - heartbeat`, when the heartbeat file held a time.
    public var heartbeatAgeSeconds: Int64?
    /// The newest mtime among the volumes that could be stat'ed; nil when none could.
    public var newestMtime: Int64?
    /// The time the newest mtime was compared with (the suspect time or the previous check's mtime).
    public var comparedWith: Int64?
    public var previousMemo: ActivityMemo?
    /// The memo to write back; nil when nothing is to be written (CloudStack writes none when the heartbeat
    /// is fresh or the list empty; we write none when the answer is unknown).
    public var memoToWrite: ActivityMemo?

    public init(
        activity: Activity,
        reason: ActivityReason,
        heartbeatAgeSeconds: Int64? = nil,
        newestMtime: Int64? = nil,
        comparedWith: Int64? = nil,
        previousMemo: ActivityMemo? = nil,
        memoToWrite: ActivityMemo? = nil
    ) {
        self.activity = activity
        self.reason = reason
        self.heartbeatAgeSeconds = heartbeatAgeSeconds
        self.newestMtime = newestMtime
        self.comparedWith = comparedWith
        self.previousMemo = previousMemo
        self.memoToWrite = memoToWrite
    }
}

/// The decision rule of CloudStack's `kvmvmactivity.sh`, as a pure function, with these differences
/// (each marked `Differs:` below):
///
/// 1. Our own change-based verdict `alive` counts as a fresh heartbeat (the sidecar's records are a
///    heartbeat too, and one that does not depend on clocks agreeing).
/// 2. A pool we cannot read, a stat that fails or times out, a memo or heartbeat file we cannot read: the
///    answer is `unknown` — unless what we *could* read already shows activity. CloudStack drops failed
///    stats silently (so a hung pool looks like "no writes", i.e. dead) and its agent counts a timed-out
///    script as activity; neither is evidence either way.
/// 3. A fresh heartbeat wins over everything, also with an empty volume list (the host is alive; its VMs
///    may be anywhere).
/// 4. A memo whose middle field is empty (`S::C`, CloudStack's own output when no volume file existed):
///    CloudStack's `${acTime//:/ }` then shifts the checker time into the mtime slot; we compare with the
///    suspect time instead. A memo that is not a memo at all is treated as absent (and overwritten).
/// 5. No memo is written when the answer is `unknown`: a half-seen pool must not become the baseline of
///    the next check.
public enum ActivityCheck {
    /// CloudStack's hard-coded heartbeat freshness (`diff -lt 61`).
    public static let freshHeartbeatSeconds: Int64 = 61

    public static func decide(_ input: ActivityInput) -> ActivityResult {
        // Differs (1): our own verdict is a heartbeat.
        if input.liveness == .alive { return ActivityResult(activity: .active, reason: .hostAlive) }

        guard case .read(let heartbeat, let memo, let volumes) = input.storage else {
            guard case .unreadable(let why) = input.storage else { preconditionFailure("unreachable") }
            // Differs (2): nothing seen is not "no activity".
            return ActivityResult(activity: .unknown, reason: .poolUnreadable(why))
        }

        var heartbeatAge: Int64?
        var heartbeatProblem: String?
        switch heartbeat {
        case .written(let unixSeconds):
            // In the script a time in the future also reads fresh (a negative age is < 61); we keep that: it
            // errs towards "active", the side that never starts a VM twice.
            let (age, overflow) = input.now.subtractingReportingOverflow(unixSeconds)
            heartbeatAge = overflow ? nil : age
            if let age = heartbeatAge, age < freshHeartbeatSeconds {
                return ActivityResult(activity: .active, reason: .heartbeatFresh, heartbeatAgeSeconds: age)
            }
        case .missing, .unusable:
            break
        case .unreadable(let why):
            heartbeatProblem = why
        }

        // Differs (3) is the order above: the heartbeat is judged before the list is looked at.
        if volumes.isEmpty {
            if let heartbeatProblem {
                return ActivityResult(
                    activity: .unknown,
                    reason: .heartbeatUnreadable(heartbeatProblem),
                    heartbeatAgeSeconds: heartbeatAge
                )
            }
            return ActivityResult(activity: .inactive, reason: .emptyVolumeList, heartbeatAgeSeconds: heartbeatAge)
        }

        var newest: Int64?
        for case .modified(let seconds) in volumes { newest = max(newest ?? seconds, seconds) }
        let unreadableVolumes = volumes.filter(\.isUnknown).count

        let previous: ActivityMemo?
        var memoProblem: String?
        switch memo {
        case .present(let found): previous = found
        case .missing, .unusable: previous = nil  // Differs (4) for unusable
        case .unreadable(let why):
            previous = nil
            memoProblem = why
        }

        // The script: no memo → compare with the suspect time; a memo whose suspect time is later than this
        // one (`suspectTimeDiff -lt 0`) → the suspect time; otherwise → the previous check's newest mtime.
        let threshold: Int64
        let sincePrevious: Bool
        if let previous, input.suspectTime >= previous.suspectTime, let previousLatest = previous.latestMtime {
            threshold = previousLatest
            sincePrevious = true
        } else {
            threshold = input.suspectTime  // Differs (4) when the memo's mtime field is empty
            sincePrevious = false
        }
        let written = newest.map { $0 > threshold } ?? false
        let memoToWrite = ActivityMemo(
            suspectTime: input.suspectTime,
            latestMtime: newest,
            checkerTime: input.checkerTime
        )
        var result = ActivityResult(
            activity: written ? .active : .inactive,
            reason: sincePrevious
                ? (written ? .writtenSincePreviousCheck : .notWrittenSincePreviousCheck)
                : (written ? .writtenSinceSuspectTime : .notWrittenSinceSuspectTime),
            heartbeatAgeSeconds: heartbeatAge,
            newestMtime: newest,
            comparedWith: threshold,
            previousMemo: previous,
            memoToWrite: memoToWrite
        )

        // Differs (2): activity seen stands; its absence proves nothing while something could not be read.
        if let memoProblem {
            // Without the previous check even "written since the suspect time" is not CloudStack's answer
            // when the suspect time did not move back: nothing is known.
            result.activity = .unknown
            result.reason = .memoUnreadable(memoProblem)
            result.comparedWith = nil
        } else if !written, unreadableVolumes > 0 {
            result.activity = .unknown
            result.reason = .volumeUnreadable(count: unreadableVolumes)
        } else if !written, let heartbeatProblem {
            result.activity = .unknown
            result.reason = .heartbeatUnreadable(heartbeatProblem)
        }
        // Differs (5).
        if result.activity == .unknown { result.memoToWrite = nil }
        return result
    }

    /// Volume names as CloudStack sends them (`-u`): plain file names in the pool's root. Anything that could
    /// walk out of the pool (or into our own folder's parents) is refused: no `/`, no `..`, no NUL or other
    /// control character, not empty, at most 255 bytes.
    public static func isValidVolumeName(_ name: String) -> Bool {
        let bytes = name.utf8
        guard !bytes.isEmpty, bytes.count <= 255, name != ".", !name.contains("..") else { return false }
        return bytes.allSatisfy { $0 >= 0x20 && $0 != 0x7f && $0 != UInt8(ascii: "/") }
    }

    /// At most this many volumes per check: more than any host runs, few enough that one bounded storage
    /// call stats them all.
    public static let maxVolumes = 4096
}
