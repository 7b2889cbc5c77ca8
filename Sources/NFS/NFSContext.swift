internal import CLibNFS
internal import Glibc

/// One mounted libnfs context: synchronous calls to one NFS export, each bounded by `timeout`.
///
/// **Not thread-safe, not `Sendable`.** libnfs 4.0.0 (Debian 12) has no thread-safe API: a context must
/// only ever be used by one thread at a time, and every call blocks that thread for up to `timeout`
/// (per RPC; `readFile`/`writeFile` make a handful of RPCs). Never call it from Swift's cooperative pool:
/// use ``NFSClient``, which owns one dedicated thread per context.
///
/// **Recovery.** When a call fails with an error whose ``NFSError/requiresNewContext`` is true (timeout,
/// lost connection, NFSv4 state the server dropped), the context is spent: every later call throws that
/// error again without touching the network. Close it and mount a new one.
///
/// **NFSv4 with libnfs 4.0.0** (its v4 support is declared unfinished): mount, stat, lstat, read, write,
/// rename, unlink, mkdir and directory listings work on a fresh context, with these work-arounds inside:
/// files are created with `nfs_open2` (a `nfs_creat` handle cannot be written: `NFS4ERR_OPENMODE`); an
/// `O_CREAT` open of an existing file fails with `EEXIST`, so an overwrite reopens it with `O_TRUNC`; a
/// WRITE over ~3.9 KiB fails to encode, so writes go in 2 KiB pieces; the create mode is ignored, so the
/// mode is set afterwards; an exclusive create leaves its verifier in the times of an empty file, so the
/// size is set to reset them. `nfs_utimes` crashes over NFSv4 and is not offered. The lease is never
/// renewed: once the context has gone longer than the server's lease without an OPEN, every OPEN fails
/// with `NFS4ERR_EXPIRED`; after a server restart every call fails with `nfs_service failed`. Both surface
/// as errors that require a new context. NFSv3 has none of these problems and is what the sidecar relies on.
public final class NFSContext {
    public let url: NFSURL
    /// The per-RPC timeout given at creation (libnfs counts whole seconds; it is rounded up).
    public let timeout: Duration

    /// `struct nfs_context *`; nil once closed.
    private var handle: OpaquePointer?

    /// The first error that made this context unusable.
    public private(set) var failure: NFSError?

    /// Batch reads that ended with calls still in flight: libnfs holds pointers into them until the context is
    /// destroyed (see ``NFSPipelinedRead``), so they are released only after that, by `close()`.
    private var abandonedReads: [NFSPipelinedRead] = []

    /// Creates a context, sets its timeout and version, and mounts `url.export` from `url.server`.
    /// The mount itself is bounded by `timeout` too.
    public init(url: NFSURL, timeout: Duration) throws(NFSError) {
        self.url = url
        self.timeout = timeout
        guard let context = nfs_init_context() else {
            throw NFSError(operation: "context", path: nil, code: -ENOMEM, message: "nfs_init_context failed")
        }
        // Parsed only for its side effects: the URL arguments (nfsport, mountport, version) are the only way
        // libnfs 4.0.0 takes non-default ports; server and export come from our own parse.
        guard let parsed = nfs_parse_url_dir(context, url.libnfsURL) else {
            let error = Self.error(context, operation: "mount", path: url.export, code: -EINVAL)
            nfs_destroy_context(context)
            throw error
        }
        nfs_destroy_url(parsed)
        // Before mounting: without a timeout a call to a frozen server blocks forever.
        nfs_set_timeout(context, Self.milliseconds(timeout))
        let versionResult = nfs_set_version(context, Int32(url.version.rawValue))
        guard versionResult == 0 else {
            let error = Self.error(context, operation: "mount", path: url.export, code: versionResult)
            nfs_destroy_context(context)
            throw error
        }
        // Listings must show what is on the server now, not what libnfs saw earlier.
        nfs_set_dircache(context, 0)
        // `writeFile`'s mode is the mode the file gets.
        _ = nfs_umask(context, 0)
        let mounted = nfs_mount(context, url.server, url.export)
        guard mounted == 0 else {
            let error = Self.error(context, operation: "mount", path: url.export, code: mounted)
            nfs_destroy_context(context)
            throw error
        }
        handle = context
    }

    deinit {
        close()
    }

    /// Whether the context is mounted and has not failed in a way that requires a new one.
    public var isUsable: Bool { handle != nil && failure == nil }

    /// Releases the context (`nfs_destroy_context`). Idempotent; never blocks on the network.
    public func close() {
        if let handle {
            nfs_destroy_context(handle)
            self.handle = nil
        }
        abandonedReads.removeAll()
    }

    // MARK: - Calls

    /// Attributes of `path`, following a final symbolic link.
    public func stat(_ path: String) throws(NFSError) -> NFSFileStat {
        let context = try usableContext("stat", path)
        var st = nfs_stat_64()
        let rc = nfs_stat64(context, path, &st)
        guard rc == 0 else { throw fail(context, "stat", path, rc) }
        return Self.fileStat(st)
    }

    /// Attributes of `path` itself, also when it is a symbolic link.
    public func lstat(_ path: String) throws(NFSError) -> NFSFileStat {
        let context = try usableContext("lstat", path)
        var st = nfs_stat_64()
        let rc = nfs_lstat64(context, path, &st)
        guard rc == 0 else { throw fail(context, "lstat", path, rc) }
        return Self.fileStat(st)
    }

    /// The whole content of `path`, which must hold at most `maxBytes` bytes.
    ///
    /// Never reads more than `maxBytes + 1` bytes: a longer file (also one that grows while it is read)
    /// throws an error with ``NFSError/isFileTooLarge`` (`-EFBIG`).
    public func readFile(_ path: String, maxBytes: Int) throws(NFSError) -> [UInt8] {
        precondition(maxBytes >= 0, "maxBytes must not be negative")
        let context = try usableContext("read", path)
        var fileHandle: OpaquePointer?
        let opened = nfs_open(context, path, O_RDONLY, &fileHandle)
        guard opened == 0, let fileHandle else { throw fail(context, "open", path, opened) }
        defer { closeFile(context, fileHandle, path) }

        var st = nfs_stat_64()
        let statted = nfs_fstat64(context, fileHandle, &st)
        guard statted == 0 else { throw fail(context, "fstat", path, statted) }
        if st.nfs_size > UInt64(maxBytes) {
            throw tooLarge(path, size: "\(st.nfs_size) bytes", maxBytes: maxBytes)
        }
        guard let bytes = try readOpened(context, fileHandle, path, size: st.nfs_size, maxBytes: maxBytes) else {
            throw tooLarge(path, size: "more than \(maxBytes) bytes", maxBytes: maxBytes)
        }
        return bytes
    }

    /// The whole content of `path` if it is a regular file of at most `maxBytes` bytes, never through a symbolic
    /// link as its last component (`O_NOFOLLOW`: libnfs refuses it with `ELOOP` instead of reading it; as with
    /// open(2), links among the folders above it are followed). A directory or special file is opened but never
    /// read.
    ///
    /// The cheapest read of a small file libnfs 4.0.0 offers: the path's LOOKUPs and an ACCESS (the open), one
    /// GETATTR (type and size), and one READ sized to the file (its short answer at the end of the file ends the
    /// read); no separate `lstat`, which would look the path up a second time. Never reads more than
    /// `maxBytes + 1` bytes. A missing file throws (``NFSError/isNotFound``).
    public func readRegularFile(_ path: String, maxBytes: Int) throws(NFSError) -> NFSRegularFileRead {
        precondition(maxBytes >= 0, "maxBytes must not be negative")
        let context = try usableContext("read", path)
        var fileHandle: OpaquePointer?
        let opened = nfs_open(context, path, O_RDONLY | O_NOFOLLOW, &fileHandle)
        // ELOOP: a symbolic link; EISDIR: a directory (NFSv4 refuses to OPEN one).
        if opened == -ELOOP || opened == -EISDIR { return .notRegularFile }
        guard opened == 0, let fileHandle else { throw fail(context, "open", path, opened) }
        defer { closeFile(context, fileHandle, path) }

        var st = nfs_stat_64()
        let statted = nfs_fstat64(context, fileHandle, &st)
        guard statted == 0 else { throw fail(context, "fstat", path, statted) }
        guard UInt32(truncatingIfNeeded: st.nfs_mode) & 0o170000 == 0o100000 else { return .notRegularFile }
        if st.nfs_size > UInt64(maxBytes) { return .tooLarge(st.nfs_size) }
        guard let bytes = try readOpened(context, fileHandle, path, size: st.nfs_size, maxBytes: maxBytes) else {
            return .tooLarge(UInt64(maxBytes) + 1)
        }
        return .bytes(bytes)
    }

    /// The files `names` of directory `folder`, each read as ``readRegularFile(_:maxBytes:)`` reads `folder/name`;
    /// the results are in the order of `names`. Over NFSv3 several times cheaper than one call per file.
    ///
    /// **Contract.** Each file's own outcome is its result: `.success`, or `.failure` with the error the per-file read
    /// would have thrown (a missing file: ``NFSError/isNotFound``). The call throws only when the context fails
    /// (timeout, lost connection: ``NFSError/requiresNewContext``); then no file's result is given and the context is
    /// spent, as after any such failure.
    ///
    /// **NFSv3.** The folder is opened once per call (its path's LOOKUPs and an ACCESS, `O_NOFOLLOW` as for a file)
    /// for its file handle; not kept longer, so a folder replaced or renamed is never read through
    /// an old handle. Then every name gets a LOOKUP in that folder and, when it is a regular file of at most
    /// `maxBytes`, one READ by the handle the LOOKUP returned, sized one byte past the file; up to
    /// ``NFSPipelinedRead/window`` calls are in flight at once on the context's connection, a READ queued as soon as
    /// its LOOKUP answers. About two RPCs per file instead of six, and one poll loop for all of them.
    ///
    /// The LOOKUP's attributes decide as the per-file read's GETATTR does: a link, directory or special file is
    /// `.notRegularFile` (never followed, never read), a larger file `.tooLarge`; never more than `maxBytes + 1`
    /// bytes are read. What the pipeline cannot decide exactly as the per-file read would, that read decides, for
    /// that file alone: a folder that cannot be opened (missing, a link: then every file), a name that is not a
    /// single path component, a LOOKUP error other than NFS3ERR_NOENT or an answer without attributes, a READ error
    /// (NFS3ERR_STALE: the file was replaced between LOOKUP and READ), an answer short of the end of the file or
    /// one that finds it grown. The one difference: the pipeline asks no ACCESS, so a file we may not read is
    /// refused by its READ and then read per-file (which names the refusal), but a non-regular or too large one is
    /// reported as such without that check.
    ///
    /// **Time.** The pipelined calls together are bounded by the context's `timeout` (rounded up to whole seconds,
    /// as libnfs does): a server that has not answered all of them by then fails the call with a timeout and the
    /// context is spent. The folder's open and each per-file read have libnfs's own timeout per RPC.
    ///
    /// **NFSv4** contexts read file by file (libnfs 4.0.0 has no raw NFSv4 calls we could pipeline).
    public func readRegularFiles(
        inFolder folder: String, names: [String], maxBytes: Int
    ) throws(NFSError) -> [Result<NFSRegularFileRead, NFSError>] {
        precondition(maxBytes >= 0, "maxBytes must not be negative")
        _ = try usableContext("read", folder)
        guard !names.isEmpty else { return [] }
        let folderHandle = url.version == .v3 ? try directoryHandleForBatch(folder) : nil
        return try readRegularFiles(inFolder: folder, handle: folderHandle, names: names, maxBytes: maxBytes)
    }

    /// ``readRegularFiles(inFolder:names:maxBytes:)`` with the folder's NFSv3 file handle already known (from
    /// ``directoryHandleForBatch(_:)``); nil: every file the per-file way. Internal so that tests can freeze the
    /// server between the two steps.
    func readRegularFiles(
        inFolder folder: String, handle folderHandle: [UInt8]?, names: [String], maxBytes: Int
    ) throws(NFSError) -> [Result<NFSRegularFileRead, NFSError>] {
        let context = try usableContext("read", folder)
        let prefix = folder.hasSuffix("/") ? folder : folder + "/"
        var outcomes: [NFSPipelinedRead.Outcome]
        if let folderHandle {
            let pipeline = NFSPipelinedRead(
                rpc: nfs_get_rpc_context(context), folderHandle: folderHandle, names: names, maxBytes: maxBytes,
                readMax: Self.chunkSize(nfs_get_readmax(context)))
            pipeline.run(until: .now + .milliseconds(Self.milliseconds(timeout)))
            if let broken = pipeline.failure {
                if pipeline.inFlight > 0 { abandonedReads.append(pipeline) }
                let error = NFSError(operation: "read", path: folder, code: broken.code, message: broken.message)
                // Calls may still be in flight, and the server may answer them late: never reuse this connection.
                if failure == nil { failure = error }
                throw error
            }
            outcomes = pipeline.outcomes
        } else {
            outcomes = Array(repeating: .perFile, count: names.count)
        }
        var results: [Result<NFSRegularFileRead, NFSError>] = []
        results.reserveCapacity(names.count)
        for (index, outcome) in outcomes.enumerated() {
            switch outcome {
            case .read(let read):
                results.append(.success(read))
            case .missing:
                let error = NFSError(
                    operation: "open", path: prefix + names[index], code: -ENOENT, message: "LOOKUP: NFS3ERR_NOENT")
                results.append(.failure(error))
            case .perFile:
                results.append(try readForBatch(prefix + names[index], maxBytes: maxBytes))
            }
        }
        return results
    }

    /// The NFSv3 file handle of directory `folder`, opened with `O_NOFOLLOW` (not through a link as its last part); nil
    /// when it cannot be opened for an answer about the file system (missing, a link, refused): then every file
    /// goes the per-file way, which says why. Throws when the context fails.
    func directoryHandleForBatch(_ folder: String) throws(NFSError) -> [UInt8]? {
        let context = try usableContext("open", folder)
        var fileHandle: OpaquePointer?
        let opened = nfs_open(context, folder, O_RDONLY | O_NOFOLLOW, &fileHandle)
        guard opened == 0, let fileHandle else {
            let error = fail(context, "open", folder, opened)
            if error.requiresNewContext { throw error }
            return nil
        }
        defer { closeFile(context, fileHandle, folder) }
        // libnfs 4.0.0 declares `struct nfs_fh` only in its private headers; it is `{ int len; char *val; }`, the
        // layout of `nfs_fh3` (`{ u_int data_len; char *data_val; }`). An NFSv3 handle is 1 to 64 bytes.
        guard let raw = nfs_get_fh(fileHandle) else { return nil }
        let handle = UnsafeRawPointer(raw).load(as: nfs_fh3.self)
        let length = Int(handle.data.data_len)
        guard let value = handle.data.data_val, (1...64).contains(length) else { return nil }
        return [UInt8](UnsafeRawBufferPointer(start: value, count: length))
    }

    /// One file of a batch read the per-file way: the server's answer is the file's result; a failed context
    /// fails the batch.
    private func readForBatch(_ path: String, maxBytes: Int) throws(NFSError) -> Result<NFSRegularFileRead, NFSError> {
        do throws(NFSError) {
            return .success(try readRegularFile(path, maxBytes: maxBytes))
        } catch {
            if error.requiresNewContext || failure != nil { throw error }
            return .failure(error)
        }
    }

    /// Reads an open file of `size` bytes (as GETATTR said) to its end; nil when it holds more than `maxBytes`.
    ///
    /// Asks for one byte more than `size`: a file that did not change answers with fewer bytes than asked, which
    /// ends the read without another READ; a file that grew is read on, up to `maxBytes + 1` bytes.
    private func readOpened(
        _ context: OpaquePointer, _ fileHandle: OpaquePointer, _ path: String, size: UInt64, maxBytes: Int
    ) throws(NFSError) -> [UInt8]? {
        let limit = maxBytes < Int.max ? maxBytes + 1 : Int.max
        let expected = Int(min(size, UInt64(maxBytes)))
        var buffer = [UInt8](repeating: 0, count: min(limit, expected + 1))
        var total = 0
        let chunk = Self.chunkSize(nfs_get_readmax(context))
        while total < limit {
            if total == buffer.count {
                buffer.append(contentsOf: repeatElement(0, count: min(limit - total, max(total, 4096))))
            }
            let count = min(buffer.count - total, chunk)
            let got = buffer.withUnsafeMutableBytes { raw in
                nfs_pread(context, fileHandle, UInt64(total), UInt64(count), raw.baseAddress! + total)
            }
            guard got >= 0 else { throw fail(context, "read", path, got) }
            if got == 0 { break }
            total += Int(got)
            // A short answer once the expected size is in: the end of the file.
            if Int(got) < count && total >= expected { break }
        }
        if total > maxBytes { return nil }
        buffer.removeSubrange(total...)
        return buffer
    }

    /// Creates or truncates `path`, writes `bytes`, flushes them to stable storage (COMMIT) and closes.
    ///
    /// - Parameters:
    ///   - mode: the permission bits the file has afterwards (also when it existed already).
    ///   - exclusiveCreate: fail with `EEXIST` (``NFSError/isAlreadyExisting``) when `path` exists.
    public func writeFile(
        _ path: String,
        _ bytes: [UInt8],
        mode: UInt32 = 0o644,
        exclusiveCreate: Bool = false
    )
        throws(NFSError)
    {
        let context = try usableContext("write", path)
        // nfs_open2 with O_CREAT, not nfs_creat: over NFSv4, libnfs 4.0.0's creat handle cannot be written
        // (NFS4ERR_OPENMODE).
        var flags = O_CREAT | O_RDWR | O_TRUNC
        if exclusiveCreate { flags |= O_EXCL }
        var fileHandle: OpaquePointer?
        var opened = nfs_open2(context, path, flags, Int32(bitPattern: mode & 0o7777), &fileHandle)
        if opened == -EEXIST && !exclusiveCreate && url.version == .v4 {
            // libnfs 4.0.0 creates NFSv4 files exclusively even without O_EXCL: open the existing file instead.
            opened = nfs_open(context, path, O_RDWR | O_TRUNC, &fileHandle)
        }
        guard opened == 0, let fileHandle else { throw fail(context, "open", path, opened) }
        var closed = false
        defer { if !closed { closeFile(context, fileHandle, path) } }

        // libnfs 4.0.0 ignores the mode of a non-exclusive NFSv4 create (the file gets 0600).
        var st = nfs_stat_64()
        let statted = nfs_fstat64(context, fileHandle, &st)
        guard statted == 0 else { throw fail(context, "fstat", path, statted) }
        if UInt32(truncatingIfNeeded: st.nfs_mode) & 0o7777 != mode & 0o7777 {
            let changed = nfs_fchmod(context, fileHandle, Int32(bitPattern: mode & 0o7777))
            guard changed == 0 else { throw fail(context, "chmod", path, changed) }
        }

        // libnfs 4.0.0 encodes an NFSv4 COMPOUND into a 4 KiB buffer: a WRITE of more than ~3.9 KiB fails to
        // encode ("ZDR error: Failed to encode COMPOUND4args"), so NFSv4 writes go in 2 KiB pieces.
        let chunk = url.version == .v4 ? 2048 : Self.chunkSize(nfs_get_writemax(context))
        var offset = 0
        while offset < bytes.count {
            let count = min(bytes.count - offset, chunk)
            let written = bytes.withUnsafeBytes { raw in
                nfs_pwrite(context, fileHandle, UInt64(offset), UInt64(count), raw.baseAddress! + offset)
            }
            guard written >= 0 else { throw fail(context, "write", path, written) }
            guard written > 0 else {
                throw NFSError(operation: "write", path: path, code: -EIO, message: "the server accepted 0 bytes")
            }
            offset += Int(written)
        }
        if bytes.isEmpty && exclusiveCreate && url.version == .v4 {
            // An NFSv4 exclusive create stores its verifier in the times, and libnfs 4.0.0 does not reset them;
            // a write does. Setting the size sets the times too.
            let truncated = nfs_ftruncate(context, fileHandle, 0)
            guard truncated == 0 else { throw fail(context, "truncate", path, truncated) }
        }
        let synced = nfs_fsync(context, fileHandle)
        guard synced == 0 else { throw fail(context, "fsync", path, synced) }
        closed = true
        let closeResult = nfs_close(context, fileHandle)
        guard closeResult == 0 else { throw fail(context, "close", path, closeResult) }
    }

    /// Renames `from` to `to`, replacing `to` if it exists (atomic on the server).
    public func rename(_ from: String, _ to: String) throws(NFSError) {
        let context = try usableContext("rename", from)
        let rc = nfs_rename(context, from, to)
        guard rc == 0 else { throw fail(context, "rename", "\(from) -> \(to)", rc) }
    }

    /// Removes the file `path`.
    public func unlink(_ path: String) throws(NFSError) {
        let context = try usableContext("unlink", path)
        let rc = nfs_unlink(context, path)
        guard rc == 0 else { throw fail(context, "unlink", path, rc) }
    }

    /// Creates the directory `path`; succeeds when a directory of that name exists already.
    public func mkdir(_ path: String, mode: UInt32 = 0o755) throws(NFSError) {
        let context = try usableContext("mkdir", path)
        let rc = nfs_mkdir2(context, path, Int32(bitPattern: mode & 0o7777))
        if rc == 0 { return }
        let error = fail(context, "mkdir", path, rc)
        guard error.isAlreadyExisting else { throw error }
        if try stat(path).isDirectory { return }
        throw NFSError(operation: "mkdir", path: path, code: -EEXIST, message: "exists and is not a directory")
    }

    /// The entries of directory `path`, without `.` and `..`, in the server's order.
    public func listDirectory(_ path: String) throws(NFSError) -> [NFSDirEntry] {
        let context = try usableContext("opendir", path)
        var directory: OpaquePointer?
        let rc = nfs_opendir(context, path, &directory)
        guard rc == 0, let directory else { throw fail(context, "opendir", path, rc) }
        // opendir fetched the whole listing; readdir and closedir never touch the network.
        defer { nfs_closedir(context, directory) }
        var entries: [NFSDirEntry] = []
        while let entry = nfs_readdir(context, directory) {
            let name = String(cString: entry.pointee.name)
            if name == "." || name == ".." { continue }
            entries.append(Self.dirEntry(name: name, entry.pointee))
        }
        return entries
    }

    // MARK: - Helpers

    private func usableContext(_ operation: String, _ path: String?) throws(NFSError) -> OpaquePointer {
        if let failure { throw failure }
        guard let handle else {
            throw NFSError(operation: operation, path: path, code: -EBADF, message: "the NFS context is closed")
        }
        if let path, path.isEmpty || path.utf8.contains(0) {
            throw NFSError(operation: operation, path: path, code: -EINVAL, message: "empty path or NUL in path")
        }
        return handle
    }

    /// The error of a failed call; a context it makes unusable is marked so.
    private func fail(_ context: OpaquePointer, _ operation: String, _ path: String?, _ code: Int32) -> NFSError {
        let error = Self.error(context, operation: operation, path: path, code: code)
        if error.requiresNewContext, failure == nil { failure = error }
        return error
    }

    /// Closes an open file after another error (or after reading): the outcome is not the caller's news.
    private func closeFile(_ context: OpaquePointer, _ fileHandle: OpaquePointer, _ path: String) {
        // On a spent NFSv4 context, CLOSE would wait out another timeout; leaking the small handle is cheaper.
        if failure != nil && url.version == .v4 { return }
        let rc = nfs_close(context, fileHandle)
        if rc != 0 { _ = fail(context, "close", path, rc) }
    }

    private func tooLarge(_ path: String, size: String, maxBytes: Int) -> NFSError {
        NFSError(operation: "read", path: path, code: -EFBIG, message: "file has \(size), limit is \(maxBytes)")
    }

    private static func error(_ context: OpaquePointer, operation: String, path: String?, code: Int32) -> NFSError {
        let message = nfs_get_error(context).map { String(cString: $0) } ?? ""
        return NFSError(
            operation: operation,
            path: path,
            code: code < 0 ? code : -EIO,
            message: message.isEmpty ? "libnfs returned \(code)" : message
        )
    }

    /// libnfs counts timeouts in whole seconds ("must currently be set in whole seconds"): round up, at least 1 s.
    static func milliseconds(_ timeout: Duration) -> Int32 {
        let (seconds, attoseconds) = timeout.components
        let whole = max(1, seconds + (attoseconds > 0 ? 1 : 0))
        return Int32(clamping: min(whole, Int64(Int32.max / 1000)) * 1000)
    }

    private static func chunkSize(_ serverMaximum: UInt64) -> Int {
        // libnfs 4.0.0 reports 0 for NFSv4; 64 KiB is safe for any server.
        serverMaximum == 0 ? 64 * 1024 : Int(min(serverMaximum, 1024 * 1024))
    }

    private static func fileStat(_ st: nfs_stat_64) -> NFSFileStat {
        NFSFileStat(
            size: st.nfs_size,
            mtimeSeconds: Int64(bitPattern: st.nfs_mtime),
            mtimeNanoseconds: Int32(truncatingIfNeeded: st.nfs_mtime_nsec),
            mode: UInt32(truncatingIfNeeded: st.nfs_mode)
        )
    }

    private static func dirEntry(name: String, _ entry: nfsdirent) -> NFSDirEntry {
        // `mode` carries the type bits when the server sent them; `type` is the NFSv3 ftype (NF3REG 1, NF3DIR 2,
        // NF3LNK 5), which libnfs also fills for NFSv4.
        let typeBits = entry.mode & 0o170000
        let isDirectory = typeBits != 0 ? typeBits == 0o040000 : entry.type == 2
        let isRegular = typeBits != 0 ? typeBits == 0o100000 : entry.type == 1
        let isSymlink = typeBits != 0 ? typeBits == 0o120000 : entry.type == 5
        return NFSDirEntry(
            name: name,
            isDirectory: isDirectory,
            isRegular: isRegular,
            isSymlink: isSymlink,
            size: entry.size,
            mtimeSeconds: Int64(entry.mtime.tv_sec),
            mtimeNanoseconds: Int32(truncatingIfNeeded: entry.mtime_nsec)
        )
    }
}

@available(*, unavailable, message: "libnfs 4.0.0 is not thread-safe: use NFSClient to share access")
extension NFSContext: Sendable {}
