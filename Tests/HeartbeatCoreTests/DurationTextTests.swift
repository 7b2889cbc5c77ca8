import HeartbeatCore
import Testing

@Suite("DurationText")
struct DurationTextTests {
    @Test(arguments: [
        ("5s", Duration.seconds(5)), ("500ms", .milliseconds(500)), ("2m", .seconds(120)), ("1h", .seconds(3600)),
        ("1m30s", .seconds(90)), ("1h1m1s1ms", .milliseconds(3_661_001)), ("5", .seconds(5)),
        ("0.5", .milliseconds(500)),
        ("1.5s", .milliseconds(1500)), ("0.25m", .seconds(15)), (" 5s ", .seconds(5)), ("\t30s\n", .seconds(30)),
        ("0", .zero), ("0s", .zero), ("-0", .zero), ("4.1s", .milliseconds(4100)), ("0.0015", .milliseconds(2)),
        ("1s1s", .seconds(2)), ("9007199254740992ms", .milliseconds(9_007_199_254_740_992)),
    ])
    func parses(text: String, duration: Duration) {
        #expect(DurationText.parse(text) == duration)
    }

    @Test(arguments: [
        "", " ", "s", "ms", "5x", "5sec", "5S", "5 s", "5s 5s", "1..5s", "1.5.2s", "s5", "5s5", "five", "-5s", "-5",
        "-0.5", "+5s", "5s,", "1e300", "1e300s", "9223372036854775808ms", "99999999999999999999h", "inf", "nan",
        "infinity", "5µs", "5ns", "5d", "½s", "٣s",
    ])
    func refuses(text: String) {
        #expect(DurationText.parse(text) == nil, "\(text.debugDescription) must not parse")
    }

    @Test(arguments: [
        (Duration.seconds(5), "5s"), (.milliseconds(500), "500ms"), (.seconds(90), "90s"), (.zero, "0s"),
        (.milliseconds(1001), "1001ms"), (.milliseconds(4100), "4100ms"), (.milliseconds(1), "1ms"),
        (.milliseconds(60_007), "60007ms"), (.seconds(-5), "-5s"), (.milliseconds(-500), "-500ms"),
        (.milliseconds(-1500), "-1500ms"), (.microseconds(1500), "1ms"), (.microseconds(999), "0s"),
        (.seconds(86_400), "86400s"), (.milliseconds(Int64.max), "9223372036854775807ms"),
    ])
    func formats(duration: Duration, text: String) {
        #expect(DurationText.format(duration) == text)
    }

    /// Property: formatting then parsing gives back any whole number of milliseconds.
    @Test func formatThenParseRoundTrips() {
        var rng = SplitMix64(seed: 0x5EED_0050)
        var failures = Failures()
        let samples = Array(0..<3_000) + (0..<3_000).map { _ in rng.below(100_000_000) }
        for millis in samples {
            let duration = Duration.milliseconds(millis)
            let text = DurationText.format(duration)
            if DurationText.parse(text) != duration { failures.record("\(millis) ms → \(text)") }
        }
        #expect(failures.count == 0, "seed 0x5EED_0050: \(failures.summary)")
    }

    @Test func parsingNeverTraps() {
        var rng = SplitMix64(seed: 0x5EED_0051)
        let alphabet = Array("0123456789.msh e-+∞".unicodeScalars)
        for _ in 0..<5_000 {
            let text = String(String.UnicodeScalarView((0..<rng.within(0...30)).map { _ in rng.pick(alphabet) }))
            if let duration = DurationText.parse(text) { #expect(duration >= .zero, "\(text)") }
        }
    }
}
