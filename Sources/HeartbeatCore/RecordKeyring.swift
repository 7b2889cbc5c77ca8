/// One cluster key for signing records. The secret is never printed: `description` shows the id only.
public struct RecordKey: Sendable, Hashable, CustomStringConvertible {
    /// Named in every signed record: a short token of `[A-Za-z0-9._-]`, at most `RecordKeyring.maxKeyIDLength`.
    public let id: String
    let secret: [UInt8]
    /// When the key was retired (Unix ms); nil for an active key.
    public let retiredAtMs: Int64?

    public init(id: String, secret: [UInt8], retiredAtMs: Int64? = nil) throws(RecordKeyringError) {
        guard RecordKeyring.isValidKeyID(id) else {
            throw RecordKeyringError(
                line: nil,
                "key id '\(RecordKeyring.printable(id))' is not valid (1-\(RecordKeyring.maxKeyIDLength) of A-Z a-z 0-9 . _ -)"
            )
        }
        guard secret.count >= RecordKeyring.minimumSecretBytes else {
            throw RecordKeyringError(
                line: nil,
                "key \(id): the secret is \(secret.count) bytes, at least \(RecordKeyring.minimumSecretBytes) are needed (e.g. `openssl rand -hex 32`)"
            )
        }
        self.id = id
        self.secret = secret
        self.retiredAtMs = retiredAtMs
    }

    public var isRetired: Bool { retiredAtMs != nil }
    public var description: String { retiredAtMs == nil ? id : "\(id) (retired)" }
}

/// What is wrong with a key file; names the line, never shows a secret.
public struct RecordKeyringError: Error, Equatable, Sendable, CustomStringConvertible {
    /// 1-based line of the key file, when the problem is on one line.
    public var line: Int?
    public var message: String

    public init(line: Int?, _ message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { line.map { "line \($0): \(message)" } ?? message }
}

/// The cluster keys of a host, from its key file. The first active key signs; every key verifies, a retired
/// one only until `retiredAt + gracePeriod` (so hosts can switch keys one after another during a rotation).
///
/// Key file format (text, one key per line; blank lines and lines starting with `#` are ignored):
///
/// ```
/// # <key id> <secret> [retired-at=<RFC 3339 time or Unix seconds>]
/// k2025b 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
/// k2025a 3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= retired-at=2025-06-01T12:00:00Z
/// ```
///
/// A secret is at least 32 bytes, written as hex (an even number of hex digits) or standard base64; a
/// `hex:` or `base64:` prefix makes the choice explicit.
public struct RecordKeyring: Sendable {
    public static let maxKeyIDLength = 32
    public static let minimumSecretBytes = 32
    static let maximumSecretBytes = 1024

    /// In file order.
    public let keys: [RecordKey]
    /// How long a retired key is still accepted after its `retired-at`.
    public let gracePeriod: Duration
    /// The first key that is not retired: it signs this host's records.
    public let signingKey: RecordKey

    public init(keys: [RecordKey], gracePeriod: Duration) throws(RecordKeyringError) {
        guard let signing = keys.first(where: { !$0.isRetired }) else {
            throw RecordKeyringError(
                line: nil,
                keys.isEmpty
                    ? "no key: list at least one `<key id> <secret>` line"
                    : "every key is retired: nothing to sign with"
            )
        }
        var seen: Set<String> = []
        for key in keys where !seen.insert(key.id).inserted {
            throw RecordKeyringError(line: nil, "key id \(key.id) is listed twice")
        }
        guard gracePeriod >= .zero else { throw RecordKeyringError(line: nil, "the grace period must not be negative") }
        self.keys = keys
        self.gracePeriod = gracePeriod
        self.signingKey = signing
    }

    /// Parses a key file's text.
    public static func parse(_ text: String, gracePeriod: Duration) throws(RecordKeyringError) -> RecordKeyring {
        var keys: [RecordKey] = []
        var ids: Set<String> = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            let fields = rawLine.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard let first = fields.first, !first.hasPrefix("#") else { continue }
            let id = String(first)
            guard isValidKeyID(id) else {
                throw RecordKeyringError(
                    line: number,
                    "key id '\(printable(id))' is not valid (1-\(maxKeyIDLength) of A-Z a-z 0-9 . _ -)"
                )
            }
            guard fields.count >= 2 else {
                throw RecordKeyringError(
                    line: number,
                    "key \(id) has no secret (expected `<key id> <secret> [retired-at=…]`)"
                )
            }
            guard let secret = decodeSecret(fields[1]) else {
                throw RecordKeyringError(line: number, "key \(id): the secret is neither hex nor base64")
            }
            var retiredAtMs: Int64?
            for option in fields.dropFirst(2) {
                guard option.hasPrefix("retired-at=") else {
                    throw RecordKeyringError(
                        line: number,
                        "key \(id): unknown field '\(printable(String(option)))' (known: retired-at=)"
                    )
                }
                guard let when = parseTime(option.dropFirst("retired-at=".count)) else {
                    throw RecordKeyringError(
                        line: number,
                        "key \(id): retired-at '\(printable(String(option.dropFirst("retired-at=".count))))' is not an RFC 3339 time (2025-06-01T12:00:00Z) or Unix seconds"
                    )
                }
                retiredAtMs = when
            }
            guard ids.insert(id).inserted else {
                throw RecordKeyringError(line: number, "key id \(id) is listed twice")
            }
            do {
                keys.append(try RecordKey(id: id, secret: secret, retiredAtMs: retiredAtMs))
            } catch {
                throw RecordKeyringError(line: number, error.message)
            }
        }
        return try RecordKeyring(keys: keys, gracePeriod: gracePeriod)
    }

    /// The key named `id`, whether or not it is still accepted.
    public func key(id: String) -> RecordKey? {
        keys.first { $0.id == id }
    }

    /// Whether a record signed with `key` is accepted at wall-clock time `wallNowMs`.
    public func accepts(_ key: RecordKey, wallNowMs: Int64) -> Bool {
        guard let retiredAtMs = key.retiredAtMs else { return true }
        let graceMs = gracePeriod.wholeMilliseconds
        let (end, overflow) = retiredAtMs.addingReportingOverflow(graceMs)
        return overflow || wallNowMs <= end
    }

    public static func isValidKeyID<S: StringProtocol>(_ id: S) -> Bool {
        guard !id.isEmpty, id.utf8.count <= maxKeyIDLength else { return false }
        return id.utf8.allSatisfy(isKeyIDByte)
    }

    static func isKeyIDByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default: false
        }
    }

    /// Text from a key file as it may appear in a message: printable ASCII, cut short.
    static func printable(_ text: String) -> String {
        let cut = text.unicodeScalars.prefix(40).map {
            $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?"
        }
        return String(cut) + (text.unicodeScalars.count > 40 ? "…" : "")
    }

    // MARK: Secrets

    static func decodeSecret(_ text: Substring) -> [UInt8]? {
        let bytes: [UInt8]?
        if text.hasPrefix("hex:") {
            bytes = decodeHex(text.dropFirst(4).utf8)
        } else if text.hasPrefix("base64:") {
            bytes = decodeBase64(text.dropFirst(7).utf8)
        } else {
            bytes = decodeHex(text.utf8) ?? decodeBase64(text.utf8)
        }
        guard let bytes, bytes.count <= maximumSecretBytes else { return nil }
        return bytes
    }

    static func decodeHex<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        guard !text.isEmpty, text.count % 2 == 0 else { return nil }
        var result: [UInt8] = []
        result.reserveCapacity(text.count / 2)
        var high: UInt8?
        for byte in text {
            guard let value = hexValue(byte) else { return nil }
            if let first = high {
                result.append(first << 4 | value)
                high = nil
            } else {
                high = value
            }
        }
        return result
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Standard base64 (RFC 4648 §4) with its padding; nil for anything else.
    static func decodeBase64<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        let characters = Array(text)
        guard !characters.isEmpty, characters.count % 4 == 0 else { return nil }
        var padding = 0
        if characters.last == UInt8(ascii: "=") { padding += 1 }
        if characters.count >= 2 && characters[characters.count - 2] == UInt8(ascii: "=") { padding += 1 }
        var result: [UInt8] = []
        result.reserveCapacity(characters.count / 4 * 3)
        var accumulator: UInt32 = 0
        for (index, byte) in characters.enumerated() {
            let value: UInt32
            if index >= characters.count - padding {
                guard byte == UInt8(ascii: "=") else { return nil }
                value = 0
            } else {
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - UInt8(ascii: "A"))
                case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - UInt8(ascii: "a")) + 26
                case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - UInt8(ascii: "0")) + 52
                case UInt8(ascii: "+"): value = 62
                case UInt8(ascii: "/"): value = 63
                default: return nil
                }
            }
            accumulator = accumulator << 6 | value
            if index % 4 == 3 {
                result.append(UInt8(truncatingIfNeeded: accumulator >> 16))
                result.append(UInt8(truncatingIfNeeded: accumulator >> 8))
                result.append(UInt8(truncatingIfNeeded: accumulator))
                accumulator = 0
            }
        }
        result.removeLast(padding)
        return result
    }

    // MARK: Times

    /// Unix seconds (digits only), or an RFC 3339 date-time (`2025-06-01T12:00:00Z`, `…T14:00:00.5+02:00`),
    /// as Unix ms.
    static func parseTime(_ text: Substring) -> Int64? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return nil }
        if bytes.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            guard bytes.count <= 12, let seconds = Int64(text) else { return nil }
            return seconds * 1000
        }
        var index = 0
        func number(_ digits: Int) -> Int64? {
            guard index + digits <= bytes.count else { return nil }
            var value: Int64 = 0
            for offset in 0..<digits {
                let byte = bytes[index + offset]
                guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            index += digits
            return value
        }
        func take(_ characters: String) -> Bool {
            guard index < bytes.count, characters.utf8.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = number(4), take("-"), let month = number(2), take("-"), let day = number(2),
            take("Tt "), let hour = number(2), take(":"), let minute = number(2), take(":"), let second = number(2),
            (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day), hour < 24, minute < 60,
            second < 61
        else { return nil }
        var milliseconds: Int64 = 0
        if take(".") {
            var digits = 0
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0") && bytes[index] <= UInt8(ascii: "9") {
                if digits < 3 { milliseconds = milliseconds * 10 + Int64(bytes[index] - UInt8(ascii: "0")) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            if digits < 3 { for _ in digits..<3 { milliseconds *= 10 } }
        }
        var offsetSeconds: Int64 = 0
        if !take("Zz") {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") else {
                return nil
            }
            let sign: Int64 = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            index += 1
            guard let offsetHours = number(2), take(":"), let offsetMinutes = number(2), offsetHours < 24,
                offsetMinutes < 60
            else { return nil }
            offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
        }
        guard index == bytes.count else { return nil }
        let days = daysSinceEpoch(year: year, month: month, day: day)
        let seconds = days * 86400 + hour * 3600 + minute * 60 + min(second, 59) - offsetSeconds
        return seconds * 1000 + milliseconds
    }

    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days-from-civil).
    static func daysSinceEpoch(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146097 + dayOfEra - 719468
    }
}
