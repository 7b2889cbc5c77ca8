/// What `stat` reports about one file on the export.
public struct NFSFileStat: Sendable, Equatable {
    public let size: UInt64
    public let mtimeSeconds: Int64
    public let mtimeNanoseconds: Int32
    /// The full `st_mode`: file type bits and permission bits.
    public let mode: UInt32
    public let isDirectory: Bool
    public let isRegular: Bool
    public let isSymlink: Bool

    public init(size: UInt64, mtimeSeconds: Int64, mtimeNanoseconds: Int32, mode: UInt32) {
        self.size = size
        self.mtimeSeconds = mtimeSeconds
        self.mtimeNanoseconds = mtimeNanoseconds
        self.mode = mode
        let type = mode & 0o170000
        self.isDirectory = type == 0o040000
        self.isRegular = type == 0o100000
        self.isSymlink = type == 0o120000
    }

    /// The permission bits (`mode & 0o7777`).
    public var permissions: UInt32 { mode & 0o7777 }
}
