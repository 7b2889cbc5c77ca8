public import HeartbeatCore

#if canImport(Glibc)
import Glibc
#endif

/// Runs the VM activity check for one suspect on one pool: reads CloudStack's heartbeat file, the activity
/// memo and the volumes' mtimes on the pool's I/O thread (each call bounded by the pool's `ioTimeout`),
/// decides with `ActivityCheck`, and writes the new memo back in CloudStack's format.
public enum ActivityProbe {
    /// - Parameters:
    ///   - liveness: our own verdict on the suspect; `alive` answers at once, without touching storage.
    ///   - checker: this host, for the memo's temporary file name.
    ///   - nowMs: our wall clock.
    public static func run(
        _ request: ActivityRequest,
        pool: Pool,
        liveness: Liveness?,
        checker: HostAddress,
        nowMs: Int64
    ) async -> APIActivity {
        let suspect = request.suspect
        let heartbeatPath = PoolLayout.cloudStackHeartbeat(suspect)
        let memoPath = PoolLayout.activityMemo(suspect)
        let volumes = request.volumes
        let now = nowMs / 1000
        let checkerTime = request.checkerTime ?? now

        let storage: ActivityStorage
        var callError: PoolCallError?
        if liveness == .alive {
            storage = .unreadable("not read: the host is alive by its records")
        } else {
            do {
                storage = try await pool.call("activity check reads", affectsHealth: false) {
                    files throws(PoolIOError) in
                    .read(
                        heartbeat: heartbeat(files, heartbeatPath),
                        memo: memo(files, memoPath),
                        volumes: volumes.map { stat(files, $0) }
                    )
                }
            } catch {
                callError = error
                storage = .unreadable(error.description)
            }
        }
        let result = ActivityCheck.decide(
            ActivityInput(
                suspectTime: request.suspectTime,
                checkerTime: checkerTime,
                now: now,
                liveness: liveness,
                storage: storage
            )
        )

        var memoWritten = false
        var memoError: String?
        if let memo = result.memoToWrite {
            let bytes = memo.encoded()
            // Replaced atomically (CloudStack truncates in place): a concurrent reader never sees half a line.
            let temporary = "\(PoolLayout.haFolder)/.ac-\(suspect).tmp-\(checker)-\(UInt64.random(in: 0...UInt64.max))"
            do {
                try await pool.call("activity memo write", affectsHealth: false) { files throws(PoolIOError) in
                    try files.replaceAtomically(memoPath, with: bytes, temporaryPath: temporary, durable: false)
                }
                memoWritten = true
            } catch {
                memoError = error.description
            }
        }

        let volumeStats: [VolumeStat?]
        switch (storage, callError) {
        case (.read(_, _, let stats), _): volumeStats = stats
        case (_, .timedOut?): volumeStats = Array(repeating: .timedOut, count: volumes.count)
        case (_, let error?): volumeStats = Array(repeating: .failed(error.description), count: volumes.count)
        default: volumeStats = Array(repeating: nil, count: volumes.count)  // not read: the host is alive
        }
        return APIActivity(
            host: suspect.description,
            pool: pool.id,
            activity: result.activity.rawValue,
            reason: result.reason.description,
            reasonCode: result.reason.code,
            suspectTime: request.suspectTime,
            checkerTime: checkerTime,
            hostVerdict: liveness?.rawValue,
            heartbeatAgeSeconds: result.heartbeatAgeSeconds,
            newestVolumeMtime: result.newestMtime,
            comparedWith: result.comparedWith,
            volumes: zip(volumes, volumeStats).map { APIVolumeStat(name: $0, stat: $1) },
            previousMemo: result.previousMemo?.description,
            memo: result.memoToWrite?.description,
            memoWritten: memoWritten,
            memoError: memoError
        )
    }

    /// Reads CloudStack's heartbeat file (on the pool's thread); also used by `kvmha cloudstack`.
    public static func heartbeat(_ files: any PoolFiles, _ path: String) -> HeartbeatFileReading {
        do {
            switch try files.read(path, maxBytes: CloudStackHeartbeat.maxBytes) {
            case .missing: return .missing
            case .notRegularFile: return .unusable("not a regular file")
            case .tooLarge(let size): return .unusable(CloudStackHeartbeat.Problem.tooLarge(size).description)
            case .bytes(let bytes):
                switch CloudStackHeartbeat.decode(bytes) {
                case .success(let seconds): return .written(unixSeconds: seconds)
                case .failure(let problem): return .unusable(problem.description)
                }
            }
        } catch {
            return .unreadable(error.description)
        }
    }

    /// Reads the activity memo (on the pool's thread); also used by `kvmha cloudstack`.
    public static func memo(_ files: any PoolFiles, _ path: String) -> MemoReading {
        do {
            switch try files.read(path, maxBytes: ActivityMemo.maxBytes) {
            case .missing: return .missing
            case .notRegularFile: return .unusable("not a regular file")
            case .tooLarge(let size): return .unusable(ActivityMemo.Problem.tooLarge(size).description)
            case .bytes(let bytes):
                switch ActivityMemo.decode(bytes) {
                case .success(let memo): return .present(memo)
                case .failure(let problem): return .unusable(problem.description)
                }
            }
        } catch {
            return .unreadable(error.description)
        }
    }

    /// Stats one volume file (on the pool's thread); also used by `kvmha cloudstack`.
    public static func stat(_ files: any PoolFiles, _ name: String) -> VolumeStat {
        do {
            guard let info = try files.stat(name) else { return .missing }
            guard info.isRegularFile else { return .failed("not a regular file") }
            return .modified(atSeconds: info.mtimeSeconds)
        } catch  where error.errno == ETIMEDOUT {
            return .timedOut
        } catch {
            return .failed(error.description)
        }
    }
}
