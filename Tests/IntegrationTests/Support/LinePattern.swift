/// What `ChildProcess.waitForLine` looks for: a substring (a string literal is one) or a regular
/// expression that must match somewhere in the line.
struct LinePattern: Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    private enum Kind {
        case substring(String)
        case regex(String)
    }

    private let kind: Kind

    private init(kind: Kind) {
        self.kind = kind
    }

    init(stringLiteral value: String) {
        self.kind = .substring(value)
    }

    static func substring(_ text: String) -> LinePattern {
        LinePattern(kind: .substring(text))
    }

    /// Fails here, not later in a wait, when `pattern` is not a valid regular expression.
    static func regex(_ pattern: String) throws -> LinePattern {
        _ = try Regex(pattern)
        return LinePattern(kind: .regex(pattern))
    }

    var description: String {
        switch kind {
        case .substring(let text): "\"\(text)\""
        case .regex(let pattern): "/\(pattern)/"
        }
    }

    /// A matcher for one wait. `Regex` is not `Sendable` (it compiles lazily into shared storage),
    /// so each wait compiles its own and uses it only under the lock of the process's output.
    func makeMatcher() -> (String) -> Bool {
        switch kind {
        case .substring(let text):
            return { $0.contains(text) }
        case .regex(let pattern):
            // Validated in `regex(_:)`.
            let regex = try! Regex(pattern)
            return { $0.contains(regex) }
        }
    }
}
