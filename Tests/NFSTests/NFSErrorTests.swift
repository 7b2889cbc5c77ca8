import Glibc
import NFS
import Testing

@Suite struct NFSErrorTests {
    struct Row: Sendable, CustomTestStringConvertible {
        let operation: String
        let code: Int32
        let message: String
        let requiresNewContext: Bool
        var testDescription: String { "\(operation) \(code) \(message)" }
    }

    // Messages as libnfs 4.0.0 words them against nfs-ganesha 4.3.
    static let rows: [Row] = [
        Row(
            operation: "stat",
            code: -EINTR,
            message: "stat call failed with \"Command timed out\"",
            requiresNewContext: true
        ),
        Row(operation: "mount", code: -EINTR, message: "mount_cb: command timed out", requiresNewContext: true),
        Row(operation: "stat", code: -EIO, message: "nfs_service failed", requiresNewContext: true),
        Row(operation: "stat", code: -EINTR, message: "Socket failed with POLLHUP", requiresNewContext: true),
        Row(
            operation: "open",
            code: -ERANGE,
            message: "open call failed with \"NFS4: (path /) failed with NFS4ERR_EXPIRED(-5)\"",
            requiresNewContext: true
        ),
        Row(operation: "stat", code: -ESTALE, message: "NFS3ERR_STALE", requiresNewContext: true),
        Row(operation: "mount", code: -ENOENT, message: "MNT3ERR_NOENT", requiresNewContext: true),
        Row(operation: "read", code: -EBADF, message: "the NFS context is closed", requiresNewContext: true),
        Row(
            operation: "unlink",
            code: -ENOENT,
            message: "unlink call failed with \"NFS: REMOVE of /d/b.txt failed with NFS3ERR_NOENT(-2)\"",
            requiresNewContext: false
        ),
        Row(
            operation: "mkdir",
            code: -EEXIST,
            message: "mkdir call failed with \"NFS4: (path /) failed with NFS4ERR_EXIST(-17)\"",
            requiresNewContext: false
        ),
        Row(operation: "write", code: -EIO, message: "WRITE failed with NFS3ERR_IO(-5)", requiresNewContext: false),
        Row(operation: "write", code: -ENOSPC, message: "NFS3ERR_NOSPC", requiresNewContext: false),
        Row(operation: "open", code: -EACCES, message: "NFS3ERR_ACCES", requiresNewContext: false),
        Row(operation: "read", code: -EFBIG, message: "file has 10 bytes, limit is 4", requiresNewContext: false),
    ]

    @Test(arguments: rows)
    func classifiesWhetherTheContextIsSpent(_ row: Row) {
        let error = NFSError(operation: row.operation, path: "/x", code: row.code, message: row.message)
        #expect(error.requiresNewContext == row.requiresNewContext)
        #expect(error.description.contains(row.message))
        #expect(error.description.contains("mount a new") == row.requiresNewContext)
    }

    @Test func namesTheErrnoAndPath() {
        let error = NFSError(operation: "open", path: "/KVMHA/hb-10.0.0.1", code: -ENOENT, message: "NFS3ERR_NOENT")
        #expect(error.isNotFound)
        #expect(error.description == "NFS open /KVMHA/hb-10.0.0.1 failed: ENOENT: NFS3ERR_NOENT")
    }
}
