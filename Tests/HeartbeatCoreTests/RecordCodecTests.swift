import HeartbeatCore
import Testing

/// Specific cases of the record codec: the layout, every `RecordProblem` it can produce, and the limits.
@Suite("RecordCodec")
struct RecordCodecTests {
    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    private static func decode(
        _ bytes: [UInt8],
        expectedHost: HostAddress? = Fixture.host
    ) -> Result<HeartbeatRecord, RecordProblem> {
        RecordCodec.decode(bytes, expectedHost: expectedHost)
    }

    // MARK: Layout

    @Test func encodesHeaderBodyAndChecksumLines() {
        let encoded = RecordCodec.encode(Fixture.record(sequence: 42, vms: [Fixture.vm]))
        let lines = Self.text(encoded).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 4, "three lines, each ending in a newline")
        #expect(lines[0] == "kvmha-record 1.0")
        #expect(
            lines[1]
                == #"{"host":"10.1.2.3","hostUUID":"4c1d7e8a-0000-4000-8000-000000000001","bootID":"boot-a","incarnation":"inc-a","sequence":42,"wallTimeMs":1700000000000,"intervalMs":5000,"vms":[{"uuid":"9d6b0c3e-1111-4222-8333-444455556666","name":"i-2-345-VM","state":"running","reason":"booted","sinceMs":1699999000000}]}"#
        )
        let covered = Array(encoded[..<(encoded.count - 16)])
        #expect(
            lines[2] == "crc32c \(CRC32C.hex(CRC32C.checksum(covered)))",
            "the checksum covers every byte before its line"
        )
        #expect(lines[3] == "")
    }

    @Test func aFixedRecordRoundTrips() {
        let record = Fixture.record(sequence: 42, vms: [Fixture.vm, Fixture.vm])
        #expect(Self.decode(RecordCodec.encode(record)) == .success(record))
    }

    @Test func hostUUIDIsOptional() {
        var record = Fixture.record()
        record.hostUUID = nil
        let encoded = RecordCodec.encode(record)
        #expect(!Self.text(encoded).contains("hostUUID"), "omitted when unknown")
        #expect(Self.decode(encoded) == .success(record))
        let withNull = Fixture.frame(Fixture.object(Fixture.members(replacing: "hostUUID", with: "null")))
        #expect((try? Self.decode(withNull).get())?.hostUUID == nil)
        let withEmpty = Fixture.frame(Fixture.object(Fixture.members(replacing: "hostUUID", with: #""""#)))
        #expect((try? Self.decode(withEmpty).get())?.hostUUID == "")
    }

    @Test func withoutAnExpectedHostAnyHostIsAccepted() {
        let record = Fixture.record(host: Fixture.otherHost)
        #expect(Self.decode(RecordCodec.encode(record), expectedHost: nil) == .success(record))
    }

    @Test func theHandWrittenBodyMatchesTheEncoder() {
        // Guards the fixtures the malformed cases below are built from.
        let decoded = Self.decode(Fixture.frame(Fixture.object(Fixture.members)))
        #expect(decoded == .success(Fixture.record(sequence: 42, vms: [Fixture.vm])))
    }

    @Test func aNewerMinorVersionWithUnknownFieldsDecodes() {
        let members =
            Fixture.members + [
                ("futureField", #"{"nested":[1,2,{"x":null}],"flag":true}"#), ("fencingEpoch", "12"),
            ]
        var vm = Fixture.vmMembers
        vm.append(("cpuSeconds", "1.5e3"))
        let body = Fixture.object(
            Fixture.members(replacing: "vms", with: nil) + members.suffix(2) + [("vms", Fixture.vmsJSON([vm]))]
        )
        let decoded = Self.decode(Fixture.frame(body, header: "kvmha-record 1.7"))
        #expect(decoded == .success(Fixture.record(sequence: 42, vms: [Fixture.vm])))
    }

    @Test func aRecordOfExactlyTheCapDecodesAndOneByteMoreDoesNot() {
        let object = Fixture.object(Fixture.members)
        let overhead = "kvmha-record 1.0\n".utf8.count + "\ncrc32c 00000000\n".utf8.count
        let padding = RecordCodec.maxBytes - overhead - object.utf8.count
        let atCap = Fixture.frame(object + String(repeating: " ", count: padding))
        #expect(atCap.count == RecordCodec.maxBytes)
        #expect((try? Self.decode(atCap).get()) != nil)
        let overCap = Fixture.frame(object + String(repeating: " ", count: padding + 1))
        #expect(Self.decode(overCap) == .failure(.oversized(RecordCodec.maxBytes + 1)))
    }

    // MARK: One case per problem

    struct ProblemCase: Sendable, CustomTestStringConvertible {
        var name: String
        var bytes: [UInt8]
        var problem: RecordProblem
        var testDescription: String { name }
    }

    static let valid = RecordCodec.encode(Fixture.record(sequence: 42, vms: [Fixture.vm]))

    static var problemCases: [ProblemCase] {
        let validBody = Fixture.object(Fixture.members)
        var tampered = valid
        tampered[tampered.firstIndex(of: UInt8(ascii: "4"))!] = UInt8(ascii: "5")  // sequence 42 → 52
        let statedSum = String(decoding: valid.suffix(9).prefix(8), as: UTF8.self)
        let tamperedSum = CRC32C.hex(CRC32C.checksum(tampered[..<(tampered.count - 16)]))
        // The first sequence number whose checksum has a letter in it, so that upper case differs.
        let lettered = (UInt64(0)...).lazy.map { RecordCodec.encode(Fixture.record(sequence: $0)) }
            .first { !$0.suffix(9).prefix(8).allSatisfy { $0 <= UInt8(ascii: "9") } }!
        let letteredSum = String(decoding: lettered.suffix(9).prefix(8), as: UTF8.self)
        let upperCaseSum = Array(lettered.dropLast(9)) + Array(letteredSum.uppercased().utf8) + [0x0A]

        return [
            ProblemCase(name: "empty", bytes: [], problem: .empty),
            ProblemCase(
                name: "oversized garbage",
                bytes: Array(repeating: UInt8(ascii: "a"), count: RecordCodec.maxBytes + 1),
                problem: .oversized(RecordCodec.maxBytes + 1)
            ),
            ProblemCase(
                name: "oversized is checked before anything else",
                bytes: Array(repeating: 0xFF, count: 1 << 20),
                problem: .oversized(1 << 20)
            ),
            ProblemCase(name: "a lone 0xFF", bytes: [0xFF], problem: .notUTF8),
            ProblemCase(
                name: "invalid UTF-8 in the body, checksum correct",
                bytes: Fixture.frame(bytes: [0x7B, 0xC3, 0x28, 0x7D]),
                problem: .notUTF8
            ),
            ProblemCase(
                name: "UTF-16 text",
                bytes: Array("kvmha".utf16).flatMap { [UInt8($0 & 0xFF), 0] } + [0xD8],
                problem: .notUTF8
            ),
            ProblemCase(name: "header without a newline", bytes: Array("kvmha-record 1.0".utf8), problem: .truncated),
            ProblemCase(name: "without the checksum line", bytes: Array(valid.dropLast(16)), problem: .truncated),
            ProblemCase(name: "without the final newline", bytes: Array(valid.dropLast()), problem: .truncated),
            ProblemCase(name: "checksum line cut short", bytes: Array(valid.dropLast(5)), problem: .truncated),
            ProblemCase(name: "header line only", bytes: Array("kvmha-record 1.0\n".utf8), problem: .truncated),
            ProblemCase(
                name: "last line is not a checksum",
                bytes: Array("kvmha-record 1.0\n\(validBody)\nsha256 00\n".utf8),
                problem: .truncated
            ),
            ProblemCase(name: "another file's text", bytes: Array("hello\nworld\n".utf8), problem: .notARecord),
            ProblemCase(name: "CloudStack's hb- file", bytes: Array("1700000000\n".utf8), problem: .notARecord),
            ProblemCase(name: "bare JSON", bytes: Array("\(validBody)\n".utf8), problem: .notARecord),
            ProblemCase(name: "header without version", bytes: Array("kvmha-record\n{}\n".utf8), problem: .notARecord),
            ProblemCase(name: "version without minor", bytes: Array("kvmha-record 1\n{}\n".utf8), problem: .notARecord),
            ProblemCase(
                name: "three-part version",
                bytes: Array("kvmha-record 1.0.0\n{}\n".utf8),
                problem: .notARecord
            ),
            ProblemCase(
                name: "words for a version",
                bytes: Array("kvmha-record one.zero\n{}\n".utf8),
                problem: .notARecord
            ),
            ProblemCase(name: "upper-case header", bytes: Array("KVMHA-RECORD 1.0\n{}\n".utf8), problem: .notARecord),
            ProblemCase(name: "header with CR LF", bytes: Array("kvmha-record 1.0\r\n{}\n".utf8), problem: .notARecord),
            ProblemCase(
                name: "major version 2",
                bytes: Fixture.frame(validBody, header: "kvmha-record 2.0"),
                problem: .unsupportedVersion("2.0")
            ),
            ProblemCase(
                name: "major version 0",
                bytes: Fixture.frame(validBody, header: "kvmha-record 0.9"),
                problem: .unsupportedVersion("0.9")
            ),
            ProblemCase(
                name: "major version 10",
                bytes: Array("kvmha-record 10.0\n".utf8),
                problem: .unsupportedVersion("10.0")
            ),
            ProblemCase(
                name: "one digit changed, checksum kept",
                bytes: tampered,
                problem: .badChecksum(expected: statedSum, actual: tamperedSum)
            ),
            ProblemCase(
                name: "checksum written in upper case",
                bytes: upperCaseSum,
                problem: .badChecksum(expected: letteredSum.uppercased(), actual: letteredSum)
            ),
            ProblemCase(
                name: "another host's record in this host's file",
                bytes: RecordCodec.encode(Fixture.record(host: Fixture.otherHost)),
                problem: .wrongHost(expected: Fixture.host, found: "10.1.2.4")
            ),
        ]
    }

    @Test(arguments: problemCases)
    func problem(_ row: ProblemCase) {
        #expect(Self.decode(row.bytes) == .failure(row.problem))
    }

    // MARK: Malformed bodies: every field, named in the message

    struct MalformedCase: Sendable, CustomTestStringConvertible {
        var name: String
        var body: String
        /// The message must contain all of these.
        var mentions: [String]
        var testDescription: String { name }
    }

    static let requiredFields = ["host", "bootID", "incarnation", "sequence", "wallTimeMs", "intervalMs", "vms"]
    static let vmFields = ["uuid", "name", "state", "reason", "sinceMs"]

    static var malformedCases: [MalformedCase] {
        var cases: [MalformedCase] = []
        func body(_ key: String, _ json: String?) -> String {
            Fixture.object(Fixture.members(replacing: key, with: json))
        }
        func vmBody(_ key: String, _ json: String?) -> String {
            let vms = Fixture.vmsJSON([Fixture.vmMembers, Fixture.vmMembers(replacing: key, with: json)])
            return body("vms", vms)
        }
        for field in requiredFields {
            cases.append(
                MalformedCase(name: "\(field) missing", body: body(field, nil), mentions: ["'\(field)'", "missing"])
            )
        }
        for field in vmFields {
            cases.append(
                MalformedCase(
                    name: "vms[1].\(field) missing",
                    body: vmBody(field, nil),
                    mentions: ["'vms[1].\(field)'", "missing"]
                )
            )
        }
        let strings = ["host", "hostUUID", "bootID", "incarnation"]
        for field in strings {
            for wrong in ["42", "true", "[]", "{}"] {
                cases.append(
                    MalformedCase(
                        name: "\(field) is \(wrong)",
                        body: body(field, wrong),
                        mentions: ["'\(field)'", "not a string"]
                    )
                )
            }
        }
        for field in ["bootID", "incarnation"] {
            cases.append(
                MalformedCase(
                    name: "\(field) is null",
                    body: body(field, "null"),
                    mentions: ["'\(field)'", "not a string"]
                )
            )
        }
        for field in ["uuid", "name", "state", "reason"] {
            cases.append(
                MalformedCase(
                    name: "vms[1].\(field) is 7",
                    body: vmBody(field, "7"),
                    mentions: ["'vms[1].\(field)'", "not a string"]
                )
            )
        }
        let integers = [
            ("sequence", #""42""#), ("sequence", "-1"), ("sequence", "1.5"), ("sequence", "1e3"),
            ("sequence", "18446744073709551616"), ("sequence", "null"), ("wallTimeMs", "9223372036854775808"),
            ("wallTimeMs", "-9223372036854775809"), ("wallTimeMs", "[]"), ("intervalMs", "true"),
            ("sequence", "9999999999999999999999999999999999999999"),  // 40 digits: read, out of range
        ]
        for (field, wrong) in integers {
            cases.append(
                MalformedCase(
                    name: "\(field) is \(wrong)",
                    body: body(field, wrong),
                    mentions: ["'\(field)'", "integer"]
                )
            )
        }
        cases.append(
            MalformedCase(
                name: "vms[1].sinceMs is \"x\"",
                body: vmBody("sinceMs", #""x""#),
                mentions: ["'vms[1].sinceMs'", "integer"]
            )
        )
        cases += [
            MalformedCase(
                name: "intervalMs is 0",
                body: body("intervalMs", "0"),
                mentions: ["'intervalMs'", "positive"]
            ),
            MalformedCase(
                name: "intervalMs is negative",
                body: body("intervalMs", "-5000"),
                mentions: ["'intervalMs'", "positive"]
            ),
            MalformedCase(
                name: "host is not an address",
                body: body("host", #""10.1.2.300""#),
                mentions: ["'host'", "IPv4"]
            ),
            MalformedCase(name: "host is a path", body: body("host", #""../../etc""#), mentions: ["'host'", "IPv4"]),
            MalformedCase(name: "vms is an object", body: body("vms", "{}"), mentions: ["'vms'", "not a list"]),
            MalformedCase(name: "vms is null", body: body("vms", "null"), mentions: ["'vms'", "not a list"]),
            MalformedCase(name: "a VM is a number", body: body("vms", "[1]"), mentions: ["'vms[0]'", "not an object"]),
            MalformedCase(
                name: "too many VMs",
                body: body("vms", "[" + Array(repeating: "{}", count: 2049).joined(separator: ",") + "]"),
                mentions: ["'vms'", "2048"]
            ),
            MalformedCase(
                name: "bootID over 256 bytes",
                body: body("bootID", "\"" + String(repeating: "b", count: 257) + "\""),
                mentions: ["'bootID'", "too long"]
            ),
            MalformedCase(
                name: "VM name over 256 bytes (128 two-byte characters and one more)",
                body: vmBody("name", "\"" + String(repeating: "é", count: 128) + "x\""),
                mentions: ["'vms[1].name'", "too long"]
            ),
            MalformedCase(
                name: "a 41-digit number",
                body: body("sequence", String(repeating: "9", count: 41)),
                mentions: ["invalid JSON", "number too long"]
            ),
            MalformedCase(name: "body is a list", body: "[]", mentions: ["not a JSON object"]),
            MalformedCase(name: "body is a string", body: #""kvmha""#, mentions: ["not a JSON object"]),
            MalformedCase(name: "body is empty", body: "", mentions: ["invalid JSON", "unexpected end"]),
            MalformedCase(
                name: "body is cut short",
                body: String(Fixture.object(Fixture.members).dropLast()),
                mentions: ["invalid JSON"]
            ),
            MalformedCase(
                name: "body has trailing text",
                body: Fixture.object(Fixture.members) + " x",
                mentions: ["trailing characters"]
            ),
            MalformedCase(
                name: "duplicate key",
                body: Fixture.object(Fixture.members + [("sequence", "43")]),
                mentions: ["duplicate key 'sequence'"]
            ),
            MalformedCase(
                name: "nested too deeply",
                body: body("hostUUID", String(repeating: "[", count: 40) + String(repeating: "]", count: 40)),
                mentions: ["nested too deeply"]
            ),
        ]
        return cases
    }

    @Test(arguments: malformedCases)
    func malformed(_ row: MalformedCase) {
        let result = Self.decode(Fixture.frame(row.body))
        guard case .failure(.malformed(let message)) = result else {
            Issue.record("expected malformed, got \(result)")
            return
        }
        for mention in row.mentions {
            #expect(message.contains(mention), "message: \(message)")
        }
    }

    @Test func stringsUpToTheCapAreAccepted() {
        var record = Fixture.record(bootID: String(repeating: "b", count: 256))
        record.vms = [
            VMEntry(uuid: "", name: String(repeating: "😀", count: 64), state: .paused, reason: "", sinceMs: 0)
        ]
        #expect(Self.decode(RecordCodec.encode(record)) == .success(record))
    }

    /// The writer never publishes a record its peers reject: long strings are cut at a character boundary.
    @Test func theEncoderKeepsStringsWithinTheReadersCap() throws {
        var record = Fixture.record()
        record.vms = [
            VMEntry(uuid: "u", name: String(repeating: "n", count: 300), state: .running, reason: "r", sinceMs: 0),
            VMEntry(uuid: "v", name: String(repeating: "😀", count: 100), state: .running, reason: "r", sinceMs: 0),
        ]
        let decoded = try Self.decode(RecordCodec.encode(record)).get()
        #expect(decoded.vms[0].name == String(repeating: "n", count: 256))
        #expect(decoded.vms[1].name == String(repeating: "😀", count: 64))
    }

    /// Too many VMs for the size cap: active ones are kept first, the rest counted as omitted.
    @Test func theEncoderDropsShutOffVMsFirstToStayWithinTheSizeCap() throws {
        var record = Fixture.record()
        let shutoff = (0..<300).map {
            VMEntry(uuid: "s\($0)", name: String(repeating: "s", count: 200), state: .shutoff, reason: "r", sinceMs: 0)
        }
        let running = (0..<100).map {
            VMEntry(uuid: "r\($0)", name: String(repeating: "r", count: 200), state: .running, reason: "r", sinceMs: 0)
        }
        record.vms = shutoff + running
        let bytes = RecordCodec.encode(record)
        #expect(bytes.count <= RecordCodec.maxBytes)
        let decoded = try Self.decode(bytes).get()
        #expect(decoded.vms.count + decoded.vmsOmitted == 400)
        #expect(decoded.vmsOmitted > 0)
        #expect(Set(running.map(\.uuid)).isSubset(of: Set(decoded.vms.map(\.uuid))), "every running VM is kept")
    }

    // MARK: Problem vocabulary

    static let allProblems: [RecordProblem] = [
        .empty, .oversized(70000), .notUTF8, .truncated, .notARecord, .unsupportedVersion("2.0"),
        .badChecksum(expected: "00000000", actual: "ffffffff"), .malformed("field 'host' is missing"),
        .wrongHost(expected: Fixture.host, found: "10.9.9.9"), .notRegularFile, .unreadable("EIO"),
    ]

    @Test func problemCodesAndDescriptionsAreDistinctAndSayWhat() {
        #expect(Set(Self.allProblems.map(\.code)).count == Self.allProblems.count)
        #expect(Set(Self.allProblems.map(\.description)).count == Self.allProblems.count)
        #expect(RecordProblem.oversized(70000).description.contains("70000"))
        #expect(RecordProblem.oversized(70000).description.contains("\(RecordCodec.maxBytes)"))
        #expect(RecordProblem.unsupportedVersion("2.0").description.contains("2.0"))
        #expect(RecordProblem.badChecksum(expected: "00000000", actual: "ffffffff").description.contains("ffffffff"))
        #expect(RecordProblem.wrongHost(expected: Fixture.host, found: "10.9.9.9").description.contains("10.9.9.9"))
        #expect(RecordProblem.unreadable("EIO").description.contains("EIO"))
    }

    @Test func vmPowerStatesAreOpenAndKnowWhichAreActive() {
        let active: [VMPowerState] = [.running, .blocked, .paused, .shuttingDown, .pmsuspended]
        let inactive: [VMPowerState] = [.shutoff, .crashed, .noState]
        #expect(active.allSatisfy { $0.isActive })
        #expect(!inactive.contains { $0.isActive })
        #expect(VMPowerState(rawValue: "shutoff") == .shutoff)
        #expect(VMPowerState(rawValue: "migrating").isActive, "an unknown state is assumed to hold its disks")
        #expect(VMPowerState.shuttingDown.description == "shutdown-in-progress")
    }
}
