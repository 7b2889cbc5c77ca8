import Foundation
public import HeartbeatCore

#if canImport(Glibc)
import Glibc
#endif

/// A pool reached through a mounted directory (`/mnt/<pool-uuid>` on a CloudStack host), with plain POSIX
/// calls. Every call may block forever on a hung NFS mount: use it only through `PoolIOThread`.
public final class DirectoryPoolFiles: PoolFiles {
    public let root: String

    public init(root: String) {
        self.root = root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root
    }

    public var location: String { root }

    private func full(_ path: String) -> String { "\(root)/\(path)" }

    private func failure(_ operation: String, _ path: String, _ code: Int32 = errno) -> PoolIOError {
        let text = String(cString: strerror(code))
        return PoolIOError(operation: operation, path: "\(root)/\(path)", message: "\(text) (\(Self.errnoName(code)))", errno: code)
    }

    public func makeFolder(_ path: String) throws(PoolIOError) {
        var built = ""
        for component in path.split(separator: "/") {
            built += built.isEmpty ? String(component) : "/\(component)"
            if mkdir(full(built), 0o755) != 0 && errno != EEXIST {
                throw failure("create folder", built)
            }
        }
    }

    public func replaceAtomically(_ path: String, with bytes: [UInt8], temporaryPath: String, durable: Bool) throws(PoolIOError) {
        let temporary = full(temporaryPath)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("create", temporaryPath) }
        do throws(PoolIOError) {
            try writeAll(fd, bytes, temporaryPath)
            if durable && fsync(fd) != 0 { throw failure("fsync", temporaryPath) }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        if close(fd) != 0 {
            let error = failure("close", temporaryPath)
            unlink(temporary)
            throw error
        }
        if rename(temporary, full(path)) != 0 {
            let error = failure("rename over", path)
            unlink(temporary)
            throw error
        }
    }

    public func overwrite(_ path: String, with bytes: [UInt8]) throws(PoolIOError) {
        let fd = open(full(path), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("open for writing", path) }
        defer { close(fd) }
        try writeAll(fd, bytes, path)
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8], _ path: String) throws(PoolIOError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw failure("write", path)
            }
            offset += written
        }
    }

    public func read(_ path: String, maxBytes: Int) throws(PoolIOError) -> FileRead {
        // O_NOFOLLOW: a symlink planted in the pool is never followed (ELOOP); O_NONBLOCK keeps a FIFO from
        // blocking the open; fstat then insists on a regular file.
        let fd = open(full(path), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            switch errno {
            case ENOENT: return .missing
            case ELOOP, ENXIO, EISDIR: return .notRegularFile
            default: throw failure("open", path)
            }
        }
        defer { close(fd) }
        var info = Glibc.stat()
        guard fstat(fd, &info) == 0 else { throw failure("stat", path) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return .notRegularFile }
        if info.st_size > maxBytes { return .tooLarge(Int(info.st_size)) }
        // A buffer the size of the file and one byte more, so one read answers with fewer bytes than asked when
        // the file is as fstat said (the end of the file, no second read for it); a file that grew since is read
        // on, never beyond one byte past the cap.
        let expected = Int(info.st_size)
        var buffer = [UInt8](repeating: 0, count: expected + 1)
        var total = 0
        while total <= maxBytes {
            if total == buffer.count {
                buffer.append(contentsOf: repeatElement(0, count: min(maxBytes + 1 - total, max(total, 4096))))
            }
            let asked = buffer.count - total
            let count = buffer.withUnsafeMutableBytes { raw in
                Glibc.read(fd, raw.baseAddress! + total, asked)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("read", path)
            }
            if count == 0 { break }
            total += count
            if count < asked && total >= expected { break }
        }
        if total > maxBytes { return .tooLarge(total) }
        buffer.removeSubrange(total...)
        return .bytes(buffer)
    }

    public func list(_ path: String) throws(PoolIOError) -> [PoolDirectoryEntry] {
        guard let directory = opendir(full(path)) else {
            if errno == ENOENT { return [] }
            throw failure("list", path)
        }
        defer { closedir(directory) }
        var entries: [PoolDirectoryEntry] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            entries.append(PoolDirectoryEntry(name: name, isRegularFile: entry.pointee.d_type == UInt8(DT_REG)))
        }
        return entries
    }

    public func stat(_ path: String) throws(PoolIOError) -> PoolFileStat? {
        var info = Glibc.stat()
        if lstat(full(path), &info) != 0 {
            if errno == ENOENT { return nil }
            throw failure("stat", path)
        }
        return PoolFileStat(
            size: UInt64(max(0, info.st_size)),
            mtimeSeconds: Int64(info.st_mtim.tv_sec),
            mtimeNanoseconds: Int32(info.st_mtim.tv_nsec),
            isRegularFile: (info.st_mode & S_IFMT) == S_IFREG
        )
    }

    public func remove(_ path: String) throws(PoolIOError) {
        if unlink(full(path)) != 0 && errno != ENOENT { throw failure("remove", path) }
    }

    static func errnoName(_ code: Int32) -> String {
        switch code {
        case EACCES: "EACCES"
        case EPERM: "EPERM"
        case ENOENT: "ENOENT"
        case EROFS: "EROFS"
        case ENOSPC: "ENOSPC"
        case EDQUOT: "EDQUOT"
        case EIO: "EIO"
        case ESTALE: "ESTALE"
        case ETIMEDOUT: "ETIMEDOUT"
        case ENOTDIR: "ENOTDIR"
        case EEXIST: "EEXIST"
        case ELOOP: "ELOOP"
        default: "errno \(code)"
        }
    }
}
