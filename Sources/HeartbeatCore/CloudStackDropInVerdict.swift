/// What a drop-in check prints: CloudStack's verdict line, or no verdict at all.
///
/// The agent reads only the first line, and only when the script exited 0: a line containing `DEAD` means
/// dead, anything else (another line, an error exit, a timeout) counts as alive. "No verdict" is therefore
/// an error exit with the reason on stderr, which the agent treats as it treats a failing script: never dead.
public enum CloudStackDropInVerdict: Hashable, Sendable {
    case alive
    /// The whole line, which contains `DEAD`.
    case dead(String)
    /// We could not look (storage error or timeout, or a pool we saw only in part).
    case noVerdict(String)

    /// CloudStack's `ALIVE` line, the same in both scripts.
    public static let aliveLine = "=====> ALIVE <====="

    /// The line to print, when there is a verdict.
    public var line: String? {
        switch self {
        case .alive: Self.aliveLine
        case .dead(let line): line
        case .noVerdict: nil
        }
    }
}

/// The check mode of `kvmheartbeat.sh` (`-r -t SECS`), right: dead when the heartbeat file's age is above
/// `SECS`, with the real age (the script returns the age as an exit status, so it wraps at 256), and dead
/// with the reason when the file holds no time (the script's arithmetic fails on a missing, empty or garbage
/// file and it says ALIVE). A time in the future is alive, as in the script (a negative age is not above
/// `SECS`).
public enum CloudStackDropInHeartbeatCheck {
    /// The file as the script names it in its line: `$MountPoint/KVMHA/` + `/hb-$HostIP`, double slash
    /// included, so that anything matching the script's line matches ours.
    public static func scriptPath(mountPoint: String, host: HostAddress) -> String {
        "\(mountPoint)/\(PoolLayout.haFolder)//hb-\(host)"
    }

    /// - Parameters:
    ///   - now: our wall clock, Unix seconds (the script's `date +%s`).
    ///   - file: the file's name for the line (`scriptPath`).
    public static func decide(
        _ reading: HeartbeatFileReading,
        now: Int64,
        maxIntervalSeconds: Int64,
        file: String
    ) -> CloudStackDropInVerdict {
        switch reading {
        case .written(let unixSeconds):
            let (age, overflow) = now.subtractingReportingOverflow(unixSeconds)
            guard !overflow else {
                return .dead(deadLine(file: file, because: "holds \(unixSeconds), not a Unix time"))
            }
            guard age > maxIntervalSeconds else { return .alive }
            return .dead(
                "=====> Considering host as DEAD because last write on [\(file)] was [\(age)] seconds ago, "
                    + "but the max interval is [\(maxIntervalSeconds)] <======"
            )
        case .missing:
            return .dead(deadLine(file: file, because: "does not exist"))
        case .unusable(let why):
            return .dead(deadLine(file: file, because: "holds no heartbeat (\(why))"))
        case .unreadable(let why):
            return .noVerdict("cannot read \(file): \(why)")
        }
    }

    static func deadLine(file: String, because reason: String) -> String {
        "=====> Considering host as DEAD because the heartbeat file [\(file)] \(reason) <======"
    }
}

/// What the drop-in VM activity check decided, and the memo to write back.
public struct CloudStackDropInActivityOutcome: Hashable, Sendable {
    public var verdict: CloudStackDropInVerdict
    /// `ActivityCheck`'s answer, for the evidence.
    public var result: ActivityResult
    /// The memo line to write over `KVMHA/ac-<ip>` (atomically), or nil.
    public var memoToWrite: ActivityMemo? { result.memoToWrite }
}

/// `kvmvmactivity.sh`'s rule, through `ActivityCheck`, with the script's own semantics where the drop-in must
/// keep them and the daemon's API does not:
///
/// - `-u` given but naming no file (`-u ,`): the script stats nothing and goes on to the memo with an empty
///   mtime (`S::C`), answering DEAD unless the suspect time moved back; it says "empty UUIDList" only when
///   `-u` is empty. `ActivityCheck` knows only a list of names, so this is modelled as one missing volume.
/// - A memo whose mtime field is empty (`S::C`): the script's `${acTime//:/ }` drops the empty field, so the
///   previous check's time `C` becomes the mtime it compares with. The drop-in keeps that (`scriptView`);
///   the daemon's API compares with the suspect time instead.
///
/// Where the drop-in differs from the script on purpose (docs/cloudstack-drop-in.md): a pool, memo, heartbeat
/// file or volume that cannot be read (error or timeout) gives no verdict rather than DEAD (the script drops
/// failed stats, so a hung pool reads as "no writes"); a memo that is not a memo (empty, garbage) is treated
/// as absent (the script's shell arithmetic compares with whatever the garbage evaluates to); and no memo is
/// written when there is no verdict.
public enum CloudStackDropInActivity {
    public struct Input: Hashable, Sendable {
        public var suspectTime: Int64
        public var checkerTime: Int64
        /// Our wall clock, Unix seconds.
        public var now: Int64
        /// Whether `-u` was non-empty.
        public var volumeListGiven: Bool
        /// What the pool showed: one stat per name in `-u`.
        public var storage: ActivityStorage

        public init(suspectTime: Int64, checkerTime: Int64, now: Int64, volumeListGiven: Bool, storage: ActivityStorage)
        {
            self.suspectTime = suspectTime
            self.checkerTime = checkerTime
            self.now = now
            self.volumeListGiven = volumeListGiven
            self.storage = storage
        }
    }

    /// The memo file as the script names it: `$MountPoint/KVMHA/ac-$HostIP`.
    public static func scriptPath(mountPoint: String, host: HostAddress) -> String {
        "\(mountPoint)/\(PoolLayout.haFolder)/ac-\(host)"
    }

    /// The memo as the script's word splitting sees it: `S::C` reads as suspect time `S`, mtime `C`.
    public static func scriptView(_ memo: MemoReading) -> MemoReading {
        guard case .present(let found) = memo, found.latestMtime == nil else { return memo }
        return .present(
            ActivityMemo(suspectTime: found.suspectTime, latestMtime: found.checkerTime, checkerTime: found.checkerTime)
        )
    }

    /// - Parameter memoFile: the memo's name for the lines (`scriptPath`).
    public static func decide(_ input: Input, memoFile: String) -> CloudStackDropInActivityOutcome {
        var storage = input.storage
        var originalMemo: MemoReading = .missing
        if case .read(let heartbeat, let memo, let volumes) = storage {
            originalMemo = memo
            // See the type's comment: a non-empty `-u` without names stats nothing.
            let stats = input.volumeListGiven && volumes.isEmpty ? [VolumeStat.missing] : volumes
            storage = .read(heartbeat: heartbeat, memo: scriptView(memo), volumes: input.volumeListGiven ? stats : [])
        }
        let result = ActivityCheck.decide(
            ActivityInput(
                suspectTime: input.suspectTime,
                checkerTime: input.checkerTime,
                now: input.now,
                liveness: nil,
                storage: storage
            )
        )
        let verdict: CloudStackDropInVerdict
        switch result.activity {
        case .active:
            verdict = .alive
        case .unknown:
            verdict = .noVerdict(result.reason.description)
        case .inactive:
            verdict = .dead(deadLine(result.reason, originalMemo: originalMemo, memoFile: memoFile))
        }
        return CloudStackDropInActivityOutcome(verdict: verdict, result: result)
    }

    static func deadLine(_ reason: ActivityReason, originalMemo: MemoReading, memoFile: String) -> String {
        switch (reason, originalMemo) {
        case (.emptyVolumeList, _):
            return "=====> Considering host as DEAD due to empty UUIDList <======"
        case (.notWrittenSincePreviousCheck, _):
            return "=====> Considering host as DEAD due to file [\(memoFile)] exist and conditions "
                + "[suspectTimeDiff -lt 0] and [latestUpdateTime -gt SuspectTime] have not been satisfied. <======"
        case (.notWrittenSinceSuspectTime, .present):
            return "=====> Considering host as DEAD due to file [\(memoFile)] exist, condition "
                + "[suspectTimeDiff -lt 0] was satisfied and [latestUpdateTime -gt SuspectTime] has not been "
                + "satisfied. <======"
        case (.notWrittenSinceSuspectTime, .unusable(let why)):
            return "=====> Considering host as DEAD due to file [\(memoFile)] holding no memo (\(why)) and "
                + "condition [latestUpdateTime -gt SuspectTime] has not been satisfied. <======"
        default:
            return "=====> Considering host as DEAD due to file [\(memoFile)] does not exists and condition "
                + "[latestUpdateTime -gt SuspectTime] has not been satisfied. <======"
        }
    }
}
