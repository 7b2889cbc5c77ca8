/// Outcome of reading a small file from a pool.
public enum FileRead: Equatable, Sendable {
    case bytes([UInt8])
    case missing
    /// Larger than the caller's cap; nothing beyond the cap was read.
    case tooLarge(Int)
    /// A symlink, directory or special file: never followed, never read.
    case notRegularFile
}

public struct PoolDirectoryEntry: Hashable, Sendable {
    public var name: String
    public var isRegularFile: Bool
    public init(name: String, isRegularFile: Bool) {
        self.name = name
        self.isRegularFile = isRegularFile
    }
}

public struct PoolFileStat: Hashable, Sendable {
    public var size: UInt64
    /// Modification time, Unix seconds (the storage server's clock).
    public var mtimeSeconds: Int64
    public var mtimeNanoseconds: Int32
    public var isRegularFile: Bool
    public init(size: UInt64, mtimeSeconds: Int64, mtimeNanoseconds: Int32, isRegularFile: Bool) {
        self.size = size
        self.mtimeSeconds = mtimeSeconds
        self.mtimeNanoseconds = mtimeNanoseconds
        self.isRegularFile = isRegularFile
    }
}

/// A storage error, with the operation, the pool-relative path and the system's own words.
public struct PoolIOError: Error, Hashable, Sendable, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var message: String
    /// errno when the error came from the kernel, else nil.
    public var errno: Int32?

    public init(operation: String, path: String, message: String, errno: Int32? = nil) {
        self.operation = operation
        self.path = path
        self.message = message
        self.errno = errno
    }

    public var description: String { "\(operation) \(path): \(message)" }
}

/// The port through which the sidecar reaches one pool: a handful of blocking file operations on paths
/// relative to the pool's root. Implemented by the mounted-directory store and the libnfs store.
///
/// Implementations are used from one dedicated thread at a time and may block; callers bound every call
/// with a deadline. Paths are always built by `PoolLayout` from validated values.
public protocol PoolFiles: AnyObject {
    /// Human name of the pool's location (`/mnt/…` or `nfs://…`).
    var location: String { get }
    /// Creates a folder (and its parents); succeeds if it exists.
    func makeFolder(_ path: String) throws(PoolIOError)
    /// Replaces `path` atomically: writes `temporaryPath` (created exclusively), flushes it to stable
    /// storage when `durable`, renames it over `path`. Removes the temporary file when it fails.
    func replaceAtomically(_ path: String, with bytes: [UInt8], temporaryPath: String, durable: Bool) throws(PoolIOError)
    /// Rewrites `path` in place (create or truncate, write), as CloudStack's script does for `hb-<ip>`.
    func overwrite(_ path: String, with bytes: [UInt8]) throws(PoolIOError)
    /// Reads at most `maxBytes` from a regular file without following symlinks.
    func read(_ path: String, maxBytes: Int) throws(PoolIOError) -> FileRead
    /// Reads the files `names` of `folder`, each as `read("folder/name", maxBytes:)` would; the results are in
    /// the order of `names`, one per name.
    ///
    /// A file's own failure is that file's result. The call throws only when the backend as a whole failed (a
    /// lost or timed-out connection), so that no file could be read; callers treat that as every file failing
    /// with that error. Stores that can read many files in fewer round trips than one `read` each implement it;
    /// the default calls `read` per name and never throws.
    func readMany(folder: String, names: [String], maxBytes: Int) throws(PoolIOError) -> [Result<FileRead, PoolIOError>]
    /// Lists a folder (not recursive).
    func list(_ path: String) throws(PoolIOError) -> [PoolDirectoryEntry]
    /// Stats a file without following symlinks; nil when missing.
    func stat(_ path: String) throws(PoolIOError) -> PoolFileStat?
    /// Removes a file; succeeds if missing.
    func remove(_ path: String) throws(PoolIOError)
}

extension PoolFiles {
    /// One `read` per name; never throws (each failure is that file's result).
    public func readMany(
        folder: String, names: [String], maxBytes: Int
    ) throws(PoolIOError) -> [Result<FileRead, PoolIOError>] {
        names.map { name in
            do throws(PoolIOError) {
                return .success(try read("\(folder)/\(name)", maxBytes: maxBytes))
            } catch {
                return .failure(error)
            }
        }
    }
}
