import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The user and password of a peer's BMC, read once at start-up from a file only its owner can read.
///
/// The file has two `key=value` lines; blank lines and lines starting with `#` are ignored, and spaces
/// around keys and values are dropped:
///
///     user=ADMIN
///     password=s3cret
///
/// The password never appears on a command line: ipmitool reads it from a pipe (`-f`).
public struct BMCCredentials: Sendable, Equatable {
    public var user: String
    public var password: String

    /// IPMI 2.0 limits: 16 bytes of user name, 20 of password.
    public static let maxUserBytes = 16
    public static let maxPasswordBytes = 20
    static let maxFileBytes = 4096

    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }

    /// Reads `path`. Refuses a file that is not a regular file owned by the user the daemon runs as, or that
    /// group or others may access at all, as for the API token.
    public static func load(path: String) throws(APIStartError) -> BMCCredentials {
        let bytes: [UInt8]
        do {
            bytes = try PrivateFile.contents(
                path, what: "BMC credentials file \(path)", maxBytes: maxFileBytes,
                missingHint: " — create it with `user=NAME` and `password=SECRET` lines, then `chmod 600 \(path)`")
        } catch {
            throw APIStartError(error.description)
        }
        do {
            return try parse(String(decoding: bytes, as: UTF8.self))
        } catch {
            throw APIStartError("BMC credentials file \(path): \(error.description)")
        }
    }

    /// Parses the file's text; errors never quote the password.
    public static func parse(_ text: String) throws(APIStartError) -> BMCCredentials {
        var values: [String: String] = [:]
        // By Character: "\r\n" is one, and a newline too.
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw APIStartError("line \(index + 1) is not `key=value` (keys: user, password)")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard key == "user" || key == "password" else {
                throw APIStartError("line \(index + 1): unknown key '\(key)' (keys: user, password)")
            }
            guard values[key] == nil else { throw APIStartError("'\(key)' is given twice") }
            guard !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
                throw APIStartError("the \(key) holds a control character")
            }
            values[key] = value
        }
        guard let user = values["user"] else { throw APIStartError("no `user=` line") }
        guard let password = values["password"] else { throw APIStartError("no `password=` line") }
        guard user.utf8.count <= maxUserBytes else {
            throw APIStartError("the user is longer than IPMI's \(maxUserBytes) bytes")
        }
        guard password.utf8.count <= maxPasswordBytes else {
            throw APIStartError("the password is longer than IPMI's \(maxPasswordBytes) bytes")
        }
        return BMCCredentials(user: user, password: password)
    }
}
