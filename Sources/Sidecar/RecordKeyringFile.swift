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
        let bytes: [UInt8]
        do {
            bytes = try PrivateFile.contents(
                path, what: "record key file \(path)", maxBytes: maxFileBytes,
                missingHint:
                    " — create it with a key line (e.g. `(umask 077; echo \"k1 $(openssl rand -hex 32)\" > \(path))`) and give the same file to every host of the cluster"
            )
        } catch {
            throw LoadError(error.description)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw LoadError("record key file \(path) is not UTF-8 text")
        }
        do {
            return try RecordKeyring.parse(text, gracePeriod: gracePeriod)
        } catch {
            throw LoadError("record key file \(path): \(error.description)")
        }
    }
}
