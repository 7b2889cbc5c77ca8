/// The command line of CloudStack's scripts, read the way their `getopts` reads it, so that the drop-in
/// commands accept exactly what the agent passes.
///
/// `getopts` semantics: short options only; an option that takes a value takes the rest of its word
/// (`-i10.0.0.1`) or the next word (`-i 10.0.0.1`, also when that word is empty or starts with `-`); flags
/// may be clustered (`-rc`); a later occurrence wins; `--` ends the options, and so does the first word that
/// is not an option (the scripts ignore the rest). An unknown option or a missing value is a usage error
/// (the scripts print their help and exit 1).
///
/// Long options (`--name VALUE`, `--name=VALUE`, `--flag`) are our own extensions: CloudStack never passes
/// them, and the scripts would reject them.
public struct CloudStackDropInArguments: Hashable, Sendable {
    /// The grammar of one command.
    public struct Grammar: Hashable, Sendable {
        /// Short options that take a value (`i`, `p`, …).
        public var valueOptions: Set<Character>
        /// Short options without a value (`r`, `c`).
        public var flagOptions: Set<Character>
        /// Our long options that take a value, without the dashes.
        public var longValueOptions: Set<String>
        /// Our long flags, without the dashes.
        public var longFlags: Set<String>

        public init(
            valueOptions: Set<Character>,
            flagOptions: Set<Character> = [],
            longValueOptions: Set<String> = [],
            longFlags: Set<String> = []
        ) {
            self.valueOptions = valueOptions
            self.flagOptions = flagOptions
            self.longValueOptions = longValueOptions
            self.longFlags = longFlags
        }
    }

    public enum Problem: Error, Hashable, Sendable, CustomStringConvertible {
        case unknownOption(String)
        case missingValue(String)
        case unexpectedValue(String)

        public var description: String {
            switch self {
            case .unknownOption(let option): "unknown option \(option)"
            case .missingValue(let option): "option \(option) needs a value"
            case .unexpectedValue(let option): "option \(option) takes no value"
            }
        }
    }

    /// The value of each short option given (the last one wins).
    public var values: [Character: String] = [:]
    /// The short flags given.
    public var flags: Set<Character> = []
    /// The value of each long option given (the last one wins).
    public var longValues: [String: String] = [:]
    /// The long flags given.
    public var longFlags: Set<String> = []
    /// Words after the options; the scripts ignore them, and so do we.
    public var ignored: [String] = []

    public init() {}

    public static func parse(_ words: [String], grammar: Grammar) -> Result<CloudStackDropInArguments, Problem> {
        var parsed = CloudStackDropInArguments()
        var index = 0
        while index < words.count {
            let word = words[index]
            index += 1
            if word == "--" { break }
            if word.hasPrefix("--") {
                let body = word.dropFirst(2)
                let name = String(body.prefix { $0 != "=" })
                let inlineValue = body.contains("=") ? String(body.drop { $0 != "=" }.dropFirst()) : nil
                if grammar.longFlags.contains(name) {
                    guard inlineValue == nil else { return .failure(.unexpectedValue("--\(name)")) }
                    parsed.longFlags.insert(name)
                } else if grammar.longValueOptions.contains(name) {
                    if let inlineValue {
                        parsed.longValues[name] = inlineValue
                    } else {
                        guard index < words.count else { return .failure(.missingValue("--\(name)")) }
                        parsed.longValues[name] = words[index]
                        index += 1
                    }
                } else {
                    return .failure(.unknownOption("--\(name)"))
                }
                continue
            }
            guard word.hasPrefix("-"), word.count > 1 else {
                // The first operand ends the options, as with getopts.
                index -= 1
                break
            }
            var letters = word.dropFirst()[...]
            while let letter = letters.popFirst() {
                if grammar.flagOptions.contains(letter) {
                    parsed.flags.insert(letter)
                } else if grammar.valueOptions.contains(letter) {
                    if !letters.isEmpty {
                        parsed.values[letter] = String(letters)
                    } else {
                        guard index < words.count else { return .failure(.missingValue("-\(letter)")) }
                        parsed.values[letter] = words[index]
                        index += 1
                    }
                    break
                } else {
                    return .failure(.unknownOption("-\(letter)"))
                }
            }
        }
        parsed.ignored = Array(words[min(index, words.count)...])
        return .success(parsed)
    }

    /// A Unix time or a number of seconds as the scripts take them: decimal digits only (at most 18).
    public static func seconds(_ text: String) -> Int64? {
        let bytes = text.utf8
        guard !bytes.isEmpty, bytes.count <= 18, bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(text)
    }
}
