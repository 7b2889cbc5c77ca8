/// The mounts this process sees, read from /proc/self/mountinfo. Reading it never touches the
/// mounted file systems, so it is safe while a FUSE mount is frozen (unlike `stat` on the mount).
struct MountTable {
    struct Entry {
        /// The mount's device, "major:minor"; for FUSE the minor names its /sys/fs/fuse/connections entry.
        let device: String
        let mountPoint: String
        let fileSystemType: String
    }

    let entries: [Entry]

    init() {
        let text = ProcFile.read("/proc/self/mountinfo") ?? ""
        entries = text.split(separator: "\n").compactMap { line in
            // ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 5, let separator = fields.firstIndex(of: "-"), separator + 1 < fields.count else {
                return nil
            }
            return Entry(
                device: String(fields[2]),
                mountPoint: Self.unescape(fields[4]),
                fileSystemType: String(fields[separator + 1])
            )
        }
    }

    /// The last (topmost) mount on `path`.
    func entry(at path: String) -> Entry? {
        entries.last { $0.mountPoint == path }
    }

    func isMountPoint(_ path: String) -> Bool {
        entry(at: path) != nil
    }

    /// Mount points at or below `directory`.
    func mountPoints(under directory: String) -> [String] {
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        return entries.map(\.mountPoint).filter { $0 == directory || $0.hasPrefix(prefix) }
    }

    var hasFuseControlFileSystem: Bool {
        entries.contains { $0.fileSystemType == "fusectl" }
    }

    /// The kernel writes space, tab, newline and backslash in paths as octal escapes (`\040`).
    private static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "\\"), utf8.count >= 3,
                let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
