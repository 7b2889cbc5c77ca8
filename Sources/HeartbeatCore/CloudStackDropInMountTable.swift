/// The mount points of `/proc/self/mountinfo`, to tell whether the pool's `-m` is mounted.
///
/// CloudStack's heartbeat script remounts a pool it finds unmounted (and then kills the qemu processes using
/// it). The drop-in never mounts anything; instead it refuses to read or write through a `-m` that is not a
/// mount point: a beat written into the empty directory under a lost mount would land on the local disk and
/// tell the agent that storage works, and a check reading it would find no heartbeat and say DEAD.
/// Reading the mount table never touches the mounted file systems, so it is safe on a hung mount.
public struct CloudStackDropInMountTable: Hashable, Sendable {
    public let mountPoints: [String]

    /// - Parameter mountInfo: the text of `/proc/self/mountinfo`.
    public init(mountInfo: String) {
        mountPoints = mountInfo.split(separator: "\n").compactMap { line in
            // ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 5, fields.contains("-") else { return nil }
            return Self.unescape(fields[4])
        }
    }

    public func isMountPoint(_ path: String) -> Bool {
        guard let normalized = Self.normalized(path) else { return false }
        return mountPoints.contains(normalized)
    }

    /// `path` without repeated or trailing slashes and `.` components; nil unless it is absolute and free of
    /// `..` (those need the file system to resolve: see `realpath`).
    public static func normalized(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return nil }
        var parts: [Substring] = []
        for part in path.split(separator: "/") where part != "." {
            if part == ".." { return nil }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// The kernel writes space, tab, newline and backslash in paths as three-digit octal escapes (`\040`).
    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        var rest = Array(field.utf8)[...]
        while let byte = rest.popFirst() {
            if byte == UInt8(ascii: "\\"), rest.count >= 3,
                let value = UInt8(String(decoding: rest.prefix(3), as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                rest = rest.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
