public import HeartbeatCore
public import NFS

#if canImport(Glibc)
import Glibc
#endif

/// A pool reached straight through libnfs (`nfs://server/export`): no kernel mount, so no call can hang the
/// process in the kernel; every RPC is bounded by libnfs's own timeout.
///
/// Use it only through `PoolIOThread`, which creates it on the pool's thread and makes every call there:
/// libnfs 4.0.0 (Debian 12) is not thread-safe, and one ``NFSContext`` belongs to one thread. That is why this
/// type holds a bare `NFSContext` and not an `NFSClient` (which would add a second thread per pool).
///
/// **Timeouts.** libnfs counts its timeout in whole seconds (at least 1 s) and applies it to each RPC. The
/// per-RPC timeout is therefore the largest whole number of seconds strictly below the pool's `ioTimeout`
/// (``callTimeout(below:)``): `ioTimeout` 4 s → 3 s, 4.5 s → 4 s, 2 s → 1 s. On a frozen server the first RPC
/// that gets no answer fails after that time, the context is spent, and the call returns an error before
/// `PoolIOThread`'s deadline: the pool thread is free again and the next call mounts afresh. With an
/// `ioTimeout` of 1 s or less (the sub-second timings of tests) libnfs cannot go lower than 1 s: the
/// deadline of `PoolIOThread` then answers the caller first (`.timedOut`), and the pool thread stays busy for
/// up to about a second, refusing calls as `.stuck` meanwhile — the caller is still never blocked past
/// `ioTimeout`. A call that makes several RPCs on a slow (not frozen) server can take longer than one
/// timeout; the deadline bounds that too.
///
/// **Recovery.** The export is mounted lazily by the first call. When a call fails with an error whose
/// ``NFSError/requiresNewContext`` is true (timeout, lost connection, NFSv4 state the server dropped such as
/// `NFS4ERR_EXPIRED`), the context is closed, never reused. A failure of a context that was mounted before
/// this call and that is not a timeout (a server restart, an expired NFSv4 lease) is retried once at once on a
/// freshly mounted context, so a beat is not lost to it; a timeout is never retried, so a call on a hung server
/// costs one timeout, not two. Otherwise the next call mounts afresh.
///
/// **Guarantees**, as for the mounted-directory store:
/// - `replaceAtomically` creates the temporary file exclusively in the same folder, writes it, COMMITs it
///   (`nfs_fsync`) and renames it over the target (atomic on the server). `NFSContext.writeFile` always
///   COMMITs, so `durable: false` writes are committed too: one extra RPC per write of CloudStack's `hb-`
///   file (a `commit:` flag on `writeFile` would save it). When a step fails, the temporary file is removed at
///   once if the context still works, else by the next call that mounts afresh.
/// - `read` never reads through a symbolic link: it opens with `O_NOFOLLOW` (libnfs answers `ELOOP` for a link as
///   the last part of the path, without reading it; links among the folders above are followed, as on a mounted
///   directory), checks the opened file's type with one GETATTR and reads only a
///   regular file, with one READ sized to it; never more than `maxBytes + 1` bytes. No separate `lstat`, so
///   no window between the check and the open, and four RPCs fewer per read.
/// - `list` never returns `.` or `..`. libnfs has no attribute or data cache that could hide a change: each call
///   asks the server (the directory cache is off in `NFSContext`).
/// - Errors become `PoolIOError` with libnfs's own message and an errno (`ENOENT` for a missing file or folder,
///   `ETIMEDOUT` for a server that did not answer), so the writer's "create the folder on ENOENT" path works
///   as it does on a mounted directory. A mount failure carries no errno when it is `ENOENT` (the export is
///   missing, not the folder).
///
/// **NFSv4** (`?version=4`) works as far as libnfs 4.0.0 allows: everything above on a fresh context, with the
/// recovery above for its unrenewed lease. NFSv3 is what the sidecar relies on.
public final class NFSPoolFiles: PoolFiles {
    public let url: NFSURL
    /// The per-RPC libnfs timeout (whole seconds).
    public let callTimeout: Duration
    /// How many times the export has been mounted (1 after the first call, +1 per recovery).
    public private(set) var mountCount = 0

    private var context: NFSContext?
    /// Temporary files a failed `replaceAtomically` could not remove because its context was spent; removed
    /// by the next call that mounts afresh. Bounded: beyond it, the writer's start-up clean-up finds them.
    private var orphanedTemporaries: [String] = []
    private static let maxOrphans = 64
    /// `nfs://server/export`, for messages (the URL without its arguments).
    private let root: String

    /// - Parameters:
    ///   - url: the export.
    ///   - ioTimeout: the pool's deadline per call; the libnfs timeout is ``callTimeout(below:)`` of it.
    public convenience init(url: NFSURL, ioTimeout: Duration) {
        self.init(url: url, callTimeout: Self.callTimeout(below: ioTimeout))
    }

    /// - Parameter callTimeout: the libnfs timeout per RPC; libnfs rounds it up to whole seconds.
    public init(url: NFSURL, callTimeout: Duration) {
        self.url = url
        self.callTimeout = callTimeout
        let host = url.server.contains(":") ? "[\(url.server)]" : url.server
        self.root = "nfs://\(host)\(url.export == "/" ? "" : url.export)"
    }

    deinit {
        context?.close()
    }

    /// The largest whole number of seconds strictly below `ioTimeout`, at least 1 s (libnfs's smallest timeout).
    public static func callTimeout(below ioTimeout: Duration) -> Duration {
        let (seconds, attoseconds) = ioTimeout.components
        let roundedUp = seconds + (attoseconds > 0 ? 1 : 0)
        return .seconds(max(1, roundedUp - 1))
    }

    public var location: String { url.description }

    /// Closes the context; the next call mounts again. Call it on the pool's thread.
    public func close() {
        context?.close()
        context = nil
    }

    // MARK: - PoolFiles

    public func makeFolder(_ path: String) throws(PoolIOError) {
        var built = ""
        for component in path.split(separator: "/") {
            built += built.isEmpty ? String(component) : "/\(component)"
            let folder = built
            try perform("create folder", folder) { nfs throws(NFSError) in try nfs.mkdir(Self.absolute(folder)) }
        }
    }

    public func replaceAtomically(
        _ path: String, with bytes: [UInt8], temporaryPath: String, durable: Bool
    ) throws(PoolIOError) {
        let temporary = Self.absolute(temporaryPath)
        // `durable` needs nothing more: writeFile always COMMITs before it closes (see the type's notes).
        do throws(PoolIOError) {
            try performKnowingRetry("create", temporaryPath) { nfs, isRetry throws(NFSError) in
                // The failed first attempt may have created it; the name is ours alone (unique per beat).
                if isRetry { try Self.removeIfPresent(nfs, temporary) }
                try nfs.writeFile(temporary, bytes, mode: 0o644, exclusiveCreate: true)
            }
        } catch {
            // Created but not written (ENOSPC, a timeout, …): remove it. Not when the exclusive create found the
            // name taken: then it is not the file this call made.
            if error.errno != EEXIST { discardTemporary(temporary) }
            throw error
        }
        do throws(PoolIOError) {
            try perform("rename over", path) { nfs throws(NFSError) in try nfs.rename(temporary, Self.absolute(path)) }
        } catch {
            discardTemporary(temporary)
            throw error
        }
    }

    public func overwrite(_ path: String, with bytes: [UInt8]) throws(PoolIOError) {
        let file = Self.absolute(path)
        let refusal = try perform("open for writing", path) { nfs throws(NFSError) -> PoolIOError? in
            // Like O_NOFOLLOW on a mounted directory: a symlink (or anything not a regular file) is never written
            // through.
            if let existing = try Self.lstatIfPresent(nfs, file), !existing.isRegular {
                return PoolIOError(
                    operation: "open for writing", path: display(path),
                    message: "not a regular file, not written through (ELOOP)", errno: ELOOP)
            }
            try nfs.writeFile(file, bytes, mode: 0o644)
            return nil
        }
        if let refusal { throw refusal }
    }

    public func read(_ path: String, maxBytes: Int) throws(PoolIOError) -> FileRead {
        let file = Self.absolute(path)
        return try perform("read", path) { nfs throws(NFSError) -> FileRead in
            do throws(NFSError) {
                switch try nfs.readRegularFile(file, maxBytes: maxBytes) {
                case .bytes(let bytes): return .bytes(bytes)
                case .notRegularFile: return .notRegularFile
                case .tooLarge(let size): return .tooLarge(Int(clamping: size))
                }
            } catch {
                if error.isNotFound { return .missing }
                throw error
            }
        }
    }

    /// Over NFSv3 one pipelined batch (``NFSContext/readRegularFiles(inFolder:names:maxBytes:)``): the folder's
    /// handle, then a LOOKUP and a READ per file with many calls in flight, about two RPCs per file instead of six;
    /// the same answers as `read` per file. Throws when the connection failed (a timeout, a lost connection),
    /// with the same retry on a fresh context as every call here; NFSv4 reads file by file.
    public func readMany(
        folder: String, names: [String], maxBytes: Int
    ) throws(PoolIOError) -> [Result<FileRead, PoolIOError>] {
        let directory = Self.absolute(folder)
        return try perform("read", folder) { nfs throws(NFSError) -> [Result<FileRead, PoolIOError>] in
            let reads = try nfs.readRegularFiles(inFolder: directory, names: names, maxBytes: maxBytes)
            return zip(names, reads).map { name, read -> Result<FileRead, PoolIOError> in
                switch read {
                case .success(.bytes(let bytes)): return .success(.bytes(bytes))
                case .success(.notRegularFile): return .success(.notRegularFile)
                case .success(.tooLarge(let size)): return .success(.tooLarge(Int(clamping: size)))
                case .failure(let error):
                    if error.isNotFound { return .success(.missing) }
                    return .failure(poolError("read", "\(folder)/\(name)", error))
                }
            }
        }
    }

    public func list(_ path: String) throws(PoolIOError) -> [PoolDirectoryEntry] {
        let folder = Self.absolute(path)
        return try perform("list", path) { nfs throws(NFSError) -> [PoolDirectoryEntry] in
            let entries: [NFSDirEntry]
            do throws(NFSError) {
                entries = try nfs.listDirectory(folder)
            } catch {
                if error.isNotFound { return [] }
                throw error
            }
            return entries.compactMap { entry in
                entry.name == "." || entry.name == ".."
                    ? nil : PoolDirectoryEntry(name: entry.name, isRegularFile: entry.isRegular)
            }
        }
    }

    public func stat(_ path: String) throws(PoolIOError) -> PoolFileStat? {
        let file = Self.absolute(path)
        return try perform("stat", path) { nfs throws(NFSError) -> PoolFileStat? in
            try Self.lstatIfPresent(nfs, file).map {
                PoolFileStat(
                    size: $0.size, mtimeSeconds: $0.mtimeSeconds, mtimeNanoseconds: $0.mtimeNanoseconds,
                    isRegularFile: $0.isRegular)
            }
        }
    }

    public func remove(_ path: String) throws(PoolIOError) {
        let file = Self.absolute(path)
        try perform("remove", path) { nfs throws(NFSError) in try Self.removeIfPresent(nfs, file) }
    }

    // MARK: - Context and errors

    private func perform<T>(
        _ operation: String, _ path: String, _ body: (NFSContext) throws(NFSError) -> T
    ) throws(PoolIOError) -> T {
        try performKnowingRetry(operation, path) { nfs, _ throws(NFSError) in try body(nfs) }
    }

    /// Runs `body` on a usable context, mounting one if needed; closes a context that failed for good, and
    /// retries once on a fresh one when a context from an earlier call turns out spent (see the type's notes).
    /// `body` learns whether it is the retry.
    private func performKnowingRetry<T>(
        _ operation: String, _ path: String, _ body: (NFSContext, Bool) throws(NFSError) -> T
    ) throws(PoolIOError) -> T {
        var isRetry = false
        while true {
            let reused = context != nil
            let nfs = try mountedContext()
            do throws(NFSError) {
                return try body(nfs, isRetry)
            } catch {
                let spent = error.requiresNewContext || !nfs.isUsable
                if spent { close() }
                if spent && reused && !isRetry && !error.isTimeout {
                    isRetry = true
                    continue
                }
                throw poolError(operation, path, error)
            }
        }
    }

    private func mountedContext() throws(PoolIOError) -> NFSContext {
        if let context, context.isUsable { return context }
        close()
        let mounted: NFSContext
        do throws(NFSError) {
            mounted = try NFSContext(url: url, timeout: callTimeout)
        } catch {
            let name = Self.errnoName(error)
            let missingExport = error.isNotFound
            throw PoolIOError(
                operation: "mount", path: root,
                message: "libnfs mount failed: \(error.message) (\(name))"
                    + (missingExport ? " — check the export path" : ""),
                errno: missingExport ? nil : Self.errnoValue(error))
        }
        context = mounted
        mountCount += 1
        removeOrphanedTemporaries(mounted)
        return mounted
    }

    /// Removes the temporary file of a failed `replaceAtomically`: now if the context still works, else once the
    /// next call has mounted afresh.
    private func discardTemporary(_ temporary: String) {
        if let context, context.isUsable, (try? Self.removeIfPresent(context, temporary)) != nil { return }
        if context?.isUsable == false { close() }
        if orphanedTemporaries.count < Self.maxOrphans, !orphanedTemporaries.contains(temporary) {
            orphanedTemporaries.append(temporary)
        }
    }

    private func removeOrphanedTemporaries(_ nfs: NFSContext) {
        guard !orphanedTemporaries.isEmpty else { return }
        var remaining: [String] = []
        for temporary in orphanedTemporaries {
            do throws(NFSError) {
                try Self.removeIfPresent(nfs, temporary)
            } catch {
                // Keep it for the next mount only when the connection failed; the server's "no" is final.
                if error.requiresNewContext { remaining.append(temporary) }
            }
        }
        orphanedTemporaries = remaining
    }

    private func poolError(_ operation: String, _ path: String, _ error: NFSError) -> PoolIOError {
        var message = "libnfs \(error.operation) failed: \(error.message) (\(Self.errnoName(error)))"
        if error.requiresNewContext { message += " — connection closed; the next call mounts the export again" }
        return PoolIOError(operation: operation, path: display(path), message: message, errno: Self.errnoValue(error))
    }

    private func display(_ path: String) -> String { path.isEmpty ? root : "\(root)/\(path)" }

    private static func errnoValue(_ error: NFSError) -> Int32 {
        error.isTimeout ? ETIMEDOUT : -error.code
    }

    private static func errnoName(_ error: NFSError) -> String {
        let value = errnoValue(error)
        switch value {
        case EINTR: return "EINTR"
        case EFBIG: return "EFBIG"
        case ECONNREFUSED: return "ECONNREFUSED"
        case ECONNRESET: return "ECONNRESET"
        case EBADF: return "EBADF"
        case EINVAL: return "EINVAL"
        case EISDIR: return "EISDIR"
        case ENOTEMPTY: return "ENOTEMPTY"
        default: return DirectoryPoolFiles.errnoName(value)
        }
    }

    /// Pool paths are relative to the pool's root; libnfs's are absolute within the export.
    private static func absolute(_ path: String) -> String { path.hasPrefix("/") ? path : "/\(path)" }

    private static func lstatIfPresent(_ nfs: NFSContext, _ file: String) throws(NFSError) -> NFSFileStat? {
        do throws(NFSError) {
            return try nfs.lstat(file)
        } catch {
            if error.isNotFound { return nil }
            throw error
        }
    }

    private static func removeIfPresent(_ nfs: NFSContext, _ file: String) throws(NFSError) {
        do throws(NFSError) {
            try nfs.unlink(file)
        } catch {
            if !error.isNotFound { throw error }
        }
    }
}
