import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Why the API cannot start; says which file and what to do.
public struct APIStartError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The bearer token every request must carry, read once from a file only its owner can read.
public struct APIToken: Sendable {
    private let bytes: [UInt8]

    /// Long enough to resist guessing over the network.
    public static let minimumLength = 16
    static let maxFileBytes = 4096

    /// - Throws: when the token is shorter than `minimumLength` or has characters outside RFC 6750's
    ///   `b64token` alphabet (letters, digits, `-._~+/`, trailing `=`).
    public init(_ token: String) throws(APIStartError) {
        guard token.utf8.count >= Self.minimumLength else {
            throw APIStartError("the API token must be at least \(Self.minimumLength) characters long")
        }
        guard Self.isB64Token(token) else {
            throw APIStartError("the API token may hold only letters, digits and -._~+/ (and trailing =)")
        }
        bytes = Array(token.utf8)
    }

    /// Reads the token from `path` (its first line). Refuses a file that is not a regular file owned by the
    /// user the daemon runs as, or that group or others may access at all.
    public static func load(path: String) throws(APIStartError) -> APIToken {
        let bytes: [UInt8]
        do {
            bytes = try PrivateFile.contents(
                path, what: "API token file \(path)", maxBytes: maxFileBytes,
                missingHint: " — create it with a random token (e.g. `openssl rand -hex 32 > \(path); chmod 600 \(path)`)")
        } catch {
            throw APIStartError(error.description)
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let firstLine = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let token = firstLine.trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            return try APIToken(token)
        } catch {
            throw APIStartError("API token file \(path): \(error.description)")
        }
    }

    /// As `load`, but nil when the file does not exist: the daemon then runs without its API (and says
    /// so) rather than without heartbeats. Every other problem still stops it.
    public static func loadIfPresent(path: String) throws(APIStartError) -> APIToken? {
        var info = stat()
        if lstat(path, &info) != 0 && errno == ENOENT { return nil }
        return try load(path: path)
    }

    /// Reads a token for a client (the `kvmha` commands): no ownership rules, the server enforces them.
    public static func readForClient(path: String) throws(APIStartError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw APIStartError(
                "cannot read the API token file \(path) (\(String(cString: strerror(errno)))); give --token-file or run as root"
            )
        }
        let text = String(decoding: data.prefix(maxFileBytes), as: UTF8.self)
        let token = (text.split(separator: "\n", maxSplits: 1).first ?? "").trimmingCharacters(
            in: .whitespacesAndNewlines
        )
        guard !token.isEmpty else { throw APIStartError("the API token file \(path) is empty") }
        return token
    }

    /// Whether an `Authorization` header value carries this token. Takes the same time whatever the
    /// presented token is (for a given token length), so its bytes cannot be found by timing.
    public func accepts(authorization: String?) -> Bool {
        guard let authorization else { return false }
        var value = Substring(authorization)
        guard value.count > 7, value.prefix(7).lowercased() == "bearer " else { return false }
        value = value.dropFirst(7)
        while value.first == " " { value = value.dropFirst() }
        return Self.constantTimeEqual(bytes, Array(value.utf8))
    }

    /// Compares every byte of `expected` whatever `given` is; lengths count as a difference, not an exit.
    static func constantTimeEqual(_ expected: [UInt8], _ given: [UInt8]) -> Bool {
        var difference: UInt8 = expected.count == given.count ? 0 : 1
        for index in expected.indices {
            difference |= expected[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }

    static func isB64Token(_ text: String) -> Bool {
        var sawEquals = false
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "="): sawEquals = true
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "+"),
                UInt8(ascii: "/"):
                if sawEquals { return false }
            default: return false
            }
        }
        return true
    }
}
