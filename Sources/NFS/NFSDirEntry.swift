/// One entry of `listDirectory` (never `.` or `..`), with the attributes the server sent along
/// (READDIRPLUS for NFSv3, READDIR attributes for NFSv4), so no extra call per entry is needed.
public struct NFSDirEntry: Sendable, Equatable {
    public let name: String
    public let isDirectory: Bool
    public let isRegular: Bool
    public let isSymlink: Bool
    public let size: UInt64
    public let mtimeSeconds: Int64
    public let mtimeNanoseconds: Int32

    public init(
        name: String,
        isDirectory: Bool,
        isRegular: Bool,
        isSymlink: Bool,
        size: UInt64,
        mtimeSeconds: Int64,
        mtimeNanoseconds: Int32
    ) {
        self.name = name
        self.isDirectory = isDirectory
        self.isRegular = isRegular
        self.isSymlink = isSymlink
        self.size = size
        self.mtimeSeconds = mtimeSeconds
        self.mtimeNanoseconds = mtimeNanoseconds
    }
}
