/// Why a record file could not be used. Every way a file can be wrong maps to one of these; decoding
/// never traps.
public enum RecordProblem: Error, Hashable, Sendable, CustomStringConvertible {
    case empty
    case oversized(Int)
    case notUTF8
    case truncated
    case notARecord
    case unsupportedVersion(String)
    case badChecksum(expected: String, actual: String)
    case malformed(String)
    case wrongHost(expected: HostAddress, found: String)
    /// Not a plain file (a symlink, a directory, a device): never followed, never read.
    case notRegularFile
    /// The file could not be read (an error from storage, with its text).
    case unreadable(String)

    public var description: String {
        switch self {
        case .empty: "record is empty"
        case .oversized(let size): "record is \(size) bytes, over the \(RecordCodec.maxBytes)-byte cap"
        case .notUTF8: "record is not UTF-8 text"
        case .truncated: "record is truncated (no checksum line)"
        case .notARecord: "not a kvmha record (bad header line)"
        case .unsupportedVersion(let version): "record format \(version) is not supported by this reader"
        case .badChecksum(let expected, let actual): "record checksum mismatch (file says \(expected), content gives \(actual))"
        case .malformed(let what): "record is malformed: \(what)"
        case .wrongHost(let expected, let found): "record in \(expected)'s file names another host (\(found))"
        case .notRegularFile: "record path is not a regular file (symlink or special file); not followed"
        case .unreadable(let why): "record could not be read: \(why)"
        }
    }

    /// A short, stable token for logs and metrics.
    public var code: String {
        switch self {
        case .empty: "empty"
        case .oversized: "oversized"
        case .notUTF8: "not-utf8"
        case .truncated: "truncated"
        case .notARecord: "not-a-record"
        case .unsupportedVersion: "unsupported-version"
        case .badChecksum: "bad-checksum"
        case .malformed: "malformed"
        case .wrongHost: "wrong-host"
        case .notRegularFile: "not-regular-file"
        case .unreadable: "unreadable"
        }
    }
}

/// The on-disk form of `HeartbeatRecord`:
///
/// ```
/// kvmha-record 1.0
/// {"host":"10.0.0.1","bootID":"…","incarnation":"…","sequence":42,…}
/// crc32c 1a2b3c4d
/// ```
///
/// The checksum covers every byte before the checksum line. Readers accept any `1.x` (newer minor
/// versions only add fields, which are ignored) and reject other majors.
public enum RecordCodec {
    public static let maxBytes = 64 * 1024
    public static let majorVersion = 1
    public static let minorVersion = 0
    static let header = "kvmha-record"
    static let checksumTag = "crc32c "
    static let maxStringLength = 256
    static let maxVMs = 2048

    /// Encodes a record that every reader accepts: strings are cut to the readers' cap (at a character
    /// boundary), and when the VM list would push the file past `maxBytes` or `maxVMs`, VMs are left out —
    /// shut-off ones first — and counted in `vmsOmitted`.
    public static func encode(_ record: HeartbeatRecord) -> [UInt8] {
        let record = clamped(record)
        let full = encodeUnchecked(record)
        if full.count <= maxBytes && record.vms.count <= maxVMs { return full }
        let ordered = record.vms.enumerated().sorted { lhs, rhs in
            lhs.element.state.isActive != rhs.element.state.isActive ? lhs.element.state.isActive : lhs.offset < rhs.offset
        }.map(\.element)
        let total = record.vms.count + record.vmsOmitted
        // The largest prefix of the ordered list that fits.
        var low = 0
        var high = min(ordered.count, maxVMs)
        var best = encodeWith(record, vms: [], omitted: total)
        while low <= high {
            let middle = (low + high) / 2
            let candidate = encodeWith(record, vms: Array(ordered.prefix(middle)), omitted: total - middle)
            if candidate.count <= maxBytes {
                best = candidate
                low = middle + 1
            } else {
                high = middle - 1
            }
        }
        return best
    }

    private static func encodeWith(_ record: HeartbeatRecord, vms: [VMEntry], omitted: Int) -> [UInt8] {
        var copy = record
        copy.vms = vms
        copy.vmsOmitted = omitted
        return encodeUnchecked(copy)
    }

    private static func clamped(_ record: HeartbeatRecord) -> HeartbeatRecord {
        var record = record
        record.hostUUID = record.hostUUID.map(clamp)
        record.bootID = clamp(record.bootID)
        record.incarnation = clamp(record.incarnation)
        for index in record.vms.indices {
            record.vms[index].uuid = clamp(record.vms[index].uuid)
            record.vms[index].name = clamp(record.vms[index].name)
            record.vms[index].reason = clamp(record.vms[index].reason)
            record.vms[index].state = VMPowerState(rawValue: clamp(record.vms[index].state.rawValue))
        }
        return record
    }

    /// The longest prefix of `text` within `maxStringLength` UTF-8 bytes, cut between characters.
    static func clamp(_ text: String) -> String {
        guard text.utf8.count > maxStringLength else { return text }
        var result = ""
        var bytes = 0
        for character in text {
            let size = character.utf8.count
            if bytes + size > maxStringLength { break }
            result.append(character)
            bytes += size
        }
        return result
    }

    static func encodeUnchecked(_ record: HeartbeatRecord) -> [UInt8] {
        var json = JSONWriter(capacity: 256 + record.vms.count * 160)
        json.raw("kvmha-record 1.0\n{")
        json.key("host")
        json.string(record.host.description)
        if let uuid = record.hostUUID {
            json.raw(",")
            json.key("hostUUID")
            json.string(uuid)
        }
        json.raw(",")
        json.key("bootID")
        json.string(record.bootID)
        json.raw(",")
        json.key("incarnation")
        json.string(record.incarnation)
        json.raw(",")
        json.key("sequence")
        json.integer(record.sequence)
        json.raw(",")
        json.key("wallTimeMs")
        json.integer(record.wallTimeMs)
        json.raw(",")
        json.key("intervalMs")
        json.integer(record.intervalMs)
        json.raw(",")
        json.key("vms")
        json.raw("[")
        for (index, vm) in record.vms.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{")
            json.key("uuid")
            json.string(vm.uuid)
            json.raw(",")
            json.key("name")
            json.string(vm.name)
            json.raw(",")
            json.key("state")
            json.string(vm.state.rawValue)
            json.raw(",")
            json.key("reason")
            json.string(vm.reason)
            json.raw(",")
            json.key("sinceMs")
            json.integer(vm.sinceMs)
            json.raw("}")
        }
        json.raw("]")
        if record.vmsOmitted > 0 {
            json.raw(",")
            json.key("vmsOmitted")
            json.integer(record.vmsOmitted)
        }
        json.raw("}\n")
        var bytes = json.bytes
        let sum = CRC32C.checksum(bytes)
        bytes.append(contentsOf: "crc32c \(CRC32C.hex(sum))\n".utf8)
        return bytes
    }

    /// Decodes a record read from `expectedHost`'s file. Total: every input gives a record or a reason.
    public static func decode(_ bytes: [UInt8], expectedHost: HostAddress?) -> Result<HeartbeatRecord, RecordProblem> {
        do {
            return .success(try decodeOrThrow(bytes, expectedHost: expectedHost))
        } catch {
            return .failure(error)
        }
    }

    static func decodeOrThrow(_ bytes: [UInt8], expectedHost: HostAddress?) throws(RecordProblem) -> HeartbeatRecord {
        if bytes.isEmpty { throw .empty }
        if bytes.count > maxBytes { throw .oversized(bytes.count) }
        guard String(validating: bytes, as: UTF8.self) != nil else { throw .notUTF8 }

        // Header line.
        guard let headerEnd = bytes.firstIndex(of: 0x0A) else { throw .truncated }
        let headerText = String(decoding: bytes[..<headerEnd], as: UTF8.self)
        guard headerText.hasPrefix(header + " ") else { throw .notARecord }
        let version = headerText.dropFirst(header.count + 1)
        let versionParts = version.split(separator: ".", omittingEmptySubsequences: false)
        guard versionParts.count == 2, let major = Int(versionParts[0]), Int(versionParts[1]) != nil else {
            throw .notARecord
        }
        guard major == majorVersion else { throw .unsupportedVersion(String(version)) }

        // Checksum line: the last line of the file.
        guard bytes.last == 0x0A else { throw .truncated }
        let withoutFinalNewline = bytes[..<(bytes.endIndex - 1)]
        guard let lastBreak = withoutFinalNewline.lastIndex(of: 0x0A), lastBreak > headerEnd else {
            throw .truncated
        }
        let trailer = String(decoding: bytes[(lastBreak + 1)..<(bytes.endIndex - 1)], as: UTF8.self)
        guard trailer.hasPrefix(checksumTag) else { throw .truncated }
        let stated = String(trailer.dropFirst(checksumTag.count))
        let covered = bytes[...lastBreak]
        let actual = CRC32C.hex(CRC32C.checksum(covered))
        guard stated == actual else { throw .badChecksum(expected: stated, actual: actual) }

        // Body.
        let body: JSONValue
        do {
            body = try JSONValue.parse(bytes[(headerEnd + 1)..<lastBreak])
        } catch {
            throw .malformed(error.description)
        }
        guard case .object = body else { throw .malformed("body is not a JSON object") }
        let hostText = try string(body, "host")
        guard let host = HostAddress(hostText) else { throw .malformed("field 'host' is not an IPv4 address") }
        if let expectedHost, host != expectedHost { throw .wrongHost(expected: expectedHost, found: hostText) }
        let hostUUID = try optionalString(body, "hostUUID")
        let record = HeartbeatRecord(
            host: host,
            hostUUID: hostUUID,
            bootID: try string(body, "bootID"),
            incarnation: try string(body, "incarnation"),
            sequence: try integer(body, "sequence", as: UInt64.self),
            wallTimeMs: try integer(body, "wallTimeMs", as: Int64.self),
            intervalMs: try integer(body, "intervalMs", as: Int64.self),
            vms: try vms(body),
            vmsOmitted: body["vmsOmitted"] == nil ? 0 : try integer(body, "vmsOmitted", as: Int.self)
        )
        guard record.intervalMs > 0 else { throw .malformed("field 'intervalMs' must be positive") }
        guard record.vmsOmitted >= 0 else { throw .malformed("field 'vmsOmitted' must not be negative") }
        return record
    }

    private static func string(_ object: JSONValue, _ key: String, in context: String = "") throws(RecordProblem) -> String {
        guard let value = object[key] else { throw .malformed("field '\(context)\(key)' is missing") }
        guard case .string(let text) = value else { throw .malformed("field '\(context)\(key)' is not a string") }
        guard text.utf8.count <= maxStringLength else { throw .malformed("field '\(context)\(key)' is too long") }
        return text
    }

    private static func optionalString(_ object: JSONValue, _ key: String) throws(RecordProblem) -> String? {
        guard let value = object[key], value != .null else { return nil }
        return try string(object, key)
    }

    private static func integer<T: FixedWidthInteger>(
        _ object: JSONValue, _ key: String, as type: T.Type, in context: String = ""
    ) throws(RecordProblem) -> T {
        guard let value = object[key] else { throw .malformed("field '\(context)\(key)' is missing") }
        guard case .number(let text) = value, let number = T(text) else {
            throw .malformed("field '\(context)\(key)' is not an integer in range")
        }
        return number
    }

    private static func vms(_ body: JSONValue) throws(RecordProblem) -> [VMEntry] {
        guard let value = body["vms"] else { throw .malformed("field 'vms' is missing") }
        guard case .array(let elements) = value else { throw .malformed("field 'vms' is not a list") }
        guard elements.count <= maxVMs else { throw .malformed("field 'vms' lists more than \(maxVMs) VMs") }
        var result: [VMEntry] = []
        result.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            let context = "vms[\(index)]."
            guard case .object = element else { throw .malformed("field 'vms[\(index)]' is not an object") }
            result.append(
                VMEntry(
                    uuid: try string(element, "uuid", in: context),
                    name: try string(element, "name", in: context),
                    state: VMPowerState(rawValue: try string(element, "state", in: context)),
                    reason: try string(element, "reason", in: context),
                    sinceMs: try integer(element, "sinceMs", as: Int64.self, in: context)
                )
            )
        }
        return result
    }
}
