import Foundation

/// What the drill saw, event by event, and what it makes of each step: printed for people, written as JSON.
final class DrillTimeline: @unchecked Sendable {
    // @unchecked: every mutable field is behind `state`.
    enum Outcome: String, Sendable {
        case pass = "PASS"
        case fail = "FAIL"
        case skipped = "SKIPPED"
        /// A fact worth knowing, not a check.
        case info = "info"
    }

    struct Event: Sendable {
        let t: Double
        let step: Int
        let asked: String
        let answered: String
        let outcome: Outcome
    }

    struct Step: Sendable {
        let number: Int
        let title: String
        let expectation: String
        var startedAt: Double
        var endedAt: Double?
        var timings: [String: Double] = [:]
        var notes: [String] = []
    }

    private struct State {
        var events: [Event] = []
        var steps: [Step] = []
        var printed = 0
    }

    let clock: DrillClock
    private let state = Locked(State())
    /// Lines are printed as they happen (so a hang shows how far the drill got) and again in full at the end.
    let echo: Bool

    init(clock: DrillClock, echo: Bool = true) {
        self.clock = clock
        self.echo = echo
    }

    var currentStep: Int { state.withLock { $0.steps.last?.number ?? 0 } }

    func beginStep(_ number: Int, _ title: String, expect expectation: String) {
        let t = clock.now
        state.withLock { state in
            if let last = state.steps.indices.last, state.steps[last].endedAt == nil { state.steps[last].endedAt = t }
            state.steps.append(Step(number: number, title: title, expectation: expectation, startedAt: t))
        }
        say("")
        say("── step \(number): \(title)")
        say("   expected: \(expectation)")
    }

    func endStep() {
        let t = clock.now
        state.withLock { state in
            if let last = state.steps.indices.last, state.steps[last].endedAt == nil { state.steps[last].endedAt = t }
        }
    }

    /// Records a timing of the current step (seconds), for the JSON report.
    func timing(_ name: String, _ seconds: Double) {
        state.withLock { state in
            if let last = state.steps.indices.last { state.steps[last].timings[name] = seconds }
        }
    }

    func note(_ text: String) {
        state.withLock { state in
            if let last = state.steps.indices.last { state.steps[last].notes.append(text) }
        }
    }

    /// One line of the timeline. `at` defaults to now (drill seconds).
    @discardableResult
    func record(_ asked: String, _ answered: String, _ outcome: Outcome, at: Double? = nil) -> Outcome {
        let event = Event(t: at ?? clock.now, step: currentStep, asked: asked, answered: answered, outcome: outcome)
        state.withLock { $0.events.append(event) }
        say(Self.line(event))
        return outcome
    }

    /// A check: pass when `passed`, else fail.
    @discardableResult
    func check(_ asked: String, _ answered: String, _ passed: Bool, at: Double? = nil) -> Bool {
        record(asked, answered, passed ? .pass : .fail, at: at)
        return passed
    }

    func skip(_ asked: String, because why: String) {
        record(asked, "skipped: \(why)", .skipped)
    }

    var events: [Event] { state.withLock { $0.events } }
    var failures: [Event] { events.filter { $0.outcome == .fail } }
    var skips: [Event] { events.filter { $0.outcome == .skipped } }

    static func line(_ event: Event) -> String {
        let t = String(format: "t+%7.2fs", event.t)
        let mark = event.outcome == .info ? "    " : event.outcome.rawValue
        return
            "\(t)  \(event.step)  \(mark.padding(toLength: 7, withPad: " ", startingAt: 0)) \(event.asked) → \(event.answered)"
    }

    private func say(_ text: String) {
        guard echo else { return }
        print("[drill] \(text)")
    }

    /// The whole timeline as text, step by step, with a summary.
    func rendered(header: [String]) -> String {
        let (events, steps) = state.withLock { ($0.events, $0.steps) }
        var lines = header
        lines.append("")
        lines.append(
            "Each line: time since the drill started, step, PASS/FAIL/SKIPPED (blank: a fact), what was asked → what was answered."
        )
        for step in steps {
            lines.append("")
            lines.append("Step \(step.number): \(step.title)")
            lines.append("  expected: \(step.expectation)")
            // By time: some events are stamped with when they happened (a kill, an answer), not when noted.
            let own = events.enumerated().filter { $0.element.step == step.number }
                .sorted { ($0.element.t, $0.offset) < ($1.element.t, $1.offset) }.map(\.element)
            for event in own { lines.append("  " + Self.line(event)) }
            for note in step.notes { lines.append("  note: \(note)") }
            if !step.timings.isEmpty {
                let timings = step.timings.sorted { $0.key < $1.key }.map {
                    "\($0.key) \(String(format: "%.2f", $0.value)) s"
                }
                lines.append("  timings: " + timings.joined(separator: ", "))
            }
            lines.append(
                "  → step \(step.number): \(Self.verdict(of: events.filter { $0.step == step.number }).rawValue)"
            )
        }
        lines.append("")
        let failures = events.filter { $0.outcome == .fail }.count
        let skips = events.filter { $0.outcome == .skipped }.count
        let passes = events.filter { $0.outcome == .pass }.count
        lines.append(
            "Drill result: \(failures == 0 ? "PASS" : "FAIL") — \(passes) checks passed, \(failures) failed, \(skips) skipped"
        )
        return lines.joined(separator: "\n")
    }

    /// A step fails if any check failed, passes if some check passed (`partlySkipped` in the report tells when
    /// others were skipped), and is skipped when it skipped something and checked nothing.
    static func verdict(of events: [Event]) -> Outcome {
        if events.contains(where: { $0.outcome == .fail }) { return .fail }
        if events.contains(where: { $0.outcome == .pass }) { return .pass }
        return events.contains(where: { $0.outcome == .skipped }) ? .skipped : .pass
    }

    /// The JSON report: every step with its expectation, result, timings and events.
    func report(extra: [String: Any]) -> [String: Any] {
        let (events, steps) = state.withLock { ($0.events, $0.steps) }
        var report = extra
        report["steps"] = steps.map { step -> [String: Any] in
            let own = events.filter { $0.step == step.number }
            return [
                "step": step.number,
                "title": step.title,
                "expected": step.expectation,
                "result": Self.verdict(of: own).rawValue.lowercased(),
                "partlySkipped": own.contains { $0.outcome == .skipped },
                "startedAtSeconds": Self.rounded(step.startedAt),
                "endedAtSeconds": step.endedAt.map(Self.rounded) ?? NSNull(),
                "timingsSeconds": step.timings.mapValues(Self.rounded),
                "notes": step.notes,
                "events": own.map { event -> [String: Any] in
                    [
                        "t": Self.rounded(event.t), "asked": event.asked, "answered": event.answered,
                        "result": event.outcome.rawValue.lowercased(),
                    ]
                },
            ]
        }
        let failures = events.filter { $0.outcome == .fail }.count
        report["result"] = failures == 0 ? "pass" : "fail"
        report["checks"] = [
            "passed": events.filter { $0.outcome == .pass }.count, "failed": failures,
            "skipped": events.filter { $0.outcome == .skipped }.count,
        ]
        return report
    }

    static func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
}
