@testable import HeartbeatCore
import Testing

/// The decoder's fast path (`RecordFastReader`) against the general reader (`RecordCodec.decodeGenerally`):
/// for every input the two must give the same answer, and the fast path must really take the usual records.
/// The inputs are records of the usual shape (plain strings, so the fast path applies) and mutations of them.
@Suite("RecordCodec fast path")
struct RecordCodecFastPathTests {
    static let plain = Array("abcdefghijklmnopqrstuvwxyz0123456789-_.ABCXYZ".utf8)

    static func plainString(_ rng: inout SplitMix64, maxBytes: Int = 40) -> String {
        let length = rng.oneIn(50) ? RecordCodec.maxStringLength : rng.below(maxBytes)
        return String(decoding: (0..<length).map { _ in rng.pick(plain) }, as: UTF8.self)
    }

    /// A record such as a real writer produces: plain strings; with `edgeNumbers`, also integers of 19 and 20
    /// digits, which the fast path leaves to the general reader.
    static func usualRecord(_ rng: inout SplitMix64, edgeNumbers: Bool = true) -> HeartbeatRecord {
        func time(_ rng: inout SplitMix64) -> Int64 {
            edgeNumbers ? RecordGenerator.int64(&rng) : 1_600_000_000_000 + Int64(rng.below(400_000_000_000))
        }
        return HeartbeatRecord(
            host: HostAddress(rng.byte(), rng.byte(), rng.byte(), rng.byte()),
            hostUUID: rng.oneIn(4) ? nil : plainString(&rng),
            bootID: plainString(&rng),
            incarnation: plainString(&rng),
            sequence: edgeNumbers ? RecordGenerator.uint64(&rng) : UInt64(rng.below(1 << 50)),
            wallTimeMs: time(&rng),
            intervalMs: edgeNumbers ? RecordGenerator.positiveInt64(&rng) : Int64(rng.within(1...3_600_000)),
            vms: (0..<rng.below(12)).map { _ in
                VMEntry(
                    uuid: plainString(&rng), name: plainString(&rng), state: rng.pick(RecordGenerator.states),
                    reason: plainString(&rng), sinceMs: time(&rng))
            },
            vmsOmitted: rng.oneIn(10) ? rng.below(1000) : 0
        )
    }

    /// Both readers on the same input; records one failure when they differ.
    @discardableResult
    static func compare(_ bytes: [UInt8], _ host: HostAddress?, _ failures: inout Failures, _ label: String)
        -> Result<HeartbeatRecord, RecordProblem>
    {
        let fast = RecordCodec.decode(bytes, expectedHost: host)
        let general: Result<HeartbeatRecord, RecordProblem>
        if bytes.isEmpty {
            general = .failure(.empty)
        } else if bytes.count > RecordCodec.maxBytes {
            general = .failure(.oversized(bytes.count))
        } else if String(validating: bytes, as: UTF8.self) == nil {
            general = .failure(.notUTF8)
        } else {
            general = Result { () throws(RecordProblem) in
                try RecordCodec.decodeGenerally(bytes, expectedHost: host)
            }
        }
        if fast != general {
            failures.record("\(label): fast \(fast) general \(general) for \(String(decoding: bytes, as: UTF8.self))")
        }
        if case .success(let record) = fast, RecordCodec.encode(record) != bytes, isCanonical(bytes) {
            failures.record("\(label): decoded record re-encodes differently")
        }
        return fast
    }

    /// Whether `bytes` is what our encoder writes (then decoding and encoding again must give the same bytes).
    static func isCanonical(_ bytes: [UInt8]) -> Bool {
        guard case .success(let record) = RecordCodec.decode(bytes, expectedHost: nil) else { return false }
        return RecordCodec.encode(record) == bytes
    }

    @Test func theUsualRecordsTakeTheFastPathAndRoundTripByteForByte() {
        var rng = SplitMix64(seed: 0x5EED_F001)
        var failures = Failures()
        for index in 0..<3_000 {
            let record = Self.usualRecord(&rng, edgeNumbers: false)
            let encoded = RecordCodec.encode(record)
            let fast = encoded.withUnsafeBufferPointer { RecordFastReader.record(in: $0, expectedHost: record.host) }
            if fast != record { failures.record("#\(index): the fast path gave \(String(describing: fast))") }
            let result = Self.compare(encoded, record.host, &failures, "#\(index)")
            if result != .success(record) { failures.record("#\(index): \(result)") }
            if case .success(let decoded) = result, RecordCodec.encode(decoded) != encoded {
                failures.record("#\(index): re-encoding differs")
            }
        }
        #expect(failures.count == 0, "seed 0x5EED_F001: \(failures.summary)")
    }

    @Test func theFixtureAndANewerMinorVersionTakeTheFastPath() {
        let encoded = RecordCodec.encode(Fixture.record(sequence: 42, vms: [Fixture.vm]))
        #expect(encoded.withUnsafeBufferPointer { RecordFastReader.record(in: $0, expectedHost: Fixture.host) } != nil)
        var vm = Fixture.vmMembers
        vm.append(("cpuSeconds", "1.5e3"))
        vm.append(("tags", #"{"a":[1,{"b":null}],"c":true}"#))
        let body = Fixture.object(
            Fixture.members(replacing: "vms", with: Fixture.vmsJSON([vm, Fixture.vmMembers]))
                + [("signature", #""abc""#), ("fencingEpoch", "-12")])
        let newer = Fixture.frame(body, header: "kvmha-record 1.12")
        let fast = newer.withUnsafeBufferPointer { RecordFastReader.record(in: $0, expectedHost: Fixture.host) }
        #expect(fast == Fixture.record(sequence: 42, vms: [Fixture.vm, Fixture.vm]))
    }

    /// Mutations of usual records, given a correct checksum so that the body readers see the damage.
    @Test func mutatedUsualRecordsGetTheSameAnswerFromBothReaders() {
        var rng = SplitMix64(seed: 0x5EED_F002)
        var failures = Failures()
        var outcomes: [String: Int] = [:]
        let extraTokens: [[UInt8]] =
            [
                "\"host\":\"10.0.0.9\",", "\"vms\":[],", "\"sequence\":1,", "\"hostUUID\":null,", "\"x\":1,",
                "\"x\":2,", "\"é\":1,", "\"e\u{301}\":1,", "\"\u{E9}\":2,", "007", "-0", "1234567890123456789",
                "12345678901234567890", "123456789012345678", "-123456789012345678", " \t\r\n", "{\"a\":{\"a\":1}}",
                "[[[[[[[[[[[[[[[[", "]]]]]]]]", "\"vmsOmitted\":-1,", "\"vmsOmitted\":0,", "\"intervalMs\":0,",
            ].map { Array($0.utf8) }
        for index in 0..<30_000 {
            let record = Self.usualRecord(&rng)
            var body = Fixture.body(of: RecordCodec.encode(record))
            for _ in 0..<rng.within(1...3) {
                if rng.oneIn(3) {
                    body.insert(contentsOf: rng.pick(extraTokens), at: rng.below(body.count + 1))
                } else {
                    RecordCodecPropertyTests.mutate(&body, &rng)
                }
            }
            let header = rng.oneIn(8) ? rng.pick(["kvmha-record 1.00", "kvmha-record +1.0", "kvmha-record 1.9"]) : "kvmha-record 1.0"
            let host = rng.oneIn(4) ? nil : record.host
            switch Self.compare(Fixture.frame(bytes: body, header: header), host, &failures, "mutated #\(index)") {
            case .success: outcomes["record", default: 0] += 1
            case .failure(let problem): outcomes[problem.code, default: 0] += 1
            }
        }
        #expect(failures.count == 0, "seed 0x5EED_F002: \(failures.summary)")
        #expect(outcomes["record", default: 0] > 1_000 && outcomes["malformed", default: 0] > 1_000, "\(outcomes)")
    }

    /// Changes to the frame (header, checksum line, sizes) of usual records, without fixing the checksum.
    @Test func damagedFramesGetTheSameAnswerFromBothReaders() {
        var rng = SplitMix64(seed: 0x5EED_F003)
        var failures = Failures()
        for index in 0..<10_000 {
            let record = Self.usualRecord(&rng)
            var bytes = RecordCodec.encode(record)
            switch rng.below(4) {
            case 0: bytes = Array(bytes.prefix(rng.below(bytes.count)))
            case 1: bytes[rng.below(bytes.count)] = rng.byte()
            case 2: bytes[bytes.count - 1 - rng.below(20)] ^= UInt8(1) << UInt8(rng.below(8))
            default: bytes[rng.below(20)] ^= UInt8(1) << UInt8(rng.below(8))
            }
            Self.compare(bytes, rng.oneIn(3) ? nil : record.host, &failures, "frame #\(index)")
        }
        #expect(failures.count == 0, "seed 0x5EED_F003: \(failures.summary)")
    }

    @Test func theFastChecksumIsCRC32C() {
        var rng = SplitMix64(seed: 0x5EED_F004)
        for length in Array(0...64) + [1_000, 1_567, 65_536] {
            let bytes = rng.bytes(length)
            #expect(bytes.withUnsafeBufferPointer { RecordCodec.crc32c($0) } == CRC32C.checksum(bytes), "\(length) bytes")
        }
        #expect(Array("123456789".utf8).withUnsafeBufferPointer { RecordCodec.crc32c($0) } == 0xE306_9283)
    }
}
