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
    /// Peer views kept in a record (the lowest addresses first); a CloudStack cluster has far fewer hosts.
    public static let maxPeerViews = 256

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
        writeHead(record, into: &json)
        writeVMs(record, into: &json)
        json.raw("}\n")
        return finish(json.bytes)
    }

    /// The header line and the body up to `intervalMs`.
    static func writeHead(_ record: HeartbeatRecord, into json: inout JSONWriter) {
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
        if record.mode != .normal {
            json.raw(",")
            json.key("mode")
            json.string(record.mode.name)
            if let reason = record.mode.reason {
                json.raw(",")
                json.key("modeReason")
                json.string(clamp(reason))
            }
        }
        if !record.peerViews.isEmpty {
            json.raw(",")
            json.key("peers")
            json.raw("{")
            for (index, peer) in record.peerViews.keys.sorted().prefix(maxPeerViews).enumerated() {
                if index > 0 { json.raw(",") }
                json.string(peer.description)
                json.raw(":")
                json.string(clamp(record.peerViews[peer]!))
            }
            json.raw("}")
        }
    }

    /// `,"vms":[…]` and `vmsOmitted` when VMs were left out.
    static func writeVMs(_ record: HeartbeatRecord, into json: inout JSONWriter) {
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
    }

    /// Appends the checksum line to the header and body.
    static func finish(_ covered: [UInt8]) -> [UInt8] {
        var bytes = covered
        bytes.reserveCapacity(bytes.count + 16)
        let sum = bytes.withUnsafeBufferPointer { crc32c($0) }
        bytes.append(contentsOf: "crc32c ".utf8)
        for position in 0..<8 {
            bytes.append(RecordFastReader.hexDigit(UInt8(truncatingIfNeeded: sum >> UInt32(28 - 4 * position)) & 0xF))
        }
        bytes.append(0x0A)
        return bytes
    }

    /// Encodes a writer's successive records, keeping the encoded VM list from one beat to the next while it
    /// does not change: from beat to beat only the sequence and the time change, and the VM list is most of
    /// the bytes. The output is always byte-equal to ``RecordCodec/encode(_:)`` of the same record: a new VM
    /// list, and any record near the size cap (where VMs would be left out), goes through `encode` itself.
    public struct CachingEncoder: Sendable {
        private var cachedVMs: [VMEntry]?
        private var cachedOmitted = 0
        /// `,"vms":[…]` and the `vmsOmitted` member if any, as `encode` wrote them for `cachedVMs`.
        private var fragment: [UInt8] = []

        public init() {}

        public mutating func encode(_ record: HeartbeatRecord) -> [UInt8] {
            if let cachedVMs, cachedOmitted == record.vmsOmitted, cachedVMs == record.vms {
                var json = JSONWriter(capacity: 256 + fragment.count)
                RecordCodec.writeHead(clamped(head: record), into: &json)
                json.append(fragment)
                json.raw("}\n")
                if json.bytes.count + 16 <= maxBytes { return RecordCodec.finish(json.bytes) }
            }
            let bytes = RecordCodec.encode(record)
            cachedVMs = nil
            // Keep the list only when `encode` kept every VM: then the same list encodes the same way as long as
            // the whole record stays within the cap, which the fast path checks.
            if record.vms.count <= maxVMs, case .success(let decoded) = RecordCodec.decode(bytes, expectedHost: nil),
                decoded.vms.count == record.vms.count, decoded.vmsOmitted == record.vmsOmitted,
                let start = RecordCodec.vmsFragmentStart(bytes)
            {
                cachedVMs = record.vms
                cachedOmitted = record.vmsOmitted
                fragment = Array(bytes[start..<(bytes.count - 16 - 2)])  // up to the closing "}\n" of the body
            }
            return bytes
        }

        private func clamped(head record: HeartbeatRecord) -> HeartbeatRecord {
            var record = record
            record.hostUUID = record.hostUUID.map(RecordCodec.clamp)
            record.bootID = RecordCodec.clamp(record.bootID)
            record.incarnation = RecordCodec.clamp(record.incarnation)
            return record
        }
    }

    /// Where `,"vms":[` starts in an encoded record.
    static func vmsFragmentStart(_ bytes: [UInt8]) -> Int? {
        let marker = Array(#","vms":["#.utf8)
        // Strings before it are escaped JSON, so the marker's first occurrence after the header is the member.
        guard bytes.count > marker.count else { return nil }
        var index = 0
        while index + marker.count <= bytes.count {
            if bytes[index] == marker[0] && Array(bytes[index..<(index + marker.count)]) == marker { return index }
            index += 1
        }
        return nil
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
        let isASCII = bytes.withUnsafeBufferPointer { RecordFastReader.isASCII($0) }
        if !isASCII && String(validating: bytes, as: UTF8.self) == nil { throw .notUTF8 }
        // The common case, a well-formed record, in one pass without building a JSON tree. Anything the fast
        // reader does not vouch for — every problem and every unusual form — goes through the general reader
        // below, which gives the exact reason.
        if let record = bytes.withUnsafeBufferPointer({ RecordFastReader.record(in: $0, expectedHost: expectedHost) }) {
            return record
        }
        return try decodeGenerally(bytes, expectedHost: expectedHost)
    }

    /// The general reader: a JSON tree first, then the fields, in a fixed order, so that every input gets the
    /// same reason whatever else is wrong with it. Expects a non-empty, capped, UTF-8 input.
    static func decodeGenerally(_ bytes: [UInt8], expectedHost: HostAddress?) throws(RecordProblem) -> HeartbeatRecord {

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
        var record = HeartbeatRecord(
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
        record.mode = try mode(name: try optionalString(body, "mode"), reason: try optionalString(body, "modeReason"))
        record.peerViews = try peerViews(body["peers"])
        guard record.intervalMs > 0 else { throw .malformed("field 'intervalMs' must be positive") }
        guard record.vmsOmitted >= 0 else { throw .malformed("field 'vmsOmitted' must not be negative") }
        return record
    }

    /// `peers`: an object of IPv4 addresses to verdict strings.
    static func peerViews(_ value: JSONValue?) throws(RecordProblem) -> [HostAddress: String] {
        guard let value, value != .null else { return [:] }
        guard case .object(let members) = value else { throw .malformed("field 'peers' is not an object") }
        guard members.count <= maxPeerViews else { throw .malformed("field 'peers' has more than \(maxPeerViews) entries") }
        var views: [HostAddress: String] = [:]
        for (key, verdict) in members {
            guard let peer = HostAddress(key) else { throw .malformed("field 'peers': '\(key.prefix(64))' is not an IPv4 address") }
            guard case .string(let text) = verdict, text.utf8.count <= maxStringLength else {
                throw .malformed("field 'peers': the verdict on \(peer) is not a string of at most \(maxStringLength) bytes")
            }
            views[peer] = text
        }
        return views
    }

    /// `mode` and `modeReason`: absent is normal; a mode this version does not know reads as normal too (a
    /// newer writer's mode says nothing we could act on), a reason without a mode is malformed.
    static func mode(name: String?, reason: String?) throws(RecordProblem) -> HostMode {
        guard let name else {
            if reason != nil { throw .malformed("field 'modeReason' without 'mode'") }
            return .normal
        }
        return HostMode(name: name, reason: reason) ?? .normal
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

/// The decoder's fast path: reads a well-formed record in one pass over its bytes, without a JSON tree,
/// a dictionary per object or a string per key.
///
/// It vouches only for what it fully understands and answers nil for everything else — any problem, and
/// also unusual but valid forms (escapes, numbers with a fraction or a sign, an unknown key outside ASCII,
/// a header that is not `kvmha-record 1.<digits>`) — and the caller then runs the general reader, which
/// decides and names the reason. So a record it returns is one the general reader returns too: it accepts
/// the same JSON (unknown members are checked as strictly, duplicate keys refused at every depth, the same
/// depth limit), the same field types and ranges, and the same checksum and host checks.
enum RecordFastReader {
    private static let quote = UInt8(ascii: "\"")
    private static let backslash = UInt8(ascii: "\\")
    private static let newline = UInt8(0x0A)

    /// Whether every byte is below 0x80 (then the input is valid UTF-8 without further checks).
    static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let raw = UnsafeRawPointer(base)
        let count = bytes.count
        var index = 0
        var seen: UInt64 = 0
        while index + 8 <= count {
            seen |= raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < count {
            seen |= UInt64(base[index])
            index += 1
        }
        return seen & 0x8080_8080_8080_8080 == 0
    }

    static func record(in bytes: UnsafeBufferPointer<UInt8>, expectedHost: HostAddress?) -> HeartbeatRecord? {
        let count = bytes.count
        // Header: exactly `kvmha-record 1.<minor digits>`.
        let prefix: StaticString = "kvmha-record 1."
        let prefixCount = prefix.utf8CodeUnitCount
        guard count > prefixCount else { return nil }
        let prefixMatches = prefix.withUTF8Buffer { expected in
            for offset in 0..<prefixCount where bytes[offset] != expected[offset] { return false }
            return true
        }
        guard prefixMatches else { return nil }
        var headerEnd = prefixCount
        while headerEnd < count, isDigit(bytes[headerEnd]) { headerEnd += 1 }
        guard headerEnd < count, bytes[headerEnd] == newline, headerEnd > prefixCount, headerEnd - prefixCount <= 18
        else { return nil }

        // Checksum line: `crc32c <8 lower-case hex digits>\n`, matching the content before it.
        let trailerCount = 16  // "crc32c " + 8 + "\n"
        let lastBreak = count - trailerCount - 1
        guard lastBreak > headerEnd, bytes[lastBreak] == newline, bytes[count - 1] == newline else { return nil }
        let tag: StaticString = "crc32c "
        let tagMatches = tag.withUTF8Buffer { expected in
            for offset in 0..<7 where bytes[lastBreak + 1 + offset] != expected[offset] { return false }
            return true
        }
        guard tagMatches else { return nil }
        let sum = RecordCodec.crc32c(UnsafeBufferPointer(rebasing: bytes[0...lastBreak]))
        for position in 0..<8 {
            let nibble = UInt8(truncatingIfNeeded: sum >> UInt32(28 - 4 * position)) & 0xF
            guard bytes[lastBreak + 8 + position] == hexDigit(nibble) else { return nil }
        }

        var reader = Reader(bytes: bytes, index: headerEnd + 1, end: lastBreak)
        guard let record = reader.body(), reader.atEndAfterSpace else { return nil }
        if let expectedHost, record.host != expectedHost { return nil }
        return record
    }

    @inline(__always) static func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

    @inline(__always) static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    /// The fields of one VM object as they are found.
    private struct VMFields {
        var uuid: String?
        var name: String?
        var state: String?
        var reason: String?
        var sinceMs: Int64?
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var index: Int
        let end: Int

        var atEndAfterSpace: Bool {
            mutating get {
                skipSpace()
                return index == end
            }
        }

        mutating func skipSpace() {
            while index < end {
                switch bytes[index] {
                case 0x20, 0x0A, 0x0D, 0x09: index += 1
                default: return
                }
            }
        }

        /// Skips white space, then consumes `byte` if it is next.
        mutating func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard index < end, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        /// A string without escapes or control characters: the range of its content, the quotes consumed.
        mutating func plainString() -> Range<Int>? {
            guard index < end, bytes[index] == RecordFastReader.quote else { return nil }
            let start = index + 1
            var position = start
            while position < end {
                let byte = bytes[position]
                if byte == RecordFastReader.quote {
                    index = position + 1
                    return start..<position
                }
                if byte == RecordFastReader.backslash || byte < 0x20 { return nil }
                position += 1
            }
            return nil
        }

        /// A string value of a known field, within the readers' length cap.
        mutating func stringValue() -> String? {
            guard let range = plainString(), range.count <= RecordCodec.maxStringLength else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }

        /// The bytes the general reader takes as one number: an optional '-', then up to 40 of [0-9.eE+-].
        mutating func numberText() -> Range<Int>? {
            let start = index
            guard index < end else { return nil }
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            var digits = 0
            while index < end {
                switch bytes[index] {
                case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"),
                    UInt8(ascii: "+"), UInt8(ascii: "-"):
                    digits += 1
                    index += 1
                    if digits > 40 { return nil }
                default:
                    guard digits > 0 else { return nil }
                    return start..<index
                }
            }
            guard digits > 0 else { return nil }
            return start..<index
        }

        /// A number of plain decimal digits with an optional leading '-', small enough that it cannot overflow
        /// (18 digits); anything else is left to the general reader.
        mutating func smallInteger(allowNegative: Bool) -> Int64? {
            guard index < end else { return nil }
            let first = bytes[index]
            guard first == UInt8(ascii: "-") || RecordFastReader.isDigit(first), let range = numberText() else {
                return nil
            }
            var position = range.lowerBound
            let negative = bytes[position] == UInt8(ascii: "-")
            if negative {
                guard allowNegative else { return nil }
                position += 1
            }
            let digitCount = range.upperBound - position
            guard digitCount >= 1, digitCount <= 18 else { return nil }
            var value: Int64 = 0
            while position < range.upperBound {
                let digit = bytes[position] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                value = value * 10 + Int64(digit)
                position += 1
            }
            return negative ? -value : value
        }

        /// Whether the key at `range` is exactly `name`.
        func keyIs(_ range: Range<Int>, _ name: StaticString) -> Bool {
            let length = name.utf8CodeUnitCount
            guard range.count == length else { return false }
            return name.withUTF8Buffer { expected in
                for offset in 0..<length where bytes[range.lowerBound + offset] != expected[offset] { return false }
                return true
            }
        }

        /// Records an unknown key of an object; false when it is not plain ASCII (then its equality with another
        /// key is the general reader's call) or when the object has it already.
        func noteUnknownKey(_ range: Range<Int>, in seen: inout [Range<Int>]) -> Bool {
            for position in range where bytes[position] >= 0x80 { return false }
            for other in seen where other.count == range.count {
                var same = true
                for offset in 0..<range.count where bytes[other.lowerBound + offset] != bytes[range.lowerBound + offset] {
                    same = false
                    break
                }
                if same { return false }
            }
            seen.append(range)
            return true
        }

        /// The record's object. Depths as the general reader counts them: the object is 0, its members 1.
        mutating func body() -> HeartbeatRecord? {
            guard take(UInt8(ascii: "{")) else { return nil }
            var host: String?
            var hostUUID: String??
            var bootID: String?
            var incarnation: String?
            var sequence: UInt64?
            var wallTimeMs: Int64?
            var intervalMs: Int64?
            var vms: [VMEntry]?
            var vmsOmitted: Int64?
            var modeName: String?
            var modeReason: String?
            var peerViews: [HostAddress: String]?
            var unknown: [Range<Int>] = []
            if !take(UInt8(ascii: "}")) {
                while true {
                    skipSpace()
                    guard let key = plainString(), take(UInt8(ascii: ":")) else { return nil }
                    skipSpace()
                    if keyIs(key, "host") {
                        guard host == nil, let value = stringValue() else { return nil }
                        host = value
                    } else if keyIs(key, "hostUUID") {
                        guard hostUUID == nil else { return nil }
                        if index < end && bytes[index] == UInt8(ascii: "n") {
                            guard literal("null") else { return nil }
                            hostUUID = .some(nil)
                        } else {
                            guard let value = stringValue() else { return nil }
                            hostUUID = .some(value)
                        }
                    } else if keyIs(key, "bootID") {
                        guard bootID == nil, let value = stringValue() else { return nil }
                        bootID = value
                    } else if keyIs(key, "incarnation") {
                        guard incarnation == nil, let value = stringValue() else { return nil }
                        incarnation = value
                    } else if keyIs(key, "sequence") {
                        guard sequence == nil, let value = smallInteger(allowNegative: false) else { return nil }
                        sequence = UInt64(value)
                    } else if keyIs(key, "wallTimeMs") {
                        guard wallTimeMs == nil, let value = smallInteger(allowNegative: true) else { return nil }
                        wallTimeMs = value
                    } else if keyIs(key, "intervalMs") {
                        guard intervalMs == nil, let value = smallInteger(allowNegative: true) else { return nil }
                        intervalMs = value
                    } else if keyIs(key, "vms") {
                        guard vms == nil, let value = vmList() else { return nil }
                        vms = value
                    } else if keyIs(key, "vmsOmitted") {
                        guard vmsOmitted == nil, let value = smallInteger(allowNegative: true) else { return nil }
                        vmsOmitted = value
                    } else if keyIs(key, "mode") {
                        guard modeName == nil, let value = stringValue() else { return nil }
                        modeName = value
                    } else if keyIs(key, "modeReason") {
                        guard modeReason == nil, let value = stringValue() else { return nil }
                        modeReason = value
                    } else if keyIs(key, "peers") {
                        guard peerViews == nil, let value = peerMap() else { return nil }
                        peerViews = value
                    } else {
                        guard noteUnknownKey(key, in: &unknown), skipValue(depth: 1) else { return nil }
                    }
                    if take(UInt8(ascii: ",")) { continue }
                    guard take(UInt8(ascii: "}")) else { return nil }
                    break
                }
            }
            guard let host, let address = HostAddress(host), let bootID, let incarnation, let sequence,
                let wallTimeMs, let intervalMs, intervalMs > 0, let vms
            else { return nil }
            let omitted = vmsOmitted ?? 0
            guard omitted >= 0 else { return nil }
            // Anything unusual about the mode: the general reader says what.
            guard let mode = try? RecordCodec.mode(name: modeName, reason: modeReason) else { return nil }
            var record = HeartbeatRecord(
                host: address, hostUUID: hostUUID ?? nil, bootID: bootID, incarnation: incarnation,
                sequence: sequence, wallTimeMs: wallTimeMs, intervalMs: intervalMs, vms: vms,
                vmsOmitted: Int(omitted))
            record.mode = mode
            record.peerViews = peerViews ?? [:]
            return record
        }

        /// The `peers` object: plain dotted addresses to plain strings; anything else goes to the general reader.
        mutating func peerMap() -> [HostAddress: String]? {
            guard take(UInt8(ascii: "{")) else { return nil }
            var views: [HostAddress: String] = [:]
            if take(UInt8(ascii: "}")) { return views }
            while true {
                skipSpace()
                guard let key = plainString(), key.count <= 15, take(UInt8(ascii: ":")) else { return nil }
                skipSpace()
                guard let peer = HostAddress(String(decoding: UnsafeBufferPointer(rebasing: bytes[key]), as: UTF8.self)),
                    views[peer] == nil, let verdict = stringValue()
                else { return nil }
                views[peer] = verdict
                guard views.count <= RecordCodec.maxPeerViews else { return nil }
                if take(UInt8(ascii: ",")) { continue }
                guard take(UInt8(ascii: "}")) else { return nil }
                return views
            }
        }

        /// The `vms` list (depth 1), its objects at depth 2, their members at depth 3.
        mutating func vmList() -> [VMEntry]? {
            guard take(UInt8(ascii: "[")) else { return nil }
            var result: [VMEntry] = []
            if take(UInt8(ascii: "]")) { return result }
            while true {
                guard take(UInt8(ascii: "{")), let vm = vmObject() else { return nil }
                result.append(vm)
                guard result.count <= RecordCodec.maxVMs else { return nil }
                if take(UInt8(ascii: ",")) { continue }
                guard take(UInt8(ascii: "]")) else { return nil }
                return result
            }
        }

        /// One VM's members, after its opening brace.
        mutating func vmObject() -> VMEntry? {
            var fields = VMFields()
            var unknown: [Range<Int>] = []
            if !take(UInt8(ascii: "}")) {
                while true {
                    skipSpace()
                    guard let key = plainString(), take(UInt8(ascii: ":")) else { return nil }
                    skipSpace()
                    if keyIs(key, "uuid") {
                        guard fields.uuid == nil, let value = stringValue() else { return nil }
                        fields.uuid = value
                    } else if keyIs(key, "name") {
                        guard fields.name == nil, let value = stringValue() else { return nil }
                        fields.name = value
                    } else if keyIs(key, "state") {
                        guard fields.state == nil, let value = stringValue() else { return nil }
                        fields.state = value
                    } else if keyIs(key, "reason") {
                        guard fields.reason == nil, let value = stringValue() else { return nil }
                        fields.reason = value
                    } else if keyIs(key, "sinceMs") {
                        guard fields.sinceMs == nil, let value = smallInteger(allowNegative: true) else { return nil }
                        fields.sinceMs = value
                    } else {
                        guard noteUnknownKey(key, in: &unknown), skipValue(depth: 3) else { return nil }
                    }
                    if take(UInt8(ascii: ",")) { continue }
                    guard take(UInt8(ascii: "}")) else { return nil }
                    break
                }
            }
            guard let uuid = fields.uuid, let name = fields.name, let state = fields.state,
                let reason = fields.reason, let sinceMs = fields.sinceMs
            else { return nil }
            return VMEntry(uuid: uuid, name: name, state: VMPowerState(rawValue: state), reason: reason, sinceMs: sinceMs)
        }

        mutating func literal(_ text: StaticString) -> Bool {
            let length = text.utf8CodeUnitCount
            guard end - index >= length else { return false }
            let matches = text.withUTF8Buffer { expected in
                for offset in 0..<length where bytes[index + offset] != expected[offset] { return false }
                return true
            }
            if matches { index += length }
            return matches
        }

        /// Checks and skips a value of a member this reader does not know (a newer writer's field), as strictly
        /// as the general reader parses it; nil-free: false means "let the general reader decide".
        mutating func skipValue(depth: Int) -> Bool {
            guard depth < JSONValue.maxDepth, index < end else { return false }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                index += 1
                if take(UInt8(ascii: "}")) { return true }
                var keys: [Range<Int>] = []
                while true {
                    skipSpace()
                    guard let key = plainString(), noteUnknownKey(key, in: &keys), take(UInt8(ascii: ":")) else {
                        return false
                    }
                    skipSpace()
                    guard skipValue(depth: depth + 1) else { return false }
                    if take(UInt8(ascii: ",")) { continue }
                    return take(UInt8(ascii: "}"))
                }
            case UInt8(ascii: "["):
                index += 1
                if take(UInt8(ascii: "]")) { return true }
                while true {
                    skipSpace()
                    guard skipValue(depth: depth + 1) else { return false }
                    if take(UInt8(ascii: ",")) { continue }
                    return take(UInt8(ascii: "]"))
                }
            case RecordFastReader.quote: return plainString() != nil
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return numberText() != nil
            default: return false
            }
        }
    }
}

extension RecordCodec {
    /// CRC-32C of `bytes`, the same value as `CRC32C.checksum`, eight bytes per step ("slicing by 8"): the
    /// checksum is computed over every record written and every record read, a thousand per scan.
    static func crc32c(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        guard let base = bytes.baseAddress else { return 0 }
        let raw = UnsafeRawPointer(base)
        let count = bytes.count
        return crcTables.withUnsafeBufferPointer { table in
            var crc: UInt32 = 0xFFFF_FFFF
            var index = 0
            while index + 8 <= count {
                let low = crc ^ UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt32.self))
                let high = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index + 4, as: UInt32.self))
                crc =
                    table[7 * 256 + Int(low & 0xFF)] ^ table[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ table[5 * 256 + Int((low >> 16) & 0xFF)] ^ table[4 * 256 + Int(low >> 24)]
                    ^ table[3 * 256 + Int(high & 0xFF)] ^ table[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ table[256 + Int((high >> 16) & 0xFF)] ^ table[Int(high >> 24)]
                index += 8
            }
            while index < count {
                crc = table[Int((crc ^ UInt32(base[index])) & 0xFF)] ^ (crc >> 8)
                index += 1
            }
            return crc ^ 0xFFFF_FFFF
        }
    }

    /// Eight tables of 256 entries: the first is the byte-wise table, each next one advances by another byte.
    private static let crcTables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var crc = UInt32(index)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            tables[index] = crc
        }
        for slice in 1..<8 {
            for index in 0..<256 {
                let previous = tables[(slice - 1) * 256 + index]
                tables[slice * 256 + index] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()
}
