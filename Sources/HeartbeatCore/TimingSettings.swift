/// What the sidecar does when it cannot write any beat for `fenceAfter`.
public enum FenceAction: String, Sendable, CaseIterable, Codable {
    /// Nothing.
    case none
    /// Log (and alert) only. The packaged default: CloudStack's own agent may still be the one that reboots.
    case log
    /// Reboot through sysrq `b` after a sync attempt, as CloudStack does.
    case reboot
    /// Write a marker file instead of rebooting (tests and drills).
    case dryRun = "dry-run"
}

/// The beat timing. Defaults and their reasons: DESIGN.md "Defaults, and why".
public struct TimingSettings: Hashable, Sendable {
    public var interval: Duration = .seconds(5)
    public var ioTimeout: Duration = .seconds(4)
    public var deadAfter: Duration = .seconds(30)
    public var fenceAfter: Duration = .seconds(20)
    public var fenceDelay: Duration = .seconds(5)
    public var fenceAction: FenceAction = .log

    public init() {}

    /// Problems with these settings, each naming the keys involved. Empty when the settings are safe.
    public func problems() -> [String] {
        var problems: [String] = []
        for (key, value) in [("interval", interval), ("ioTimeout", ioTimeout), ("deadAfter", deadAfter)]
        where value <= .zero {
            problems.append("\(key) must be positive (is \(DurationText.format(value)))")
        }
        if fenceAfter < .zero { problems.append("fenceAfter must not be negative") }
        if fenceDelay < .zero { problems.append("fenceDelay must not be negative") }
        if !problems.isEmpty { return problems }
        if ioTimeout >= interval {
            problems.append(
                "ioTimeout (\(DurationText.format(ioTimeout))) must be less than interval (\(DurationText.format(interval))): one stuck write must not hide a whole beat"
            )
        }
        if deadAfter < interval * 3 {
            problems.append(
                "deadAfter (\(DurationText.format(deadAfter))) must be at least 3 × interval (\(DurationText.format(interval * 3)))"
            )
        }
        if fenceAction != .none && fenceAfter + fenceDelay >= deadAfter {
            problems.append(
                "fenceAfter + fenceDelay (\(DurationText.format(fenceAfter + fenceDelay))) must be less than deadAfter (\(DurationText.format(deadAfter))) when fenceAction is \(fenceAction.rawValue): a host must be gone before its neighbours call it dead"
            )
        }
        if fenceAction != .none && fenceAfter < interval {
            problems.append(
                "fenceAfter (\(DurationText.format(fenceAfter))) must be at least interval (\(DurationText.format(interval))) when fenceAction is \(fenceAction.rawValue)"
            )
        }
        return problems
    }
}

/// Durations in config files and flags: `5s`, `500ms`, `2m`, `1h`, `1m30s`, or a plain number of seconds
/// (`5`, `0.5`).
public enum DurationText {
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingSpaces
        guard !trimmed.isEmpty else { return nil }
        // Negative numbers are refused as in the unit form; values beyond Int64 milliseconds are refused
        // rather than trapping in the conversion.
        if let seconds = Double(trimmed), seconds.isFinite, seconds >= 0 {
            guard let millis = Int64(exactly: (seconds * 1000).rounded()) else { return nil }
            return .milliseconds(millis)
        }
        var total: Duration = .zero
        var number = ""
        var unit = ""
        var sawAny = false
        func flush() -> Bool {
            guard let value = Double(number), value.isFinite, value >= 0 else { return false }
            let millis: Double
            switch unit {
            case "ms": millis = value
            case "s": millis = value * 1000
            case "m": millis = value * 60_000
            case "h": millis = value * 3_600_000
            default: return false
            }
            guard let whole = Int64(exactly: millis.rounded()) else { return false }
            total += .milliseconds(whole)
            number = ""
            unit = ""
            sawAny = true
            return true
        }
        for character in trimmed {
            if character.isNumber || character == "." {
                if !unit.isEmpty { guard flush() else { return nil } }
                number.append(character)
            } else if character.isLetter {
                guard !number.isEmpty else { return nil }
                unit.append(character)
            } else {
                return nil
            }
        }
        guard flush(), sawAny else { return nil }
        return total
    }

    public static func format(_ duration: Duration) -> String {
        // Integer arithmetic on the components: through Double, 1001 ms came out as "1s".
        let (seconds, attoseconds) = duration.components
        let millisPart = attoseconds / 1_000_000_000_000_000
        if millisPart == 0 { return "\(seconds)s" }
        let (scaled, scaleOverflow) = seconds.multipliedReportingOverflow(by: 1000)
        let (millis, sumOverflow) = scaled.addingReportingOverflow(millisPart)
        return scaleOverflow || sumOverflow ? "\(seconds)s" : "\(millis)ms"
    }
}

extension String {
    var trimmingSpaces: String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
