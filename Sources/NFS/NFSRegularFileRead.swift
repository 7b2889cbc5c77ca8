/// What ``NFSContext/readRegularFile(_:maxBytes:)`` found.
public enum NFSRegularFileRead: Sendable, Equatable {
    /// The whole content of a regular file.
    case bytes([UInt8])
    /// A symbolic link (never followed), a directory or a special file: nothing was read.
    case notRegularFile
    /// Larger than `maxBytes` (the size the server gave, or `maxBytes + 1` for a file that grew while read).
    case tooLarge(UInt64)
}
