import HeartbeatCore
import Testing

/// The writer's encoder keeps the encoded VM list between beats; its output must always be byte-equal to
/// `RecordCodec.encode` of the same record, whatever changes from one beat to the next.
@Suite("RecordCodec caching encoder")
struct RecordCodecCachingEncoderTests {
    @Test func successiveBeatsEncodeExactlyAsTheEncoderDoes() {
        var rng = SplitMix64(seed: 0x5EED_C001)
        var failures = Failures()
        var encoder = RecordCodec.CachingEncoder()
        var record = RecordGenerator.record(&rng)
        for beat in 0..<4_000 {
            record.sequence &+= 1
            record.wallTimeMs = RecordGenerator.int64(&rng)
            switch rng.below(20) {
            case 0: record = RecordGenerator.record(&rng)  // everything new
            case 1: record.vms = RecordGenerator.record(&rng).vms
            case 2 where !record.vms.isEmpty: record.vms[rng.below(record.vms.count)].state = .paused
            case 3: record.vmsOmitted = rng.below(3)
            case 4: record.incarnation = RecordGenerator.string(&rng, maxBytes: 300)
            case 5: record.sequence = RecordGenerator.uint64(&rng)
            default: break
            }
            if encoder.encode(record) != RecordCodec.encode(record) { failures.record("beat \(beat): \(record)") }
        }
        #expect(failures.count == 0, "seed 0x5EED_C001: \(failures.summary)")
    }

    /// Near the size cap a longer sequence number can push the record over it, and `encode` then leaves VMs
    /// out: the caching encoder must do the same.
    @Test func aRecordThatGrowsPastTheCapLeavesVMsOutAsTheEncoderDoes() {
        var encoder = RecordCodec.CachingEncoder()
        let vm = VMEntry(uuid: "u", name: String(repeating: "n", count: 200), state: .running, reason: "r", sinceMs: 0)
        var record = Fixture.record(sequence: 9)
        record.vms = [vm]
        let perVM = RecordCodec.encode(record).count - RecordCodec.encode(Fixture.record(sequence: 9)).count
        let base = RecordCodec.encode(Fixture.record(sequence: 9)).count
        record.vms = Array(repeating: vm, count: (RecordCodec.maxBytes - base) / (perVM + 1))
        // Pad the boot id until the record sits one byte under the cap.
        while RecordCodec.encode(record).count < RecordCodec.maxBytes, record.bootID.utf8.count < 256 {
            record.bootID += "b"
        }
        for sequence: UInt64 in [9, 10, 99, 100, 1_000, 10_000] {
            record.sequence = sequence
            let expected = RecordCodec.encode(record)
            #expect(encoder.encode(record) == expected, "sequence \(sequence)")
            #expect(expected.count <= RecordCodec.maxBytes)
        }
    }
}
