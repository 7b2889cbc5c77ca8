import HeartbeatCore
import Testing

/// CloudStack's `KVMHA/hb-<ip>`: decimal Unix seconds and a newline, read with `cat` and compared with
/// `date +%s` by CloudStack's scripts.
@Suite("CloudStackHeartbeat")
struct CloudStackHeartbeatTests {
    @Test(arguments: [(Int64(1_700_000_000), "1700000000\n"), (0, "0\n"), (9, "9\n"), (.max, "9223372036854775807\n")])
    func encodesDecimalSecondsAndANewline(seconds: Int64, text: String) {
        #expect(CloudStackHeartbeat.encode(unixSeconds: seconds) == Array(text.utf8))
        #expect(CloudStackHeartbeat.decode(Array(text.utf8)) == .success(seconds))
    }

    @Test(arguments: [
        ("1700000000\n", Int64(1_700_000_000)),
        ("1700000000", 1_700_000_000),
        ("  1700000000 \r\n", 1_700_000_000),
        ("\t1700000000\n\n", 1_700_000_000),
        ("0001700000000\n", 1_700_000_000),
        ("9223372036854775807", .max),
    ])
    func decodes(text: String, seconds: Int64) {
        #expect(CloudStackHeartbeat.decode(Array(text.utf8)) == .success(seconds))
    }

    @Test(arguments: [
        ("", CloudStackHeartbeat.Problem.empty),
        ("\n", .empty),
        (" \r\n\t ", .empty),
        ("abc\n", .notANumber(#""abc\x0a""#)),
        ("-5\n", .notANumber(#""-5\x0a""#)),
        ("1.5\n", .notANumber(#""1.5\x0a""#)),
        ("17000 00000\n", .notANumber(#""17000 00000\x0a""#)),
        ("0x10", .notANumber(#""0x10""#)),
        ("+1700000000", .notANumber(#""+1700000000""#)),
        ("1700000000\u{0}", .notANumber(#""1700000000\x00""#)),
        ("\"1\"", .notANumber(#""\x221\x22""#)),
        ("9223372036854775808", .notANumber(#""9223372036854775808""#)),
        ("99999999999999999999999999999999", .notANumber(#""99999999999999999999999999999999""#)),
        ("١٧٠٠", .notANumber(#""\xd9\xa1\xd9\xa7\xd9\xa0\xd9\xa0""#)),
        (String(repeating: "1", count: 40), .notANumber("\"" + String(repeating: "1", count: 32) + "…\"")),
    ])
    func refuses(text: String, problem: CloudStackHeartbeat.Problem) {
        #expect(CloudStackHeartbeat.decode(Array(text.utf8)) == .failure(problem))
    }

    @Test func isCappedAtMaxBytes() {
        let padded =
            Array(repeating: UInt8(ascii: " "), count: CloudStackHeartbeat.maxBytes - 11) + Array("1700000000\n".utf8)
        #expect(padded.count == CloudStackHeartbeat.maxBytes)
        #expect(CloudStackHeartbeat.decode(padded) == .success(1_700_000_000))
        #expect(CloudStackHeartbeat.decode(padded + [0x0A]) == .failure(.tooLarge(CloudStackHeartbeat.maxBytes + 1)))
        #expect(CloudStackHeartbeat.decode([UInt8](repeating: 0xFF, count: 4096)) == .failure(.tooLarge(4096)))
    }

    @Test func problemsSayWhatIsWrong() {
        #expect(CloudStackHeartbeat.Problem.empty.description == "heartbeat file is empty")
        #expect(CloudStackHeartbeat.Problem.tooLarge(4096).description.contains("4096"))
        #expect(CloudStackHeartbeat.Problem.notANumber(#""abc""#).description.contains(#""abc""#))
    }

    /// Property: every non-negative time round-trips; random bytes give a time or a problem.
    @Test func roundTripAndFuzz() {
        var rng = SplitMix64(seed: 0x5EED_0020)
        for _ in 0..<2_000 {
            let seconds = Int64(rng.next() >> 1)
            #expect(CloudStackHeartbeat.decode(CloudStackHeartbeat.encode(unixSeconds: seconds)) == .success(seconds))
        }
        let alphabet = Array("0123456789 \n\r\t-+.x".utf8) + [0, 0xFF]
        for _ in 0..<2_000 {
            let bytes = (0..<rng.within(0...80)).map { _ in rng.pick(alphabet) }
            switch CloudStackHeartbeat.decode(bytes) {
            case .success(let value): #expect(value >= 0)
            case .failure: break
            }
        }
    }
}
