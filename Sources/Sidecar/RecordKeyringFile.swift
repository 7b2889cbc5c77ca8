public import HeartbeatCore

#if canImport(Glibc)
    import Glibc
#endif

/// Reads the cluster's record keys from their file (`recordKeyFile`), which only the daemon's user may
/// read: the keys decide which records are evidence of life.
public enum RecordKeyringFile {
    /// A key file is a few lines; anything larger is not one.
    static let maxFileBytes = 64 * 1024

    /// Why the key file cannot be used; names the file and says what to do.
    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Reads and parses `path`. Refuses a file that is not a regular file owned by the user the daemon runs as,
    /// or that group or others may access at all.
    public static func load(path: String, gracePeriod: Duration) throws(LoadError) -> RecordKeyring {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw LoadError(
                "record key file \(path): \(String(cString: strerror(code)))"
                    + (code == ENOENT
                        ? " — create it with a key line (e.g. `(umask 077; echo \"k1 $(openssl rand -hex 32)\" > \(path))`) and give the same file to every host of the cluster"
                        : code == ELOOP ? " (a symlink; not followed)" : "")
            )
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw LoadError("record key file \(path): \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw LoadError("record key file \(path) is not a regular file")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw LoadError(
                "record key file \(path) is accessible by group or others (mode \(String(mode, radix: 8))): run `chmod 600 \(path)`"
            )
        }
        guard info.st_uid == geteuid() else {
            throw LoadError(
                "record key file \(path) is owned by uid \(info.st_uid), not by the daemon's user (uid \(geteuid()))"
            )
        }
        var buffer = [UInt8](repeating: 0, count: maxFileBytes + 1)
        var total = 0
        while total <= maxFileBytes {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw LoadError("record key file \(path): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            total += count
        }
        guard total <= maxFileBytes else {
            throw LoadError("record key file \(path) is larger than \(maxFileBytes) bytes")
        }
        guard let text = String(validating: buffer[..<total], as: UTF8.self) else {
            throw LoadError("record key file \(path) is not UTF-8 text")
        }
        do {
            return try RecordKeyring.parse(text, gracePeriod: gracePeriod)
        } catch {
            throw LoadError("record key file \(path): \(error.description)")
        }
    }
}
