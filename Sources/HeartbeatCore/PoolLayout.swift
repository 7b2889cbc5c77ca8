/// Where things live inside a pool, as paths relative to the pool's root.
///
/// Every path is built from validated values (`HostAddress`, our own names), never from outside text.
public enum PoolLayout {
    /// CloudStack's folder; its scripts create it too.
    public static let haFolder = "KVMHA"
    /// Our records, one file per host, kept apart from CloudStack's `hb-` and `ac-` files.
    public static let recordFolder = "KVMHA/kvmha"
    public static let recordSuffix = ".record"

    /// CloudStack's heartbeat file: `KVMHA/hb-<ip>`.
    public static func cloudStackHeartbeat(_ host: HostAddress) -> String { "\(haFolder)/hb-\(host)" }

    /// CloudStack's activity memo: `KVMHA/ac-<ip>`.
    public static func activityMemo(_ host: HostAddress) -> String { "\(haFolder)/ac-\(host)" }

    public static func recordFileName(_ host: HostAddress) -> String { "\(host)\(recordSuffix)" }

    public static func record(_ host: HostAddress) -> String { "\(recordFolder)/\(recordFileName(host))" }

    /// Temporary files are hidden (leading dot), start with the writer's own address so that a host only
    /// ever cleans up its own, and end with a unique token.
    public static func temporaryRecordPrefix(_ host: HostAddress) -> String { ".\(host)\(recordSuffix).tmp-" }

    /// The host a record file name belongs to, or nil for anything that is not one of our record files
    /// (temporary files, strays, names that are not addresses).
    public static func host(ofRecordFileName name: String) -> HostAddress? {
        guard name.hasSuffix(recordSuffix), !name.hasPrefix(".") else { return nil }
        return HostAddress(name.dropLast(recordSuffix.count))
    }

    /// The host a CloudStack heartbeat file name (`hb-<ip>`) belongs to.
    public static func host(ofCloudStackFileName name: String) -> HostAddress? {
        guard name.hasPrefix("hb-") else { return nil }
        return HostAddress(name.dropFirst(3))
    }
}
