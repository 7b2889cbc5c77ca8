/// A host's identity on shared storage: its private (management-network) IPv4 address, exactly as
/// CloudStack names heartbeat files (`hb-<ip>`).
///
/// Only canonical dotted quads are accepted, so a `HostAddress` is always safe to use as a file-name
/// component: it can never contain `/`, `..` or anything else that builds a path out of outside text.
public struct HostAddress: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public let octets: (UInt8, UInt8, UInt8, UInt8)

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        octets = (a, b, c, d)
    }

    /// Parses a canonical IPv4 dotted quad (`10.0.0.1`); no leading zeros, no spaces, nothing else.
    public init?(_ text: some StringProtocol) {
        var parts: [UInt8] = []
        parts.reserveCapacity(4)
        var value = 0
        var digits = 0
        var leadingZero = false
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if digits == 1 && leadingZero { return nil }
                if digits == 0 { leadingZero = byte == UInt8(ascii: "0") }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
                digits += 1
                if digits > 3 || value > 255 { return nil }
            case UInt8(ascii: "."):
                if digits == 0 || parts.count == 3 { return nil }
                parts.append(UInt8(value))
                value = 0
                digits = 0
            default:
                return nil
            }
        }
        if digits == 0 || parts.count != 3 { return nil }
        parts.append(UInt8(value))
        octets = (parts[0], parts[1], parts[2], parts[3])
    }

    public var description: String { "\(octets.0).\(octets.1).\(octets.2).\(octets.3)" }

    public static func == (lhs: HostAddress, rhs: HostAddress) -> Bool { lhs.packed == rhs.packed }
    public static func < (lhs: HostAddress, rhs: HostAddress) -> Bool { lhs.packed < rhs.packed }
    public func hash(into hasher: inout Hasher) { hasher.combine(packed) }

    private var packed: UInt32 {
        UInt32(octets.0) << 24 | UInt32(octets.1) << 16 | UInt32(octets.2) << 8 | UInt32(octets.3)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let address = HostAddress(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not an IPv4 address")
            )
        }
        self = address
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
