/// CloudStack's heartbeat file `KVMHA/hb-<ip>`: the writer's Unix time in decimal seconds and a newline.
/// CloudStack's scripts read it with `cat` and compare it with their own `date +%s`.
public enum CloudStackHeartbeat {
    /// The bytes CloudStack's script would write at `unixSeconds`.
    public static func encode(unixSeconds: Int64) -> [UInt8] {
        Array("\(unixSeconds)\n".utf8)
    }

    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        case empty
        case notANumber(String)
        case tooLarge(Int)

        public var description: String {
            switch self {
            case .empty: "heartbeat file is empty"
            case .notANumber(let text): "heartbeat file does not hold a Unix time: \(text)"
            case .tooLarge(let size): "heartbeat file is \(size) bytes, far more than a Unix time"
            }
        }
    }

    /// Cap for reading: a timestamp is 11 bytes; anything much longer is garbage.
    public static let maxBytes = 64

    /// Decodes the file's content: optional surrounding whitespace, then decimal digits.
    public static func decode(_ bytes: some Collection<UInt8>) -> Result<Int64, Problem> {
        if bytes.count > maxBytes { return .failure(.tooLarge(bytes.count)) }
        let trimmed = bytes.drop(while: isSpace).reversed().drop(while: isSpace).reversed()
        if trimmed.isEmpty { return .failure(.empty) }
        var value: Int64 = 0
        for byte in trimmed {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                return .failure(.notANumber(printable(bytes)))
            }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            if overflow1 || overflow2 { return .failure(.notANumber(printable(bytes))) }
            value = sum
        }
        return .success(value)
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
            || byte == UInt8(ascii: "\t")
    }

    /// A short, printable rendering of untrusted bytes for error messages.
    static func printable(_ bytes: some Collection<UInt8>) -> String {
        var out = ""
        for byte in bytes.prefix(32) {
            if byte >= 0x20 && byte < 0x7f && byte != UInt8(ascii: "\"") {
                out.append(Character(Unicode.Scalar(byte)))
            } else {
                out += "\\x" + String(byte, radix: 16, uppercase: false).leftPadded(to: 2)
            }
        }
        if bytes.count > 32 { out += "…" }
        return "\"\(out)\""
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
