import HeartbeatCore
import Testing

/// How many inputs each fuzz test decodes; together at least 100,000 (issue 2, "Show" item 2).
enum FuzzBudget {
    static let roundTripRecords = 1_000  // large records (up to 40 VMs): the slowest inputs in a debug build
    static let truncatedRecords = 40  // every prefix of each, and of two edge records
    static let minimumTruncations = 25_000
    static let byteSubstitutions = 25_000
    static let extensions = 8_000
    static let randomBytes = 15_000
    static let mutatedWithChecksum = 20_000
    static let randomBodies = 10_000

    static var total: Int {
        roundTripRecords + minimumTruncations + byteSubstitutions + extensions + randomBytes + mutatedWithChecksum
            + randomBodies
    }
}

/// Collects the first few failures of a property instead of flooding the log with thousands.
struct Failures {
    private(set) var count = 0
    private(set) var examples: [String] = []

    mutating func record(_ text: @autoclosure () -> String) {
        count += 1
        if examples.count < 5 { examples.append(text()) }
    }

    var summary: String { "\(count) failures, first: \(examples.joined(separator: " | "))" }
}

/// Round trip of random records, and a fuzz of the decoder with random and mutated input: every input gives
/// a record or a `RecordProblem`, never a trap.
@Suite("RecordCodec properties")
struct RecordCodecPropertyTests {
    static let problemsTheCodecCanGive: Set<String> = [
        "empty", "oversized", "not-utf8", "truncated", "not-a-record", "unsupported-version", "bad-checksum",
        "malformed",
        "wrong-host",
    ]

    /// Decodes and checks what holds for every input: the problem is one the codec gives, the size rules
    /// come first, and a record that decodes re-encodes to something that decodes to the same record.
    @discardableResult
    static func decodeChecked(
        _ bytes: [UInt8],
        expectedHost: HostAddress?,
        failures: inout Failures,
        _ context: @autoclosure () -> String
    ) -> Result<HeartbeatRecord, RecordProblem> {
        let result = RecordCodec.decode(bytes, expectedHost: expectedHost)
        switch result {
        case .success(let record):
            if let expectedHost, record.host != expectedHost { failures.record("\(context()): host \(record.host)") }
            let again = RecordCodec.encode(record)
            if RecordCodec.decode(again, expectedHost: record.host) != .success(record) {
                failures.record("\(context()): decoded record does not round-trip")
            }
        case .failure(let problem):
            if !problemsTheCodecCanGive.contains(problem.code) { failures.record("\(context()): \(problem.code)") }
            if bytes.isEmpty && problem != .empty { failures.record("\(context()): empty gave \(problem)") }
            if bytes.count > RecordCodec.maxBytes && problem != .oversized(bytes.count) {
                failures.record("\(context()): \(bytes.count) bytes gave \(problem)")
            }
            if problem.description.isEmpty { failures.record("\(context()): empty description") }
        }
        return result
    }

    /// Records that stress the encoder: every limit at once.
    static var edgeRecords: [HeartbeatRecord] {
        let emoji = String(repeating: "😀", count: 64)  // 256 bytes
        // 256 bytes, each written as six in JSON.
        let controls = String(String.UnicodeScalarView((0..<256).map { Unicode.Scalar(UInt8($0 % 32)) }))
        let quotes = String(repeating: "\"\\", count: 128)
        let combining = String(repeating: "e\u{301}", count: 85)  // 255 bytes
        let vm = VMEntry(
            uuid: controls,
            name: quotes,
            state: VMPowerState(rawValue: emoji),
            reason: combining,
            sinceMs: .min
        )
        return [
            HeartbeatRecord(
                host: HostAddress(255, 255, 255, 255),
                hostUUID: emoji,
                bootID: controls,
                incarnation: quotes,
                sequence: .max,
                wallTimeMs: .max,
                intervalMs: .max,
                vms: [vm, vm]
            ),
            HeartbeatRecord(
                host: HostAddress(0, 0, 0, 0),
                hostUUID: "",
                bootID: "",
                incarnation: "",
                sequence: 0,
                wallTimeMs: .min,
                intervalMs: 1,
                vms: []
            ),
            HeartbeatRecord(
                host: HostAddress(127, 0, 0, 1),
                hostUUID: nil,
                bootID: "\u{0}",
                incarnation: "\u{7F}\u{FEFF}\u{2028}",
                sequence: 1,
                wallTimeMs: -1,
                intervalMs: 5000,
                vms: (0..<300).map {
                    VMEntry(uuid: "\($0)", name: "i-2-\($0)-VM", state: .running, reason: "", sinceMs: Int64($0))
                }
            ),
        ]
    }

    @Test func edgeRecordsRoundTrip() {
        for record in Self.edgeRecords {
            let encoded = RecordCodec.encode(record)
            #expect(encoded.count <= RecordCodec.maxBytes)
            #expect(RecordCodec.decode(encoded, expectedHost: record.host) == .success(record))
            #expect(RecordCodec.encode(record) == encoded, "encoding is deterministic")
        }
    }

    /// Property: decode(encode(r)) == r, byte for byte (Swift's `==` on strings is canonical equivalence,
    /// so the re-encoded bytes are compared too).
    @Test func randomRecordsRoundTrip() {
        var rng = SplitMix64(seed: 0x5EED_0001)
        var failures = Failures()
        var oversized = 0
        for index in 0..<FuzzBudget.roundTripRecords {
            let record = RecordGenerator.record(&rng)
            let encoded = RecordCodec.encode(record)
            if encoded.count > RecordCodec.maxBytes {
                // The generator stays within the caps but 40 VMs of escaped control characters can exceed 64 KiB.
                oversized += 1
                if RecordCodec.decode(encoded, expectedHost: nil) != .failure(.oversized(encoded.count)) {
                    failures.record("#\(index): oversized record not reported as such")
                }
                continue
            }
            switch RecordCodec.decode(encoded, expectedHost: record.host) {
            case .success(let decoded):
                if decoded != record { failures.record("#\(index): decoded \(decoded) != \(record)") }
                if RecordCodec.encode(decoded) != encoded { failures.record("#\(index): re-encoding differs") }
            case .failure(let problem):
                failures.record("#\(index): \(problem) for \(record)")
            }
            if RecordCodec.decode(encoded, expectedHost: nil) != .success(record) {
                failures.record("#\(index): differs without an expected host")
            }
        }
        #expect(failures.count == 0, "seed 0x5EED_0001: \(failures.summary)")
        #expect(oversized < FuzzBudget.roundTripRecords / 20, "the round trip must mostly test records that fit")
    }

    /// Every strict prefix of a valid record is empty, truncated, or cut inside a UTF-8 sequence.
    @Test func truncatedAtEveryLength() {
        var rng = SplitMix64(seed: 0x5EED_0002)
        var failures = Failures()
        var inputs = 0
        // Not the 300-VM edge record: its 23,000 prefixes would cost more than all the others together.
        let records =
            Self.edgeRecords.prefix(2)
            + (0..<FuzzBudget.truncatedRecords).map { _ in RecordGenerator.record(&rng, small: true) }
        for (index, record) in records.enumerated() {
            let encoded = RecordCodec.encode(record)
            guard encoded.count <= RecordCodec.maxBytes else { continue }
            for length in 0..<encoded.count {
                inputs += 1
                let prefix = Array(encoded[..<length])
                let result = Self.decodeChecked(
                    prefix,
                    expectedHost: record.host,
                    failures: &failures,
                    "record \(index) cut at \(length)"
                )
                switch result {
                case .failure(.empty), .failure(.truncated), .failure(.notUTF8): break
                default: failures.record("record \(index) cut at \(length): \(result)")
                }
            }
        }
        #expect(failures.count == 0, "seed 0x5EED_0002: \(failures.summary)")
        #expect(inputs >= FuzzBudget.minimumTruncations)
    }

    /// Any one byte changed anywhere is caught: by the checksum (CRC-32C detects every burst of up to 32 bits),
    /// or earlier by the structure checks. Exhaustive over positions for one record, random for the rest.
    @Test func everySingleByteChangeIsRejected() {
        var rng = SplitMix64(seed: 0x5EED_0003)
        var failures = Failures()
        var inputs = 0
        func check(_ original: [UInt8], _ position: Int, _ value: UInt8, _ host: HostAddress, _ label: String) {
            guard original[position] != value else { return }
            var bytes = original
            bytes[position] = value
            inputs += 1
            if case .success = Self.decodeChecked(bytes, expectedHost: host, failures: &failures, label) {
                failures.record("\(label): byte \(position) set to \(value) still decodes")
            }
        }
        let fixed = RecordCodec.encode(Fixture.record(sequence: 42, vms: [Fixture.vm]))
        for position in fixed.indices {
            for mask: UInt8 in [0x01, 0x20, 0x80, 0xFF] {
                check(fixed, position, fixed[position] ^ mask, Fixture.host, "fixed record")
            }
        }
        while inputs < FuzzBudget.byteSubstitutions {
            let record = RecordGenerator.record(&rng, small: true)
            let encoded = RecordCodec.encode(record)
            guard encoded.count <= RecordCodec.maxBytes else { continue }
            for _ in 0..<50 {
                check(encoded, rng.below(encoded.count), rng.byte(), record.host, "random record")
            }
        }
        #expect(failures.count == 0, "seed 0x5EED_0003: \(failures.summary)")
    }

    /// Valid records with bytes appended: never accepted.
    @Test func extendedRecordsAreRejected() {
        var rng = SplitMix64(seed: 0x5EED_0004)
        var failures = Failures()
        let suffixes: [[UInt8]] = ["\n", " ", "\r\n", "crc32c 00000000\n", "{}\n", "\u{0}"].map { Array($0.utf8) }
        var records: [[UInt8]] = []
        for _ in 0..<50 {
            let encoded = RecordCodec.encode(RecordGenerator.record(&rng, small: true))
            if encoded.count < RecordCodec.maxBytes - 100 { records.append(encoded) }
        }
        for index in 0..<FuzzBudget.extensions {
            let original = records[index % records.count]
            var bytes = original
            if rng.oneIn(3) {
                bytes += rng.pick(suffixes)
            } else {
                bytes += rng.bytes(rng.within(1...64))
            }
            if rng.oneIn(10) {
                // A second, correct checksum line over everything before it: the old one is now inside the body.
                bytes += Array("crc32c \(CRC32C.hex(CRC32C.checksum(bytes)))\n".utf8)
            }
            if case .success = Self.decodeChecked(bytes, expectedHost: nil, failures: &failures, "extension #\(index)")
            {
                failures.record("extension #\(index) decodes: \(bytes.suffix(80))")
            }
        }
        let appendedChecksum = records[0] + Array("crc32c \(CRC32C.hex(CRC32C.checksum(records[0])))\n".utf8)
        guard case .failure(.malformed) = RecordCodec.decode(appendedChecksum, expectedHost: nil) else {
            Issue.record("a record followed by a checksum of itself must be malformed")
            return
        }
        #expect(failures.count == 0, "seed 0x5EED_0004: \(failures.summary)")
    }

    /// Random bytes, mostly short, some beyond the cap, some behind a valid header line.
    @Test func randomBytesNeverTrap() {
        var rng = SplitMix64(seed: 0x5EED_0005)
        var failures = Failures()
        var decoded = 0
        let headers = ["kvmha-record 1.0\n", "kvmha-record 1.9\n", "kvmha-record 2.0\n", ""].map { Array($0.utf8) }
        let printable = Array(" \n{}[]\":,0123456789-.eEtruefalsn\\abcdef".utf8)
        for index in 0..<FuzzBudget.randomBytes {
            let length = index % 1000 == 0 ? rng.within(60_000...70_000) : rng.within(0...512)
            var bytes = rng.pick(headers)
            if rng.oneIn(2) {
                bytes += (0..<length).map { _ in rng.pick(printable) }
            } else {
                bytes += rng.bytes(length)
            }
            if rng.oneIn(4) { bytes += Array("\ncrc32c \(CRC32C.hex(CRC32C.checksum(bytes + [0x0A])))\n".utf8) }
            Self.decodeChecked(bytes, expectedHost: Fixture.host, failures: &failures, "random #\(index)")
            decoded += 1
        }
        #expect(failures.count == 0, "seed 0x5EED_0005: \(failures.summary)")
        #expect(decoded == FuzzBudget.randomBytes)
    }

    static let tokens: [[UInt8]] =
        [
            "\n", "\"", "\\", "{", "}", "[", "]", ",", ":", "0", "-", "1e999", "-0", "1.5", "99999999999999999999999",
            "18446744073709551615", "-9223372036854775808", "null", "true", "false", "\\u", "\\ud800", "\\udc00",
            "\\ud83d\\ude00", "\\u0000", "\u{0}", "\u{1F}", "\u{7F}", "crc32c ", "kvmha-record 2.0\n", " ", "\t", "é",
            "😀", "\"host\":", "\"vms\":[", "{\"uuid\":", "\"sequence\":", ",\"x\":{}",
            String(repeating: "[", count: 20),
        ].map { Array($0.utf8) } + [
            [0xFF], [0xC3], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC0, 0xAF],
        ]

    static func mutate(_ bytes: inout [UInt8], _ rng: inout SplitMix64) {
        let position = bytes.isEmpty ? 0 : rng.below(bytes.count)
        switch rng.below(8) {
        case 0 where !bytes.isEmpty: bytes[position] ^= UInt8(1) << UInt8(rng.below(8))
        case 1 where !bytes.isEmpty: bytes[position] = rng.byte()
        case 2, 3: bytes.insert(contentsOf: rng.pick(tokens), at: position)
        case 4 where !bytes.isEmpty:
            let end = min(bytes.count, position + rng.within(1...16))
            bytes.removeSubrange(position..<end)
        case 5 where !bytes.isEmpty:
            let end = min(bytes.count, position + rng.within(1...32))
            bytes.insert(contentsOf: bytes[position..<end], at: rng.below(bytes.count))
        case 6 where !bytes.isEmpty:
            let other = rng.below(bytes.count)
            bytes.swapAt(position, other)
        default:
            let token = rng.pick(tokens)
            if position + token.count <= bytes.count {
                bytes.replaceSubrange(position..<(position + token.count), with: token)
            } else {
                bytes += token
            }
        }
    }

    /// Valid records whose body is mutated and then given a correct checksum, so that the JSON reader and the
    /// field checks see the damage instead of the checksum.
    @Test func mutatedBodiesWithACorrectChecksumNeverTrap() {
        var rng = SplitMix64(seed: 0x5EED_0006)
        var failures = Failures()
        var outcomes: [String: Int] = [:]
        let headers = ["kvmha-record 1.0", "kvmha-record 1.7", "kvmha-record 2.0", "kvmha-record 1.0 "]
        var bodies: [(HostAddress, [UInt8])] = []
        for _ in 0..<200 {
            let record = RecordGenerator.record(&rng, small: true)
            let encoded = RecordCodec.encode(record)
            if encoded.count < RecordCodec.maxBytes - 1000 { bodies.append((record.host, Fixture.body(of: encoded))) }
        }
        for index in 0..<FuzzBudget.mutatedWithChecksum {
            let (host, original) = bodies[index % bodies.count]
            var body = original
            for _ in 0..<rng.within(1...4) { Self.mutate(&body, &rng) }
            let header = rng.oneIn(10) ? rng.pick(headers) : "kvmha-record 1.0"
            let result = Self.decodeChecked(
                Fixture.frame(bytes: body, header: header),
                expectedHost: rng.oneIn(4) ? nil : host,
                failures: &failures,
                "mutated #\(index)"
            )
            switch result {
            case .success: outcomes["record", default: 0] += 1
            case .failure(let problem): outcomes[problem.code, default: 0] += 1
            }
        }
        #expect(failures.count == 0, "seed 0x5EED_0006: \(failures.summary)")
        // The mutations must reach the reader's deeper checks, not stop at the first one.
        for code in ["record", "malformed", "not-utf8", "unsupported-version"] {
            #expect(outcomes[code, default: 0] > 0, "no mutated body gave \(code): \(outcomes)")
        }
    }

    static func jsonText(_ rng: inout SplitMix64, depth: Int) -> String {
        let choice = depth > 22 ? rng.below(5) : rng.below(8)
        switch choice {
        case 0: return "null"
        case 1: return rng.oneIn(2) ? "true" : "false"
        case 2:
            return rng.pick([
                "0", "-1", "42", "1.5", "1e400", "-0", "18446744073709551615", "18446744073709551616",
                "9223372036854775807", "-9223372036854775809",
            ])
        case 3, 4:
            var writer = JSONWriter()
            writer.string(RecordGenerator.string(&rng, maxBytes: rng.oneIn(20) ? 300 : 40))
            return String(decoding: writer.bytes, as: UTF8.self)
        case 5:
            return "[" + (0..<rng.below(4)).map { _ in jsonText(&rng, depth: depth + 1) }.joined(separator: ",") + "]"
        default:
            let keys = ["host", "sequence", "vms", "uuid", "x", "bootID", "name"]
            return "{"
                + (0..<rng.below(4)).map { _ in "\"\(rng.pick(keys))\":\(jsonText(&rng, depth: depth + 1))" }
                .joined(separator: ",") + "}"
        }
    }

    /// Record-shaped bodies with random values in random fields, extra fields and random nesting; correct checksum.
    @Test func randomBodiesNeverTrap() {
        var rng = SplitMix64(seed: 0x5EED_0007)
        var failures = Failures()
        var outcomes: [String: Int] = [:]
        for index in 0..<FuzzBudget.randomBodies {
            var members = Fixture.members
            for _ in 0..<rng.within(1...3) {
                switch rng.below(4) {
                case 0: members.remove(at: rng.below(members.count))
                case 1:
                    members.append((rng.pick(["extra", "sequence", "vms", "ünïcode"]), Self.jsonText(&rng, depth: 0)))
                default:
                    let slot = rng.below(members.count)
                    members[slot].json = Self.jsonText(&rng, depth: rng.oneIn(5) ? 14 : 0)
                }
                if members.isEmpty { break }
            }
            let body = rng.oneIn(20) ? Self.jsonText(&rng, depth: 0) : Fixture.object(members)
            let result = Self.decodeChecked(
                Fixture.frame(body),
                expectedHost: nil,
                failures: &failures,
                "body #\(index)"
            )
            switch result {
            case .success: outcomes["record", default: 0] += 1
            case .failure(let problem): outcomes[problem.code, default: 0] += 1
            }
        }
        #expect(failures.count == 0, "seed 0x5EED_0007: \(failures.summary)")
        #expect(outcomes["record", default: 0] > 0 && outcomes["malformed", default: 0] > 0, "\(outcomes)")
    }

    @Test(arguments: [15, 16, 17, 100, 5_000, 60_000])
    func deepNesting(depth: Int) {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let nested = String(repeating: open, count: depth) + "1" + String(repeating: close, count: depth)
            for body in [
                nested, Fixture.object(Fixture.members(replacing: "hostUUID", with: nested)),
                String(repeating: open, count: depth),
            ] {
                let bytes = Fixture.frame(body)
                let result = RecordCodec.decode(bytes, expectedHost: nil)
                if bytes.count > RecordCodec.maxBytes {
                    #expect(result == .failure(.oversized(bytes.count)))
                } else {
                    guard case .failure(.malformed) = result else {
                        Issue.record("depth \(depth) \(open): \(result)")
                        continue
                    }
                }
            }
        }
    }

    @Test(arguments: [
        ("sequence", "18446744073709551615", true), ("sequence", "18446744073709551616", false),
        ("sequence", "0", true), ("sequence", "-0", true), ("wallTimeMs", "-9223372036854775808", true),
        ("wallTimeMs", "-9223372036854775809", false), ("wallTimeMs", "9223372036854775807", true),
        ("intervalMs", "9223372036854775807", true), ("sequence", "1e400", false), ("sequence", "1E2", false),
        ("sequence", String(repeating: "9", count: 40), false),
        ("sequence", String(repeating: "9", count: 4000), false),
        ("sequence", "1" + String(repeating: "0", count: 39), false), ("sequence", "0.0", false),
        ("sequence", "--1", false), ("sequence", "1-", false), ("sequence", "+1", false),
    ])
    func hugeAndOddNumbers(field: String, json: String, decodes: Bool) {
        let result = RecordCodec.decode(
            Fixture.frame(Fixture.object(Fixture.members(replacing: field, with: json))),
            expectedHost: nil
        )
        switch result {
        case .success: #expect(decodes, "\(field): \(json) decoded")
        case .failure(.malformed): #expect(!decodes, "\(field): \(json) was refused")
        case .failure(let other): Issue.record("\(field): \(json) gave \(other)")
        }
    }

    static let invalidUTF8: [[UInt8]] = [
        [0x80], [0xBF], [0xC0, 0xAF], [0xC1, 0xBF], [0xC3], [0xC3, 0x28], [0xE0, 0x80, 0xAF], [0xE2, 0x82],
        [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5], [0xFE],
        [0xFF], [0xF0, 0x9F, 0x98],
    ]

    @Test(arguments: invalidUTF8)
    func invalidUTF8IsRejectedEvenWithACorrectChecksum(sequence: [UInt8]) {
        let body = Array(Fixture.object(Fixture.members).utf8)
        let insideAString = body.firstIndex(of: UInt8(ascii: "b"))!  // in "boot-a"
        for position in [0, insideAString, body.count] {
            var bytes = body
            bytes.insert(contentsOf: sequence, at: position)
            #expect(RecordCodec.decode(Fixture.frame(bytes: bytes), expectedHost: nil) == .failure(.notUTF8))
        }
        #expect(RecordCodec.decode(sequence + Array("\n".utf8), expectedHost: nil) == .failure(.notUTF8))
    }

    @Test func theBudgetCoversAHundredThousandInputs() {
        #expect(FuzzBudget.total >= 100_000)
    }

    @Test func splitMixMatchesTheReferenceSequence() {
        // First outputs for seed 0 of the reference implementation (Vigna's splitmix64.c), so seeds reproduce.
        var rng = SplitMix64(seed: 0)
        #expect(rng.next() == 0xE220_A839_7B1D_CDAF)
        #expect(rng.next() == 0x6E78_9E6A_A1B9_65F4)
        #expect(rng.next() == 0x06C4_5D18_8009_454F)
    }
}
