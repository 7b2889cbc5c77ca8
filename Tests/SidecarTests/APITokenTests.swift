import Foundation
import Sidecar
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The bearer token: its file must be the daemon's own and private; comparisons cost the same whatever
/// is presented.
@Suite("API token")
struct APITokenTests {
    static func tokenFile(_ contents: String, mode: mode_t = 0o600) throws -> (TemporaryFolder, String) {
        let folder = try TemporaryFolder(prefix: "kvmha-token")
        let path = folder.path + "/api-token"
        try Data(contents.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, mode)
        return (folder, path)
    }

    @Test func readsTheFirstLine() throws {
        let (folder, path) = try Self.tokenFile("  0123456789abcdef0123 \nsecond line\n")
        _ = folder
        let token = try APIToken.load(path: path)
        #expect(token.accepts(authorization: "Bearer 0123456789abcdef0123"))
        #expect(!token.accepts(authorization: "Bearer second line"))
    }

    @Test(arguments: [0o640, 0o604, 0o644, 0o660, 0o606, 0o610, 0o601, 0o700 | 0o004])
    func refusesAFileOthersCanReach(mode: Int) throws {
        let (folder, path) = try Self.tokenFile("0123456789abcdef0123\n", mode: mode_t(mode))
        _ = folder
        #expect {
            try APIToken.load(path: path)
        } throws: { error in
            let text = "\(error)"
            return text.contains(path) && text.contains("group or others") && text.contains("chmod 600")
        }
    }

    @Test func refusesMissingFilesSymlinksAndFolders() throws {
        let (folder, path) = try Self.tokenFile("0123456789abcdef0123\n")
        #expect(throws: APIStartError.self) { try APIToken.load(path: folder.path + "/missing") }
        let link = folder.path + "/link"
        symlink(path, link)
        #expect(throws: APIStartError.self) { try APIToken.load(path: link) }
        #expect(throws: APIStartError.self) { try APIToken.load(path: folder.path) }
    }

    @Test(arguments: [
        "", "\n", "short", "0123456789abcde", "has space inside 0123", "tab\t0123456789abcdef", "é0123456789abcdef",
        "0123456789abcdef=x",
    ])
    func refusesWeakOrOddTokens(contents: String) throws {
        let (folder, path) = try Self.tokenFile(contents)
        _ = folder
        #expect(throws: APIStartError.self) { try APIToken.load(path: path) }
    }

    @Test func acceptsOnlyTheExactBearerToken() throws {
        let token = try APIToken("abcdefghijklmnop+/=")
        #expect(token.accepts(authorization: "Bearer abcdefghijklmnop+/="))
        #expect(token.accepts(authorization: "BEARER abcdefghijklmnop+/="))
        #expect(token.accepts(authorization: "Bearer   abcdefghijklmnop+/="))
        for header in [
            nil, "", "Bearer", "Bearer ", "abcdefghijklmnop+/=", "Bearer abcdefghijklmnop+/",
            "Bearer abcdefghijklmnop+/==",
            "Bearer Abcdefghijklmnop+/=", "Basic abcdefghijklmnop+/=", "Bearerabcdefghijklmnop+/=",
        ] {
            #expect(!token.accepts(authorization: header), "\(String(describing: header))")
        }
    }
}
