#if canImport(Glibc)
import Glibc
#endif

/// Reads a small secret file (the API token, BMC credentials, the record keys) the way all of them must be
/// read: not through a symlink, a regular file, owned by the user the daemon runs as, and no access at all
/// for group or others; at most `maxBytes`. Errors name the file as `what` and say how to fix it.
enum PrivateFile {
    /// - Parameters:
    ///   - what: the file's role and path for messages, e.g. "API token file /etc/kvmha/api-token".
    ///   - missingHint: appended when the file does not exist (how to create it).
    static func contents(_ path: String, what: String, maxBytes: Int, missingHint: String) throws(PrivateFileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw PrivateFileError(
                "\(what): \(String(cString: strerror(code)))"
                    + (code == ENOENT ? missingHint : code == ELOOP ? " (a symlink; not followed)" : ""),
                missing: code == ENOENT)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw PrivateFileError("\(what): \(String(cString: strerror(errno)))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw PrivateFileError("\(what) is not a regular file") }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw PrivateFileError(
                "\(what) is accessible by group or others (mode \(String(mode, radix: 8))): run `chmod 600 \(path)`")
        }
        guard info.st_uid == geteuid() else {
            throw PrivateFileError("\(what) is owned by uid \(info.st_uid), not by the daemon's user (uid \(geteuid()))")
        }
        var buffer = [UInt8](repeating: 0, count: maxBytes + 1)
        var total = 0
        while total <= maxBytes {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw PrivateFileError("\(what): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            total += count
        }
        guard total <= maxBytes else { throw PrivateFileError("\(what) is larger than \(maxBytes) bytes") }
        return Array(buffer[..<total])
    }
}

struct PrivateFileError: Error, CustomStringConvertible {
    var description: String
    /// The file does not exist.
    var missing = false

    init(_ description: String, missing: Bool = false) {
        self.description = description
        self.missing = missing
    }
}
