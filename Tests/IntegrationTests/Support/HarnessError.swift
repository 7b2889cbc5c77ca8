/// A failure of the test harness itself (a missing tool, a process that did not start, a wait that
/// ran into its hang guard). The message says what happened and, where it helps, what to run.
struct HarnessError: Error, CustomStringConvertible {
    let message: String

    init(_ message: String) {
        self.message = message
    }

    var description: String { message }

    static let installHint = "run scripts/install-test-deps.sh"
}
