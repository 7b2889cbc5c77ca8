import HeartbeatCore
import Testing

/// DESIGN.md "Timing rules": each problem names the keys involved.
@Suite("TimingSettings")
struct TimingSettingsTests {
    static func timing(
        interval: Duration = .seconds(5),
        ioTimeout: Duration = .seconds(4),
        deadAfter: Duration = .seconds(30),
        fenceAfter: Duration = .seconds(20),
        fenceDelay: Duration = .seconds(5),
        fenceAction: FenceAction = .log
    ) -> TimingSettings {
        var timing = TimingSettings()
        timing.interval = interval
        timing.ioTimeout = ioTimeout
        timing.deadAfter = deadAfter
        timing.fenceAfter = fenceAfter
        timing.fenceDelay = fenceDelay
        timing.fenceAction = fenceAction
        return timing
    }

    @Test func theDefaultsAreDesignMdsAndValid() {
        let timing = TimingSettings()
        #expect(timing == Self.timing())
        #expect(
            timing.fenceAction == .log,
            "the packaged default: CloudStack's agent may still be the one that reboots"
        )
        #expect(timing.problems() == [])
    }

    struct RuleCase: Sendable, CustomTestStringConvertible {
        var name: String
        var timing: TimingSettings
        /// One entry per expected problem: the words that problem must contain.
        var problems: [[String]]
        var testDescription: String { name }
    }

    static let ruleCases: [RuleCase] = [
        RuleCase(
            name: "ioTimeout equal to interval",
            timing: timing(ioTimeout: .seconds(5)),
            problems: [["ioTimeout", "interval", "5s"]]
        ),
        RuleCase(
            name: "ioTimeout above interval",
            timing: timing(ioTimeout: .seconds(6)),
            problems: [["ioTimeout (6s)", "interval (5s)"]]
        ),
        RuleCase(name: "ioTimeout just below interval", timing: timing(ioTimeout: .milliseconds(4999)), problems: []),
        RuleCase(
            name: "deadAfter below 3 × interval",
            timing: timing(deadAfter: .milliseconds(14999), fenceAfter: .seconds(5), fenceDelay: .zero),
            problems: [["deadAfter (14999ms)", "3 × interval (15s)"]]
        ),
        RuleCase(
            name: "deadAfter exactly 3 × interval",
            timing: timing(deadAfter: .seconds(15), fenceAfter: .seconds(5), fenceDelay: .seconds(5)),
            problems: []
        ),
        RuleCase(
            name: "fenceAfter + fenceDelay equal to deadAfter",
            timing: timing(fenceAfter: .seconds(25), fenceDelay: .seconds(5)),
            problems: [["fenceAfter + fenceDelay (30s)", "deadAfter (30s)", "fenceAction is log"]]
        ),
        RuleCase(
            name: "fenceAfter + fenceDelay above deadAfter, reboot",
            timing: timing(fenceAfter: .seconds(40), fenceAction: .reboot),
            problems: [["fenceAfter + fenceDelay (45s)", "deadAfter", "reboot"]]
        ),
        RuleCase(
            name: "fenceAfter + fenceDelay above deadAfter, dry-run",
            timing: timing(fenceAfter: .seconds(40), fenceAction: .dryRun),
            problems: [["fenceAfter + fenceDelay", "dry-run"]]
        ),
        RuleCase(
            name: "fenceAfter + fenceDelay above deadAfter, fencing off",
            timing: timing(fenceAfter: .seconds(40), fenceAction: .none),
            problems: []
        ),
        RuleCase(
            name: "fenceAfter below interval",
            timing: timing(fenceAfter: .seconds(4)),
            problems: [["fenceAfter (4s)", "interval (5s)"]]
        ),
        RuleCase(
            name: "fenceAfter below interval, fencing off",
            timing: timing(fenceAfter: .seconds(1), fenceAction: .none),
            problems: []
        ),
        RuleCase(
            name: "several rules at once",
            timing: timing(
                interval: .seconds(10),
                ioTimeout: .seconds(10),
                deadAfter: .seconds(20),
                fenceAfter: .seconds(20)
            ),
            problems: [
                ["ioTimeout", "interval"], ["deadAfter", "3 × interval"], ["fenceAfter + fenceDelay", "deadAfter"],
            ]
        ),
        RuleCase(
            name: "interval zero",
            timing: timing(interval: .zero),
            problems: [["interval must be positive", "0s"]]
        ),
        RuleCase(
            name: "ioTimeout negative",
            timing: timing(ioTimeout: .seconds(-1)),
            problems: [["ioTimeout must be positive", "-1s"]]
        ),
        RuleCase(name: "deadAfter zero", timing: timing(deadAfter: .zero), problems: [["deadAfter must be positive"]]),
        RuleCase(
            name: "fenceAfter negative",
            timing: timing(fenceAfter: .seconds(-1)),
            problems: [["fenceAfter must not be negative"]]
        ),
        RuleCase(
            name: "fenceDelay negative",
            timing: timing(fenceDelay: .milliseconds(-1)),
            problems: [["fenceDelay must not be negative"]]
        ),
        RuleCase(name: "fenceDelay zero", timing: timing(fenceDelay: .zero), problems: []),
        RuleCase(
            name: "sub-second scale (the multi-process tests)",
            timing: timing(
                interval: .milliseconds(300),
                ioTimeout: .milliseconds(200),
                deadAfter: .milliseconds(1800),
                fenceAfter: .milliseconds(900),
                fenceDelay: .milliseconds(300)
            ),
            problems: []
        ),
    ]

    @Test(arguments: ruleCases)
    func rules(_ row: RuleCase) {
        let problems = row.timing.problems()
        #expect(problems.count == row.problems.count, "\(problems)")
        for (problem, words) in zip(problems, row.problems) {
            for word in words {
                #expect(problem.contains(word), "\(problem.debugDescription) should mention \(word)")
            }
        }
    }

    /// The fencing rule applies to every action but `none`.
    @Test(arguments: FenceAction.allCases)
    func fencingRuleDependsOnTheAction(action: FenceAction) {
        let problems = Self.timing(fenceAfter: .seconds(25), fenceAction: action).problems()
        #expect(problems.contains { $0.contains("fenceAfter + fenceDelay") } == (action != .none))
    }

    @Test func fenceActionsSpellTheirConfigValues() {
        #expect(FenceAction.allCases.map(\.rawValue) == ["none", "log", "reboot", "dry-run"])
    }
}
