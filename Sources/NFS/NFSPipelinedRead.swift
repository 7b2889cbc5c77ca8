internal import CLibNFS
internal import Glibc

/// NFSv3 LOOKUPs and READs of many files of one folder with several calls in flight on a mounted context's
/// connection: the engine of ``NFSContext/readRegularFiles(inFolder:names:maxBytes:)``.
///
/// libnfs's synchronous calls wait for each answer before sending the next call: a write, a poll and a read
/// system call per RPC. Here every call is queued first (libnfs's raw API), the context's socket is driven by
/// our own poll loop (`rpc_get_fd`, `rpc_which_events`, `rpc_service`), and a READ is queued from the callback of
/// its LOOKUP, so one pass of the loop sends and answers many calls at once.
///
/// Decides only what it can decide exactly as the per-file read would; everything else is left as
/// ``Outcome/perFile`` for that read to do (see `lookupAnswered` and `readAnswered`).
///
/// **Lifetime.** Every call in flight holds a `private_data` pointer into `tags`, and libnfs calls back when
/// the call is answered, times out, or its context is destroyed (`RPC_STATUS_CANCEL`). A run that ends with
/// calls in flight (a timeout, a lost connection) therefore leaves this object referenced by libnfs: it must
/// outlive the context. `NFSContext` keeps it until `close()` has destroyed the context.
///
/// Not thread-safe: used on the context's thread only, like the context.
final class NFSPipelinedRead {
    enum Outcome {
        case read(NFSRegularFileRead)
        /// NFS3ERR_NOENT from the LOOKUP.
        case missing
        /// Not decided here: read this file the per-file way.
        case perFile
    }

    /// Why the run failed as a whole; the context is spent.
    struct Failure {
        /// Negative errno, as in ``NFSError/code``.
        var code: Int32
        var message: String
    }

    /// Calls in flight at most. A chunk of the peer monitor (64 names) goes out at once; a longer list is fed
    /// as answers come back, so libnfs's queues stay small.
    static let window = 64

    private(set) var outcomes: [Outcome]
    private(set) var inFlight = 0
    private(set) var failure: Failure?

    private let rpc: OpaquePointer
    private let names: [String]
    private let maxBytes: Int
    /// The largest READ the server takes.
    private let readMax: Int
    /// The folder's file handle, for every LOOKUP's arguments (libnfs copies them into the call).
    private let folderHandle: UnsafeMutableBufferPointer<CChar>
    /// `private_data` of each name's calls: this object and the name's index.
    private let tags: UnsafeMutablePointer<Tag>
    /// The next name to LOOKUP.
    private var next = 0

    private struct Tag {
        let owner: Unmanaged<NFSPipelinedRead>
        let index: Int
    }

    /// - Parameters:
    ///   - rpc: the mounted context's `struct rpc_context *`.
    ///   - folderHandle: the folder's NFSv3 file handle.
    ///   - readMax: the server's largest READ (`nfs_get_readmax`).
    init(rpc: OpaquePointer, folderHandle: [UInt8], names: [String], maxBytes: Int, readMax: Int) {
        self.rpc = rpc
        self.names = names
        self.maxBytes = maxBytes
        self.readMax = max(1, readMax)
        self.outcomes = Array(repeating: .perFile, count: names.count)
        self.folderHandle = .allocate(capacity: folderHandle.count)
        _ = self.folderHandle.initialize(from: folderHandle.lazy.map { CChar(bitPattern: $0) })
        self.tags = .allocate(capacity: max(1, names.count))
        for index in names.indices {
            (tags + index).initialize(to: Tag(owner: .passUnretained(self), index: index))
        }
    }

    deinit {
        tags.deinitialize(count: names.count)
        tags.deallocate()
        folderHandle.deallocate()
    }

    /// Sends every call and services the connection until all are answered, or until `deadline` (then
    /// ``failure`` is a timeout), or until the connection fails.
    func run(until deadline: ContinuousClock.Instant) {
        issueLookups()
        var mayWriteAtOnce = true
        while inFlight > 0 && failure == nil {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else {
                failure = Failure(
                    code: -ETIMEDOUT,
                    message: "timed out: \(inFlight) of \(names.count) pipelined LOOKUP/READ calls unanswered")
                return
            }
            let events = Int16(truncatingIfNeeded: rpc_which_events(rpc))
            // Calls queued (by the callbacks of the answers just read) on a connected socket: send them now, without
            // asking poll first, which would answer at once and cost a system call per pass. libnfs 4.0.0 asks for
            // POLLIN only once connected (while connecting it asks for POLLOUT alone), and a socket that has no room
            // answers EAGAIN and keeps the calls queued; the next pass polls, so this can never spin.
            if mayWriteAtOnce && events & Int16(POLLIN) != 0 && events & Int16(POLLOUT) != 0 {
                mayWriteAtOnce = false
                if rpc_service(rpc, POLLOUT) < 0 {
                    failure = Failure(code: -EIO, message: "rpc_service failed: \(rpcError())")
                    return
                }
                continue
            }
            mayWriteAtOnce = true
            var descriptor = pollfd(fd: rpc_get_fd(rpc), events: events, revents: 0)
            let ready = poll(&descriptor, 1, Self.pollMilliseconds(remaining))
            if ready < 0 {
                let number = errno
                if number == EINTR { continue }
                failure = Failure(code: -number, message: "poll failed: \(String(cString: strerror(number)))")
                return
            }
            if ready == 0 { continue }
            if rpc_service(rpc, Int32(descriptor.revents)) < 0 {
                failure = Failure(code: -EIO, message: "rpc_service failed: \(rpcError())")
                return
            }
        }
    }

    // MARK: - Calls and answers

    /// Queues LOOKUPs until the window is full or every name has one.
    private func issueLookups() {
        while inFlight < Self.window && next < names.count && failure == nil {
            let index = next
            next += 1
            // A name LOOKUP cannot take (it would not resolve a path the way the per-file read does).
            guard Self.isPlainName(names[index]) else { continue }
            let queued = names[index].withCString { name in
                var arguments = LOOKUP3args()
                arguments.what.dir.data.data_len = UInt32(folderHandle.count)
                arguments.what.dir.data.data_val = folderHandle.baseAddress
                arguments.what.name = UnsafeMutablePointer(mutating: name)
                return rpc_nfs3_lookup_async(
                    rpc,
                    { _, status, data, privateData in
                        guard let tag = privateData?.assumingMemoryBound(to: Tag.self).pointee else { return }
                        tag.owner.takeUnretainedValue().lookupAnswered(tag.index, status, data)
                    },
                    &arguments,
                    tags + index)
            }
            guard queued == 0 else {
                failure = Failure(code: -EIO, message: "could not queue LOOKUP: \(rpcError())")
                return
            }
            inFlight += 1
        }
    }

    /// A LOOKUP's answer; the reply belongs to libnfs and is freed when this returns.
    ///
    /// Its attributes decide as the per-file read's GETATTR does: not a regular file (a symbolic link is never
    /// followed) → `.notRegularFile`; larger than `maxBytes` → `.tooLarge`; else one READ by the returned handle,
    /// sized one byte past the file, queued at once. NFS3ERR_NOENT → missing. Any other error, or an answer
    /// without attributes → per-file.
    fileprivate func lookupAnswered(_ index: Int, _ status: Int32, _ data: UnsafeMutableRawPointer?) {
        inFlight -= 1
        defer { issueLookups() }
        guard status == RPC_STATUS_SUCCESS, let data else {
            rpcFailed("LOOKUP", status, data)
            return
        }
        let reply = data.assumingMemoryBound(to: LOOKUP3res.self)
        if reply.pointee.status == NFS3ERR_NOENT {
            outcomes[index] = .missing
            return
        }
        guard reply.pointee.status == NFS3_OK else { return }
        let found = reply.pointee.LOOKUP3res_u.resok
        guard found.obj_attributes.attributes_follow != 0 else { return }
        let attributes = found.obj_attributes.post_op_attr_u.attributes
        guard attributes.type == NF3REG else {
            outcomes[index] = .read(.notRegularFile)
            return
        }
        guard attributes.size <= UInt64(maxBytes) else {
            outcomes[index] = .read(.tooLarge(attributes.size))
            return
        }
        var arguments = READ3args()
        arguments.file = found.object
        arguments.offset = 0
        arguments.count = UInt32(clamping: min(attributes.size, UInt64(readMax) - 1) + 1)
        let queued = rpc_nfs3_read_async(
            rpc,
            { _, status, data, privateData in
                guard let tag = privateData?.assumingMemoryBound(to: Tag.self).pointee else { return }
                tag.owner.takeUnretainedValue().readAnswered(tag.index, status, data)
            },
            &arguments,
            tags + index)
        guard queued == 0 else {
            failure = Failure(code: -EIO, message: "could not queue READ: \(rpcError())")
            return
        }
        inFlight += 1
    }

    /// A READ's answer; the reply (and its data) belongs to libnfs and is freed when this returns, so the bytes
    /// are copied here.
    ///
    /// More than `maxBytes` bytes → `.tooLarge(maxBytes + 1)` (the file grew), as the per-file read says. An answer
    /// that reaches the end of the file → its bytes. Anything else goes per-file: a short answer without eof, a
    /// full one (the file grew, or is larger than one READ), NFS3ERR_STALE (replaced between LOOKUP and READ),
    /// any other error.
    fileprivate func readAnswered(_ index: Int, _ status: Int32, _ data: UnsafeMutableRawPointer?) {
        inFlight -= 1
        defer { issueLookups() }
        guard status == RPC_STATUS_SUCCESS, let data else {
            rpcFailed("READ", status, data)
            return
        }
        let reply = data.assumingMemoryBound(to: READ3res.self)
        guard reply.pointee.status == NFS3_OK else { return }
        let answer = reply.pointee.READ3res_u.resok
        let count = Int(answer.data.data_len)
        if count > maxBytes {
            outcomes[index] = .read(.tooLarge(UInt64(maxBytes) + 1))
        } else if answer.eof != 0 {
            let bytes = count == 0 ? [] : [UInt8](UnsafeRawBufferPointer(start: answer.data.data_val, count: count))
            outcomes[index] = .read(.bytes(bytes))
        }
    }

    /// A call that got no answer (libnfs's status, not the server's): the connection is unusable.
    private func rpcFailed(_ procedure: String, _ status: Int32, _ data: UnsafeMutableRawPointer?) {
        guard failure == nil else { return }
        switch status {
        case RPC_STATUS_TIMEOUT:
            failure = Failure(code: -ETIMEDOUT, message: "\(procedure) timed out")
        case RPC_STATUS_CANCEL:
            failure = Failure(code: -EIO, message: "\(procedure) cancelled")
        default:
            // RPC_STATUS_ERROR: data is libnfs's message.
            let text = data.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) } ?? ""
            failure = Failure(code: -EIO, message: "\(procedure) failed: \(text.isEmpty ? rpcError() : text)")
        }
    }

    private func rpcError() -> String {
        rpc_get_error(rpc).map { String(cString: $0) } ?? "no message"
    }

    /// A single path component LOOKUP resolves as the path walk would.
    private static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == 0 })
    }

    /// `remaining` in whole milliseconds for `poll`, rounded up so the loop never spins just before the deadline.
    private static func pollMilliseconds(_ remaining: Duration) -> Int32 {
        let (seconds, attoseconds) = remaining.components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: max(1, milliseconds))
    }
}
