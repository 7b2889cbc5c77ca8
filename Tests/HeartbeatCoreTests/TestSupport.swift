import HeartbeatCore

// Shared helpers for the HeartbeatCore tests: a seeded generator so every random case reproduces, record
// builders, and framing of hand-made bodies with a correct checksum so the JSON reader itself gets tested.

/// SplitMix64 (Steele, Lea, Flood 2014). Our own, rather than the system generator, so a failing seed
/// reproduces on every machine and toolchain; the helpers below avoid the standard library's
/// `random(in:using:)`, whose algorithm is not promised to stay the same.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform enough in `0..<bound` (multiply-high; the bias is below 2^-40 for our bounds).
    mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0)
        return Int(next().multipliedFullWidth(by: UInt64(bound)).high)
    }

    mutating func within(_ range: ClosedRange<Int>) -> Int { range.lowerBound + below(range.count) }

    mutating func oneIn(_ n: Int) -> Bool { below(n) == 0 }

    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count + 8)
        while out.count < count { withUnsafeBytes(of: next()) { out += $0 } }
        return Array(out.prefix(count))
    }
}

enum Fixture {
    static let host = HostAddress(10, 1, 2, 3)
    static let otherHost = HostAddress(10, 1, 2, 4)

    static func record(
        host: HostAddress = host,
        sequence: UInt64 = 1,
        incarnation: String = "inc-a",
        bootID: String = "boot-a",
        wallTimeMs: Int64 = 1_700_000_000_000,
        vms: [VMEntry] = []
    ) -> HeartbeatRecord {
        HeartbeatRecord(
            host: host,
            hostUUID: "4c1d7e8a-0000-4000-8000-000000000001",
            bootID: bootID,
            incarnation: incarnation,
            sequence: sequence,
            wallTimeMs: wallTimeMs,
            intervalMs: 5000,
            vms: vms
        )
    }

    static let vm = VMEntry(
        uuid: "9d6b0c3e-1111-4222-8333-444455556666",
        name: "i-2-345-VM",
        state: .running,
        reason: "booted",
        sinceMs: 1_699_999_000_000
    )

    /// A file with the given header line and body, and a correct checksum line.
    static func frame(_ body: String, header: String = "kvmha-record 1.0") -> [UInt8] {
        frame(bytes: Array(body.utf8), header: header)
    }

    static func frame(bytes body: [UInt8], header: String = "kvmha-record 1.0") -> [UInt8] {
        var covered = Array(header.utf8)
        covered.append(0x0A)
        covered += body
        covered.append(0x0A)
        return covered + Array("crc32c \(CRC32C.hex(CRC32C.checksum(covered)))\n".utf8)
    }

    /// The JSON body line of an encoded record (between the header line and the checksum line).
    static func body(of encoded: [UInt8]) -> [UInt8] {
        let first = encoded.firstIndex(of: 0x0A)!
        let last = encoded.dropLast().lastIndex(of: 0x0A)!
        return Array(encoded[(first + 1)..<last])
    }

    /// The members of a valid record body, in order, as raw JSON text, for building bodies that differ from
    /// a valid one in exactly one place.
    static let members: [(key: String, json: String)] = [
        ("host", #""10.1.2.3""#),
        ("hostUUID", #""4c1d7e8a-0000-4000-8000-000000000001""#),
        ("bootID", #""boot-a""#),
        ("incarnation", #""inc-a""#),
        ("sequence", "42"),
        ("wallTimeMs", "1700000000000"),
        ("intervalMs", "5000"),
        ("vms", vmsJSON([vmMembers])),
    ]

    static let vmMembers: [(key: String, json: String)] = [
        ("uuid", #""9d6b0c3e-1111-4222-8333-444455556666""#),
        ("name", #""i-2-345-VM""#),
        ("state", #""running""#),
        ("reason", #""booted""#),
        ("sinceMs", "1699999000000"),
    ]

    static func object(_ members: [(key: String, json: String)]) -> String {
        "{" + members.map { "\"\($0.key)\":\($0.json)" }.joined(separator: ",") + "}"
    }

    static func vmsJSON(_ vms: [[(key: String, json: String)]]) -> String {
        "[" + vms.map(object).joined(separator: ",") + "]"
    }

    /// `members` with `key` removed (`json` nil) or replaced.
    static func members(replacing key: String, with json: String?) -> [(key: String, json: String)] {
        members.compactMap { member in
            guard member.key == key else { return member }
            return json.map { (key, $0) }
        }
    }

    static func vmMembers(replacing key: String, with json: String?) -> [(key: String, json: String)] {
        vmMembers.compactMap { member in
            guard member.key == key else { return member }
            return json.map { (key, $0) }
        }
    }
}

/// Random records for property tests, biased towards the awkward: edge integers, escapes, control
/// characters, every UTF-8 length, combining marks, empty strings and empty VM lists.
enum RecordGenerator {
    static let scalars: [Unicode.Scalar] = {
        var scalars: [Unicode.Scalar] = []
        scalars += (0x00...0x1F).map { Unicode.Scalar(UInt8($0)) }  // control characters
        scalars += ["\"", "\\", "/", " ", "\u{7F}", "'", "{", "}", "[", "]", ":", ",", "\u{2028}", "\u{2029}"]
        scalars += ["é", "e", "\u{301}", "ß", "Ω", "Я", "日", "本", "\u{FEFF}", "\u{FFFD}", "\u{FFFF}"]
        scalars += ["😀", "👩", "\u{200D}", "💻", "\u{1F1E9}", "\u{1F1EA}", "\u{10FFFF}", "\u{E000}"]
        return scalars
    }()

    static let plain: [Unicode.Scalar] = Array("abcdefghijklmnopqrstuvwxyz0123456789-_.".unicodeScalars)

    /// A string of at most `maxBytes` UTF-8 bytes (the decoder's per-field cap is 256); one in `fullOneIn`
    /// is filled up to the cap.
    static func string(_ rng: inout SplitMix64, maxBytes: Int = 256, fullOneIn: Int = 10) -> String {
        var view = String.UnicodeScalarView()
        var used = 0
        let length: Int
        if rng.oneIn(fullOneIn) {
            length = maxBytes
        } else {
            length = rng.oneIn(8) ? 0 : rng.within(1...24)
        }
        let alphabet = rng.oneIn(3) ? plain : scalars
        while view.count < length {
            let scalar = alphabet[rng.below(alphabet.count)]
            let size = UTF8.width(scalar)
            if used + size > maxBytes { break }
            view.append(scalar)
            used += size
        }
        return String(view)
    }

    static func int64(_ rng: inout SplitMix64) -> Int64 {
        switch rng.below(8) {
        case 0: return rng.pick([Int64.min, Int64.max, 0, -1, 1, Int64.min + 1, Int64.max - 1])
        case 1: return Int64(bitPattern: rng.next())
        default: return 1_600_000_000_000 + Int64(rng.below(400_000_000_000))
        }
    }

    static func positiveInt64(_ rng: inout SplitMix64) -> Int64 {
        switch rng.below(6) {
        case 0: return rng.pick([1, Int64.max, 5000, 999])
        case 1: return Int64(rng.next() >> 1) | 1
        default: return Int64(rng.within(1...3_600_000))
        }
    }

    static func uint64(_ rng: inout SplitMix64) -> UInt64 {
        switch rng.below(6) {
        case 0: return rng.pick([0, 1, UInt64.max, UInt64.max - 1, UInt64(Int64.max), UInt64(Int64.max) + 1])
        case 1: return rng.next()
        default: return UInt64(rng.below(10_000_000))
        }
    }

    static let states: [VMPowerState] = [
        .running, .blocked, .paused, .shuttingDown, .shutoff, .crashed, .pmsuspended, .noState,
        VMPowerState(rawValue: "some-future-state"),
    ]

    static func vm(_ rng: inout SplitMix64, fullOneIn: Int) -> VMEntry {
        VMEntry(
            uuid: string(&rng, fullOneIn: fullOneIn),
            name: string(&rng, fullOneIn: fullOneIn),
            state: rng.oneIn(4) ? VMPowerState(rawValue: string(&rng, fullOneIn: fullOneIn)) : rng.pick(states),
            reason: string(&rng, fullOneIn: fullOneIn),
            sinceMs: int64(&rng)
        )
    }

    /// A random record. `small` records (0–2 VMs, rarely a full-length string) keep the fuzz tests fast in a
    /// debug build; the others range up to 40 VMs.
    static func record(_ rng: inout SplitMix64, small: Bool = false) -> HeartbeatRecord {
        let vmCount: Int
        if small {
            vmCount = rng.below(3)
        } else {
            switch rng.below(10) {
            case 0: vmCount = 0
            case 1: vmCount = rng.within(1...40)
            default: vmCount = rng.within(1...5)
            }
        }
        let fullOneIn = small ? 50 : 10
        return HeartbeatRecord(
            host: HostAddress(rng.byte(), rng.byte(), rng.byte(), rng.byte()),
            hostUUID: rng.oneIn(3) ? nil : string(&rng, fullOneIn: fullOneIn),
            bootID: string(&rng, fullOneIn: fullOneIn),
            incarnation: string(&rng, fullOneIn: fullOneIn),
            sequence: uint64(&rng),
            wallTimeMs: int64(&rng),
            intervalMs: positiveInt64(&rng),
            vms: (0..<vmCount).map { _ in vm(&rng, fullOneIn: fullOneIn) }
        )
    }
}
