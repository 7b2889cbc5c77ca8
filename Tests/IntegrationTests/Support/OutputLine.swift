/// One line a child process wrote, without its newline.
struct OutputLine: Sendable, Hashable, CustomStringConvertible {
    enum Source: String, Sendable {
        case stdout
        case stderr
    }

    /// Position among all lines of the process, both streams together, in the order they arrived.
    let index: Int
    let source: Source
    let text: String

    var description: String { "[\(source)] \(text)" }
}
